// Web Push on the client: the push store against a fake browser (service worker registration,
// permission, storage) and a fake server, the helpers of lib/push.ts, and the unread count in the
// title and the app badge (lib/unreadBadge.ts).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { usePush, type PushEnv, type RegistrationLike, type SubscriptionLike } from '@/stores/push'
import { isClock, parsePushSettings, pushSupported, settingsToSave, vapidKeyBytes } from '@/lib/push'
import { setAppBadge, unreadTitle } from '@/lib/unreadBadge'
import { pageAlert } from '@/composables/notifier'
import { MemoryStorage } from './fakes'

const KEY = 'BAEC' // base64url of the bytes 04 01 02
const json = (status: number, body?: unknown) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

interface Call {
  method: string
  path: string
  body: unknown
}

/** A server answering the push routes; `routes` overrides an answer by "METHOD /path". */
function fakeServer(routes: Record<string, () => Response> = {}) {
  const calls: Call[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET'
      const path = new URL(input, 'http://test').pathname
      calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined })
      const over = routes[`${method} ${path}`]
      if (over) return over()
      if (path === '/api/push/vapid') return json(200, { public_key: KEY })
      if (path === '/api/push/subscriptions' && method === 'POST') return json(201, { endpoint: 'https://push.example/1' })
      if (path === '/api/push/subscriptions' && method === 'DELETE') return json(204)
      if (path === '/api/push/settings' && method === 'GET') return json(200, { preview: 'sender', dnd: null })
      if (path === '/api/push/settings' && method === 'PUT') return json(200, JSON.parse(String(init.body)))
      return json(404, { error: { code: 'not_found', message: 'No.' } })
    }),
  )
  return calls
}

class FakeSub implements SubscriptionLike {
  unsubscribed = false
  constructor(
    readonly endpoint: string,
    private readonly log: string[],
  ) {}
  toJSON() {
    return { endpoint: this.endpoint, expirationTime: null, keys: { p256dh: 'pk', auth: 'au' } }
  }
  async unsubscribe() {
    this.unsubscribed = true
    this.log.push(`unsubscribe ${this.endpoint}`)
    return true
  }
}

/** A browser whose service worker is ready; `existing` is a subscription it already has. */
function fakeBrowser(opts: { supported?: boolean; permission?: NotificationPermission; answer?: NotificationPermission; existing?: string } = {}) {
  const log: string[] = []
  const storage = new MemoryStorage()
  let perm = opts.permission ?? 'default'
  let current: FakeSub | null = opts.existing ? new FakeSub(opts.existing, log) : null
  const subscribeArgs: { userVisibleOnly: boolean; applicationServerKey: Uint8Array }[] = []
  const notifications = [{ tag: 'conv:d:3:7' }, { tag: 'conv:g:5' }].map((n) => ({
    ...n,
    close: () => log.push(`close ${n.tag}`),
  }))
  const reg: RegistrationLike & { getNotifications(o: { tag: string }): Promise<typeof notifications> } = {
    getNotifications: async ({ tag }) => notifications.filter((n) => n.tag === tag),
    pushManager: {
      getSubscription: async () => (current && !current.unsubscribed ? current : null),
      subscribe: async (o) => {
        subscribeArgs.push(o)
        log.push('subscribe')
        current = new FakeSub('https://push.example/1', log)
        return current
      },
    },
  }
  const messages = new EventTarget()
  const env: PushEnv = {
    supported: opts.supported ?? true,
    registration: async () => reg,
    permission: () => perm,
    requestPermission: async () => {
      log.push('ask')
      perm = opts.answer ?? 'granted'
      return perm
    },
    storage,
    messages,
  }
  return { env, log, storage, subscribeArgs, messages, current: () => current }
}

const opened: string[] = []
const open = (url: string) => opened.push(url)

beforeEach(() => {
  setActivePinia(createPinia())
  opened.length = 0
})
afterEach(() => {
  vi.unstubAllGlobals()
})

describe('push store: what the device can do', () => {
  it('does nothing where the browser cannot push', async () => {
    const calls = fakeServer()
    const b = fakeBrowser({ supported: false })
    const push = usePush()
    await push.start(7, open, b.env)
    expect(push.supported).toBe(false)
    expect(push.usable).toBe(false)
    expect(calls).toEqual([])
  })

  it('hides push on a server without it (404 on the key)', async () => {
    fakeServer({ 'GET /api/push/vapid': () => json(404, { error: { code: 'not_found', message: 'No route.' } }) })
    const push = usePush()
    await push.start(7, open, fakeBrowser().env)
    expect(push.available).toBe(false)
    expect(push.usable).toBe(false)
  })

  it('offers push only after a sent message, and not again once dismissed', async () => {
    fakeServer()
    const b = fakeBrowser()
    const push = usePush()
    await push.start(7, open, b.env)
    expect(push.available).toBe(true)
    expect(push.offer).toBe(false)
    push.noteSent()
    expect(push.offer).toBe(true)
    push.dismissPrompt()
    expect(push.offer).toBe(false)
    // A later visit in the same browser remembers it.
    setActivePinia(createPinia())
    const again = usePush()
    await again.start(7, open, b.env)
    again.noteSent()
    expect(again.offer).toBe(false)
  })
})

describe('push store: the subscription', () => {
  it('turns on: asks permission, subscribes with the server key, registers it', async () => {
    const calls = fakeServer()
    const b = fakeBrowser()
    const push = usePush()
    await push.start(7, open, b.env)
    expect(await push.enable()).toBe(true)
    expect(b.log).toEqual(['ask', 'subscribe'])
    expect(b.subscribeArgs[0]!.userVisibleOnly).toBe(true)
    expect([...b.subscribeArgs[0]!.applicationServerKey]).toEqual([4, 1, 2])
    expect(calls.filter((c) => c.method === 'POST')).toEqual([
      { method: 'POST', path: '/api/push/subscriptions', body: { endpoint: 'https://push.example/1', expirationTime: null, keys: { p256dh: 'pk', auth: 'au' } } },
    ])
    expect(push.subscribed).toBe(true)
    expect(push.offer).toBe(false)
  })

  it('stays off when the permission is refused', async () => {
    const calls = fakeServer()
    const b = fakeBrowser({ answer: 'denied' })
    const push = usePush()
    await push.start(7, open, b.env)
    expect(await push.enable()).toBe(false)
    expect(push.error).toBe('denied')
    expect(push.permission).toBe('denied')
    expect(b.log).toEqual(['ask'])
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
  })

  it('removes the browser subscription the server refuses, and says why', async () => {
    fakeServer({ 'POST /api/push/subscriptions': () => json(400, { error: { code: 'endpoint_refused', message: 'Not public.' } }) })
    const b = fakeBrowser({ permission: 'granted' })
    const push = usePush()
    await push.start(7, open, b.env)
    expect(await push.enable()).toBe(false)
    expect(push.error).toBe('endpoint_refused')
    expect(push.subscribed).toBe(false)
    expect(b.current()?.unsubscribed).toBe(true)
  })

  it('treats a 404 on registering as a server without push', async () => {
    fakeServer({ 'POST /api/push/subscriptions': () => json(404, { error: { code: 'not_found', message: 'No route.' } }) })
    const b = fakeBrowser({ permission: 'granted' })
    const push = usePush()
    await push.start(7, open, b.env)
    await push.enable()
    expect(push.available).toBe(false)
    expect(push.usable).toBe(false)
    expect(b.current()?.unsubscribed).toBe(true)
  })

  it('registers the subscription again on every start (the server may have dropped it)', async () => {
    const calls = fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    await usePush().start(7, open, b.env)
    await usePush().enable()
    setActivePinia(createPinia())
    calls.length = 0
    const push = usePush()
    await push.start(7, open, b.env)
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.path)).toEqual(['/api/push/subscriptions'])
    expect(push.subscribed).toBe(true)
    expect(b.log.filter((l) => l === 'subscribe')).toHaveLength(1)
  })

  it('renews a subscription the browser dropped while push was on', async () => {
    fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    await usePush().start(7, open, b.env)
    await usePush().enable()
    await b.current()!.unsubscribe()
    setActivePinia(createPinia())
    const push = usePush()
    await push.start(7, open, b.env)
    expect(b.log.filter((l) => l === 'subscribe')).toHaveLength(2)
    expect(push.subscribed).toBe(true)
  })

  it('removes a subscription another account left in this browser instead of reusing it', async () => {
    const calls = fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    await usePush().start(7, open, b.env)
    await usePush().enable()
    setActivePinia(createPinia())
    calls.length = 0
    const push = usePush()
    await push.start(8, open, b.env)
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    expect(b.current()?.unsubscribed).toBe(true)
    expect(push.subscribed).toBe(false)
  })

  it('turns off: the server forgets it first, then the browser', async () => {
    const calls = fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    const push = usePush()
    await push.start(7, open, b.env)
    await push.enable()
    b.log.length = 0
    await push.disable()
    expect(calls.at(-1)).toEqual({ method: 'DELETE', path: '/api/push/subscriptions', body: { endpoint: 'https://push.example/1' } })
    expect(b.log).toEqual(['unsubscribe https://push.example/1'])
    expect(push.subscribed).toBe(false)
  })

  it('forgets the subscription on log-out', async () => {
    fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    const push = usePush()
    await push.start(7, open, b.env)
    await push.enable()
    push.stop()
    await vi.waitFor(() => expect(b.current()?.unsubscribed).toBe(true))
    expect(push.subscribed).toBe(false)
    expect(b.storage.getItem('chinwag:push')).toBeNull()
  })
})

describe('push store: settings and clicks', () => {
  it('loads the settings and saves them whole, with the device offset', async () => {
    const calls = fakeServer()
    const push = usePush()
    await push.start(7, open, fakeBrowser().env)
    await vi.waitFor(() => expect(push.settingsLoaded).toBe(true))
    expect(push.settings).toEqual({ preview: 'sender', dnd: null })
    await push.saveSettings({ preview: 'none', dnd: { start: '22:00', end: '07:00', utc_offset_minutes: 0 } })
    const put = calls.find((c) => c.method === 'PUT')!
    expect(put.path).toBe('/api/push/settings')
    expect(put.body).toEqual({ preview: 'none', dnd: { start: '22:00', end: '07:00', utc_offset_minutes: -new Date().getTimezoneOffset() || 0 } })
    expect(push.settings.preview).toBe('none')
  })

  it('keeps the old settings when saving fails', async () => {
    fakeServer({ 'PUT /api/push/settings': () => json(400, { error: { code: 'invalid', message: 'Bad time.' } }) })
    const push = usePush()
    await push.start(7, open, fakeBrowser().env)
    await vi.waitFor(() => expect(push.settingsLoaded).toBe(true))
    await expect(push.saveSettings({ preview: 'full', dnd: null })).rejects.toThrow('Bad time.')
    expect(push.settings.preview).toBe('sender')
  })

  it('follows a notification click the service worker forwards', async () => {
    fakeServer()
    const b = fakeBrowser()
    const push = usePush()
    await push.start(7, open, b.env)
    b.messages.dispatchEvent(new MessageEvent('message', { data: { type: 'chinwag:open', url: '/chat/d:3:7' } }))
    b.messages.dispatchEvent(new MessageEvent('message', { data: { type: 'chinwag:open', url: 'https://evil.example/' } }))
    b.messages.dispatchEvent(new MessageEvent('message', { data: { type: 'other', url: '/x' } }))
    expect(opened).toEqual(['/chat/d:3:7'])
    push.stop()
    b.messages.dispatchEvent(new MessageEvent('message', { data: { type: 'chinwag:open', url: '/contacts' } }))
    expect(opened).toEqual(['/chat/d:3:7'])
  })
})

describe('no double notification', () => {
  const base = { hidden: true, pushSubscribed: false, sound: true, inActiveChat: false, notifications: true, permitted: true }
  it.each([
    ['a hidden tab without push chimes and notifies', base, { chime: true, notify: true }],
    ['a hidden tab with push leaves it to the push', { ...base, pushSubscribed: true }, { chime: false, notify: false }],
    ['a visible tab with push chimes for another chat', { ...base, hidden: false, pushSubscribed: true }, { chime: true, notify: false }],
    ['a visible tab is quiet in the open chat', { ...base, hidden: false, inActiveChat: true }, { chime: false, notify: false }],
    ['no permission, no notification', { ...base, permitted: false }, { chime: true, notify: false }],
  ])('%s', (_name, input, out) => expect(pageAlert(input)).toEqual(out))

  it('closes the pushed notification of the chat on screen', async () => {
    fakeServer()
    const b = fakeBrowser({ permission: 'granted' })
    const push = usePush()
    await push.start(7, open, b.env)
    await push.clearChat('d:3:7') // not subscribed: nothing was pushed here
    expect(b.log).toEqual([])
    await push.enable()
    b.log.length = 0
    await push.clearChat('d:3:7')
    expect(b.log).toEqual(['close conv:d:3:7'])
  })
})

describe('lib/push', () => {
  it('decodes the base64url key', () => {
    expect([...vapidKeyBytes('BAEC')]).toEqual([4, 1, 2])
    expect([...vapidKeyBytes('-_8')]).toEqual([251, 255])
  })

  it('needs a secure page with a service worker, the Push API and notifications', () => {
    const ok = { isSecureContext: true, navigator: { serviceWorker: {} }, PushManager: {}, Notification: {} }
    expect(pushSupported(ok)).toBe(true)
    expect(pushSupported({ ...ok, isSecureContext: false })).toBe(false)
    expect(pushSupported({ ...ok, navigator: {} })).toBe(false)
    const { PushManager: _, ...noPush } = ok // Safari on iOS outside the home screen
    expect(pushSupported(noPush)).toBe(false)
    expect(pushSupported(undefined)).toBe(false)
  })

  it('stamps the quiet hours with minutes east of UTC', () => {
    const d = new Date()
    vi.spyOn(d, 'getTimezoneOffset').mockReturnValue(-480) // UTC+8
    expect(settingsToSave({ preview: 'full', dnd: { start: '22:00', end: '07:00', utc_offset_minutes: 0 } }, d)).toEqual({
      preview: 'full',
      dnd: { start: '22:00', end: '07:00', utc_offset_minutes: 480 },
    })
    expect(settingsToSave({ preview: 'sender', dnd: null }, d)).toEqual({ preview: 'sender', dnd: null })
  })

  it('reads only valid settings', () => {
    expect(parsePushSettings(null)).toEqual({ preview: 'full', dnd: null })
    expect(parsePushSettings({ preview: 'odd', dnd: { start: '25:00', end: '07:00' } })).toEqual({ preview: 'full', dnd: null })
    expect(isClock('07:05')).toBe(true)
    expect(isClock('7:05')).toBe(false)
  })
})

describe('the unread count in the title and the app badge', () => {
  const withCount = (n: string) => `(${n}) Chinwag`
  it.each([
    [0, 'Chinwag'],
    [3, '(3) Chinwag'],
    [99, '(99) Chinwag'],
    [100, '(99+) Chinwag'],
  ])('%i unread: %s', (n, title) => expect(unreadTitle(n, 'Chinwag', withCount)).toBe(title))

  it('sets and clears the badge where the browser has one', async () => {
    const calls: string[] = []
    const nav = {
      setAppBadge: async (n?: number) => void calls.push(`set ${n}`),
      clearAppBadge: async () => void calls.push('clear'),
    }
    setAppBadge(nav, 12)
    setAppBadge(nav, 0)
    setAppBadge({}, 5)
    setAppBadge(undefined, 5)
    setAppBadge({ setAppBadge: () => Promise.reject(new Error('not installed')) }, 1)
    expect(calls).toEqual(['set 12', 'clear'])
  })
})
