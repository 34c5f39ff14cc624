// The WebSocket half of the protocol: one socket per tab, kept alive with reconnects, and an outbox
// that never loses a message.
//
// Guarantees, in the order the code provides them:
// - Every `send` goes into an outbox persisted in localStorage before it touches the network. An
//   entry is re-sent with the SAME client_id after every (re)connect until an `ack` (or our own
//   message echoed back with that client_id) removes it; the server deduplicates by client_id, so
//   re-sending never makes a second message. An `error` frame naming the client_id marks the entry
//   `failed`; `retry()` puts it back to `sending`.
// - After every connect the client sends `sync` with the highest seq it has seen per conversation
//   (persisted too), so a reconnect picks up exactly what was missed.
// - Reconnects use exponential backoff with full jitter, are immediate when the browser comes back
//   online, and stop for good on close code 4001 (session revoked).
// - An application-level ping detects a half-open socket that the browser has not noticed.
// - Right after every connect, and whenever it changes, the server hears whether the tab is
//   visible (`visibility`), so it sends Web Push only to devices that do not show Chinwag.
//
// The class knows nothing of Vue: the stores subscribe to its events. Its clock, storage,
// randomness and WebSocket constructor are injected so the tests can drive it.
import {
  CloseCode,
  parseServerFrame,
  type CallClientFrame,
  type CallServerFrame,
  type ClientFrame,
  type ConvId,
  type Message,
  type SendableContent,
  type SyncCursor,
} from './types'

import {
  noListeners,
  type ClientEvents,
  type ClientOptions,
  type ConnState,
  type Listeners,
  type OutboxEntry,
  type SendOptions,
  type WebSocketLike,
} from './clientTypes'
import { ClientStorage } from './clientStorage'

export type {
  ClientEvents,
  ClientOptions,
  ConnState,
  KeyValueStorage,
  OutboxEntry,
  SendOptions,
  WebSocketCtor,
  WebSocketLike,
} from './clientTypes'


const OPEN = 1

/**
 * `error` codes for a send that say "not now" rather than "never": the entry stays `sending` and
 * is sent again after a pause (the server names `unavailable` a store failure it expects us to
 * retry).
 */
const TRANSIENT_SEND_ERRORS = new Set(['unavailable', 'busy', 'rate_limited', 'shutting_down', 'internal'])

export class ChatClient {
  private readonly o: Required<Omit<ClientOptions, 'eventTarget'>> & { eventTarget: ClientOptions['eventTarget'] }
  private ws: WebSocketLike | null = null
  private readonly saved: ClientStorage
  private _state: ConnState = 'offline'
  private stopped = true
  private syncing = false
  /** The current socket's `hello` named our user; sends wait for it. */
  private helloed = false
  private attempt = 0
  private reconnectTimer: unknown = null
  private pingTimer: unknown = null
  private pongTimer: unknown = null
  private outboxMap = new Map<string, OutboxEntry>()
  /** Pending re-sends after a transient error, and how often each entry met one. */
  private retryTimers = new Map<string, unknown>()
  private retryCounts = new Map<string, number>()
  private cursorMap: Record<ConvId, number> = {}
  /** Highest change counter (`rev`) seen per conversation, so sync also brings edits and recalls. */
  private revMap: Record<ConvId, number> = {}
  /** Read positions asked for and not yet confirmed by a `read` frame; re-sent after reconnects. */
  private pendingReads = new Map<ConvId, number>()
  private lastTyping = new Map<ConvId, number>()
  private visible: boolean
  private listeners: Listeners = noListeners()

  constructor(opts: ClientOptions) {
    this.o = {
      random: Math.random,
      now: Date.now,
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (id) => globalThis.clearTimeout(id as ReturnType<typeof setTimeout>),
      isOnline: () => (typeof navigator === 'undefined' ? true : navigator.onLine !== false),
      isVisible: () => (typeof document === 'undefined' ? true : document.visibilityState !== 'hidden'),
      eventTarget: typeof window === 'undefined' ? null : window,
      backoff: { baseMs: 500, maxMs: 30_000 },
      heartbeat: { intervalMs: 20_000, timeoutMs: 10_000 },
      ...opts,
    }
    this.visible = this.o.isVisible()
    this.saved = new ClientStorage(this.o.storage, this.o.storageKey)
    const saved = this.saved.load()
    for (const e of saved.outbox) this.outboxMap.set(e.client_id, e)
    Object.assign(this.cursorMap, saved.cursors)
    Object.assign(this.revMap, saved.revs)
  }

  // ---- public API ----

  get state(): ConnState {
    return this._state
  }

  get outbox(): OutboxEntry[] {
    return [...this.outboxMap.values()].sort((a, b) => a.created_at - b.created_at)
  }

  get cursors(): Readonly<Record<ConvId, number>> {
    return { ...this.cursorMap }
  }

  on<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): () => void {
    this.listeners[event].add(fn)
    return () => this.listeners[event].delete(fn)
  }

  start() {
    if (!this.stopped) return
    this.stopped = false
    this.o.eventTarget?.addEventListener('online', this.onBrowserOnline)
    this.o.eventTarget?.addEventListener('offline', this.onBrowserOffline)
    this.connect()
  }

  stop() {
    this.stopped = true
    this.o.eventTarget?.removeEventListener('online', this.onBrowserOnline)
    this.o.eventTarget?.removeEventListener('offline', this.onBrowserOffline)
    this.clearTimers()
    this.dropSocket(1000, 'stop')
    this.setState('stopped')
  }

  /** Reconnects now instead of waiting for the backoff timer (the UI's "retry now"). */
  reconnectNow() {
    if (this.stopped) return
    if (this.ws && this._state !== 'offline') return
    this.attempt = 0
    this.clearReconnect()
    this.connect()
  }

  /** Queues a message; it is sent now if connected and after every reconnect until acked. */
  send(conv: ConvId, content: SendableContent, opts: SendOptions = {}): OutboxEntry {
    const entry: OutboxEntry = {
      client_id: this.newClientId(),
      conv,
      content,
      created_at: this.o.now(),
      status: 'sending',
      ...(opts.replyTo ? { reply_to: opts.replyTo } : {}),
      ...(opts.mentions?.length ? { mentions: opts.mentions } : {}),
      ...(opts.mentionAll ? { mention_all: true } : {}),
    }
    this.outboxMap.set(entry.client_id, entry)
    this.saved.outbox({ put: entry })
    this.emit('outbox', this.outbox)
    this.transmit(entry)
    return entry
  }

  /** Puts a failed entry back into the queue with its original client_id. */
  retry(clientId: string) {
    const e = this.outboxMap.get(clientId)
    if (!e) return
    const again: OutboxEntry = { ...e, status: 'sending' }
    delete again.error
    this.outboxMap.set(clientId, again)
    this.saved.outbox({ put: again })
    this.emit('outbox', this.outbox)
    this.transmit(again)
  }

  /** Gives up on an entry (the user deleted a failed message). */
  discard(clientId: string) {
    this.forgetRetry(clientId)
    if (!this.outboxMap.delete(clientId)) return
    this.saved.outbox({ remove: clientId })
    this.emit('outbox', this.outbox)
  }

  /** Moves my read position in `conv` forward to `seq` (sent now, or after the next connect). */
  markRead(conv: ConvId, seq: number) {
    if (seq <= 0 || (this.pendingReads.get(conv) ?? 0) >= seq) return
    this.pendingReads.set(conv, seq)
    if (this.helloed) this.write({ type: 'read', conv, seq })
  }

  /** Tells the other members that I am typing, at most once every 2 seconds per chat. */
  typing(conv: ConvId) {
    const now = this.o.now()
    if (now - (this.lastTyping.get(conv) ?? -Infinity) < 2000 || !this.helloed) return
    this.lastTyping.set(conv, now)
    this.write({ type: 'typing', conv })
  }

  /**
   * Sends a call signalling frame now. Calls are live: nothing is queued, so this returns false
   * when there is no socket to send it on.
   */
  signal(frame: CallClientFrame): boolean {
    if (!this.helloed) return false
    return this.write(frame)
  }

  /**
   * The page was shown or hidden. The server hears it now if connected, and after every connect
   * in any case: it pushes to this device only while no socket of it says it is visible.
   */
  setVisible(visible: boolean) {
    if (visible === this.visible) return
    this.visible = visible
    if (this.helloed) this.write({ type: 'visibility', visible })
  }

  /** Whether frames can be sent right now. */
  get connected(): boolean {
    return this.helloed
  }

  /** Records messages obtained another way (the history route) so `sync` does not resend them. */
  noteSeen(conv: ConvId, seq: number) {
    if ((this.cursorMap[conv] ?? 0) >= seq) return
    this.cursorMap[conv] = seq
    this.saved.mergeCursors(this.cursorMap)
  }

  // ---- connection ----

  private connect() {
    if (this.stopped) return
    this.clearReconnect()
    if (!this.o.isOnline()) {
      this.setState('offline')
      return
    }
    this.setState('connecting')
    let ws: WebSocketLike
    try {
      ws = new this.o.WebSocket(this.o.url)
    } catch {
      this.scheduleReconnect()
      return
    }
    this.ws = ws
    this.helloed = false
    ws.onopen = () => {
      if (this.ws !== ws) return
      // Nothing is sent before `hello` names the user: the cookie may have changed hands.
      this.setState('syncing')
      this.startHeartbeat()
    }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      this.onFrame(ev.data)
    }
    ws.onclose = (ev) => {
      if (this.ws !== ws) return
      this.onClosed(ev.code)
    }
    ws.onerror = () => {
      // A close event always follows; reconnecting is decided there.
    }
  }

  private onClosed(code: number) {
    this.ws = null
    this.helloed = false
    this.syncing = false
    this.clearHeartbeat()
    if (code === CloseCode.SessionRevoked) {
      this.stop()
      this.emit('revoked')
      return
    }
    if (this.stopped) return
    // 4008 means we fell behind: the data is fine, so reconnect and sync at once.
    if (code === CloseCode.FellBehind) this.attempt = 0
    this.scheduleReconnect()
  }

  private scheduleReconnect() {
    if (this.stopped) return
    this.clearReconnect()
    if (!this.o.isOnline()) {
      this.setState('offline')
      return
    }
    const { baseMs, maxMs } = this.o.backoff
    const ceiling = Math.min(maxMs, baseMs * 2 ** this.attempt)
    // "Full jitter" keeps a restarted server from being hit by every client in the same instant;
    // the floor of half the ceiling keeps the growth visible.
    const delay = Math.round(ceiling / 2 + (this.o.random() * ceiling) / 2)
    this.attempt = Math.min(this.attempt + 1, 16)
    this.setState('connecting')
    this.reconnectTimer = this.o.setTimeout(() => {
      this.reconnectTimer = null
      this.connect()
    }, delay)
  }

  private onBrowserOnline = () => {
    if (this.stopped) return
    if (!this.ws) {
      this.attempt = 0
      this.connect()
    }
  }

  private onBrowserOffline = () => {
    if (this.stopped) return
    // An emulated or real offline may leave the socket looking open; drop it so queued sends wait
    // in the outbox (shown as "sending") and are re-sent on the next connect.
    this.clearTimers()
    this.dropSocket(1000, 'offline')
    this.setState('offline')
  }

  private dropSocket(code: number, reason: string) {
    const ws = this.ws
    this.ws = null
    this.helloed = false
    this.syncing = false
    this.clearHeartbeat()
    if (!ws) return
    ws.onopen = ws.onmessage = ws.onerror = null
    ws.onclose = null
    try {
      ws.close(code, reason)
    } catch {
      // Already closed.
    }
  }

  private startHeartbeat() {
    this.clearHeartbeat()
    const { intervalMs, timeoutMs } = this.o.heartbeat
    this.pingTimer = this.o.setTimeout(() => {
      this.pingTimer = null
      if (!this.ws) return
      this.write({ type: 'ping' })
      this.pongTimer = this.o.setTimeout(() => {
        this.pongTimer = null
        // No answer: the socket is half-open. Treat it as closed.
        this.dropSocket(4000, 'heartbeat timeout')
        this.scheduleReconnect()
      }, timeoutMs)
    }, intervalMs)
  }

  private clearHeartbeat() {
    if (this.pingTimer !== null) this.o.clearTimeout(this.pingTimer)
    if (this.pongTimer !== null) this.o.clearTimeout(this.pongTimer)
    this.pingTimer = this.pongTimer = null
  }

  private clearReconnect() {
    if (this.reconnectTimer !== null) this.o.clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
  }

  private clearTimers() {
    this.clearReconnect()
    this.clearHeartbeat()
    for (const t of this.retryTimers.values()) this.o.clearTimeout(t)
    this.retryTimers.clear()
  }

  // ---- frames ----

  private onFrame(data: unknown) {
    const f = parseServerFrame(data)
    if (!f) return
    // Any frame proves the socket alive: restart the heartbeat cycle.
    if (this.pongTimer !== null || this.pingTimer !== null) this.startHeartbeat()
    switch (f.type) {
      case 'hello':
        if (f.user.id !== this.o.userId) {
          this.stop()
          this.emit('wrongUser', f.user)
          return
        }
        this.attempt = 0
        this.helloed = true
        this.emit('hello', f.user)
        this.syncing = true
        this.write({ type: 'sync', cursors: this.syncCursors() })
        this.write({ type: 'visibility', visible: this.visible })
        for (const e of this.outbox) if (e.status === 'sending') this.transmit(e)
        for (const [conv, seq] of this.pendingReads) this.write({ type: 'read', conv, seq })
        break
      case 'message':
        this.observe(f.message)
        this.emit('message', f.message, !this.syncing)
        this.settle(f.message.client_id, f.message)
        break
      case 'ack':
        this.observe(f.message)
        this.settle(f.client_id, f.message)
        break
      case 'update':
        this.observe(f.message)
        this.emit('update', f.message)
        break
      case 'synced':
        this.syncing = false
        this.attempt = 0
        this.setState('online')
        this.emit('synced', Array.isArray(f.reload) ? f.reload : [])
        break
      case 'read':
        if (f.user === this.o.userId && (this.pendingReads.get(f.conv) ?? Infinity) <= f.seq) this.pendingReads.delete(f.conv)
        this.emit('read', f.conv, f.user, f.seq)
        break
      case 'typing':
        if (f.user !== this.o.userId) this.emit('typing', f.conv, f.user)
        break
      case 'presence':
        this.emit('presence', f.user, f.online, f.last_seen ?? null)
        break
      case 'conversation':
        this.emit('conversation', f.conversation)
        break
      case 'group':
        this.emit('group', f.group)
        break
      case 'group_gone':
        this.emit('groupGone', f.group, f.reason)
        break
      case 'contact':
        this.emit('contact', f.contact)
        break
      case 'contact_request':
        this.emit('contactRequest', f.request)
        break
      case 'favorite':
        this.emit('favorite', f.favorite)
        break
      case 'favorite_removed':
        this.emit('favoriteRemoved', f.id)
        break
      case 'hidden':
        this.emit('hidden', f.conv, f.seq)
        break
      case 'remark':
        this.emit('remark', f.user, f.remark)
        break
      case 'error':
        if (f.client_id && this.outboxMap.has(f.client_id) && TRANSIENT_SEND_ERRORS.has(f.code)) {
          this.retryLater(f.client_id)
        } else if (f.client_id && this.outboxMap.has(f.client_id)) {
          const e = this.outboxMap.get(f.client_id)!
          const failed: OutboxEntry = { ...e, status: 'failed', error: { code: f.code, message: f.message } }
          this.outboxMap.set(f.client_id, failed)
          this.saved.outbox({ put: failed })
          this.emit('outbox', this.outbox)
        } else {
          this.emit('error', f.code, f.message)
        }
        break
      case 'pong':
        break
      default:
        if (f.type.startsWith('call_')) this.emit('call', f as CallServerFrame)
    }
  }

  /** Sends an entry again after a transient refusal, with its own growing pause. */
  private retryLater(clientId: string) {
    if (this.retryTimers.has(clientId)) return
    const n = (this.retryCounts.get(clientId) ?? 0) + 1
    this.retryCounts.set(clientId, n)
    const { baseMs, maxMs } = this.o.backoff
    const delay = Math.min(maxMs, baseMs * 2 ** n)
    this.retryTimers.set(
      clientId,
      this.o.setTimeout(() => {
        this.retryTimers.delete(clientId)
        const e = this.outboxMap.get(clientId)
        if (e) this.transmit(e)
      }, delay),
    )
  }

  private forgetRetry(clientId: string) {
    const t = this.retryTimers.get(clientId)
    if (t !== undefined) this.o.clearTimeout(t)
    this.retryTimers.delete(clientId)
    this.retryCounts.delete(clientId)
  }

  /**
   * Raises the conversation's cursor (frames arrive in seq order per conversation) and its
   * change counter. An `update` carries an old seq, so it only raises the counter.
   */
  private observe(m: Message) {
    this.noteSeen(m.conv, m.seq)
    if (typeof m.rev === 'number' && m.rev > (this.revMap[m.conv] ?? 0)) {
      this.revMap[m.conv] = m.rev
      this.saved.mergeRevs(this.revMap)
    }
  }

  private syncCursors(): Record<ConvId, SyncCursor> {
    const out: Record<ConvId, SyncCursor> = {}
    for (const [conv, seq] of Object.entries(this.cursorMap)) {
      const rev = this.revMap[conv] ?? 0
      out[conv] = rev > 0 ? { seq, rev } : seq
    }
    return out
  }

  /** Removes a delivered entry from the outbox. */
  private settle(clientId: string | undefined, m: Message) {
    if (!clientId || m.sender !== this.o.userId) return
    if (!this.outboxMap.delete(clientId)) return
    this.forgetRetry(clientId)
    this.saved.outbox({ remove: clientId })
    this.emit('ack', clientId, m)
    this.emit('outbox', this.outbox)
  }

  private transmit(e: OutboxEntry) {
    if (e.status !== 'sending' || !this.helloed) return
    this.write({
      type: 'send',
      client_id: e.client_id,
      conv: e.conv,
      content: e.content,
      ...(e.reply_to ? { reply_to: e.reply_to.seq } : {}),
      ...(e.mentions?.length ? { mentions: e.mentions } : {}),
      ...(e.mention_all ? { mention_all: true } : {}),
    })
  }

  private write(frame: ClientFrame): boolean {
    const ws = this.ws
    if (!ws || ws.readyState !== OPEN) return false
    try {
      ws.send(JSON.stringify(frame))
      return true
    } catch {
      // The close event follows and the outbox is re-sent after the reconnect.
      return false
    }
  }

  // ---- helpers ----

  private newClientId(): string {
    const bytes = new Uint8Array(12)
    if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes)
    else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(this.o.random() * 256)
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
    return `w-${this.o.now().toString(36)}-${hex}`
  }

  private setState(s: ConnState) {
    if (this._state === s) return
    this._state = s
    this.emit('state', s)
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>) {
    for (const fn of this.listeners[event]) {
      try {
        ;(fn as (...a: Parameters<ClientEvents[K]>) => void)(...args)
      } catch (err) {
        console.error(`chinwag: ${event} listener failed`, err)
      }
    }
  }
}

/** The socket URL of the page's own server. */
export function defaultSocketUrl(loc: Location = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/api/ws`
}
