// What a device in an SFU call asks the server for (`call_sfu_view`, docs/protocol.md "Group
// calls through the SFU"): each video it shows, at the simulcast layer that its tile's rendered
// size needs. Videos it does not show are left out, so the server pauses them.
import type { SfuLayer, SfuSource, SfuVideo, UserId } from '@/protocol/types'

/** Below this tile width (CSS px) the quarter-resolution layer is enough. */
export const LOW_BELOW = 320
/** Below this width the half-resolution layer is; at or above it, the full one. */
export const MEDIUM_BELOW = 720

const RANK: Record<SfuLayer, number> = { low: 0, medium: 1, high: 2 }

/**
 * The layer for a tile `width` CSS px wide. A shared screen is always asked for at `high`: its
 * text must stay readable even in a small tile (the server sends screens as one layer anyway).
 */
export function layerFor(width: number, source: SfuSource): SfuLayer {
  if (source === 'screen') return 'high'
  if (width < LOW_BELOW) return 'low'
  if (width < MEDIUM_BELOW) return 'medium'
  return 'high'
}

/** One video tile on screen: whose, what, and how wide it is drawn. */
export interface ShownVideo {
  user: UserId
  source: SfuSource
  width: number
}

/**
 * The `videos` of a `call_sfu_view` for the tiles shown: one entry per user and source (the
 * largest tile wins when one video is drawn twice), audio never (it always flows), in a stable
 * order so that equal views compare equal.
 */
export function viewOf(shown: ShownVideo[]): SfuVideo[] {
  const best = new Map<string, SfuVideo>()
  for (const s of shown) {
    if (s.source === 'audio' || !(s.width > 0)) continue
    const v: SfuVideo = { user: s.user, source: s.source, layer: layerFor(s.width, s.source) }
    const key = `${s.user}:${s.source}`
    const had = best.get(key)
    if (!had || RANK[v.layer] > RANK[had.layer]) best.set(key, v)
  }
  return [...best.values()].sort((a, b) => a.user - b.user || a.source.localeCompare(b.source))
}

/** Whether two views (from `viewOf`) ask for the same thing. */
export function sameView(a: SfuVideo[], b: SfuVideo[]): boolean {
  return a.length === b.length && a.every((v, i) => v.user === b[i].user && v.source === b[i].source && v.layer === b[i].layer)
}
