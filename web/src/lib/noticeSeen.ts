// Which group notices this browser dismissed: per group, the hash of the notice text that was
// dismissed (a changed notice shows again).
const KEY = 'chinwag:notice-dismissed'

/** A short, stable hash of `text` (FNV-1a, 32 bits), so the text itself is not kept twice. */
export function noticeHash(text: string): string {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(36)
}

function load(): Record<string, string> {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '{}')
    return v && typeof v === 'object' ? v : {}
  } catch {
    return {}
  }
}

export function noticeDismissed(group: number, notice: string): boolean {
  return load()[String(group)] === noticeHash(notice)
}

export function dismissNotice(group: number, notice: string): void {
  const all = load()
  all[String(group)] = noticeHash(notice)
  try {
    localStorage.setItem(KEY, JSON.stringify(all))
  } catch {
    // Storage full or blocked: the banner comes back on the next visit, nothing worse.
  }
}
