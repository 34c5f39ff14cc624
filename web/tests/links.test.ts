import { describe, expect, it } from 'vitest'
import { groupLink, parseLink, profileLink } from '@/lib/links'

const origin = 'https://chat.example.org'
const token = '0123456789abcdef0123456789abcdef'

describe('app links', () => {
  it('round-trips profile and group links', () => {
    expect(parseLink(profileLink(origin, 'bob'), origin)).toEqual({ kind: 'user', username: 'bob', path: '/u/bob' })
    expect(parseLink(groupLink(origin, token), origin)).toEqual({ kind: 'group', token, path: `/join/${token}` })
  })
  it.each([
    ['https://evil.example.net/u/bob'],
    ['javascript:alert(1)'],
    [`${origin}/join/not-a-token`],
    [`${origin}/join/${token.toUpperCase()}`],
    [`${origin}/settings`],
    ['just some text'],
  ])('refuses %s', (text) => {
    expect(parseLink(text, origin)).toBeNull()
  })
  it('accepts a pasted path and surrounding spaces', () => {
    expect(parseLink(`  /join/${token} `, origin)?.kind).toBe('group')
  })
})
