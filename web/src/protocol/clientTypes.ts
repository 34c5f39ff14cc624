// The types of the socket client (`client.ts`): its states, outbox entries, events and the
// options through which its clock, storage and WebSocket are injected.

import type {
  CallServerFrame,
  ContactView,
  ConversationSummary,
  ConvId,
  Favorite,
  GroupView,
  HelloUser,
  Message,
  RequestView,
  SendableContent,
  UserId,
} from './types'

export type ConnState = 'connecting' | 'syncing' | 'online' | 'offline' | 'stopped'

export interface OutboxEntry {
  client_id: string
  conv: ConvId
  content: SendableContent
  created_at: number
  status: 'sending' | 'failed'
  error?: { code: string; message: string }
  /** The message this one answers: its seq, and sender and preview to show the quote meanwhile. */
  reply_to?: { seq: number; sender: UserId; preview: string; recalled?: boolean }
  /** Members named with `@` (group chats), and `@all` (owners and admins only). */
  mentions?: UserId[]
  mention_all?: boolean
}

export interface SendOptions {
  replyTo?: OutboxEntry['reply_to']
  mentions?: UserId[]
  mentionAll?: boolean
}

export interface ClientEvents {
  /** A message of one of my conversations; `live` is false while answering a `sync`. */
  message: (m: Message, live: boolean) => void
  /** One of my sends was stored (by an `ack`, or seen coming back with its client_id). */
  ack: (clientId: string, m: Message) => void
  /** A known message was edited, recalled or reacted to: replace it by (conv, seq). */
  update: (m: Message) => void
  outbox: (entries: OutboxEntry[]) => void
  state: (s: ConnState) => void
  hello: (u: HelloUser) => void
  /** The answer to `sync` is complete; `reload` names chats whose history should be fetched anew. */
  synced: (reload: ConvId[]) => void
  /** `user` (me on another device, or the peer of a 1:1 chat) has read `conv` up to `seq`. */
  read: (conv: ConvId, user: UserId, seq: number) => void
  typing: (conv: ConvId, user: UserId) => void
  presence: (user: UserId, online: boolean, lastSeen: number | null) => void
  /** My view of a conversation changed (pinned, muted, hidden, read) on some device. */
  conversation: (c: ConversationSummary) => void
  group: (g: GroupView) => void
  groupGone: (id: number, reason: string) => void
  contact: (c: ContactView) => void
  contactRequest: (r: RequestView) => void
  /** I saved a message on some device. */
  favorite: (f: Favorite) => void
  /** I removed a favourite on some device. */
  favoriteRemoved: (id: number) => void
  /** I deleted message `seq` of `conv` for myself (here or on another device). */
  hidden: (conv: ConvId, seq: number) => void
  /** My private name for `user` changed (null: cleared). */
  remark: (user: UserId, remark: string | null) => void
  /** Close code 4001: the session is gone; the app should go to the login screen. */
  revoked: () => void
  /**
   * The socket belongs to another user than this client was made for (another tab logged in
   * as someone else, replacing the shared cookie). Nothing was sent; the app should reload.
   */
  wrongUser: (u: HelloUser) => void
  /** An `error` frame that did not name a client_id. */
  error: (code: string, message: string) => void
  /** Call signalling (`call_*` frames). */
  call: (f: CallServerFrame) => void
}

export interface KeyValueStorage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export interface WebSocketLike {
  readonly readyState: number
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason?: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export type WebSocketCtor = new (url: string) => WebSocketLike

export interface ClientOptions {
  url: string
  /** My user id: an echoed `message` with my sender id and an outbox client_id counts as an ack. */
  userId: UserId
  /** Prefix of the localStorage keys, per user (`chinwag:u7`). */
  storageKey: string
  storage: KeyValueStorage
  WebSocket: WebSocketCtor
  random?: () => number
  now?: () => number
  setTimeout?: (fn: () => void, ms: number) => unknown
  clearTimeout?: (id: unknown) => void
  /** Whether the browser believes it is online. */
  isOnline?: () => boolean
  /** Whether the page is shown now (read once at construction; `setVisible` reports changes). */
  isVisible?: () => boolean
  /** Where to listen for `online`/`offline`; null to not listen. */
  eventTarget?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> | null
  backoff?: { baseMs: number; maxMs: number }
  heartbeat?: { intervalMs: number; timeoutMs: number }
}

type Listener<K extends keyof ClientEvents> = ClientEvents[K]

/** Each event's listeners. */
export type Listeners = { [K in keyof ClientEvents]: Set<Listener<K>> }

export function noListeners(): Listeners {
  return {
    message: new Set(),
    ack: new Set(),
    update: new Set(),
    outbox: new Set(),
    state: new Set(),
    hello: new Set(),
    synced: new Set(),
    read: new Set(),
    typing: new Set(),
    presence: new Set(),
    conversation: new Set(),
    group: new Set(),
    groupGone: new Set(),
    contact: new Set(),
    contactRequest: new Set(),
    favorite: new Set(),
    favoriteRemoved: new Set(),
    hidden: new Set(),
    remark: new Set(),
    call: new Set(),
    revoked: new Set(),
    wrongUser: new Set(),
    error: new Set(),
  }
}
