// End-to-end test of OpenID Connect sign-in in Chromium against a real provider
// (`oidc-provider` from npm, OpenID Certified, see e2e/oidc-provider.mjs) on loopback: the
// login page shows the provider's button, the provider's own login page signs the person in,
// and the browser comes back into the app logged in; the provider's group makes an
// administrator, who sees in the users list how each person signs in. Then password login is
// turned off by the policy: the login page keeps only the button (and the administrators' way in).
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/oidc.mjs
//   SCREENSHOTS=/tmp/shots node e2e/oidc.mjs     # also saves the login page, en and zh-CN, desktop and phone
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T } from './lib.mjs'

let provider
let srv
let base
let browser
let confDir
const run = Date.now().toString(36).slice(-5)
const local = { username: `local${run}`, nickname: 'Local', password: 'oidc proof password 1' }

function missing(e) {
  return e?.code === 'ERR_MODULE_NOT_FOUND' ? new Error('oidc-provider is not installed: run `npm ci` in web/ first') : e
}

before(async () => {
  const { startProvider, CLIENT_ID, CLIENT_SECRET } = await import('./oidc-provider.mjs').catch((e) => {
    throw missing(e)
  })
  const port = await lib.freePort()
  base = `http://127.0.0.1:${port}`
  provider = await startProvider({ port: await lib.freePort(), redirectUris: [`${base}/api/auth/oidc/corp/callback`] })
  confDir = mkdtempSync(join(tmpdir(), 'chinwag-oidc-'))
  const conf = join(confDir, 'chinwag.toml')
  writeFileSync(
    conf,
    [
      `public_url = "${base}"`,
      '[[auth.oidc]]',
      'id = "corp"',
      'name = "Corp ID"',
      `issuer = "${provider.issuer}"`,
      `client_id = "${CLIENT_ID}"`,
      `client_secret = "${CLIENT_SECRET}"`,
      'scopes = ["profile", "email", "groups"]',
      'admin_claim = "groups"',
      'admin_value = "chat-admins"',
      '',
    ].join('\n'),
  )
  srv = await lib.startServer({ port, env: { CHINWAG_CONFIG: conf } })
  browser = await lib.launchBrowser()
  // The server's first account (its administrator) and a member, both with passwords.
  await lib.registerApi(base, { username: `first${run}`, nickname: 'First', password: 'oidc proof password 0' })
  await lib.registerApi(base, local)
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
    await provider?.stop()
    if (confDir) rmSync(confDir, { recursive: true, force: true })
  }
})

/** Clicks the provider's button and signs in at the provider's own page as `login`. */
async function signInWithProvider(page, login) {
  await page.goto(base + '/login')
  const button = page.getByTestId('sso-corp')
  await button.waitFor({ timeout: T })
  assert.equal((await button.textContent()).trim(), 'Sign in with Corp ID')
  await button.click()
  await page.waitForURL((u) => u.origin === provider.issuer, { timeout: T })
  await page.locator('input[name="login"]').fill(login)
  await page.locator('input[name="password"]').fill('anything')
  await page.locator('button[type="submit"]').click()
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
  assert.equal(new URL(page.url()).origin, base, 'back in the app')
}

async function me(page) {
  return page.evaluate(async () => (await fetch('/api/me')).json())
}

test('the provider button signs a new person in and back into the app', async () => {
  const { ctx, page } = await lib.newUserPage(browser, 'mei')
  await signInWithProvider(page, 'mei')
  const user = await me(page)
  assert.equal(user.username, 'mei')
  assert.equal(user.nickname, 'Mei Lin')
  assert.equal(user.is_admin, false)
  await ctx.close()
})

test('a provider group makes an administrator, who sees how each person signs in', async () => {
  const { ctx, page } = await lib.newUserPage(browser, 'boss')
  await signInWithProvider(page, 'boss')
  assert.equal((await me(page)).is_admin, true)
  await page.goto(base + '/admin/users')
  const mei = page.getByTestId('admin-user-mei').getByTestId('admin-user-signin')
  await mei.waitFor({ timeout: T })
  assert.equal(await mei.textContent(), 'Signs in with Corp ID')
  const localRow = page.getByTestId(`admin-user-${local.username}`).getByTestId('admin-user-signin')
  assert.equal(await localRow.textContent(), 'Signs in with password')
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    await page.screenshot({ path: join(SHOTS, 'oidc-admin-users-en.png') })
  }
  // The policy: password login off for members.
  await page.goto(base + '/admin/settings')
  await page.getByTestId('admin-sso-policy').waitFor({ timeout: T })
  await page.getByTestId('admin-password-login').uncheck()
  if (SHOTS) await page.getByTestId('admin-sso-policy').screenshot({ path: join(SHOTS, 'oidc-admin-policy-en.png') })
  await page.getByTestId('admin-settings-save').click()
  await lib.poll(
    async () => (await fetch(base + '/api/auth/options')).json(),
    (o) => o.password_login === false,
    'password login turned off',
  )
  await ctx.close()
})

test('with password login off, the login page offers the button and keeps the administrators their way in', async () => {
  const { ctx, page } = await lib.newUserPage(browser, 'visitor')
  await page.goto(base + '/login')
  await page.getByTestId('sso-corp').waitFor({ timeout: T })
  assert.equal(await page.getByTestId('auth-password').count(), 0, 'no password form')
  await page.getByTestId('auth-admin-login').click()
  await page.getByTestId('auth-username').fill(local.username)
  await page.getByTestId('auth-password').fill(local.password)
  await page.getByTestId('auth-submit').click()
  await page.getByTestId('auth-error').waitFor({ timeout: T })
  assert.match(await page.getByTestId('auth-error').textContent(), /Password login is turned off/)
  // An error sent back by the callback is explained.
  await page.goto(base + '/login?sso_error=bad_state')
  assert.match(await page.getByTestId('auth-error').textContent(), /expired or was opened in another browser/)
  await ctx.close()
  if (SHOTS) {
    for (const [locale, lang] of [['en-US', 'en'], ['zh-CN', 'zh-CN']]) {
      for (const [w, h, kind] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
        // Phones in dark mode, desktops light.
        const colorScheme = kind === 'phone' ? 'dark' : 'light'
        const shot = await lib.newUserPage(browser, 'shot', { viewport: { width: w, height: h }, locale, colorScheme })
        await shot.page.goto(base + '/login')
        await shot.page.getByTestId('sso-corp').waitFor({ timeout: T })
        await shot.page.screenshot({ path: join(SHOTS, `oidc-login-${lang}-${kind}.png`) })
        await shot.ctx.close()
      }
    }
  }
})
