import { describe, expect, it } from 'vitest'
import en from '@/i18n/en'
import zh from '@/i18n/zh-CN'
import { detectLocale } from '@/i18n'
import { contentFromInput, isLoneEmoji, previewOf } from '@/lib/content'
import { directConvId, parseServerFrame, peerIdOf } from '@/protocol/types'
import { errorText } from '@/lib/errors'
import { ApiError } from '@/protocol/api'

function keys(o: object, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
}

describe('i18n', () => {
  it('has the same keys in English and Chinese', () => {
    expect(keys(zh).sort()).toEqual(keys(en).sort())
  })
  it('picks the language from the browser', () => {
    expect(detectLocale(['zh-TW'])).toBe('zh-CN')
    expect(detectLocale(['zh-CN', 'en'])).toBe('zh-CN')
    expect(detectLocale(['fr-FR', 'en-GB'])).toBe('en')
    expect(detectLocale(['de'])).toBe('en')
  })
})

describe('content helpers', () => {
  it('detects a lone emoji', () => {
    expect(isLoneEmoji('😀')).toBe(true)
    expect(isLoneEmoji(' ❤️ ')).toBe(true)
    expect(isLoneEmoji('🇨🇳')).toBe(true)
    expect(isLoneEmoji('😀😀')).toBe(false)
    expect(isLoneEmoji('a')).toBe(false)
    expect(isLoneEmoji('1')).toBe(false)
    expect(isLoneEmoji('')).toBe(false)
  })
  it('keeps inner newlines and drops blank input', () => {
    expect(contentFromInput('a\nb')).toEqual({ kind: 'text', text: 'a\nb' })
    expect(contentFromInput('  \n ')).toBeNull()
  })
  it('renders system events and recalls with names', () => {
    const t = (k: string, n?: Record<string, unknown>) => (n ? `${k}:${JSON.stringify(n)}` : k)
    const nameOf = (id: number) => (id === 3 ? 'Ann' : 'Bob')
    expect(previewOf({ kind: 'system', event: { type: 'joined', user: 7, by: 3 } }, t, nameOf)).toBe('system.joined:{"user":"Bob","by":"Ann"}')
    expect(previewOf({ kind: 'system', event: { type: 'joined', user: 7, by: null } }, t, nameOf)).toBe('system.joined_self:{"user":"Bob"}')
    expect(previewOf({ kind: 'recalled' }, t, nameOf, 7)).toBe('content.recalledBy:{"user":"Bob"}')
  })
  it('previews content as one line', () => {
    const t = (k: string) => k
    expect(previewOf({ kind: 'text', text: 'a\n\nb' }, t)).toBe('a b')
    expect(previewOf({ kind: 'file', file_id: 'x', name: 'r.pdf', size: 1, mime: 'application/pdf' }, t)).toBe('content.file r.pdf')
  })
})

describe('protocol helpers', () => {
  it('computes 1:1 conversation ids', () => {
    expect(directConvId(7, 3)).toBe('d:3:7')
    expect(peerIdOf('d:3:7', 3)).toBe(7)
    expect(peerIdOf('d:3:7', 7)).toBe(3)
    expect(peerIdOf('g:12', 3)).toBeNull()
  })
  it('parses the documented frames', () => {
    expect(parseServerFrame('{"type":"synced"}')).toEqual({ type: 'synced' })
    expect(parseServerFrame('{"type":"hello","user":{"id":3,"username":"ann","nickname":"Ann"}}')?.type).toBe('hello')
    expect(parseServerFrame('{"type":"ack","client_id":"c","message":{"conv":"d:3:7","seq":1,"sender":3,"client_id":"c","ts":1,"content":{"kind":"text","text":"hi"}}}')?.type).toBe('ack')
    expect(parseServerFrame('{"type":"ack"}')).toBeNull()
  })
})

describe('error messages', () => {
  const t = (k: string, n?: Record<string, unknown>) => (n ? `${k}:${JSON.stringify(n)}` : k)
  it('maps server codes', () => {
    expect(errorText(t, new ApiError(409, 'username_taken', 'x'))).toBe('errors.username_taken')
    expect(errorText(t, new ApiError(401, 'bad_credentials', 'x'))).toBe('errors.bad_credentials')
    expect(errorText(t, new ApiError(429, 'rate_limited', 'x', 12))).toBe('errors.rate_limited:{"n":12}')
    expect(errorText(t, new ApiError(0, 'network', 'x'))).toBe('errors.network')
    expect(errorText(t, new ApiError(400, 'bad_username', 'Usernames are 3 to 32 characters.'))).toBe('Usernames are 3 to 32 characters.')
    expect(errorText(t, new ApiError(500, 'internal', 'x'))).toBe('errors.generic:{"code":"internal"}')
  })
  it('names the LDAP directory answers rather than a generic busy or forbidden', () => {
    expect(errorText(t, new ApiError(503, 'directory_unavailable', 'x'))).toBe('errors.directory_unavailable')
    expect(errorText(t, new ApiError(409, 'local_account_exists', 'x'))).toBe('errors.local_account_exists')
    expect(errorText(t, new ApiError(403, 'password_in_directory', 'x'))).toBe('errors.password_in_directory')
    expect(errorText(t, new ApiError(403, 'directory_account_unusable', 'x'))).toBe('errors.directory_account_unusable')
  })
})

describe('translations', () => {
  it('compile in both languages (no stray @, {, | in the messages)', async () => {
    const { i18n, setLocale } = await import('@/i18n')
    for (const l of ['en', 'zh-CN'] as const) {
      setLocale(l)
      const bad: string[] = []
      for (const key of keys(l === 'en' ? en : zh)) {
        try {
          i18n.global.t(key, { n: 1, name: 'x', user: 'x', by: 'x', time: 'x', q: 'x', code: 'x', emoji: 'x', names: 'x', duration: 'x', reason: 'x' })
        } catch {
          bad.push(key)
        }
      }
      expect(bad).toEqual([])
    }
    setLocale('en')
  })
})
