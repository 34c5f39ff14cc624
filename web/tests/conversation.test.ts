// The chat list rules (src/lib/conversation.ts): order, hiding, and what summaries change.
import { describe, expect, it } from 'vitest'
import { activityOf, applyCached, applySummary, isHidden, newConv, sortConvs, type ConvMeta } from '@/lib/conversation'
import type { OutboxEntry } from '@/protocol/client'
import { msg } from './fakes'

const conv = (id: string, over: Partial<ConvMeta> = {}): ConvMeta => ({ ...newConv(id, null, 100), ...over })
const pending = (c: string, created_at: number): OutboxEntry => ({
  client_id: `p-${c}-${created_at}`,
  conv: c,
  content: { kind: 'text', text: 'x' },
  created_at,
  status: 'sending',
})

describe('the chat list order', () => {
  const cases: { name: string; convs: ConvMeta[]; outbox?: OutboxEntry[]; active?: string; order: string[] }[] = [
    {
      name: 'newest activity first',
      convs: [conv('a', { last_ts: 10 }), conv('b', { last_ts: 30 }), conv('c', { last_ts: 20 })],
      order: ['b', 'c', 'a'],
    },
    {
      name: 'pinned chats before all others',
      convs: [conv('a', { last_ts: 10, pinned: true }), conv('b', { last_ts: 30 })],
      order: ['a', 'b'],
    },
    {
      name: 'a pending send counts as activity',
      convs: [conv('a', { last_ts: 10 }), conv('b', { last_ts: 30 })],
      outbox: [pending('a', 50)],
      order: ['a', 'b'],
    },
    {
      name: 'a chat without messages sorts by when it was opened here',
      convs: [conv('a', { last_ts: 10 }), conv('b', { opened_at: 20 })],
      order: ['b', 'a'],
    },
    {
      name: 'hidden chats are left out unless open',
      convs: [conv('a', { hidden: true, last_seq: 4, hidden_at: 4 }), conv('b', { hidden: true, last_seq: 4, hidden_at: 4 }), conv('c')],
      active: 'b',
      order: ['b', 'c'],
    },
    {
      name: 'a message newer than the hiding, or a pending send, brings a hidden chat back',
      convs: [conv('a', { hidden: true, last_seq: 5, hidden_at: 4, last_ts: 2 }), conv('b', { hidden: true, last_seq: 4, hidden_at: 4, last_ts: 1 })],
      outbox: [pending('b', 0)],
      order: ['a', 'b'],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(sortConvs(c.convs, c.outbox ?? [], c.active ?? null).map((x) => x.id)).toEqual(c.order)
    })
  }

  it('takes the latest of the last message, the server time and pending sends as activity', () => {
    const c = conv('a', { last_message: { ...msg('a', 1, 7), ts: 40 }, last_ts: 30 })
    expect(activityOf(c, [])).toBe(40)
    expect(activityOf(c, [pending('a', 45), pending('b', 99)])).toBe(45)
    expect(isHidden(conv('a', { hidden: true }), [])).toBe(true)
  })
})

describe('summaries', () => {
  it('moves forward only: an older summary leaves the last message and read positions', () => {
    const c = conv('d:3:7', { last_seq: 5, last_message: msg('d:3:7', 5, 7), peer_read_seq: 4, last_ts: 50 })
    applySummary(c, { id: 'd:3:7', last_seq: 3, last_message: msg('d:3:7', 3, 7), peer_read_seq: 2, last_ts: 20 })
    expect(c).toMatchObject({ last_seq: 5, peer_read_seq: 4, last_ts: 50 })
    expect(c.last_message!.seq).toBe(5)
  })

  it('hides at the newest seq, and marks a group I was removed from gone, but not a dissolved one', () => {
    const c = conv('g:12', { last_seq: 5 })
    const group = { id: 12, name: 'T', notice: '', avatar: null, join_mode: 'open' as const, owner: 1, member_count: 2, created_at: 1 }
    applySummary(c, { id: 'g:12', last_seq: 6, last_message: null, hidden: true, group: { ...group, my_role: null } })
    expect(c).toMatchObject({ hidden: true, hidden_at: 6, gone: 'removed' })
    applySummary(c, { id: 'g:12', last_seq: 6, last_message: null, hidden: false, group: { ...group, my_role: 'member' } })
    expect(c).toMatchObject({ hidden: false, hidden_at: 0, gone: null })
    c.gone = 'dissolved'
    applySummary(c, { id: 'g:12', last_seq: 6, last_message: null, group: { ...group, my_role: 'member' } })
    expect(c.gone).toBe('dissolved')
  })

  it('takes a cached summary only as far as it adds to what is known', () => {
    const c = conv('d:3:7', { last_seq: 9, last_ts: 90 })
    applyCached(c, { id: 'd:3:7', last_seq: 4, last_message: null, pinned: true, hidden: true, last_ts: 10 })
    expect(c).toMatchObject({ last_seq: 9, last_ts: 90, pinned: true, hidden: true, hidden_at: 9 })
  })
})
