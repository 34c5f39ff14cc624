// A real OpenID Connect provider for the tests: `oidc-provider` (OpenID Certified) on loopback,
// with one confidential client for Chinwag and a few accounts. Its development login page
// (devInteractions) takes any login name with any password; consent is granted without asking,
// as a company's provider does for its own apps.
//
//   node e2e/oidc-provider.mjs PORT REDIRECT_URI     # run it by hand
import Provider from 'oidc-provider'

/** The accounts the provider knows; any other login name gets a plain account. */
const ACCOUNTS = {
  'mei': { preferred_username: 'mei', name: 'Mei Lin', email: 'mei@example.org', email_verified: true, groups: ['staff'] },
  'boss': { preferred_username: 'boss', name: 'The Boss', email: 'boss@example.org', email_verified: true, groups: ['staff', 'chat-admins'] },
}

export const CLIENT_ID = 'chinwag'
export const CLIENT_SECRET = 'chinwag-e2e-secret'

/**
 * Starts the provider on 127.0.0.1:`port` with `redirectUris` registered for Chinwag. Returns
 * { issuer, stop() }.
 */
export async function startProvider({ port, redirectUris }) {
  const issuer = `http://127.0.0.1:${port}`
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // Profile and e-mail claims in the ID token itself (Chinwag reads the ID token only).
    conformIdTokenClaims: false,
    cookies: { keys: ['chinwag-e2e-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      const profile = ACCOUNTS[id] ?? { preferred_username: id, name: id, email: `${id}@example.org`, email_verified: false }
      return { accountId: id, claims: async () => ({ sub: id, ...profile }) }
    },
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId })
      grant.addOIDCScope('openid email profile groups')
      await grant.save()
      return grant
    },
  })
  // Quiet: the tests read what happens in the browser and in Chinwag.
  provider.on('server_error', (_ctx, e) => console.error('[oidc-provider]', e))
  const server = await new Promise((res) => {
    const s = provider.listen(port, '127.0.0.1', () => res(s))
  })
  return { issuer, stop: () => new Promise((r) => server.close(r)) }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [port, ...uris] = process.argv.slice(2)
  const p = await startProvider({ port: Number(port), redirectUris: uris })
  console.log(`issuer ${p.issuer}`)
}
