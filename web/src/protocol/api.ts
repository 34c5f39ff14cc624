// The HTTP half of the protocol: one typed function per route of docs/protocol.md. The session is
// an HttpOnly cookie, so requests only need `credentials: 'same-origin'`.
import type {
  AdminGroup,
  AdminUser,
  ApplicationView,
  AuditEntry,
  AuthAnswer,
  AuthOptions,
  ContactView,
  ConvId,
  Dashboard,
  Favorite,
  FileView,
  ForwardResult,
  GroupView,
  ConversationSummary,
  Gender,
  HistoryPage,
  IceServer,
  Invite,
  LinkPreview,
  LiveSettings,
  MemberView,
  Message,
  PushSettings,
  PushSubscriptionBody,
  ReadList,
  RequestView,
  StickerPack,
  User,
  UserId,
} from './types'
import { withHiddenPlaceholders } from '@/lib/hidden'

/** An error answer of the server, or `network` when no answer came at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds from a 429's `Retry-After` header. */
    readonly retryAfter: number | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

/** Called on every 401 so the app can go to the login screen. */
let onUnauthorized: (() => void) | null = null
export function setUnauthorizedHandler(fn: (() => void) | null) {
  onUnauthorized = fn
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  opts: { quiet401?: boolean } = {},
): Promise<T> {
  let res: Response
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new ApiError(0, 'network', 'Network error')
  }
  if (res.ok) {
    if (res.status === 204) return undefined as T
    const text = await res.text()
    return (text ? JSON.parse(text) : undefined) as T
  }
  let code = `http_${res.status}`
  let message = res.statusText || 'Request failed'
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string } }
    if (j?.error?.code) code = j.error.code
    if (j?.error?.message) message = j.error.message
  } catch {
    // Not JSON (a proxy's page, say): keep the status-derived code.
  }
  const ra = res.headers.get('Retry-After')
  const retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra.trim()) : null
  if (res.status === 401 && !opts.quiet401) onUnauthorized?.()
  throw new ApiError(res.status, code, message, retryAfter)
}

/** A conversation id as a path segment (`d:3:7` keeps its colons). */
function convPath(conv: ConvId) {
  return encodeURIComponent(conv).replace(/%3A/gi, ':')
}

export interface RegisterInput {
  username: string
  password: string
  nickname?: string
  phone?: string
  email?: string
  /** Needed when the server registers by invitation. */
  invite?: string
}

export interface ProfilePatch {
  nickname?: string
  signature?: string
  gender?: Gender
  birthday?: string | null
  phone?: string
  email?: string
}

/** An upload under way: its answer, and a way to stop it. */
export interface Upload {
  done: Promise<FileView>
  abort: () => void
}

/**
 * Uploads a file to `POST /api/files` as multipart (field `file`), with progress. fetch() cannot
 * report upload progress, so this is XMLHttpRequest; errors are the same `ApiError`s.
 */
export function uploadFile(file: Blob, name: string, onProgress?: (sent: number, total: number) => void): Upload {
  const xhr = new XMLHttpRequest()
  const done = new Promise<FileView>((resolve, reject) => {
    xhr.open('POST', '/api/files')
    xhr.withCredentials = true
    xhr.setRequestHeader('Accept', 'application/json')
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress?.(e.loaded, e.total)
    }
    xhr.onerror = () => reject(new ApiError(0, 'network', 'Network error'))
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'Upload cancelled'))
    xhr.onload = () => {
      let body: unknown = null
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null
      } catch {
        body = null
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) return resolve(body as FileView)
      const err = (body as { error?: { code?: string; message?: string } } | null)?.error
      if (xhr.status === 401) onUnauthorized?.()
      const ra = xhr.getResponseHeader('Retry-After')
      reject(
        new ApiError(
          xhr.status,
          err?.code ?? `http_${xhr.status}`,
          err?.message ?? (xhr.statusText || 'Upload failed'),
          ra && /^\d+$/.test(ra) ? Number(ra) : null,
        ),
      )
    }
    const form = new FormData()
    form.append('file', file, name)
    xhr.send(form)
  })
  return { done, abort: () => xhr.abort() }
}

/** Where an uploaded file, or its thumbnail, can be fetched (the session cookie authenticates). */
export function fileUrl(id: string, thumb = false): string {
  return `/api/files/${encodeURIComponent(id)}${thumb ? '/thumb' : ''}`
}

function qs(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? `?${s}` : ''
}

export interface NewGroupInput {
  name: string
  notice?: string
  join_mode?: 'open' | 'approval'
  members?: UserId[]
}

export const api = {
  /** Forwards messages of `from` to each of `to`, as copies or one chat-history card. */
  forward: (clientId: string, from: ConvId, seqs: number[], to: ConvId[], mode: 'copies' | 'card') =>
    request<{ results: ForwardResult[] }>('POST', '/api/forward', { client_id: clientId, from: { conv: from, seqs }, to, mode }),
  /** My favourites, newest first; `q` searches them, `before` pages on. */
  favorites: (opts: { q?: string; before?: number; limit?: number } = {}) =>
    request<{ favorites: Favorite[]; has_more: boolean }>('GET', `/api/favorites${qs({ q: opts.q, before: opts.before, limit: opts.limit })}`),
  /** Saves a message (201), or answers the favourite it already is (200). */
  saveFavorite: (conv: ConvId, seq: number) => request<Favorite>('POST', '/api/favorites', { conv, seq }),
  removeFavorite: (id: number) => request<void>('DELETE', `/api/favorites/${id}`),
  authOptions: () => request<AuthOptions>('GET', '/api/auth/options'),
  register: (input: RegisterInput) => request<AuthAnswer>('POST', '/api/auth/register', input, { quiet401: true }),
  login: (username: string, password: string) =>
    request<AuthAnswer>('POST', '/api/auth/login', { username, password }, { quiet401: true }),
  logout: () => request<void>('POST', '/api/auth/logout', undefined, { quiet401: true }),
  otpRequest: (username: string) => request<{ sent: boolean }>('POST', '/api/auth/otp/request', { username }),
  otpLogin: (username: string, code: string) =>
    request<AuthAnswer>('POST', '/api/auth/otp/login', { username, code }, { quiet401: true }),
  me: () => request<User>('GET', '/api/me', undefined, { quiet401: true }),
  updateMe: (patch: ProfilePatch) => request<User>('PATCH', '/api/me', patch),
  changePassword: (old_password: string, new_password: string) =>
    request<void>('POST', '/api/me/password', { old_password, new_password }, { quiet401: true }),
  user: (id: UserId) => request<User>('GET', `/api/users/${id}`),
  /** Whether `id` is online now, or when last seen (403 when hidden or not related). */
  presence: (id: UserId) => request<{ online: boolean; last_seen: number | null }>('GET', `/api/users/${id}/presence`),
  searchUsers: (q: string) => request<{ users: User[] }>('GET', `/api/users?q=${encodeURIComponent(q)}`),
  /** Every conversation, hidden ones too (with `hidden: true`), so the app knows what to leave out. */
  conversations: () => request<{ conversations: ConversationSummary[] }>('GET', '/api/conversations?hidden=true'),
  conversation: (conv: ConvId) => request<ConversationSummary>('GET', `/api/conversations/${convPath(conv)}`),
  /** Messages (newest first), people and groups matching `q`. */
  search: (q: string, limit = 20) =>
    request<{ messages: Message[]; users: User[]; groups: GroupView[] }>(
      'GET',
      `/api/search?q=${encodeURIComponent(q)}&limit=${limit}`,
    ),
  /** The preview of a web page, fetched by the server (the client never contacts the site). */
  linkPreview: (url: string) => request<LinkPreview>('GET', `/api/link-preview${qs({ url })}`),
  contacts: () => request<{ contacts: ContactView[] }>('GET', '/api/contacts'),
  contactRequests: () => request<{ incoming: RequestView[]; outgoing: RequestView[] }>('GET', '/api/contacts/requests'),
  /** Asks `user` to become a contact (accepts their pending request instead, if any). */
  requestContact: (user: UserId, message: string) =>
    request<{ contact: ContactView; request: RequestView | null }>('POST', '/api/contacts/requests', { user, message }),
  answerRequest: (user: UserId, answer: 'accept' | 'refuse' | 'block') =>
    request<unknown>('POST', `/api/contacts/requests/${user}/${answer}`, {}),
  deleteContact: (user: UserId) => request<unknown>('DELETE', `/api/contacts/${user}`),
  block: (user: UserId, on: boolean) => request<unknown>(on ? 'POST' : 'DELETE', `/api/contacts/${user}/block`, on ? {} : undefined),
  /** Pin, mute or hide a chat for me (pushed to my other devices as a `conversation` frame). */
  patchConversation: (conv: ConvId, patch: { pinned?: boolean; muted?: boolean; hidden?: boolean }) =>
    request<ConversationSummary>('PATCH', `/api/conversations/${convPath(conv)}`, patch),
  /** Edits my own text message (within the server's edit window). */
  editMessage: (conv: ConvId, seq: number, text: string) =>
    request<Message>('PATCH', `/api/conversations/${convPath(conv)}/messages/${seq}`, { text }),
  recall: (conv: ConvId, seq: number) => request<Message>('POST', `/api/conversations/${convPath(conv)}/messages/${seq}/recall`, {}),
  react: (conv: ConvId, seq: number, emoji: string, on: boolean) =>
    request<Message>('POST', `/api/conversations/${convPath(conv)}/messages/${seq}/reactions`, { emoji, on }),
  history: (conv: ConvId, opts: { before?: number; after?: number; limit?: number } = {}) => {
    const q = new URLSearchParams()
    if (opts.before !== undefined) q.set('before', String(opts.before))
    if (opts.after !== undefined) q.set('after', String(opts.after))
    if (opts.limit !== undefined) q.set('limit', String(opts.limit))
    const qs = q.toString()
    return request<HistoryPage>('GET', `/api/conversations/${convPath(conv)}/messages${qs ? `?${qs}` : ''}`).then((p) =>
      withHiddenPlaceholders(conv, p),
    )
  },
  /** Deletes a message for me only, on all my devices (they get a `hidden` frame). */
  hideMessage: (conv: ConvId, seq: number) => request<void>('POST', `/api/conversations/${convPath(conv)}/messages/${seq}/hide`, {}),
  /** Sets my private name for a contact; an empty string clears it. */
  setRemark: (user: UserId, remark: string) =>
    request<{ user: UserId; remark: string | null }>('PUT', `/api/contacts/${user}/remark`, { remark }),
  /** Messages of one conversation matching `q`, newest first. */
  searchIn: (conv: ConvId, q: string, limit = 50) =>
    request<{ messages: Message[] }>('GET', `/api/search?q=${encodeURIComponent(q)}&conv=${encodeURIComponent(conv)}&limit=${limit}`),
  /** A group's invite token (owners and admins); `reset` replaces it. */
  groupInviteLink: (id: number, reset = false) => request<{ token: string }>(reset ? 'POST' : 'GET', `/api/groups/${id}/invite-link`, reset ? {} : undefined),
  groupByInvite: (token: string) => request<GroupView>('GET', `/api/group-invites/${encodeURIComponent(token)}`),
  joinByInvite: (token: string, message?: string) =>
    request<{ joined: boolean; group?: GroupView }>('POST', `/api/group-invites/${encodeURIComponent(token)}/join`, message ? { message } : {}),
  reads: (conv: ConvId, seq: number) => request<ReadList>('GET', `/api/conversations/${convPath(conv)}/messages/${seq}/reads`),

  // ---- groups ----
  createGroup: (input: NewGroupInput) => request<GroupView>('POST', '/api/groups', input),
  /** Groups by name (or id); without `q`, mine. */
  groups: (q?: string) => request<{ groups: GroupView[] }>('GET', `/api/groups${qs({ q })}`),
  group: (id: number) => request<GroupView>('GET', `/api/groups/${id}`),
  editGroup: (id: number, patch: { name?: string; notice?: string; join_mode?: 'open' | 'approval' }) =>
    request<GroupView>('PATCH', `/api/groups/${id}`, patch),
  dissolveGroup: (id: number) => request<void>('DELETE', `/api/groups/${id}`),
  members: (id: number) => request<{ members: MemberView[] }>('GET', `/api/groups/${id}/members`),
  joinGroup: (id: number, message?: string) =>
    request<{ joined: boolean; group?: GroupView }>('POST', `/api/groups/${id}/join`, message ? { message } : {}),
  leaveGroup: (id: number) => request<void>('POST', `/api/groups/${id}/leave`, {}),
  applications: (id: number) => request<{ applications: ApplicationView[] }>('GET', `/api/groups/${id}/applications`),
  answerApplication: (id: number, user: UserId, how: 'approve' | 'refuse') =>
    request<GroupView>('POST', `/api/groups/${id}/applications/${user}/${how}`, {}),
  addMembers: (id: number, users: UserId[]) => request<unknown>('POST', `/api/groups/${id}/members`, { users }),
  removeMember: (id: number, user: UserId) => request<void>('DELETE', `/api/groups/${id}/members/${user}`),
  /** Mutes `user` for `minutes`; 0 or null unmutes. */
  muteMember: (id: number, user: UserId, minutes: number | null) =>
    request<unknown>('POST', `/api/groups/${id}/members/${user}/mute`, minutes ? { minutes } : {}),
  setAdmin: (id: number, user: UserId, on: boolean) =>
    request<unknown>(on ? 'POST' : 'DELETE', `/api/groups/${id}/admins/${user}`, on ? {} : undefined),
  transferGroup: (id: number, user: UserId) => request<unknown>('POST', `/api/groups/${id}/transfer`, { user }),
  setGroupAvatar: (id: number, fileId: string | null) => request<GroupView>('PUT', `/api/groups/${id}/avatar`, { file_id: fileId }),

  // ---- media ----
  setAvatar: (fileId: string | null) => request<User>('PUT', '/api/me/avatar', { file_id: fileId }),
  stickers: () => request<{ packs: StickerPack[] }>('GET', '/api/stickers'),
  createStickerPack: (name: string) => request<StickerPack>('POST', '/api/stickers/packs', { name }),
  addSticker: (pack: number, fileId: string) => request<StickerPack>('POST', `/api/stickers/packs/${pack}/stickers`, { file_id: fileId }),
  deleteStickerPack: (pack: number) => request<unknown>('DELETE', `/api/stickers/packs/${pack}`),
  removeSticker: (pack: number, fileId: string) =>
    request<unknown>('DELETE', `/api/stickers/packs/${pack}/stickers/${encodeURIComponent(fileId)}`),

  // ---- calls ----
  iceServers: () =>
    request<{ ice_servers: IceServer[]; ttl_secs: number; ice_transport_policy?: 'all' | 'relay' }>('GET', '/api/calls/ice-servers'),

  // ---- Web Push ----
  pushKey: () => request<{ public_key: string }>('GET', '/api/push/vapid'),
  /** Registers this device's subscription (it replaces the device's earlier one). */
  pushSubscribe: (sub: PushSubscriptionBody) => request<{ endpoint: string }>('POST', '/api/push/subscriptions', sub),
  pushUnsubscribe: (endpoint: string) => request<void>('DELETE', '/api/push/subscriptions', { endpoint }),
  pushSettings: () => request<PushSettings>('GET', '/api/push/settings'),
  setPushSettings: (s: PushSettings) => request<PushSettings>('PUT', '/api/push/settings', s),

  // ---- administration ----
  admin: {
    dashboard: () => request<Dashboard>('GET', '/api/admin/dashboard'),
    users: (q: string, offset: number, limit: number) =>
      request<{ users: AdminUser[]; total: number }>('GET', `/api/admin/users${qs({ q, offset, limit })}`),
    setUserDisabled: (id: UserId, disabled: boolean) =>
      request<AdminUser>('POST', `/api/admin/users/${id}/${disabled ? 'disable' : 'enable'}`, {}),
    deleteUser: (id: UserId) => request<AdminUser>('DELETE', `/api/admin/users/${id}`),
    resetPassword: (id: UserId, newPassword: string) =>
      request<void>('POST', `/api/admin/users/${id}/password`, { new_password: newPassword }),
    setUserAdmin: (id: UserId, on: boolean) =>
      request<AdminUser>(on ? 'POST' : 'DELETE', `/api/admin/users/${id}/admin`, on ? {} : undefined),
    groups: (q: string, offset: number, limit: number) =>
      request<{ groups: AdminGroup[]; total: number }>('GET', `/api/admin/groups${qs({ q, offset, limit })}`),
    setGroupDisabled: (id: number, disabled: boolean) =>
      request<void>('POST', `/api/admin/groups/${id}/${disabled ? 'disable' : 'enable'}`, {}),
    dissolveGroup: (id: number) => request<void>('DELETE', `/api/admin/groups/${id}`),
    settings: () => request<LiveSettings>('GET', '/api/admin/settings'),
    updateSettings: (patch: LiveSettings) => request<LiveSettings>('PATCH', '/api/admin/settings', patch),
    invites: () => request<{ invites: Invite[] }>('GET', '/api/admin/invites'),
    createInvite: (maxUses: number, expiresInHours: number) =>
      request<Invite>('POST', '/api/admin/invites', { max_uses: maxUses, expires_in_hours: expiresInHours }),
    deleteInvite: (code: string) => request<void>('DELETE', `/api/admin/invites/${encodeURIComponent(code)}`),
    audit: (before?: number, limit = 50) => request<{ entries: AuditEntry[] }>('GET', `/api/admin/audit${qs({ before, limit })}`),
  },
}
