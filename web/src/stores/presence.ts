// Who is online and who is typing, from the socket's `presence` and `typing` frames (routed here
// by the socket store). Nothing is persisted: a reconnect's frames bring it back.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { ConvId, UserId } from '@/protocol/types'

/** How long a `typing` frame shows "typing…" (the sender repeats it while typing). */
const TYPING_MS = 6000

export interface PresenceState {
  online: boolean
  last_seen: number | null
}

export const usePresence = defineStore('presence', () => {
  /** Online state and last seen time of people. */
  const presence = ref<Record<UserId, PresenceState>>({})
  /** Until when (ms) someone was seen typing, per chat, and who. */
  const typingUntil = ref<Record<ConvId, number>>({})
  const typingWho = ref<Record<ConvId, UserId>>({})

  /** Someone is typing in `conv` (entries are deleted when they expire, which re-renders). */
  function isTyping(conv: ConvId): boolean {
    return typingUntil.value[conv] !== undefined
  }

  function applyTyping(conv: ConvId, user: UserId) {
    typingUntil.value[conv] = Date.now() + TYPING_MS
    typingWho.value[conv] = user
    // Re-render once it expires.
    setTimeout(() => {
      if ((typingUntil.value[conv] ?? 0) <= Date.now()) delete typingUntil.value[conv]
    }, TYPING_MS + 100)
  }

  /** A message from `user` ends their typing in `conv`. */
  function messageFrom(conv: ConvId, user: UserId) {
    if (typingWho.value[conv] === user) delete typingUntil.value[conv]
  }

  function applyPresence(user: UserId, online: boolean, lastSeen: number | null) {
    presence.value[user] = { online, last_seen: lastSeen }
  }

  function reset() {
    presence.value = {}
    typingUntil.value = {}
    typingWho.value = {}
  }

  return { presence, typingUntil, typingWho, isTyping, applyTyping, messageFrom, applyPresence, reset }
})
