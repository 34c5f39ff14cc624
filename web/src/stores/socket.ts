// The connection: the one `ChatClient` (socket, outbox, sync) of a logged-in tab, and the router
// that hands each frame to the store that owns it: messages, acks, updates, reads, the list and
// groups to the chat store; typing and presence to the presence store; contacts to the contacts
// store; group read lists to the receipts store; call signalling to whoever listens (the calls
// store). It also starts and stops those stores with the session, so a log-out leaves nothing of
// the last user behind.
//
// Invariant: this is the only store that creates a ChatClient or subscribes to its events; the
// chat store sends through the client as its `ChatPort`, and everything else that sends on the
// socket goes through the actions below.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { ChatClient, defaultSocketUrl, type ClientOptions, type ConnState } from '@/protocol/client'
import { userKey } from '@/lib/persist'
import type { CallClientFrame, CallServerFrame, ConvId, Message, User, UserId } from '@/protocol/types'
import { useChat, type ConvMeta } from './chat'
import { useContacts } from './contacts'
import { useDrafts } from './drafts'
import { useFavorites } from './favorites'
import { useHistory } from './history'
import { usePresence } from './presence'
import { useReceipts } from './receipts'
import { useUploads } from './uploads'
import { useUsers } from './users'

export interface ChatHooks {
  /** A live message from someone else arrived. */
  onIncoming?: (m: Message, conv: ConvMeta) => void
  /** One of my messages was stored (its `ack`). */
  onSent?: () => void
  /** The socket was closed with 4001. */
  onRevoked?: () => void
  /** A group's membership or settings changed (a `group` frame or a system message). */
  onGroupChanged?: (groupId: number) => void
  /** The browser's session now belongs to another user (logged in from another tab). */
  onWrongUser?: () => void
}

export const useSocket = defineStore('socket', () => {
  const conn = ref<ConnState>('connecting')
  let client: ChatClient | null = null
  let userId: UserId | null = null
  let hooks: ChatHooks = {}
  let unsubscribers: (() => void)[] = []
  const callListeners = new Set<(f: CallServerFrame) => void>()
  /** `error` frames that answer no send (call signalling, say). */
  const errorListeners = new Set<(code: string, message: string) => void>()

  /** Starts the session's stores for a logged-in user: loads chats, then opens the socket. */
  async function start(user: User, h: ChatHooks = {}, clientOverrides: Partial<ClientOptions> = {}) {
    if (client && userId === user.id) return
    stop()
    userId = user.id
    hooks = h
    const c = (client = new ChatClient({
      url: typeof window === 'undefined' ? 'ws://localhost/api/ws' : defaultSocketUrl(),
      userId: user.id,
      storageKey: userKey(user.id),
      storage: localStorage,
      WebSocket: WebSocket as unknown as ClientOptions['WebSocket'],
      ...clientOverrides,
    }))
    const chat = useChat()
    useDrafts().load(user.id)
    chat.begin(user, c)
    unsubscribers = route(c)
    void useContacts().load(user.id)
    // The list first, so the first run's baseline is set before sync brings in old messages.
    await chat.loadConversations()
    if (client === c) c.start()
  }

  /** Which store each event of the client goes to. */
  function route(c: ChatClient): (() => void)[] {
    const chat = useChat()
    const presence = usePresence()
    const contacts = useContacts()
    return [
      c.on('state', (s) => (conn.value = s)),
      c.on('outbox', (entries) => chat.setOutbox(entries)),
      c.on('message', (m, live) => onMessage(m, live)),
      c.on('ack', (_id, m) => {
        chat.applyAck(m)
        hooks.onSent?.()
      }),
      c.on('update', (m) => chat.applyUpdate(m)),
      c.on('synced', (reload) => {
        void chat.applySynced(reload)
        // Contact changes made while this socket was away.
        if (userId !== null) void contacts.load(userId)
      }),
      c.on('read', (conv, user, seq) => chat.applyRead(conv, user, seq)),
      c.on('typing', (conv, user) => presence.applyTyping(conv, user)),
      c.on('presence', (user, online, lastSeen) => presence.applyPresence(user, online, lastSeen)),
      c.on('conversation', (v) => {
        if (v.group) chat.noteGroupNews(v.id)
        chat.applySummary(v)
      }),
      c.on('contact', (x) => contacts.applyContact(x)),
      c.on('contactRequest', (r) => contacts.applyRequest(r)),
      c.on('hidden', (conv, seq) => chat.applyHidden(conv, seq)),
      c.on('remark', (user, remark) => contacts.applyRemark(user, remark)),
      c.on('group', (g) => {
        chat.applyGroup(g)
        hooks.onGroupChanged?.(g.id)
      }),
      c.on('groupGone', (id, reason) => chat.groupGone(id, reason)),
      c.on('favorite', (f) => useFavorites().applyFavorite(f)),
      c.on('favoriteRemoved', (id) => useFavorites().applyRemoved(id)),
      c.on('call', (f) => {
        for (const fn of callListeners) fn(f)
      }),
      c.on('error', (code, message) => {
        for (const fn of errorListeners) fn(code, message)
      }),
      c.on('revoked', () => hooks.onRevoked?.()),
      c.on('wrongUser', () => hooks.onWrongUser?.()),
    ]
  }

  function onMessage(m: Message, live: boolean) {
    const chat = useChat()
    const o = chat.applyMessage(m, live)
    usePresence().messageFrom(m.conv, m.sender)
    if (!o.added) return
    if (m.conv.startsWith('g:')) useReceipts().noteMessage(m.conv, m.sender, m.seq)
    if (o.groupChanged !== null) hooks.onGroupChanged?.(o.groupChanged)
    if (o.notify) hooks.onIncoming?.(m, chat.convs[m.conv]!)
  }

  /** Closes the socket and forgets the session's state (log-out, or another user). */
  function stop() {
    useContacts().reset()
    for (const u of unsubscribers) u()
    unsubscribers = []
    client?.stop()
    client = null
    userId = null
    useChat().reset()
    useHistory().reset()
    useUsers().reset()
    useDrafts().reset()
    usePresence().reset()
    useReceipts().reset()
    useUploads().reset()
    useFavorites().reset()
    conn.value = 'connecting'
  }

  function reconnectNow() {
    client?.reconnectNow()
  }

  /** Tells the other people of `conv` that I am typing (the client spaces these out). */
  function typing(conv: ConvId) {
    client?.typing(conv)
  }

  /** The page was shown or hidden (App.vue's `visibilitychange`); the server uses it for push. */
  function setVisible(visible: boolean) {
    client?.setVisible(visible)
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

  return { conn, start, stop, reconnectNow, typing, setVisible, onCallFrame, onFrameError, signal }
})
