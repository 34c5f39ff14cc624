// Forwarding and favourites, the parts without Vue: picking messages in multi-select mode, the
// title and first lines a chat-history card shows, filtering forward targets, the request body's
// client id, and keeping the favourites list in order as frames and pages come in.
import type { ConvId, Favorite, HistoryItem } from '@/protocol/types'

/** Most messages one forward takes (the server's limit). */
export const MAX_FORWARD = 100
/** Most conversations one forward goes to (the server's limit). */
export const MAX_TARGETS = 20

/** The selection with `seq` toggled; a full selection takes no more. */
export function toggle(selected: readonly number[], seq: number, max = MAX_FORWARD): number[] {
  if (selected.includes(seq)) return selected.filter((s) => s !== seq)
  if (selected.length >= max) return [...selected]
  return [...selected, seq].sort((a, b) => a - b)
}

/** The distinct senders' names of a card, in order of first appearance. */
export function cardNames(items: readonly HistoryItem[]): string[] {
  const out: string[] = []
  for (const it of items) if (!out.includes(it.name)) out.push(it.name)
  return out
}

/**
 * What the card's title names: one name, two names, or the first two and how many more
 * ("Chat history of alice and bob").
 */
export function cardTitleParts(items: readonly HistoryItem[]): { names: string[]; more: number } {
  const names = cardNames(items)
  return { names: names.slice(0, 2), more: Math.max(0, names.length - 2) }
}

/** The first `n` lines a card shows: "name: preview". */
export function cardLines(items: readonly HistoryItem[], preview: (it: HistoryItem) => string, n = 3): string[] {
  return items.slice(0, n).map((it) => `${it.name}: ${preview(it)}`)
}

/** Conversations whose name contains `q` (case-insensitively; all of them for an empty query). */
export function filterTargets<T extends { id: ConvId; name: string }>(all: readonly T[], q: string): T[] {
  const needle = q.trim().toLowerCase()
  return needle ? all.filter((c) => c.name.toLowerCase().includes(needle)) : [...all]
}

/** A new client id for one forward: a resend of the same request reuses it. */
export function forwardClientId(random: () => number = Math.random): string {
  return `fw-${Date.now().toString(36)}-${Math.floor(random() * 2 ** 32).toString(36)}`
}

/** The list with `f` in its place (newest id first), replacing an older copy of it. */
export function upsertFavorite(list: readonly Favorite[], f: Favorite): Favorite[] {
  return [...list.filter((x) => x.id !== f.id), f].sort((a, b) => b.id - a.id)
}

/** The list without favourite `id`. */
export function dropFavorite(list: readonly Favorite[], id: number): Favorite[] {
  return list.filter((x) => x.id !== id)
}
