// Small typed wrappers over localStorage that survive private mode and corrupt values.

export function loadJson<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(key)
    return raw === null ? fallback : (JSON.parse(raw) as T)
  } catch {
    return fallback
  }
}

export function saveJson(key: string, value: unknown) {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Quota exceeded or storage disabled: the in-memory state still works for this tab.
  }
}

/** The prefix of every per-user key, so two accounts in one browser keep apart. */
export function userKey(userId: number) {
  return `chinwag:u${userId}`
}
