// When live news of each group came, so that an older view cannot overwrite a newer one.
//
// A group's view comes live (a `group` frame, a `notice_changed` message) and in answers to
// requests (the list, `GET /api/groups/{id}`). An answer to a request made before live news of
// that group arrived may carry the older view: it must not put it back (a notice set right after
// a reload would vanish again until the next change). Take a `mark()` before the request; when
// the answer comes, `newerThan(conv, mark)` says whether live news came meanwhile.
import type { ConvId } from '@/protocol/types'

export class GroupNews {
  /** Counts live group news; `at` says when each chat's latest came. */
  private count = 0
  private readonly at = new Map<ConvId, number>()

  note(conv: ConvId) {
    this.at.set(conv, ++this.count)
  }

  /** A mark to take before a request whose answer carries a group view. */
  mark(): number {
    return this.count
  }

  /** Live news of `conv`'s group came after `mark` (the answer taken then is older). */
  newerThan(conv: ConvId, mark: number): boolean {
    return (this.at.get(conv) ?? 0) > mark
  }

  /** Forgets which chats had news (another user); the count goes on, so old marks stay valid. */
  forget() {
    this.at.clear()
  }
}
