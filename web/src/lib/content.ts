// Plain-text views of message content: previews, notifications, lone-emoji detection.
import type { Content, SendableContent, SystemEvent, UserId } from '@/protocol/types'
import { voiceTime } from './voice'

type T = (key: string, named?: Record<string, unknown>) => string
/** One emoji reaction under a message, as the bubble shows it. */
export interface Reaction {
  emoji: string
  count: number
  mine: boolean
  /** "👍 from Ann, Bob" for screen readers and the tooltip. */
  label: string
}

/** Resolves a user id to a display name ("You" for oneself). */
export type NameOf = (id: UserId) => string

/**
 * A system event as a sentence in the user's language. `objectOf` names someone in the object
 * position ("Ann removed you"), where `nameOf` would say "You".
 */
export function systemText(e: SystemEvent | undefined, t: T, nameOf: NameOf, objectOf: NameOf = nameOf): string {
  if (!e) return t('content.system')
  const n = (id: UserId | null | undefined) => (id === null || id === undefined ? '' : nameOf(id))
  const o = (id: UserId | null | undefined) => (id === null || id === undefined ? '' : objectOf(id))
  switch (e.type) {
    case 'contact_accepted':
      return t('system.contact_accepted')
    case 'group_created':
      return t('system.group_created', { by: n(e.by) })
    case 'joined':
      return e.by === null || e.by === e.user ? t('system.joined_self', { user: n(e.user) }) : t('system.joined', { user: o(e.user), by: n(e.by) })
    case 'left':
      return t('system.left', { user: n(e.user) })
    case 'removed':
      return t('system.removed', { user: o(e.user), by: n(e.by) })
    case 'renamed':
      return t('system.renamed', { by: n(e.by), name: e.name })
    case 'notice_changed':
      return e.notice ? t('system.notice_set', { by: n(e.by), notice: e.notice }) : t('system.notice_changed', { by: n(e.by) })
    case 'owner_changed':
      return t('system.owner_changed', { user: n(e.user), by: n(e.by) })
    case 'admin_added':
      return t('system.admin_added', { user: o(e.user), by: n(e.by) })
    case 'admin_removed':
      return t('system.admin_removed', { user: o(e.user), by: n(e.by) })
    case 'muted':
      return e.until === null ? t('system.unmuted', { user: o(e.user), by: n(e.by) }) : t('system.muted', { user: o(e.user), by: n(e.by) })
    case 'dissolved':
      return t('system.dissolved', { by: n(e.by) })
    default:
      return t('content.system')
  }
}

/** "1:05" for 65 seconds, "1:01:05" past an hour. */
export function formatDuration(secs: number): string {
  const s = Math.max(0, Math.floor(secs))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** A call record as a sentence: "Call duration 1:05", "Missed call", ... */
export function callText(c: Extract<Content, { kind: 'call' }>, mine: boolean, t: T): string {
  switch (c.outcome) {
    case 'answered':
      return t('call.record.answered', { duration: formatDuration(c.duration_secs ?? 0) })
    case 'missed':
      return mine ? t('call.record.noAnswer') : t('call.record.missed')
    case 'declined':
      return t('call.record.declined')
    case 'cancelled':
      return mine ? t('call.record.cancelled') : t('call.record.missed')
    case 'busy':
      return mine ? t('call.record.busy') : t('call.record.missed')
    case 'failed':
      return t('call.record.failed')
    default:
      return c.media === 'video' ? t('content.videoCall') : t('content.call')
  }
}

/**
 * Chinese sentences keep a space around names ("Bob 撤回了一条消息") but none around 你
 * ("你撤回了一条消息"): drops the spaces next to `you` when it is written in Han characters.
 */
export function tidyYou(text: string, you: string): string {
  if (!/^\p{Script=Han}+$/u.test(you)) return text
  return text.replace(new RegExp(` ?${you} ?`, 'gu'), you)
}

/** A one-line preview of a message for the conversation list and notifications. */
export function previewOf(
  c: Content | SendableContent,
  t: T,
  nameOf: NameOf = (id) => `#${id}`,
  sender?: UserId,
  objectOf: NameOf = nameOf,
): string {
  switch (c.kind) {
    case 'text':
      return c.text.replace(/\s+/g, ' ').trim()
    case 'emoji':
      return c.emoji
    case 'image':
      return t('content.image')
    case 'file':
      return c.name ? `${t('content.file')} ${c.name}` : t('content.file')
    case 'sticker':
      return t('content.stickerPreview')
    case 'voice':
      return t('content.voice', { duration: voiceTime(c.duration_ms) })
    case 'call':
      return c.media === 'video' ? t('content.videoCall') : t('content.call')
    case 'system':
      return c.event ? systemText(c.event, t, nameOf, objectOf) : typeof c.text === 'string' ? c.text : t('content.system')
    case 'recalled':
      return sender === undefined ? t('content.recalled') : t('content.recalledBy', { user: nameOf(sender) })
    case 'history':
      return t('content.history')
    default:
      return t('content.unsupported')
  }
}

const utf8 = new TextEncoder()
const pictographic = /\p{Extended_Pictographic}|\p{Regional_Indicator}/u
const segmenter: Intl.Segmenter | null =
  typeof Intl !== 'undefined' && 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null

/** True when `text` is exactly one emoji (one grapheme cluster holding a pictograph). */
export function isLoneEmoji(text: string): boolean {
  const s = text.trim()
  // The server allows an emoji of at most 64 UTF-8 bytes.
  if (!s || utf8.encode(s).length > 64 || !pictographic.test(s)) return false
  if (segmenter) return [...segmenter.segment(s)].length === 1
  // Without Intl.Segmenter: accept pictographs joined by ZWJ and variation selectors only.
  return /^(?:\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})?(?:\u200D|$))+$/u.test(s) ||
    /^\p{Regional_Indicator}{2}$/u.test(s)
}

/** What the composer sends for `text`: a lone emoji goes as `{"kind":"emoji"}`. */
export function contentFromInput(text: string): SendableContent | null {
  const trimmed = text.replace(/^\s*\n|\n\s*$/g, '')
  if (!trimmed.trim()) return null
  if (isLoneEmoji(trimmed)) return { kind: 'emoji', emoji: trimmed.trim() }
  return { kind: 'text', text: trimmed }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}
