// Groups, conversation actions, media and calls: the protocol client, the stores and helpers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ChatClient } from '@/protocol/client'
import { useChat } from '@/stores/chat'
import { useReceipts } from '@/stores/receipts'
import { useSocket } from '@/stores/socket'
import { useGroups, roleRank } from '@/stores/groups'
import { callText, formatDuration, systemText, tidyYou } from '@/lib/content'
import { errorText } from '@/lib/errors'
import { ApiError } from '@/protocol/api'
import { parseServerFrame, type ConversationSummary, type GroupView, type User } from '@/protocol/types'
import en from '@/i18n/en'
import { FakeSocket, MemoryStorage, msg } from './fakes'

const me: User = { id: 3, username: 'ann', nickname: 'Ann', signature: '', gender: 'unknown', birthday: null, is_admin: false, created_at: 0 }
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const group = (over: Partial<GroupView> = {}): GroupView => ({
  id: 12,
  name: 'Team',
  notice: '',
  avatar: null,
  join_mode: 'open',
  owner: 3,
  member_count: 3,
  created_at: 1,
  my_role: 'owner',
  ...over,
})

function client() {
  return new ChatClient({
    url: 'ws://test/api/ws',
    userId: 3,
    storageKey: 'chinwag:u3',
    storage: new MemoryStorage(),
    WebSocket: FakeSocket,
    eventTarget: null,
    isOnline: () => true,
  })
}

beforeEach(() => {
  FakeSocket.reset()
  setActivePinia(createPinia())
  localStorage.clear()
})
afterEach(() => {
  useSocket().stop()
  vi.unstubAllGlobals()
})

describe('ChatClient: mentions and call signalling', () => {
  it('sends mentions and @all with the message, also when re-sent after a reconnect', () => {
    const c = client()
    c.start()
    FakeSocket.last.open()
    c.send('g:12', { kind: 'text', text: '@Bob hi' }, { mentions: [7], mentionAll: true })
    const first = FakeSocket.last.sentOfType('send')[0]!
    expect(first).toMatchObject({ conv: 'g:12', mentions: [7], mention_all: true })
    FakeSocket.last.serverClose(1006)
    vi.useFakeTimers()
    c.reconnectNow()
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')[0]).toMatchObject({ client_id: first.client_id, mentions: [7], mention_all: true })
    vi.useRealTimers()
    c.stop()
  })

  it('passes call frames on and sends signalling only while connected', () => {
    const c = client()
    const frames: string[] = []
    c.on('call', (f) => frames.push(f.type))
    expect(c.signal({ type: 'call_invite', conv: 'd:3:7', media: 'audio' })).toBe(false)
    c.start()
    FakeSocket.last.open()
    expect(c.signal({ type: 'call_invite', conv: 'd:3:7', media: 'audio' })).toBe(true)
    expect(FakeSocket.last.sentOfType('call_invite')).toHaveLength(1)
    FakeSocket.last.receive({ type: 'call_incoming', call: 'c1', conv: 'd:3:7', from: 7, media: 'video', participants: [7] })
    FakeSocket.last.receive({ type: 'call_ended', call: 'c1', reason: 'hangup', duration_secs: 5 })
    expect(frames).toEqual(['call_incoming', 'call_ended'])
    expect(parseServerFrame('{"type":"call_ended"}')).toBeNull()
    c.stop()
  })
})

describe('chat store: hidden chats, groups and reads', () => {
  async function start(conversations: ConversationSummary[]) {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (input: string) => {
        const url = new URL(input, 'http://test')
        if (url.pathname === '/api/conversations') return json({ conversations })
        if (/\/messages$/.test(url.pathname)) return json({ messages: [], has_more: false })
        return json({ error: { code: 'not_found', message: 'No.' } }, 404)
      }),
    )
    const chat = useChat()
    await useSocket().start(me, {}, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'synced' })
    return chat
  }

  it('leaves hidden chats out of the list until a newer message arrives', async () => {
    const chat = await start([
      { id: 'd:3:7', last_seq: 4, last_message: msg('d:3:7', 4, 7), hidden: true, read_seq: 4 },
      { id: 'd:3:8', last_seq: 2, last_message: msg('d:3:8', 2, 8), read_seq: 2 },
    ])
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:8'])
    // Hidden on another device.
    FakeSocket.last.receive({ type: 'conversation', conversation: { id: 'd:3:8', last_seq: 2, last_message: null, hidden: true } })
    expect(chat.sortedConvs).toHaveLength(0)
    FakeSocket.last.receive({ type: 'message', message: msg('d:3:7', 5, 7) })
    expect(chat.sortedConvs.map((c) => c.id)).toEqual(['d:3:7'])
    expect(chat.convs['d:3:7']!.hidden).toBe(false)
  })

  it('marks a mention from the server until the chat is read', async () => {
    const chat = await start([{ id: 'g:12', group: group(), last_seq: 3, last_message: msg('g:12', 3, 7), read_seq: 2, mentioned: true }])
    await vi.waitFor(() => expect(chat.unread('g:12')).toBe(1))
    expect(chat.mentionedMe('g:12')).toBe(true)
    await chat.open('g:12')
    expect(chat.mentionedMe('g:12')).toBe(false)
  })

  it('drops a group I was removed from, and keeps a dissolved one read-only', async () => {
    const chat = await start([
      { id: 'g:12', group: group(), last_seq: 1, last_message: msg('g:12', 1, 7) },
      { id: 'g:13', group: group({ id: 13 }), last_seq: 1, last_message: msg('g:13', 1, 7) },
    ])
    FakeSocket.last.receive({ type: 'group_gone', group: 12, reason: 'removed' })
    FakeSocket.last.receive({ type: 'group_gone', group: 13, reason: 'dissolved' })
    expect(chat.convs['g:12']).toBeUndefined()
    expect(chat.convs['g:13']!.gone).toBe('dissolved')
  })

  it('counts a message from a member as their read receipt for my earlier messages', async () => {
    await start([{ id: 'g:12', group: group(), last_seq: 1, last_message: msg('g:12', 1, 3) }])
    const receipts = useReceipts()
    receipts.reads['g:12'] = { 1: { read_by: [7], unread_by: [8] } }
    FakeSocket.last.receive({ type: 'message', message: msg('g:12', 2, 8) })
    expect(receipts.reads['g:12']![1]).toEqual({ read_by: [7, 8], unread_by: [] })
  })

  it('applies group frames to the chat, adding groups I was added to', async () => {
    const chat = await start([])
    FakeSocket.last.receive({ type: 'group', group: group({ id: 20, name: 'New', my_role: 'member' }) })
    expect(chat.displayName('g:20')).toBe('New')
    expect(useGroups().myRole(20)).toBe('member')
  })
})

describe('groups store', () => {
  it('ranks roles: only a higher role acts on a member', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json({ conversations: [] })))
    const chat = useChat()
    await useSocket().start(me, {}, { WebSocket: FakeSocket, eventTarget: null, isOnline: () => true })
    chat.ensureConv('g:12').group = group({ my_role: 'admin' })
    const groups = useGroups()
    const member = (role: 'owner' | 'admin' | 'member') => ({ user: { ...me, id: 9 }, role, joined_at: 0 })
    expect(groups.outranks(12, member('member'))).toBe(true)
    expect(groups.outranks(12, member('admin'))).toBe(false)
    expect(groups.outranks(12, member('owner'))).toBe(false)
    expect(groups.isManager(12)).toBe(true)
    expect(roleRank(null)).toBe(0)
  })
})

describe('helpers', () => {
  const t = (k: string, n?: Record<string, unknown>) => (n ? `${k}:${JSON.stringify(n)}` : k)
  it('formats call durations and records', () => {
    expect(formatDuration(65)).toBe('1:05')
    expect(formatDuration(3725)).toBe('1:02:05')
    expect(callText({ kind: 'call', media: 'video', outcome: 'answered', duration_secs: 65 }, true, t)).toBe('call.record.answered:{"duration":"1:05"}')
    expect(callText({ kind: 'call', media: 'audio', outcome: 'missed', duration_secs: 0 }, false, t)).toBe('call.record.missed')
    expect(callText({ kind: 'call', media: 'audio', outcome: 'missed', duration_secs: 0 }, true, t)).toBe('call.record.noAnswer')
  })
  it('names me as an object in system lines', () => {
    const nameOf = (id: number) => (id === 3 ? 'You' : 'Bob')
    const objectOf = (id: number) => (id === 3 ? 'you' : 'Bob')
    expect(systemText({ type: 'muted', user: 3, by: 7, until: 1 }, t, nameOf, objectOf)).toBe('system.muted:{"user":"you","by":"Bob"}')
    expect(systemText({ type: 'left', user: 3 }, t, nameOf, objectOf)).toBe('system.left:{"user":"You"}')
  })
  it('writes 你 without spaces around it, and leaves other names alone', () => {
    expect(tidyYou('你 撤回了一条消息', '你')).toBe('你撤回了一条消息')
    expect(tidyYou('Bob 将 你 禁言', '你')).toBe('Bob 将你禁言')
    expect(tidyYou('You recalled a message', 'You')).toBe('You recalled a message')
  })
  it('explains admin and upload refusals', () => {
    expect(errorText(t, new ApiError(409, 'last_admin', 'x'))).toBe('errors.last_admin')
    expect(errorText(t, new ApiError(413, 'quota_exceeded', 'x'))).toBe('errors.quota_exceeded')
    expect(errorText(t, new ApiError(409, 'conflict', 'You cannot disable your own account.'))).toBe('You cannot disable your own account.')
  })
})

describe('translations', () => {
  it('has every key the code asks for', () => {
    const files: string[] = []
    const walk = (d: string) =>
      readdirSync(d).forEach((n) => {
        const p = join(d, n)
        if (statSync(p).isDirectory()) walk(p)
        else if (/\.(vue|ts)$/.test(n)) files.push(p)
      })
    walk(join(__dirname, '../src'))
    const missing: string[] = []
    for (const f of files) {
      for (const m of readFileSync(f, 'utf8').matchAll(/\bte?\(\s*'([a-zA-Z0-9_.]+)'/g)) {
        let o: unknown = en
        for (const k of m[1]!.split('.')) o = (o as Record<string, unknown> | undefined)?.[k]
        if (o === undefined) missing.push(m[1]!)
      }
    }
    expect(missing).toEqual([])
  })
})
