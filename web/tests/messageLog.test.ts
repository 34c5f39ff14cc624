// The message log rules (src/lib/messageLog.ts), one row per case: frames go in, the logs and
// what each frame did come out.
import { describe, expect, it } from 'vitest'
import {
  applyFrame,
  drop,
  find,
  gapBelow,
  insert,
  lastSeq,
  mayHaveOlder,
  mentionsAfter,
  replace,
  unreadCount,
  visibleRun,
  type LogFrame,
  type Logs,
} from '@/lib/messageLog'
import type { Message } from '@/protocol/types'
import { msg } from './fakes'

const A = 'd:3:7'
const B = 'g:12'
const message = (conv: string, seq: number, sender = 7): LogFrame => ({ type: 'message', message: msg(conv, seq, sender) })
const update = (conv: string, seq: number, text: string): LogFrame => ({ type: 'update', message: msg(conv, seq, 7, text) })
const synced = (...reload: string[]): LogFrame => ({ type: 'synced', reload })

const seqs = (logs: Logs) => Object.fromEntries(Object.entries(logs).map(([k, v]) => [k, v.map((m) => m.seq)]))

describe('insert', () => {
  it('a recalled copy replaces one kept from before the recall, and is no new message', () => {
    const logs: Logs = {}
    insert(logs, msg(A, 1, 7, 'the secret plan'))
    expect(insert(logs, { ...msg(A, 1, 7), content: { kind: 'recalled' } })).toBe(false)
    expect(logs[A]!.map((m) => m.content)).toEqual([{ kind: 'recalled' }])
    // An older copy does not bring the text back.
    expect(insert(logs, msg(A, 1, 7, 'the secret plan'))).toBe(false)
    expect(logs[A]![0]!.content).toEqual({ kind: 'recalled' })
  })
})

describe('applyFrame', () => {
  const cases: {
    name: string
    frames: LogFrame[]
    logs: Record<string, number[]>
    /** For each frame: 'added', 'dup', 'replaced', 'unknown' or the conversations dropped. */
    did: (string | string[])[]
    gaps?: ([string, number, number] | null)[]
    visible?: Record<string, number[]>
  }[] = [
    {
      name: 'appends in order',
      frames: [message(A, 1), message(A, 2), message(A, 3)],
      logs: { [A]: [1, 2, 3] },
      did: ['added', 'added', 'added'],
    },
    {
      name: 'the same message in the sync answer and again as a live frame appears once',
      frames: [message(A, 1), message(A, 2), synced(), message(A, 2), message(A, 3)],
      logs: { [A]: [1, 2, 3] },
      did: ['added', 'added', [], 'dup', 'added'],
    },
    {
      name: 'sorts messages that arrive out of order, and drops a late duplicate in the middle',
      frames: [message(A, 3), message(A, 1), message(A, 2), message(A, 1)],
      logs: { [A]: [1, 2, 3] },
      did: ['added', 'added', 'added', 'dup'],
    },
    {
      name: 'keys by conversation as well as seq',
      frames: [message(A, 1), message(B, 1), message(B, 1)],
      logs: { [A]: [1], [B]: [1] },
      did: ['added', 'added', 'dup'],
    },
    {
      name: 'an update replaces the message with its seq and adds nothing',
      frames: [message(A, 1), message(A, 2), update(A, 1, 'edited'), update(A, 9, 'never loaded'), update(B, 1, 'no log')],
      logs: { [A]: [1, 2] },
      did: ['added', 'added', 'replaced', 'unknown', 'unknown'],
    },
    {
      name: 'a message above a hole reports the gap below it',
      frames: [message(A, 1), message(A, 2), synced(), message(A, 10), message(A, 11)],
      logs: { [A]: [1, 2, 10, 11] },
      did: ['added', 'added', [], 'added', 'added'],
      gaps: [null, null, null, [A, 2, 10], null],
      visible: { [A]: [10, 11] },
    },
    {
      name: 'filling the gap joins the runs',
      frames: [message(A, 1), message(A, 4), message(A, 3), message(A, 2)],
      logs: { [A]: [1, 2, 3, 4] },
      did: ['added', 'added', 'added', 'added'],
      gaps: [null, [A, 1, 4], [A, 1, 3], null],
      visible: { [A]: [1, 2, 3, 4] },
    },
    {
      name: 'a synced frame drops the logs of the chats it names to reload',
      frames: [message(A, 1), message(B, 5), synced(B, 'g:99'), message(B, 180)],
      logs: { [A]: [1], [B]: [180] },
      did: ['added', 'added', [B], 'added'],
      gaps: [null, null, null, null],
      visible: { [A]: [1], [B]: [180] },
    },
  ]

  for (const c of cases) {
    it(c.name, () => {
      const logs: Logs = {}
      const did: (string | string[])[] = []
      const gaps: ([string, number, number] | null)[] = []
      for (const f of c.frames) {
        const o = applyFrame(logs, f)
        if (f.type === 'synced') did.push(o.dropped)
        else if (f.type === 'message') did.push(o.added ? 'added' : 'dup')
        else did.push(o.replaced ? 'replaced' : 'unknown')
        gaps.push(o.gap && [o.gap.conv, o.gap.after, o.gap.before])
      }
      expect(seqs(logs)).toEqual(c.logs)
      expect(did).toEqual(c.did)
      if (c.gaps) expect(gaps).toEqual(c.gaps)
      if (c.visible) for (const [conv, v] of Object.entries(c.visible)) expect(visibleRun(logs[conv]).map((m) => m.seq)).toEqual(v)
    })
  }

  it('keeps the replacing message, and the first copy of a duplicate', () => {
    const logs: Logs = {}
    const first = msg(A, 1, 7, 'first')
    insert(logs, first)
    expect(insert(logs, msg(A, 1, 7, 'second copy'))).toBe(false)
    expect(find(logs, A, 1)).toBe(first)
    expect(replace(logs, msg(A, 1, 7, 'edited'))).toBe(true)
    expect((find(logs, A, 1)!.content as { text: string }).text).toBe('edited')
    expect(find(logs, A, 2)).toBeUndefined()
  })
})

describe('visible run and gaps', () => {
  const log = (...s: number[]): Message[] => s.map((n) => msg(A, n, 7))
  const cases: { log: number[]; visible: number[]; older: boolean; last: number }[] = [
    { log: [], visible: [], older: false, last: 0 },
    { log: [1, 2, 3], visible: [1, 2, 3], older: false, last: 3 },
    { log: [1, 2, 5, 6, 7], visible: [5, 6, 7], older: true, last: 7 },
    { log: [4, 9], visible: [9], older: true, last: 9 },
    { log: [1], visible: [1], older: false, last: 1 },
  ]
  for (const c of cases) {
    it(`[${c.log.join(',')}] shows [${c.visible.join(',')}]${c.older ? ' with older ones to fetch' : ''}`, () => {
      const l = log(...c.log)
      expect(visibleRun(l).map((m) => m.seq)).toEqual(c.visible)
      expect(mayHaveOlder(l)).toBe(c.older)
      expect(lastSeq(l)).toBe(c.last)
    })
  }

  it('reports no gap for an unknown message, the first one, or an adjacent one', () => {
    const logs: Logs = { [A]: log(3, 4, 8) }
    expect(gapBelow(logs, A, 3)).toBeNull()
    expect(gapBelow(logs, A, 4)).toBeNull()
    expect(gapBelow(logs, A, 5)).toBeNull()
    expect(gapBelow(logs, B, 5)).toBeNull()
    expect(gapBelow(logs, A, 8)).toEqual({ conv: A, after: 4, before: 8 })
  })

  it('drop forgets only the logs it names and says which existed', () => {
    const logs: Logs = { [A]: log(1), [B]: [msg(B, 1, 7)] }
    expect(drop(logs, [B, 'g:404'])).toEqual([B])
    expect(Object.keys(logs)).toEqual([A])
  })
})

describe('unread and mentions', () => {
  const l = [msg(B, 1, 7), msg(B, 2, 3), { ...msg(B, 3, 7), mentions: [3] }, msg(B, 4, 8), { ...msg(B, 5, 8), mention_all: true }]
  const cases: { seen: number; unread: number; mentioned: boolean }[] = [
    { seen: 0, unread: 4, mentioned: true },
    { seen: 2, unread: 3, mentioned: true },
    { seen: 4, unread: 1, mentioned: true },
    { seen: 5, unread: 0, mentioned: false },
  ]
  for (const c of cases) {
    it(`after seq ${c.seen}: ${c.unread} unread from others${c.mentioned ? ', mentioning me' : ''}`, () => {
      expect(unreadCount(l, c.seen, 3)).toBe(c.unread)
      expect(mentionsAfter(l, c.seen, 3)).toBe(c.mentioned)
    })
  }

  it('does not count my own messages or mentions by me', () => {
    const mine = [{ ...msg(B, 1, 3), mention_all: true }]
    expect(unreadCount(mine, 0, 3)).toBe(0)
    expect(mentionsAfter(mine, 0, 3)).toBe(false)
    expect(unreadCount(undefined, 0, 3)).toBe(0)
  })
})
