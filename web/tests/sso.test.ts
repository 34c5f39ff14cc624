import { describe, expect, it } from 'vitest'
import { ssoErrorText, ssoStartUrl } from '@/lib/sso'

const t = (key: string, named?: Record<string, unknown>) => (named ? `${key}:${JSON.stringify(named)}` : key)

describe('single sign-on on the login page', () => {
  it('links each provider to its start route, escaped', () => {
    expect(ssoStartUrl('authentik')).toBe('/api/auth/oidc/authentik/start')
    expect(ssoStartUrl('a/b?c')).toBe('/api/auth/oidc/a%2Fb%3Fc/start')
  })

  it('explains known error codes and shows unknown ones cleaned', () => {
    expect(ssoErrorText(t, 'bad_state')).toBe('sso.bad_state')
    expect(ssoErrorText(t, '<script>x')).toBe('sso.generic:{"code":"scriptx"}')
    expect(ssoErrorText(t, undefined)).toBe('')
    expect(ssoErrorText(t, ['bad_state'])).toBe('')
  })
})
