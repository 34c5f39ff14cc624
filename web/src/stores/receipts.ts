// "Read by N" in group chats: who has read my messages, by conversation and seq. Group reads are
// not pushed (one frame per member per message would flood big groups), so the chat view asks
// `GET .../messages/{seq}/reads` for my recent messages, and a message from someone tells that
// they have read everything before it.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/protocol/api'
import type { ConvId, Message, ReadList, UserId } from '@/protocol/types'

/**
 * Which of my recent messages to ask about: among the last 40 shown, mine that are not notices
 * and that someone may still not have read (never asked, or unread by someone), the newest 12.
 */
export function readsToAsk(shown: readonly Message[], me: UserId | undefined, known: Readonly<Record<number, ReadList>>): number[] {
  return shown
    .slice(-40)
    .filter((m) => m.sender === me && m.content.kind !== 'system' && m.content.kind !== 'recalled')
    .map((m) => m.seq)
    .filter((seq) => !known[seq] || known[seq]!.unread_by.length > 0)
    .slice(-12)
}

export const useReceipts = defineStore('receipts', () => {
  const reads = ref<Record<ConvId, Record<number, ReadList>>>({})

  /** A message from `user` at `seq` means they have read everything before it. */
  function noteMessage(conv: ConvId, user: UserId, seq: number) {
    const r = reads.value[conv]
    if (!r) return
    for (const [k, v] of Object.entries(r)) {
      if (Number(k) < seq && v.unread_by.includes(user)) {
        r[Number(k)] = { read_by: [...v.read_by, user], unread_by: v.unread_by.filter((u) => u !== user) }
      }
    }
  }

  /** Fetches who has read these messages of mine. */
  async function refresh(conv: ConvId, seqs: number[]) {
    await Promise.all(
      seqs.map(async (seq) => {
        try {
          const r = await api.reads(conv, seq)
          ;(reads.value[conv] ??= {})[seq] = r
        } catch {
          // Keep what was known.
        }
      }),
    )
  }

  function forget(conv: ConvId) {
    delete reads.value[conv]
  }

  function reset() {
    reads.value = {}
  }

  return { reads, noteMessage, refresh, forget, reset }
})
