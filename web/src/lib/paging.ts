// The paging state of the admin area's lists, without Vue: either numbered pages of `limit` rows
// at `offset` out of the server's `total` (users, groups), or "load more" after the last row
// (the audit log). Every request takes a ticket, and only the latest request's answer is applied,
// so a slow answer to an old search cannot overwrite the answer to a newer one.

/** `pages`: offset and total; `more`: each answer is appended while full pages come back. */
export type PageMode = 'pages' | 'more'

/** What a request asks for: page one (a new search), the same page again, the next or previous page, more rows. */
export type PageStep = 'first' | 'again' | 'next' | 'prev' | 'more'

export interface PageState<T> {
  readonly mode: PageMode
  readonly limit: number
  items: T[]
  /** The first shown row's index (pages). */
  offset: number
  /** The rows in all pages, from the last answer (pages). */
  total: number
  /** Whether a "load more" may bring rows (more): the last answer was a full page. */
  more: boolean
  loading: boolean
  /** The last failure, shown above the list; cleared by the next answer. */
  error: string
  /** The latest request's ticket. */
  seq: number
}

export interface PageQuery<T> {
  ticket: number
  offset: number
  limit: number
  /** The last row held, for `more`: the server answers rows after it. */
  after: T | undefined
  append: boolean
}

export interface PageAnswer<T> {
  items: T[]
  /** The rows in all pages (pages mode). */
  total?: number
}

export function pageState<T>(mode: PageMode, limit: number): PageState<T> {
  return { mode, limit, items: [], offset: 0, total: 0, more: false, loading: false, error: '', seq: 0 }
}

/** Starts a request: moves the offset at once (the buttons show where the list is going) and returns the query to send. */
export function begin<T>(s: PageState<T>, step: PageStep): PageQuery<T> {
  if (step === 'first') s.offset = 0
  else if (step === 'next') s.offset += s.limit
  else if (step === 'prev') s.offset = Math.max(0, s.offset - s.limit)
  s.seq += 1
  s.loading = true
  const append = step === 'more'
  return { ticket: s.seq, offset: s.offset, limit: s.limit, after: append ? s.items[s.items.length - 1] : undefined, append }
}

/** Applies an answer; false (and nothing changed) when a later request was made since. */
export function settle<T>(s: PageState<T>, q: PageQuery<T>, answer: PageAnswer<T>): boolean {
  if (q.ticket !== s.seq) return false
  s.items = q.append ? [...s.items, ...answer.items] : answer.items
  s.total = answer.total ?? s.items.length
  s.more = answer.items.length === s.limit
  s.error = ''
  s.loading = false
  return true
}

/** Records a failure; the rows shown stay. False when a later request was made since. */
export function fail<T>(s: PageState<T>, q: PageQuery<T>, message: string): boolean {
  if (q.ticket !== s.seq) return false
  s.error = message
  s.loading = false
  return true
}

export const canPrev = (s: PageState<unknown>) => s.offset > 0 && !s.loading
export const canNext = (s: PageState<unknown>) => s.offset + s.limit < s.total && !s.loading
/** Whether the list has more than one page, so it shows the Previous and Next buttons. */
export const paged = (s: PageState<unknown>) => s.mode === 'pages' && s.total > s.limit
/** Nothing to show, and nothing on the way. */
export const empty = (s: PageState<unknown>) => !s.loading && s.items.length === 0

/** The shown rows as "from–to of total" numbers, or null before there is any row. */
export function range(s: PageState<unknown>): { from: number; to: number; total: number } | null {
  if (s.mode !== 'pages' || !s.total) return null
  return { from: s.offset + 1, to: Math.min(s.total, s.offset + s.items.length), total: s.total }
}
