// The people this device knows (from the chat list, group members, profiles), by id. Unknown
// people are fetched once in the background; until then they are shown as "#id".
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/protocol/api'
import type { User, UserId } from '@/protocol/types'
import { displayName, nameMatches, type Named } from '@/lib/displayName'

export const useUsers = defineStore('users', () => {
  const byId = ref<Record<UserId, User>>({})
  /** My private names for people (contact remarks), kept by the contacts store. */
  const remarks = ref<Record<UserId, string>>({})
  const pending = new Set<UserId>()

  /** Adds what `u` says about a person to what is known. */
  function put(u: User) {
    byId.value[u.id] = { ...byId.value[u.id], ...u }
  }

  /** Fetches a person unless a fetch is under way. */
  async function fetch(id: UserId) {
    if (pending.has(id)) return
    pending.add(id)
    try {
      byId.value[id] = await api.user(id)
    } catch {
      // Shown as "#id" until the next list refresh.
    } finally {
      pending.delete(id)
    }
  }

  /** The name to show for a user, fetching unknown ones in the background. */
  function name(id: UserId): string {
    const u = byId.value[id]
    if (u) return displayName(u, remarks.value[id])
    if (remarks.value[id]) return remarks.value[id]
    if (!pending.has(id)) void fetch(id)
    return `#${id}`
  }

  /** The name to show for a user whose record is at hand (my remark for them first). */
  function display(u: Named & { id: UserId }): string {
    return displayName(u, remarks.value[u.id])
  }

  /** Whether a search for `needle` finds `u` (by my remark too). */
  function matches(u: Named & { id: UserId }, needle: string): boolean {
    return nameMatches(u, remarks.value[u.id], needle)
  }

  function setRemark(id: UserId, remark: string | null | undefined) {
    if (remark) remarks.value[id] = remark
    else delete remarks.value[id]
  }

  function avatar(id: UserId): string | null {
    return byId.value[id]?.avatar ?? null
  }

  function reset() {
    byId.value = {}
    remarks.value = {}
  }

  return { byId, remarks, put, fetch, name, display, matches, setRemark, avatar, reset }
})
