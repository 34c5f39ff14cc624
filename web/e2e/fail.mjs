// End-to-end test of calls that fail: a 1:1 video call forced through a loopback TURN relay
// that refuses the peers (no `turn.allow_peers` opening 127.0.0.1, so the relay may not reach the
// other side's relay address). The app restarts ICE, then gives up and says why on the call
// screen; the call record says "Call failed" in both clients, and the server log names the
// refused peers. Then, on a relay that allows them, a normal call shows the route "relay".
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/fail.mjs
//   SCREENSHOTS=/tmp/shots node e2e/fail.mjs     # also saves the failure screen, en and zh-CN
//
// The health timings are shortened through `localStorage['chinwag.callHealth']` (see
// src/calls/linkWatch.ts), so the give-up comes within seconds instead of half a minute.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, waitForCount } from './lib.mjs'

const FAST = JSON.stringify({ connectMs: 3000, graceMs: 1000, restartMs: 3000, maxRestarts: 1 })
const run = Date.now().toString(36).slice(-5)
const servers = []
let browser

after(async () => {
  try {
    await browser?.close()
  } finally {
    for (const s of servers) await s.stop()
  }
})

/** A server, two contacts ann and ben with pages on their 1:1 chat, the health timings shortened. */
async function setup(env, tag) {
  const srv = await lib.startServer({ env })
  servers.push(srv)
  browser ??= await lib.launchBrowser()
  const users = []
  for (const [name, nick] of [
    [`ann${tag}${run}`, 'Ann'],
    [`ben${tag}${run}`, 'Ben'],
  ]) {
    users.push(await lib.registerApi(srv.base, { username: name, nickname: nick, password: `fail proof password ${name}` }))
  }
  const [A, B] = users
  await lib.befriendApi(srv.base, A, B)
  const conv = `d:${Math.min(A.user.id, B.user.id)}:${Math.max(A.user.id, B.user.id)}`
  const pages = []
  /** Offers sent by either page: the first, and one more per ICE restart. */
  const offers = []
  for (const [u, name] of [
    [A, 'ann'],
    [B, 'ben'],
  ]) {
    const { ctx, page } = await lib.sessionPage(browser, srv.base, name, u.token)
    await ctx.addInitScript((fast) => localStorage.setItem('chinwag.callHealth', fast), FAST)
    page.on('websocket', (ws) => ws.on('framesent', (f) => typeof f.payload === 'string' && f.payload.includes('"type":"call_offer"') && offers.push(name)))
    await page.goto(`${srv.base}/chat/${conv}`)
    await page.getByTestId('chat-view').waitFor({ timeout: T })
    pages.push(page)
  }
  return { srv, conv, a: pages[0], b: pages[1], offers }
}

async function call(a, b) {
  await a.getByTestId('call-video').click()
  await a.getByTestId('call-screen').waitFor({ timeout: T })
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  await b.getByTestId('call-accept').click()
}

/** Switches the app's language in place (the failure screen is not kept across a reload). */
function chooseLocale(page, locale) {
  return page.evaluate((l) => document.querySelector('#app').__vue_app__.config.globalProperties.$pinia._s.get('settings').chooseLocale(l), locale)
}

test('a call the relay refuses restarts ICE, then says why, ends, and is recorded as failed on both sides', async () => {
  const env = await lib.loopbackTurnEnv({ relayOnly: true })
  delete env.CHINWAG_TURN__ALLOW_PEERS
  const { srv, a, b, offers } = await setup({ ...env, RUST_LOG: 'warn,chinwag::calls=info' }, 'x')
  // At start, the server warns that its relay address is one the relay refuses.
  assert.match(srv.log(), /turn\.public_ip 127\.0\.0\.1 is in a range the relay refuses/)
  await call(a, b)
  // Not "Connecting…" forever: the failure screen, with the likely cause, on both sides.
  for (const p of [a, b]) {
    await p.getByTestId('call-failed').waitFor({ timeout: 30_000 })
    await waitForCount(p.getByTestId('call-screen'), 0)
  }
  assert.equal(await a.getByTestId('call-failed').getAttribute('data-cause'), 'relay_refused')
  assert.match(await a.getByTestId('call-failed-cause').textContent(), /relay server refused/)
  assert.ok(offers.length >= 2, `an ICE restart (another offer) was tried before giving up: offers from ${offers}`)
  const hint = a.getByTestId('call-failed').locator('details')
  await hint.locator('summary').click()
  await hint.getByText(/turn\.public_ip/).waitFor({ timeout: T })
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    for (const locale of ['en', 'zh-CN']) {
      await chooseLocale(a, locale)
      await a.getByTestId('call-failed').getByText(locale === 'en' ? 'The call could not connect' : '通话无法接通').waitFor({ timeout: T })
      for (const [size, viewport] of [
        ['desktop', { width: 1280, height: 800 }],
        ['phone', { width: 390, height: 844 }],
      ]) {
        await a.setViewportSize(viewport)
        await lib.settled(a)
        await a.screenshot({ path: join(SHOTS, `call-failed-${size}-${locale}.png`) })
      }
    }
    await chooseLocale(a, 'en')
    await a.setViewportSize({ width: 1280, height: 800 })
  }
  // OK closes it; the call record says failed in both clients (not "Call duration 0:46").
  for (const p of [a, b]) {
    await p.getByTestId('call-failed-ok').click()
    await waitForCount(p.getByTestId('call-failed'), 0)
    await p.getByTestId('message-call').getByText('Call failed').last().waitFor({ timeout: T })
    await waitForCount(p.getByTestId('message-call').getByText(/Call duration/), 0)
  }
  // Hanging up by hand while it still says "Connecting…" is no call either: no duration on the
  // hang-up toast, and the record says failed.
  await call(a, b)
  await a.getByTestId('call-status').getByText('Connecting…').waitFor({ timeout: T })
  await a.getByTestId('call-hangup').click()
  await a.getByTestId('call-toast').getByText('Call ended before it connected').waitFor({ timeout: T })
  assert.doesNotMatch(await a.getByTestId('call-toast').textContent(), /\d:\d\d/)
  for (const p of [a, b]) {
    await waitForCount(p.getByTestId('call-screen'), 0)
    await waitForCount(p.getByTestId('message-call').getByText('Call failed'), 2)
  }
  // The operator sees why in the log: the refused peer range, at info, once per window.
  const lines = srv.log().split('\n').filter((l) => l.includes('TURN relay refused a peer'))
  assert.ok(lines.length >= 1, `a log line names the refused peers:\n${srv.log()}`)
  assert.match(lines[0], /127\.0\.0\.0\/24/)
  assert.ok(lines.length <= 2, `rate-limited, not one line per refusal: ${lines.length} lines`)
})

test('a call through a relay that allows the peers connects and shows the route "relay" on both sides', async () => {
  const { a, b } = await setup(await lib.loopbackTurnEnv({ relayOnly: true }), 'y')
  await call(a, b)
  for (const p of [a, b]) {
    await p.locator('[data-testid="call-peer"][data-route="relay"][data-connected="true"]').waitFor({ timeout: 20_000 })
  }
  await a.getByTestId('call-status').getByText(/^\d+:\d\d$/).waitFor({ timeout: T })
  await a.getByTestId('call-hangup').click()
  for (const p of [a, b]) {
    await waitForCount(p.getByTestId('call-screen'), 0)
    await p.getByTestId('message-call').getByText(/Call duration/).last().waitFor({ timeout: T })
  }
  await waitForCount(a.getByTestId('call-failed'), 0)
})
