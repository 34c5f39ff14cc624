// The chat list and the newest messages of the busiest chats, kept in localStorage per user so
// the app paints at once on start-up and still shows them when opened offline. Values read back
// are checked: storage is shared with older versions and other tabs.
import { loadJson, saveJson, userKey } from './persist'
import { isMessage, type ConversationSummary, type ConvId, type Message, type UserId } from '@/protocol/types'

/** How many chats, and how many of each one's newest messages, are kept. */
export const CACHE_CONVS = 30
export const CACHE_MESSAGES = 40

export function saveList(userId: UserId, list: ConversationSummary[]) {
  saveJson(`${userKey(userId)}:convs`, list)
}

/** The cached list, without entries that are not conversations. */
export function loadList(userId: UserId): ConversationSummary[] {
  const list = loadJson<ConversationSummary[]>(`${userKey(userId)}:convs`, [])
  if (!Array.isArray(list)) return []
  return list.filter((s) => !!s && typeof s.id === 'string')
}

export function saveMessages(userId: UserId, byConv: Record<ConvId, Message[]>) {
  saveJson(`${userKey(userId)}:messages`, byConv)
}

/** The cached messages of every chat, without entries that are not messages. */
export function loadMessages(userId: UserId): Message[] {
  const cached = loadJson<Record<ConvId, Message[]>>(`${userKey(userId)}:messages`, {})
  if (!cached || typeof cached !== 'object') return []
  const out: Message[] = []
  for (const list of Object.values(cached)) if (Array.isArray(list)) for (const m of list) if (isMessage(m)) out.push(m)
  return out
}

/** Forgets the cached chats and drafts on an explicit log-out (a shared computer). */
export function clear(userId: UserId) {
  try {
    localStorage.removeItem(`${userKey(userId)}:messages`)
    localStorage.removeItem(`${userKey(userId)}:convs`)
    localStorage.removeItem(`${userKey(userId)}:drafts`)
  } catch {
    // Storage unavailable: nothing was cached either.
  }
}

/** The newest messages of the first chats of `convs` (the list's order), as `saveMessages` keeps them. */
export function saveNewest(userId: UserId, convs: { id: ConvId }[], visible: (conv: ConvId) => Message[]) {
  const out: Record<ConvId, Message[]> = {}
  for (const c of convs.slice(0, CACHE_CONVS)) {
    const vis = visible(c.id)
    if (vis.length) out[c.id] = vis.slice(-CACHE_MESSAGES)
  }
  saveMessages(userId, out)
}

/** Runs `save` a second after the first change of a burst (one write per burst), or at once. */
export class DelayedSave {
  private timer: ReturnType<typeof setTimeout> | null = null
  constructor(
    private readonly save: () => void,
    private readonly delayMs = 1000,
  ) {}

  schedule() {
    if (this.timer === null) this.timer = setTimeout(() => this.now(), this.delayMs)
  }

  now() {
    this.cancel()
    this.save()
  }

  cancel() {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }
}
