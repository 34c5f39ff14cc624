import { describe, expect, it, vi } from 'vitest'
import { createApp, h, nextTick } from 'vue'
import LinkPreviewCard from '@/components/LinkPreview.vue'
import { i18n } from '@/i18n'
import { firstLink, previewCache, worthShowing } from '@/lib/linkPreview'
import { ApiError } from '@/protocol/api'
import type { LinkPreview } from '@/protocol/types'

const page = (url: string): LinkPreview => ({ url, title: 'T', description: null, site_name: 'S', image: null })

describe('link previews', () => {
  it('finds the first http(s) link, without trailing punctuation', () => {
    expect(firstLink('see https://example.org/a?b=1. and http://x.y')).toBe('https://example.org/a?b=1')
    expect(firstLink('(http://example.org/path)')).toBe('http://example.org/path')
    expect(firstLink('ftp://example.org javascript:alert(1) no links')).toBeNull()
  })

  it('shows a card only with a title or a description', () => {
    expect(worthShowing(null)).toBe(false)
    expect(worthShowing({ ...page('u'), title: null })).toBe(false)
    expect(worthShowing(page('u'))).toBe(true)
  })

  it('asks the server once per URL, however many cards ask at once', async () => {
    const fetcher = vi.fn(async (u: string) => page(u))
    const c = previewCache(fetcher)
    const [a, b] = await Promise.all([c.get('https://a.example/'), c.get('https://a.example/')])
    expect(a).toEqual(page('https://a.example/'))
    expect(b).toBe(a)
    await c.get('https://a.example/')
    expect(fetcher).toHaveBeenCalledTimes(1)
  })

  it('remembers failures, but not rate limits or lost connections', async () => {
    let answer: unknown = new ApiError(400, 'url_refused', 'no')
    const fetcher = vi.fn(async (u: string) => {
      if (answer instanceof Error) throw answer
      return page(u)
    })
    const c = previewCache(fetcher)
    expect(await c.get('http://10.0.0.1/')).toBeNull()
    expect(await c.get('http://10.0.0.1/')).toBeNull()
    expect(fetcher).toHaveBeenCalledTimes(1)
    answer = new ApiError(429, 'rate_limited', 'slow down', 5)
    expect(await c.get('https://b.example/')).toBeNull()
    answer = null
    expect(await c.get('https://b.example/')).toEqual(page('https://b.example/'))
    expect(fetcher).toHaveBeenCalledTimes(3)
  })

  it('stops asking once the server says previews are off', async () => {
    const fetcher = vi.fn(async (): Promise<never> => {
      throw new ApiError(404, 'previews_disabled', 'off')
    })
    const c = previewCache(fetcher)
    expect(await c.get('https://a.example/')).toBeNull()
    expect(await c.get('https://b.example/')).toBeNull()
    expect(await c.get('https://c.example/')).toBeNull()
    expect(fetcher).toHaveBeenCalledTimes(1)
  })

  it('renders the card as text, with the thumbnail from this server only', async () => {
    const answer = {
      url: 'https://evil.example/',
      title: '<img src=x onerror="alert(1)">Title',
      description: '<script>alert(2)</script>',
      site_name: 'Evil',
      image: '0123456789abcdef0123456789abcdef',
    }
    const calls: string[] = []
    vi.stubGlobal('fetch', async (url: string) => {
      calls.push(url)
      return new Response(JSON.stringify(answer), { status: 200, headers: { 'content-type': 'application/json' } })
    })
    const el = document.createElement('div')
    const app = createApp({ render: () => h(LinkPreviewCard, { url: 'https://evil.example/' }) })
    app.use(i18n)
    app.mount(el)
    for (let i = 0; i < 20 && !el.querySelector('[data-testid="link-preview"]'); i++) await new Promise((r) => setTimeout(r, 5))
    await nextTick()
    expect(calls).toEqual(['/api/link-preview?url=https%3A%2F%2Fevil.example%2F'])
    expect(el.querySelector('[data-testid="link-preview-title"]')!.textContent).toBe(answer.title)
    expect(el.querySelector('script')).toBeNull()
    const imgs = [...el.querySelectorAll('img')].map((i) => i.getAttribute('src'))
    expect(imgs).toEqual([`/api/files/${answer.image}/thumb`])
    expect(el.querySelector('a')!.getAttribute('rel')).toContain('noopener')
    app.unmount()
    vi.unstubAllGlobals()
  })
})
