// Web Push on this device: whether it can be had (browser and server), the device's subscription
// (`POST`/`DELETE /api/push/subscriptions`), the user's push settings (preview, quiet hours), the
// opt-in prompt, and the clicks the service worker forwards to the app (sw/sw.js).
//
// The subscription belongs to the session on the server and ends with it, so it is renewed on
// every start (the server may have dropped it: a restore, a 410 from the push service) and
// forgotten here when the user logs out. Which user turned push on for this browser is kept in
// localStorage, so a subscription left behind by another account is removed, not reused.
//
// The browser's parts (the service worker registration, the notification permission, storage)
// come in through `PushEnv`, so the tests drive it without a browser.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError } from '@/protocol/api'
import type { PushSettings, PushSubscriptionBody, UserId } from '@/protocol/types'
import { DEFAULT_PUSH_SETTINGS, parsePushSettings, pushSupported, settingsToSave, vapidKeyBytes } from '@/lib/push'
import type { KeyValueStorage } from '@/protocol/client'
import { OPEN_MESSAGE } from '../../sw/push-logic'

export interface SubscriptionLike {
  endpoint: string
  toJSON(): PushSubscriptionBody
  unsubscribe(): Promise<boolean>
}

export interface RegistrationLike {
  pushManager: {
    getSubscription(): Promise<SubscriptionLike | null>
    subscribe(o: { userVisibleOnly: boolean; applicationServerKey: Uint8Array<ArrayBuffer> }): Promise<SubscriptionLike>
  }
}

export interface PushEnv {
  /** Whether this browser, on this page, can receive pushes at all. */
  supported: boolean
  /** The service worker's registration once it is active; null when there is none. */
  registration(): Promise<RegistrationLike | null>
  permission(): NotificationPermission
  requestPermission(): Promise<NotificationPermission>
  storage: KeyValueStorage
  /** Where the service worker's messages arrive (`navigator.serviceWorker`). */
  messages: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> | null
}

export function browserPushEnv(): PushEnv {
  const supported = typeof window !== 'undefined' && pushSupported(window as unknown as Parameters<typeof pushSupported>[0])
  return {
    supported,
    async registration() {
      if (!supported) return null
      // main.ts registers the worker on `load`; `ready` waits for it, but never settles when
      // there is none (a dev server), hence the deadline.
      const ready = navigator.serviceWorker.ready as Promise<unknown> as Promise<RegistrationLike>
      const late = new Promise<null>((r) => setTimeout(() => r(null), 10_000))
      return Promise.race([ready, late])
    },
    permission: () => (supported ? Notification.permission : 'denied'),
    requestPermission: () => (supported ? Notification.requestPermission() : Promise.resolve('denied' as const)),
    storage: localStorage,
    messages: supported ? navigator.serviceWorker : null,
  }
}

/** Which user turned push on in this browser (localStorage). */
const FLAG = 'chinwag:push'
/** The opt-in prompt was dismissed in this browser. */
const PROMPT_DISMISSED = 'chinwag:push-prompt-dismissed'

export const usePush = defineStore('push', () => {
  // Known before `start`, so the page does not offer its own notifications for a moment first.
  const supported = ref(typeof window !== 'undefined' && pushSupported(window as unknown as Parameters<typeof pushSupported>[0]))
  /** Whether the server has Web Push: null until it answered (an old server answers 404). */
  const available = ref<boolean | null>(null)
  /** This device's subscription is registered with the server. */
  const subscribed = ref(false)
  const permission = ref<NotificationPermission>('default')
  const busy = ref(false)
  /** The last failure of turning push on, as an error code (`denied`, `endpoint_refused`...). */
  const error = ref<string | null>(null)
  const settings = ref<PushSettings>({ ...DEFAULT_PUSH_SETTINGS })
  const settingsLoaded = ref(false)
  /** The user sent a message since the app started: the moment to offer push. */
  const sentThisSession = ref(false)
  const promptDismissed = ref(false)

  let env: PushEnv | null = null
  let userId: UserId | null = null
  let vapidKey: string | null = null
  let open: ((url: string) => void) | null = null

  /** The settings screen shows push only where it can work. */
  const usable = computed(() => supported.value && available.value !== false)
  /** The prompt: after a sent message, where push works, is off and was not declined. */
  const offer = computed(
    () =>
      supported.value &&
      available.value === true &&
      !subscribed.value &&
      permission.value !== 'denied' &&
      sentThisSession.value &&
      !promptDismissed.value,
  )

  function onWorkerMessage(e: Event) {
    const data = (e as MessageEvent).data as { type?: unknown; url?: unknown } | null
    if (data?.type === OPEN_MESSAGE && typeof data.url === 'string' && data.url.startsWith('/')) open?.(data.url)
  }

  function readFlag(): UserId | null {
    try {
      const v = JSON.parse(env?.storage.getItem(FLAG) ?? 'null') as { user?: unknown } | null
      return typeof v?.user === 'number' ? v.user : null
    } catch {
      return null
    }
  }

  function writeFlag(user: UserId | null) {
    try {
      if (user === null) env?.storage.removeItem(FLAG)
      else env?.storage.setItem(FLAG, JSON.stringify({ user }))
    } catch {
      // Storage unavailable: the subscription still works for this visit.
    }
  }

  /** 404 from a push route: this server has no Web Push (an older version). */
  function serverLacksPush(e: unknown): boolean {
    return e instanceof ApiError && (e.status === 404 || e.status === 405)
  }

  async function fetchKey(): Promise<string> {
    vapidKey ??= (await api.pushKey()).public_key
    return vapidKey
  }

  /**
   * Starts with a logged-in user: learns whether the server pushes, renews this device's
   * subscription (or removes another account's), loads the settings. `openUrl` is where a click
   * on a notification takes the app when a window is already open.
   */
  async function start(user: UserId, openUrl: (url: string) => void, e: PushEnv = browserPushEnv()) {
    stop({ unsubscribe: false })
    env = e
    userId = user
    open = openUrl
    supported.value = e.supported
    permission.value = e.permission()
    try {
      promptDismissed.value = e.storage.getItem(PROMPT_DISMISSED) === '1'
    } catch {
      promptDismissed.value = false
    }
    e.messages?.addEventListener('message', onWorkerMessage)
    if (!e.supported) return
    try {
      await fetchKey()
      available.value = true
    } catch (err) {
      if (serverLacksPush(err)) available.value = false
      return
    }
    if (userId !== user) return
    void loadSettings()
    const reg = await e.registration()
    if (!reg || userId !== user) {
      if (!reg) supported.value = false
      return
    }
    const sub = await reg.pushManager.getSubscription().catch(() => null)
    const owner = readFlag()
    if (sub && owner === user) {
      await register(sub, true)
    } else if (sub) {
      // Another account's, or one whose log-out did not finish: it must not bring us their pushes.
      await sub.unsubscribe().catch(() => false)
      writeFlag(null)
    } else if (owner === user && permission.value === 'granted') {
      // Turned on here, but the browser dropped the subscription (it may, at any time): renew it.
      await subscribe(reg).catch(() => writeFlag(null))
    } else if (owner !== null) {
      writeFlag(null)
    }
  }

  /**
   * Sends a subscription to the server; on refusal it is removed from the browser too. When a
   * renewal finds no network, the server most likely still has it, so it counts as on.
   */
  async function register(sub: SubscriptionLike, renewal = false): Promise<boolean> {
    try {
      await api.pushSubscribe(sub.toJSON())
      subscribed.value = true
      error.value = null
      writeFlag(userId)
      return true
    } catch (err) {
      subscribed.value = false
      if (serverLacksPush(err)) available.value = false
      if (err instanceof ApiError && err.status !== 0) {
        // Refused (a bad or forbidden endpoint): keep nothing the server does not know.
        error.value = err.code
        await sub.unsubscribe().catch(() => false)
        writeFlag(null)
      } else {
        error.value = 'network'
        subscribed.value = renewal
      }
      return false
    }
  }

  async function subscribe(reg: RegistrationLike): Promise<boolean> {
    const applicationServerKey = vapidKeyBytes(await fetchKey())
    let sub: SubscriptionLike
    try {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey })
    } catch {
      // A subscription made with another key (the server's key changed): replace it once.
      const old = await reg.pushManager.getSubscription().catch(() => null)
      if (!old) throw new Error('subscribe failed')
      await old.unsubscribe().catch(() => false)
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey })
    }
    return register(sub)
  }

  /** The switch in settings, and the prompt's "Turn on". Asks the browser's permission first. */
  async function enable(): Promise<boolean> {
    if (!env || busy.value || !supported.value) return false
    busy.value = true
    error.value = null
    try {
      let p = env.permission()
      if (p === 'default') p = await env.requestPermission()
      permission.value = p
      if (p !== 'granted') {
        error.value = 'denied'
        return false
      }
      const reg = await env.registration()
      if (!reg) {
        error.value = 'no_worker'
        return false
      }
      return await subscribe(reg)
    } catch (err) {
      if (serverLacksPush(err)) available.value = false
      error.value = err instanceof ApiError ? err.code : 'subscribe_failed'
      return false
    } finally {
      busy.value = false
    }
  }

  /** Turns push off on this device: the server forgets the subscription, then the browser. */
  async function disable() {
    if (!env || busy.value) return
    busy.value = true
    error.value = null
    try {
      const reg = await env.registration()
      const sub = reg ? await reg.pushManager.getSubscription().catch(() => null) : null
      if (sub) {
        await api.pushUnsubscribe(sub.endpoint).catch(() => {})
        await sub.unsubscribe().catch(() => false)
      }
    } finally {
      subscribed.value = false
      writeFlag(null)
      busy.value = false
    }
  }

  /**
   * The user is gone (log-out, revoked session). The server ended the subscription with the
   * session; the browser's copy goes too, so no one else's pushes arrive here.
   */
  function stop({ unsubscribe = true } = {}) {
    const e = env
    env?.messages?.removeEventListener('message', onWorkerMessage)
    if (unsubscribe && e && subscribed.value) {
      void e
        .registration()
        .then((reg) => reg?.pushManager.getSubscription())
        .then((sub) => sub?.unsubscribe())
        .catch(() => {})
      writeFlag(null)
    }
    env = null
    userId = null
    open = null
    vapidKey = null
    available.value = null
    subscribed.value = false
    error.value = null
    busy.value = false
    settings.value = { ...DEFAULT_PUSH_SETTINGS }
    settingsLoaded.value = false
    sentThisSession.value = false
  }

  async function loadSettings() {
    try {
      settings.value = parsePushSettings(await api.pushSettings())
      settingsLoaded.value = true
    } catch (err) {
      if (serverLacksPush(err)) available.value = false
    }
  }

  /** Saves the whole settings object (the quiet hours with this device's offset from UTC). */
  async function saveSettings(next: PushSettings) {
    const before = settings.value
    settings.value = settingsToSave(next)
    try {
      settings.value = parsePushSettings(await api.setPushSettings(settings.value))
    } catch (err) {
      settings.value = before
      throw err
    }
  }

  /**
   * Closes the pushed notification of a chat the user is looking at (its messages are read now),
   * as a phone's messenger does.
   */
  async function clearChat(conv: string) {
    if (!env || !subscribed.value) return
    const reg = (await env.registration()) as (RegistrationLike & Partial<Pick<ServiceWorkerRegistration, 'getNotifications'>>) | null
    const list = await reg?.getNotifications?.({ tag: `conv:${conv}` }).catch(() => [])
    for (const n of list ?? []) n.close()
  }

  /** One of my messages was stored: from now on the prompt may show. */
  function noteSent() {
    sentThisSession.value = true
  }

  function dismissPrompt() {
    promptDismissed.value = true
    try {
      env?.storage.setItem(PROMPT_DISMISSED, '1')
    } catch {
      // Dismissed for this visit only.
    }
  }

  return {
    supported,
    available,
    subscribed,
    permission,
    busy,
    error,
    settings,
    settingsLoaded,
    sentThisSession,
    promptDismissed,
    usable,
    offer,
    start,
    stop,
    enable,
    disable,
    loadSettings,
    saveSettings,
    noteSent,
    dismissPrompt,
    clearChat,
  }
})
