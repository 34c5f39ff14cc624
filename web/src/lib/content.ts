// Plain-text views of message content: previews, notifications, lone-emoji detection.
import type { Content, SendableContent, SystemEvent, UserId } from '@/protocol/types'

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

/** A system event as a sentence in the user's language. */
export function systemText(e: SystemEvent | undefined, t: T, nameOf: NameOf): string {
  if (!e) return t('content.system')
  const n = (id: UserId | null | undefined) => (id === null || id === undefined ? '' : nameOf(id))
  switch (e.type) {
    case 'contact_accepted':
      return t('system.contact_accepted')
    case 'group_created':
      return t('system.group_created', { by: n(e.by) })
    case 'joined':
      return e.by === null || e.by === e.user ? t('system.joined_self', { user: n(e.user) }) : t('system.joined', { user: n(e.user), by: n(e.by) })
    case 'left':
      return t('system.left', { user: n(e.user) })
    case 'removed':
      return t('system.removed', { user: n(e.user), by: n(e.by) })
    case 'renamed':
      return t('system.renamed', { by: n(e.by), name: e.name })
    case 'notice_changed':
      return t('system.notice_changed', { by: n(e.by) })
    case 'owner_changed':
      return t('system.owner_changed', { user: n(e.user), by: n(e.by) })
    case 'admin_added':
      return t('system.admin_added', { user: n(e.user), by: n(e.by) })
    case 'admin_removed':
      return t('system.admin_removed', { user: n(e.user), by: n(e.by) })
    case 'muted':
      return e.until === null ? t('system.unmuted', { user: n(e.user), by: n(e.by) }) : t('system.muted', { user: n(e.user), by: n(e.by) })
    case 'dissolved':
      return t('system.dissolved', { by: n(e.by) })
    default:
      return t('content.system')
  }
}

/** A one-line preview of a message for the conversation list and notifications. */
export function previewOf(c: Content, t: T, nameOf: NameOf = (id) => `#${id}`, sender?: UserId): string {
  switch (c.kind) {
    case 'text':
      return c.text.replace(/\s+/g, ' ').trim()
    case 'emoji':
      return c.emoji
    case 'image':
      return t('content.image')
    case 'file':
      return `${t('content.file')} ${c.name}`
    case 'call':
      return t('content.call')
    case 'system':
      return c.event ? systemText(c.event, t, nameOf) : typeof c.text === 'string' ? c.text : t('content.system')
    case 'recalled':
      return sender === undefined ? t('content.recalled') : t('content.recalledBy', { user: nameOf(sender) })
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
