// The chat list's search: once typing pauses on two characters or more, the server is asked for
// messages and people matching the filter text; clearing the filter drops the results at once.
import { ref, watch, type Ref } from 'vue'
import { watchDebounced } from '@vueuse/core'
import { api } from '@/protocol/api'
import type { Message, User } from '@/protocol/types'
import { useSession } from '@/stores/session'

export interface ListSearchFound {
  q: string
  messages: Message[]
  users: User[]
}

export function useListSearch(query: Ref<string>) {
  const session = useSession()
  /** Server-side search results for the filter text: messages and people. */
  const found = ref<ListSearchFound | null>(null)
  const searching = ref(false)

  // Clearing the filter drops the results at once: only a search waits for a pause in typing (the
  // results shown above the chats would otherwise linger, and the rows jump when they go).
  watch(query, (q) => {
    if (q.trim().length < 2) found.value = null
  })

  watchDebounced(
    query,
    async (q) => {
      const text = q.trim()
      if (text.length < 2) {
        found.value = null
        return
      }
      searching.value = true
      try {
        const r = await api.search(text)
        if (query.value.trim() === text) found.value = { q: text, messages: r.messages, users: r.users.filter((u) => u.id !== session.me?.id) }
      } catch {
        // Older servers have no search: the local filter still works.
        found.value = null
      } finally {
        searching.value = false
      }
    },
    { debounce: 300 },
  )
  return { found, searching }
}
