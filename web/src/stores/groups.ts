// Group members and applications (`/api/groups/...`), loaded when a group chat or its info panel
// is open and refreshed when the socket store reports a change (a `group` frame, a system message).
// The GroupView itself lives in the chat store's conversation (`convs['g:<id>'].group`).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, type NewGroupInput } from '@/protocol/api'
import type { ApplicationView, GroupRole, GroupView, MemberView, UserId } from '@/protocol/types'
import { useChat } from './chat'
import { usePresence } from './presence'
import { useUsers } from './users'

const RANK: Record<GroupRole, number> = { owner: 3, admin: 2, member: 1 }

export function roleRank(r: GroupRole | null | undefined): number {
  return r ? RANK[r] : 0
}

export const useGroups = defineStore('groups', () => {
  const members = ref<Record<number, MemberView[]>>({})
  const applications = ref<Record<number, ApplicationView[]>>({})
  /** Groups whose members are wanted (a chat or panel of theirs is open). */
  const watched = new Map<number, number>()
  const timers = new Map<number, ReturnType<typeof setTimeout>>()

  function groupOf(id: number): GroupView | null {
    return useChat().convs[`g:${id}`]?.group ?? null
  }

  function myRole(id: number): GroupRole | null {
    return groupOf(id)?.my_role ?? null
  }

  function isManager(id: number): boolean {
    return roleRank(myRole(id)) >= RANK.admin
  }

  /** Whether I may act on `target` (an action on another member needs a higher role). */
  function outranks(id: number, target: MemberView): boolean {
    return roleRank(myRole(id)) > roleRank(target.role)
  }

  /** Whether a member is online: a `presence` frame knows better than the member list. */
  function isOnline(m: MemberView): boolean {
    const p = usePresence().presence[m.user.id]
    return p ? p.online : !!m.online
  }

  function pendingCount(id: number): number {
    return applications.value[id]?.length ?? 0
  }

  /** Takes a group view from an answer; `mark` (`chat.groupMark()` before the request) leaves
   * it out if a live `group` frame or notice change came since (the answer is older). */
  function setGroup(g: GroupView, mark?: number) {
    const chat = useChat()
    if (mark !== undefined && chat.groupNewerThan(`g:${g.id}`, mark)) return
    const c = chat.ensureConv(`g:${g.id}`)
    c.group = { ...g, my_role: g.my_role === undefined ? c.group?.my_role : g.my_role }
  }

  async function loadMembers(id: number) {
    try {
      const list = (await api.members(id)).members
      members.value[id] = list
      const users = useUsers()
      // The sender names and avatars of the group's messages.
      for (const m of list) users.put(m.user)
    } catch {
      // Not a member any more, or offline: keep what was shown.
    }
  }

  async function loadApplications(id: number) {
    if (!isManager(id)) {
      delete applications.value[id]
      return
    }
    try {
      applications.value[id] = (await api.applications(id)).applications
    } catch {
      // Keep the last list.
    }
  }

  async function refreshGroup(id: number) {
    try {
      const mark = useChat().groupMark()
      setGroup(await api.group(id), mark)
    } catch {
      // Gone or offline.
    }
  }

  /** Starts keeping a group's members fresh; returns the function that stops it. */
  function watch(id: number): () => void {
    watched.set(id, (watched.get(id) ?? 0) + 1)
    void loadMembers(id)
    void (async () => {
      // Right after a reload the conversation list (with my role) may not be there yet.
      if (!groupOf(id)?.my_role) await refreshGroup(id)
      await loadApplications(id)
    })()
    return () => {
      const n = (watched.get(id) ?? 1) - 1
      if (n <= 0) watched.delete(id)
      else watched.set(id, n)
    }
  }

  /** Something changed in group `id`: reload what is shown of it, once per burst of changes. */
  function invalidate(id: number) {
    if (!watched.has(id) || timers.has(id)) return
    timers.set(
      id,
      setTimeout(() => {
        timers.delete(id)
        void loadMembers(id)
        void loadApplications(id)
      }, 250),
    )
  }

  function reset() {
    members.value = {}
    applications.value = {}
    watched.clear()
    for (const t of timers.values()) clearTimeout(t)
    timers.clear()
  }

  // ---- actions (each refreshes what it changed) ----

  async function create(input: NewGroupInput): Promise<GroupView> {
    const g = await api.createGroup(input)
    setGroup(g)
    return g
  }

  async function edit(id: number, patch: { name?: string; notice?: string; join_mode?: 'open' | 'approval' }) {
    setGroup(await api.editGroup(id, patch))
  }

  async function setAvatar(id: number, fileId: string | null) {
    setGroup(await api.setGroupAvatar(id, fileId))
  }

  async function answer(id: number, user: UserId, how: 'approve' | 'refuse') {
    const g = await api.answerApplication(id, user, how)
    if (g && typeof g === 'object' && 'id' in g) setGroup(g)
    applications.value[id] = (applications.value[id] ?? []).filter((a) => a.user.id !== user)
    await Promise.all([loadMembers(id), loadApplications(id)])
  }

  async function add(id: number, users: UserId[]) {
    await api.addMembers(id, users)
    await Promise.all([loadMembers(id), refreshGroup(id)])
  }

  async function remove(id: number, user: UserId) {
    await api.removeMember(id, user)
    await Promise.all([loadMembers(id), refreshGroup(id)])
  }

  async function mute(id: number, user: UserId, minutes: number | null) {
    await api.muteMember(id, user, minutes)
    await loadMembers(id)
  }

  async function setAdmin(id: number, user: UserId, on: boolean) {
    await api.setAdmin(id, user, on)
    await loadMembers(id)
  }

  async function transfer(id: number, user: UserId) {
    await api.transferGroup(id, user)
    await Promise.all([loadMembers(id), refreshGroup(id)])
  }

  async function leave(id: number) {
    await api.leaveGroup(id)
    delete members.value[id]
    delete applications.value[id]
    useChat().forgetConv(`g:${id}`)
  }

  async function dissolve(id: number) {
    await api.dissolveGroup(id)
    const c = useChat().convs[`g:${id}`]
    if (c) c.gone = 'dissolved'
  }

  /** Joins an open group, or applies to an approval group; true when I am now a member. */
  async function join(id: number, message?: string): Promise<boolean> {
    const r = await api.joinGroup(id, message)
    if (r.joined) {
      if (r.group) setGroup(r.group)
      else await refreshGroup(id)
    }
    return r.joined
  }

  return {
    members,
    applications,
    groupOf,
    myRole,
    isManager,
    outranks,
    isOnline,
    pendingCount,
    loadMembers,
    loadApplications,
    refreshGroup,
    watch,
    invalidate,
    reset,
    create,
    edit,
    setAvatar,
    answer,
    add,
    remove,
    mute,
    setAdmin,
    transfer,
    leave,
    dissolve,
    join,
  }
})
