// The HTTP half of the protocol: one typed function per route of docs/protocol.md. The session is
// an HttpOnly cookie, so requests only need `credentials: 'same-origin'`.
import type {
  AuthAnswer,
  AuthOptions,
  ContactView,
  ConvId,
  GroupView,
  ConversationSummary,
  Gender,
  HistoryPage,
  Message,
  RequestView,
  User,
  UserId,
} from './types'

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

export const api = {
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
  searchUsers: (q: string) => request<{ users: User[] }>('GET', `/api/users?q=${encodeURIComponent(q)}`),
  conversations: () => request<{ conversations: ConversationSummary[] }>('GET', '/api/conversations'),
  /** Messages (newest first), people and groups matching `q`. */
  search: (q: string, limit = 20) =>
    request<{ messages: Message[]; users: User[]; groups: GroupView[] }>(
      'GET',
      `/api/search?q=${encodeURIComponent(q)}&limit=${limit}`,
    ),
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
    return request<HistoryPage>('GET', `/api/conversations/${convPath(conv)}/messages${qs ? `?${qs}` : ''}`)
  },
}
