// Messages I deleted for myself ("delete for me"). The server leaves them out of history pages
// and names their seqs in the page's `hidden` list; here they become placeholders marked
// `hidden`, so a log keeps no hole (lib/messageLog.ts shows only a contiguous run and fetches
// holes) and the chat never shows them.
import type { ConvId, HistoryPage, Message } from '@/protocol/types'

/** A placeholder for hidden message `seq` of `conv`, taking its time from a neighbour. */
export function placeholder(conv: ConvId, seq: number, ts: number): Message {
  return { conv, seq, sender: 0, client_id: '', ts, content: { kind: 'recalled' }, hidden: true }
}

/** The page with a placeholder for every hidden seq, in seq order. */
export function withHiddenPlaceholders(conv: ConvId, page: HistoryPage): HistoryPage {
  if (!page.hidden?.length) return page
  const known = new Set(page.messages.map((m) => m.seq))
  const out = [...page.messages]
  for (const seq of page.hidden) {
    if (known.has(seq)) continue
    const near = page.messages.find((m) => m.seq > seq) ?? page.messages[page.messages.length - 1]
    out.push(placeholder(conv, seq, near?.ts ?? 0))
  }
  out.sort((a, b) => a.seq - b.seq)
  return { ...page, messages: out }
}

/** The message as a hidden placeholder (a `hidden` frame for a message in the log). */
export function hide(m: Message): Message {
  return { ...placeholder(m.conv, m.seq, m.ts), sender: m.sender }
}

/** What a chat shows of a run of messages: everything not hidden. */
export function shown(list: readonly Message[]): Message[] {
  return list.some((m) => m.hidden) ? list.filter((m) => !m.hidden) : (list as Message[])
}
