import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { nextTick } from 'vue'
import { useSettings } from '@/stores/settings'
import { useSession } from '@/stores/session'
import { i18n } from '@/i18n'
import type { User } from '@/protocol/types'

const ann: User = { id: 3, username: 'ann', nickname: 'Ann', signature: '', gender: 'unknown', birthday: null, is_admin: false, created_at: 0 }

function respond(status: number, body?: unknown, headers: Record<string, string> = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

beforeEach(() => {
  setActivePinia(createPinia())
  localStorage.clear()
})
afterEach(() => vi.unstubAllGlobals())

describe('settings store', () => {
  it('follows the browser language until the user picks one, then persists it', async () => {
    vi.stubGlobal('navigator', { ...navigator, languages: ['zh-CN'], language: 'zh-CN' })
    const s = useSettings()
    expect(s.locale).toBe('zh-CN')
    expect(i18n.global.locale.value).toBe('zh-CN')
    await nextTick()
    expect(JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}').locale).toBeUndefined()
    s.chooseLocale('en')
    await nextTick()
    expect(i18n.global.locale.value).toBe('en')
    expect(document.documentElement.lang).toBe('en')
    expect(JSON.parse(localStorage.getItem('chinwag:settings')!).locale).toBe('en')
    setActivePinia(createPinia())
    expect(useSettings().locale).toBe('en')
  })

  it('applies and persists the theme and sound choices', async () => {
    const s = useSettings()
    s.theme = 'dark'
    s.sound = false
    await nextTick()
    expect(document.documentElement.dataset.theme).toBe('dark')
    s.theme = 'light'
    await nextTick()
    expect(document.documentElement.dataset.theme).toBe('light')
    const saved = JSON.parse(localStorage.getItem('chinwag:settings')!)
    expect(saved).toMatchObject({ theme: 'light', sound: false, notifications: false })
  })
})

describe('session store', () => {
  it('knows nobody after a 401 from /api/me', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => respond(401, { error: { code: 'unauthenticated', message: 'Please log in.' } })))
    const s = useSession()
    expect(await s.fetchMe()).toBeNull()
    expect(s.checked).toBe(true)
    expect(s.unreachable).toBe(false)
  })

  it('keeps the last known user when the server cannot be reached (offline start)', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => respond(200, { user: ann, token: 't' })))
    const s = useSession()
    await s.login('ann', 'password1')
    expect(s.me?.id).toBe(3)
    setActivePinia(createPinia())
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    const again = useSession()
    expect((await again.fetchMe())?.id).toBe(3)
    expect(again.unreachable).toBe(true)
  })

  it('surfaces the server error code and Retry-After', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => respond(429, { error: { code: 'rate_limited', message: 'Slow down.' } }, { 'Retry-After': '17' })),
    )
    const s = useSession()
    await expect(s.login('ann', 'x')).rejects.toMatchObject({ status: 429, code: 'rate_limited', retryAfter: 17 })
    expect(s.me).toBeNull()
  })

  it('forgets the user on log-out even when the server is gone', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => respond(200, { user: ann, token: 't' })))
    const s = useSession()
    await s.login('ann', 'password1')
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('offline'))))
    await s.logout()
    expect(s.me).toBeNull()
    expect(localStorage.getItem('chinwag:me')).toBeNull()
  })
})
