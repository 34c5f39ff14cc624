// A chat's message actions: the action menu of one message (react, reply, edit, copy, recall,
// delete for me, forward; what it offers comes from lib/timeline.ts's `menuRights`), the
// composer's reply or edit mode, and sending what the composer hands over in that mode. A refused
// action shows its reason as `actionError`.
import { ref, type Ref } from 'vue'
import { useI18n } from 'vue-i18n'
import type { ComposerMode, SendExtras } from '@/components/Composer.vue'
import { confirmAction } from '@/lib/confirm'
import { previewOf } from '@/lib/content'
import { errorText } from '@/lib/errors'
import { menuRights, type TimelineItem } from '@/lib/timeline'
import type { GroupView } from '@/protocol/types'
import { useChat } from '@/stores/chat'
import { roleRank } from '@/stores/groups'
import { useSession } from '@/stores/session'
import { forwardable } from './forwarding'

export interface MessageActionsEnv {
  conv: () => string
  isGroup: Readonly<Ref<boolean>>
  gone: Readonly<Ref<string | null>>
  group: Readonly<Ref<GroupView | null>>
  nameOf: (id: number) => string
}

export function useMessageActions(env: MessageActionsEnv) {
  const { t } = useI18n()
  const chat = useChat()
  const session = useSession()
  const { isGroup, gone, group, nameOf } = env

  /** The message whose action menu is open. */
  const menu = ref<{
    x: number
    y: number
    seq: number
    sender: number
    text: string | null
    preview: string
    canRecall: boolean
    canEdit: boolean
    canForward: boolean
    reacted: string[]
  } | null>(null)

  /** Replying to or editing a message, shown above the composer. */
  const composerMode = ref<ComposerMode>(null)
  const replyTarget = ref<{ seq: number; sender: number; preview: string } | null>(null)
  const editSeq = ref<number | null>(null)

  function cancelMode() {
    composerMode.value = null
    replyTarget.value = null
    editSeq.value = null
  }
  const actionError = ref('')

  function openMenu(it: TimelineItem, pos: { x: number; y: number }) {
    if (it.type !== 'msg' || it.seq === null) return
    const sender = it.mine ? (session.me?.id ?? -1) : (chat.messages[env.conv()]?.find((x) => x.seq === it.seq)?.sender ?? -1)
    menu.value = {
      ...pos,
      seq: it.seq,
      sender,
      preview: previewOf(it.content, t),
      ...menuRights(it, Date.now(), isGroup.value && !gone.value && roleRank(group.value?.my_role) >= 2),
      reacted: it.reactions.filter((r) => r.mine).map((r) => r.emoji),
      canForward: forwardable(it.content),
    }
  }

  async function runAction(fn: () => Promise<void>) {
    actionError.value = ''
    try {
      await fn()
    } catch (e) {
      actionError.value = errorText(t, e)
    }
  }

  function onReact(emoji: string) {
    const m = menu.value
    menu.value = null
    if (m) void runAction(() => chat.toggleReaction(env.conv(), m.seq, emoji))
  }

  function onReply() {
    const m = menu.value
    menu.value = null
    if (!m) return
    editSeq.value = null
    replyTarget.value = { seq: m.seq, sender: m.sender, preview: m.preview.slice(0, 80) }
    composerMode.value = { kind: 'reply', name: nameOf(m.sender), preview: m.preview }
  }

  function onEdit() {
    const m = menu.value
    menu.value = null
    if (!m || m.text === null) return
    replyTarget.value = null
    editSeq.value = m.seq
    composerMode.value = { kind: 'edit', text: m.text }
  }

  function onCopy() {
    const text = menu.value?.text
    menu.value = null
    if (text) void navigator.clipboard?.writeText(text).catch(() => {})
  }

  function onRecall() {
    const m = menu.value
    menu.value = null
    if (m) void runAction(() => chat.recallMessage(env.conv(), m.seq))
  }

  async function onHide() {
    const m = menu.value
    menu.value = null
    if (!m) return
    const ok = await confirmAction({ title: t('chat.deleteForMe'), message: t('chat.deleteForMeHint'), ok: t('chat.deleteForMe'), danger: true })
    if (ok) void runAction(() => chat.hideMessage(env.conv(), m.seq))
  }

  function onSend(text: string, extras?: SendExtras) {
    if (editSeq.value !== null) {
      const seq = editSeq.value
      const edited = text.trim()
      cancelMode()
      if (edited) void runAction(() => chat.editMessage(env.conv(), seq, edited))
      return
    }
    chat.sendText(env.conv(), text, {
      replyTo: replyTarget.value ?? undefined,
      mentions: isGroup.value ? extras?.mentions : undefined,
      mentionAll: isGroup.value ? extras?.mentionAll : undefined,
    })
    cancelMode()
  }

  return { menu, composerMode, replyTarget, cancelMode, actionError, runAction, openMenu, onReact, onReply, onEdit, onCopy, onRecall, onHide, onSend }
}
