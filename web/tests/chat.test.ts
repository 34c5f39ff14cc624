import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useChat } from '@/stores/chat'
import { usePresence } from '@/stores/presence'
import { useSocket } from '@/stores/socket'
import type { ConversationSummary, GroupView, Message, User } from '@/protocol/types'
import { FakeSocket, msg } from './fakes'

const me: User = { id: 3, username: 'ann', nickname: 'Ann', signature: '', gender: 'unknown', birthday: null, is_admin: false, created_at: 0 }
const bob: User = { ...me, id: 7, username: 'bob', nickname: 'Bob' }

/** A fake server for the HTTP routes the store calls. */
function fakeFetch(state: { conversations: ConversationSummary[]; history: Record<string, Message[]> }) {
  return vi.fn(async (input: string) => {
    const url = new URL(input, 'http://test')
    const json = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
    if (url.pathname === '/api/conversations') return json({ conversations: state.conversations })
    const m = /^\/api\/conversations\/([^/]+)\/messages$/.exec(url.pathname)
    if (m) {
      const conv = decodeURIComponent(m[1]!)
      const all = state.history[conv]
      if (!all) return json({ error: { code: 'not_found', message: 'No.' } }, 404)
      const before = url.searchParams.get('before')
      const after = url.searchParams.get('after')
      const limit = Number(url.searchParams.get('limit') ?? 50)
      let list = all.filter((x) => (before ? x.seq < Number(before) : true) && (after ? x.seq > Number(after) : true))
      let has_more: boolean
      if (after) {
        has_more = list.length > limit
        list = list.slice(0, limit)
      } else {
        has_more = list.length > limit
        list = list.slice(-limit)
      }
      return json({ messages: list, has_more })
    }
    const u = /^\/api\/users\/(\d+)$/.exec(url.pathname)
    if (u) return json(Number(u[1]) === bob.id ? bob : me)
    return json({ error: { code: 'not_found', message: 'No.' } }, 404)
  })
}

function history(conv: string, n: number, senderOf: (seq: number) => number = (s) => (s % 2 ? 7 : 3)) {
  return Array.from({ length: n }, (_, i) => msg(conv, i + 1, senderOf(i + 1)))
}

async function startStore(state: Parameters<typeof fakeFetch>[0]) {
  vi.stubGlobal('fetch', fakeFetch(state))
  await useSocket().start(me, {}, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
  return useChat()
}

beforeEach(() => {
  setActivePinia(createPinia())
  localStorage.clear()
  FakeSocket.reset()
})
afterEach(() => {
  useSocket().stop()
  vi.unstubAllGlobals()
})

describe('chat store', () => {
  it('keeps a group notice from a live frame when an older list answer lands after it', async () => {
    const group = (notice: string): GroupView => ({ id: 5, name: 'Hiking', notice, avatar: null, join_mode: 'open', owner: 7, member_count: 3, created_at: 0, my_role: 'member' })
    const summary = (notice: string): ConversationSummary => ({ id: 'g:5', last_seq: 1, last_message: msg('g:5', 1, 7), group: group(notice) })
    const chat = await startStore({ conversations: [summary('north gate')], history: {} })
    expect(chat.convs['g:5']!.group!.notice).toBe('north gate')
    // The list asked for after `synced` is answered only after the notice changed.
    let answer: (r: Response) => void = () => {}
    vi.stubGlobal('fetch', vi.fn(() => new Promise<Response>((r) => (answer = r))))
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'synced' })
    const notice = { kind: 'system', event: { type: 'notice_changed', by: 7, notice: 'south gate' } } as const
    ws.receive({ type: 'message', message: { ...msg('g:5', 2, 7), content: notice } })
    expect(chat.convs['g:5']!.group!.notice).toBe('south gate')
    ws.receive({ type: 'group', group: group('south gate') })
    answer(new Response(JSON.stringify({ conversations: [summary('north gate')] }), { headers: { 'Content-Type': 'application/json' } }))
    await vi.waitFor(() => expect(chat.listLoaded).toBe(true))
    await new Promise((r) => setTimeout(r, 0))
    expect(chat.convs['g:5']!.group!.notice).toBe('south gate')
    // A list asked for after the change is taken.
    vi.stubGlobal('fetch', fakeFetch({ conversations: [{ ...summary('west gate'), last_seq: 2 }], history: {} }))
    await chat.loadConversations()
    expect(chat.convs['g:5']!.group!.notice).toBe('west gate')
  })

  it('treats existing history as read on a new browser, then counts new messages from others', async () => {
    const h = history('d:3:7', 10)
    const chat = await startStore({
      conversations: [{ id: 'd:3:7', peer: bob, last_seq: 10, last_message: h[9]! }],
      history: { 'd:3:7': h },
    })
    expect(chat.unread('d:3:7')).toBe(0)
    const ws = FakeSocket.last
    ws.open()
    expect(ws.sent[0]).toEqual({ type: 'sync', cursors: { 'd:3:7': 10 } })
    ws.receive({ type: 'synced' })
    ws.receive({ type: 'message', message: msg('d:3:7', 11, 7) })
    ws.receive({ type: 'message', message: msg('d:3:7', 12, 3) })
    ws.receive({ type: 'message', message: msg('d:3:7', 13, 7) })
    expect(chat.unread('d:3:7')).toBe(2)
    expect(chat.totalUnread).toBe(2)
    expect(chat.displayName('d:3:7')).toBe('Bob')
  })

  it('fetches what arrived since the last visit on start so the badge is exact', async () => {
    const h = history('d:3:7', 30, (s) => (s > 20 && s % 3 === 0 ? 3 : 7))
    localStorage.setItem('chinwag:u3:viewed', JSON.stringify({ 'd:3:7': 20 }))
    const chat = await startStore({
      conversations: [{ id: 'd:3:7', peer: bob, last_seq: 30, last_message: h[29]! }],
      history: { 'd:3:7': h },
    })
    // 21..30 with 21, 24, 27, 30 mine
    expect(chat.unread('d:3:7')).toBe(6)
  })

  it('merges by (conv, seq): duplicates from sync, ack and history appear once, in order', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    chat.merge(msg('d:3:7', 2, 7))
    chat.merge(msg('d:3:7', 1, 7))
    chat.merge(msg('d:3:7', 3, 3))
    expect(chat.merge(msg('d:3:7', 2, 7))).toBe(false)
    expect(chat.messages['d:3:7']!.map((m) => m.seq)).toEqual([1, 2, 3])
    expect(chat.convs['d:3:7']!.last_seq).toBe(3)
  })

  it('shows only the contiguous run ending at the newest message', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    for (const s of [1, 2, 5, 6, 7]) chat.merge(msg('d:3:7', s, 7))
    expect(chat.visibleMessages('d:3:7').map((m) => m.seq)).toEqual([5, 6, 7])
    expect(chat.hasOlder('d:3:7')).toBe(true)
  })

  it('opens a chat with the newest page and loads older pages before the first shown message', async () => {
    const h = history('d:3:7', 120)
    const chat = await startStore({
      conversations: [{ id: 'd:3:7', peer: bob, last_seq: 120, last_message: h[119]! }],
      history: { 'd:3:7': h },
    })
    await chat.open('d:3:7')
    expect(chat.visibleMessages('d:3:7').map((m) => m.seq)).toEqual(h.slice(70).map((m) => m.seq))
    expect(chat.hasOlder('d:3:7')).toBe(true)
    expect(await chat.loadOlder('d:3:7')).toBe(50)
    expect(chat.visibleMessages('d:3:7')[0]!.seq).toBe(21)
    expect(await chat.loadOlder('d:3:7')).toBe(20)
    expect(chat.visibleMessages('d:3:7')).toHaveLength(120)
    expect(chat.hasOlder('d:3:7')).toBe(false)
  })

  it('fills a hole below a message that arrives above it in an open chat', async () => {
    const h = history('d:3:7', 10)
    const state = { conversations: [{ id: 'd:3:7', peer: bob, last_seq: 5, last_message: h[4]! }], history: { 'd:3:7': h.slice(0, 5) } }
    const chat = await startStore(state)
    await chat.open('d:3:7')
    expect(chat.visibleMessages('d:3:7').map((m) => m.seq)).toEqual([1, 2, 3, 4, 5])
    state.history['d:3:7'] = h
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'synced' })
    ws.receive({ type: 'message', message: h[9] })
    await vi.waitFor(() => expect(chat.visibleMessages('d:3:7').map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
  })

  it('opening an empty new 1:1 chat that the server does not know yet is not an error', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    await chat.open('d:3:7', bob)
    expect(chat.historyOf('d:3:7')).toMatchObject({ notFound: false, error: null, complete: true })
    expect(chat.displayName('d:3:7')).toBe('Bob')
  })

  it('marks the open chat viewed and persists it', async () => {
    const chat = await startStore({ conversations: [], history: { 'd:3:7': [] } })
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'synced' })
    ws.receive({ type: 'message', message: msg('d:3:7', 1, 7) })
    expect(chat.unread('d:3:7')).toBe(1)
    await chat.open('d:3:7')
    expect(chat.unread('d:3:7')).toBe(0)
    expect(JSON.parse(localStorage.getItem('chinwag:u3:viewed')!)).toEqual({ 'd:3:7': 1 })
    ws.receive({ type: 'message', message: msg('d:3:7', 2, 7) })
    expect(chat.unread('d:3:7')).toBe(0)
    chat.setAttentive(false)
    ws.receive({ type: 'message', message: msg('d:3:7', 3, 7) })
    expect(chat.unread('d:3:7')).toBe(1)
    chat.setAttentive(true)
    expect(chat.unread('d:3:7')).toBe(0)
  })

  it('tells the app about live messages from others in chats that are not open', async () => {
    vi.stubGlobal('fetch', fakeFetch({ conversations: [], history: {} }))
    const onIncoming = vi.fn()
    await useSocket().start(me, { onIncoming }, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'message', message: msg('d:3:7', 1, 7) }) // part of the sync: no ring
    ws.receive({ type: 'synced' })
    ws.receive({ type: 'message', message: msg('d:3:7', 2, 3) }) // mine
    ws.receive({ type: 'message', message: msg('d:3:7', 3, 7) })
    ws.receive({ type: 'message', message: msg('d:3:7', 3, 7) }) // duplicate
    expect(onIncoming).toHaveBeenCalledTimes(1)
    expect(onIncoming.mock.calls[0]![0].seq).toBe(3)
  })

  it('shows a sent message as pending, then once as stored after the ack and the echo', async () => {
    const chat = await startStore({ conversations: [], history: { 'd:3:7': [] } })
    expect(chat.sendText('d:3:7', '   ')).toBe(false)
    expect(chat.sendText('d:3:7', 'hello')).toBe(true)
    expect(chat.pendingOf('d:3:7')).toHaveLength(1)
    const entry = chat.pendingOf('d:3:7')[0]!
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:7'])
    const ws = FakeSocket.last
    ws.open()
    const send = ws.sentOfType('send')[0]!
    expect(send).toMatchObject({ client_id: entry.client_id, conv: 'd:3:7', content: { kind: 'text', text: 'hello' } })
    const stored = { ...msg('d:3:7', 1, 3, 'hello'), client_id: entry.client_id }
    ws.receive({ type: 'ack', client_id: entry.client_id, message: stored })
    ws.receive({ type: 'message', message: stored })
    expect(chat.pendingOf('d:3:7')).toHaveLength(0)
    expect(chat.visibleMessages('d:3:7').map((m) => m.seq)).toEqual([1])
  })

  it('sends a lone emoji as an emoji message', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    chat.sendText('d:3:7', '👍')
    chat.sendText('d:3:7', '👨‍👩‍👧')
    chat.sendText('d:3:7', 'ok 👍')
    expect(chat.outbox.map((e) => e.content)).toEqual([
      { kind: 'emoji', emoji: '👍' },
      { kind: 'emoji', emoji: '👨‍👩‍👧' },
      { kind: 'text', text: 'ok 👍' },
    ])
  })

  it('sorts chats by latest activity, including pending messages', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    chat.merge({ ...msg('d:3:7', 1, 7), ts: 1000 })
    chat.merge({ ...msg('d:3:8', 1, 8), ts: 2000 })
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:8', 'd:3:7'])
    chat.sendText('d:3:7', 'bump')
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:7', 'd:3:8'])
  })

  it('paints the cached list and messages at once on the next start, and forgets them on log-out', async () => {
    vi.useFakeTimers()
    const h = history('d:3:7', 5)
    const chat = await startStore({
      conversations: [{ id: 'd:3:7', peer: bob, last_seq: 5, last_message: h[4]! }],
      history: { 'd:3:7': h },
    })
    await chat.open('d:3:7')
    vi.advanceTimersByTime(1500)
    useSocket().stop()
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('offline'))))
    const again = useChat()
    await useSocket().start(me, {}, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => false })
    expect(again.displayName('d:3:7')).toBe('Bob')
    expect(again.visibleMessages('d:3:7').map((m) => m.seq)).toEqual([1, 2, 3, 4, 5])
    again.clearCaches()
    expect(localStorage.getItem('chinwag:u3:messages')).toBeNull()
    expect(localStorage.getItem('chinwag:u3:convs')).toBeNull()
    vi.useRealTimers()
  })

  it('uses the server read position, sends read frames, and follows reads from other devices', async () => {
    const h = history('d:3:7', 10, () => 7)
    const chat = await startStore({
      conversations: [{ id: 'd:3:7', peer: bob, last_seq: 10, last_message: h[9]!, read_seq: 7, unread: 3, peer_read_seq: 0 }],
      history: { 'd:3:7': h },
    })
    // No first-run guess: the server says 8..10 are unread.
    expect(chat.unread('d:3:7')).toBe(3)
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'synced' })
    // Another device of mine read up to 9.
    ws.receive({ type: 'read', conv: 'd:3:7', user: 3, seq: 9 })
    expect(chat.unread('d:3:7')).toBe(1)
    await chat.open('d:3:7')
    expect(chat.unread('d:3:7')).toBe(0)
    expect(ws.sentOfType('read').at(-1)).toEqual({ type: 'read', conv: 'd:3:7', seq: 10 })
    expect(ws.sentOfType('read').every((f) => (f.seq as number) >= 9)).toBe(true)
    // Bob read my messages.
    ws.receive({ type: 'read', conv: 'd:3:7', user: 7, seq: 10 })
    expect(chat.convs['d:3:7']!.peer_read_seq).toBe(10)
  })

  it('replaces a message on update, and keeps pinned chats first and muted ones out of the total', async () => {
    const chat = await startStore({ conversations: [], history: {} })
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'synced' })
    ws.receive({ type: 'message', message: { ...msg('d:3:7', 1, 7), ts: 1000 } })
    ws.receive({ type: 'message', message: { ...msg('d:3:8', 1, 8), ts: 2000 } })
    ws.receive({ type: 'update', message: { ...msg('d:3:7', 1, 7), ts: 1000, content: { kind: 'recalled' }, rev: 3 } })
    expect(chat.messages['d:3:7']![0]!.content).toEqual({ kind: 'recalled' })
    expect(chat.convs['d:3:7']!.last_message!.content).toEqual({ kind: 'recalled' })
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:8', 'd:3:7'])
    ws.receive({ type: 'conversation', conversation: { id: 'd:3:7', last_seq: 1, last_message: null, pinned: true, muted: false } })
    ws.receive({ type: 'conversation', conversation: { id: 'd:3:8', last_seq: 1, last_message: null, muted: true } })
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:7', 'd:3:8'])
    expect(chat.unread('d:3:8')).toBe(1)
    expect(chat.totalUnread).toBe(1)
  })

  it('shows who is typing until a message from them arrives', async () => {
    await startStore({ conversations: [], history: {} })
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'typing', conv: 'd:3:7', user: 7 })
    expect(usePresence().isTyping('d:3:7')).toBe(true)
    ws.receive({ type: 'message', message: msg('d:3:7', 1, 7) })
    expect(usePresence().isTyping('d:3:7')).toBe(false)
  })

  it('a message ends only the typing of its sender; typing right after one is shown', async () => {
    const p = usePresence()
    p.applyTyping('d:3:7', 7)
    p.messageFrom('d:3:7', 3)
    expect(p.isTyping('d:3:7')).toBe(true)
    p.messageFrom('d:3:7', 7)
    expect(p.isTyping('d:3:7')).toBe(false)
    // The next message being typed at once (frames of one connection come in order: this one
    // was sent after the message).
    p.applyTyping('d:3:7', 7)
    expect(p.isTyping('d:3:7')).toBe(true)
  })

  it('calls onRevoked when the socket closes with 4001', async () => {
    vi.stubGlobal('fetch', fakeFetch({ conversations: [], history: {} }))
    const onRevoked = vi.fn()
    const socket = useSocket()
    await socket.start(me, { onRevoked }, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
    FakeSocket.last.open()
    FakeSocket.last.serverClose(4001)
    expect(onRevoked).toHaveBeenCalledOnce()
    expect(socket.conn).toBe('stopped')
  })
})
