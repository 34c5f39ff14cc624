import { describe, expect, it } from 'vitest'
import { highlightParts, richParts } from '@/lib/richText'

describe('richParts', () => {
  it('links URLs and bare www addresses (as https), not trailing punctuation', () => {
    expect(richParts('see www.example.org, or https://a.b/c?d=1.')).toEqual([
      { text: 'see ' },
      { text: 'www.example.org', href: 'https://www.example.org' },
      { text: ', or ' },
      { text: 'https://a.b/c?d=1', href: 'https://a.b/c?d=1' },
      { text: '.' },
    ])
    expect(richParts('no link in awww.x or www.')).toEqual([{ text: 'no link in awww.x or www.' }])
  })
  it('marks mentions of the reader, whole names only', () => {
    expect(richParts('hi @Bob 鲍勃 and @Bobby, @all!', ['Bob 鲍勃', 'all'])).toEqual([
      { text: 'hi ' },
      { text: '@Bob 鲍勃', mention: true },
      { text: ' and @Bobby, ' },
      { text: '@all', mention: true },
      { text: '!' },
    ])
    expect(richParts('mail bob@bob.org', ['bob'])).toEqual([{ text: 'mail bob@bob.org' }])
  })
})

describe('highlightParts', () => {
  it('marks every word of the query, case-insensitively', () => {
    expect(highlightParts('The Plan for the plant', 'plan')).toEqual([
      { text: 'The ', hit: false },
      { text: 'Plan', hit: true },
      { text: ' for the ', hit: false },
      { text: 'plan', hit: true },
      { text: 't', hit: false },
    ])
    expect(highlightParts('a+b', '+')).toEqual([{ text: 'a', hit: false }, { text: '+', hit: true }, { text: 'b', hit: false }])
  })
})
