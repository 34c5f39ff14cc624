import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useContacts } from '@/stores/contacts'
import type { ContactView, RequestView, User } from '@/protocol/types'

const u = (id: number, name: string): User => ({
  id,
  username: name,
  nickname: name,
  signature: '',
  gender: 'unknown',
  birthday: null,
  is_admin: false,
  created_at: 0,
})
const ann = u(3, 'ann')
const bob = u(7, 'bob')
const cid = u(8, 'cid')

function json(body: unknown, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

beforeEach(() => setActivePinia(createPinia()))
afterEach(() => vi.unstubAllGlobals())

describe('contacts store', () => {
  it('loads contacts and requests, and follows contact frames', async () => {
    const req: RequestView = { from: cid, to: ann, message: 'hi', status: 'pending', created_at: 1, updated_at: 1 }
    vi.stubGlobal(
      'fetch',
      vi.fn(async (path: string) =>
        path === '/api/contacts'
          ? json({ contacts: [{ user: bob, state: 'normal', since: 1 }] })
          : json({ incoming: [req], outgoing: [] }),
      ),
    )
    const s = useContacts()
    await s.load(ann.id)
    expect(s.friends.map((c) => c.user.id)).toEqual([7])
    expect(s.pendingIncoming).toHaveLength(1)
    expect(s.isContact(7)).toBe(true)
    // Cid's request is accepted on another device: the contact frame settles it here too.
    s.applyContact({ user: cid, state: 'normal', since: 2 } satisfies ContactView)
    expect(s.pendingIncoming).toHaveLength(0)
    expect(s.friends.map((c) => c.user.id)).toEqual([7, 8])
    s.applyContact({ user: bob, state: 'blocked', since: 3 })
    expect(s.blocked.map((c) => c.user.id)).toEqual([7])
  })

  it('files outgoing requests under outgoing and incoming ones under incoming', () => {
    // The load is still on its way (the test talks to no server) while the frames arrive.
    vi.stubGlobal('fetch', vi.fn(() => new Promise<Response>(() => {})))
    const s = useContacts()
    void s.load(ann.id).catch(() => {})
    s.applyRequest({ from: ann, to: bob, message: '', status: 'pending', created_at: 1, updated_at: 1 })
    s.applyRequest({ from: cid, to: ann, message: '', status: 'pending', created_at: 1, updated_at: 1 })
    expect(s.hasPendingRequestTo(7)).toBe(true)
    expect(s.pendingIncoming.map((r) => r.from.id)).toEqual([8])
  })

  it('keeps working (empty) against a server without contacts', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json({ error: { code: 'not_found', message: 'No.' } }, 404)))
    const s = useContacts()
    await s.load(ann.id)
    expect(s.loaded).toBe(true)
    expect(s.error).not.toBeNull()
    expect(s.friends).toEqual([])
  })
})
