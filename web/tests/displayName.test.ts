import { describe, expect, it } from 'vitest'
import { displayName, nameMatches } from '@/lib/displayName'

describe('displayName', () => {
  const bob = { username: 'bob', nickname: 'Bobby' }
  it.each([
    [bob, 'Plumber', 'Plumber'],
    [bob, undefined, 'Bobby'],
    [bob, '   ', 'Bobby'],
    [{ username: 'bob', nickname: '' }, null, 'bob'],
    [{ username: 'bob' }, '老王', '老王'],
  ])('%o with remark %o shows %s', (u, remark, want) => {
    expect(displayName(u, remark)).toBe(want)
  })
})

describe('nameMatches', () => {
  const bob = { username: 'bob', nickname: 'Bobby' }
  it('finds by remark, nickname or username, ignoring case', () => {
    expect(nameMatches(bob, 'Plumber', 'plum')).toBe(true)
    expect(nameMatches(bob, null, 'BOBB')).toBe(true)
    expect(nameMatches(bob, null, 'plum')).toBe(false)
    expect(nameMatches({ username: 'wang' }, '老王', '王')).toBe(true)
  })
})
