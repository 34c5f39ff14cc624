// The people this device knows (from the chat list, group members, profiles), by id. Unknown
// people are fetched once in the background; until then they are shown as "#id".
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/protocol/api'
import type { User, UserId } from '@/protocol/types'

export const useUsers = defineStore('users', () => {
  const byId = ref<Record<UserId, User>>({})
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
    if (u) return u.nickname || u.username
    if (!pending.has(id)) void fetch(id)
    return `#${id}`
  }

  function avatar(id: UserId): string | null {
    return byId.value[id]?.avatar ?? null
  }

  function reset() {
    byId.value = {}
  }

  return { byId, put, fetch, name, avatar, reset }
})
