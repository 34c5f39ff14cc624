// What a chat shows (src/lib/timeline.ts), one row per case. Items are written short:
// `day:<date>`, `unread`, `notice:<text>`, and `<key>` for a bubble with flags after a colon:
// g = grouped with the one above, n = shows the sender's name.
import { describe, expect, it } from 'vitest'
import {
  bottomKey,
  buildTimeline,
  menuRights,
  type MessageItem,
  type PendingUpload,
  type TimelineInput,
  type TimelineItem,
  type TimelineText,
} from '@/lib/timeline'
import { readsToAsk } from '@/stores/receipts'
import type { Content, Message } from '@/protocol/types'

const ME = 3
const BOB = 7
const CAROL = 8
const MIN = 60_000
/** Noon, local time, so a few hours either way stay on the same day. */
const DAY1 = new Date(2026, 0, 10, 12, 0).getTime()
const DAY2 = new Date(2026, 0, 11, 12, 0).getTime()

const text: TimelineText = {
  dayLabel: (ts) => `${new Date(ts).getMonth() + 1}/${new Date(ts).getDate()}`,
  clock: (ts) => `t${ts}`,
  fullTime: (ts) => `full${ts}`,
  name: (id) => (id === ME ? 'You' : id === BOB ? 'Bob' : id === CAROL ? 'Carol' : `#${id}`),
  avatar: (id) => `avatar-${id}`,
  notice: (c, by) => (c.kind === 'system' ? `system ${c.event?.type}` : `recalled by ${by}`),
  reactionLabel: (emoji, names) => `${emoji} from ${names}`,
  sendError: (e) => `send failed: ${e.code}`,
  uploadError: () => 'upload failed',
}

const m = (seq: number, sender: number, ts: number, over: Partial<Message> = {}): Message => ({
  conv: 'g:12',
  seq,
  sender,
  client_id: `c${seq}`,
  ts,
  content: { kind: 'text', text: `m${seq}` },
  ...over,
})

function input(over: Partial<TimelineInput>): TimelineInput {
  return {
    messages: [],
    pending: [],
    uploads: [],
    myId: ME,
    isGroup: true,
    peerRead: 0,
    unreadAfter: null,
    reads: undefined,
    peer: { name: 'Bob', seed: BOB, avatar: 'bob.png' },
    ...over,
  }
}

function short(items: TimelineItem[]): string[] {
  return items.map((it) => {
    if (it.type === 'day') return `day:${it.label}`
    if (it.type === 'unread') return 'unread'
    if (it.type === 'notice') return `notice:${it.text}`
    const flags = `${it.grouped ? 'g' : ''}${it.showName ? 'n' : ''}`
    return flags ? `${it.key}:${flags}` : it.key
  })
}

const msgs = (items: TimelineItem[]) => items.filter((it): it is MessageItem => it.type === 'msg')

describe('buildTimeline', () => {
  const cases: { name: string; input: Partial<TimelineInput>; items: string[] }[] = [
    { name: 'an empty chat shows nothing', input: {}, items: [] },
    {
      name: 'one day separator per calendar day',
      input: { messages: [m(1, BOB, DAY1), m(2, BOB, DAY1 + 3 * 60 * MIN), m(3, BOB, DAY2)] },
      items: ['day:1/10', 's1:n', 's2:n', 'day:1/11', 's3:n'],
    },
    {
      name: 'bubbles of one sender within five minutes are grouped, and only the first is named',
      input: { messages: [m(1, BOB, DAY1), m(2, BOB, DAY1 + 4 * MIN), m(3, BOB, DAY1 + 10 * MIN), m(4, CAROL, DAY1 + 11 * MIN), m(5, ME, DAY1 + 12 * MIN), m(6, ME, DAY1 + 13 * MIN)] },
      items: ['day:1/10', 's1:n', 's2:g', 's3:n', 's4:n', 's5', 's6:g'],
    },
    {
      name: 'a notice, a recall or a new day breaks a run',
      input: {
        messages: [
          m(1, BOB, DAY1),
          m(2, BOB, DAY1 + MIN, { content: { kind: 'system', event: { type: 'renamed', name: 'T', by: BOB } } }),
          m(3, BOB, DAY1 + 2 * MIN),
          m(4, CAROL, DAY1 + 3 * MIN, { content: { kind: 'recalled' }, recalled: { by: 12, at: 0 } }),
          m(5, BOB, DAY1 + 4 * MIN),
        ],
      },
      items: ['day:1/10', 's1:n', 'notice:system renamed', 's3:n', 'notice:recalled by 12', 's5:n'],
    },
    {
      name: 'the unread divider goes once, before the first message from someone else after the read position',
      input: { unreadAfter: 1, messages: [m(1, BOB, DAY1), m(2, ME, DAY1 + MIN), m(3, BOB, DAY1 + 2 * MIN), m(4, BOB, DAY1 + 3 * MIN)] },
      items: ['day:1/10', 's1:n', 's2', 'unread', 's3:n', 's4:g'],
    },
    {
      name: 'no divider when nothing was unread on opening',
      input: { unreadAfter: null, messages: [m(1, BOB, DAY1), m(2, BOB, DAY1 + MIN)] },
      items: ['day:1/10', 's1:n', 's2:g'],
    },
    {
      name: 'pending sends follow the stored messages, then uploads, grouped as mine',
      input: {
        messages: [m(1, ME, DAY1)],
        pending: [{ client_id: 'p1', conv: 'g:12', content: { kind: 'text', text: 'hi' }, created_at: DAY1 + MIN, status: 'sending' }],
        uploads: [{ id: 'u1', kind: 'file', name: 'a.pdf', size: 9, url: null, width: null, height: null, progress: 0.5, error: null, created_at: DAY1 + 2 * MIN }],
      },
      items: ['day:1/10', 's1', 'cp1:g', 'uu1:g'],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(short(buildTimeline(input(c.input), text))).toEqual(c.items)
    })
  }

  it('never shows a pending send earlier than the last item above it (a skewed local clock)', () => {
    const items = msgs(
      buildTimeline(
        input({
          messages: [m(1, BOB, DAY1 + 10 * MIN)],
          pending: [{ client_id: 'p1', conv: 'g:12', content: { kind: 'text', text: 'x' }, created_at: DAY1, status: 'failed', error: { code: 'forbidden', message: 'No.' } }],
        }),
        text,
      ),
    )
    expect(items[1]).toMatchObject({ key: 'cp1', ts: DAY1 + 10 * MIN, mine: true, status: 'failed', error: 'send failed: forbidden', clientId: 'p1', seq: null })
  })

  it('shows an upload with its preview and progress, failed when it failed', () => {
    const up = (over: Partial<PendingUpload>): PendingUpload => ({ id: 'u1', kind: 'image', name: 'p.png', size: 5, url: 'blob:1', width: 4, height: 3, progress: 0.25, error: null, created_at: DAY1, ...over })
    const [sending] = msgs(buildTimeline(input({ uploads: [up({})] }), text))
    expect(sending).toMatchObject({ status: 'sending', uploadId: 'u1', upload: { url: 'blob:1', progress: 0.25, failed: false } })
    expect(sending!.content).toEqual({ kind: 'image', file_id: '', width: 4, height: 3, name: 'p.png', size: 5 })
    const [failed] = msgs(buildTimeline(input({ uploads: [up({ error: new Error('x') })] }), text))
    expect(failed).toMatchObject({ status: 'failed', error: 'upload failed', upload: { failed: true } })
  })

  it('1:1 chats: the other person is the sender, and my messages say whether they were read', () => {
    const items = msgs(
      buildTimeline(
        input({ isGroup: false, peerRead: 2, messages: [m(1, ME, DAY1), m(2, ME, DAY1 + MIN), m(3, ME, DAY1 + 2 * MIN), m(4, BOB, DAY1 + 3 * MIN)] }),
        text,
      ),
    )
    expect(items.map((i) => i.receipt)).toEqual(['read', 'read', 'sent', null])
    expect(items[3]).toMatchObject({ senderName: 'Bob', senderSeed: BOB, avatar: 'bob.png', showName: false })
    expect(msgs(buildTimeline(input({ isGroup: false, peerRead: 0, messages: [m(1, ME, DAY1)] }), text))[0]!.receipt).toBeNull()
  })

  it('group chats: each sender by name and avatar, and "read by" on my messages', () => {
    const items = msgs(
      buildTimeline(
        input({ reads: { 1: { read_by: [BOB], unread_by: [CAROL] } }, messages: [m(1, ME, DAY1), m(2, BOB, DAY1 + MIN)] }),
        text,
      ),
    )
    expect(items[0]).toMatchObject({ readBy: { n: 1, total: 2 }, receipt: null, senderName: 'You' })
    expect(items[1]).toMatchObject({ readBy: null, senderName: 'Bob', senderSeed: BOB, avatar: `avatar-${BOB}` })
  })

  it('carries edits, reactions and quotes', () => {
    const [it0] = msgs(
      buildTimeline(
        input({
          messages: [
            m(5, BOB, DAY1, { edited_at: DAY1 + 1, reactions: { '👍': [ME, CAROL], '🎉': [] }, reply_to: { seq: 2, sender: ME, preview: 'earlier' } }),
          ],
        }),
        text,
      ),
    )
    expect(it0).toMatchObject({ edited: true, seq: 5, time: `t${DAY1}`, fullTime: `full${DAY1}`, quote: { seq: 2, name: 'You', preview: 'earlier' } })
    expect(it0!.reactions).toEqual([{ emoji: '👍', count: 2, mine: true, label: '👍 from You, Carol' }])
  })
})

describe('bottomKey', () => {
  it('names the last bubble and whether it is mine, and nothing for a notice', () => {
    expect(bottomKey(buildTimeline(input({ messages: [m(1, BOB, DAY1), m(2, ME, DAY1)] }), text))).toBe('s2:true')
    const notice: Content = { kind: 'recalled' }
    expect(bottomKey(buildTimeline(input({ messages: [m(1, BOB, DAY1, { content: notice })] }), text))).toBe('')
    expect(bottomKey([])).toBe('')
  })
})

describe('menuRights', () => {
  const item = (over: Partial<MessageItem>) => ({ ...msgs(buildTimeline(input({ messages: [m(1, ME, DAY1)] }), text))[0]!, ...over })
  const cases: { name: string; it: Partial<MessageItem>; age: number; manager: boolean; edit: boolean; recall: boolean; text: string | null }[] = [
    { name: 'my fresh text', it: {}, age: MIN, manager: false, edit: true, recall: true, text: 'm1' },
    { name: 'my text after three minutes', it: {}, age: 3 * MIN, manager: false, edit: true, recall: false, text: 'm1' },
    { name: 'my text after a day', it: {}, age: 25 * 60 * MIN, manager: false, edit: false, recall: false, text: 'm1' },
    { name: 'someone else’s message, as a group admin', it: { mine: false }, age: 60 * MIN, manager: true, edit: false, recall: true, text: 'm1' },
    { name: 'my emoji', it: { content: { kind: 'emoji', emoji: '👍' } }, age: MIN, manager: false, edit: false, recall: true, text: '👍' },
    { name: 'a sticker', it: { mine: false, content: { kind: 'sticker', file_id: 'f', width: 1, height: 1 } }, age: MIN, manager: false, edit: false, recall: false, text: null },
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(menuRights(item(c.it), DAY1 + c.age, c.manager)).toEqual({ text: c.text, canEdit: c.edit, canRecall: c.recall })
    })
  }
})

describe('readsToAsk', () => {
  it('asks about my recent messages that someone may not have read yet', () => {
    const shown = [m(1, ME, DAY1), m(2, BOB, DAY1), m(3, ME, DAY1), m(4, ME, DAY1, { content: { kind: 'recalled' } }), m(5, ME, DAY1)]
    const known = { 1: { read_by: [BOB, CAROL], unread_by: [] }, 3: { read_by: [BOB], unread_by: [CAROL] } }
    expect(readsToAsk(shown, ME, known)).toEqual([3, 5])
    const many = Array.from({ length: 50 }, (_, i) => m(i + 1, ME, DAY1))
    expect(readsToAsk(many, ME, {})).toEqual(Array.from({ length: 12 }, (_, i) => 39 + i))
  })
})
