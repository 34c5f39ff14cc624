// Conversations, messages, unread counts and the outbox mirror. The one ChatClient (socket) lives
// here; views read the store and call its actions.
//
// Invariants:
// - `messages[conv]` is sorted by seq with no duplicates: every message, from the socket, an ack
//   or the history route, goes through `merge`, which keys by (conv, seq).
// - A chat shows only the contiguous run of messages that ends at the newest one it knows
//   (`visibleMessages`); older pages are fetched `before` that run's first seq, so a gap left by a
//   sync is filled before it can be shown.
// - Unread = messages from others with seq above `viewed[conv]`: the server's read position
//   (`read_seq`, moved with `read` frames and shared by all devices), or the localStorage copy
//   when the server is older than read receipts; the higher of the two wins.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError, uploadFile } from '@/protocol/api'
import {
  ChatClient,
  defaultSocketUrl,
  type ClientOptions,
  type ConnState,
  type OutboxEntry,
  type SendOptions,
} from '@/protocol/client'
import { contentFromInput } from '@/lib/content'
import { useContacts } from './contacts'
import { loadJson, saveJson, userKey } from '@/lib/persist'
import {
  isMessage,
  peerIdOf,
  type CallClientFrame,
  type CallServerFrame,
  type ConvId,
  type ConversationSummary,
  type GroupView,
  type Message,
  type ReadList,
  type SendableContent,
  type User,
  type UserId,
} from '@/protocol/types'

export interface ConvMeta {
  id: ConvId
  peerId: UserId | null
  group: GroupView | null
  last_seq: number
  last_message: Message | null
  /** When this tab first saw it, to sort chats that have no message yet. */
  opened_at: number
  /** Server time of the last activity, when the server says. */
  last_ts: number
  pinned: boolean
  muted: boolean
  /** 1:1: how far the other person has read. */
  peer_read_seq: number
  /** Hidden from the list (history kept) until a message newer than `hidden_at` arrives. */
  hidden: boolean
  hidden_at: number
  /** The server says an unread message mentions me. */
  mentioned: boolean
  /**
   * Groups I can no longer write to: `dissolved` (history stays), or `removed`/`left` (the
   * server no longer lets me read it either).
   */
  gone: string | null
}

export interface HistoryState {
  loading: boolean
  /** The newest page was fetched this session. */
  fresh: boolean
  /** Nothing older than the first shown message exists. */
  complete: boolean
  error: string | null
  notFound: boolean
}

export interface ChatHooks {
  /** A live message from someone else arrived. */
  onIncoming?: (m: Message, conv: ConvMeta) => void
  /** The socket was closed with 4001. */
  onRevoked?: () => void
  /** A group's membership or settings changed (a `group` frame or a system message). */
  onGroupChanged?: (groupId: number) => void
  /** The browser's session now belongs to another user (logged in from another tab). */
  onWrongUser?: () => void
}

const HISTORY_PAGE = 50

/** A file on its way to `POST /api/files`; once stored it is sent as a message. */
export interface UploadItem {
  id: string
  conv: ConvId
  kind: 'image' | 'file'
  name: string
  size: number
  /** A local preview of an image (an object URL). */
  url: string | null
  width: number | null
  height: number | null
  progress: number
  error: unknown
  created_at: number
}

export const useChat = defineStore('chat', () => {
  const me = ref<User | null>(null)
  const convs = ref<Record<ConvId, ConvMeta>>({})
  const messages = ref<Record<ConvId, Message[]>>({})
  const users = ref<Record<UserId, User>>({})
  const outbox = ref<OutboxEntry[]>([])
  const viewed = ref<Record<ConvId, number>>({})
  /** Conversations with more unread messages than were fetched (shown as 99+). */
  const unreadOverflow = ref<Record<ConvId, boolean>>({})
  const history = ref<Record<ConvId, HistoryState>>({})
  const conn = ref<ConnState>('connecting')
  const activeConv = ref<ConvId | null>(null)
  const listLoaded = ref(false)
  const listError = ref<string | null>(null)
  /** Until when (ms) someone was seen typing, per chat, and who. */
  const typingUntil = ref<Record<ConvId, number>>({})
  const typingWho = ref<Record<ConvId, UserId>>({})
  /** Online state and last seen time of people, from `presence` frames. */
  const presence = ref<Record<UserId, { online: boolean; last_seen: number | null }>>({})
  /** Unsent text per chat, shown in the list like WeChat's "[Draft]". */
  const drafts = ref<Record<ConvId, string>>({})
  /** Whether the user can be treated as looking at the active chat (tab visible, focused). */
  const attentive = ref(true)
  /** Group chats: who has read my messages (`GET .../reads`), by conversation and seq. */
  const reads = ref<Record<ConvId, Record<number, ReadList>>>({})
  const callListeners = new Set<(f: CallServerFrame) => void>()
  /** `error` frames that answer no send (call signalling, say). */
  const errorListeners = new Set<(code: string, message: string) => void>()
  const uploads = ref<UploadItem[]>([])
  const uploadAborts = new Map<string, () => void>()
  /** The files of uploads, kept to try a failed one again. */
  const uploadFiles = new Map<string, { file: File; replyTo?: OutboxEntry['reply_to'] }>()

  let client: ChatClient | null = null
  let hooks: ChatHooks = {}
  let unsubscribers: (() => void)[] = []
  let firstRun = false

  // ---- getters ----

  function activityOf(c: ConvMeta): number {
    let ts = Math.max(c.last_message?.ts ?? 0, c.last_ts) || c.opened_at
    for (const e of outbox.value) if (e.conv === c.id && e.created_at > ts) ts = e.created_at
    return ts
  }

  function isHidden(c: ConvMeta): boolean {
    return c.hidden && c.last_seq <= c.hidden_at && !outbox.value.some((e) => e.conv === c.id)
  }

  /** Pinned chats first, then newest activity; hidden chats left out. */
  const sortedConvs = computed(() =>
    Object.values(convs.value)
      .filter((c) => !isHidden(c) || c.id === activeConv.value)
      .sort((a, b) => Number(b.pinned) - Number(a.pinned) || activityOf(b) - activityOf(a)),
  )

  function peerOf(conv: ConvId): User | null {
    const c = convs.value[conv]
    const id = c?.peerId ?? (me.value ? peerIdOf(conv, me.value.id) : null)
    return id === null ? null : (users.value[id] ?? null)
  }

  function displayName(conv: ConvId): string {
    const g = convs.value[conv]?.group
    if (g) return g.name
    const p = peerOf(conv)
    if (p) return p.nickname || p.username
    const id = me.value ? peerIdOf(conv, me.value.id) : null
    return id === null ? conv : `#${id}`
  }

  /** The avatar file id of a chat (the group's, or the other person's). */
  function avatarOf(conv: ConvId): string | null {
    const c = convs.value[conv]
    if (c?.group) return c.group.avatar ?? null
    return peerOf(conv)?.avatar ?? null
  }

  function userAvatar(id: UserId): string | null {
    return users.value[id]?.avatar ?? null
  }

  function unread(conv: ConvId): number {
    const seen = viewed.value[conv] ?? 0
    const myId = me.value?.id
    let n = 0
    const arr = messages.value[conv]
    if (arr) for (let i = arr.length - 1; i >= 0 && arr[i]!.seq > seen; i--) if (arr[i]!.sender !== myId) n++
    return n
  }

  function unreadLabel(conv: ConvId): string {
    const n = unread(conv)
    if (n === 0) return ''
    return n > 99 || unreadOverflow.value[conv] ? '99+' : String(n)
  }

  /** Unread messages of chats that are not muted (the title, the tab badge). */
  const totalUnread = computed(() =>
    Object.values(convs.value).reduce((sum, c) => sum + (c.muted ? 0 : unread(c.id)), 0),
  )

  /** Whether an unread message mentions me (or @all). */
  function mentionedMe(conv: ConvId): boolean {
    if (convs.value[conv]?.mentioned && unread(conv) > 0) return true
    const seen = viewed.value[conv] ?? 0
    const myId = me.value?.id
    const arr = messages.value[conv]
    if (!arr || myId === undefined) return false
    for (let i = arr.length - 1; i >= 0 && arr[i]!.seq > seen; i--) {
      const m = arr[i]!
      if (m.sender !== myId && (m.mention_all || m.mentions?.includes(myId))) return true
    }
    return false
  }

  /** Someone is typing in `conv` (entries are deleted when they expire, which re-renders). */
  function isTyping(conv: ConvId): boolean {
    return typingUntil.value[conv] !== undefined
  }

  /** The name to show for a user, fetching unknown ones in the background. */
  function userName(id: UserId): string {
    const u = users.value[id]
    if (u) return u.nickname || u.username
    if (!pendingUsers.has(id)) void fetchUser(id)
    return `#${id}`
  }

  /** The contiguous run of messages ending at the newest known one. */
  function visibleMessages(conv: ConvId): Message[] {
    const arr = messages.value[conv]
    if (!arr || arr.length === 0) return []
    let start = arr.length - 1
    while (start > 0 && arr[start - 1]!.seq === arr[start]!.seq - 1) start--
    return arr.slice(start)
  }

  function pendingOf(conv: ConvId): OutboxEntry[] {
    return outbox.value.filter((e) => e.conv === conv)
  }

  function lastPending(conv: ConvId): OutboxEntry | null {
    const p = pendingOf(conv)
    return p.length ? p[p.length - 1]! : null
  }

  const NO_HISTORY: HistoryState = Object.freeze({ loading: false, fresh: false, complete: false, error: null, notFound: false })

  /** Read-only view for templates (does not create state while rendering). */
  function historyOf(conv: ConvId): HistoryState {
    return history.value[conv] ?? NO_HISTORY
  }

  function ensureHistory(conv: ConvId): HistoryState {
    return (history.value[conv] ??= { ...NO_HISTORY })
  }

  function hasOlder(conv: ConvId): boolean {
    const h = historyOf(conv)
    if (h.complete) return false
    const vis = visibleMessages(conv)
    return vis.length > 0 && vis[0]!.seq > 1
  }

  // ---- merging ----

  function ensureConv(id: ConvId, peer?: User | null): ConvMeta {
    let c = convs.value[id]
    if (!c) {
      const peerId = peer?.id ?? (me.value ? peerIdOf(id, me.value.id) : null)
      c = convs.value[id] = {
        id,
        peerId,
        group: null,
        last_seq: 0,
        last_message: null,
        opened_at: Date.now(),
        last_ts: 0,
        pinned: false,
        muted: false,
        peer_read_seq: 0,
        hidden: false,
        hidden_at: 0,
        mentioned: false,
        gone: null,
      }
      if (peerId !== null && !users.value[peerId] && !peer) void fetchUser(peerId)
    }
    if (peer) users.value[peer.id] = { ...users.value[peer.id], ...peer }
    return c
  }

  /** Applies a `ConversationView` from the list or a `conversation` frame. */
  function applySummary(s: ConversationSummary) {
    const c = ensureConv(s.id, s.peer ?? null)
    if (s.last_seq >= c.last_seq) {
      c.last_seq = s.last_seq
      c.last_message = s.last_message ?? c.last_message
    }
    if (s.group) c.group = s.group
    if (typeof s.last_ts === 'number') c.last_ts = Math.max(c.last_ts, s.last_ts)
    if (s.group) {
      // A GroupView for someone no longer in the group carries no role.
      if (s.group.my_role === null && c.gone === null) c.gone = 'removed'
      else if (s.group.my_role) c.gone = c.gone === 'dissolved' ? c.gone : null
    }
    if (typeof s.pinned === 'boolean') c.pinned = s.pinned
    if (typeof s.muted === 'boolean') c.muted = s.muted
    if (typeof s.hidden === 'boolean') {
      c.hidden = s.hidden
      c.hidden_at = s.hidden ? Math.max(c.last_seq, s.last_seq) : 0
    }
    if (typeof s.mentioned === 'boolean') c.mentioned = s.mentioned
    if (typeof s.peer_read_seq === 'number') c.peer_read_seq = Math.max(c.peer_read_seq, s.peer_read_seq)
    if (s.last_message) merge(s.last_message)
    if (typeof s.read_seq === 'number') {
      const local = viewed.value[s.id] ?? 0
      if (s.read_seq > local) {
        viewed.value[s.id] = s.read_seq
        delete unreadOverflow.value[s.id]
      } else if (local > s.read_seq) {
        // Read here before the server knew (offline, or an older server): tell it.
        client?.markRead(s.id, local)
      }
    }
  }

  const pendingUsers = new Set<UserId>()
  async function fetchUser(id: UserId) {
    if (pendingUsers.has(id)) return
    pendingUsers.add(id)
    try {
      users.value[id] = await api.user(id)
    } catch {
      // Shown as "#id" until the next list refresh.
    } finally {
      pendingUsers.delete(id)
    }
  }

  /** Replaces a known message after an edit, recall or reaction (`update` frame). */
  function replace(m: Message) {
    const arr = messages.value[m.conv]
    if (arr) {
      const i = arr.findIndex((x) => x.seq === m.seq)
      if (i >= 0) arr.splice(i, 1, m)
    }
    const c = convs.value[m.conv]
    if (c?.last_message?.seq === m.seq) c.last_message = m
    scheduleCacheSave()
  }

  /** Inserts a message keyed by (conv, seq); returns false if it was already known. */
  function merge(m: Message): boolean {
    const c = ensureConv(m.conv)
    if (m.seq >= c.last_seq) {
      c.last_seq = m.seq
      c.last_message = m
    }
    const arr = (messages.value[m.conv] ??= [])
    // Fast path: appending in order.
    scheduleCacheSave()
    if (arr.length === 0 || arr[arr.length - 1]!.seq < m.seq) {
      arr.push(m)
      return true
    }
    let lo = 0
    let hi = arr.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (arr[mid]!.seq < m.seq) lo = mid + 1
      else hi = mid
    }
    if (arr[lo]?.seq === m.seq) return false
    arr.splice(lo, 0, m)
    return true
  }

  function mergeMany(list: Message[]) {
    for (const m of list) merge(m)
    const top = list.reduce((mx, m) => Math.max(mx, m.seq), 0)
    if (list.length && client) client.noteSeen(list[0]!.conv, top)
  }

  // ---- lifecycle ----

  /** Starts the store for a logged-in user: loads chats, then opens the socket. */
  async function start(user: User, h: ChatHooks = {}, clientOverrides: Partial<ClientOptions> = {}) {
    if (client && me.value?.id === user.id) return
    stop()
    me.value = user
    hooks = h
    users.value[user.id] = user
    const stored = loadJson<Record<ConvId, number> | null>(`${userKey(user.id)}:viewed`, null)
    firstRun = stored === null
    viewed.value = stored ?? {}
    drafts.value = loadJson<Record<ConvId, string>>(`${userKey(user.id)}:drafts`, {}) ?? {}
    client = new ChatClient({
      url: typeof window === 'undefined' ? 'ws://localhost/api/ws' : defaultSocketUrl(),
      userId: user.id,
      storageKey: userKey(user.id),
      storage: localStorage,
      WebSocket: WebSocket as unknown as ClientOptions['WebSocket'],
      ...clientOverrides,
    })
    outbox.value = client.outbox
    restoreListCache(user.id)
    restoreMessageCache(user.id)
    for (const e of outbox.value) ensureConv(e.conv)
    const c = client
    unsubscribers = [
      c.on('state', (s) => (conn.value = s)),
      c.on('outbox', (entries) => (outbox.value = entries)),
      c.on('message', (m, live) => onMessage(m, live)),
      c.on('ack', (_id, m) => {
        merge(m)
        fillGapBelow(m)
        if (activeConv.value === m.conv) markViewed(m.conv)
      }),
      c.on('update', (m) => replace(m)),
      c.on('synced', (reload) => {
        for (const conv of reload) {
          delete messages.value[conv]
          delete history.value[conv]
          if (activeConv.value === conv) void open(conv)
        }
        void loadConversations()
        // Contact changes made while this socket was away.
        if (me.value) void useContacts().load(me.value.id)
      }),
      c.on('read', (conv, user, seq) => {
        if (user === me.value?.id) {
          if (seq > (viewed.value[conv] ?? 0)) {
            viewed.value[conv] = seq
            delete unreadOverflow.value[conv]
            persistViewed()
          }
        } else {
          const cm = convs.value[conv]
          if (cm && seq > cm.peer_read_seq) cm.peer_read_seq = seq
        }
      }),
      c.on('typing', (conv, user) => {
        typingUntil.value[conv] = Date.now() + 6000
        typingWho.value[conv] = user
        // Re-render once it expires.
        setTimeout(() => {
          if ((typingUntil.value[conv] ?? 0) <= Date.now()) delete typingUntil.value[conv]
        }, 6100)
      }),
      c.on('presence', (user, online, lastSeen) => {
        presence.value[user] = { online, last_seen: lastSeen }
      }),
      c.on('conversation', (v) => applySummary(v)),
      c.on('contact', (x) => useContacts().applyContact(x)),
      c.on('contactRequest', (r) => useContacts().applyRequest(r)),
      c.on('group', (g) => {
        const cm = convs.value[`g:${g.id}`]
        if (cm) {
          cm.group = { ...g, my_role: g.my_role === undefined ? cm.group?.my_role : g.my_role }
          if (g.my_role) cm.gone = null
        } else if (g.my_role) {
          // Added to a group: it shows in the list at once (its first message follows).
          ensureConv(`g:${g.id}`).group = g
        }
        hooks.onGroupChanged?.(g.id)
      }),
      c.on('groupGone', (id, reason) => groupGone(id, reason)),
      c.on('call', (f) => {
        for (const fn of callListeners) fn(f)
      }),
      c.on('error', (code, message) => {
        for (const fn of errorListeners) fn(code, message)
      }),
      c.on('revoked', () => hooks.onRevoked?.()),
      c.on('wrongUser', () => hooks.onWrongUser?.()),
    ]
    void useContacts().load(user.id)
    // The list first, so the first run's baseline is set before sync brings in old messages.
    await loadConversations()
    if (client === c) c.start()
  }

  function stop() {
    useContacts().reset()
    if (cacheTimer !== null) clearTimeout(cacheTimer)
    cacheTimer = null
    for (const u of unsubscribers) u()
    unsubscribers = []
    client?.stop()
    client = null
    me.value = null
    convs.value = {}
    messages.value = {}
    users.value = {}
    outbox.value = []
    viewed.value = {}
    drafts.value = {}
    typingUntil.value = {}
    typingWho.value = {}
    presence.value = {}
    unreadOverflow.value = {}
    history.value = {}
    reads.value = {}
    for (const abort of uploadAborts.values()) abort()
    uploadAborts.clear()
    uploadFiles.clear()
    uploads.value = []
    activeConv.value = null
    listLoaded.value = false
    listError.value = null
    conn.value = 'connecting'
  }

  function onMessage(m: Message, live: boolean) {
    const isNew = merge(m)
    if (!isNew || !me.value) return
    fillGapBelow(m)
    if (typingWho.value[m.conv] === m.sender) delete typingUntil.value[m.conv]
    const c = convs.value[m.conv]!
    // A new message brings a hidden chat back.
    if (c.hidden && m.seq > c.hidden_at) c.hidden = false
    if (m.conv.startsWith('g:')) {
      noteGroupRead(m.conv, m.sender, m.seq)
      if (m.content.kind === 'system') {
        const ev = m.content.event
        if (ev?.type === 'dissolved') c.gone = 'dissolved'
        hooks.onGroupChanged?.(Number(m.conv.slice(2)))
      }
    }
    if (activeConv.value === m.conv && attentive.value) {
      markViewed(m.conv)
    } else if (live && m.sender !== me.value.id && m.content.kind !== 'system' && !c.muted && m.content.kind !== 'call') {
      hooks.onIncoming?.(m, c)
    }
  }

  const gapFetches = new Set<string>()

  /**
   * If a message from the socket landed above a hole in a chat whose history is loaded (a sync
   * capped at 100 messages, say), fetches the hole so the chat shows a continuous history.
   */
  function fillGapBelow(m: Message) {
    const h = history.value[m.conv]
    const arr = messages.value[m.conv]
    if (!h?.fresh || !arr) return
    const i = arr.findIndex((x) => x.seq === m.seq)
    const below = i > 0 ? arr[i - 1]! : null
    if (!below || below.seq === m.seq - 1) return
    const key = `${m.conv}:${below.seq}:${m.seq}`
    if (gapFetches.has(key)) return
    gapFetches.add(key)
    void api
      .history(m.conv, { after: below.seq, before: m.seq, limit: 100 })
      .then((page) => mergeMany(page.messages))
      .catch(() => {
        // The chat shows the newest run; scrolling up fetches the rest.
      })
      .finally(() => gapFetches.delete(key))
  }

  async function loadConversations() {
    if (!me.value) return
    const forUser = me.value.id
    let list: ConversationSummary[]
    try {
      list = (await api.conversations()).conversations
      listError.value = null
    } catch (e) {
      listError.value = e instanceof ApiError ? e.code : 'network'
      listLoaded.value = true
      return
    }
    if (me.value?.id !== forUser) return
    // With read receipts the server knows what was read: no need to guess on a new browser.
    if (list.some((s) => typeof s.read_seq === 'number')) firstRun = false
    // Groups I was removed from (or left) while away are no longer listed: drop them.
    const listed = new Set(list.map((s) => s.id))
    for (const id of Object.keys(convs.value)) {
      if (id.startsWith('g:') && !listed.has(id) && id !== activeConv.value && !outbox.value.some((e) => e.conv === id)) {
        delete convs.value[id]
        delete messages.value[id]
      }
    }
    for (const s of list) {
      applySummary(s)
      if (firstRun) {
        // A new browser treats the existing history as read instead of flooding the badges.
        viewed.value[s.id] = s.last_seq
        client?.noteSeen(s.id, s.last_seq)
      }
    }
    if (firstRun) {
      firstRun = false
      persistViewed()
    }
    listLoaded.value = true
    saveListCache(forUser, list)
    // Fetch what arrived since the user last looked, so the badges are exact.
    await Promise.all(
      list
        .filter((s) => s.last_seq > (viewed.value[s.id] ?? 0) && s.id !== activeConv.value)
        .map((s) => fetchUnread(s.id, viewed.value[s.id] ?? 0, s.last_seq)),
    )
  }

  /**
   * The last conversation list is kept in localStorage so the list paints at once on start-up
   * and is still there when the app is opened offline.
   */
  function saveListCache(userId: UserId, list: ConversationSummary[]) {
    saveJson(`${userKey(userId)}:convs`, list)
  }

  let cacheTimer: ReturnType<typeof setTimeout> | null = null
  const CACHE_CONVS = 30
  const CACHE_MESSAGES = 40

  /** The newest messages of the busiest chats, for an instant (and offline) first paint. */
  function scheduleCacheSave() {
    if (cacheTimer !== null || !me.value) return
    cacheTimer = setTimeout(() => {
      cacheTimer = null
      if (!me.value) return
      const out: Record<ConvId, Message[]> = {}
      for (const c of sortedConvs.value.slice(0, CACHE_CONVS)) {
        const vis = visibleMessages(c.id)
        if (vis.length) out[c.id] = vis.slice(-CACHE_MESSAGES)
      }
      saveJson(`${userKey(me.value.id)}:messages`, out)
    }, 1000)
  }

  /** Forgets the cached chats on an explicit log-out (a shared computer); the outbox stays. */
  function clearCaches() {
    if (!me.value) return
    if (cacheTimer !== null) clearTimeout(cacheTimer)
    cacheTimer = null
    try {
      localStorage.removeItem(`${userKey(me.value.id)}:messages`)
      localStorage.removeItem(`${userKey(me.value.id)}:convs`)
      localStorage.removeItem(`${userKey(me.value.id)}:drafts`)
    } catch {
      // Storage unavailable: nothing was cached either.
    }
  }

  function restoreMessageCache(userId: UserId) {
    const cached = loadJson<Record<ConvId, Message[]>>(`${userKey(userId)}:messages`, {})
    if (!cached || typeof cached !== 'object') return
    for (const list of Object.values(cached)) if (Array.isArray(list)) for (const m of list) if (isMessage(m)) merge(m)
  }

  function restoreListCache(userId: UserId) {
    const list = loadJson<ConversationSummary[]>(`${userKey(userId)}:convs`, [])
    if (!Array.isArray(list)) return
    for (const s of list) {
      if (!s || typeof s.id !== 'string') continue
      const c = ensureConv(s.id, s.peer ?? null)
      c.last_seq = Math.max(c.last_seq, s.last_seq ?? 0)
      c.last_message = s.last_message ?? c.last_message
      c.group = s.group ?? c.group
      c.pinned = s.pinned ?? c.pinned
      c.muted = s.muted ?? c.muted
      c.hidden = s.hidden ?? c.hidden
      c.hidden_at = c.hidden ? c.last_seq : 0
      c.last_ts = Math.max(c.last_ts, s.last_ts ?? 0)
    }
  }

  async function fetchUnread(conv: ConvId, after: number, last: number) {
    const arr = messages.value[conv] ?? []
    // Already known contiguously up to `last`?
    const known = arr.filter((m) => m.seq > after).length
    if (known >= last - after) return
    try {
      const page = await api.history(conv, { after, limit: 100 })
      mergeMany(page.messages)
      unreadOverflow.value[conv] = page.has_more
    } catch {
      // The badge shows what is known; the chat loads on open.
    }
  }

  // ---- chat view actions ----

  async function open(conv: ConvId, peer?: User | null) {
    activeConv.value = conv
    ensureConv(conv, peer)
    const h = ensureHistory(conv)
    if (!h.fresh && !h.loading) {
      h.loading = true
      h.error = null
      try {
        const page = await api.history(conv, { limit: HISTORY_PAGE })
        mergeMany(page.messages)
        h.fresh = true
        h.notFound = false
        if (!page.has_more) {
          const first = page.messages[0]?.seq ?? 1
          // The newest page holds everything from seq 1 (or the conversation is empty).
          if (first <= 1) h.complete = true
        }
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          // A 1:1 chat with nothing in it yet may not exist on the server: that is an empty chat.
          if (me.value && peerIdOf(conv, me.value.id) !== null) {
            h.fresh = true
            h.complete = true
          } else h.notFound = true
        } else h.error = e instanceof ApiError ? e.code : 'network'
      } finally {
        h.loading = false
      }
    }
    if (activeConv.value === conv && attentive.value) markViewed(conv)
  }

  function close(conv: ConvId) {
    if (activeConv.value === conv) activeConv.value = null
  }

  async function loadOlder(conv: ConvId): Promise<number> {
    if (historyOf(conv).loading || !hasOlder(conv)) return 0
    const h = ensureHistory(conv)
    const before = visibleMessages(conv)[0]!.seq
    h.loading = true
    try {
      const page = await api.history(conv, { before, limit: HISTORY_PAGE })
      const count = page.messages.filter((m) => merge(m)).length
      if (!page.has_more || page.messages.length === 0) h.complete = true
      return count
    } catch (e) {
      h.error = e instanceof ApiError ? e.code : 'network'
      return 0
    } finally {
      h.loading = false
    }
  }

  function markViewed(conv: ConvId) {
    const c = convs.value[conv]
    const arr = messages.value[conv]
    const top = Math.max(c?.last_seq ?? 0, arr?.length ? arr[arr.length - 1]!.seq : 0)
    if (c) c.mentioned = false
    if ((viewed.value[conv] ?? 0) >= top) return
    viewed.value[conv] = top
    delete unreadOverflow.value[conv]
    persistViewed()
    client?.markRead(conv, top)
  }

  function persistViewed() {
    if (!me.value) return
    // Merge with other tabs' progress: the highest viewed seq wins.
    const key = `${userKey(me.value.id)}:viewed`
    const stored = loadJson<Record<ConvId, number>>(key, {})
    for (const [k, v] of Object.entries(stored)) if (v > (viewed.value[k] ?? 0)) viewed.value[k] = v
    saveJson(key, viewed.value)
  }

  /** Re-reads the viewed positions another tab wrote. */
  function reloadViewed() {
    if (!me.value) return
    const stored = loadJson<Record<ConvId, number>>(`${userKey(me.value.id)}:viewed`, {})
    for (const [k, v] of Object.entries(stored)) if (v > (viewed.value[k] ?? 0)) viewed.value[k] = v
  }

  /** Sends what the user typed; returns false when there is nothing to send. */
  function sendText(conv: ConvId, text: string, opts: SendOptions = {}): boolean {
    const content = contentFromInput(text)
    if (!content || !client) return false
    ensureConv(conv)
    // A lone emoji cannot carry mentions in a useful way; they only go with text.
    client.send(conv, content, content.kind === 'text' ? opts : { replyTo: opts.replyTo })
    return true
  }

  /** Sends an uploaded image or file, or a sticker. */
  function sendContent(conv: ConvId, content: SendableContent, opts: SendOptions = {}) {
    if (!client) return
    ensureConv(conv)
    client.send(conv, content, opts)
  }

  async function editMessage(conv: ConvId, seq: number, text: string) {
    replace(await api.editMessage(conv, seq, text))
  }

  let draftTimer: ReturnType<typeof setTimeout> | null = null
  function setDraft(conv: ConvId, text: string) {
    if (text.trim()) drafts.value[conv] = text
    else delete drafts.value[conv]
    if (draftTimer !== null) clearTimeout(draftTimer)
    const userId = me.value?.id
    if (userId === undefined) return
    draftTimer = setTimeout(() => {
      draftTimer = null
      saveJson(`${userKey(userId)}:drafts`, drafts.value)
    }, 400)
  }

  function sendEmoji(conv: ConvId, emoji: string) {
    if (!client) return
    ensureConv(conv)
    client.send(conv, { kind: 'emoji', emoji })
  }

  function retry(clientId: string) {
    client?.retry(clientId)
  }

  function discard(clientId: string) {
    client?.discard(clientId)
  }

  function reconnectNow() {
    client?.reconnectNow()
  }

  function typing(conv: ConvId) {
    client?.typing(conv)
  }

  /** Pins, mutes or hides a chat on the server; the answer (and other devices) update the list. */
  async function setConvFlags(conv: ConvId, flags: { pinned?: boolean; muted?: boolean; hidden?: boolean }) {
    applySummary(await api.patchConversation(conv, flags))
  }

  /** The server says I am no longer in group `id` (I left, was removed, or it was dissolved). */
  function groupGone(id: number, reason: string) {
    const conv = `g:${id}`
    const c = convs.value[conv]
    if (!c) return
    c.gone = reason
    if (reason === 'dissolved') return
    // Removed or left: the server no longer shows me its history.
    if (activeConv.value === conv) return
    delete convs.value[conv]
    delete messages.value[conv]
    delete history.value[conv]
  }

  /** Forgets a group chat (after leaving it from this device). */
  function forgetConv(conv: ConvId) {
    delete convs.value[conv]
    delete messages.value[conv]
    delete history.value[conv]
    delete reads.value[conv]
  }

  /** A message from `user` at `seq` means they have read everything before it. */
  function noteGroupRead(conv: ConvId, user: UserId, seq: number) {
    const r = reads.value[conv]
    if (!r) return
    for (const [k, v] of Object.entries(r)) {
      if (Number(k) < seq && v.unread_by.includes(user)) {
        r[Number(k)] = { read_by: [...v.read_by, user], unread_by: v.unread_by.filter((u) => u !== user) }
      }
    }
  }

  /** Fetches who has read these messages of mine (group chats show "read by N"). */
  async function refreshReads(conv: ConvId, seqs: number[]) {
    await Promise.all(
      seqs.map(async (seq) => {
        try {
          const r = await api.reads(conv, seq)
          ;(reads.value[conv] ??= {})[seq] = r
        } catch {
          // Keep what was known.
        }
      }),
    )
  }

  /**
   * Uploads a file with progress, then sends it as an image (when the server decoded it as one)
   * or a file. The upload lives here, not in the chat view, so it finishes if the user moves on.
   */
  function startUpload(conv: ConvId, file: File, replyTo?: OutboxEntry['reply_to']) {
    const looksImage = /^image\/(png|jpeg|gif|webp)$/.test(file.type)
    const item: UploadItem = {
      id: `up-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      conv,
      kind: looksImage ? 'image' : 'file',
      name: file.name || 'file',
      size: file.size,
      url: looksImage && typeof URL.createObjectURL === 'function' ? URL.createObjectURL(file) : null,
      width: null,
      height: null,
      progress: 0,
      error: null,
      created_at: Date.now(),
    }
    ensureConv(conv)
    uploads.value.push(item)
    uploadFiles.set(item.id, { file, replyTo })
    if (item.url) {
      // The preview's shape, so the bubble does not jump when the upload ends.
      const img = new Image()
      img.onload = () => {
        const u = uploads.value.find((x) => x.id === item.id)
        if (u) {
          u.width = img.naturalWidth
          u.height = img.naturalHeight
        }
      }
      img.src = item.url
    }
    transmitUpload(item.id)
  }

  function transmitUpload(id: string) {
    const item = uploads.value.find((x) => x.id === id)
    const src = uploadFiles.get(id)
    if (!item || !src) return
    const { conv } = item
    const { file, replyTo } = src
    item.error = null
    item.progress = 0
    const up = uploadFile(file, item.name, (sent, total) => {
      const u = uploads.value.find((x) => x.id === item.id)
      if (u) u.progress = total ? sent / total : 0
    })
    uploadAborts.set(item.id, up.abort)
    up.done
      .then((f) => {
        const isImage = !!f.width && !!f.height && f.mime.startsWith('image/')
        const content: SendableContent = isImage
          ? { kind: 'image', file_id: f.id, width: f.width!, height: f.height!, name: f.name, size: f.size }
          : { kind: 'file', file_id: f.id, name: f.name, size: f.size, mime: f.mime }
        removeUpload(item.id)
        sendContent(conv, content, replyTo ? { replyTo } : {})
      })
      .catch((e: unknown) => {
        const u = uploads.value.find((x) => x.id === item.id)
        if (!u) return
        if (e instanceof ApiError && e.code === 'aborted') removeUpload(item.id)
        else u.error = e
      })
      .finally(() => uploadAborts.delete(item.id))
  }

  /** Tries a failed upload again. */
  function retryUpload(id: string) {
    transmitUpload(id)
  }

  function removeUpload(id: string) {
    uploadAborts.get(id)?.()
    uploadFiles.delete(id)
    const i = uploads.value.findIndex((x) => x.id === id)
    if (i < 0) return
    const [u] = uploads.value.splice(i, 1)
    // Keep the preview a moment: the sent message's thumbnail takes over.
    if (u?.url) setTimeout(() => URL.revokeObjectURL(u.url!), 30_000)
  }

  function uploadsOf(conv: ConvId): UploadItem[] {
    return uploads.value.filter((u) => u.conv === conv)
  }

  /** Call signalling goes through the chat socket. */
  function onCallFrame(fn: (f: CallServerFrame) => void): () => void {
    callListeners.add(fn)
    return () => callListeners.delete(fn)
  }

  function onFrameError(fn: (code: string, message: string) => void): () => void {
    errorListeners.add(fn)
    return () => errorListeners.delete(fn)
  }

  function signal(frame: CallClientFrame): boolean {
    return client?.signal(frame) ?? false
  }

  async function recallMessage(conv: ConvId, seq: number) {
    replace(await api.recall(conv, seq))
  }

  async function toggleReaction(conv: ConvId, seq: number, emoji: string) {
    const m = messages.value[conv]?.find((x) => x.seq === seq)
    const myId = me.value?.id
    const on = !(myId !== undefined && m?.reactions?.[emoji]?.includes(myId))
    replace(await api.react(conv, seq, emoji, on))
  }

  function setAttentive(v: boolean) {
    attentive.value = v
    if (v && activeConv.value) markViewed(activeConv.value)
  }

  return {
    // state
    me,
    drafts,
    typingUntil,
    typingWho,
    presence,
    convs,
    messages,
    users,
    outbox,
    viewed,
    history,
    conn,
    activeConv,
    listLoaded,
    listError,
    attentive,
    reads,
    uploads,
    // getters
    sortedConvs,
    totalUnread,
    peerOf,
    displayName,
    avatarOf,
    userAvatar,
    unread,
    unreadLabel,
    visibleMessages,
    pendingOf,
    lastPending,
    historyOf,
    hasOlder,
    activityOf,
    mentionedMe,
    isTyping,
    userName,
    // actions
    start,
    stop,
    merge,
    loadConversations,
    open,
    close,
    loadOlder,
    markViewed,
    reloadViewed,
    sendText,
    sendEmoji,
    sendContent,
    startUpload,
    retryUpload,
    removeUpload,
    uploadsOf,
    groupGone,
    forgetConv,
    refreshReads,
    onCallFrame,
    onFrameError,
    signal,
    retry,
    discard,
    reconnectNow,
    setAttentive,
    ensureConv,
    clearCaches,
    setDraft,
    typing,
    setConvFlags,
    recallMessage,
    toggleReaction,
    editMessage,
  }
})
