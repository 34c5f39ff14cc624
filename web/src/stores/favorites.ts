// Favourites ("Saved"): my saved messages, paged from the server, searched there, and kept in
// step with my other devices by the `favorite` / `favorite_removed` frames (routed here by the
// socket store).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/protocol/api'
import type { ConvId, Favorite } from '@/protocol/types'
import { dropFavorite, upsertFavorite } from '@/lib/forward'

export const useFavorites = defineStore('favorites', () => {
  const list = ref<Favorite[]>([])
  const hasMore = ref(false)
  const loading = ref(false)
  const query = ref('')
  /** Bumped by each load, so an older answer arriving late is dropped. */
  let generation = 0

  async function load(q = query.value) {
    query.value = q
    const mine = ++generation
    loading.value = true
    try {
      const page = await api.favorites({ q: q.trim() || undefined })
      if (mine !== generation) return
      list.value = page.favorites
      hasMore.value = page.has_more
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  async function more() {
    const last = list.value[list.value.length - 1]
    if (!last || !hasMore.value) return
    const mine = generation
    const page = await api.favorites({ q: query.value.trim() || undefined, before: last.id })
    if (mine !== generation) return
    list.value = [...list.value, ...page.favorites]
    hasMore.value = page.has_more
  }

  async function save(conv: ConvId, seq: number): Promise<Favorite> {
    const f = await api.saveFavorite(conv, seq)
    applyFavorite(f)
    return f
  }

  async function remove(id: number) {
    await api.removeFavorite(id)
    applyRemoved(id)
  }

  /** A `favorite` frame (or my own save): shown unless a search is on. */
  function applyFavorite(f: Favorite) {
    if (!query.value.trim()) list.value = upsertFavorite(list.value, f)
  }

  function applyRemoved(id: number) {
    list.value = dropFavorite(list.value, id)
  }

  function reset() {
    generation++
    list.value = []
    hasMore.value = false
    query.value = ''
  }

  return { list, hasMore, loading, query, load, more, save, remove, applyFavorite, applyRemoved, reset }
})
