// Which pages of each chat's history this session has fetched from
// `GET /api/conversations/{id}/messages`, and the fetching itself. The messages go to the sink the
// chat store passes (its `merge`), so they enter the message log by its rules like any other.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, ApiError } from '@/protocol/api'
import type { Gap } from '@/lib/messageLog'
import type { ConvId, Message } from '@/protocol/types'

export interface HistoryState {
  loading: boolean
  /** The newest page was fetched this session. */
  fresh: boolean
  /** Nothing older than the first shown message exists. */
  complete: boolean
  error: string | null
  notFound: boolean
}

const PAGE = 50
const NO_HISTORY: HistoryState = Object.freeze({ loading: false, fresh: false, complete: false, error: null, notFound: false })

export const useHistory = defineStore('history', () => {
  const history = ref<Record<ConvId, HistoryState>>({})
  const gapFetches = new Set<string>()

  /** Read-only view for templates (does not create state while rendering). */
  function of(conv: ConvId): HistoryState {
    return history.value[conv] ?? NO_HISTORY
  }

  function ensure(conv: ConvId): HistoryState {
    return (history.value[conv] ??= { ...NO_HISTORY })
  }

  /**
   * Fetches the newest page unless it was fetched this session. `direct` chats that the server
   * does not know yet (nothing was ever sent) are empty, not missing.
   */
  async function loadNewest(conv: ConvId, direct: boolean, sink: (list: Message[]) => void) {
    const h = ensure(conv)
    if (h.fresh || h.loading) return
    h.loading = true
    h.error = null
    try {
      const page = await api.history(conv, { limit: PAGE })
      sink(page.messages)
      h.fresh = true
      h.notFound = false
      if (!page.has_more) {
        const first = page.messages[0]?.seq ?? 1
        // The newest page holds everything from seq 1 (or the conversation is empty).
        if (first <= 1) h.complete = true
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        if (direct) {
          h.fresh = true
          h.complete = true
        } else h.notFound = true
      } else h.error = e instanceof ApiError ? e.code : 'network'
    } finally {
      h.loading = false
    }
  }

  /** Fetches the page before `before`; returns how many messages `sink` took as new. */
  async function loadBefore(conv: ConvId, before: number, sink: (m: Message) => boolean): Promise<number> {
    const h = ensure(conv)
    h.loading = true
    try {
      const page = await api.history(conv, { before, limit: PAGE })
      const count = page.messages.filter((m) => sink(m)).length
      if (!page.has_more || page.messages.length === 0) h.complete = true
      return count
    } catch (e) {
      h.error = e instanceof ApiError ? e.code : 'network'
      return 0
    } finally {
      h.loading = false
    }
  }

  /** Fetches a hole in a chat whose history is loaded (a sync capped at 100 messages, say). */
  function fillGap(gap: Gap, sink: (list: Message[]) => void) {
    if (!history.value[gap.conv]?.fresh) return
    const key = `${gap.conv}:${gap.after}:${gap.before}`
    if (gapFetches.has(key)) return
    gapFetches.add(key)
    void api
      .history(gap.conv, { after: gap.after, before: gap.before, limit: 100 })
      .then((page) => sink(page.messages))
      .catch(() => {
        // The chat shows the newest run; scrolling up fetches the rest.
      })
      .finally(() => gapFetches.delete(key))
  }

  function forget(conv: ConvId) {
    delete history.value[conv]
  }

  function reset() {
    history.value = {}
  }

  return { history, of, loadNewest, loadBefore, fillGap, forget, reset }
})
