// Maps a server error code (docs/protocol.md) to a sentence the user can act on.
import { ApiError } from '@/protocol/api'

type T = (key: string, named?: Record<string, unknown>) => string

const known = new Set([
  'username_taken',
  'bad_credentials',
  'bad_code',
  'bad_origin',
  'network',
  'forbidden',
  'not_found',
  'busy',
  'invalid_username',
  'weak_password',
  'email_taken',
  'phone_taken',
  'account_disabled',
  'otp_disabled',
  'shutting_down',
  'bad_invite',
  'registration_closed',
  'quota_exceeded',
  'empty_file',
  'bad_image',
  'not_an_image',
  'last_admin',
  'password_in_directory',
  'directory_unavailable',
  'local_account_exists',
  'directory_account_unusable',
  'password_login_disabled',
  'password_registration_disabled',
])

/** Generic codes whose server message says more than a generic sentence could. */
const specific = new Set(['conflict', 'limit_reached', 'invalid', 'invalid_field'])

const byStatus: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'too_large',
  503: 'busy',
}

export function errorText(t: T, e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === 'rate_limited' || e.status === 429) {
      return e.retryAfter !== null ? t('errors.rate_limited', { n: e.retryAfter }) : t('errors.rate_limited_soon')
    }
    if (known.has(e.code)) return t(`errors.${e.code}`)
    if (specific.has(e.code) && e.message) return e.message
    // A validation error's own message is more specific than a generic sentence.
    if (e.status === 400 && e.message && e.code !== `http_400`) return e.message
    const s = byStatus[e.status]
    if (s) return t(`errors.${s}`)
    return t('errors.generic', { code: e.code })
  }
  return t('errors.generic', { code: e instanceof Error ? e.name : 'unknown' })
}

/** The same for a WebSocket `error` frame's code and message. */
export function frameErrorText(t: T, code: string, message: string): string {
  if (known.has(code)) return t(`errors.${code}`)
  if (code === 'rate_limited') return t('errors.rate_limited_soon')
  return message || code
}
