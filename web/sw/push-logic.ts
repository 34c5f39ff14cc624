// What the service worker shows for a Web Push payload, and where a click on a notification goes.
// Pure: no imports, no globals, no Vue, so vitest tests it as is (tests/push-logic.test.ts). The
// build (vite.config.ts, `serviceWorker()`) strips the types and the `export` keywords and pastes
// this file into sw.js, which only wires these functions to the worker's events.
//
// The payloads are the server's (docs/push.md): a field is absent when the user's preview setting
// leaves it out, so every text has a fallback in the worker's own language.

export type PushPayload =
  | {
      type: 'message'
      conv: string
      seq: number
      sender_name?: string
      group_name?: string
      text?: string
      mention?: boolean
      unread?: number
      total_unread?: number
    }
  | { type: 'call'; call: string; conv: string; media: 'audio' | 'video'; caller_name?: string }
  | { type: 'call_end'; call: string; conv: string }
  | { type: 'contact_request'; user: number; from_name?: string }
  | { type: 'recall'; conv: string; seq: number }

/** What the click handler needs; kept in `Notification.data`. */
export interface NotificationData {
  /** A path of the app (`/chat/d:3:7`, `/contacts`). */
  url: string
}

export interface NotificationSpec {
  body: string
  tag: string
  renotify: boolean
  requireInteraction: boolean
  icon: string
  data: NotificationData
}

/** Show (or replace, by tag) a notification; set the app badge when `badge` is a number. */
export interface ShowAction {
  kind: 'show'
  title: string
  options: NotificationSpec
  badge: number | null
}

/** Close the notifications with this tag (a call that ended unanswered). */
export interface CloseAction {
  kind: 'close'
  tag: string
}

export type PushAction = ShowAction | CloseAction

export type PushLang = 'en' | 'zh'

const TEXTS = {
  en: {
    app: 'Chinwag',
    newMessage: 'New message',
    newMessages: (n: number) => `${n} new messages`,
    count: (n: number) => `[${n}] `,
    mention: '[You were mentioned] ',
    audioCall: 'Incoming voice call',
    videoCall: 'Incoming video call',
    request: 'New contact request',
    requestFrom: 'wants to add you as a contact',
  },
  zh: {
    app: 'Chinwag',
    newMessage: '新消息',
    newMessages: (n: number) => `${n} 条新消息`,
    count: (n: number) => `[${n}条] `,
    mention: '[有人@我] ',
    audioCall: '语音通话邀请',
    videoCall: '视频通话邀请',
    request: '新的好友请求',
    requestFrom: '请求添加你为联系人',
  },
}

/** The worker's language from `navigator.language` (`zh-CN`, `zh-TW`, `en-US`...). */
export function pushLang(language: string | undefined | null): PushLang {
  return typeof language === 'string' && language.toLowerCase().startsWith('zh') ? 'zh' : 'en'
}

/** An app path for a conversation; its id keeps its colons (`/chat/d:3:7`). */
export function chatPath(conv: string): string {
  return `/chat/${encodeURIComponent(conv).replace(/%3A/gi, ':')}`
}

const ICON = '/icons/icon-192.png'

function spec(tag: string, body: string, url: string, requireInteraction = false): NotificationSpec {
  return { body, tag, renotify: true, requireInteraction, icon: ICON, data: { url } }
}

function present(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0
}

/**
 * The notification a payload asks for, or null for a payload this worker does not know (a newer
 * server's). One notification per conversation (tag `conv:<id>`) is replaced with each message
 * and rings again (`renotify`); a call's (tag `call:<id>`) stays until answered or closed.
 */
export function pushAction(payload: unknown, lang: PushLang): PushAction | null {
  if (!payload || typeof payload !== 'object') return null
  const p = payload as PushPayload
  const t = TEXTS[lang]
  switch (p.type) {
    case 'message': {
      if (!present(p.conv)) return null
      const n = typeof p.unread === 'number' && p.unread > 1 ? p.unread : 1
      const mention = p.mention === true ? t.mention : ''
      // Without the text the count is the text itself ("3 new messages"), not a prefix.
      let line = present(p.text) ? (n > 1 ? t.count(n) : '') + p.text : n > 1 ? t.newMessages(n) : t.newMessage
      if (present(p.group_name) && present(p.sender_name)) line = `${p.sender_name}: ${line}`
      const title = present(p.group_name) ? p.group_name : present(p.sender_name) ? p.sender_name : t.app
      const badge = typeof p.total_unread === 'number' && p.total_unread >= 0 ? p.total_unread : null
      return { kind: 'show', title, options: spec(`conv:${p.conv}`, mention + line, chatPath(p.conv)), badge }
    }
    case 'call': {
      if (!present(p.call) || !present(p.conv)) return null
      const body = p.media === 'video' ? t.videoCall : t.audioCall
      const title = present(p.caller_name) ? p.caller_name : t.app
      // The app shows the incoming call once its socket reconnects, on the chat's page.
      return { kind: 'show', title, options: spec(`call:${p.call}`, body, chatPath(p.conv), true), badge: null }
    }
    case 'call_end':
      return present(p.call) ? { kind: 'close', tag: `call:${p.call}` } : null
    // The chat's notification may show the recalled text: it goes.
    case 'recall':
      return present(p.conv) ? { kind: 'close', tag: `conv:${p.conv}` } : null
    case 'contact_request': {
      if (typeof p.user !== 'number') return null
      const title = present(p.from_name) ? p.from_name : t.app
      const body = present(p.from_name) ? t.requestFrom : t.request
      return { kind: 'show', title, options: spec(`request:${p.user}`, body, '/contacts'), badge: null }
    }
    default:
      return null
  }
}

/** The path a click opens: the notification's own, or the app's start for anything else. */
export function clickPath(data: unknown): string {
  const url = data && typeof data === 'object' ? (data as Partial<NotificationData>).url : undefined
  return typeof url === 'string' && url.startsWith('/') && !url.startsWith('//') ? url : '/'
}

/** The part of a `WindowClient` that `pickWindow` looks at. */
export interface WindowLike {
  url: string
  focused: boolean
  visibilityState: string
}

/**
 * Which open Chinwag window a click should bring forward: the focused one, else a visible one,
 * else any of this origin; null when none is open (the worker opens one).
 */
export function pickWindow<W extends WindowLike>(windows: readonly W[], origin: string): W | null {
  const ours = windows.filter((w) => {
    try {
      return new URL(w.url).origin === origin
    } catch {
      return false
    }
  })
  return ours.find((w) => w.focused) ?? ours.find((w) => w.visibilityState === 'visible') ?? ours[0] ?? null
}

/** The message a worker posts to a window it brings forward, so the app's router goes there. */
export const OPEN_MESSAGE = 'chinwag:open'
