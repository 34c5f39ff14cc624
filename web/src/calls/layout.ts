// Where the tiles of a group call go: the grid's columns and tile size for any number of tiles
// in any stage, and who fills the large tile of the speaker view. Pure, so that every size of
// call can be checked without a browser (tests/sfuLayout.test.ts).
import type { UserId } from '@/protocol/types'

/** Tiles are never flatter than 16:9 nor narrower than 3:4, so a camera is never a thin strip. */
export const WIDEST = 16 / 9
export const NARROWEST = 3 / 4

export interface GridShape {
  cols: number
  rows: number
  /** Tile size in CSS px. */
  width: number
  height: number
}

/**
 * The grid for `n` tiles in a `width` × `height` stage with `gap` px between tiles: of every
 * column count, the one that gives the largest tiles, each tile the cell it gets clamped to an
 * aspect between 3:4 and 16:9 (centred in its cell; a short last row is centred too).
 */
export function gridShape(n: number, width: number, height: number, gap = 8): GridShape {
  let best: GridShape = { cols: 1, rows: Math.max(1, n), width: 0, height: 0 }
  if (n < 1 || width <= 0 || height <= 0) return best
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols)
    // A column count that leaves a whole row empty is never better than one column fewer.
    if (cols > 1 && Math.ceil(n / (cols - 1)) === rows) continue
    let w = (width - gap * (cols - 1)) / cols
    let h = (height - gap * (rows - 1)) / rows
    if (w <= 0 || h <= 0) continue
    if (w / h > WIDEST) w = h * WIDEST
    else if (w / h < NARROWEST) h = w / NARROWEST
    if (w * h > best.width * best.height) best = { cols, rows, width: Math.floor(w), height: Math.floor(h) }
  }
  return best
}

/**
 * Who the speaker view shows large: someone sharing a screen first (what they share is what
 * people look at), else the loudest speaker who is not me, else whoever was shown before if they
 * are still in the call (silence does not switch the view), else the first other participant.
 */
export function mainSpeaker(opts: { speakers: UserId[]; me: UserId | null; present: UserId[]; sharing: UserId[]; previous: UserId | null }): UserId | null {
  const here = new Set(opts.present)
  const sharer = opts.sharing.find((u) => here.has(u))
  if (sharer !== undefined) return sharer
  const loud = opts.speakers.find((u) => u !== opts.me && here.has(u))
  if (loud !== undefined) return loud
  if (opts.previous !== null && here.has(opts.previous)) return opts.previous
  return opts.present[0] ?? null
}
