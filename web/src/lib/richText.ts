// A text message split into runs for display: plain text, links (http(s) URLs and bare
// `www.` addresses, which open as https) and mentions of the reader (highlighted).

export interface RichPart {
  text: string
  href?: string
  /** A mention of the reader (`@their name`, `@all`). */
  mention?: boolean
}

const linkRe = /\b(?:https?:\/\/|www\.[a-z0-9-]+\.)[^\s<>"'`]*[^\s<>"'`.,;:!?)\]}]/gi

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Splits `text` into plain runs, links and mentions of any of `names` (without the `@`). */
export function richParts(text: string, names: readonly string[] = []): RichPart[] {
  const out: RichPart[] = []
  const wanted = [...new Set(names.filter((n) => n.trim() !== ''))].sort((a, b) => b.length - a.length)
  const mentionRe = wanted.length ? new RegExp(`(?<![\\p{L}\\p{N}_])@(?:${wanted.map(escapeRe).join('|')})(?![\\p{L}\\p{N}_])`, 'giu') : null
  const plain = (s: string) => {
    if (!s) return
    if (!mentionRe) return void out.push({ text: s })
    let last = 0
    for (const m of s.matchAll(mentionRe)) {
      const i = m.index ?? 0
      if (i > last) out.push({ text: s.slice(last, i) })
      out.push({ text: m[0], mention: true })
      last = i + m[0].length
    }
    if (last < s.length) out.push({ text: s.slice(last) })
  }
  let last = 0
  for (const m of text.matchAll(linkRe)) {
    const i = m.index ?? 0
    plain(text.slice(last, i))
    const href = /^https?:\/\//i.test(m[0]) ? m[0] : `https://${m[0]}`
    out.push({ text: m[0], href })
    last = i + m[0].length
  }
  plain(text.slice(last))
  return out
}

/** `text` split around case-insensitive occurrences of `query`'s words, for highlighting hits. */
export function highlightParts(text: string, query: string): { text: string; hit: boolean }[] {
  const words = [...new Set(query.trim().split(/\s+/).filter(Boolean))].sort((a, b) => b.length - a.length)
  if (words.length === 0) return [{ text, hit: false }]
  const re = new RegExp(words.map(escapeRe).join('|'), 'gi')
  const out: { text: string; hit: boolean }[] = []
  let last = 0
  for (const m of text.matchAll(re)) {
    const i = m.index ?? 0
    if (m[0] === '') break
    if (i > last) out.push({ text: text.slice(last, i), hit: false })
    out.push({ text: m[0], hit: true })
    last = i + m[0].length
  }
  if (last < text.length) out.push({ text: text.slice(last), hit: false })
  return out
}
