// End-to-end test of the web client against the real server, in the system Chromium.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/run.mjs
//   SCREENSHOTS=/tmp/shots node e2e/run.mjs     # also saves PNGs of every screen
//
// It starts `chinwag serve` on a free port with a temporary data dir, drives two browser
// contexts (two users), and stops the server at the end. Exit status is non-zero on failure.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
const BIN = resolve(process.env.CHINWAG_BIN ?? join(here, '../../target/debug/chinwag'))
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
const SHOTS = process.env.SCREENSHOTS ? resolve(process.env.SCREENSHOTS) : null
const HEADLESS_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const T = 15_000 // default wait for anything the UI should show

let server
let serverLog = ''
let dataDir
let base
let browser
/** @type {Record<string, {ctx: import('playwright-core').BrowserContext, page: import('playwright-core').Page}>} */
const users = {}
const run = Date.now().toString(36).slice(-5)
const alice = { username: `alice${run}`, nickname: 'Alice', password: 'correct horse 1' }
const bob = { username: `bob${run}`, nickname: 'Bob 鲍勃', password: 'battery staple 2' }
let conv // the 1:1 conversation id of alice and bob

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

async function startServer() {
  if (!existsSync(BIN)) throw new Error(`no chinwag binary at ${BIN} (set CHINWAG_BIN)`)
  const port = await freePort()
  dataDir = mkdtempSync(join(tmpdir(), 'chinwag-e2e-'))
  const log = createWriteStream(join(dataDir, 'server.log'))
  server = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dataDir, 'data')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The server reads every CHINWAG_* variable as a setting and refuses unknown ones, so the
    // test's own CHINWAG_BIN must not reach it.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CHINWAG_BIN')), RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  })
  server.stdout.pipe(log)
  server.stderr.pipe(log)
  for (const stream of [server.stdout, server.stderr]) stream.on('data', (d) => (serverLog += d.toString()))
  let exited = null
  server.once('exit', (code) => (exited = code))
  base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`server exited with ${exited}; log in ${join(dataDir, 'server.log')}`)
    try {
      const r = await fetch(`${base}/healthz`)
      if (r.ok) return
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('server did not answer /healthz within 30 s')
}

async function stopServer() {
  if (!server || server.exitCode !== null) return
  const gone = new Promise((r) => server.once('exit', r))
  server.kill('SIGTERM')
  const timer = setTimeout(() => server.kill('SIGKILL'), 5000)
  await gone
  clearTimeout(timer)
}

async function newUser(name, opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', ...opts })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket/.test(m.text())) console.error(`[${name}] console:`, m.text())
  })
  users[name] = { ctx, page }
  return users[name]
}

async function register(page, u) {
  await page.goto(base + '/')
  await page.waitForURL(/\/login/)
  await page.getByTestId('auth-tab-register').click()
  await page.getByTestId('auth-username').fill(u.username)
  await page.getByTestId('auth-nickname').fill(u.nickname)
  await page.getByTestId('auth-password').fill(u.password)
  await page.getByTestId('auth-confirm').fill(u.password)
  await page.getByTestId('auth-submit').click()
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
}

async function login(page, u) {
  await page.goto(base + '/login')
  await page.getByTestId('auth-username').fill(u.username)
  await page.getByTestId('auth-password').fill(u.password)
  await page.getByTestId('auth-submit').click()
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
}

async function send(page, text) {
  const box = page.getByTestId('composer-input')
  await box.fill(text)
  await box.press('Enter')
}

/** Messages (stored, not pending) in the open chat whose text is exactly `text`. */
function storedMessages(page, text) {
  return page.getByTestId('message-list').getByTestId('message').filter({ has: page.getByTestId('message-text').getByText(text, { exact: true }) })
}

async function waitForCount(locator, n, timeout = T) {
  const deadline = Date.now() + timeout
  let c = -1
  while (Date.now() < deadline) {
    c = await locator.count()
    if (c === n) return
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.equal(c, n, `expected ${n} matching elements`)
}

before(async () => {
  await startServer()
  browser = await chromium.launch({ executablePath: CHROMIUM, args: HEADLESS_ARGS })
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await stopServer()
    if (dataDir && !process.env.KEEP_DATA) rmSync(dataDir, { recursive: true, force: true })
  }
})

test('the app shell loads with the right headers', async () => {
  const r = await fetch(base + '/')
  assert.equal(r.status, 200)
  const html = await r.text()
  assert.match(html, /<div id="app">/)
  const sw = await fetch(base + '/sw.js')
  assert.equal(sw.status, 200)
  const manifest = await fetch(base + '/manifest.webmanifest')
  assert.equal(manifest.status, 200)
  // A client route is answered with the app (SPA fallback).
  const deep = await fetch(base + '/chat/d:1:2')
  assert.match(await deep.text(), /<div id="app">/)
})

test('two users register', async () => {
  const a = await newUser('alice')
  const b = await newUser('bob')
  await register(a.page, alice)
  await register(b.page, bob)
  await a.page.getByTestId('conversation-empty').waitFor({ timeout: T })
})

test('a bad password is refused with a clear message', async () => {
  const ctx = await browser.newContext({ locale: 'en-US' })
  const page = await ctx.newPage()
  await page.goto(base + '/login')
  await page.getByTestId('auth-username').fill(alice.username)
  await page.getByTestId('auth-password').fill('wrong password')
  await page.getByTestId('auth-submit').click()
  const err = page.getByTestId('auth-error')
  await err.waitFor({ timeout: T })
  assert.match(await err.innerText(), /Wrong username or password|Too many attempts/)
  await page.getByTestId('auth-tab-register').click()
  await page.getByTestId('auth-username').fill(alice.username)
  await page.getByTestId('auth-password').fill('whatever123')
  await page.getByTestId('auth-confirm').fill('whatever123')
  await page.getByTestId('auth-submit').click()
  await page.getByText('That username is taken').waitFor({ timeout: T })
  await ctx.close()
})

test('one-time code login works when the server offers it', async (t) => {
  const opts = await (await fetch(base + '/api/auth/options')).json()
  if (!opts.otp_login) return t.skip('otp_login is off')
  const ctx = await browser.newContext({ locale: 'en-US' })
  const page = await ctx.newPage()
  await page.goto(base + '/login')
  await page.getByTestId('auth-mode-toggle').click()
  await page.getByTestId('auth-username').fill(alice.username)
  await page.getByTestId('auth-send-code').click()
  // The default `log` sender writes the code to the server log.
  const re = new RegExp(`user=${alice.username}\\b.*?code=(\\w+)`)
  let code = null
  const deadline = Date.now() + T
  while (!code && Date.now() < deadline) {
    code = re.exec(serverLog.replace(/\x1b\[[0-9;]*m/g, ''))?.[1] ?? null
    if (!code) await new Promise((r) => setTimeout(r, 100))
  }
  if (!code) return t.skip('no code in the server log (another otp sender?)')
  await page.getByTestId('auth-code').fill(code)
  await page.getByTestId('auth-submit').click()
  await Promise.race([
    page.getByTestId('conversation-list').waitFor({ timeout: T }),
    page
      .getByTestId('auth-error')
      .waitFor({ timeout: T })
      .then(async () => assert.fail(`code ${code} refused: ${await page.getByTestId('auth-error').innerText()}`)),
  ])
  await ctx.close()
})

test('alice finds bob and sends a message; bob sees it live with an unread badge', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  await a.getByTestId('new-chat').click()
  await a.getByTestId('user-search').fill(bob.username)
  await a.getByTestId(`user-result-${bob.username}`).click()
  await a.waitForURL(/\/chat\//)
  conv = decodeURIComponent(new URL(a.url()).pathname.split('/').pop())
  assert.match(conv, /^d:\d+:\d+$/)
  await a.getByTestId('chat-title').getByText(bob.nickname).waitFor({ timeout: T })
  await send(a, 'Hello Bob 👋')
  await waitForCount(storedMessages(a, 'Hello Bob 👋'), 1)

  const row = b.getByTestId(`conversation-${conv}`)
  await row.waitFor({ timeout: T })
  await row.getByTestId('unread-badge').getByText('1', { exact: true }).waitFor({ timeout: T })
  assert.match(await row.getByTestId('conversation-preview').innerText(), /Hello Bob/)
  assert.match(await row.getByTestId('conversation-name').innerText(), /Alice/)
  assert.match(await b.title(), /\(1\)/)
})

test('bob opens the chat, the badge clears, he replies and alice sees it', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  await b.getByTestId(`conversation-${conv}`).click()
  await waitForCount(storedMessages(b, 'Hello Bob 👋'), 1)
  await waitForCount(b.locator('[data-unread-divider]'), 1)
  await waitForCount(b.getByTestId(`conversation-${conv}`).getByTestId('unread-badge'), 0)
  assert.doesNotMatch(await b.title(), /\(\d+\)/)
  // Alice sees that Bob read it (read receipts), and that he is typing.
  await a.getByTestId('receipt-read').first().waitFor({ timeout: T })
  await b.getByTestId('composer-input').pressSequentially('Hi', { delay: 30 })
  await a.getByTestId('chat-view').getByText('typing…').waitFor({ timeout: T })
  await send(b, 'Hi Alice!\nHow are you?')
  await waitForCount(storedMessages(a, 'Hi Alice!\nHow are you?'), 1)
  // A lone emoji goes as an emoji message.
  await send(b, '👍')
  await waitForCount(storedMessages(a, '👍'), 1)
})

test('reactions, recall and pinning', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  // Alice reacts to Bob's message; Bob sees the reaction.
  const target = storedMessages(a, 'Hi Alice!\nHow are you?')
  await target.hover()
  await target.getByTestId('message-more').click()
  await a.getByTestId('message-menu').getByTestId('react-👍').click()
  await storedMessages(b, 'Hi Alice!\nHow are you?').locator('.reactions li').getByText('👍').waitFor({ timeout: T })
  // Alice sends and recalls a message; Bob sees only the notice.
  await send(a, 'oops, wrong chat')
  await waitForCount(storedMessages(b, 'oops, wrong chat'), 1)
  const oops = storedMessages(a, 'oops, wrong chat')
  await oops.getByTestId('message-text').click({ button: 'right' })
  await a.getByTestId('message-recall').click()
  await waitForCount(storedMessages(b, 'oops, wrong chat'), 0)
  await b.getByTestId('system-message').getByText(/recalled a message/).first().waitFor({ timeout: T })
  // Bob replies to Alice's first message; Alice sees the quote.
  await storedMessages(b, 'Hello Bob 👋').getByTestId('message-text').click({ button: 'right' })
  await b.getByTestId('message-reply').click()
  await b.getByTestId('composer-mode').waitFor()
  await send(b, 'quoting you')
  await storedMessages(a, 'quoting you').getByTestId('message-quote').getByText('Hello Bob 👋').waitFor({ timeout: T })
  // Alice fixes a typo; Bob sees the edited text, marked as edited.
  await send(a, 'typo mesage')
  await waitForCount(storedMessages(b, 'typo mesage'), 1)
  await storedMessages(a, 'typo mesage').getByTestId('message-text').click({ button: 'right' })
  await a.getByTestId('message-edit').click()
  await a.getByTestId('composer-input').fill('typo message')
  await a.getByTestId('composer-input').press('Enter')
  await waitForCount(storedMessages(b, 'typo message'), 1)
  await storedMessages(b, 'typo message').getByText('edited').waitFor({ timeout: T })
  await waitForCount(storedMessages(b, 'typo mesage'), 0)
  // Bob pins the chat.
  await b.getByTestId('chat-menu').click()
  await b.getByTestId('chat-pin').click()
  await b.getByTestId(`conversation-${conv}`).and(b.locator('.pinned')).waitFor({ timeout: T })
})

test('a second tab of the same user stays in sync', async () => {
  const { ctx, page: a } = users.alice
  const { page: b } = users.bob
  const a2 = await ctx.newPage()
  await a2.goto(`${base}/chat/${conv}`)
  await waitForCount(storedMessages(a2, 'Hello Bob 👋'), 1)
  await send(a, 'sent from tab one')
  await waitForCount(storedMessages(a2, 'sent from tab one'), 1)
  await send(b, 'seen by both tabs')
  await waitForCount(storedMessages(a, 'seen by both tabs'), 1)
  await waitForCount(storedMessages(a2, 'seen by both tabs'), 1)
  await a2.close()
})

test('reading on one device clears the unread badge on another (server read positions)', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  const ctx2 = await browser.newContext({ locale: 'en-US' })
  const b2 = await ctx2.newPage()
  await login(b2, bob)
  await b.goto(`${base}/`) // Bob's first device is on the list, not in the chat
  await b.getByTestId('conversation-list').waitFor()
  await send(a, 'read me on one device')
  const badge2 = b2.getByTestId(`conversation-${conv}`).getByTestId('unread-badge')
  await badge2.getByText('1', { exact: true }).waitFor({ timeout: T })
  await b.getByTestId(`conversation-${conv}`).click()
  await waitForCount(storedMessages(b, 'read me on one device'), 1)
  await waitForCount(badge2, 0)
  await ctx2.close()
})

test('contact requests: alice adds bob, bob accepts, both see each other', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  await a.goto(`${base}/`)
  await a.getByTestId('new-chat').click()
  await a.getByTestId('user-search').fill(bob.username)
  await a.getByTestId(`add-contact-${bob.username}`).click()
  await a.getByTestId('new-chat-dialog').getByText('Requested').waitFor({ timeout: T })
  await a.keyboard.press('Escape')
  await b.getByTestId('nav-requests').getByText('1', { exact: true }).waitFor({ timeout: T })
  await b.getByTestId('nav-contacts').click()
  await b.getByTestId(`request-${alice.username}`).getByTestId('request-accept').click()
  await b.getByTestId(`contact-${alice.username}`).waitFor({ timeout: T })
  await waitForCount(b.getByTestId('nav-requests'), 0)
  await a.getByTestId('nav-contacts').click()
  await a.getByTestId(`contact-${bob.username}`).waitFor({ timeout: T })
  // Accepting writes a system message into the chat.
  await a.getByTestId(`contact-${bob.username}`).getByRole('button').first().click()
  await a.getByTestId('system-message').getByText('You are now contacts').waitFor({ timeout: T })
  // The tests below expect both in the chat.
  await b.goto(`${base}/chat/${conv}`)
  await b.getByTestId('chat-view').waitFor()
})

test('user text is rendered as text, never as HTML', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
  await send(a, evil)
  await waitForCount(storedMessages(b, evil), 1)
  assert.equal(await b.evaluate(() => window.__pwned), undefined)
  assert.equal(await b.getByTestId('message-list').locator('img').count(), 0)
})

test('a message typed offline shows as sending and arrives exactly once after reconnecting', async () => {
  const { ctx, page: a } = users.alice
  const { page: b } = users.bob
  await ctx.setOffline(true)
  await a.getByTestId('offline-banner').waitFor({ timeout: T }).catch(() => {})
  const text = `sent while offline ${run}`
  await send(a, text)
  const pending = a.getByTestId('message-sending').filter({ hasText: text })
  await pending.waitFor({ timeout: T })
  await a.waitForTimeout(1500)
  assert.equal(await b.getByText(text, { exact: true }).count(), 0, 'bob must not get it while alice is offline')
  // It survives a reload while still offline? The outbox is in localStorage; checked after.
  await ctx.setOffline(false)
  await waitForCount(storedMessages(a, text), 1, 30_000)
  await waitForCount(a.getByTestId('message-sending'), 0)
  await waitForCount(storedMessages(b, text), 1, 30_000)
  await b.waitForTimeout(1000)
  await waitForCount(storedMessages(b, text), 1)
})

test('after a reload the history is there, in order, once', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  for (const p of [a, b]) {
    await p.reload()
    await p.getByTestId('chat-view').waitFor({ timeout: T })
    await waitForCount(storedMessages(p, 'Hello Bob 👋'), 1)
    await waitForCount(storedMessages(p, `sent while offline ${run}`), 1)
  }
  const texts = await b.getByTestId('message-list').getByTestId('message-text').allInnerTexts()
  const iHello = texts.indexOf('Hello Bob 👋')
  const iOffline = texts.indexOf(`sent while offline ${run}`)
  assert.ok(iHello >= 0 && iOffline > iHello, `history order: ${JSON.stringify(texts)}`)
})

test('the app opens offline from the service worker cache and sends what was typed once back online', async () => {
  const { ctx, page: b } = users.bob
  const { page: a } = users.alice
  const ready = await b.evaluate(async () => {
    if (!('serviceWorker' in navigator)) return false
    await navigator.serviceWorker.ready
    return true
  })
  assert.ok(ready, 'service worker registered')
  // The page must be controlled before an offline reload can be served from the cache.
  if (!(await b.evaluate(() => !!navigator.serviceWorker.controller))) await b.reload()
  await ctx.setOffline(true)
  await b.reload()
  await b.getByTestId('chat-view').waitFor({ timeout: T })
  await b.getByTestId(`conversation-${conv}`).waitFor({ timeout: T })
  const text = `typed in an offline app ${run}`
  await send(b, text)
  await b.getByTestId('message-sending').filter({ hasText: text }).waitFor({ timeout: T })
  // Even a reload while offline keeps it in the outbox.
  await b.reload()
  await b.getByTestId('message-sending').filter({ hasText: text }).waitFor({ timeout: T })
  await ctx.setOffline(false)
  await waitForCount(storedMessages(b, text), 1, 30_000)
  await waitForCount(storedMessages(a, text), 1, 30_000)
})

test('profile edits are saved', async () => {
  const { page: a } = users.alice
  await a.getByTestId('nav-settings').click()
  await a.getByTestId('settings-signature').fill('Tea, not coffee.')
  await a.getByTestId('settings-save-profile').click()
  await a.getByText('Saved').waitFor({ timeout: T })
  const me = await a.evaluate(async () => (await fetch('/api/me')).json())
  assert.equal(me.signature, 'Tea, not coffee.')
  // Bob sees it on Alice's profile card.
  const { page: b } = users.bob
  await b.goto(`${base}/chat/${conv}`)
  await b.getByTestId('chat-profile').click()
  await b.getByTestId('profile-card').getByText('Tea, not coffee.').waitFor({ timeout: T })
  await b.keyboard.press('Escape')
  await waitForCount(b.getByTestId('profile-card'), 0)
})

test('screenshots', { skip: !SHOTS }, async () => {
  mkdirSync(SHOTS, { recursive: true })
  // A few more messages so the chat screenshot shows grouping and both sides.
  const { page: a } = users.alice
  const { page: b } = users.bob
  await a.goto(`${base}/chat/${conv}`)
  await send(a, 'Are we still on for dinner tonight? 🍜')
  await waitForCount(storedMessages(b, 'Are we still on for dinner tonight? 🍜'), 1)
  await send(b, 'Yes! 7 pm at the noodle place. I booked a table: https://example.com/booking')
  await waitForCount(storedMessages(a, 'Yes! 7 pm at the noodle place. I booked a table: https://example.com/booking'), 1)
  // Alice's first page leaves the chat, or it would read (and so clear) what the screenshots show as unread.
  await a.goto(`${base}/settings`)

  const variants = [
    { tag: 'en-desktop', locale: 'en-US', viewport: { width: 1280, height: 800 } },
    { tag: 'en-phone', locale: 'en-US', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    { tag: 'zh-desktop', locale: 'zh-CN', viewport: { width: 1280, height: 800 } },
    { tag: 'zh-phone', locale: 'zh-CN', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    { tag: 'en-desktop-dark', locale: 'en-US', viewport: { width: 1280, height: 800 }, colorScheme: 'dark' },
  ]
  for (const v of variants) {
    const { tag, ...opts } = v
    const ctx = await browser.newContext(opts)
    const page = await ctx.newPage()
    await page.goto(base + '/login')
    await page.getByTestId('auth-submit').waitFor()
    await page.waitForTimeout(200)
    await page.screenshot({ path: join(SHOTS, `${tag}-1-login.png`) })
    await login(page, alice)
    // Give bob something unread for alice to see in the list.
    await send(b, `Unread for the list screenshot (${tag})`)
    await page.getByTestId(`conversation-${conv}`).getByTestId('unread-badge').waitFor({ timeout: T })
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(SHOTS, `${tag}-2-list.png`) })
    await page.getByTestId(`conversation-${conv}`).click()
    await page.getByTestId('chat-view').waitFor()
    await waitForCount(storedMessages(page, `Unread for the list screenshot (${tag})`), 1)
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(SHOTS, `${tag}-3-chat.png`) })
    await storedMessages(page, `Unread for the list screenshot (${tag})`).getByTestId('message-text').click({ button: 'right' })
    await page.getByTestId('message-menu').waitFor()
    await page.screenshot({ path: join(SHOTS, `${tag}-3b-menu.png`) })
    await page.keyboard.press('Escape')
    await page.getByTestId('emoji-toggle').click()
    await page.getByTestId('emoji-picker').waitFor()
    await page.screenshot({ path: join(SHOTS, `${tag}-4-emoji.png`) })
    await page.keyboard.press('Escape')
    await page.goto(base + '/settings')
    await page.getByTestId('settings-view').waitFor()
    await page.waitForTimeout(200)
    await page.screenshot({ path: join(SHOTS, `${tag}-5-settings.png`) })
    await page.goto(base + '/contacts')
    await page.getByTestId('contacts-view').waitFor()
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(SHOTS, `${tag}-6-contacts.png`) })
    await ctx.close()
  }
  console.log(`screenshots in ${SHOTS}`)
})

test('older history loads page by page when scrolling up, without duplicates', async () => {
  const { page: a } = users.alice
  const { page: b } = users.bob
  const n = 130
  // Bob sends a burst straight over a socket of his own.
  await b.evaluate(
    async ({ conv, n }) => {
      const ws = new WebSocket(`ws://${location.host}/api/ws`)
      await new Promise((r, j) => ((ws.onopen = r), (ws.onerror = j)))
      let acks = 0
      const done = new Promise((r, j) => {
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data)
          if (f.type === 'ack' && ++acks === n) r()
          if (f.type === 'error') j(new Error(`${f.code}: ${f.message}`))
        }
      })
      for (let i = 1; i <= n; i++) {
        ws.send(JSON.stringify({ type: 'send', client_id: `bulk-${i}-${Date.now()}`, conv, content: { kind: 'text', text: `bulk ${i}` } }))
      }
      await done
      ws.close()
    },
    { conv, n },
  )
  await a.goto(`${base}/chat/${conv}`)
  await waitForCount(storedMessages(a, `bulk ${n}`), 1)
  const list = a.getByTestId('message-list')
  const deadline = Date.now() + 30_000
  const beginning = a.getByText('This is the beginning of your chat.')
  while (!(await beginning.isVisible()) && Date.now() < deadline) {
    await list.evaluate((el) => el.scrollTo({ top: 0 }))
    await a.waitForTimeout(250)
  }
  await waitForCount(storedMessages(a, 'bulk 1'), 1)
  await beginning.waitFor({ timeout: T })
  // Search finds an old message, and opening the hit loads history back to it.
  await a.reload()
  await a.getByTestId('chat-view').waitFor()
  await waitForCount(storedMessages(a, 'Hello Bob 👋'), 0)
  await a.getByTestId('conversation-filter').fill('hello')
  await a.getByTestId('search-hit').first().click()
  await waitForCount(storedMessages(a, 'Hello Bob 👋'), 1, 30_000)
  const texts = (await list.getByTestId('message-text').allInnerTexts()).filter((t) => t.startsWith('bulk '))
  assert.deepEqual(
    texts,
    Array.from({ length: n }, (_, i) => `bulk ${i + 1}`),
  )
})

test('changing the password logs out the other sessions (close code 4001 goes to login)', async () => {
  const { page: a } = users.alice
  const other = await browser.newContext({ locale: 'en-US' })
  const op = await other.newPage()
  await login(op, alice)
  await a.goto(`${base}/settings`)
  const next = 'a brand new secret 3'
  await a.getByTestId('settings-old-password').fill(alice.password)
  await a.getByTestId('settings-new-password').fill(next)
  await a.getByTestId('settings-confirm-password').fill(next)
  await a.getByTestId('settings-change-password').click()
  await a.getByText('Password changed').waitFor({ timeout: T })
  alice.password = next
  await op.waitForURL(/\/login/, { timeout: T })
  // This session is still fine.
  await a.getByTestId('nav-chats').click()
  await a.getByTestId(`conversation-${conv}`).waitFor({ timeout: T })
  await other.close()
})
