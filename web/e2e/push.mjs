// End-to-end test of Web Push in the browser: the service worker receives pushes delivered
// through the Chrome DevTools Protocol (`ServiceWorker.deliverPushMessage`, which needs no push
// service and no subscription) and shows, replaces and closes the right notifications; the
// opt-in banner appears only after a sent message and stays away once dismissed; Settings shows
// the push switch, the preview and the quiet hours, saved on the server.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/push.mjs
//   SCREENSHOTS=/tmp/shots node e2e/push.mjs     # also saves the banner and settings, en and zh-CN
//
// What it cannot do headless: subscribe for real (Chromium's push service is Google's, off
// this machine) and click a notification (only a user's click may focus or open a window);
// tests/push-logic.test.ts covers where a click goes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, send, storedMessages, waitForCount } from './lib.mjs'

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const ann = { username: `ann${run}`, nickname: 'Ann', password: 'push proof password 1' }
const ben = { username: `ben${run}`, nickname: 'Ben', password: 'push proof password 2' }
let a // Ann's { ctx, page }
let conv

before(async () => {
  srv = await lib.startServer()
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

/** The notifications Ann's service worker shows now, as { title, tag, body, requireInteraction }. */
function shown(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready
    return (await reg.getNotifications()).map((n) => ({ title: n.title, tag: n.tag, body: n.body, requireInteraction: n.requireInteraction }))
  })
}

async function waitFor(what, fn, timeout = T) {
  const deadline = Date.now() + timeout
  let last
  while (Date.now() < deadline) {
    last = await fn()
    if (last) return last
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.fail(`timed out waiting for ${what}`)
}

test('two users; the app registers its service worker', async () => {
  a = await lib.newUserPage(browser, 'ann')
  const b = await lib.newUserPage(browser, 'ben')
  await a.ctx.grantPermissions(['notifications'], { origin: base })
  await lib.register(base, a.page, ann)
  await lib.register(base, b.page, ben)
  const scope = await a.page.evaluate(async () => (await navigator.serviceWorker.ready).scope)
  assert.equal(scope, `${base}/`)
  await b.ctx.close()
})

test('the opt-in banner shows only after a sent message, and stays away once dismissed', async () => {
  const { page } = a
  // Not on load: the app is up, the server has push, nothing was sent yet.
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
  assert.equal(await page.getByTestId('push-banner').count(), 0)
  await page.getByTestId('new-chat').click()
  await page.getByTestId('user-search').fill(ben.username)
  await page.getByTestId(`user-result-${ben.username}`).click()
  await page.waitForURL(/\/chat\//)
  conv = decodeURIComponent(new URL(page.url()).pathname.split('/').pop())
  await send(page, 'hello Ben')
  await waitForCount(storedMessages(page, 'hello Ben'), 1)
  await page.getByTestId('push-banner').waitFor({ timeout: T })
  if (SHOTS) {
    await shots('push-banner', async () => page.getByTestId('push-banner').waitFor({ timeout: T }), conv)
    // The shots ended on a new visit: a message brings the banner back.
    await send(page, 'back in English')
    await page.getByTestId('push-banner').waitFor({ timeout: T })
  }
  await page.getByTestId('push-later').click()
  await waitForCount(page.getByTestId('push-banner'), 0)
  // Remembered in this browser: a new visit and another message do not bring it back.
  await page.goto(`${base}/chat/${conv}`)
  await send(page, 'again')
  await waitForCount(storedMessages(page, 'again'), 1)
  await page.waitForTimeout(300)
  assert.equal(await page.getByTestId('push-banner').count(), 0)
})

test('settings: the device switch, the preview and the quiet hours are saved on the server', async () => {
  const { page } = a
  await page.goto(`${base}/settings`)
  await page.getByTestId('settings-push-card').waitFor({ timeout: T })
  // Notifications are granted but there is no subscription (headless has no push service).
  assert.equal(await page.getByTestId('settings-push').isChecked(), false)
  assert.equal(await page.getByTestId('settings-push').isDisabled(), false)
  await page.getByTestId('settings-push-preview').getByText('Sender only').click()
  await page.getByTestId('settings-dnd').click()
  await page.getByTestId('settings-dnd-start').waitFor({ timeout: T })
  await page.getByTestId('settings-dnd-start').fill('23:30')
  await page.getByTestId('settings-dnd-start').dispatchEvent('change')
  const saved = await waitFor('the saved settings', async () => {
    const s = await page.evaluate(async () => (await fetch('/api/push/settings')).json())
    return s.preview === 'sender' && s.dnd?.start === '23:30' ? s : null
  })
  const offset = await page.evaluate(() => -new Date().getTimezoneOffset() || 0)
  assert.deepEqual(saved, { preview: 'sender', dnd: { start: '23:30', end: '07:00', utc_offset_minutes: offset } })
  if (SHOTS) {
    await shots(
      'push-settings',
      async () => {
        await page.getByTestId('settings-dnd-start').waitFor({ timeout: T })
        // Scroll the settings pane only (scrollIntoView would move the whole shell).
        await page.getByTestId('settings-push-card').evaluate((el) => {
          const pane = el.closest('.scroll')
          pane.scrollTop = el.getBoundingClientRect().top - pane.getBoundingClientRect().top + pane.scrollTop - 12
        })
      },
      null,
      '/settings',
    )
  }
  // Back to the default so the pushes below read as the server would send them.
  await page.getByTestId('settings-push-preview').getByText('Sender and text').click()
  await page.getByTestId('settings-dnd').click()
  await waitFor('the default settings', async () => {
    const s = await page.evaluate(async () => (await fetch('/api/push/settings')).json())
    return s.preview === 'full' && s.dnd === null
  })
})

test('the service worker shows a pushed message, one notification per chat, and closes a call that ended', async () => {
  const { page, ctx } = a
  await page.goto(`${base}/`)
  await page.getByTestId('conversation-list').waitFor({ timeout: T })
  const cdp = await ctx.newCDPSession(page)
  const registrations = []
  const versions = []
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations))
  cdp.on('ServiceWorker.workerVersionUpdated', (e) => versions.push(...e.versions))
  await cdp.send('ServiceWorker.enable')
  const reg = await waitFor('the worker registration', async () =>
    registrations.find((r) => r.scopeURL === `${base}/` && !r.isDeleted) ??
    (versions.some((v) => v.runningStatus === 'running') ? { registrationId: versions.find((v) => v.runningStatus === 'running').registrationId } : null),
  )
  const deliver = (payload) =>
    cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId: reg.registrationId, data: JSON.stringify(payload) })
  /**
   * Delivers `payload` until the notifications satisfy `seen`, and returns them. DevTools answers
   * before the worker has the event, and a delivery that meets the worker while it is stopping
   * can be lost, so it is sent again after 3 s (each payload here is idempotent: the same tag and
   * contents); how often that happened is printed.
   */
  async function push(what, payload, seen) {
    const deadline = Date.now() + T
    for (let attempt = 1; Date.now() < deadline; attempt++) {
      await deliver(payload)
      const until = Date.now() + 3000
      while (Date.now() < until) {
        const list = await shown(page)
        if (seen(list)) {
          if (attempt > 1) console.log(`# ${what}: delivered ${attempt} times`)
          return list
        }
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    assert.fail(`timed out waiting for ${what}; now: ${JSON.stringify(await shown(page))}`)
  }

  let list = await push(
    'the message notification',
    { type: 'message', conv, seq: 3, sender_name: 'Ben', text: 'are you there?', mention: false, unread: 1, total_unread: 1 },
    (l) => l.some((n) => n.tag === `conv:${conv}`),
  )
  assert.deepEqual(
    list.find((n) => n.tag === `conv:${conv}`),
    { title: 'Ben', tag: `conv:${conv}`, body: 'are you there?', requireInteraction: false },
  )

  // The next message of the same chat replaces it, with the count.
  list = await push(
    'the updated notification',
    { type: 'message', conv, seq: 4, sender_name: 'Ben', text: 'hello?', mention: false, unread: 2, total_unread: 2 },
    (l) => l.some((n) => n.body === '[2] hello?'),
  )
  assert.equal(list.filter((n) => n.tag === `conv:${conv}`).length, 1)

  // A call rings until handled; its end withdraws it and leaves the chat's notification alone.
  list = await push('the call notification', { type: 'call', call: 'c0ffee', conv, media: 'video', caller_name: 'Ben' }, (l) =>
    l.some((n) => n.tag === 'call:c0ffee'),
  )
  assert.deepEqual(
    list.find((n) => n.tag === 'call:c0ffee'),
    { title: 'Ben', tag: 'call:c0ffee', body: 'Incoming video call', requireInteraction: true },
  )
  list = await push('the call notification to close', { type: 'call_end', call: 'c0ffee', conv }, (l) => !l.some((n) => n.tag === 'call:c0ffee'))
  assert.ok(list.some((n) => n.tag === `conv:${conv}`))

  // A contact request, with nothing but the fact when the preview is "none".
  list = await push('the request notification', { type: 'contact_request', user: 42 }, (l) => l.some((n) => n.tag === 'request:42'))
  assert.deepEqual(list.find((n) => n.tag === 'request:42'), { title: 'Chinwag', tag: 'request:42', body: 'New contact request', requireInteraction: false })
  await cdp.detach()
})

/**
 * Saves `name` at 1280x800 and 390x844, in English and Chinese, into SCREENSHOTS. `ready` waits
 * for what the shot is about after each reload; `path` is where to go first (the chat, or a route).
 */
async function shots(name, ready, convId, path = null) {
  mkdirSync(SHOTS, { recursive: true })
  const { page } = a
  const sizes = [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ]
  for (const lang of ['en', 'zh-CN']) {
    await page.evaluate((l) => {
      const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
      localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, locale: l }))
    }, lang)
    for (const [size, viewport] of sizes) {
      await page.setViewportSize(viewport)
      if (path) {
        await page.goto(`${base}${path}`)
      } else {
        // A message sent in this visit is what brings the banner, shown in the chat list (on a
        // phone another screen: the chat's back button goes there without a reload).
        await page.goto(`${base}/chat/${convId}`)
        await send(page, lang === 'en' ? 'one more' : '再发一条')
        await page.waitForTimeout(300)
        if (size === 'phone') await page.getByTestId('chat-back').click()
      }
      await ready()
      await page.waitForTimeout(200)
      await page.screenshot({ path: join(SHOTS, `${name}-${size}-${lang}.png`) })
    }
  }
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
    localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, locale: 'en' }))
  })
  await page.setViewportSize({ width: 1280, height: 800 })
  await page.goto(`${base}${path ?? `/chat/${convId}`}`)
}
