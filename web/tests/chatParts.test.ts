// The chat store's plain parts: group-news marks, the viewed positions shared by tabs, and the
// delayed save of the newest messages.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { DelayedSave, loadMessages, saveNewest } from '@/lib/chatCache'
import { GroupNews } from '@/lib/groupNews'
import { loadViewed, raiseToStored, saveViewed } from '@/lib/viewed'
import type { Message } from '@/protocol/types'

afterEach(() => {
  localStorage.clear()
  vi.useRealTimers()
})

describe('group news', () => {
  it('says whether live news of a group came after a mark', () => {
    const news = new GroupNews()
    const before = news.mark()
    news.note('g:1')
    expect(news.newerThan('g:1', before)).toBe(true)
    expect(news.newerThan('g:2', before)).toBe(false)
    const after = news.mark()
    expect(news.newerThan('g:1', after)).toBe(false)
    news.forget()
    expect(news.newerThan('g:1', before)).toBe(false)
    // The count goes on after forget, so a mark taken earlier still sees later news.
    news.note('g:1')
    expect(news.newerThan('g:1', after)).toBe(true)
  })
})

describe('viewed positions', () => {
  it('a new browser has none; saving merges with other tabs, the higher seq winning', () => {
    expect(loadViewed(7)).toBeNull()
    saveViewed(7, { 'd:1:7': 5, 'g:2': 9 })
    const mine: Record<string, number> = { 'd:1:7': 8, 'g:2': 3 }
    saveViewed(7, mine)
    expect(mine).toEqual({ 'd:1:7': 8, 'g:2': 9 })
    expect(loadViewed(7)).toEqual({ 'd:1:7': 8, 'g:2': 9 })
    expect(loadViewed(8)).toBeNull()
    const other: Record<string, number> = { 'g:2': 10 }
    raiseToStored(7, other)
    expect(other).toEqual({ 'd:1:7': 8, 'g:2': 10 })
  })
})

describe('the delayed cache save', () => {
  it('writes once a second after the first change of a burst, or at once, or never when cancelled', () => {
    vi.useFakeTimers()
    let saves = 0
    const d = new DelayedSave(() => saves++)
    d.schedule()
    d.schedule()
    vi.advanceTimersByTime(999)
    expect(saves).toBe(0)
    vi.advanceTimersByTime(1)
    expect(saves).toBe(1)
    d.schedule()
    d.now()
    expect(saves).toBe(2)
    vi.advanceTimersByTime(2000)
    expect(saves).toBe(2)
    d.schedule()
    d.cancel()
    vi.advanceTimersByTime(2000)
    expect(saves).toBe(2)
  })

  it('keeps the newest messages of the first chats', () => {
    const msg = (conv: string, seq: number): Message => ({ conv, seq, sender: 1, client_id: `c${seq}`, ts: seq, content: { kind: 'text', text: 'x' } })
    const logs: Record<string, Message[]> = {
      'd:1:2': Array.from({ length: 50 }, (_, i) => msg('d:1:2', i + 1)),
      'g:3': [],
    }
    saveNewest(1, [{ id: 'd:1:2' }, { id: 'g:3' }], (c) => logs[c] ?? [])
    const back = loadMessages(1)
    expect(back.map((m) => m.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 11))
  })
})
