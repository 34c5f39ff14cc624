// End-to-end test of what each user keeps for themselves, and of shared links: delete for me on
// two pages of the same user, a contact remark in the list and the header, search inside one
// chat jumping to an old message, and a group's invite QR code decoded from its image and
// opened by another user, who joins.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/social.mjs
//   SCREENSHOTS=/tmp/shots-social node e2e/social.mjs   # also saves the QR dialog and the search
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as lib from './lib.mjs'
import { SHOTS, T, send, storedMessages, waitForCount } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const ann = { username: `ann${run}`, nickname: 'Ann', password: 'social proof password 1' }
const bob = { username: `bob${run}`, nickname: 'Bob', password: 'social proof password 2' }
const cat = { username: `cat${run}`, nickname: 'Cat', password: 'social proof password 3' }
let A // ann's first page
let A2 // ann's second device
let conv

const api = (token, method, path, body) => lib.apiCall(base, token, method, path, body)

before(async () => {
  srv = await lib.startServer()
  base = srv.base
  browser = await lib.launchBrowser()
  for (const u of [ann, bob, cat]) Object.assign(u, await lib.registerApi(base, u))
  await lib.befriendApi(base, ann, bob)
  conv = `d:${Math.min(ann.user.id, bob.user.id)}:${Math.max(ann.user.id, bob.user.id)}`
  if (SHOTS) mkdirSync(SHOTS, { recursive: true })
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
  }
})

test('delete for me leaves both of my pages, not the other person', async () => {
  A = await lib.sessionPage(browser, base, 'ann', ann.token)
  A2 = await lib.sessionPage(browser, base, 'ann-2', await lib.loginApi(base, ann))
  await A.page.goto(`${base}/chat/${conv}`)
  await A.page.getByTestId('composer-input').waitFor({ timeout: T })
  await send(A.page, 'walrus early')
  await send(A.page, 'keep this one')
  await send(A.page, 'forget this one')
  await storedMessages(A.page, 'forget this one').waitFor({ timeout: T })
  await A2.page.goto(`${base}/chat/${conv}`)
  await storedMessages(A2.page, 'forget this one').waitFor({ timeout: T })

  const target = storedMessages(A.page, 'forget this one')
  await target.hover()
  await target.getByTestId('message-more').click()
  await A.page.getByTestId('message-hide').click()
  await A.page.getByTestId('confirm-ok').click()
  await waitForCount(storedMessages(A.page, 'forget this one'), 0)
  // The other page of the same user drops it live.
  await waitForCount(storedMessages(A2.page, 'forget this one'), 0)
  assert.equal(await storedMessages(A2.page, 'keep this one').count(), 1)
  // After a reload too.
  await lib.reloadLoaded(A2.page)
  await storedMessages(A2.page, 'keep this one').waitFor({ timeout: T })
  assert.equal(await storedMessages(A2.page, 'forget this one').count(), 0)
  // Bob still has it.
  const page = await api(bob.token, 'GET', `/api/conversations/${conv}/messages`)
  assert.ok(page.body.messages.some((m) => m.content.text === 'forget this one'))
})

test('a remark shows in the list and the header, on every device', async () => {
  const { page } = A
  await page.getByTestId('chat-profile').click()
  await page.getByTestId('set-remark').click()
  await page.getByTestId('confirm-input').fill('Plumber Bob')
  await page.getByTestId('confirm-ok').click()
  await page.getByTestId('chat-title').filter({ hasText: 'Plumber Bob' }).waitFor({ timeout: T })
  await page.keyboard.press('Escape')
  await A2.page.getByTestId(`conversation-${conv}`).getByTestId('conversation-name').filter({ hasText: 'Plumber Bob' }).waitFor({ timeout: T })
  await A2.page.getByTestId('chat-title').filter({ hasText: 'Plumber Bob' }).waitFor({ timeout: T })
  // Bob never sees it.
  const contacts = await api(bob.token, 'GET', '/api/contacts')
  assert.ok(!JSON.stringify(contacts.body).includes('Plumber'))
})

test('search inside a chat jumps to an old message, loading its page', async () => {
  // Two hundred newer messages from Bob push "walrus early" out of what a new page loads first
  // (a sync brings at most the newest 100 of a chat, a history page 50 more).
  const b = await lib.sessionPage(browser, base, 'bob', bob.token)
  await b.page.goto(`${base}/chat/${conv}`)
  await b.page.getByTestId('composer-input').waitFor({ timeout: T })
  const acks = await b.page.evaluate(async (conv) => {
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/ws')
    let n = 0
    await new Promise((ok, fail) => {
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data)
        if (f.type === 'hello') for (let i = 0; i < 200; i++) ws.send(JSON.stringify({ type: 'send', client_id: `fill-${i}`, conv, content: { kind: 'text', text: `filler ${i}` } }))
        if (f.type === 'ack' && ++n === 200) ok()
      }
      ws.onerror = fail
    })
    ws.close()
    return n
  }, conv)
  assert.equal(acks, 200)
  await b.ctx.close()
  // Ann opens the chat on a new page (a page load, no cache of this chat). Not a reload of her
  // first page: that reload, right after sixty live messages (the test's earlier form), left Chromium's renderer spinning
  // in about one run of five under load (every request pending, the page unresponsive to the
  // debugger); it is being investigated on its own (see the issue notes), and this test is
  // about the search.
  const fresh = await lib.sessionPage(browser, base, 'ann-3', ann.token)
  const { page } = fresh
  await page.goto(`${base}/chat/${conv}`)
  await page.getByTestId('composer-input').waitFor({ timeout: T })
  await storedMessages(page, 'filler 199').waitFor({ timeout: T })
  assert.equal(await storedMessages(page, 'walrus early').count(), 0, 'the old message is not loaded yet')
  await page.getByTestId('chat-menu').click()
  await page.getByTestId('chat-search-open').click()
  await page.getByTestId('chat-search-input').fill('walrus')
  const hits = page.getByTestId('chat-search-hits').getByRole('button')
  await waitForCount(hits, 1)
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'chat-search-desktop-en.png') })
  await hits.first().click()
  await storedMessages(page, 'walrus early').waitFor({ timeout: T })
  await page.locator('.flash').filter({ hasText: 'walrus early' }).first().waitFor({ timeout: T })
  await fresh.ctx.close()
})

test("a group's invite QR code decodes to its link, which joins another user", async () => {
  const g = await api(ann.token, 'POST', '/api/groups', { name: 'Walrus club', members: [bob.user.id] })
  assert.equal(g.status, 201)
  const { page } = A
  await page.goto(`${base}/chat/g:${g.body.id}`)
  await page.getByTestId('group-info').click()
  await page.getByTestId('group-qr').click()
  const img = page.getByTestId('qr-image')
  await img.waitFor({ timeout: T })
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'group-qr-desktop-en.png') })
  // Decode the rendered image in the page with jsQR, as a phone's camera would read it.
  // (Run through the DevTools protocol: the app's CSP rightly refuses an injected script tag.)
  await page.evaluate(readFileSync(join(here, '../node_modules/jsqr/dist/jsQR.js'), 'utf8'))
  const decoded = await img.evaluate(async (el) => {
    await el.decode()
    const c = document.createElement('canvas')
    c.width = el.naturalWidth
    c.height = el.naturalHeight
    const ctx = c.getContext('2d')
    ctx.drawImage(el, 0, 0)
    const d = ctx.getImageData(0, 0, c.width, c.height)
    return window.jsQR(d.data, d.width, d.height)?.data ?? null
  })
  const { token } = (await api(ann.token, 'GET', `/api/groups/${g.body.id}/invite-link`)).body
  assert.equal(decoded, `${base}/join/${token}`)

  const c = await lib.sessionPage(browser, base, 'cat', cat.token)
  // Pasted as text in the scanner, the link opens the join page (the camera is not there headless).
  await c.page.goto(`${base}/contacts`)
  await c.page.getByTestId('scan-qr').click()
  await c.page.getByTestId('scan-link').fill(decoded)
  await c.page.getByTestId('scan-open').click()
  await c.page.getByTestId('link-name').filter({ hasText: 'Walrus club' }).waitFor({ timeout: T })
  await c.page.getByTestId('link-join').click()
  await c.page.waitForURL(new RegExp(`/chat/g:${g.body.id}$`), { timeout: T })
  const members = await api(ann.token, 'GET', `/api/groups/${g.body.id}/members`)
  assert.ok(members.body.members.some((m) => m.user.id === cat.user.id))
  await c.ctx.close()
})
