// Conversations and their messages: the chat list, each chat's message log, unread counts and the
// outbox mirror. The socket store owns the connection: it starts this store with `begin`, hands
// it the frames it owns (`applyMessage`, `applyUpdate`, ...) and is the port this store sends
// through. History pages are fetched by the history store, people by the users store. Views read
// the store and call its actions.
//
// Invariants:
// - `messages[conv]` is sorted by seq with no duplicates: every message, from the socket, an ack
//   or the history route, goes through `merge`, which keys by (conv, seq) (lib/messageLog.ts).
// - A chat shows only the contiguous run of messages that ends at the newest one it knows
//   (`visibleMessages`); older pages are fetched `before` that run's first seq, so a gap left by a
//   sync is filled before it can be shown.
// - Unread = messages from others with seq above `viewed[conv]`: the server's read position
//   (`read_seq`, moved with `read` frames and shared by all devices), or the localStorage copy
//   when the server is older than read receipts; the higher of the two wins.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError } from '@/protocol/api'
import type { ChatClient, OutboxEntry, SendOptions } from '@/protocol/client'
import { contentFromInput } from '@/lib/content'
import * as cache from '@/lib/chatCache'
import * as conversation from '@/lib/conversation'
import type { ConvMeta } from '@/lib/conversation'
import * as log from '@/lib/messageLog'
import { hide, shown } from '@/lib/hidden'
import { GroupNews } from '@/lib/groupNews'
import { loadViewed, raiseToStored, saveViewed } from '@/lib/viewed'
import {
  peerIdOf,
  type ConvId,
  type ConversationSummary,
  type GroupView,
  type Message,
  type SendableContent,
  type User,
  type UserId,
} from '@/protocol/types'
import { useHistory } from './history'
import { useReceipts } from './receipts'
import { useUsers } from './users'

export type { ConvMeta } from '@/lib/conversation'

/** What the chat store sends through: the socket store's `ChatClient`. */
export type ChatPort = Pick<ChatClient, 'outbox' | 'send' | 'markRead' | 'noteSeen' | 'retry' | 'discard'>

/** What a message from the socket calls for beyond this store (the socket store does it). */
export interface MessageOutcome {
  /** The message was not known before. */
  added: boolean
  /** A live message from someone else in a chat not in view: tell the user. */
  notify: boolean
  /** A system message changed this group's membership or settings. */
  groupChanged: number | null
}

export const useChat = defineStore('chat', () => {
  const me = ref<User | null>(null)
  const convs = ref<Record<ConvId, ConvMeta>>({})
  const messages = ref<log.Logs>({})
  const outbox = ref<OutboxEntry[]>([])
  const viewed = ref<Record<ConvId, number>>({})
  /** Conversations with more unread messages than were fetched (shown as 99+). */
  const unreadOverflow = ref<Record<ConvId, boolean>>({})
  const activeConv = ref<ConvId | null>(null)
  const listLoaded = ref(false)
  const listError = ref<string | null>(null)
  /** Whether the user can be treated as looking at the active chat (tab visible, focused). */
  const attentive = ref(true)

  let port: ChatPort | null = null
  let firstRun = false

  // ---- getters ----

  function activityOf(c: ConvMeta): number {
    return conversation.activityOf(c, outbox.value)
  }

  /** Pinned chats first, then newest activity; hidden chats left out. */
  const sortedConvs = computed(() => conversation.sortConvs(Object.values(convs.value), outbox.value, activeConv.value))

  function peerOf(conv: ConvId): User | null {
    const c = convs.value[conv]
    const id = c?.peerId ?? (me.value ? peerIdOf(conv, me.value.id) : null)
    return id === null ? null : (useUsers().byId[id] ?? null)
  }

  function displayName(conv: ConvId): string {
    const g = convs.value[conv]?.group
    if (g) return g.name
    const p = peerOf(conv)
    if (p) return useUsers().display(p)
    const id = me.value ? peerIdOf(conv, me.value.id) : null
    return id === null ? conv : `#${id}`
  }

  /** The avatar file id of a chat (the group's, or the other person's). */
  function avatarOf(conv: ConvId): string | null {
    const c = convs.value[conv]
    if (c?.group) return c.group.avatar ?? null
    return peerOf(conv)?.avatar ?? null
  }

  function unread(conv: ConvId): number {
    return log.unreadCount(messages.value[conv], viewed.value[conv] ?? 0, me.value?.id)
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
    const myId = me.value?.id
    if (myId === undefined) return false
    return log.mentionsAfter(messages.value[conv], viewed.value[conv] ?? 0, myId)
  }

  /** The contiguous run of messages ending at the newest known one. */
  function visibleMessages(conv: ConvId): Message[] {
    return shown(log.visibleRun(messages.value[conv]))
  }

  function pendingOf(conv: ConvId): OutboxEntry[] {
    return outbox.value.filter((e) => e.conv === conv)
  }

  function lastPending(conv: ConvId): OutboxEntry | null {
    const p = pendingOf(conv)
    return p.length ? p[p.length - 1]! : null
  }

  /** Read-only view for templates (does not create state while rendering). */
  function historyOf(conv: ConvId) {
    return useHistory().of(conv)
  }

  function hasOlder(conv: ConvId): boolean {
    return !historyOf(conv).complete && log.mayHaveOlder(messages.value[conv])
  }

  // ---- merging ----

  function ensureConv(id: ConvId, peer?: User | null): ConvMeta {
    let c = convs.value[id]
    if (!c) {
      const peerId = peer?.id ?? (me.value ? peerIdOf(id, me.value.id) : null)
      c = convs.value[id] = conversation.newConv(id, peerId, Date.now())
      if (peerId !== null && !useUsers().byId[peerId] && !peer) void useUsers().fetch(peerId)
    }
    if (peer) useUsers().put(peer)
    return c
  }

  // ---- group news (lib/groupNews.ts: an answer older than live news keeps out of the view) ----
  const news = new GroupNews()
  const noteGroupNews = (conv: ConvId) => news.note(conv)
  const groupMark = () => news.mark()
  const groupNewerThan = (conv: ConvId, mark: number) => news.newerThan(conv, mark)

  /**
   * Applies a `ConversationView` from the list or a `conversation` frame. `mark` (from
   * `groupMark()` before the request) leaves out a group view older than live news.
   */
  function applySummary(s: ConversationSummary, mark?: number) {
    if (s.group && mark !== undefined && groupNewerThan(s.id, mark)) s = { ...s, group: undefined }
    conversation.applySummary(ensureConv(s.id, s.peer ?? null), s)
    if (s.last_message) merge(s.last_message)
    if (typeof s.read_seq === 'number') {
      const local = viewed.value[s.id] ?? 0
      if (s.read_seq > local) {
        viewed.value[s.id] = s.read_seq
        delete unreadOverflow.value[s.id]
      } else if (local > s.read_seq) {
        // Read here before the server knew (offline, or an older server): tell it.
        port?.markRead(s.id, local)
      }
    }
  }

  /** Replaces a known message after an edit, recall or reaction (`update` frame). */
  function replace(m: Message) {
    mergeFrame({ type: 'update', message: m })
    const c = convs.value[m.conv]
    if (c?.last_message?.seq === m.seq) c.last_message = m
    // Saved now, not a second later: a cached copy is not replaced by the server's after a reload,
    // so a reload in between would show the message as it was (a recalled text, the quote of a
    // reply to it, an edit undone).
    saveCacheNow()
  }

  /** Inserts a message keyed by (conv, seq); returns false if it was already known. */
  function merge(m: Message): boolean {
    return mergeFrame({ type: 'message', message: m }).added
  }

  /** Applies a message (from anywhere) or a frame that changes messages to the log. */
  function mergeFrame(f: log.LogFrame): log.LogOutcome {
    if (f.type === 'message') conversation.noteMessage(ensureConv(f.message.conv), f.message)
    if (f.type !== 'synced') scheduleCacheSave()
    return log.applyFrame(messages.value, f)
  }

  function mergeMany(list: Message[]) {
    for (const m of list) merge(m)
    const top = list.reduce((mx, m) => Math.max(mx, m.seq), 0)
    if (list.length && port) port.noteSeen(list[0]!.conv, top)
  }

  // ---- frames from the socket store ----

  /** Starts the store for a logged-in user, sending through `p`; restores the cached chats. */
  function begin(user: User, p: ChatPort) {
    reset()
    me.value = user
    port = p
    useUsers().put(user)
    const stored = loadViewed(user.id)
    firstRun = stored === null
    viewed.value = stored ?? {}
    outbox.value = p.outbox
    restoreListCache(user.id)
    for (const m of cache.loadMessages(user.id)) merge(m)
    for (const e of outbox.value) ensureConv(e.conv)
  }

  /** Forgets everything (log-out, or another user). */
  function reset() {
    cacheSave.cancel()
    port = null
    news.forget()
    me.value = null
    convs.value = {}
    messages.value = {}
    outbox.value = []
    viewed.value = {}
    unreadOverflow.value = {}
    activeConv.value = null
    listLoaded.value = false
    listError.value = null
  }

  function setOutbox(entries: OutboxEntry[]) {
    outbox.value = entries
  }

  /** A `message` frame (`live` is false while answering a sync). */
  function applyMessage(m: Message, live: boolean): MessageOutcome {
    const { added, gap } = mergeFrame({ type: 'message', message: m })
    const out: MessageOutcome = { added, notify: false, groupChanged: null }
    if (!added || !me.value) return out
    if (gap) useHistory().fillGap(gap, mergeMany)
    const c = convs.value[m.conv]!
    // A new message brings a hidden chat back.
    if (c.hidden && m.seq > c.hidden_at) c.hidden = false
    if (m.conv.startsWith('g:') && m.content.kind === 'system') {
      const ev = m.content.event
      if (ev?.type === 'dissolved') c.gone = 'dissolved'
      // The newest notice change carries the text (the `group` frame follows; a sync brings only
      // the message, the list is fetched after it): the banner shows it at once either way.
      if (ev?.type === 'notice_changed' && typeof ev.notice === 'string' && c.group && m.seq >= c.last_seq) {
        c.group = { ...c.group, notice: ev.notice }
        noteGroupNews(m.conv)
      }
      out.groupChanged = Number(m.conv.slice(2))
    }
    if (activeConv.value === m.conv && attentive.value) markViewed(m.conv)
    else out.notify = live && m.sender !== me.value.id && m.content.kind !== 'system' && !c.muted && m.content.kind !== 'call'
    return out
  }

  /** One of my sends was stored. */
  function applyAck(m: Message) {
    merge(m)
    fillGapBelow(m)
    if (activeConv.value === m.conv) markViewed(m.conv)
  }

  /** An `update` frame: a message was edited, recalled or reacted to. */
  function applyUpdate(m: Message) {
    replace(m)
  }

  /** The sync answer is complete: chats in `reload` missed too much and are fetched anew. */
  async function applySynced(reload: ConvId[]) {
    mergeFrame({ type: 'synced', reload })
    for (const conv of reload) {
      useHistory().forget(conv)
      if (activeConv.value === conv) void open(conv)
    }
    await loadConversations()
  }

  /** `user` has read `conv` up to `seq`: me on another device, or the other person of a 1:1 chat. */
  function applyRead(conv: ConvId, user: UserId, seq: number) {
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
  }

  /** A `group` frame: its view changed, or I was added to it. */
  function applyGroup(g: GroupView) {
    noteGroupNews(`g:${g.id}`)
    const cm = convs.value[`g:${g.id}`]
    if (cm) conversation.applyGroup(cm, g)
    else if (g.my_role) {
      // Added to a group: it shows in the list at once (its first message follows).
      ensureConv(`g:${g.id}`).group = g
    }
  }

  /** If a message landed above a hole in a chat whose history is loaded, fetches the hole. */
  function fillGapBelow(m: Message) {
    const gap = log.gapBelow(messages.value, m.conv, m.seq)
    if (gap) useHistory().fillGap(gap, mergeMany)
  }

  async function loadConversations() {
    if (!me.value) return
    const forUser = me.value.id
    const mark = groupMark()
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
      applySummary(s, mark)
      if (firstRun) {
        // A new browser treats the existing history as read instead of flooding the badges.
        viewed.value[s.id] = s.last_seq
        port?.noteSeen(s.id, s.last_seq)
      }
    }
    if (firstRun) {
      firstRun = false
      persistViewed()
    }
    listLoaded.value = true
    cache.saveList(forUser, list)
    // Fetch what arrived since the user last looked, so the badges are exact.
    await Promise.all(
      list
        .filter((s) => s.last_seq > (viewed.value[s.id] ?? 0) && s.id !== activeConv.value)
        .map((s) => fetchUnread(s.id, viewed.value[s.id] ?? 0, s.last_seq)),
    )
  }

  /** The newest messages of the busiest chats, for an instant (and offline) first paint. */
  const cacheSave = new cache.DelayedSave(() => {
    if (me.value) cache.saveNewest(me.value.id, sortedConvs.value, visibleMessages)
  })
  function scheduleCacheSave() {
    if (me.value) cacheSave.schedule()
  }
  function saveCacheNow() {
    cacheSave.now()
  }

  /** Forgets the cached chats on an explicit log-out (a shared computer); the outbox stays. */
  function clearCaches() {
    if (!me.value) return
    cacheSave.cancel()
    cache.clear(me.value.id)
  }

  function restoreListCache(userId: UserId) {
    for (const s of cache.loadList(userId)) conversation.applyCached(ensureConv(s.id, s.peer ?? null), s)
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
    await useHistory().loadNewest(conv, !!me.value && peerIdOf(conv, me.value.id) !== null, mergeMany)
    if (activeConv.value === conv && attentive.value) markViewed(conv)
  }

  function close(conv: ConvId) {
    if (activeConv.value === conv) activeConv.value = null
  }

  async function loadOlder(conv: ConvId): Promise<number> {
    if (historyOf(conv).loading || !hasOlder(conv)) return 0
    return useHistory().loadBefore(conv, visibleMessages(conv)[0]!.seq, merge)
  }

  function markViewed(conv: ConvId) {
    const c = convs.value[conv]
    const top = Math.max(c?.last_seq ?? 0, log.lastSeq(messages.value[conv]))
    if (c) c.mentioned = false
    if ((viewed.value[conv] ?? 0) >= top) return
    viewed.value[conv] = top
    delete unreadOverflow.value[conv]
    persistViewed()
    port?.markRead(conv, top)
  }

  function persistViewed() {
    if (me.value) saveViewed(me.value.id, viewed.value)
  }

  /** Re-reads the viewed positions another tab wrote. */
  function reloadViewed() {
    if (me.value) raiseToStored(me.value.id, viewed.value)
  }

  /** Sends what the user typed; returns false when there is nothing to send. */
  function sendText(conv: ConvId, text: string, opts: SendOptions = {}): boolean {
    const content = contentFromInput(text)
    if (!content || !port) return false
    ensureConv(conv)
    // A lone emoji cannot carry mentions in a useful way; they only go with text.
    port.send(conv, content, content.kind === 'text' ? opts : { replyTo: opts.replyTo })
    return true
  }

  /** Sends an uploaded image or file, or a sticker. */
  function sendContent(conv: ConvId, content: SendableContent, opts: SendOptions = {}) {
    if (!port) return
    ensureConv(conv)
    port.send(conv, content, opts)
  }

  function sendEmoji(conv: ConvId, emoji: string) {
    sendContent(conv, { kind: 'emoji', emoji })
  }

  /** Sends a failed message of the outbox again. */
  function retry(clientId: string) {
    port?.retry(clientId)
  }

  /** Drops a failed message from the outbox. */
  function discard(clientId: string) {
    port?.discard(clientId)
  }

  async function editMessage(conv: ConvId, seq: number, text: string) {
    replace(await api.editMessage(conv, seq, text))
  }

  /** A `hidden` frame: I deleted this message for myself; it stays as a placeholder, unshown. */
  function applyHidden(conv: ConvId, seq: number) {
    const m = log.find(messages.value, conv, seq)
    if (m && !m.hidden) {
      log.replace(messages.value, hide(m))
      scheduleCacheSave()
      // The list's preview may have been this message; the server knows the one before it.
      if (convs.value[conv]?.last_message?.seq === seq) void loadConversations()
    }
  }

  /** Deletes a message for me only (on all my devices). */
  async function hideMessage(conv: ConvId, seq: number) {
    await api.hideMessage(conv, seq)
    applyHidden(conv, seq)
  }

  async function recallMessage(conv: ConvId, seq: number) {
    replace(await api.recall(conv, seq))
  }

  async function toggleReaction(conv: ConvId, seq: number, emoji: string) {
    const m = log.find(messages.value, conv, seq)
    const myId = me.value?.id
    const on = !(myId !== undefined && m?.reactions?.[emoji]?.includes(myId))
    replace(await api.react(conv, seq, emoji, on))
  }

  /** Pins, mutes or hides a chat on the server; the answer (and other devices) update the list. */
  async function setConvFlags(conv: ConvId, flags: { pinned?: boolean; muted?: boolean; hidden?: boolean }) {
    const mark = groupMark()
    applySummary(await api.patchConversation(conv, flags), mark)
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
    useHistory().forget(conv)
  }

  /** Forgets a group chat (after leaving it from this device). */
  function forgetConv(conv: ConvId) {
    delete convs.value[conv]
    delete messages.value[conv]
    useHistory().forget(conv)
    useReceipts().forget(conv)
  }

  function setAttentive(v: boolean) {
    attentive.value = v
    if (v && activeConv.value) markViewed(activeConv.value)
  }

  return {
    // state
    me,
    convs,
    messages,
    outbox,
    viewed,
    activeConv,
    listLoaded,
    listError,
    attentive,
    // getters
    sortedConvs,
    totalUnread,
    peerOf,
    displayName,
    avatarOf,
    unread,
    unreadLabel,
    visibleMessages,
    pendingOf,
    lastPending,
    historyOf,
    hasOlder,
    activityOf,
    mentionedMe,
    // frames (from the socket store)
    begin,
    reset,
    setOutbox,
    applyMessage,
    applyAck,
    applyUpdate,
    applySynced,
    applyRead,
    applySummary,
    applyGroup,
    noteGroupNews,
    groupMark,
    groupNewerThan,
    applyHidden,
    groupGone,
    // actions
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
    retry,
    discard,
    forgetConv,
    setAttentive,
    ensureConv,
    clearCaches,
    setConvFlags,
    recallMessage,
    hideMessage,
    toggleReaction,
    editMessage,
  }
})
