// Wire types of the Chinwag protocol, transcribed from docs/protocol.md (the Rust types in
// src/protocol/ are the definition). Nothing outside src/protocol/ builds or parses frames.
// tests/frames.examples.ts checks these types against the example frames the Rust tests check
// too (tests/fixtures/frames.json at the repository's root).

export type UserId = number
/** `d:<low>:<high>` for a 1:1 chat, `g:<group id>` for a group. */
export type ConvId = string

export type Gender = 'unknown' | 'male' | 'female' | 'other'

export interface User {
  id: UserId
  username: string
  nickname: string
  signature: string
  gender: Gender
  birthday: string | null
  is_admin: boolean
  created_at: number
  /** File id of the avatar image (`GET /api/files/{id}`), if any. */
  avatar?: string | null
  /** Only in the owner's own view (`GET /api/me`). */
  phone?: string | null
  email?: string | null
  hide_presence?: boolean | null
  /** Own view only: true for an account from the LDAP directory (its password is changed there). */
  ldap?: boolean
}

/** The `hello` frame carries a trimmed user. */
export interface HelloUser {
  id: UserId
  username: string
  nickname: string
}

/** Events the server records in a conversation (`{"kind":"system","event":...}`). */
export type SystemEvent =
  | { type: 'contact_accepted' }
  | { type: 'group_created'; by: UserId }
  | { type: 'joined'; user: UserId; by: UserId | null }
  | { type: 'left'; user: UserId }
  | { type: 'removed'; user: UserId; by: UserId }
  | { type: 'renamed'; name: string; by: UserId }
  | { type: 'notice_changed'; by: UserId; notice?: string }
  | { type: 'owner_changed'; user: UserId; by: UserId }
  | { type: 'admin_added'; user: UserId; by: UserId }
  | { type: 'admin_removed'; user: UserId; by: UserId }
  | { type: 'muted'; user: UserId; by: UserId; until: number | null }
  | { type: 'dissolved'; by: UserId }

export type Content =
  | { kind: 'text'; text: string }
  | { kind: 'emoji'; emoji: string }
  | { kind: 'image'; file_id: string; width: number; height: number; name: string; size: number }
  | { kind: 'file'; file_id: string; name: string; size: number; mime: string }
  | { kind: 'sticker'; file_id: string; width: number; height: number }
  | { kind: 'voice'; file_id: string; duration_ms: number; waveform: number[]; size: number; mime: string }
  | { kind: 'call'; media?: CallMedia; outcome?: CallOutcome; duration_secs?: number }
  | { kind: 'system'; event?: SystemEvent; text?: string }
  | { kind: 'recalled' }
  | { kind: 'history'; items: HistoryItem[] }

/** One message inside a chat-history card (`kind: 'history'`), as it was when forwarded. */
export interface HistoryItem {
  sender: UserId
  /** The sender's display name when the card was made. */
  name: string
  ts: number
  content: Content
}

/** A message saved to my favourites: a copy made at save time (`GET /api/favorites`). */
export interface Favorite {
  id: number
  conv: ConvId
  seq: number
  sender: UserId
  sender_name: string
  ts: number
  saved_at: number
  content: Content
}

/** One target's answer to `POST /api/forward`. */
export interface ForwardResult {
  conv: ConvId
  messages: Message[]
  error?: { code: string; message: string }
}

export type CallMedia = 'audio' | 'video'
export type CallOutcome = 'answered' | 'missed' | 'declined' | 'cancelled' | 'busy' | 'failed'

/**
 * What a client may send: the server writes `call` and `system` itself. For images, files and
 * stickers only `kind` and `file_id` count (the server fills in the rest from the stored file), so
 * the other fields are optional here and only used to show the message while it is pending.
 */
export type SendableContent =
  | { kind: 'text'; text: string }
  | { kind: 'emoji'; emoji: string }
  | { kind: 'image'; file_id: string; width?: number; height?: number; name?: string; size?: number }
  | { kind: 'file'; file_id: string; name?: string; size?: number; mime?: string }
  | { kind: 'sticker'; file_id: string; width?: number; height?: number }
  | { kind: 'voice'; file_id: string; duration_ms: number; waveform: number[]; size?: number; mime?: string }

export interface Message {
  conv: ConvId
  seq: number
  sender: UserId
  client_id: string
  ts: number
  content: Content
  /** The conversation's change counter at this message's last edit, recall or reaction. */
  rev?: number
  /**
   * Client-only: I deleted this message for myself (`hidden` frame, or a history page's
   * `hidden` list). It stays in the log as a placeholder, so the log has no hole, and is never shown.
   */
  hidden?: boolean
  /** `recalled`: the quoted message was recalled since; `preview` is then empty. */
  reply_to?: { seq: number; sender: UserId; preview: string; recalled?: boolean } | null
  mentions?: UserId[]
  mention_all?: boolean
  edited_at?: number | null
  recalled?: { by: UserId; at: number } | null
  /** Emoji -> who reacted with it. */
  reactions?: Record<string, UserId[]>
}

export type GroupRole = 'owner' | 'admin' | 'member'

export interface GroupView {
  id: number
  name: string
  notice: string
  avatar: string | null
  join_mode: 'open' | 'approval'
  owner: UserId
  member_count: number
  created_at: number
  my_role?: GroupRole | null
}

export interface MemberView {
  user: User
  role: GroupRole
  joined_at: number
  /** Until when (ms) the member may not send; null or absent when not muted. */
  muted_until?: number | null
  /** Null or absent for people who hide their presence. */
  online?: boolean | null
}

export interface ApplicationView {
  user: User
  message: string
  created_at: number
}

/** `GET /api/link-preview` answer: what a page says about itself; `image` is a file id. */
export interface LinkPreview {
  url: string
  title: string | null
  description: string | null
  site_name: string | null
  image: string | null
}

/** `POST /api/files` answer. */
export interface FileView {
  id: string
  name: string
  size: number
  mime: string
  width?: number | null
  height?: number | null
  thumb: boolean
  /** Audio-only WebM and Ogg files: their length as their data says. */
  duration_ms?: number | null
  created_at: number
}

export interface StickerPack {
  id: number
  name: string
  created_at: number
  stickers: { file_id: string; width: number; height: number }[]
}

export interface ReadList {
  read_by: UserId[]
  unread_by: UserId[]
}

export interface IceServer {
  urls: string[] | string
  username?: string
  credential?: string
}

// ---- administration (`/api/admin/...`) ----

export interface AdminUser extends User {
  disabled: boolean
  deleted: boolean
  online: boolean
  last_seen?: number | null
  /** How the user signs in (absent when unknown). */
  sign_in?: SignIn[]
}

/** One way a user signs in: a password, an OpenID Connect provider (by name), or LDAP. */
export interface SignIn {
  kind: 'password' | 'oidc' | 'ldap' | string
  provider?: string
}

export interface AdminGroup {
  id: number
  name: string
  owner: UserId
  member_count: number
  created_at: number
  /** `active`, `disabled` or `dissolved`. */
  status: string
}

export interface Dashboard {
  users: number
  online_users: number
  connections: number
  messages: number
  /** `[day, count]` for the last 14 days, oldest first; day = days since the Unix epoch. */
  messages_per_day: [number, number][]
  storage_bytes: number
}

export type RegistrationMode = 'open' | 'invite' | 'closed'

/** Settings an administrator may change while the server runs (`PATCH` sends any subset). */
export interface LiveSettings {
  registration?: RegistrationMode | null
  otp_sender?: 'off' | 'log' | 'webhook' | null
  otp_webhook_url?: string | null
  direct_policy?: 'anyone' | 'contacts' | null
  recall_window_secs?: number | null
  edit_window_secs?: number | null
  max_group_members?: number | null
  max_groups_per_user?: number | null
  history_for_new_members?: boolean | null
  password_registration?: boolean | null
  password_login?: boolean | null
  oidc_link_by_email?: boolean | null
  /** Read-only: a single sign-on method is configured. */
  sso_configured?: boolean
}

export interface Invite {
  code: string
  created_by: UserId
  created_at: number
  expires_at: number
  max_uses: number
  uses: number
}

export interface AuditEntry {
  id: number
  at: number
  actor: UserId
  action: string
  target: string
  detail?: string
}

/** My side of a relation with another user. */
export type ContactState = 'normal' | 'blocked' | 'blocked_by' | 'deleted' | 'deleted_by'

export interface ContactView {
  user: User
  state: ContactState
  since: number
  /** My private name for this user, if I gave one. */
  remark?: string
}

export interface RequestView {
  from: User
  to: User
  message: string
  status: 'pending' | 'accepted' | 'refused' | 'blocked'
  created_at: number
  updated_at: number
}

/** A conversation as the user's list shows it (`ConversationView`). */
export interface ConversationSummary {
  id: ConvId
  peer?: User | null
  group?: GroupView | null
  last_seq: number
  last_message: Message | null
  /** The fields below came with read receipts; older servers leave them out. */
  last_ts?: number
  /** My read position. */
  read_seq?: number
  /** Messages after my read position. */
  unread?: number
  mentioned?: boolean
  pinned?: boolean
  muted?: boolean
  hidden?: boolean
  /** 1:1 only: how far the other person has read. */
  peer_read_seq?: number | null
}

export interface AuthOptions {
  otp_login: boolean
  /** `open`, `invite` (an invite code is needed) or `closed`. */
  registration: 'open' | 'invite' | 'closed' | string
  /** False: password registration is off (single sign-on only). */
  password_registration?: boolean
  /** False: password login is off for everyone but administrators. */
  password_login?: boolean
  /** OpenID Connect providers, one button each (`/api/auth/oidc/{id}/start`). */
  oidc?: { id: string; name: string }[]
}

export interface AuthAnswer {
  user: User
  token: string
}

export interface HistoryPage {
  messages: Message[]
  has_more: boolean
  /** Seqs of this page I deleted for myself, left out of `messages`. */
  hidden?: number[]
}

// ---- WebSocket frames ----

/**
 * Messages a `sync` left out of conversation `conv` (seqs after `after` and before `before`)
 * because it had more new ones than a sync carries; history pages fetch them.
 */
export interface SyncGap {
  conv: ConvId
  after: number
  before: number
}

/** A sync position: the last seq seen, or that and the highest change counter seen. */
export type SyncCursor = number | { seq: number; rev: number }

export type ClientFrame =
  | { type: 'sync'; cursors: Record<ConvId, SyncCursor> }
  | {
      type: 'send'
      client_id: string
      conv: ConvId
      content: SendableContent
      reply_to?: number
      mentions?: UserId[]
      mention_all?: boolean
    }
  | { type: 'read'; conv: ConvId; seq: number }
  | { type: 'typing'; conv: ConvId }
  | { type: 'ping' }
  /** Whether this tab shows Chinwag; the server pushes to a device none of whose sockets do. */
  | { type: 'visibility'; visible: boolean }
  | CallClientFrame

/** Call signalling a client sends (docs/protocol.md, "Calls"). */
export type CallClientFrame =
  | { type: 'call_invite'; conv: ConvId; media: CallMedia }
  | { type: 'call_accept' | 'call_reject' | 'call_cancel' | 'call_hangup' | 'call_join' | 'call_connected'; call: string }
  | { type: 'call_media_state'; call: string; muted: boolean; camera_off: boolean; screen_sharing?: boolean }
  | { type: 'call_offer' | 'call_answer'; call: string; to: UserId; sdp: string }
  | { type: 'call_candidate'; call: string; to: UserId; candidate: RTCIceCandidateInitLike }
  /** A call through the SFU: my offer to the server, with what each of my `mid`s carries. */
  | { type: 'call_sfu_offer'; call: string; sdp: string; sources: Record<string, SfuSource> }
  | { type: 'call_sfu_answer'; call: string; sdp: string }
  /** The videos I show and at which layer; the others are paused. */
  | { type: 'call_sfu_view'; call: string; videos: SfuVideo[] }

/** What one track of a participant in an SFU call carries. */
export type SfuSource = 'audio' | 'camera' | 'screen'
/** A simulcast layer: a quarter, half or full resolution of the camera. */
export type SfuLayer = 'low' | 'medium' | 'high'
export interface SfuVideo {
  user: UserId
  source: SfuSource
  layer: SfuLayer
}
/** One track received from the SFU, by the `mid` of my connection. */
export interface SfuTrack {
  mid: string
  user: UserId
  source: SfuSource
}

export interface RTCIceCandidateInitLike {
  candidate?: string
  sdpMid?: string | null
  sdpMLineIndex?: number | null
  usernameFragment?: string | null
}

export type CallEndReason = 'declined' | 'busy' | 'cancelled' | 'no_answer' | 'hangup' | 'taken_elsewhere' | 'connection_lost'

/** Call signalling the server sends. */
export type CallServerFrame =
  /** `sfu`: the call goes through the server's SFU (absent: a mesh or a 1:1 call). */
  | { type: 'call_started'; call: string; conv: ConvId; media: CallMedia; sfu?: boolean }
  | { type: 'call_incoming'; call: string; conv: ConvId; from: UserId; media: CallMedia; participants: UserId[]; sfu?: boolean }
  | { type: 'call_ringing'; call: string; user: UserId }
  | { type: 'call_accepted'; call: string; user: UserId; participants: UserId[]; sfu?: boolean }
  | { type: 'call_left'; call: string; user: UserId }
  | { type: 'call_ended'; call: string; reason: CallEndReason | string; duration_secs?: number }
  | { type: 'call_media_state'; call: string; user: UserId; muted: boolean; camera_off: boolean; screen_sharing?: boolean }
  | { type: 'call_offer' | 'call_answer'; call: string; from: UserId; sdp: string }
  | { type: 'call_candidate'; call: string; from: UserId; candidate: RTCIceCandidateInitLike }
  | { type: 'call_sfu_answer'; call: string; sdp: string }
  /** What I receive from the SFU changed: `tracks` is the full list. */
  | { type: 'call_sfu_offer'; call: string; sdp: string; tracks: SfuTrack[] }
  /** Who speaks, loudest first. */
  | { type: 'call_sfu_speakers'; call: string; speakers: UserId[] }

export type ServerFrame =
  | { type: 'hello'; user: HelloUser }
  | { type: 'message'; message: Message }
  | { type: 'update'; message: Message }
  | { type: 'ack'; client_id: string; message: Message }
  | { type: 'synced'; reload?: ConvId[]; gaps?: SyncGap[] }
  | { type: 'read'; conv: ConvId; user: UserId; seq: number }
  | { type: 'typing'; conv: ConvId; user: UserId }
  | { type: 'presence'; user: UserId; online: boolean; last_seen: number | null }
  | { type: 'conversation'; conversation: ConversationSummary }
  | { type: 'group'; group: GroupView }
  | { type: 'contact'; contact: ContactView }
  | { type: 'contact_request'; request: RequestView }
  | { type: 'group_gone'; group: number; reason: string }
  | { type: 'hidden'; conv: ConvId; seq: number }
  | { type: 'remark'; user: UserId; remark: string | null }
  | { type: 'error'; client_id?: string; code: string; message: string }
  | { type: 'pong' }
  | { type: 'favorite'; favorite: Favorite }
  | { type: 'favorite_removed'; id: number }
  | CallServerFrame

/** WebSocket close codes with a protocol meaning. */
export const CloseCode = {
  ShuttingDown: 1001,
  TooBig: 1009,
  SessionRevoked: 4001,
  FellBehind: 4008,
} as const

/** The 1:1 conversation id of users `a` and `b`. */
export function directConvId(a: UserId, b: UserId): ConvId {
  return `d:${Math.min(a, b)}:${Math.max(a, b)}`
}

/** The other member of a 1:1 conversation, or null for a group or a malformed id. */
export function peerIdOf(conv: ConvId, me: UserId): UserId | null {
  const m = /^d:(\d+):(\d+)$/.exec(conv)
  if (!m) return null
  const a = Number(m[1])
  const b = Number(m[2])
  if (a === me) return b
  if (b === me) return a
  return null
}

/** Parses one server frame; returns null for anything that is not a known frame. */
export function parseServerFrame(data: unknown): ServerFrame | null {
  if (typeof data !== 'string') return null
  let v: unknown
  try {
    v = JSON.parse(data)
  } catch {
    return null
  }
  if (!v || typeof v !== 'object') return null
  const f = v as { type?: unknown }
  switch (f.type) {
    case 'hello':
    case 'synced':
    case 'pong':
    case 'error':
    case 'read':
    case 'typing':
    case 'presence':
    case 'group':
    case 'group_gone':
    case 'contact':
    case 'contact_request':
    case 'favorite':
    case 'favorite_removed':
    case 'hidden':
    case 'remark':
      return f as ServerFrame
    case 'call_started':
    case 'call_incoming':
    case 'call_ringing':
    case 'call_accepted':
    case 'call_left':
    case 'call_ended':
    case 'call_media_state':
    case 'call_offer':
    case 'call_answer':
    case 'call_candidate':
    case 'call_sfu_answer':
    case 'call_sfu_offer':
    case 'call_sfu_speakers':
      return typeof (f as { call?: unknown }).call === 'string' ? (f as ServerFrame) : null
    case 'conversation': {
      const c = (f as { conversation?: { id?: unknown } }).conversation
      return c && typeof c.id === 'string' ? (f as ServerFrame) : null
    }
    case 'message':
    case 'ack':
    case 'update':
      return isMessage((f as { message?: unknown }).message) ? (f as ServerFrame) : null
    default:
      return null
  }
}

export function isMessage(m: unknown): m is Message {
  if (!m || typeof m !== 'object') return false
  const x = m as Record<string, unknown>
  return (
    typeof x.conv === 'string' &&
    typeof x.seq === 'number' &&
    typeof x.sender === 'number' &&
    typeof x.content === 'object' &&
    x.content !== null
  )
}

// ---- Web Push (docs/push.md) ----

/** What a push may show: sender and text, the sender only, or nothing but "New message". */
export type PushPreview = 'full' | 'sender' | 'none'

/** A daily quiet time in the user's local clock; the offset is minutes east of UTC. */
export interface DndWindow {
  start: string
  end: string
  utc_offset_minutes: number
}

/** `GET`/`PUT /api/push/settings`, per user. */
export interface PushSettings {
  preview: PushPreview
  dnd: DndWindow | null
}

/** The browser's `PushSubscription.toJSON()`, the body of `POST /api/push/subscriptions`. */
export interface PushSubscriptionBody {
  endpoint: string
  expirationTime?: number | null
  keys?: { p256dh?: string; auth?: string }
}
