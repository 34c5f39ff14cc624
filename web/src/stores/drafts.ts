// Unsent text per chat, kept while the user moves between chats and shown in the list like
// WeChat's "[Draft]"; saved to localStorage per user, a moment after the last keystroke.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { loadJson, saveJson, userKey } from '@/lib/persist'
import type { ConvId, UserId } from '@/protocol/types'

export const useDrafts = defineStore('drafts', () => {
  const drafts = ref<Record<ConvId, string>>({})
  let userId: UserId | null = null
  let timer: ReturnType<typeof setTimeout> | null = null

  function load(user: UserId) {
    reset()
    userId = user
    drafts.value = loadJson<Record<ConvId, string>>(`${userKey(user)}:drafts`, {}) ?? {}
  }

  function set(conv: ConvId, text: string) {
    if (text.trim()) drafts.value[conv] = text
    else delete drafts.value[conv]
    if (timer !== null) clearTimeout(timer)
    const forUser = userId
    if (forUser === null) return
    timer = setTimeout(() => {
      timer = null
      saveJson(`${userKey(forUser)}:drafts`, drafts.value)
    }, 400)
  }

  function reset() {
    userId = null
    drafts.value = {}
  }

  return { drafts, load, set, reset }
})
