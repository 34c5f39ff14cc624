import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ChatClient, type ClientOptions, type ConnState } from '@/protocol/client'
import { FakeSocket, MemoryStorage, msg } from './fakes'

const ME = 3

function makeClient(storage = new MemoryStorage(), over: Partial<ClientOptions> = {}) {
  const target = new EventTarget()
  let online = true
  const client = new ChatClient({
    url: 'ws://test/api/ws',
    userId: ME,
    storageKey: 'chinwag:u3',
    storage,
    WebSocket: FakeSocket,
    random: () => 0.5,
    eventTarget: target,
    isOnline: () => online,
    backoff: { baseMs: 100, maxMs: 2000 },
    heartbeat: { intervalMs: 20_000, timeoutMs: 5_000 },
    ...over,
  })
  const states: ConnState[] = []
  client.on('state', (s) => states.push(s))
  return {
    client,
    storage,
    states,
    goOffline() {
      online = false
      target.dispatchEvent(new Event('offline'))
    },
    goOnline() {
      online = true
      target.dispatchEvent(new Event('online'))
    },
  }
}

function storedOutbox(storage: MemoryStorage) {
  return JSON.parse(storage.getItem('chinwag:u3:outbox') ?? '[]') as { client_id: string; status: string }[]
}

beforeEach(() => {
  FakeSocket.reset()
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('ChatClient connection', () => {
  it('sends sync with the persisted cursors right after connecting', () => {
    const storage = new MemoryStorage()
    storage.setItem('chinwag:u3:cursors', JSON.stringify({ 'd:3:7': 41 }))
    const { client } = makeClient(storage)
    client.start()
    const ws = FakeSocket.last
    expect(ws.url).toBe('ws://test/api/ws')
    ws.open()
    expect(ws.sent[0]).toEqual({ type: 'sync', cursors: { 'd:3:7': 41 } })
    expect(client.state).toBe('syncing')
    ws.receive({ type: 'synced' })
    expect(client.state).toBe('online')
  })

  it('says whether the page is visible after every connect and on every change', () => {
    let shown = false
    const { client } = makeClient(new MemoryStorage(), { isVisible: () => shown })
    // Before the socket is up nothing is sent; the latest state goes out after `hello`.
    client.setVisible(true)
    client.setVisible(false)
    client.start()
    let ws = FakeSocket.last
    ws.open()
    expect(ws.sentOfType('visibility')).toEqual([{ type: 'visibility', visible: false }])
    client.setVisible(true)
    client.setVisible(true) // no change, no frame
    client.setVisible(false)
    expect(ws.sentOfType('visibility').map((f) => f.visible)).toEqual([false, true, false])
    shown = true // read once, at construction: setVisible is what reports changes
    client.setVisible(true)
    ws.serverClose(1006)
    vi.advanceTimersByTime(200)
    ws = FakeSocket.last
    ws.open()
    expect(ws.sentOfType('visibility')).toEqual([{ type: 'visibility', visible: true }])
  })

  it('starts from the page state it reads at construction', () => {
    const { client } = makeClient(new MemoryStorage(), { isVisible: () => false })
    client.start()
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('visibility')).toEqual([{ type: 'visibility', visible: false }])
  })

  it('reconnects with exponential backoff and jitter, then syncs again', () => {
    const { client } = makeClient(new MemoryStorage(), { random: () => 0 })
    client.start()
    FakeSocket.last.serverClose(1006)
    // attempt 0: ceiling 100ms, jitter floor is half of it.
    vi.advanceTimersByTime(49)
    expect(FakeSocket.all).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(2)
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(99)
    expect(FakeSocket.all).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(3)
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(200)
    expect(FakeSocket.all).toHaveLength(4)
    // A hello resets the backoff.
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'hello', user: { id: 3, username: 'ann', nickname: 'Ann' } })
    FakeSocket.last.serverClose(1001)
    vi.advanceTimersByTime(50)
    expect(FakeSocket.all).toHaveLength(5)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('sync')).toHaveLength(1)
  })

  it('caps the backoff at maxMs', () => {
    const { client } = makeClient(new MemoryStorage(), { random: () => 1 })
    client.start()
    for (let i = 0; i < 10; i++) {
      FakeSocket.last.serverClose(1006)
      vi.advanceTimersByTime(2000)
    }
    expect(FakeSocket.all).toHaveLength(11)
  })

  it('sends nothing before hello, and stops if hello names another user', () => {
    FakeSocket.helloUser = null
    const h = makeClient()
    const wrong = vi.fn()
    h.client.on('wrongUser', wrong)
    h.client.send('d:3:7', { kind: 'text', text: 'private' })
    h.client.start()
    const ws = FakeSocket.last
    ws.open()
    expect(ws.sent).toEqual([])
    ws.receive({ type: 'hello', user: { id: 9, username: 'eve', nickname: 'Eve' } })
    expect(ws.sent).toEqual([])
    expect(wrong).toHaveBeenCalledOnce()
    expect(h.client.state).toBe('stopped')
    expect(h.client.outbox).toHaveLength(1)
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.all).toHaveLength(1)
  })

  it('goes to the login screen on 4001 and never reconnects', () => {
    const { client } = makeClient()
    const revoked = vi.fn()
    client.on('revoked', revoked)
    client.start()
    FakeSocket.last.open()
    FakeSocket.last.serverClose(4001)
    expect(revoked).toHaveBeenCalledOnce()
    expect(client.state).toBe('stopped')
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.all).toHaveLength(1)
  })

  it('reconnects at once on 4008 and syncs from the cursors', () => {
    const { client } = makeClient(new MemoryStorage(), { random: () => 0 })
    client.start()
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'message', message: msg('d:3:7', 5, 7) })
    // Fail a few times first so the backoff has grown.
    ws.serverClose(1006)
    vi.advanceTimersByTime(50)
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(100)
    FakeSocket.last.open()
    FakeSocket.last.serverClose(4008)
    vi.advanceTimersByTime(50)
    expect(FakeSocket.all).toHaveLength(4)
    FakeSocket.last.open()
    expect(FakeSocket.last.sent[0]).toEqual({ type: 'sync', cursors: { 'd:3:7': 5 } })
  })

  it('drops the socket when the browser goes offline and reconnects when it is back', () => {
    const h = makeClient()
    h.client.start()
    const ws = FakeSocket.last
    ws.open()
    h.goOffline()
    expect(ws.closedWith).toBe(1000)
    expect(h.client.state).toBe('offline')
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.all).toHaveLength(1)
    h.goOnline()
    expect(FakeSocket.all).toHaveLength(2)
  })

  it('treats a socket that does not answer pings as dead', () => {
    const { client } = makeClient()
    client.start()
    const ws = FakeSocket.last
    ws.open()
    vi.advanceTimersByTime(20_000)
    expect(ws.sentOfType('ping')).toHaveLength(1)
    vi.advanceTimersByTime(5_000)
    expect(ws.closedWith).toBe(4000)
    vi.advanceTimersByTime(100)
    expect(FakeSocket.all).toHaveLength(2)
    expect(client.state).toBe('connecting')
  })

  it('keeps a socket that answers pings', () => {
    const { client } = makeClient()
    client.start()
    const ws = FakeSocket.last
    ws.open()
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(20_000)
      ws.receive({ type: 'pong' })
    }
    expect(ws.closedWith).toBeNull()
    expect(FakeSocket.all).toHaveLength(1)
  })
})

describe('ChatClient outbox', () => {
  it('persists a message typed while offline and sends it after connecting', () => {
    const h = makeClient()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'hi' })
    expect(e.status).toBe('sending')
    expect(storedOutbox(h.storage).map((x) => x.client_id)).toEqual([e.client_id])
    h.client.start()
    const ws = FakeSocket.last
    ws.open()
    expect(ws.sent).toEqual([
      { type: 'sync', cursors: {} },
      { type: 'visibility', visible: true },
      { type: 'send', client_id: e.client_id, conv: 'd:3:7', content: { kind: 'text', text: 'hi' } },
    ])
  })

  it('re-sends the same client_id after every reconnect until acked', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'hi' })
    expect(FakeSocket.last.sentOfType('send')).toHaveLength(1)
    for (let i = 0; i < 3; i++) {
      FakeSocket.last.serverClose(1006)
      vi.advanceTimersByTime(5000)
      FakeSocket.last.open()
      expect(FakeSocket.last.sentOfType('send')).toEqual([
        { type: 'send', client_id: e.client_id, conv: 'd:3:7', content: { kind: 'text', text: 'hi' } },
      ])
    }
    const acked = vi.fn()
    h.client.on('ack', acked)
    const m = { ...msg('d:3:7', 9, ME, 'hi'), client_id: e.client_id }
    FakeSocket.last.receive({ type: 'ack', client_id: e.client_id, message: m })
    expect(acked).toHaveBeenCalledWith(e.client_id, m)
    expect(h.client.outbox).toEqual([])
    expect(h.storage.getItem('chinwag:u3:outbox')).toBeNull()
    expect(h.client.cursors['d:3:7']).toBe(9)
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')).toEqual([])
    expect(FakeSocket.last.sent[0]).toEqual({ type: 'sync', cursors: { 'd:3:7': 9 } })
  })

  it('settles an entry whose message comes back in a sync without an ack', () => {
    const h = makeClient()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'hi' })
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.serverClose(1006) // the ack was lost with the socket
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    const messages: unknown[] = []
    h.client.on('message', (m, live) => messages.push([m.seq, live]))
    FakeSocket.last.receive({ type: 'message', message: { ...msg('d:3:7', 4, ME, 'hi'), client_id: e.client_id } })
    FakeSocket.last.receive({ type: 'synced' })
    expect(h.client.outbox).toEqual([])
    expect(messages).toEqual([[4, false]])
  })

  it('does not settle on another user reusing the client_id', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'hi' })
    FakeSocket.last.receive({ type: 'message', message: { ...msg('d:3:7', 4, 7), client_id: e.client_id } })
    expect(h.client.outbox).toHaveLength(1)
  })

  it('marks an entry failed on an error frame, stops re-sending it, and retries with the same id', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    const e = h.client.send('d:3:9', { kind: 'text', text: 'hi' })
    FakeSocket.last.receive({ type: 'error', client_id: e.client_id, code: 'forbidden', message: 'No.' })
    expect(h.client.outbox[0]).toMatchObject({ status: 'failed', error: { code: 'forbidden', message: 'No.' } })
    expect(storedOutbox(h.storage)[0]!.status).toBe('failed')
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')).toEqual([])
    h.client.retry(e.client_id)
    expect(h.client.outbox[0]!.status).toBe('sending')
    expect(h.client.outbox[0]!.error).toBeUndefined()
    expect(FakeSocket.last.sentOfType('send')).toEqual([
      { type: 'send', client_id: e.client_id, conv: 'd:3:9', content: { kind: 'text', text: 'hi' } },
    ])
  })

  it('keeps an entry sending after a transient error and sends it again after a pause', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'hi' })
    FakeSocket.last.receive({ type: 'error', client_id: e.client_id, code: 'unavailable', message: 'Later.' })
    expect(h.client.outbox[0]!.status).toBe('sending')
    expect(FakeSocket.last.sentOfType('send')).toHaveLength(1)
    vi.advanceTimersByTime(200)
    expect(FakeSocket.last.sentOfType('send')).toHaveLength(2)
    FakeSocket.last.receive({ type: 'error', client_id: e.client_id, code: 'busy', message: 'Later.' })
    vi.advanceTimersByTime(399)
    expect(FakeSocket.last.sentOfType('send')).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.last.sentOfType('send')).toHaveLength(3)
    FakeSocket.last.receive({ type: 'ack', client_id: e.client_id, message: { ...msg('d:3:7', 1, ME), client_id: e.client_id } })
    expect(h.client.outbox).toEqual([])
  })

  it('reports error frames without a client_id separately', () => {
    const h = makeClient()
    const errors: string[] = []
    h.client.on('error', (code) => errors.push(code))
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'error', code: 'bad_frame', message: 'What?' })
    expect(errors).toEqual(['bad_frame'])
  })

  it('discard removes a failed entry for good', () => {
    const h = makeClient()
    const e = h.client.send('d:3:7', { kind: 'text', text: 'x' })
    h.client.discard(e.client_id)
    expect(h.client.outbox).toEqual([])
    expect(h.storage.getItem('chinwag:u3:outbox')).toBeNull()
  })

  it('a reloaded page finds the outbox and sends it in order', () => {
    const storage = new MemoryStorage()
    const first = makeClient(storage)
    const a = first.client.send('d:3:7', { kind: 'text', text: 'one' })
    vi.advanceTimersByTime(10)
    const b = first.client.send('d:3:7', { kind: 'text', text: 'two' })
    first.client.stop()
    const second = makeClient(storage)
    expect(second.client.outbox.map((e) => e.client_id)).toEqual([a.client_id, b.client_id])
    second.client.start()
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send').map((f) => f.client_id)).toEqual([a.client_id, b.client_id])
  })

  it('two tabs writing the outbox do not erase each other', () => {
    const storage = new MemoryStorage()
    const tab1 = makeClient(storage)
    const tab2 = makeClient(storage)
    const a = tab1.client.send('d:3:7', { kind: 'text', text: 'from tab 1' })
    const b = tab2.client.send('d:3:7', { kind: 'text', text: 'from tab 2' })
    expect(storedOutbox(storage).map((e) => e.client_id).sort()).toEqual([a.client_id, b.client_id].sort())
    tab1.client.discard(a.client_id)
    expect(storedOutbox(storage).map((e) => e.client_id)).toEqual([b.client_id])
  })

  it('makes client ids of at most 64 characters that do not repeat', () => {
    const h = makeClient()
    const ids = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const e = h.client.send('d:3:7', { kind: 'text', text: String(i) })
      expect(e.client_id.length).toBeLessThanOrEqual(64)
      ids.add(e.client_id)
    }
    expect(ids.size).toBe(200)
  })
})

describe('ChatClient receipts, edits and typing', () => {
  it('sends read positions after hello, re-sends unconfirmed ones after a reconnect', () => {
    const h = makeClient()
    h.client.markRead('d:3:7', 4) // before any socket: kept for later
    h.client.start()
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('read')).toEqual([{ type: 'read', conv: 'd:3:7', seq: 4 }])
    h.client.markRead('d:3:7', 3) // never backwards
    h.client.markRead('d:3:7', 6)
    expect(FakeSocket.last.sentOfType('read').map((f) => f.seq)).toEqual([4, 6])
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('read')).toEqual([{ type: 'read', conv: 'd:3:7', seq: 6 }])
    FakeSocket.last.receive({ type: 'read', conv: 'd:3:7', user: ME, seq: 6 })
    FakeSocket.last.serverClose(1006)
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('read')).toEqual([])
  })

  it('passes on read, typing, presence, conversation and update frames', () => {
    const h = makeClient()
    const got: unknown[] = []
    h.client.on('read', (...a) => got.push(['read', ...a]))
    h.client.on('typing', (...a) => got.push(['typing', ...a]))
    h.client.on('presence', (...a) => got.push(['presence', ...a]))
    h.client.on('conversation', (c) => got.push(['conversation', c.id]))
    h.client.on('update', (m) => got.push(['update', m.seq]))
    h.client.on('synced', (reload) => got.push(['synced', reload]))
    h.client.start()
    const ws = FakeSocket.last
    ws.open()
    ws.receive({ type: 'update', message: { ...msg('d:3:7', 2, 7), rev: 9 } })
    ws.receive({ type: 'synced', reload: ['g:1'] })
    ws.receive({ type: 'read', conv: 'd:3:7', user: 7, seq: 2 })
    ws.receive({ type: 'typing', conv: 'd:3:7', user: 7 })
    ws.receive({ type: 'typing', conv: 'd:3:7', user: ME }) // my other device: not shown
    ws.receive({ type: 'presence', user: 7, online: false, last_seen: 5 })
    ws.receive({ type: 'conversation', conversation: { id: 'd:3:7', last_seq: 2, last_message: null } })
    expect(got).toEqual([
      ['update', 2],
      ['synced', ['g:1']],
      ['read', 'd:3:7', 7, 2],
      ['typing', 'd:3:7', 7],
      ['presence', 7, false, 5],
      ['conversation', 'd:3:7'],
    ])
  })

  it('asks sync for changes since the highest rev seen', () => {
    const storage = new MemoryStorage()
    const h = makeClient(storage)
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 5, 7) })
    FakeSocket.last.receive({ type: 'update', message: { ...msg('d:3:7', 2, 7), rev: 11 } })
    h.client.stop()
    const again = makeClient(storage)
    again.client.start()
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('sync')[0]).toEqual({ type: 'sync', cursors: { 'd:3:7': { seq: 5, rev: 11 } } })
  })

  it('sends typing at most every 2 seconds per chat', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    h.client.typing('d:3:7')
    h.client.typing('d:3:7')
    vi.advanceTimersByTime(1000)
    h.client.typing('d:3:7')
    h.client.typing('d:3:8')
    vi.advanceTimersByTime(1000)
    h.client.typing('d:3:7')
    expect(FakeSocket.last.sentOfType('typing').map((f) => f.conv)).toEqual(['d:3:7', 'd:3:8', 'd:3:7'])
  })
})

describe('ChatClient cursors', () => {
  it('raises cursors from messages and noteSeen, never lowers them, and persists them', () => {
    const h = makeClient()
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 3, 7) })
    FakeSocket.last.receive({ type: 'message', message: msg('g:1', 10, 8) })
    h.client.noteSeen('d:3:7', 2)
    h.client.noteSeen('d:3:8', 6)
    expect(h.client.cursors).toEqual({ 'd:3:7': 3, 'g:1': 10, 'd:3:8': 6 })
    expect(JSON.parse(h.storage.getItem('chinwag:u3:cursors')!)).toEqual({ 'd:3:7': 3, 'g:1': 10, 'd:3:8': 6 })
  })

  it('marks messages that answer a sync as not live', () => {
    const h = makeClient()
    const seen: [number, boolean][] = []
    h.client.on('message', (m, live) => seen.push([m.seq, live]))
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 1, 7) })
    FakeSocket.last.receive({ type: 'synced' })
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 2, 7) })
    expect(seen).toEqual([
      [1, false],
      [2, true],
    ])
  })

  it('ignores frames that are not valid JSON or not known', () => {
    const h = makeClient()
    const seen = vi.fn()
    h.client.on('message', seen)
    h.client.start()
    FakeSocket.last.open()
    FakeSocket.last.onmessage?.({ data: 'not json' })
    FakeSocket.last.receive({ type: 'mystery' })
    FakeSocket.last.receive({ type: 'message', message: { conv: 'd:3:7' } })
    expect(seen).not.toHaveBeenCalled()
  })
})
