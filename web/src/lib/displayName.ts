// The one rule for the name the app shows for a person: my private remark for them if I gave
// one, else their nickname, else their username. Every place that shows a person goes through
// `displayName` (via the users store's `name` / `display`), so no place shows the raw name
// where a remark exists.

export interface Named {
  username: string
  nickname?: string | null
}

/** The name to show for `u`, given my remark for them (if any). */
export function displayName(u: Named, remark?: string | null): string {
  const r = remark?.trim()
  return r || u.nickname?.trim() || u.username
}

/** Whether a search for `needle` finds `u`: by remark, nickname or username, ignoring case. */
export function nameMatches(u: Named, remark: string | null | undefined, needle: string): boolean {
  const n = needle.trim().toLowerCase()
  if (!n) return true
  return [remark, u.nickname, u.username].some((s) => !!s && s.toLowerCase().includes(n))
}
