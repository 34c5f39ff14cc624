// End-to-end test of LDAP sign-in in the browser: Debian's slapd, started here on a loopback
// port with its own config and data; a directory user signs in through the ordinary login form
// (the account is made at that first login) and Settings shows a note instead of the
// change-password form, in English and Chinese, on desktop and phone; a local account still
// gets the form. This slapd has no ppolicy: the default disabled filter
// (`(pwdAccountLockedTime=*)`) must then refuse nobody.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/ldap.mjs
//   SCREENSHOTS=/tmp/shots node e2e/ldap.mjs     # also saves the settings block, en and zh-CN
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T } from './lib.mjs'

const SUFFIX = 'dc=example,dc=org'
let slapd
let slapdDir
let srv
let base
let browser

const bin = (name) => (existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : name)

/** Resolves once something accepts connections on the port (slapd is up). */
async function listening(port) {
  const deadline = Date.now() + T
  while (Date.now() < deadline) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), r(true)))
      s.on('error', () => r(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`slapd did not listen on ${port}`)
}

async function startSlapd() {
  slapdDir = mkdtempSync(join(tmpdir(), 'chinwag-e2e-ldap-'))
  mkdirSync(join(slapdDir, 'db'))
  writeFileSync(
    join(slapdDir, 'slapd.conf'),
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${slapdDir}/slapd.pid
database mdb
maxsize 10485760
suffix "${SUFFIX}"
rootdn "cn=root,${SUFFIX}"
rootpw rootsecret
directory ${slapdDir}/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="cn=chinwag,${SUFFIX}" read by * none
`,
  )
  writeFileSync(
    join(slapdDir, 'data.ldif'),
    `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: cn=chinwag,${SUFFIX}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: chinwag
userPassword: servicepw

dn: ou=people,${SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=lin,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: lin
cn: Lin Wei
sn: Lin
mail: lin@example.org
userPassword: lin directory password
`,
  )
  execFileSync(bin('slapadd'), ['-f', 'slapd.conf', '-l', 'data.ldif'], { cwd: slapdDir, stdio: 'pipe' })
  const port = await lib.freePort()
  slapd = spawn(bin('slapd'), ['-f', 'slapd.conf', '-h', `ldap://127.0.0.1:${port}/`, '-d', '0'], { cwd: slapdDir, stdio: 'ignore' })
  await listening(port)
  return port
}

before(async () => {
  const port = await startSlapd()
  srv = await lib.startServer({
    env: {
      CHINWAG_AUTH__LDAP__URL: `ldap://127.0.0.1:${port}`,
      CHINWAG_AUTH__LDAP__STARTTLS: 'false',
      CHINWAG_AUTH__LDAP__BIND_DN: `cn=chinwag,${SUFFIX}`,
      CHINWAG_AUTH__LDAP__BIND_PASSWORD: 'servicepw',
      CHINWAG_AUTH__LDAP__USER_BASE: `ou=people,${SUFFIX}`,
    },
  })
  base = srv.base
  browser = await lib.launchBrowser()
})

after(async () => {
  try {
    await browser?.close()
    await srv?.stop()
  } finally {
    slapd?.kill('SIGTERM')
    if (slapdDir) rmSync(slapdDir, { recursive: true, force: true })
  }
})

const lin = { username: 'lin', password: 'lin directory password' }

for (const [locale, note] of [
  ['en-US', /organisation’s directory \(LDAP\)/],
  ['zh-CN', /目录服务（LDAP）/],
]) {
  // The phone runs in the dark theme (the app follows the system's by default).
  for (const [size, viewport, colorScheme] of [
    ['desktop', { width: 1280, height: 800 }, 'light'],
    ['phone', { width: 390, height: 844 }, 'dark'],
  ]) {
    test(`a directory user signs in with the login form and Settings shows the directory note (${locale}, ${size})`, async () => {
      const { ctx, page } = await lib.newUserPage(browser, `lin-${locale}-${size}`, { locale, viewport, colorScheme })
      try {
        await lib.login(base, page, lin)
        const me = await page.evaluate(async () => (await fetch('/api/me')).json())
        assert.equal(me.nickname, 'Lin Wei', 'the display name came from the directory')
        assert.equal(me.ldap, true)
        await page.goto(base + '/settings')
        const block = page.getByTestId('settings-password-directory')
        await block.waitFor({ timeout: T })
        assert.match(await block.innerText(), note)
        assert.equal(await page.getByTestId('settings-old-password').count(), 0, 'no change-password form')
        if (SHOTS) {
          mkdirSync(SHOTS, { recursive: true })
          await block.locator('xpath=..').scrollIntoViewIfNeeded()
          await page.screenshot({ path: join(SHOTS, `ldap-settings-${locale}-${size}.png`) })
        }
      } finally {
        await ctx.close()
      }
    })
  }
}

test('a wrong directory password is refused on the form; a local account keeps its form', async () => {
  const { ctx, page } = await lib.newUserPage(browser, 'local')
  try {
    await page.goto(base + '/login')
    await page.getByTestId('auth-username').fill('lin')
    await page.getByTestId('auth-password').fill('not the password')
    await page.getByTestId('auth-submit').click()
    await page.getByText('Wrong username or password.').waitFor({ timeout: T })
    const local = { username: 'localann', nickname: 'Ann', password: 'local ann password' }
    await lib.register(base, page, local)
    await page.goto(base + '/settings')
    await page.getByTestId('settings-old-password').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('settings-password-directory').count(), 0)
  } finally {
    await ctx.close()
  }
})
