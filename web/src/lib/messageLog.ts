// The message log of each conversation, as plain data: no Vue, no Pinia, no network. The chat
// store keeps a `Logs` record in a ref and changes it only through these functions, so the rules
// below are tested without a browser (tests/messageLog.test.ts).
//
// Rules:
// - A log is sorted by seq with no duplicates: every message (a sync answer, a live frame, an ack,
//   a history page, the cache) goes in through `insert`, keyed by (conv, seq); a message already
//   known is left as it is, so the same message delivered twice appears once; only a placeholder
//   of a message I deleted for myself (lib/hidden.ts) replaces the known copy.
// - An `update` frame replaces a known message by seq and never adds one: an edit of a message
//   this device never loaded stays unknown until its page is fetched.
// - A `synced` frame that names chats to reload drops their logs (the server says too much was
//   missed to fill in), so nothing stale is shown beside what is fetched anew.
// - A chat shows only the contiguous run that ends at the newest message it knows (`visibleRun`);
//   a hole below a newly inserted message is reported by `gapBelow` so it can be fetched.
import type { ConvId, Message, UserId } from '@/protocol/types'

/** The known messages of each conversation, each list sorted by seq without duplicates. */
export type Logs = Record<ConvId, Message[]>

/** Messages missing between two known ones: everything with `after < seq < before`. */
export interface Gap {
  conv: ConvId
  after: number
  before: number
}

/** Where `seq` is, or would go, in a sorted log (binary search). */
function indexOf(log: readonly Message[], seq: number): number {
  let lo = 0
  let hi = log.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (log[mid]!.seq < seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Inserts `m` into its conversation's log; returns false if (conv, seq) was already known. */
export function insert(logs: Logs, m: Message): boolean {
  const log = (logs[m.conv] ??= [])
  // Fast path: appending in order.
  if (log.length === 0 || log[log.length - 1]!.seq < m.seq) {
    log.push(m)
    return true
  }
  const i = indexOf(log, m.seq)
  if (log[i]?.seq === m.seq) {
    // A message I deleted for myself elsewhere (a history page's placeholder), or one recalled
    // since this device kept its copy (the copy cached before a reload), replaces that copy, but
    // is no new message: a recalled text must not stay on screen.
    const kept = log[i]!
    if ((m.hidden && !kept.hidden) || (m.content.kind === 'recalled' && kept.content.kind !== 'recalled')) log.splice(i, 1, m)
    return false
  }
  log.splice(i, 0, m)
  return true
}

/** Replaces the known message with `m`'s (conv, seq); returns false if it was not known. */
export function replace(logs: Logs, m: Message): boolean {
  const log = logs[m.conv]
  if (!log) return false
  const i = indexOf(log, m.seq)
  if (log[i]?.seq !== m.seq) return false
  log.splice(i, 1, m)
  return true
}

/** The known message `seq` of `conv`, if any. */
export function find(logs: Logs, conv: ConvId, seq: number): Message | undefined {
  const log = logs[conv]
  if (!log) return undefined
  const m = log[indexOf(log, seq)]
  return m?.seq === seq ? m : undefined
}

/** Forgets the logs of `convs` (a `synced` frame's `reload`, a group left); returns those dropped. */
export function drop(logs: Logs, convs: readonly ConvId[]): ConvId[] {
  const dropped: ConvId[] = []
  for (const conv of convs) {
    if (logs[conv]) dropped.push(conv)
    delete logs[conv]
  }
  return dropped
}

/** The highest seq known in a log, or 0. */
export function lastSeq(log: readonly Message[] | undefined): number {
  return log?.length ? log[log.length - 1]!.seq : 0
}

/** The contiguous run of messages ending at the newest known one. */
export function visibleRun(log: readonly Message[] | undefined): Message[] {
  if (!log || log.length === 0) return []
  let start = log.length - 1
  while (start > 0 && log[start - 1]!.seq === log[start]!.seq - 1) start--
  return log.slice(start)
}

/** Whether messages older than the visible run may exist (it does not start at seq 1). */
export function mayHaveOlder(log: readonly Message[] | undefined): boolean {
  const run = visibleRun(log)
  return run.length > 0 && run[0]!.seq > 1
}

/** The hole right below message `seq` of `conv`, if the message before it is known but not adjacent. */
export function gapBelow(logs: Logs, conv: ConvId, seq: number): Gap | null {
  const log = logs[conv]
  if (!log) return null
  const i = indexOf(log, seq)
  if (log[i]?.seq !== seq || i === 0) return null
  const below = log[i - 1]!.seq
  return below === seq - 1 ? null : { conv, after: below, before: seq }
}

/** How many messages from others come after `seen` (the unread count). */
export function unreadCount(log: readonly Message[] | undefined, seen: number, me: UserId | undefined): number {
  let n = 0
  if (log) for (let i = log.length - 1; i >= 0 && log[i]!.seq > seen; i--) if (log[i]!.sender !== me && !log[i]!.hidden) n++
  return n
}

/** Whether a message from someone else after `seen` mentions `me` (or everyone). */
export function mentionsAfter(log: readonly Message[] | undefined, seen: number, me: UserId): boolean {
  if (!log) return false
  for (let i = log.length - 1; i >= 0 && log[i]!.seq > seen; i--) {
    const m = log[i]!
    if (m.sender !== me && (m.mention_all || m.mentions?.includes(me))) return true
  }
  return false
}

/** The frames of the socket that change logs. */
export type LogFrame =
  | { type: 'message'; message: Message }
  | { type: 'update'; message: Message }
  | { type: 'synced'; reload: ConvId[] }

/** What applying a frame did: whether a message was new or replaced, a hole it revealed, logs dropped. */
export interface LogOutcome {
  added: boolean
  replaced: boolean
  gap: Gap | null
  dropped: ConvId[]
}

/** Applies one socket frame to the logs by the rules above. */
export function applyFrame(logs: Logs, f: LogFrame): LogOutcome {
  const out: LogOutcome = { added: false, replaced: false, gap: null, dropped: [] }
  switch (f.type) {
    case 'message':
      out.added = insert(logs, f.message)
      if (out.added) out.gap = gapBelow(logs, f.message.conv, f.message.seq)
      break
    case 'update':
      out.replaced = replace(logs, f.message)
      break
    case 'synced':
      out.dropped = drop(logs, f.reload)
      break
  }
  return out
}
