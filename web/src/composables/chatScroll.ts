// Where a chat's message list is scrolled: it opens at the first unread message (or the bottom),
// stays at the bottom while the reader is there (new bubbles, images that load, "read by" lines),
// offers "new messages" when they are not, loads older pages when the reader nears the top
// without moving what they are looking at, and can bring a given message into view.
import { nextTick, onMounted, onUnmounted, ref, useTemplateRef, watch, type Ref } from 'vue'
import { useChat } from '@/stores/chat'

/** How close to an edge (px) counts as being there. */
const NEAR_BOTTOM = 80
const NEAR_TOP = 150

/**
 * `bottomKey` changes when a bubble appears at the bottom and ends in `:true` when it is mine
 * (lib/timeline.ts, `bottomKey`). The component's template marks the scrolling element with
 * `ref="scroller"` and the list inside it with `ref="itemsEl"`.
 */
export function useChatScroll(conv: string, bottomKey: Ref<string>) {
  const chat = useChat()
  const scroller = useTemplateRef<HTMLElement>('scroller')
  const itemsEl = useTemplateRef<HTMLElement>('itemsEl')
  const atBottom = ref(true)
  const newBelow = ref(false)
  /** The first position was taken (after the newest page was loaded). */
  const ready = ref(false)

  function scrollToBottom(smooth = false) {
    const el = scroller.value
    if (!el) return
    el.scrollTo({ top: el.scrollHeight, behavior: smooth ? 'smooth' : 'auto' })
    newBelow.value = false
  }

  function nearBottom(el: HTMLElement) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM
  }

  let loadingOlder = false
  async function maybeLoadOlder() {
    const el = scroller.value
    if (!el || loadingOlder || !chat.hasOlder(conv) || el.scrollTop > NEAR_TOP) return
    loadingOlder = true
    const before = el.scrollHeight - el.scrollTop
    try {
      const added = await chat.loadOlder(conv)
      if (added > 0) {
        await nextTick()
        // Keep the message under the reader's eyes where it was.
        el.scrollTop = el.scrollHeight - before
      }
    } finally {
      loadingOlder = false
    }
    // A short history may not fill the screen: keep loading until it does or the start is reached.
    if (el.scrollHeight <= el.clientHeight + NEAR_TOP && chat.hasOlder(conv)) void maybeLoadOlder()
  }

  function onScroll() {
    const el = scroller.value
    if (!el) return
    atBottom.value = nearBottom(el)
    if (atBottom.value) newBelow.value = false
    void maybeLoadOlder()
  }

  watch(bottomKey, async (k, old) => {
    if (!k || k === old) return
    const mine = k.endsWith(':true')
    const stick = atBottom.value || mine || !ready.value
    await nextTick()
    if (stick) scrollToBottom(ready.value)
    else newBelow.value = true
  })

  // If the shown run starts later than before (a hole opened above it) and does not fill the
  // screen, fetch older messages without waiting for a scroll that cannot happen.
  watch(
    () => chat.visibleMessages(conv)[0]?.seq,
    async () => {
      if (!ready.value) return
      await nextTick()
      void maybeLoadOlder()
    },
  )

  /** Takes the first position once the chat is loaded and rendered. */
  function settle() {
    // Open at the first unread message when there is more than a screenful; else at the bottom.
    const divider = scroller.value?.querySelector<HTMLElement>('[data-unread-divider]')
    if (divider && scroller.value && divider.offsetTop > scroller.value.clientHeight) {
      scroller.value.scrollTop = divider.offsetTop - 12
      atBottom.value = nearBottom(scroller.value)
    } else scrollToBottom()
    ready.value = true
    void maybeLoadOlder()
  }

  /** Scrolls message `seq` into view, if shown, and makes it flash. */
  function jumpTo(seq: number) {
    const el = scroller.value?.querySelector<HTMLElement>(`[data-seq="${seq}"]`)
    if (!el) return
    el.scrollIntoView({ block: 'center', behavior: 'smooth' })
    el.classList.add('flash')
    setTimeout(() => el.classList.remove('flash'), 1200)
  }

  /** Loads older pages until message `seq` is shown (a search hit), then scrolls to it. */
  async function revealSeq(seq: number) {
    for (let i = 0; i < 40; i++) {
      const first = chat.visibleMessages(conv)[0]?.seq
      if (first === undefined || first <= seq || !chat.hasOlder(conv)) break
      if ((await chat.loadOlder(conv)) === 0) {
        if (chat.historyOf(conv).error) break
        // Another page load is under way (the scroll handler's): wait for it.
        await new Promise((r) => setTimeout(r, 150))
      }
    }
    await nextTick()
    jumpTo(seq)
  }

  // Images, "read by" lines and late layout grow the list after it was scrolled: a reader at the
  // bottom stays at the bottom.
  let resizeObs: ResizeObserver | null = null
  onMounted(() => {
    if (typeof ResizeObserver === 'undefined' || !itemsEl.value) return
    resizeObs = new ResizeObserver(() => {
      const el = scroller.value
      if (atBottom.value && el && el.scrollHeight - el.scrollTop - el.clientHeight > 1) scrollToBottom()
    })
    resizeObs.observe(itemsEl.value)
  })
  onUnmounted(() => resizeObs?.disconnect())

  return { atBottom, newBelow, ready, scrollToBottom, onScroll, settle, jumpTo, revealSeq }
}
