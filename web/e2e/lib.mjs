// Shared pieces of the end-to-end runs (run.mjs and the other e2e/*.mjs files): starting the
// real `chinwag serve` on a free loopback port with a temporary data dir, launching the system
// Chromium, and the UI steps every run needs (register, log in, send, wait for a count).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync, createWriteStream, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
export const BIN = resolve(process.env.CHINWAG_BIN ?? join(here, '../../target/debug/chinwag'))
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
export const SHOTS = process.env.SCREENSHOTS ? resolve(process.env.SCREENSHOTS) : null
export const HEADLESS_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Calls: a fake camera and microphone, allowed without asking.
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  // NETLOG=/tmp/x.json records Chromium's network log (open it in netlog-viewer) for debugging.
  ...(process.env.NETLOG ? [`--log-net-log=${resolve(process.env.NETLOG)}`] : []),
]
export const T = 15_000 // default wait for anything the UI should show

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

/**
 * Starts `chinwag serve` and waits for /healthz (on `port` when given, for settings that name
 * the server's own address). `env` adds settings (`CHINWAG_SECTION__KEY`);
 * link previews are off unless `env` turns them on.
 * Returns { base, dataDir, log(), stop(), pid }; stop() ends the server and removes its data dir
 * (kept when KEEP_DATA is set).
 */
export async function startServer({ env = {}, port: chosen } = {}) {
  if (!existsSync(BIN)) throw new Error(`no chinwag binary at ${BIN} (set CHINWAG_BIN)`)
  const port = chosen ?? (await freePort())
  const dataDir = mkdtempSync(join(tmpdir(), 'chinwag-e2e-'))
  const logFile = createWriteStream(join(dataDir, 'server.log'))
  let text = ''
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dataDir, 'data')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The server reads every CHINWAG_* variable as a setting and refuses unknown ones, so the
    // test's own CHINWAG_BIN must not reach it.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CHINWAG_BIN')),
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      // Link previews make the server fetch pages, and the runs send messages with public
      // and made-up URLs (example.com, x.test): off unless a test turns them on, so that no
      // run sends a DNS query or a packet beyond loopback.
      CHINWAG_LINKS__PREVIEWS: 'false',
      // The SFU's media port on loopback and free, not the default 0.0.0.0:3479 that another
      // run (or a real server) may hold.
      CHINWAG_CALLS__MEDIA_LISTEN: `127.0.0.1:${await freePort()}`,
      ...env,
    },
  })
  proc.stdout.pipe(logFile)
  proc.stderr.pipe(logFile)
  for (const stream of [proc.stdout, proc.stderr]) stream.on('data', (d) => (text += d.toString()))
  let exited = null
  proc.once('exit', (code) => (exited = code))
  const base = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await gone
      clearTimeout(timer)
    }
    if (!process.env.KEEP_DATA) rmSync(dataDir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`server exited with ${exited}; log in ${join(dataDir, 'server.log')}:\n${text}`)
    try {
      const r = await fetch(`${base}/healthz`)
      if (r.ok) return { base, dataDir, log: () => text, stop, pid: proc.pid }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await stop()
  throw new Error('server did not answer /healthz within 30 s')
}

/**
 * Settings for a TURN relay that stays on this machine: it listens on a free loopback port (not
 * the default 0.0.0.0:3478, which another run or a real server may hold), advertises its relays
 * on 127.0.0.1, and may relay to 127.0.0.1 (refused by default). With `relayOnly`, the browsers
 * are told to send all call media through it (`calls.relay_only`).
 */
export async function loopbackTurnEnv({ relayOnly = false } = {}) {
  return {
    CHINWAG_TURN__LISTEN: `127.0.0.1:${await freePort()}`,
    CHINWAG_TURN__PUBLIC_IP: '127.0.0.1',
    CHINWAG_TURN__ALLOW_PEERS: '["127.0.0.1/32"]',
    CHINWAG_TURN__SOCKETS: '1',
    CHINWAG_CALLS__RELAY_ONLY: relayOnly ? 'true' : 'false',
  }
}

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: HEADLESS_ARGS })
}

/** A browser context and page for one user, with page errors printed under the user's name. */
export async function newUserPage(browser, name, opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', ...opts })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message))
  page.on('crash', () => console.error(`[${name}] the page crashed`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket/.test(m.text())) console.error(`[${name}] console:`, m.text())
  })
  return { ctx, page }
}

export async function register(base, page, u) {
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

export async function login(base, page, u) {
  await page.goto(base + '/login')
  await page.getByTestId('auth-username').fill(u.username)
  await page.getByTestId('auth-password').fill(u.password)
  await page.getByTestId('auth-submit').click()
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
}

export async function send(page, text) {
  const box = page.getByTestId('composer-input')
  await box.fill(text)
  await box.press('Enter')
}

/** Messages (stored, not pending) in the open chat whose text is exactly `text`. */
export function storedMessages(page, text) {
  return page.getByTestId('message-list').getByTestId('message').filter({ has: page.getByTestId('message-text').getByText(text, { exact: true }) })
}

/**
 * `expect.poll` without the test runner: calls `probe` until `ok(value)` holds, then returns the
 * value; fails with `what` and the last value after `timeout`. For conditions that are not one
 * locator (a count over several pages, a metric, a server answer).
 */
export async function poll(probe, ok, what, timeout = T) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    last = await probe()
    if (ok(last)) return last
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeout} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * For screenshots only: waits until the page is still, by events rather than time: web fonts
 * loaded (`document.fonts.ready`), every image loaded or failed, and every running CSS
 * animation or transition finished (`getAnimations()`; infinite ones, like a spinner, are left
 * out since they never finish).
 */
export async function settled(page) {
  await page.evaluate(async () => {
    await document.fonts.ready
    // Lazy images outside the viewport are not fetched, so they are not waited for.
    const inView = (i) => {
      const r = i.getBoundingClientRect()
      return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth
    }
    const loading = [...document.images].filter((i) => !i.complete && (i.loading !== 'lazy' || inView(i)))
    await Promise.all(loading.map((i) => new Promise((r) => (i.addEventListener('load', r, { once: true }), i.addEventListener('error', r, { once: true })))))
    const finite = document.getAnimations().filter((a) => a.effect?.getComputedTiming().endTime !== Infinity)
    await Promise.all(finite.map((a) => a.finished.catch(() => null)))
    // The frame that shows the final state.
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))
  })
}

/**
 * Registers `u` ({ username, nickname, password }) through the API, without a browser: for
 * scenarios that need a user of their own and do not test registration. Returns the session
 * token and the user.
 */
export async function registerApi(base, u) {
  const r = await fetch(base + '/api/auth/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: u.username, password: u.password, nickname: u.nickname }),
  })
  const body = await r.json()
  assert.equal(r.status, 201, `register ${u.username}: ${JSON.stringify(body)}`)
  return { token: body.token, user: body.user }
}

/** Logs `u` in through the API: a new session (another device), its token. */
export async function loginApi(base, u) {
  const r = await fetch(base + '/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: u.username, password: u.password }),
  })
  const body = await r.json()
  assert.equal(r.status, 200, `login ${u.username}: ${JSON.stringify(body)}`)
  return body.token
}

/** Calls the API with `token`'s session: `{ status, body }`, the body parsed (null when empty). */
export async function apiCall(base, token, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await r.text()
  return { status: r.status, body: text ? JSON.parse(text) : null }
}

/** Like `apiCall`, but fails unless the answer is a 2xx; returns the body. */
export async function apiOk(base, token, method, path, body) {
  const r = await apiCall(base, token, method, path, body)
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** Makes `a` and `b` ({ token, user }, from `registerApi`) contacts: a request, accepted. */
export async function befriendApi(base, a, b) {
  assert.equal((await apiCall(base, a.token, 'POST', '/api/contacts/requests', { user: b.user.id, message: 'hi' })).status, 200)
  assert.equal((await apiCall(base, b.token, 'POST', `/api/contacts/requests/${a.user.id}/accept`, {})).status, 200)
}

/**
 * State that a scenario takes from an earlier one: returns `value`, or fails at once naming the
 * scenario that should have made it (which failed or did not run), instead of a timeout later.
 */
export function need(value, what, madeBy) {
  if (value === undefined || value === null) assert.fail(`needs ${what}, made by the scenario "${madeBy}", which failed or did not run`)
  return value
}

/** A browser context logged in with `token` (the session cookie set directly) and its page. */
export async function sessionPage(browser, base, name, token, opts = {}) {
  const up = await newUserPage(browser, name, opts)
  await up.ctx.addCookies([{ name: 'chinwag_session', value: token, url: base }])
  return up
}

/**
 * Resolves with the payload of the first frame that a WebSocket of `page` opened from now on
 * sends (`dir` 'framesent') or receives ('framereceived') and that `match(payload)` accepts;
 * fails after `timeout`. The listener is attached when the socket is reported, so no frame is
 * missed.
 */
export function wsFrame(page, dir, match, what, timeout = T) {
  return new Promise((resolve, reject) => {
    let over = false
    const onSocket = (ws) =>
      ws.on(dir, (f) => {
        if (!over && typeof f.payload === 'string' && match(f.payload)) {
          done()
          resolve(f.payload)
        }
      })
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no WebSocket frame ${what} within ${timeout} ms`))
    }, timeout)
    const done = () => {
      over = true
      clearTimeout(timer)
      page.off('websocket', onSocket)
    }
    page.on('websocket', onSocket)
  })
}

/** A frame of type `type` received on a socket that `page` opens from now on. */
export const frameReceived = (page, type, timeout = T) =>
  wsFrame(page, 'framereceived', (p) => p.startsWith('{') && JSON.parse(p).type === type, `of type ${type} received`, timeout)

/**
 * Reloads `page` and waits until the app has loaded its state from the server: the chat list
 * answered (`GET /api/conversations`) and the new socket's `sync` answered (`synced`).
 */
export async function reloadLoaded(page) {
  const synced = frameReceived(page, 'synced', 30_000)
  const listed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/conversations' && r.request().method() === 'GET', { timeout: 30_000 })
  await page.reload()
  await Promise.all([synced, listed])
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
  // One frame after both, so what they brought is drawn.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
}

export async function waitForCount(locator, n, timeout = T) {
  const deadline = Date.now() + timeout
  let c = -1
  while (Date.now() < deadline) {
    c = await locator.count()
    if (c === n) return
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.equal(c, n, `expected ${n} matching elements`)
}

/**
 * Makes every page of `ctx` keep its RTCPeerConnections in `window.__pcs` (for getStats) and its
 * camera and microphone streams in `window.__streams`, and ask the fake camera for `video`
 * (size and frame rate) whatever the app asks, to spare the CPU. `relayOnly` sets the client's
 * test hook that forces its SFU connection through the relay.
 */
export function captureCallMedia(ctx, { video, relayOnly = false }) {
  return ctx.addInitScript(
    ({ video, relayOnly }) => {
      if (relayOnly) localStorage.setItem('chinwag.test.relayOnly', '1')
      const Pc = window.RTCPeerConnection
      window.__pcs = []
      window.RTCPeerConnection = class extends Pc {
        constructor(...args) {
          super(...args)
          window.__pcs.push(this)
        }
      }
      const md = navigator.mediaDevices
      const gum = md.getUserMedia.bind(md)
      window.__streams = []
      md.getUserMedia = async (c) => {
        const s = await gum(c?.video ? { ...c, video } : c)
        window.__streams.push(s)
        return s
      }
    },
    { video, relayOnly },
  )
}
