// Locale-aware time labels for the conversation list, bubbles and date separators.

const DAY = 86_400_000

function startOfDay(ts: number) {
  const d = new Date(ts)
  d.setHours(0, 0, 0, 0)
  return d.getTime()
}

export function isSameDay(a: number, b: number) {
  return startOfDay(a) === startOfDay(b)
}

export function clock(ts: number, locale: string) {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', hour12: false }).format(ts)
}

/** "14:05" today, "Yesterday", a weekday within the week, else a short date. */
export function listTime(ts: number, locale: string, yesterday: string, now = Date.now()) {
  const today = startOfDay(now)
  if (ts >= today) return clock(ts, locale)
  if (ts >= today - DAY) return yesterday
  if (ts >= today - 6 * DAY) return new Intl.DateTimeFormat(locale, { weekday: 'short' }).format(ts)
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear()
  return new Intl.DateTimeFormat(locale, sameYear ? { month: 'numeric', day: 'numeric' } : { year: '2-digit', month: 'numeric', day: 'numeric' }).format(ts)
}

/** The label of a date separator in a chat. */
export function dayLabel(ts: number, locale: string, words: { today: string; yesterday: string }, now = Date.now()) {
  const today = startOfDay(now)
  const day = startOfDay(ts)
  if (day === today) return words.today
  if (day === today - DAY) return words.yesterday
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear()
  return new Intl.DateTimeFormat(locale, sameYear ? { month: 'long', day: 'numeric', weekday: 'short' } : { year: 'numeric', month: 'long', day: 'numeric' }).format(ts)
}
