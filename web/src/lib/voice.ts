// Voice messages and in-app media, the pure parts: the waveform drawn from a recording, the
// "0:07" duration, which recorder format to ask for, and which files the app shows inline.

/** Bars a waveform has (the server takes 16 to 64). */
export const WAVEFORM_BARS = 48
/** Highest level of a bar (the server's limit). */
export const WAVEFORM_MAX = 31

/**
 * A loudness outline of `samples`: the peak of each of `bars` equal slices, scaled so the loudest
 * slice is `WAVEFORM_MAX` (silence stays 0, quiet recordings are lifted to be seen).
 */
export function waveformOf(samples: ArrayLike<number>, bars = WAVEFORM_BARS): number[] {
  const n = samples.length
  const peaks: number[] = []
  for (let b = 0; b < bars; b++) {
    const from = Math.floor((b * n) / bars)
    const to = Math.max(from + 1, Math.floor(((b + 1) * n) / bars))
    let peak = 0
    for (let i = from; i < to && i < n; i++) peak = Math.max(peak, Math.abs(samples[i] ?? 0))
    peaks.push(peak)
  }
  const top = Math.max(...peaks, 0)
  if (top < 1e-4) return peaks.map(() => 0)
  return peaks.map((p) => Math.min(WAVEFORM_MAX, Math.round((p / top) * WAVEFORM_MAX)))
}

/** Whether a waveform is one the server accepts. */
export function validWaveform(w: unknown): w is number[] {
  return Array.isArray(w) && w.length >= 16 && w.length <= 64 && w.every((x) => Number.isInteger(x) && x >= 0 && x <= WAVEFORM_MAX)
}

/** "0:07" for 7,040 ms (to the nearest second; a short clip never reads 0:00). As the server's previews. */
export function voiceTime(ms: number): string {
  const s = ms > 0 ? Math.max(1, Math.round(ms / 1000)) : 0
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

/** The recorder format to ask for: Opus in WebM or Ogg where the browser has them, else MP4. */
export function recorderMime(isSupported: (mime: string) => boolean): string | null {
  for (const m of ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4']) {
    if (isSupported(m)) return m
  }
  return null
}

/** A recording's file name, from its type. */
export function voiceFileName(mime: string, now = Date.now()): string {
  const ext = mime.includes('ogg') ? 'ogg' : mime.includes('mp4') ? 'm4a' : 'webm'
  return `voice-${now}.${ext}`
}

/** How the app shows a file of this (server-sniffed) type: its own player, the PDF viewer, or not. */
export function inlineKind(mime: string | undefined): 'audio' | 'video' | 'pdf' | null {
  if (!mime) return null
  if (mime === 'application/pdf') return 'pdf'
  if (['audio/mpeg', 'audio/ogg', 'audio/flac', 'audio/wav', 'audio/mp4'].includes(mime)) return 'audio'
  if (['video/mp4', 'video/webm', 'video/quicktime'].includes(mime)) return 'video'
  return null
}

/**
 * On a touch screen a hold records and a slide away cancels: whether a finger at (`dx`, `dy`)
 * from where it went down has slid far enough to cancel.
 */
export function slidAway(dx: number, dy: number, threshold = 80): boolean {
  return Math.hypot(dx, dy) > threshold
}

/** Voice messages already heard, by file id (kept on this device). */
const PLAYED_KEY = 'chinwag.voicePlayed'
const PLAYED_MAX = 500

export function playedSet(storage: Pick<Storage, 'getItem'> | null = globalThis.localStorage ?? null): Set<string> {
  try {
    const raw = storage?.getItem(PLAYED_KEY)
    const list: unknown = raw ? JSON.parse(raw) : []
    return new Set(Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [])
  } catch {
    return new Set()
  }
}

export function markPlayed(id: string, storage: Pick<Storage, 'getItem' | 'setItem'> | null = globalThis.localStorage ?? null) {
  const set = playedSet(storage)
  set.delete(id)
  set.add(id)
  try {
    storage?.setItem(PLAYED_KEY, JSON.stringify([...set].slice(-PLAYED_MAX)))
  } catch {
    // Storage full or unavailable: the dot just comes back next time.
  }
}

/** Of the voice messages in view (in order), the next one after `index` still unheard, not mine. */
export function nextUnplayed(items: { id: string; mine: boolean }[], index: number, played: Set<string>): number {
  for (let i = index + 1; i < items.length; i++) {
    const it = items[i]!
    if (!it.mine && !played.has(it.id)) return i
  }
  return -1
}
