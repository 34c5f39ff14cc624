// The socket store routes each frame to the store that owns it, and a stop leaves nothing of the
// last user in any of them.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useChat } from '@/stores/chat'
import { useDrafts } from '@/stores/drafts'
import { usePresence } from '@/stores/presence'
import { useReceipts } from '@/stores/receipts'
import { useSocket } from '@/stores/socket'
import { useUsers } from '@/stores/users'
import type { User } from '@/protocol/types'
import { FakeSocket, msg } from './fakes'

const me: User = { id: 3, username: 'ann', nickname: 'Ann', signature: '', gender: 'unknown', birthday: null, is_admin: false, created_at: 0 }
const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } })

async function start(hooks = {}) {
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string) => {
      const url = new URL(input, 'http://test')
      if (url.pathname === '/api/conversations') return json({ conversations: [] })
      if (url.pathname === '/api/contacts') return json({ contacts: [] })
      if (url.pathname === '/api/contacts/requests') return json({ incoming: [], outgoing: [] })
      return json({ messages: [], has_more: false })
    }),
  )
  const socket = useSocket()
  await socket.start(me, hooks, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
  FakeSocket.last.open()
  FakeSocket.last.receive({ type: 'synced' })
  return socket
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

describe('socket store', () => {
  it('follows the connection state', async () => {
    const socket = await start()
    expect(socket.conn).toBe('online')
  })

  it('routes presence and typing to the presence store, messages to the chat store', async () => {
    await start()
    FakeSocket.last.receive({ type: 'presence', user: 7, online: false, last_seen: 1234 })
    FakeSocket.last.receive({ type: 'typing', conv: 'd:3:7', user: 7 })
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:8', 1, 8) })
    expect(usePresence().presence[7]).toEqual({ online: false, last_seen: 1234 })
    expect(usePresence().typingWho['d:3:7']).toBe(7)
    expect(useChat().visibleMessages('d:3:8').map((m) => m.seq)).toEqual([1])
  })

  it('tells the server when the page is hidden or shown', async () => {
    const socket = await start()
    expect(FakeSocket.last.sentOfType('visibility')).toEqual([{ type: 'visibility', visible: true }])
    socket.setVisible(false)
    socket.setVisible(true)
    expect(FakeSocket.last.sentOfType('visibility').map((f) => f.visible)).toEqual([true, false, true])
  })

  it('passes call frames and stray errors to their listeners until they unsubscribe', async () => {
    const socket = await start()
    const frames: string[] = []
    const errors: string[] = []
    const off = socket.onCallFrame((f) => frames.push(f.type))
    socket.onFrameError((code) => errors.push(code))
    FakeSocket.last.receive({ type: 'call_ended', call: 'c1', reason: 'hangup', duration_secs: 5 })
    FakeSocket.last.receive({ type: 'error', code: 'forbidden', message: 'No.' })
    off()
    FakeSocket.last.receive({ type: 'call_ended', call: 'c2', reason: 'hangup', duration_secs: 1 })
    expect(frames).toEqual(['call_ended'])
    expect(errors).toEqual(['forbidden'])
    expect(socket.signal({ type: 'call_invite', conv: 'd:3:7', media: 'audio' })).toBe(true)
  })

  it('tells the app about group changes from group frames and system messages', async () => {
    const onGroupChanged = vi.fn()
    await start({ onGroupChanged })
    const g = { id: 12, name: 'T', notice: '', avatar: null, join_mode: 'open', owner: 3, member_count: 2, created_at: 1, my_role: 'owner' }
    FakeSocket.last.receive({ type: 'group', group: g })
    FakeSocket.last.receive({ type: 'message', message: { ...msg('g:12', 1, 3), content: { kind: 'system', event: { type: 'renamed', by: 3, name: 'T' } } } })
    expect(onGroupChanged.mock.calls).toEqual([[12], [12]])
  })

  it('forgets the last user in every store on stop', async () => {
    const socket = await start()
    FakeSocket.last.receive({ type: 'presence', user: 7, online: true })
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 1, 7) })
    useDrafts().set('d:3:7', 'half a thought')
    useReceipts().reads['g:12'] = { 1: { read_by: [], unread_by: [7] } }
    socket.stop()
    expect(socket.conn).toBe('connecting')
    expect(useChat().me).toBeNull()
    expect(useChat().convs).toEqual({})
    expect(usePresence().presence).toEqual({})
    expect(useDrafts().drafts).toEqual({})
    expect(useReceipts().reads).toEqual({})
    expect(useUsers().byId).toEqual({})
    expect(FakeSocket.last.closedWith).not.toBeNull()
  })
})
