// Who is online and who is typing, from the socket's `presence` and `typing` frames (routed here
// by the socket store), and for a chat partner from `GET /api/users/{id}/presence` when the chat
// is first shown (frames only tell changes). Nothing is persisted.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/protocol/api'
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
  /** Users whose presence was asked for, and frames seen per user (a frame beats an older answer). */
  const asked = new Set<UserId>()
  const frames = new Map<UserId, number>()

  /** Someone is typing in `conv` (entries are deleted when they expire, which re-renders). */
  function isTyping(conv: ConvId): boolean {
    return typingUntil.value[conv] !== undefined
  }

  /**
   * A `typing` frame. One that arrives after the same person's message is new typing, never the
   * tail of that message: the server reads a connection's frames in order and passes typing on at
   * once, while a message goes out only once stored, so typing sent before a message always
   * arrives before it. (The sender repeats it every 2 s at most: dropping one hides the typing.)
   */
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
    frames.set(user, (frames.get(user) ?? 0) + 1)
    presence.value[user] = { online, last_seen: lastSeen }
  }

  /** Asks the server once per page load for `user`'s presence, unless a frame told it already. */
  async function ensure(user: UserId) {
    if (asked.has(user) || presence.value[user]) return
    asked.add(user)
    const seen = frames.get(user) ?? 0
    try {
      const p = await api.presence(user)
      if ((frames.get(user) ?? 0) === seen) presence.value[user] = { online: p.online, last_seen: p.last_seen ?? null }
    } catch {
      // Hidden or not related (403): the header shows the username instead.
    }
  }

  function reset() {
    presence.value = {}
    typingUntil.value = {}
    typingWho.value = {}
    asked.clear()
    frames.clear()
  }

  return { presence, typingUntil, typingWho, isTyping, applyTyping, messageFrom, applyPresence, ensure, reset }
})
