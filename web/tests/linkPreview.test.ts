import { describe, expect, it, vi } from 'vitest'
import { firstLink, previewCache, worthShowing } from '@/lib/linkPreview'
import { ApiError } from '@/protocol/api'
import type { LinkPreview } from '@/protocol/types'

const page = (url: string): LinkPreview => ({ url, title: 'T', description: null, site_name: 'S', image: null })

describe('link previews', () => {
  it('finds the first http(s) link, without trailing punctuation', () => {
    expect(firstLink('see https://example.org/a?b=1. and http://x.y')).toBe('https://example.org/a?b=1')
    expect(firstLink('(http://example.org/path)')).toBe('http://example.org/path')
    expect(firstLink('ftp://example.org javascript:alert(1) no links')).toBeNull()
  })

  it('shows a card only with a title or a description', () => {
    expect(worthShowing(null)).toBe(false)
    expect(worthShowing({ ...page('u'), title: null })).toBe(false)
    expect(worthShowing(page('u'))).toBe(true)
  })

  it('asks the server once per URL, however many cards ask at once', async () => {
    const fetcher = vi.fn(async (u: string) => page(u))
    const c = previewCache(fetcher)
    const [a, b] = await Promise.all([c.get('https://a.example/'), c.get('https://a.example/')])
    expect(a).toEqual(page('https://a.example/'))
    expect(b).toBe(a)
    await c.get('https://a.example/')
    expect(fetcher).toHaveBeenCalledTimes(1)
  })

  it('remembers failures, but not rate limits or lost connections', async () => {
    let answer: unknown = new ApiError(400, 'url_refused', 'no')
    const fetcher = vi.fn(async (u: string) => {
      if (answer instanceof Error) throw answer
      return page(u)
    })
    const c = previewCache(fetcher)
    expect(await c.get('http://10.0.0.1/')).toBeNull()
    expect(await c.get('http://10.0.0.1/')).toBeNull()
    expect(fetcher).toHaveBeenCalledTimes(1)
    answer = new ApiError(429, 'rate_limited', 'slow down', 5)
    expect(await c.get('https://b.example/')).toBeNull()
    answer = null
    expect(await c.get('https://b.example/')).toEqual(page('https://b.example/'))
    expect(fetcher).toHaveBeenCalledTimes(3)
  })
})
