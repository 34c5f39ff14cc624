// What a chat shows, top to bottom, as plain data: the stored messages of the visible run, then
// the pending sends of the outbox, then uploads under way, with day separators, the "unread
// below" divider, centred notices for system events and recalls, and bubbles grouped by sender.
// No Vue here: the chat view passes the state in and the words (`TimelineText`, from vue-i18n)
// and renders the items; tests/timeline.test.ts checks the rules.
//
// Rules:
// - A day separator goes before the first item of each calendar day (local time).
// - A bubble is `grouped` with the one before it when the same person sent both less than five
//   minutes apart and nothing (a separator, a notice, the divider) stands between them; a
//   grouped bubble shows no avatar, and in a group chat no name.
// - The unread divider goes once, before the first message from someone else above the seq
//   that was read when the chat was opened.
// - Pending sends and uploads are mine, and never shown earlier than the last item above them.
import { isSameDay } from './time'
import type { Reaction } from './content'
import type { OutboxEntry } from '@/protocol/client'
import type { Content, Message, ReadList, UserId } from '@/protocol/types'

/** Bubbles of one sender closer together than this form a run. */
export const GROUP_MS = 5 * 60_000

export interface MessageItem {
  type: 'msg'
  key: string
  content: Content
  mine: boolean
  time: string
  fullTime: string
  status: 'sent' | 'sending' | 'failed'
  error?: string
  showAvatar: boolean
  grouped: boolean
  clientId?: string
  senderName: string
  senderSeed: number | string
  /** Group chats name the sender above the first bubble of a run. */
  showName: boolean
  edited: boolean
  reactions: Reaction[]
  receipt: 'read' | 'sent' | null
  seq: number | null
  ts: number
  /** The quoted message; `recalled` when it was recalled after the reply (its text is gone). */
  quote: { seq: number; name: string; preview: string; recalled: boolean } | null
  avatar: string | null
  readBy: { n: number; total: number } | null
  upload: { url: string | null; progress: number; failed: boolean } | null
  uploadId?: string
}

export type TimelineItem =
  | { type: 'day'; key: string; label: string }
  | { type: 'unread'; key: string }
  | { type: 'notice'; key: string; text: string }
  | MessageItem

/** An upload under way, as the uploads store keeps it. */
export interface PendingUpload {
  id: string
  kind: 'image' | 'file'
  name: string
  size: number
  url: string | null
  width: number | null
  height: number | null
  progress: number
  error: unknown
  created_at: number
}

export interface TimelineInput {
  /** The visible run of stored messages, by seq. */
  messages: readonly Message[]
  pending: readonly OutboxEntry[]
  uploads: readonly PendingUpload[]
  myId: UserId | undefined
  isGroup: boolean
  /** 1:1 chats: how far the other person has read (0: unknown). */
  peerRead: number
  /** The read position when the chat was opened, if something was unread then. */
  unreadAfter: number | null
  /** Group chats: who has read my messages, by seq. */
  reads: Readonly<Record<number, ReadList>> | undefined
  /** 1:1 chats show the other person as the sender of their bubbles. */
  peer: { name: string; seed: number | string; avatar: string | null }
}

/** The words and lookups the timeline needs (the view builds them from vue-i18n and the stores). */
export interface TimelineText {
  dayLabel(ts: number): string
  clock(ts: number): string
  fullTime(ts: number): string
  /** A person's name ("You" for me). */
  name(id: UserId): string
  avatar(id: UserId): string | null
  /** The centred line for a system event or a recall (`by`: who recalled it). */
  notice(content: Content, by: UserId): string
  /** "👍 from Ann, Bob". */
  reactionLabel(emoji: string, names: string): string
  sendError(error: { code: string; message: string }): string
  uploadError(error: unknown): string
}

export function reactionsOf(m: Message, myId: UserId | undefined, text: Pick<TimelineText, 'name' | 'reactionLabel'>): Reaction[] {
  return Object.entries(m.reactions ?? {})
    .filter(([, who]) => who.length > 0)
    .map(([emoji, who]) => ({
      emoji,
      count: who.length,
      mine: myId !== undefined && who.includes(myId),
      label: text.reactionLabel(emoji, who.map((id) => text.name(id)).join(', ')),
    }))
}

interface Entry {
  key: string
  ts: number
  sender: UserId
  content: Content
  status: MessageItem['status']
  clientId?: string
  error?: string
  m?: Message
  replyTo?: { seq: number; sender: UserId; preview: string; recalled?: boolean } | null
  up?: PendingUpload
}

export function buildTimeline(input: TimelineInput, text: TimelineText): TimelineItem[] {
  const { myId, isGroup } = input
  const out: TimelineItem[] = []
  let prevTs: number | null = null
  let prevSender: UserId | null = null

  const push = (e: Entry) => {
    const { key, ts, sender, content, m } = e
    if (prevTs === null || !isSameDay(prevTs, ts)) {
      out.push({ type: 'day', key: `day-${key}`, label: text.dayLabel(ts) })
      prevSender = null
    }
    // System events and recalled messages are centred notices, not bubbles.
    if (content.kind === 'system' || content.kind === 'recalled') {
      out.push({ type: 'notice', key, text: text.notice(content, m?.recalled?.by ?? sender) })
      prevTs = ts
      prevSender = null
      return
    }
    const grouped = prevSender === sender && prevTs !== null && ts - prevTs < GROUP_MS
    const mine = sender === myId
    const r = mine && m && isGroup ? input.reads?.[m.seq] : undefined
    out.push({
      type: 'msg',
      key,
      content,
      mine,
      time: text.clock(ts),
      fullTime: text.fullTime(ts),
      status: e.status,
      error: e.error,
      showAvatar: !grouped,
      grouped,
      clientId: e.clientId,
      senderName: isGroup ? text.name(sender) : input.peer.name,
      senderSeed: isGroup ? sender : input.peer.seed,
      showName: isGroup && !mine && !grouped,
      edited: !!m?.edited_at,
      reactions: m ? reactionsOf(m, myId, text) : [],
      receipt: mine && m && !isGroup && input.peerRead > 0 ? (m.seq <= input.peerRead ? 'read' : 'sent') : null,
      seq: m?.seq ?? null,
      ts,
      quote: e.replyTo
        ? { seq: e.replyTo.seq, name: text.name(e.replyTo.sender), preview: e.replyTo.preview, recalled: !!e.replyTo.recalled }
        : null,
      avatar: isGroup ? text.avatar(sender) : input.peer.avatar,
      readBy: r ? { n: r.read_by.length, total: r.read_by.length + r.unread_by.length } : null,
      upload: e.up ? { url: e.up.url, progress: e.up.progress, failed: !!e.up.error } : null,
      uploadId: e.up?.id,
    })
    prevTs = ts
    prevSender = sender
  }

  let dividerPlaced = false
  for (const m of input.messages) {
    if (!dividerPlaced && input.unreadAfter !== null && m.seq > input.unreadAfter && m.sender !== myId) {
      dividerPlaced = true
      out.push({ type: 'unread', key: 'unread' })
      prevSender = null
    }
    push({ key: `s${m.seq}`, ts: m.ts, sender: m.sender, content: m.content, status: 'sent', m, replyTo: m.reply_to })
  }
  for (const e of input.pending) {
    push({
      key: `c${e.client_id}`,
      ts: Math.max(e.created_at, prevTs ?? 0),
      sender: myId ?? -1,
      // Pending media carries what the upload answered; the stored message fills in the rest.
      content: e.content as Content,
      status: e.status,
      clientId: e.client_id,
      error: e.error ? text.sendError(e.error) : undefined,
      replyTo: e.reply_to,
    })
  }
  for (const u of input.uploads) {
    const content: Content =
      u.kind === 'image'
        ? { kind: 'image', file_id: '', width: u.width ?? 0, height: u.height ?? 0, name: u.name, size: u.size }
        : { kind: 'file', file_id: '', name: u.name, size: u.size, mime: '' }
    push({
      key: `u${u.id}`,
      ts: Math.max(u.created_at, prevTs ?? 0),
      sender: myId ?? -1,
      content,
      status: u.error ? 'failed' : 'sending',
      error: u.error ? text.uploadError(u.error) : undefined,
      replyTo: null,
      up: u,
    })
  }
  return out
}

/**
 * A key that changes when a new bubble appears at the bottom, and says whether it is mine (the
 * view then scrolls down even when the reader had scrolled up).
 */
export function bottomKey(items: readonly TimelineItem[]): string {
  const last = items[items.length - 1]
  return last && last.type === 'msg' ? `${last.key}:${last.mine}` : ''
}

/** How long my text messages can be edited, and recalled (the server's default windows). */
export const EDIT_WINDOW_MS = 24 * 3600_000
export const RECALL_WINDOW_MS = 2 * 60_000

/**
 * What the action menu of a bubble offers: copying its text, editing it (my text messages, for a
 * day), recalling it (mine for two minutes; any message for a group's owners and admins).
 */
export function menuRights(it: MessageItem, now: number, groupManager: boolean): { text: string | null; canEdit: boolean; canRecall: boolean } {
  return {
    text: it.content.kind === 'text' ? it.content.text : it.content.kind === 'emoji' ? it.content.emoji : null,
    canEdit: it.mine && it.content.kind === 'text' && now - it.ts < EDIT_WINDOW_MS,
    canRecall: (it.mine && now - it.ts < RECALL_WINDOW_MS) || groupManager,
  }
}
