// What the socket client keeps in localStorage per user: the outbox, and the highest seq and rev
// seen per conversation (the `sync` cursors).
//
// Writes are read-modify-write so two tabs of the same user never erase each other's entries:
// the outbox merges by client_id, cursors and revs keep the larger value.

import type { KeyValueStorage, OutboxEntry } from './clientTypes'

export interface Persisted {
  outbox: OutboxEntry[]
  cursors: Record<string, number>
  revs: Record<string, number>
}

export class ClientStorage {
  constructor(
    private readonly storage: KeyValueStorage,
    /** Prefix of the keys, per user (`chinwag:u7`). */
    private readonly prefix: string,
  ) {}

  /** What an earlier page of this user left, with malformed entries skipped. */
  load(): Persisted {
    const out: Persisted = { outbox: [], cursors: {}, revs: {} }
    const entries = this.readJson<OutboxEntry[]>('outbox', [])
    if (Array.isArray(entries)) {
      for (const e of entries) if (e && typeof e.client_id === 'string') out.outbox.push(e)
    }
    const cursors = this.readJson<Record<string, number>>('cursors', {})
    if (cursors && typeof cursors === 'object') {
      for (const [k, v] of Object.entries(cursors)) if (typeof v === 'number') out.cursors[k] = v
    }
    const revs = this.readJson<Record<string, number>>('revs', {})
    if (revs && typeof revs === 'object') {
      for (const [k, v] of Object.entries(revs)) if (typeof v === 'number') out.revs[k] = v
    }
    return out
  }

  /** Puts or removes one outbox entry, keeping the other tabs' entries. */
  outbox(change: { put?: OutboxEntry; remove?: string }) {
    const stored = this.readJson<OutboxEntry[]>('outbox', [])
    const map = new Map((Array.isArray(stored) ? stored : []).map((e) => [e.client_id, e]))
    if (change.put) map.set(change.put.client_id, change.put)
    if (change.remove) map.delete(change.remove)
    if (map.size === 0) this.storage.removeItem(this.key('outbox'))
    else this.writeJson('outbox', [...map.values()])
  }

  mergeRevs(revs: Record<string, number>) {
    this.mergeMax('revs', revs)
  }

  mergeCursors(cursors: Record<string, number>) {
    this.mergeMax('cursors', cursors)
  }

  private mergeMax(name: string, mine: Record<string, number>) {
    const stored = this.readJson<Record<string, number>>(name, {})
    const merged: Record<string, number> = { ...stored }
    for (const [k, v] of Object.entries(mine)) merged[k] = Math.max(v, merged[k] ?? 0)
    this.writeJson(name, merged)
  }

  private key(name: string) {
    return `${this.prefix}:${name}`
  }

  private readJson<T>(name: string, fallback: T): T {
    try {
      const raw = this.storage.getItem(this.key(name))
      return raw ? (JSON.parse(raw) as T) : fallback
    } catch {
      return fallback
    }
  }

  private writeJson(name: string, value: unknown) {
    try {
      this.storage.setItem(this.key(name), JSON.stringify(value))
    } catch {
      // Quota or private mode: the in-memory outbox still works for this tab.
    }
  }
}
