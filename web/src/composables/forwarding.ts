// A chat's forwarding and saving state: multi-select mode (the picked seqs), the forward dialog
// (the seqs it forwards), the chat-history viewer, and the short notice after an action.
import { ref } from 'vue'
import { useI18n } from 'vue-i18n'
import type { Content, ConvId, HistoryItem } from '@/protocol/types'
import { toggle } from '@/lib/forward'
import { useFavorites } from '@/stores/favorites'

/** What may be forwarded or saved: what people wrote, not calls, notices or recalled messages. */
export function forwardable(c: Content): boolean {
  return ['text', 'emoji', 'image', 'file', 'sticker', 'history'].includes(c.kind)
}

export function useForwarding(conv: () => ConvId, run: (fn: () => Promise<void>) => Promise<void>) {
  const { t } = useI18n()
  const favorites = useFavorites()
  /** The seqs picked in multi-select mode, or null outside it. */
  const picking = ref<number[] | null>(null)
  /** The seqs the forward dialog is open for. */
  const forwarding = ref<number[] | null>(null)
  const viewing = ref<HistoryItem[] | null>(null)
  const notice = ref('')

  function pick(seq: number) {
    if (picking.value) picking.value = toggle(picking.value, seq)
  }
  function forwardPicked() {
    if (picking.value?.length) forwarding.value = [...picking.value]
  }
  function done(message: string) {
    forwarding.value = null
    picking.value = null
    notice.value = message
  }
  function save(seq: number) {
    void run(async () => {
      await favorites.save(conv(), seq)
      notice.value = t('forward.saved')
    })
  }
  function view(c: Content) {
    if (c.kind === 'history') viewing.value = c.items
  }
  return { picking, forwarding, viewing, notice, pick, forwardPicked, done, save, view }
}
