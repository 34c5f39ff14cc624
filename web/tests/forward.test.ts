import { describe, expect, it } from 'vitest'
import type { Favorite, HistoryItem } from '@/protocol/types'
import { cardLines, cardNames, cardTitleParts, dropFavorite, filterTargets, forwardClientId, toggle, upsertFavorite } from '@/lib/forward'

const item = (name: string, text: string, sender = 1): HistoryItem => ({ sender, name, ts: 1, content: { kind: 'text', text } })
const fav = (id: number): Favorite => ({ id, conv: 'd:1:2', seq: id, sender: 1, sender_name: 'Ann', ts: 1, saved_at: 2, content: { kind: 'text', text: `t${id}` } })

describe('multi-select', () => {
  it('adds in seq order, removes on a second toggle, and takes no more than the limit', () => {
    expect(toggle([], 5)).toEqual([5])
    expect(toggle([5], 2)).toEqual([2, 5])
    expect(toggle([2, 5], 5)).toEqual([2])
    expect(toggle([1, 2], 3, 2)).toEqual([1, 2])
    expect(toggle([1, 2], 2, 2)).toEqual([1])
  })
})

describe('chat-history cards', () => {
  const items = [item('Bob', 'Lunch?', 2), item('Ann', 'Yes'), item('Bob', 'Noon', 2), item('Cat', 'Me too', 3), item('Dan', 'And me', 4)]
  it('names each sender once, in order of first appearance', () => {
    expect(cardNames(items)).toEqual(['Bob', 'Ann', 'Cat', 'Dan'])
  })
  it('titles with two names and how many more', () => {
    expect(cardTitleParts(items)).toEqual({ names: ['Bob', 'Ann'], more: 2 })
    expect(cardTitleParts(items.slice(0, 2))).toEqual({ names: ['Bob', 'Ann'], more: 0 })
    expect(cardTitleParts([])).toEqual({ names: [], more: 0 })
  })
  it('shows the first lines as "name: preview"', () => {
    const p = (it: HistoryItem) => (it.content.kind === 'text' ? it.content.text : '?')
    expect(cardLines(items, p, 2)).toEqual(['Bob: Lunch?', 'Ann: Yes'])
  })
})

describe('forward targets', () => {
  const all = [
    { id: 'd:1:2', name: 'Bob' },
    { id: 'g:3', name: '周末爬山' },
  ]
  it('filter by name, case-insensitively, Chinese too; an empty query keeps all', () => {
    expect(filterTargets(all, 'bo').map((c) => c.id)).toEqual(['d:1:2'])
    expect(filterTargets(all, '爬山').map((c) => c.id)).toEqual(['g:3'])
    expect(filterTargets(all, '  ')).toHaveLength(2)
  })
  it('get a client id that differs per forward and fits the server limit', () => {
    const a = forwardClientId(() => 0.1)
    const b = forwardClientId(() => 0.2)
    expect(a).not.toEqual(b)
    expect(a.length).toBeLessThanOrEqual(64)
  })
})

describe('favourites list', () => {
  it('keeps the newest first and replaces a copy it already has', () => {
    let list = upsertFavorite([], fav(1))
    list = upsertFavorite(list, fav(3))
    list = upsertFavorite(list, fav(2))
    list = upsertFavorite(list, { ...fav(3), sender_name: 'again' })
    expect(list.map((f) => f.id)).toEqual([3, 2, 1])
    expect(list[0]!.sender_name).toBe('again')
    expect(dropFavorite(list, 2).map((f) => f.id)).toEqual([3, 1])
  })
})
