import { describe, expect, it } from 'vitest'
import { hide, shown, withHiddenPlaceholders } from '@/lib/hidden'
import { insert, visibleRun, unreadCount, type Logs } from '@/lib/messageLog'
import { msg } from './fakes'

describe('messages deleted for me', () => {
  it('a history page gets placeholders where the server left messages out, so the log has no hole', () => {
    const page = withHiddenPlaceholders('d:1:2', { messages: [msg('d:1:2', 1, 7), msg('d:1:2', 3, 7)], has_more: false, hidden: [2] })
    expect(page.messages.map((m) => [m.seq, !!m.hidden])).toEqual([
      [1, false],
      [2, true],
      [3, false],
    ])
    const logs: Logs = {}
    for (const m of page.messages) insert(logs, m)
    expect(visibleRun(logs['d:1:2']).map((m) => m.seq)).toEqual([1, 2, 3])
    expect(shown(visibleRun(logs['d:1:2'])).map((m) => m.seq)).toEqual([1, 3])
  })

  it('a placeholder replaces a copy this device kept, and is never unread', () => {
    const logs: Logs = {}
    insert(logs, msg('d:1:2', 1, 7))
    insert(logs, msg('d:1:2', 2, 7))
    const page = withHiddenPlaceholders('d:1:2', { messages: [msg('d:1:2', 1, 7)], has_more: false, hidden: [2] })
    for (const m of page.messages) expect(insert(logs, m)).toBe(false)
    expect(logs['d:1:2']!.map((m) => !!m.hidden)).toEqual([false, true])
    expect(unreadCount(logs['d:1:2'], 0, 99)).toBe(1)
    expect(hide(msg('d:1:2', 5, 7)).hidden).toBe(true)
  })

  it('a page without hidden seqs is left as it is', () => {
    const page = { messages: [msg('d:1:2', 1, 7)], has_more: true }
    expect(withHiddenPlaceholders('d:1:2', page)).toBe(page)
  })
})
