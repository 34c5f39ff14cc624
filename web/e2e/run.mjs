// End-to-end test of the web client against the real server, in the system Chromium.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/run.mjs
//   SCREENSHOTS=/tmp/shots node e2e/run.mjs     # also saves PNGs of every screen
//
// It starts `chinwag serve` on a free port with a temporary data dir, drives several browser
// contexts (one per user), and stops the server at the end. Exit status is non-zero on failure.
//
// Order. Scenarios that need no earlier state make their own users through the API
// (`lib.registerApi`, `lib.sessionPage`): the bad password, the one-time code, older history
// and the password change. The others follow one story and say what they take from it with
// `the(...)`, which fails at once, naming the scenario that should have made it:
//   alice, bob (two users register; alice is the first user, so the administrator)
//   -> conv, their 1:1 chat (alice finds bob) -> contacts (contact requests)
//   -> carol, groupConv (groups: alice creates a group) -> the group scenarios, media, admin,
//   calls and screenshots, which use these users, their chat and their group.
// Waits are for events (a locator, a response, a WebSocket frame, a DOM condition polled with a
// deadline), never for time.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, waitForCount, storedMessages, send } from './lib.mjs'

let srv // the running server: { base, dataDir, log(), stop() }
let base
let browser
/** @type {Record<string, {ctx: import('playwright-core').BrowserContext, page: import('playwright-core').Page}>} */
const users = {}
const run = Date.now().toString(36).slice(-5)
const alice = { username: `alice${run}`, nickname: 'Alice', password: 'correct horse 1' }
const bob = { username: `bob${run}`, nickname: 'Bob 鲍勃', password: 'battery staple 2' }
let conv // the 1:1 conversation id of alice and bob

const MADE_BY = {
  alice: 'two users register',
  bob: 'two users register',
  conv: 'alice finds bob and sends a message; bob sees it live with an unread badge',
  carol: 'groups: alice creates a group with bob and carol, they chat, see unread, @mentions, read by, and a recall',
  groupConv: 'groups: alice creates a group with bob and carol, they chat, see unread, @mentions, read by, and a recall',
}
/** What this scenario takes from the ones before: a user's browser, `conv` or `groupConv`. */
function the(name) {
  const value = name === 'conv' ? conv : name === 'groupConv' ? groupConv : users[name]
  return lib.need(value, name, MADE_BY[name])
}

async function newUser(name, opts = {}) {
  users[name] = await lib.newUserPage(browser, name, opts)
  return users[name]
}
const register = (page, u) => lib.register(base, page, u)
const login = (page, u) => lib.login(base, page, u)

before(async () => {
  // Calls are forced through the server's own TURN relay, on loopback (see the calls tests).
  srv = await lib.startServer({ env: await lib.loopbackTurnEnv({ relayOnly: true }) })
  base = srv.base
  browser = await lib.launchBrowser()
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
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
  // A user of its own, made through the API: this scenario needs nothing from the ones before.
  const erin = { username: `erin${run}`, nickname: 'Erin', password: 'erin password 1' }
  await lib.registerApi(base, erin)
  const ctx = await browser.newContext({ locale: 'en-US' })
  const page = await ctx.newPage()
  await page.goto(base + '/login')
  await page.getByTestId('auth-username').fill(erin.username)
  await page.getByTestId('auth-password').fill('wrong password')
  await page.getByTestId('auth-submit').click()
  const err = page.getByTestId('auth-error')
  await err.waitFor({ timeout: T })
  assert.match(await err.innerText(), /Wrong username or password|Too many attempts/)
  await page.getByTestId('auth-tab-register').click()
  await page.getByTestId('auth-username').fill(erin.username)
  await page.getByTestId('auth-password').fill('whatever123')
  await page.getByTestId('auth-confirm').fill('whatever123')
  await page.getByTestId('auth-submit').click()
  await page.getByText('That username is taken').waitFor({ timeout: T })
  await ctx.close()
})

test('one-time code login works when the server offers it', async (t) => {
  const opts = await (await fetch(base + '/api/auth/options')).json()
  if (!opts.otp_login) return t.skip('otp_login is off')
  const finn = { username: `finn${run}`, nickname: 'Finn', password: 'finn password 1' }
  await lib.registerApi(base, finn)
  const ctx = await browser.newContext({ locale: 'en-US' })
  const page = await ctx.newPage()
  await page.goto(base + '/login')
  await page.getByTestId('auth-mode-toggle').click()
  await page.getByTestId('auth-username').fill(finn.username)
  await page.getByTestId('auth-send-code').click()
  // The default `log` sender writes the code to the server log.
  const re = new RegExp(`user=${finn.username}\\b.*?code=(\\w+)`)
  let code = null
  const deadline = Date.now() + T
  while (!code && Date.now() < deadline) {
    code = re.exec(srv.log().replace(/\x1b\[[0-9;]*m/g, ''))?.[1] ?? null
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
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { ctx, page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
  await send(a, evil)
  await waitForCount(storedMessages(b, evil), 1)
  assert.equal(await b.evaluate(() => window.__pwned), undefined)
  assert.equal(await b.getByTestId('message-list').locator('img').count(), 0)
})

test('a message typed offline shows as sending and arrives exactly once after reconnecting', async () => {
  the('conv')
  const { ctx, page: a } = the('alice')
  const { page: b } = the('bob')
  await ctx.setOffline(true)
  // On the browser's `offline` event the client drops its socket and shows the banner: from here
  // on a send can only wait in the outbox.
  await a.getByTestId('offline-banner').waitFor({ timeout: T })
  const text = `sent while offline ${run}`
  await send(a, text)
  const pending = a.getByTestId('message-sending').filter({ hasText: text })
  await pending.waitFor({ timeout: T })
  // The server has not got it (asked by Bob, who is online).
  const history = await b.evaluate(async (conv) => (await fetch(`/api/conversations/${conv}/messages`)).json(), conv)
  assert.ok(!history.messages.some((m) => m.content.text === text), 'the server must not have it while alice is offline')
  assert.equal(await b.getByText(text, { exact: true }).count(), 0, 'bob must not get it while alice is offline')
  // Back online, the client opens a new socket and sends the outbox entry on it.
  const resent = lib.wsFrame(a, 'framesent', (p) => p.includes(text), 'with the outbox entry', 30_000)
  await ctx.setOffline(false)
  await resent
  await waitForCount(storedMessages(a, text), 1, 30_000)
  await waitForCount(a.getByTestId('message-sending'), 0)
  await waitForCount(storedMessages(b, text), 1, 30_000)
  // Exactly once: a message Alice sends after it reaches Bob after it in the same conversation,
  // so a second copy, had there been one, would be on Bob's screen by the time this one is.
  const after = `after the offline one ${run}`
  await send(a, after)
  await waitForCount(storedMessages(b, after), 1)
  await waitForCount(storedMessages(b, text), 1)
})

test('after a reload the history is there, in order, once', async () => {
  const { page: a } = the('alice')
  const { page: b } = the('bob')
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
  the('conv')
  const { ctx, page: b } = the('bob')
  const { page: a } = the('alice')
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
  the('conv')
  const { page: a } = the('alice')
  await a.getByTestId('nav-settings').click()
  await a.getByTestId('settings-signature').fill('Tea, not coffee.')
  await a.getByTestId('settings-save-profile').click()
  // The form's own status line ("Saved" is also the favourites' place in the navigation).
  await a.getByTestId('settings-view').getByRole('status').getByText('Saved').waitFor({ timeout: T })
  const me = await a.evaluate(async () => (await fetch('/api/me')).json())
  assert.equal(me.signature, 'Tea, not coffee.')
  // Bob sees it on Alice's profile card.
  const { page: b } = the('bob')
  await b.goto(`${base}/chat/${conv}`)
  await b.getByTestId('chat-profile').click()
  await b.getByTestId('profile-card').getByText('Tea, not coffee.').waitFor({ timeout: T })
  await b.keyboard.press('Escape')
  await waitForCount(b.getByTestId('profile-card'), 0)
})

const carol = { username: `carol${run}`, nickname: 'Carol', password: 'third user 345' }
let groupConv // the group conversation of alice, bob and carol

/** Makes `from` and `to` contacts through the UI (request, then accept). */
async function befriend(from, fromUser, to, toUser) {
  await from.goto(`${base}/`)
  await from.getByTestId('new-chat').click()
  await from.getByTestId('user-search').fill(toUser.username)
  await from.getByTestId(`add-contact-${toUser.username}`).click()
  await from.getByTestId('new-chat-dialog').getByText('Requested').waitFor({ timeout: T })
  await from.keyboard.press('Escape')
  await to.getByTestId('nav-contacts').click()
  await to.getByTestId(`request-${fromUser.username}`).getByTestId('request-accept').click()
  await to.getByTestId(`contact-${fromUser.username}`).waitFor({ timeout: T })
}

test('groups: alice creates a group with bob and carol, they chat, see unread, @mentions, read by, and a recall', async () => {
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  const { page: c } = await newUser('carol')
  await register(c, carol)
  await befriend(a, alice, c, carol)
  // Alice creates the group with both of her contacts.
  await a.goto(`${base}/`)
  await a.getByTestId('new-chat').click()
  await a.getByTestId('new-group').click()
  await a.getByTestId('group-name').fill('Weekend trip ✈️')
  await a.getByTestId(`pick-${bob.username}`).click()
  await a.getByTestId(`pick-${carol.username}`).click()
  await a.getByTestId('group-create').click()
  await a.waitForURL(/\/chat\/g:/)
  groupConv = decodeURIComponent(new URL(a.url()).pathname.split('/').pop())
  await a.getByTestId('system-message').getByText('You created the group').waitFor({ timeout: T })
  // Bob and Carol have it in their lists at once.
  await b.goto(`${base}/`)
  await b.getByTestId(`conversation-${groupConv}`).waitFor({ timeout: T })
  await c.goto(`${base}/`)
  await c.getByTestId(`conversation-${groupConv}`).waitFor({ timeout: T })
  // Alice writes; Bob answers and mentions Carol with the @ completion.
  await send(a, 'Plans for Saturday?')
  await b.getByTestId(`conversation-${groupConv}`).click()
  await waitForCount(storedMessages(b, 'Plans for Saturday?'), 1)
  const box = b.getByTestId('composer-input')
  await box.pressSequentially('@Car')
  await b.getByTestId('mention-list').waitFor({ timeout: T })
  await box.press('Enter')
  await box.pressSequentially('are you in?')
  await box.press('Enter')
  await waitForCount(storedMessages(b, '@Carol are you in?'), 1)
  // Sender names on bubbles in the group.
  await storedMessages(b, 'Plans for Saturday?').getByText('Alice', { exact: true }).waitFor({ timeout: T })
  // Carol, on her list, sees the unread count and the mention mark.
  const row = c.getByTestId(`conversation-${groupConv}`)
  await row.getByTestId('unread-badge').waitFor({ timeout: T })
  assert.ok(Number(await row.getByTestId('unread-badge').innerText()) >= 2)
  await row.getByTestId('mention-mark').waitFor({ timeout: T })
  // Bob's message is read by Alice (who has the chat open) but not yet by Carol ...
  const readBy = storedMessages(b, '@Carol are you in?').getByTestId('read-by')
  await readBy.getByText('Read by 1').waitFor({ timeout: T })
  // ... until Carol opens the chat.
  await row.click()
  await waitForCount(storedMessages(c, '@Carol are you in?'), 1)
  await waitForCount(row.getByTestId('mention-mark'), 0)
  await readBy.getByText('Read by all').waitFor({ timeout: T })
  await readBy.click()
  await b.getByTestId('readers-read').getByText('Carol').waitFor({ timeout: T })
  await b.keyboard.press('Escape')
  await send(c, 'Count me in 🙋')
  await waitForCount(storedMessages(a, 'Count me in 🙋'), 1)
  await waitForCount(storedMessages(b, 'Count me in 🙋'), 1)
  // Alice, the owner, recalls Bob's message: everyone sees the tombstone instead.
  await storedMessages(a, '@Carol are you in?').getByTestId('message-text').click({ button: 'right' })
  await a.getByTestId('message-recall').click()
  for (const p of [a, b, c]) {
    await waitForCount(storedMessages(p, '@Carol are you in?'), 0)
    await p.getByTestId('system-message').getByText(/recalled a message/).first().waitFor({ timeout: T })
  }
})

test('groups: the info panel shows members and roles; the owner appoints an admin and edits the notice', async () => {
  const { page: a } = the('alice')
  const { page: c } = the('carol')
  await a.getByTestId('group-info').click()
  const panel = a.getByTestId('group-panel')
  await panel.getByTestId('my-role').getByText('Owner').waitFor({ timeout: T })
  await panel.getByTestId(`member-${bob.username}`).waitFor({ timeout: T })
  await panel.getByTestId(`member-${carol.username}`).waitFor({ timeout: T })
  await panel.getByTestId(`member-${bob.username}`).getByTestId('member-actions').click()
  await a.getByTestId('member-make-admin').click()
  await panel.getByTestId(`member-${bob.username}`).getByText('Admin').waitFor({ timeout: T })
  await panel.getByTestId('group-notice-edit').click()
  await panel.getByTestId('group-notice-input').fill('Meet at 8 at the station.')
  await panel.getByTestId('group-notice-save').click()
  await panel.getByTestId('group-notice-text').getByText('Meet at 8 at the station.').waitFor({ timeout: T })
  // The changes are recorded as system lines in everyone's chat.
  await c.getByTestId('system-message').getByText('Alice made Bob 鲍勃 an admin').waitFor({ timeout: T })
  await c.getByTestId('system-message').getByText('Alice changed the group notice').waitFor({ timeout: T })
  await a.getByTestId('group-panel-close').click()
  await waitForCount(a.getByTestId('group-panel'), 0)
})

test('groups: carol finds an approval group by name and applies; bob sees the pending badge and approves', async () => {
  const { page: b } = the('bob')
  const { page: c } = the('carol')
  const name = `Book club ${run}`
  await b.goto(`${base}/`)
  await b.getByTestId('new-chat').click()
  await b.getByTestId('new-group').click()
  await b.getByTestId('group-name').fill(name)
  await b.getByTestId('group-mode-approval').check()
  await b.getByTestId('group-create').click()
  await b.waitForURL(/\/chat\/g:/)
  const gconv = decodeURIComponent(new URL(b.url()).pathname.split('/').pop())
  const gid = gconv.slice(2)
  await c.goto(`${base}/`)
  await c.getByTestId('new-chat').click()
  await c.getByTestId('new-chat-tab-groups').click()
  await c.getByTestId('user-search').fill('Book club')
  await c.getByTestId(`group-join-${gid}`).click()
  await c.getByTestId(`group-result-${gid}`).getByText('Request sent').waitFor({ timeout: T })
  await c.keyboard.press('Escape')
  // Bob (the owner) sees one pending request on the group's info button and approves it.
  await b.reload()
  await b.getByTestId('group-pending-badge').getByText('1', { exact: true }).waitFor({ timeout: T })
  await b.getByTestId('group-info').click()
  await b.getByTestId(`application-${carol.username}`).getByTestId('application-approve').click()
  await b.getByTestId('group-panel').getByTestId(`member-${carol.username}`).waitFor({ timeout: T })
  await waitForCount(b.getByTestId('group-pending-badge'), 0)
  await b.getByTestId('group-panel-close').click()
  // Carol now has the group, and can write in it.
  await c.getByTestId(`conversation-${gconv}`).click()
  await send(c, 'Thanks for having me')
  await waitForCount(storedMessages(b, 'Thanks for having me'), 1)
})

test('conversation actions: mute, pin and hide from the list menu; another tab follows; a new message brings it back', async () => {
  the('conv')
  the('groupConv')
  const { ctx, page: a } = the('alice')
  const { page: b } = the('bob')
  await a.goto(`${base}/`)
  const a2 = await ctx.newPage()
  await a2.goto(`${base}/`)
  const row = (p) => p.getByTestId(`conversation-${groupConv}`)
  await row(a).waitFor({ timeout: T })
  // Right click opens the row's menu.
  await row(a).click({ button: 'right' })
  await a.getByTestId('row-mute').click()
  await row(a).getByTestId('muted-icon').waitFor({ timeout: T })
  await row(a2).getByTestId('muted-icon').waitFor({ timeout: T })
  // So does its "⋯" button.
  await row(a).hover()
  await a.getByTestId(`row-more-${groupConv}`).click()
  await a.getByTestId('row-pin').click()
  await a.locator(`.pinned[data-conv="${groupConv}"]`).waitFor({ timeout: T })
  await a2.locator(`.pinned[data-conv="${groupConv}"]`).waitFor({ timeout: T })
  // A muted chat counts no unread in the title.
  const titleBefore = await a.title()
  await b.goto(`${base}/chat/${groupConv}`)
  await send(b, 'muted ping')
  await row(a).getByTestId('unread-badge').waitFor({ timeout: T })
  assert.equal(await a.title(), titleBefore)
  // Hiding removes it from the list on every tab, until the next message.
  await row(a).click({ button: 'right' })
  await a.getByTestId('row-hide').click()
  await waitForCount(row(a), 0)
  await waitForCount(row(a2), 0)
  // Still hidden after a reload, once the list and the socket's sync have both answered.
  await lib.reloadLoaded(a)
  await waitForCount(row(a), 0)
  await send(b, 'back again')
  await row(a).waitFor({ timeout: T })
  await row(a2).waitFor({ timeout: T })
  // Undo for the tests that follow.
  for (const id of ['row-mute', 'row-pin']) {
    await row(a).click({ button: 'right' })
    await a.getByTestId(id).click()
  }
  await waitForCount(row(a).getByTestId('muted-icon'), 0)
  await a2.close()
})

/** A PNG drawn on a canvas in `page` (a sunset over hills), as a Buffer. */
async function makePhoto(page, w = 640, h = 420) {
  const data = await page.evaluate(
    ({ w, h }) => {
      const c = document.createElement('canvas')
      c.width = w
      c.height = h
      const g = c.getContext('2d')
      const sky = g.createLinearGradient(0, 0, 0, h)
      sky.addColorStop(0, '#2b5876')
      sky.addColorStop(0.55, '#f7b267')
      sky.addColorStop(1, '#f4845f')
      g.fillStyle = sky
      g.fillRect(0, 0, w, h)
      g.fillStyle = '#ffe29a'
      g.beginPath()
      g.arc(w * 0.62, h * 0.58, h * 0.13, 0, Math.PI * 2)
      g.fill()
      for (const [color, y] of [
        ['#3d5a40', 0.72],
        ['#2d4431', 0.82],
      ]) {
        g.fillStyle = color
        g.beginPath()
        g.moveTo(0, h)
        for (let x = 0; x <= w; x += 8) g.lineTo(x, h * y + Math.sin(x / 60 + y * 10) * h * 0.05)
        g.lineTo(w, h)
        g.fill()
      }
      return c.toDataURL('image/png').split(',')[1]
    },
    { w, h },
  )
  return Buffer.from(data, 'base64')
}

/** A small round face on a transparent background, for stickers and avatars. */
async function makeFace(page, color = '#ffcc4d', size = 160) {
  const data = await page.evaluate(
    ({ color, size }) => {
      const c = document.createElement('canvas')
      c.width = c.height = size
      const g = c.getContext('2d')
      const r = size / 2
      g.fillStyle = color
      g.beginPath()
      g.arc(r, r, r * 0.9, 0, Math.PI * 2)
      g.fill()
      g.fillStyle = '#3b2a1a'
      for (const x of [0.65, 1.35]) {
        g.beginPath()
        g.arc(r * x, r * 0.8, r * 0.11, 0, Math.PI * 2)
        g.fill()
      }
      g.strokeStyle = '#3b2a1a'
      g.lineWidth = r * 0.09
      g.beginPath()
      g.arc(r, r * 1.05, r * 0.45, 0.15 * Math.PI, 0.85 * Math.PI)
      g.stroke()
      return c.toDataURL('image/png').split(',')[1]
    },
    { color, size },
  )
  return Buffer.from(data, 'base64')
}

test('media: a photo arrives as a thumbnail and opens full size; files, drops, stickers, avatars and size errors', async () => {
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  await a.goto(`${base}/chat/${conv}`)
  await b.goto(`${base}/chat/${conv}`)
  await a.getByTestId('chat-view').waitFor()
  const photo = await makePhoto(a)
  await a.getByTestId('attach-input').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: photo })
  // Picked, pasted and dropped files are shown for a last look (with a caption field) first.
  await a.getByTestId('attach-send').click()
  const img = b.getByTestId('message').getByTestId('message-image').last()
  await img.waitFor({ timeout: T })
  await b.waitForFunction(
    () => {
      const el = [...document.querySelectorAll('[data-testid="message-image"] img')].at(-1)
      return el && el.complete && el.naturalWidth > 0 && el.getAttribute('src').endsWith('/thumb')
    },
    null,
    { timeout: T },
  )
  await img.click()
  await b.getByTestId('lightbox').waitFor({ timeout: T })
  await b.waitForFunction(() => {
    const el = document.querySelector('[data-testid="lightbox"] img')
    return el && el.complete && el.naturalWidth === 640
  })
  await b.keyboard.press('Escape')
  await waitForCount(b.getByTestId('lightbox'), 0)
  // Any other file is a file message with its name, size and a download link.
  await a.getByTestId('attach-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('packing list\n'.repeat(100)) })
  await a.getByTestId('attach-send').click()
  const file = b.getByTestId('message').getByTestId('message-file').filter({ hasText: 'notes.txt' })
  await file.waitFor({ timeout: T })
  assert.match(await file.getByTestId('file-download').getAttribute('href'), /^\/api\/files\/[0-9a-f]{32}$/)
  // Dropping a file on the chat sends it too.
  await a.evaluate(() => {
    const dt = new DataTransfer()
    dt.items.add(new File(['dropped'], 'dropped.txt', { type: 'text/plain' }))
    const target = document.querySelector('[data-testid="chat-view"]')
    for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }))
  })
  await a.getByTestId('attach-send').click()
  await b.getByTestId('message-file').filter({ hasText: 'dropped.txt' }).waitFor({ timeout: T })
  // Past the server's upload limit (25 MiB) the upload fails with a clear reason.
  await a.getByTestId('attach-input').setInputFiles({ name: 'huge.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(26 * 1024 * 1024, 7) })
  await a.getByTestId('attach-send').click()
  const failed = a.getByTestId('message-failed').filter({ hasText: 'huge.bin' })
  await failed.getByText(/too large/).waitFor({ timeout: 30_000 })
  await failed.getByRole('button', { name: 'Delete' }).click()
  await waitForCount(a.getByTestId('message-failed'), 0)
  // Alice (an administrator) makes a sticker pack on the admin screen, adds two faces and
  // removes one; Bob sends the other from the picker.
  await a.goto(`${base}/admin/stickers`)
  await a.getByTestId('admin-sticker-pack-name').fill('Faces')
  await a.getByTestId('admin-sticker-pack-create').click()
  const pack = a.locator('[data-testid^="admin-sticker-pack-"]').filter({ hasText: 'Faces' })
  await pack.waitFor({ timeout: T })
  await pack.getByTestId('admin-sticker-file').setInputFiles([
    { name: 'smile.png', mimeType: 'image/png', buffer: await makeFace(a) },
    { name: 'blue.png', mimeType: 'image/png', buffer: await makeFace(a, '#7ec8e3') },
  ])
  await waitForCount(pack.getByTestId('admin-sticker'), 2)
  await pack.getByTestId('admin-sticker-remove').last().click()
  await waitForCount(pack.getByTestId('admin-sticker'), 1)
  await a.goto(`${base}/chat/${conv}`)
  await b.getByTestId('emoji-toggle').click()
  await b.getByTestId('sticker-tab').click()
  await b.getByTestId('sticker-0').click()
  await a.getByTestId('message').getByTestId('message-sticker').last().waitFor({ timeout: T })
  // Bob sets a photo as his avatar; Alice sees it in the chat header.
  await b.goto(`${base}/settings`)
  await b.getByTestId('settings-avatar-input').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: await makeFace(b, '#7ec8e3') })
  await b.getByTestId('settings-avatar').locator('img').waitFor({ timeout: T })
  await a.reload()
  await a.getByTestId('chat-profile').locator('img').waitFor({ timeout: T })
})

const dave = { username: `dave${run}`, nickname: 'Dave', password: 'fourth user 456' }

test('admin: the first user opens the admin area, switches to invite-only, invites dave, then disables him', async () => {
  const { page: a } = the('alice')
  try {
    await a.goto(`${base}/`)
    await a.getByTestId('nav-admin').click()
    await a.getByTestId('admin-dashboard').getByTestId('stat-users').waitFor({ timeout: T })
    await a.getByTestId('admin-chart').waitFor()
    // Invite-only registration. The form is filled in when the server's settings arrive, which
    // undid a choice made before (this step then waited 30 s for a Save button that stayed
    // disabled): the fields are disabled until then, and check() waits for them to be enabled.
    await a.getByTestId('admin-tab-settings').click()
    await a.getByTestId('admin-invites').getByText('Codes are only asked for').waitFor({ timeout: T })
    await a.getByTestId('admin-registration-invite').check()
    await a.getByTestId('admin-settings-save').click()
    await a.getByTestId('admin-settings').getByText('Saved').waitFor({ timeout: T })
    const opts = await (await fetch(base + '/api/auth/options')).json()
    assert.equal(opts.registration, 'invite')
    await a.getByTestId('invite-uses').fill('1')
    await a.getByTestId('invite-create').click()
    const code = (await a.getByTestId('invite-code').innerText()).trim()
    assert.match(code, /^\S{6,}$/)
    // Without a code nobody can register now ...
    const { page: d } = await newUser('dave')
    await d.goto(`${base}/login`)
    await d.getByTestId('auth-tab-register').click()
    await d.getByTestId('auth-invite').waitFor({ timeout: T })
    // ... and the invite link fills it in.
    await d.goto(`${base}/login?invite=${encodeURIComponent(code)}`)
    assert.equal(await d.getByTestId('auth-invite').inputValue(), code)
    await d.getByTestId('auth-username').fill(dave.username)
    await d.getByTestId('auth-nickname').fill(dave.nickname)
    await d.getByTestId('auth-password').fill(dave.password)
    await d.getByTestId('auth-confirm').fill(dave.password)
    await d.getByTestId('auth-submit').click()
    await d.getByTestId('conversation-list').waitFor({ timeout: T })
    // The code was for one account: it is used up.
    await a.reload()
    await a.getByTestId(`invite-${code}`).getByText('Used up').waitFor({ timeout: T })
    // Alice cannot remove the last administrator (herself).
    await a.getByTestId('admin-tab-users').click()
    await a.getByTestId('admin-user-search').fill(alice.username)
    await a.getByTestId(`admin-user-${alice.username}`).getByTestId('admin-user-actions').click()
    await a.getByTestId('admin-user-demote').click()
    await a.getByTestId('admin-error').getByText(/at least one administrator/).waitFor({ timeout: T })
    // She disables Dave: his open tab goes to the login screen, and he cannot log in again.
    await a.getByTestId('admin-user-search').fill(dave.username)
    await a.getByTestId(`admin-user-${dave.username}`).getByTestId('admin-user-actions').click()
    await a.getByTestId('admin-user-disable').click()
    await a.getByTestId('confirm-ok').click()
    await a.getByTestId(`admin-user-${dave.username}`).getByTestId('chip-disabled').waitFor({ timeout: T })
    await d.waitForURL(/\/login/, { timeout: T })
    await d.getByTestId('auth-username').fill(dave.username)
    await d.getByTestId('auth-password').fill(dave.password)
    await d.getByTestId('auth-submit').click()
    await d.getByTestId('auth-error').waitFor({ timeout: T })
    // The audit log has it all.
    await a.getByTestId('admin-tab-audit').click()
    await a.getByTestId('audit-entry').getByText('Account disabled').first().waitFor({ timeout: T })
    // Back to open registration through the screen (the finally below makes sure of it for the
    // scenarios that follow, even when a step above failed). Invite is checked once loaded.
    await a.getByTestId('admin-tab-settings').click()
    await a.getByTestId('admin-registration-invite').and(a.locator(':checked')).waitFor({ timeout: T })
    await a.getByTestId('admin-registration-open').check()
    await a.getByTestId('admin-settings-save').click()
    await a.getByTestId('admin-settings').getByText('Saved').waitFor({ timeout: T })
  } finally {
    const settings = await a.evaluate(async () => {
      const r = await fetch('/api/admin/settings', { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ registration: 'open' }) })
      return r.json()
    })
    assert.equal(settings.registration, 'open')
  }
})

const connected = (p) =>
  p.waitForFunction(() => document.querySelector('[data-testid="call-screen"]')?.dataset.phase === 'connected', null, { timeout: 20_000 })

/** Waits until the call screen on `page` counts `n` other participants connected. */
const peersConnected = (page, n) =>
  page.waitForFunction((n) => document.querySelector('[data-testid="call-screen"]')?.dataset.peers === String(n), n, { timeout: 20_000 })

/**
 * Waits until, for every other participant on `page`, the connection in use is the TURN relay
 * (the selected candidate pair's local candidate is `relay`) and the media bytes received keep
 * growing (read by the call screen from getStats into data attributes).
 */
async function relayedMediaGrows(page) {
  // The call screen updates these attributes from getStats; both waits follow the DOM. (The
  // page's CSP forbids eval, so the reading is written out in each function.)
  const first = await page
    .waitForFunction(
      () => {
        const peers = [...document.querySelectorAll('[data-testid="call-peer"]')].map((e) => ({ user: e.dataset.user, route: e.dataset.route, bytes: Number(e.dataset.bytesIn) }))
        return peers.length > 0 && peers.every((p) => p.route === 'relay' && p.bytes > 0) && peers
      },
      null,
      { timeout: 20_000 },
    )
    .then((h) => h.jsonValue())
  await page
    .waitForFunction(
      (first) => {
        const peers = [...document.querySelectorAll('[data-testid="call-peer"]')].map((e) => ({ user: e.dataset.user, route: e.dataset.route, bytes: Number(e.dataset.bytesIn) }))
        return peers.length === first.length && peers.every((p, i) => p.user === first[i].user && p.route === 'relay' && p.bytes > first[i].bytes)
      },
      first,
      { timeout: 20_000 },
    )
    .catch(async (e) => {
      const now = await page.$$eval('[data-testid="call-peer"]', (els) => els.map((el) => ({ ...el.dataset })))
      assert.fail(`media did not keep arriving through the relay: ${JSON.stringify({ first, now })} (${e.message})`)
    })
}

/** A gauge of the server's /metrics (served to loopback callers). */
async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  assert.ok(line, `${name} in /metrics`)
  return Number(line.split(' ')[1])
}

test('calls: alice video-calls bob, he accepts, they connect through the relay, he shares his screen, she hangs up; a declined call; the call records', async () => {
  the('conv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  await a.goto(`${base}/chat/${conv}`)
  await b.goto(`${base}/`)
  await b.getByTestId('conversation-list').waitFor()
  await a.getByTestId('call-video').click()
  await a.getByTestId('call-screen').waitFor({ timeout: T })
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  await b.getByTestId('call-accept').click()
  await connected(a)
  await connected(b)
  await b.getByTestId('remote-video').waitFor({ timeout: T })
  await a.getByTestId('call-status').getByText(/^\d+:\d\d$/).waitFor({ timeout: T })
  // The server hands out `ice_transport_policy: "relay"` (calls.relay_only): both browsers send
  // their media through the embedded TURN relay, and it keeps flowing.
  await relayedMediaGrows(a)
  await relayedMediaGrows(b)
  assert.ok((await metric('chinwag_turn_allocations')) >= 2, 'the relay holds the allocations')
  assert.ok((await metric('chinwag_turn_bytes_to_peers')) > 0, 'the relay carried the media')
  // Bob shares his screen in place of his camera (the video track is replaced in place); Alice
  // sees that he shares, and then that he stopped.
  await b.getByTestId('call-share').click()
  await b.getByTestId('call-sharing').waitFor({ timeout: T })
  await a.locator('[data-testid="call-peer"][data-sharing="true"]').getByTestId('remote-video').waitFor({ timeout: T })
  await a.getByTestId('call-peer-sharing').waitFor({ timeout: T })
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    await a.screenshot({ path: join(SHOTS, 'call-sharing.png') })
    await b.screenshot({ path: join(SHOTS, 'call-sharing-sharer.png') })
  }
  await b.getByTestId('call-share').click()
  await waitForCount(a.locator('[data-testid="call-peer"][data-sharing="true"]'), 0)
  await waitForCount(b.getByTestId('call-sharing'), 0)
  // Bob mutes: Alice is told.
  await b.getByTestId('call-mute').click()
  await a.getByTestId('call-screen').getByText(/muted their microphone/).waitFor({ timeout: T })
  await a.getByTestId('call-hangup').click()
  await waitForCount(a.getByTestId('call-screen'), 0)
  await waitForCount(b.getByTestId('call-screen'), 0, T)
  await a.getByTestId('message').getByTestId('message-call').getByText(/Call duration/).last().waitFor({ timeout: T })
  // Bob declines the next one.
  await a.getByTestId('call-audio').click()
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  await b.getByTestId('call-decline').click()
  await a.getByTestId('call-toast').getByText('Call declined').waitFor({ timeout: T })
  await a.getByTestId('message').getByTestId('message-call').getByText('Declined').last().waitFor({ timeout: T })
})

test('group calls: alice starts one, bob answers, carol declines then joins with the call button; a screen share renegotiates; carol leaves and the others stay', async () => {
  the('groupConv')
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  const { page: c } = the('carol')
  for (const p of [a, b, c]) {
    await p.goto(`${base}/chat/${groupConv}`)
    await p.getByTestId('chat-view').waitFor({ timeout: T })
  }
  await a.getByTestId('call-audio').click()
  await a.getByTestId('call-screen').waitFor({ timeout: T })
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  await c.getByTestId('call-incoming').waitFor({ timeout: T })
  await b.getByTestId('call-accept').click()
  await c.getByTestId('call-decline').click()
  await peersConnected(a, 1)
  await peersConnected(b, 1)
  // Carol changes her mind: the group's call button joins the call going on.
  await c.getByTestId('call-audio').click()
  for (const p of [a, b, c]) {
    await peersConnected(p, 2)
    await connected(p)
  }
  await c.getByTestId('call-status').getByText(/3 in the call/).waitFor({ timeout: T })
  await relayedMediaGrows(c)
  // Alice shares her screen in this audio call: there is no video to replace, so the others get
  // a new video track through a renegotiation (a new offer and answer over the chat socket).
  await a.getByTestId('call-share').click()
  for (const p of [b, c]) {
    const video = p.locator('[data-testid="call-peer"][data-sharing="true"]').getByTestId('remote-video')
    await video.waitFor({ timeout: T })
    await p.waitForFunction(
      () => [...document.querySelectorAll('[data-sharing="true"] video')].some((v) => v.videoWidth > 0),
      null,
      { timeout: 20_000 },
    )
  }
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    await b.screenshot({ path: join(SHOTS, 'call-group-sharing.png') })
    await c.setViewportSize({ width: 360, height: 740 })
    await c.screenshot({ path: join(SHOTS, 'call-group-sharing-360.png') })
    await c.setViewportSize({ width: 1280, height: 800 })
  }
  await a.getByTestId('call-share').click()
  for (const p of [b, c]) await waitForCount(p.locator('[data-testid="call-peer"][data-sharing="true"]'), 0)
  if (SHOTS) await a.screenshot({ path: join(SHOTS, 'call-group.png') })
  // Carol leaves; Alice and Bob stay in the call.
  await c.getByTestId('call-hangup').click()
  await waitForCount(c.getByTestId('call-screen'), 0)
  await peersConnected(a, 1)
  await peersConnected(b, 1)
  await connected(a)
  // Alice leaves too: Bob is alone and nobody rings, so the call ends and is recorded.
  await a.getByTestId('call-hangup').click()
  await waitForCount(b.getByTestId('call-screen'), 0, T)
  await c.getByTestId('message').getByTestId('message-call').getByText(/Call duration/).last().waitFor({ timeout: T })
})

test('screenshots', { skip: !SHOTS }, async () => {
  the('conv')
  the('groupConv')
  mkdirSync(SHOTS, { recursive: true })
  // A few more messages so the chat screenshot shows grouping and both sides.
  const { page: a } = the('alice')
  const { page: b } = the('bob')
  await a.goto(`${base}/chat/${conv}`)
  await b.goto(`${base}/chat/${conv}`)
  await b.getByTestId('chat-view').waitFor()
  await send(a, 'Are we still on for dinner tonight? 🍜')
  await waitForCount(storedMessages(b, 'Are we still on for dinner tonight? 🍜'), 1)
  await send(b, 'Yes! 7 pm at the noodle place. I booked a table: https://example.com/booking')
  await waitForCount(storedMessages(a, 'Yes! 7 pm at the noodle place. I booked a table: https://example.com/booking'), 1)
  // The group gets a picture, a photo and some talk, so its screenshots show what groups do.
  const { page: c } = the('carol')
  await a.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))
    const form = new FormData()
    form.append('file', new Blob([bytes], { type: 'image/png' }), 'group.png')
    const f = await (await fetch('/api/files', { method: 'POST', body: form })).json()
    await fetch('/api/me/avatar', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ file_id: f.id }) })
  }, (await makeFace(a, '#f4a6c0')).toString('base64'))
  for (const p of [a, b, c]) await p.goto(`${base}/chat/${groupConv}`)
  await a.getByTestId('group-info').click()
  await a.getByTestId('group-panel').waitFor()
  await a.locator('[data-testid="group-panel"] input[type="file"]').setInputFiles({ name: 'trip.png', mimeType: 'image/png', buffer: await makePhoto(a, 320, 320) })
  await a.getByTestId('group-panel').locator('.avatar-btn img').waitFor({ timeout: T })
  await a.getByTestId('group-panel-close').click()
  await send(b, "I'll bring the snacks 🍫")
  await waitForCount(storedMessages(c, "I'll bring the snacks 🍫"), 1)
  await c.getByTestId('attach-input').setInputFiles({ name: 'view.png', mimeType: 'image/png', buffer: await makePhoto(c) })
  await c.getByTestId('attach-send').click()
  await a.getByTestId('message').getByTestId('message-image').last().waitFor({ timeout: T })
  await send(c, 'The view from the top last time ⛰️')
  await waitForCount(storedMessages(a, 'The view from the top last time ⛰️'), 1)
  const box = a.getByTestId('composer-input')
  await box.pressSequentially('@Car')
  await a.getByTestId('mention-list').waitFor({ timeout: T })
  await box.press('Enter')
  await box.pressSequentially('wow! Same trail this time?')
  await box.press('Enter')
  await waitForCount(storedMessages(b, '@Carol wow! Same trail this time?'), 1)
  await b.goto(`${base}/chat/${conv}`)
  await b.getByTestId('chat-view').waitFor()
  // Carol reads it before she leaves the chat, so "read by" is the same in every run.
  await waitForCount(storedMessages(c, '@Carol wow! Same trail this time?'), 1)
  await c.goto(`${base}/`)
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
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-1-login.png`) })
    await login(page, alice)
    // Give bob something unread for alice to see in the list.
    await send(b, `Unread for the list screenshot (${tag})`)
    await page.getByTestId(`conversation-${conv}`).getByTestId('unread-badge').waitFor({ timeout: T })
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-2-list.png`) })
    await page.getByTestId(`conversation-${conv}`).click()
    await page.getByTestId('chat-view').waitFor()
    await waitForCount(storedMessages(page, `Unread for the list screenshot (${tag})`), 1)
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-3-chat.png`) })
    await storedMessages(page, `Unread for the list screenshot (${tag})`).getByTestId('message-text').click({ button: 'right' })
    await page.getByTestId('message-menu').waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-3b-menu.png`) })
    await page.keyboard.press('Escape')
    await page.getByTestId('emoji-toggle').click()
    await page.getByTestId('emoji-picker').waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-4-emoji.png`) })
    await page.keyboard.press('Escape')
    await page.goto(base + '/settings')
    await page.getByTestId('settings-view').waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-5-settings.png`) })
    await page.goto(base + '/contacts')
    await page.getByTestId('contacts-view').waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-6-contacts.png`) })
    await page.goto(`${base}/chat/${groupConv}`)
    await waitForCount(storedMessages(page, '@Carol wow! Same trail this time?'), 1)
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="message-list"] img')].every((i) => i.complete))
    // "Read by" shows once the chat view has asked the server who read Alice's message.
    await storedMessages(page, '@Carol wow! Same trail this time?').getByTestId('read-by').waitFor({ timeout: T })
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-7-group.png`) })
    await page.getByTestId('group-info').click()
    await page.getByTestId('group-panel').getByTestId(`member-${bob.username}`).waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-8-group-info.png`) })
    await page.goto(`${base}/admin/dashboard`)
    await page.getByTestId('admin-chart').waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-9-admin-dashboard.png`) })
    await page.goto(`${base}/admin/users`)
    await page.getByTestId(`admin-user-${bob.username}`).waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-10-admin-users.png`) })
    await page.goto(`${base}/admin/stickers`)
    await page.getByTestId('admin-sticker').first().waitFor()
    await lib.settled(page)
    await page.screenshot({ path: join(SHOTS, `${tag}-11-admin-stickers.png`) })
    await ctx.close()
  }
  console.log(`screenshots in ${SHOTS}`)
})

test('older history loads page by page when scrolling up, without duplicates', async () => {
  // Two users of their own, made through the API, so the chat holds exactly what this scenario
  // sends: a greeting, then a burst.
  const hana = { username: `hana${run}`, nickname: 'Hana', password: 'hana password 1' }
  const ivan = { username: `ivan${run}`, nickname: 'Ivan', password: 'ivan password 1' }
  const h = await lib.registerApi(base, hana)
  const iv = await lib.registerApi(base, ivan)
  const [lo, hi] = [h.user.id, iv.user.id].sort((x, y) => x - y)
  const conv = `d:${lo}:${hi}`
  const { ctx: ictx, page: b } = await lib.sessionPage(browser, base, 'ivan', iv.token, { locale: 'en-US' })
  const { ctx: hctx, page: a } = await lib.sessionPage(browser, base, 'hana', h.token, { locale: 'en-US' })
  const n = 130
  // Ivan sends them straight over a socket, from a page of the server's origin.
  await b.goto(`${base}/api/auth/options`)
  await b.evaluate(
    async ({ conv, n }) => {
      const ws = new WebSocket(`ws://${location.host}/api/ws`)
      await new Promise((r, j) => ((ws.onopen = r), (ws.onerror = j)))
      let acks = 0
      const done = new Promise((r, j) => {
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data)
          if (f.type === 'ack' && ++acks === n + 1) r()
          if (f.type === 'error') j(new Error(`${f.code}: ${f.message}`))
        }
      })
      const texts = ['Hello Hana 👋', ...Array.from({ length: n }, (_, i) => `bulk ${i + 1}`)]
      for (const [i, text] of texts.entries()) {
        ws.send(JSON.stringify({ type: 'send', client_id: `bulk-${i}-${Date.now()}`, conv, content: { kind: 'text', text } }))
      }
      await done
      ws.close()
    },
    { conv, n },
  )
  await ictx.close()
  await a.goto(`${base}/chat/${conv}`)
  await waitForCount(storedMessages(a, `bulk ${n}`), 1)
  const list = a.getByTestId('message-list')
  const deadline = Date.now() + 30_000
  const beginning = a.getByText('This is the beginning of your chat.')
  const lines = '[data-testid="message-list"] [data-testid="message"], [data-testid="message-list"] [data-testid="system-message"]'
  while (!(await beginning.isVisible())) {
    assert.ok(Date.now() < deadline, 'scrolling up did not reach the beginning of the chat within 30 s')
    const before = await a.locator(lines).count()
    await list.evaluate((el) => el.scrollTo({ top: 0 }))
    // Each scroll to the top loads one older page: wait until it is drawn (or the beginning is).
    await a.waitForFunction(
      ({ lines, before }) => document.querySelectorAll(lines).length > before || !!document.querySelector('.notice.beginning'),
      { lines, before },
      { timeout: T },
    )
  }
  await waitForCount(storedMessages(a, 'bulk 1'), 1)
  await beginning.waitFor({ timeout: T })
  // Search finds an old message, and opening the hit loads history back to it.
  await a.reload()
  await a.getByTestId('chat-view').waitFor()
  await waitForCount(storedMessages(a, 'Hello Hana 👋'), 0)
  await a.getByTestId('conversation-filter').fill('hello')
  await a.getByTestId('search-hit').first().click()
  await waitForCount(storedMessages(a, 'Hello Hana 👋'), 1, 30_000)
  const texts = (await list.getByTestId('message-text').allInnerTexts()).filter((t) => t.startsWith('bulk '))
  assert.deepEqual(
    texts,
    Array.from({ length: n }, (_, i) => `bulk ${i + 1}`),
  )
  await hctx.close()
})

test('changing the password logs out the other sessions (close code 4001 goes to login)', async () => {
  // A user of its own with two sessions, made through the API: this scenario needs nothing from
  // the ones before, and the password it changes is nobody else's.
  const gina = { username: `gina${run}`, nickname: 'Gina', password: 'gina password 1' }
  const { token } = await lib.registerApi(base, gina)
  const { ctx: mine, page: g } = await lib.sessionPage(browser, base, 'gina', token, { locale: 'en-US' })
  const { ctx: other, page: op } = await lib.sessionPage(browser, base, 'gina elsewhere', await lib.loginApi(base, gina), { locale: 'en-US' })
  await op.goto(`${base}/`)
  await op.getByTestId('conversation-list').waitFor({ timeout: T })
  await g.goto(`${base}/settings`)
  const next = 'a brand new secret 3'
  await g.getByTestId('settings-old-password').fill(gina.password)
  await g.getByTestId('settings-new-password').fill(next)
  await g.getByTestId('settings-confirm-password').fill(next)
  await g.getByTestId('settings-change-password').click()
  await g.getByText('Password changed').waitFor({ timeout: T })
  await op.waitForURL(/\/login/, { timeout: T })
  // This session is still fine.
  await g.getByTestId('nav-chats').click()
  await g.getByTestId('conversation-list').waitFor({ timeout: T })
  assert.equal(await g.evaluate(async () => (await fetch('/api/me')).status), 200)
  await other.close()
  await mine.close()
})
