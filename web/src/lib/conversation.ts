// One chat's entry in the list (`ConvMeta`) and the rules that change it, as plain data: no Vue,
// no network. The chat store keeps these in a ref; tests/conversation.test.ts checks the rules.
import type { OutboxEntry } from '@/protocol/client'
import type { ConversationSummary, ConvId, GroupView, Message, UserId } from '@/protocol/types'

export interface ConvMeta {
  id: ConvId
  peerId: UserId | null
  group: GroupView | null
  last_seq: number
  last_message: Message | null
  /** When this tab first saw it, to sort chats that have no message yet. */
  opened_at: number
  /** Server time of the last activity, when the server says. */
  last_ts: number
  pinned: boolean
  muted: boolean
  /** 1:1: how far the other person has read. */
  peer_read_seq: number
  /** Hidden from the list (history kept) until a message newer than `hidden_at` arrives. */
  hidden: boolean
  hidden_at: number
  /** The server says an unread message mentions me. */
  mentioned: boolean
  /**
   * Groups I can no longer write to: `dissolved` (history stays), or `removed`/`left` (the
   * server no longer lets me read it either).
   */
  gone: string | null
}

export function newConv(id: ConvId, peerId: UserId | null, now: number): ConvMeta {
  return {
    id,
    peerId,
    group: null,
    last_seq: 0,
    last_message: null,
    opened_at: now,
    last_ts: 0,
    pinned: false,
    muted: false,
    peer_read_seq: 0,
    hidden: false,
    hidden_at: 0,
    mentioned: false,
    gone: null,
  }
}

/** Takes what a `ConversationView` (from the list or a `conversation` frame) says about the chat. */
export function applySummary(c: ConvMeta, s: ConversationSummary) {
  if (s.last_seq >= c.last_seq) {
    c.last_seq = s.last_seq
    c.last_message = s.last_message ?? c.last_message
  }
  if (s.group) c.group = s.group
  if (typeof s.last_ts === 'number') c.last_ts = Math.max(c.last_ts, s.last_ts)
  if (s.group) {
    // A GroupView for someone no longer in the group carries no role.
    if (s.group.my_role === null && c.gone === null) c.gone = 'removed'
    else if (s.group.my_role) c.gone = c.gone === 'dissolved' ? c.gone : null
  }
  if (typeof s.pinned === 'boolean') c.pinned = s.pinned
  if (typeof s.muted === 'boolean') c.muted = s.muted
  if (typeof s.hidden === 'boolean') {
    c.hidden = s.hidden
    c.hidden_at = s.hidden ? Math.max(c.last_seq, s.last_seq) : 0
  }
  if (typeof s.mentioned === 'boolean') c.mentioned = s.mentioned
  if (typeof s.peer_read_seq === 'number') c.peer_read_seq = Math.max(c.peer_read_seq, s.peer_read_seq)
}

/** Takes a summary from the cached list: it may be old, so it only adds to what is known. */
export function applyCached(c: ConvMeta, s: ConversationSummary) {
  c.last_seq = Math.max(c.last_seq, s.last_seq ?? 0)
  c.last_message = s.last_message ?? c.last_message
  c.group = s.group ?? c.group
  c.pinned = s.pinned ?? c.pinned
  c.muted = s.muted ?? c.muted
  c.hidden = s.hidden ?? c.hidden
  c.hidden_at = c.hidden ? c.last_seq : 0
  c.last_ts = Math.max(c.last_ts, s.last_ts ?? 0)
}

/** A `group` frame for a group already in the list (it names my role only when that changed). */
export function applyGroup(c: ConvMeta, g: GroupView) {
  c.group = { ...g, my_role: g.my_role === undefined ? c.group?.my_role : g.my_role }
  if (g.my_role) c.gone = null
}

/** A message `m` of this chat: it becomes the chat's last message if it is the newest. */
export function noteMessage(c: ConvMeta, m: Message) {
  if (m.seq >= c.last_seq) {
    c.last_seq = m.seq
    c.last_message = m
  }
}

/** The time of the chat's last activity: its last message, the server's word, or a pending send. */
export function activityOf(c: ConvMeta, outbox: readonly OutboxEntry[]): number {
  let ts = Math.max(c.last_message?.ts ?? 0, c.last_ts) || c.opened_at
  for (const e of outbox) if (e.conv === c.id && e.created_at > ts) ts = e.created_at
  return ts
}

/** Hidden, and nothing newer than the hiding (a message or a pending send) brought it back. */
export function isHidden(c: ConvMeta, outbox: readonly OutboxEntry[]): boolean {
  return c.hidden && c.last_seq <= c.hidden_at && !outbox.some((e) => e.conv === c.id)
}

/** The list: pinned chats first, then newest activity; hidden chats left out unless open. */
export function sortConvs(convs: readonly ConvMeta[], outbox: readonly OutboxEntry[], active: ConvId | null): ConvMeta[] {
  return convs
    .filter((c) => !isHidden(c, outbox) || c.id === active)
    .sort((a, b) => Number(b.pinned) - Number(a.pinned) || activityOf(b, outbox) - activityOf(a, outbox))
}

/** One chat as the list shows it: names, preview and marks already worked out. */
export interface ConvRow {
  id: string
  name: string
  seed: number | string
  file: string | null
  isGroup: boolean
  preview: string
  pending: 'sending' | 'failed' | null
  draft: string
  time: string
  unread: number
  unreadLabel: string
  muted: boolean
  pinned: boolean
  mentioned: boolean
  typing: boolean
}

