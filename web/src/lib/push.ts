// Plain helpers of Web Push for the push store (stores/push.ts): can this browser push, the
// server's key in the form `PushManager.subscribe` takes, and the settings as they are saved.
import type { PushSettings } from '@/protocol/types'

/** The parts of `window` that decide whether this page can receive pushes at all. */
export interface PushCapableWindow {
  isSecureContext?: boolean
  navigator?: object
  PushManager?: unknown
  Notification?: unknown
}

/**
 * Web Push needs a service worker, the Push API and notifications, on https or localhost. iOS
 * and iPadOS (16.4+) have them only in an app added to the home screen, so a Safari tab there
 * says no.
 */
export function pushSupported(w: PushCapableWindow | undefined): boolean {
  return (
    !!w &&
    w.isSecureContext === true &&
    !!w.navigator &&
    'serviceWorker' in w.navigator &&
    'PushManager' in w &&
    'Notification' in w
  )
}

/** The server's VAPID public key (base64url, no padding) as the bytes `subscribe` wants. */
export function vapidKeyBytes(key: string): Uint8Array<ArrayBuffer> {
  const b64 = key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (key.length % 4)) % 4)
  const raw = atob(b64)
  const out = new Uint8Array(new ArrayBuffer(raw.length))
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i)
  return out
}

export const DEFAULT_PUSH_SETTINGS: PushSettings = { preview: 'full', dnd: null }

/** `HH:MM`, 00:00 to 23:59. */
export function isClock(s: string): boolean {
  return /^([01]\d|2[0-3]):[0-5]\d$/.test(s)
}

/**
 * The settings as `PUT` sends them: the quiet hours carry the device's current offset from UTC
 * (minutes east, so UTC+8 is 480), taken at each save so a move across zones or a change to
 * summer time follows the next save.
 */
export function settingsToSave(s: PushSettings, now: Date = new Date()): PushSettings {
  if (!s.dnd) return { preview: s.preview, dnd: null }
  return { preview: s.preview, dnd: { start: s.dnd.start, end: s.dnd.end, utc_offset_minutes: -now.getTimezoneOffset() || 0 } }
}

/** Answers of the server that are a settings object; anything else is the default. */
export function parsePushSettings(v: unknown): PushSettings {
  const o = (v ?? {}) as Partial<PushSettings>
  const preview = o.preview === 'sender' || o.preview === 'none' ? o.preview : 'full'
  const d = o.dnd
  const dnd =
    d && typeof d === 'object' && isClock(d.start) && isClock(d.end)
      ? { start: d.start, end: d.end, utc_offset_minutes: typeof d.utc_offset_minutes === 'number' ? d.utc_offset_minutes : 0 }
      : null
  return { preview, dnd }
}
