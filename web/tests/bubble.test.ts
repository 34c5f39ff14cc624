import { describe, expect, it, vi } from 'vitest'
import { createApp, h } from 'vue'
import MessageBubble from '@/components/MessageBubble.vue'
import { i18n } from '@/i18n'
import type { Content } from '@/protocol/types'

// Text with a link asks for its preview: no server here.
vi.stubGlobal('fetch', () => Promise.reject(new TypeError('offline')))

function render(content: Content) {
  const el = document.createElement('div')
  const app = createApp({
    render: () =>
      h(MessageBubble, { content, mine: false, time: '10:00', fullTime: '', status: 'sent', showAvatar: true, name: 'Bob', seed: 7, grouped: false }),
  })
  app.use(i18n)
  app.mount(el)
  return el
}

describe('MessageBubble', () => {
  it('renders what a user typed as text, never as HTML', () => {
    const evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    const el = render({ kind: 'text', text: evil })
    expect(el.querySelector('img, script')).toBeNull()
    expect(el.querySelector('[data-testid="message-text"]')!.textContent).toBe(evil)
  })

  it('turns http(s) links into anchors and nothing else', () => {
    const el = render({ kind: 'text', text: 'see https://example.com/a?b=1. or javascript:alert(1) or <a href="x">' })
    const links = [...el.querySelectorAll('a')]
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://example.com/a?b=1'])
    expect(links[0]!.getAttribute('rel')).toContain('noopener')
    expect(el.querySelector('[data-testid="message-text"]')!.textContent).toBe('see https://example.com/a?b=1. or javascript:alert(1) or <a href="x">')
  })

  it('shows a lone emoji large, and a file by name', () => {
    expect(render({ kind: 'emoji', emoji: '🎉' }).querySelector('.big-emoji')!.textContent).toBe('🎉')
    const file = render({ kind: 'file', file_id: 'f', name: '<b>r.pdf</b>', size: 2048, mime: 'application/pdf' })
    expect(file.querySelector('b')).toBeNull()
    expect(file.textContent).toContain('<b>r.pdf</b>')
  })

  it('shows an image as its thumbnail, a file with a download link, and a sticker without a bubble', () => {
    const id = 'a'.repeat(32)
    const img = render({ kind: 'image', file_id: id, width: 640, height: 480, name: 'cat.jpg', size: 1 })
    expect(img.querySelector('[data-testid="message-image"] img')!.getAttribute('src')).toBe(`/api/files/${id}/thumb`)
    expect((img.querySelector('[data-testid="message-image"]') as HTMLElement).style.width).toBe('240px')
    const file = render({ kind: 'file', file_id: id, name: 'r.pdf', size: 2048, mime: 'application/pdf' })
    expect(file.querySelector('[data-testid="file-download"]')!.getAttribute('href')).toBe(`/api/files/${id}`)
    expect(file.textContent).toContain('2.0 KB')
    const sticker = render({ kind: 'sticker', file_id: id, width: 120, height: 120 })
    expect(sticker.querySelector('[data-testid="message-sticker"] img')!.getAttribute('src')).toBe(`/api/files/${id}`)
    expect(sticker.querySelector('.msg')!.classList.contains('emoji')).toBe(true)
  })

  it('renders a call record as a sentence', () => {
    const el = render({ kind: 'call', media: 'video', outcome: 'answered', duration_secs: 65 })
    expect(el.querySelector('[data-testid="message-call"]')!.textContent).toContain('Call duration 1:05')
  })
})
