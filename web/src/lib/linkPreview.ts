// Link previews, as the server fetched them (`GET /api/link-preview`): the client never contacts
// the linked site. One request per URL per page load: answers, and failures, are kept in memory.
import { api, ApiError } from '@/protocol/api'
import type { LinkPreview } from '@/protocol/types'

const urlRe = /\bhttps?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]}]/i

/** The first http(s) link of a text (the one a message previews), or null. */
export function firstLink(text: string): string | null {
  const m = urlRe.exec(text)
  return m ? m[0] : null
}

/** Whether a preview has anything worth a card. */
export function worthShowing(p: LinkPreview | null): p is LinkPreview {
  return !!p && !!(p.title || p.description)
}

/** Most URLs remembered; the oldest are forgotten first. */
const MAX_ENTRIES = 500

/** A memory cache in front of `fetcher`: one request per URL, shared by every caller. */
export function previewCache(fetcher: (url: string) => Promise<LinkPreview>) {
  const entries = new Map<string, Promise<LinkPreview | null>>()
  // The server has previews turned off (`links.previews = false`): stop asking.
  let disabled = false
  return {
    get(url: string): Promise<LinkPreview | null> {
      if (disabled) return Promise.resolve(null)
      const known = entries.get(url)
      if (known) return known
      const p = fetcher(url).catch((e: unknown) => {
        // A rate limit or a lost connection says nothing about the page: ask again next time.
        if (e instanceof ApiError && (e.code === 'rate_limited' || e.code === 'network')) entries.delete(url)
        if (e instanceof ApiError && e.code === 'previews_disabled') disabled = true
        return null
      })
      entries.set(url, p)
      if (entries.size > MAX_ENTRIES) entries.delete(entries.keys().next().value as string)
      return p
    },
    size: () => entries.size,
  }
}

/** The cache every card of the page shares. */
export const previews = previewCache((url) => api.linkPreview(url))
