// Single sign-on on the login page: the provider buttons' targets and the sentence for an
// error code the server's callback sends back (`/login?sso_error=CODE`).

type T = (key: string, named?: Record<string, unknown>) => string

const codes = new Set([
  'unknown_provider',
  'provider_unreachable',
  'bad_state',
  'access_denied',
  'provider_error',
  'token_failed',
  'invalid_id_token',
  'account_disabled',
  'too_many_logins',
  'rate_limited',
  'server_error',
])

/** Where a provider's button goes: the server starts the login and redirects onwards. */
export function ssoStartUrl(id: string): string {
  return `/api/auth/oidc/${encodeURIComponent(id)}/start`
}

/** The sentence for `?sso_error=CODE`, or '' when there is none. */
export function ssoErrorText(t: T, code: unknown): string {
  if (typeof code !== 'string' || !code) return ''
  if (codes.has(code)) return t(`sso.${code}`)
  return t('sso.generic', { code: code.replace(/[^a-z0-9_]/gi, '').slice(0, 40) })
}
