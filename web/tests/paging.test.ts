import { describe, expect, it } from 'vitest'
import { begin, canNext, canPrev, empty, fail, paged, pageState, range, settle, type PageStep } from '@/lib/paging'

const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ id: from + i }))

describe('numbered pages (users, groups)', () => {
  it('moves the offset at once for each step, and never below zero', () => {
    const cases: [number, PageStep, number][] = [
      [0, 'first', 0],
      [40, 'first', 0],
      [20, 'again', 20],
      [0, 'next', 20],
      [20, 'next', 40],
      [40, 'prev', 20],
      [20, 'prev', 0],
      [0, 'prev', 0],
      [10, 'prev', 0],
    ]
    for (const [offset, step, want] of cases) {
      const s = pageState<{ id: number }>('pages', 20)
      s.offset = offset
      const q = begin(s, step)
      expect([step, offset, s.offset, q.offset, q.limit, q.append, s.loading]).toEqual([step, offset, want, want, 20, false, true])
    }
  })

  it('shows "from–to of total", the buttons only with more than one page, each only where it leads somewhere', () => {
    const cases: [number, number, number, { from: number; to: number; total: number } | null, boolean, boolean, boolean][] = [
      // offset, shown, total -> range, paged, prev, next
      [0, 0, 0, null, false, false, false],
      [0, 9, 9, { from: 1, to: 9, total: 9 }, false, false, false],
      [0, 20, 20, { from: 1, to: 20, total: 20 }, false, false, false],
      [0, 20, 25, { from: 1, to: 20, total: 25 }, true, false, true],
      [20, 5, 25, { from: 21, to: 25, total: 25 }, true, true, false],
      [20, 20, 60, { from: 21, to: 40, total: 60 }, true, true, true],
    ]
    for (const [offset, shown, total, r, isPaged, prev, next] of cases) {
      const s = pageState<{ id: number }>('pages', 20)
      const q = begin(s, 'first')
      settle(s, q, { items: rows(offset, shown), total })
      s.offset = offset
      expect([offset, shown, total, range(s), paged(s), canPrev(s), canNext(s)]).toEqual([offset, shown, total, r, isPaged, prev, next])
    }
  })

  it('keeps both buttons off while a page is on its way', () => {
    const s = pageState<{ id: number }>('pages', 20)
    settle(s, begin(s, 'first'), { items: rows(0, 20), total: 60 })
    settle(s, begin(s, 'next'), { items: rows(20, 20), total: 60 })
    expect([canPrev(s), canNext(s)]).toEqual([true, true])
    begin(s, 'next')
    expect([s.offset, canPrev(s), canNext(s)]).toEqual([40, false, false])
  })

  it('applies only the latest request: a slow answer to an older search is dropped', () => {
    const s = pageState<{ id: number }>('pages', 20)
    const old = begin(s, 'first') // "a"
    const latest = begin(s, 'first') // "ab"
    expect(settle(s, latest, { items: rows(1, 2), total: 2 })).toBe(true)
    expect(settle(s, old, { items: rows(100, 20), total: 80 })).toBe(false)
    expect(fail(s, old, 'late failure')).toBe(false)
    expect([s.items.map((r) => r.id), s.total, s.error, s.loading]).toEqual([[1, 2], 2, '', false])
  })

  it('stays loading until the latest answer comes, even when an older one comes first', () => {
    const s = pageState<{ id: number }>('pages', 20)
    const old = begin(s, 'first')
    const latest = begin(s, 'next')
    settle(s, old, { items: rows(0, 20), total: 40 })
    expect(s.loading).toBe(true)
    settle(s, latest, { items: rows(20, 20), total: 40 })
    expect([s.loading, s.offset, range(s)]).toEqual([false, 20, { from: 21, to: 40, total: 40 }])
  })

  it('keeps the rows on a failure and clears the error with the next answer', () => {
    const s = pageState<{ id: number }>('pages', 20)
    settle(s, begin(s, 'first'), { items: rows(0, 3), total: 3 })
    expect(fail(s, begin(s, 'again'), 'Network error')).toBe(true)
    expect([s.items.length, s.error, s.loading]).toEqual([3, 'Network error', false])
    settle(s, begin(s, 'again'), { items: rows(0, 3), total: 3 })
    expect(s.error).toBe('')
  })

  it('is empty only when nothing is shown and nothing is on its way', () => {
    const s = pageState<{ id: number }>('pages', 20)
    expect(empty(s)).toBe(true)
    const q = begin(s, 'first')
    expect(empty(s)).toBe(false)
    settle(s, q, { items: [], total: 0 })
    expect(empty(s)).toBe(true)
    settle(s, begin(s, 'first'), { items: rows(0, 1), total: 1 })
    expect(empty(s)).toBe(false)
  })
})

describe('load more (the audit log)', () => {
  it('asks for the rows after the last one held, appends them, and offers more while pages come back full', () => {
    const s = pageState<{ id: number }>('more', 50)
    const first = begin(s, 'first')
    expect([first.after, first.append]).toEqual([undefined, false])
    settle(s, first, { items: rows(1, 50) })
    expect([s.items.length, s.more, range(s), paged(s)]).toEqual([50, true, null, false])
    const more = begin(s, 'more')
    expect([more.after, more.append, s.offset]).toEqual([{ id: 50 }, true, 0])
    settle(s, more, { items: rows(51, 12) })
    expect([s.items.length, s.items[50], s.more]).toEqual([62, { id: 51 }, false])
  })

  it('offers no more after an exactly empty answer', () => {
    const s = pageState<{ id: number }>('more', 50)
    settle(s, begin(s, 'first'), { items: [] })
    expect([s.more, empty(s)]).toEqual([false, true])
  })
})
