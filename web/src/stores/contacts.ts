// Contacts and contact requests (`/api/contacts`), kept current by `contact` and
// `contact_request` frames, which the socket store forwards here.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '@/protocol/api'
import type { ContactView, RequestView, UserId } from '@/protocol/types'
import { useUsers } from './users'

export const useContacts = defineStore('contacts', () => {
  const contacts = ref<Record<UserId, ContactView>>({})
  const incoming = ref<RequestView[]>([])
  const outgoing = ref<RequestView[]>([])
  const loaded = ref(false)
  const error = ref<unknown>(null)
  let myId: UserId | null = null

  const users = useUsers()
  const friends = computed(() =>
    Object.values(contacts.value)
      .filter((c) => c.state === 'normal')
      .sort((a, b) => users.display(a.user).localeCompare(users.display(b.user))),
  )
  const blocked = computed(() => Object.values(contacts.value).filter((c) => c.state === 'blocked'))
  const pendingIncoming = computed(() => incoming.value.filter((r) => r.status === 'pending'))
  const pendingOutgoing = computed(() => outgoing.value.filter((r) => r.status === 'pending'))

  function isContact(id: UserId) {
    return contacts.value[id]?.state === 'normal'
  }

  function stateOf(id: UserId) {
    return contacts.value[id]?.state ?? null
  }

  function hasPendingRequestTo(id: UserId) {
    return pendingOutgoing.value.some((r) => r.to.id === id)
  }

  async function load(me: UserId) {
    myId = me
    try {
      const [c, r] = await Promise.all([api.contacts(), api.contactRequests()])
      contacts.value = Object.fromEntries(c.contacts.map((x) => [x.user.id, x]))
      for (const x of c.contacts) users.setRemark(x.user.id, x.remark)
      incoming.value = r.incoming
      outgoing.value = r.outgoing
      error.value = null
    } catch (e) {
      // Older servers have no contacts: the app works without them.
      error.value = e
    } finally {
      loaded.value = true
    }
  }

  function reset() {
    contacts.value = {}
    incoming.value = []
    outgoing.value = []
    loaded.value = false
    error.value = null
    myId = null
  }

  /** A `contact` frame or an API answer. */
  function applyContact(c: ContactView) {
    contacts.value[c.user.id] = c
    users.setRemark(c.user.id, c.remark)
    // Becoming contacts settles any request between us.
    if (c.state === 'normal') {
      for (const list of [incoming, outgoing]) {
        list.value = list.value.map((r) =>
          r.status === 'pending' && (r.from.id === c.user.id || r.to.id === c.user.id) ? { ...r, status: 'accepted' } : r,
        )
      }
    }
  }

  /** A `contact_request` frame or an API answer. */
  function applyRequest(r: RequestView) {
    const list = r.to.id === myId ? incoming : outgoing
    const i = list.value.findIndex((x) => x.from.id === r.from.id && x.to.id === r.to.id)
    if (i >= 0) list.value.splice(i, 1, r)
    else list.value.unshift(r)
  }

  /** A `remark` frame or an API answer: my private name for `user`. */
  function applyRemark(user: UserId, remark: string | null) {
    const c = contacts.value[user]
    if (c) contacts.value[user] = { ...c, remark: remark ?? undefined }
    users.setRemark(user, remark)
  }

  async function saveRemark(user: UserId, remark: string) {
    const r = await api.setRemark(user, remark)
    applyRemark(r.user, r.remark)
  }

  async function request(user: UserId, message: string) {
    const r = await api.requestContact(user, message)
    applyContact(r.contact)
    if (r.request) applyRequest(r.request)
  }

  async function answer(from: UserId, how: 'accept' | 'refuse' | 'block') {
    await api.answerRequest(from, how)
    const status = how === 'accept' ? 'accepted' : how === 'refuse' ? 'refused' : 'blocked'
    incoming.value = incoming.value.map((r) => (r.from.id === from && r.status === 'pending' ? { ...r, status } : r))
    // The `contact` frame brings the new relation; reload in case the socket is down.
    if (myId !== null) void load(myId)
  }

  async function remove(user: UserId) {
    await api.deleteContact(user)
    if (myId !== null) await load(myId)
  }

  async function setBlocked(user: UserId, on: boolean) {
    await api.block(user, on)
    if (myId !== null) await load(myId)
  }

  return {
    contacts,
    incoming,
    outgoing,
    loaded,
    error,
    friends,
    blocked,
    pendingIncoming,
    pendingOutgoing,
    isContact,
    stateOf,
    hasPendingRequestTo,
    load,
    reset,
    applyContact,
    applyRequest,
    applyRemark,
    saveRemark,
    request,
    answer,
    remove,
    setBlocked,
  }
})
