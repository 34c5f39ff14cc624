// The service worker's decisions (sw/push-logic.ts): what each push payload shows or closes, in
// each preview setting and language, and where a click goes.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { transformWithOxc } from 'vite'
import { chatPath, clickPath, pickWindow, pushAction, pushLang, type ShowAction } from '../sw/push-logic'

const show = (payload: unknown, lang: 'en' | 'zh' = 'en') => {
  const a = pushAction(payload, lang)
  expect(a?.kind).toBe('show')
  return a as ShowAction
}

describe('message pushes', () => {
  const base = { type: 'message', conv: 'd:3:7', seq: 42 }
  // [payload fields, language, title, body]
  const table: [Record<string, unknown>, 'en' | 'zh', string, string][] = [
    [{ sender_name: 'Ann', text: 'hi', unread: 1 }, 'en', 'Ann', 'hi'],
    [{ sender_name: 'Ann', text: 'hi', unread: 3 }, 'en', 'Ann', '[3] hi'],
    [{ sender_name: 'Ann', text: 'hi', unread: 3 }, 'zh', 'Ann', '[3条] hi'],
    [{ sender_name: 'Ann', group_name: 'Team', text: 'hi', unread: 1 }, 'en', 'Team', 'Ann: hi'],
    [{ sender_name: 'Ann', group_name: 'Team', text: 'hi', unread: 2, mention: true }, 'en', 'Team', '[You were mentioned] Ann: [2] hi'],
    [{ sender_name: 'Ann', group_name: 'Team', text: 'hi', mention: true }, 'zh', 'Team', '[有人@我] Ann: hi'],
    // preview "sender": no text
    [{ sender_name: 'Ann', unread: 1 }, 'en', 'Ann', 'New message'],
    [{ sender_name: 'Ann', unread: 4 }, 'en', 'Ann', '4 new messages'],
    [{ sender_name: 'Ann', group_name: 'Team', unread: 1 }, 'zh', 'Team', 'Ann: 新消息'],
    // preview "none": nothing but the fact
    [{ unread: 1 }, 'en', 'Chinwag', 'New message'],
    [{ unread: 5 }, 'zh', 'Chinwag', '5 条新消息'],
    [{ mention: true }, 'en', 'Chinwag', '[You were mentioned] New message'],
  ]
  it.each(table)('%o in %s shows %s: %s', (fields, lang, title, body) => {
    const a = show({ ...base, ...fields }, lang)
    expect(a.title).toBe(title)
    expect(a.options.body).toBe(body)
  })

  it('is one notification per conversation that rings again and opens the chat', () => {
    const a = show({ ...base, text: 'x', unread: 1, total_unread: 12 })
    expect(a.options.tag).toBe('conv:d:3:7')
    expect(a.options.renotify).toBe(true)
    expect(a.options.requireInteraction).toBe(false)
    expect(a.options.data).toEqual({ url: '/chat/d:3:7' })
    expect(a.badge).toBe(12)
  })

  it('sets no badge when the payload has no total', () => {
    expect(show({ ...base }).badge).toBeNull()
    expect(show({ ...base, total_unread: 0 }).badge).toBe(0)
  })
})

describe('call pushes', () => {
  it('ring until handled, titled with the caller, and open the chat', () => {
    const a = show({ type: 'call', call: 'c9', conv: 'g:5', media: 'video', caller_name: 'Ann' })
    expect(a.title).toBe('Ann')
    expect(a.options.body).toBe('Incoming video call')
    expect(a.options.tag).toBe('call:c9')
    expect(a.options.requireInteraction).toBe(true)
    expect(a.options.data.url).toBe('/chat/g:5')
  })

  it('say only that someone calls when the preview is off', () => {
    const a = show({ type: 'call', call: 'c9', conv: 'd:1:2', media: 'audio' }, 'zh')
    expect(a.title).toBe('Chinwag')
    expect(a.options.body).toBe('语音通话邀请')
  })

  it('close the call notification when the call ends unanswered', () => {
    expect(pushAction({ type: 'call_end', call: 'c9', conv: 'g:5' }, 'en')).toEqual({ kind: 'close', tag: 'call:c9' })
    expect(pushAction({ type: 'recall', conv: 'g:5', seq: 3 }, 'en')).toEqual({ kind: 'close', tag: 'conv:g:5' })
  })
})

describe('contact request pushes', () => {
  it('name the sender when allowed and open the contacts', () => {
    const a = show({ type: 'contact_request', user: 7, from_name: 'Ann' })
    expect(a.title).toBe('Ann')
    expect(a.options.body).toBe('wants to add you as a contact')
    expect(a.options.tag).toBe('request:7')
    expect(a.options.data.url).toBe('/contacts')
    expect(show({ type: 'contact_request', user: 7 }, 'zh').options.body).toBe('新的好友请求')
  })
})

describe('payloads the worker does not know', () => {
  it.each([null, 'text', 42, {}, { type: 'future' }, { type: 'message' }, { type: 'call', conv: 'd:1:2' }, { type: 'call_end' }])(
    '%o is ignored',
    (p) => expect(pushAction(p, 'en')).toBeNull(),
  )
})

describe('languages and paths', () => {
  it('picks Chinese for every zh locale and English otherwise', () => {
    expect(['zh-CN', 'zh-TW', 'zh', 'ZH-hans'].map(pushLang)).toEqual(['zh', 'zh', 'zh', 'zh'])
    expect(['en-US', 'de', '', undefined, null].map(pushLang)).toEqual(['en', 'en', 'en', 'en', 'en'])
  })

  it('keeps the colons of a conversation id and escapes the rest', () => {
    expect(chatPath('d:3:7')).toBe('/chat/d:3:7')
    expect(chatPath('g:5/x')).toBe('/chat/g:5%2Fx')
  })

  it('opens only paths of this app', () => {
    expect(clickPath({ url: '/chat/d:3:7' })).toBe('/chat/d:3:7')
    expect(clickPath({ url: 'https://evil.example/' })).toBe('/')
    expect(clickPath({ url: '//evil.example/' })).toBe('/')
    expect(clickPath(null)).toBe('/')
  })
})

describe('the window a click brings forward', () => {
  const o = 'https://chat.example'
  const w = (url: string, focused = false, visibilityState = 'hidden') => ({ url, focused, visibilityState })
  it('is the focused one, else a visible one, else any of ours, else none', () => {
    const a = w(`${o}/`),
      b = w(`${o}/chat/d:1:2`, false, 'visible'),
      c = w(`${o}/contacts`, true, 'visible'),
      x = w('https://other.example/', true, 'visible')
    expect(pickWindow([a, b, c, x], o)).toBe(c)
    expect(pickWindow([a, b, x], o)).toBe(b)
    expect(pickWindow([x, a], o)).toBe(a)
    expect(pickWindow([x], o)).toBeNull()
    expect(pickWindow([], o)).toBeNull()
  })
})

describe('the script pasted into sw.js', () => {
  it('runs as a classic script once its types and exports are gone', async () => {
    const file = join(__dirname, '../sw/push-logic.ts')
    const { code } = await transformWithOxc(readFileSync(file, 'utf8'), file, { lang: 'ts' })
    expect(code).not.toMatch(/^\s*import\b/m)
    const script = code.replace(/^export\s+/gm, '')
    const fns = new Function(`${script}; return { pushAction, pushLang, clickPath, pickWindow, OPEN_MESSAGE }`)()
    expect(fns.pushAction({ type: 'call_end', call: 'c1', conv: 'd:1:2' }, 'en')).toEqual({ kind: 'close', tag: 'call:c1' })
    expect(fns.OPEN_MESSAGE).toBe('chinwag:open')
  })
})
