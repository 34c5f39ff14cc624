// How far the user has looked at each chat in this browser (localStorage, per user), shared by
// the tabs: the highest viewed seq wins, so no tab moves another's position back.
import type { ConvId } from '@/protocol/types'
import { loadJson, saveJson, userKey } from './persist'

const key = (userId: number) => `${userKey(userId)}:viewed`

/** What this browser stored for the user; null when nothing (a new browser). */
export function loadViewed(userId: number): Record<ConvId, number> | null {
  return loadJson<Record<ConvId, number> | null>(key(userId), null)
}

/** Raises `viewed` to what other tabs stored, where theirs is higher. */
export function raiseToStored(userId: number, viewed: Record<ConvId, number>) {
  const stored = loadJson<Record<ConvId, number>>(key(userId), {})
  for (const [k, v] of Object.entries(stored)) if (v > (viewed[k] ?? 0)) viewed[k] = v
}

/** Stores `viewed`, merged with other tabs' progress first. */
export function saveViewed(userId: number, viewed: Record<ConvId, number>) {
  raiseToStored(userId, viewed)
  saveJson(key(userId), viewed)
}
