// End-to-end checks of the everyday fixes of issue #13: the 1:1 header shows the partner's
// presence from the first render, the group notice reaches members (system line and a banner
// until dismissed), a reply to a recalled message shows "Recalled message" in its quote.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/polish.mjs
//   SCREENSHOTS=/tmp/shots node e2e/polish.mjs     # also saves the banner and the quote, en and zh-CN
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, waitForCount } from './lib.mjs'

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const alice = { username: `alice${run}`, nickname: 'Alice', password: 'polish password 1' }
const bob = { username: `bob${run}`, nickname: 'Bob', password: 'polish password 2' }
const carol = { username: `carol${run}`, nickname: 'Carol', password: 'polish password 3' }
let A, B, C // { token, user }
let a, b // pages
let dconv, gconv, gid

before(async () => {
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

const api = (token, method, path, body) => lib.apiOk(base, token, method, path, body)

/** Sends over a raw socket of `page` (same origin, the page's session), returns the stored message. */
function sendRaw(page, conv, text, replyTo) {
  return page.evaluate(
    async ({ conv, text, replyTo }) => {
      const ws = new WebSocket(`ws://${location.host}/api/ws`)
      await new Promise((r, j) => ((ws.onopen = r), (ws.onerror = j)))
      const cid = `raw-${Math.random()}`
      const acked = new Promise((r, j) => {
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data)
          if (f.type === 'ack' && f.client_id === cid) r(f.message)
          if (f.type === 'error' && f.client_id === cid) j(new Error(`${f.code}: ${f.message}`))
        }
      })
      ws.send(JSON.stringify({ type: 'send', client_id: cid, conv, content: { kind: 'text', text }, ...(replyTo ? { reply_to: replyTo } : {}) }))
      const m = await acked
      ws.close()
      return m
    },
    { conv, text, replyTo },
  )
}

async function setLocale(page, locale) {
  await page.evaluate((l) => {
    const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
    localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, locale: l }))
  }, locale)
}

/** Saves `name` at both sizes in both languages; `ready` waits for the subject after each load. */
async function shots(page, name, path, ready) {
  if (!SHOTS) return
  mkdirSync(SHOTS, { recursive: true })
  for (const locale of ['en', 'zh-CN']) {
    await setLocale(page, locale)
    for (const [size, viewport] of [
      ['desktop', { width: 1280, height: 800 }],
      ['phone', { width: 390, height: 844 }],
    ]) {
      await page.setViewportSize(viewport)
      await page.goto(base + path)
      await ready()
      await lib.settled(page)
      await page.screenshot({ path: join(SHOTS, `${name}-${size}-${locale}.png`) })
    }
  }
  await setLocale(page, 'en')
  await page.setViewportSize({ width: 1280, height: 800 })
  await page.goto(base + path)
}

test('setup: three users, contacts, a group', async () => {
  A = await lib.registerApi(base, alice)
  B = await lib.registerApi(base, bob)
  C = await lib.registerApi(base, carol)
  for (const o of [B, C]) {
    await lib.befriendApi(base, A, o)
  }
  const g = await api(A.token, 'POST', '/api/groups', { name: 'Hiking', members: [B.user.id, C.user.id] })
  gid = g.id
  gconv = `g:${gid}`
  const [lo, hi] = [A.user.id, B.user.id].sort((x, y) => x - y)
  dconv = `d:${lo}:${hi}`
  ;({ page: b } = await lib.sessionPage(browser, base, 'bob', B.token))
  await b.goto(`${base}/`)
  await b.getByTestId('conversation-list').waitFor({ timeout: T })
  ;({ page: a } = await lib.sessionPage(browser, base, 'alice', A.token))
})

test('presence: the 1:1 header says the partner is online from the first render', async () => {
  // Dan is no contact of alice's and shares no group with her (the contact and member lists
  // bring their people's state along): a 1:1 chat partner only. He is online before she loads
  // the page and does not reconnect.
  const dan = { username: `dan${run}`, nickname: 'Dan', password: 'polish password 4' }
  const D = await lib.registerApi(base, dan)
  const { ctx, page: d } = await lib.sessionPage(browser, base, 'dan', D.token)
  await d.goto(`${base}/`)
  await d.getByTestId('conversation-list').waitFor({ timeout: T })
  const [lo, hi] = [A.user.id, D.user.id].sort((x, y) => x - y)
  await sendRaw(d, `d:${lo}:${hi}`, 'hello Alice, it is Dan')
  await a.goto(`${base}/chat/d:${lo}:${hi}`)
  await a.getByTestId('chat-subtitle').filter({ hasText: 'Online' }).waitFor({ timeout: T })
  // And "last seen" once he is gone, after a fresh load too.
  await ctx.close()
  await a.getByTestId('chat-subtitle').filter({ hasText: /last seen/i }).waitFor({ timeout: T })
  await a.reload()
  await a.getByTestId('chat-subtitle').filter({ hasText: /last seen/i }).waitFor({ timeout: T })
})

test('group notice: members read it in the system line and in a banner until they dismiss it', async () => {
  const notice = 'Meet at the north gate at 8:00, bring water.'
  await b.goto(`${base}/chat/${gconv}`)
  await b.getByTestId('message-list').waitFor({ timeout: T })
  await api(A.token, 'PATCH', `/api/groups/${gid}`, { notice })
  await b.getByTestId('system-message').filter({ hasText: `changed the group notice: ${notice}` }).waitFor({ timeout: T })
  await b.getByTestId('notice-banner-text').filter({ hasText: notice }).waitFor({ timeout: T })
  await shots(b, 'notice-banner', `/chat/${gconv}`, () => b.getByTestId('notice-banner').waitFor({ timeout: T }))
  await b.getByTestId('notice-dismiss').click()
  await waitForCount(b.getByTestId('notice-banner'), 0)
  // Remembered on this device: a new visit does not bring it back...
  await b.reload()
  await b.getByTestId('system-message').filter({ hasText: notice }).waitFor({ timeout: T })
  assert.equal(await b.getByTestId('notice-banner').count(), 0)
  // ...but a new notice does.
  await api(A.token, 'PATCH', `/api/groups/${gid}`, { notice: 'Changed: the south gate.' })
  await b.getByTestId('notice-banner-text').filter({ hasText: 'Changed: the south gate.' }).waitFor({ timeout: T })
})

test('recall: a reply that quoted the recalled message shows "Recalled message", live and after a reload', async () => {
  await a.goto(`${base}/chat/${gconv}`)
  await a.getByTestId('message-list').waitFor({ timeout: T })
  const secret = await sendRaw(b, gconv, 'the secret plan')
  await sendRaw(a, gconv, 'sounds good', secret.seq)
  const quote = a.getByTestId('message-quote')
  await quote.filter({ hasText: 'the secret plan' }).waitFor({ timeout: T })
  const r = await b.evaluate(
    async ({ conv, seq }) => (await fetch(`/api/conversations/${conv}/messages/${seq}/recall`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status,
    { conv: gconv, seq: secret.seq },
  )
  assert.equal(r, 200)
  await quote.filter({ hasText: 'Recalled message' }).waitFor({ timeout: T })
  assert.equal(await a.getByTestId('message-list').getByText('the secret plan').count(), 0)
  await a.reload()
  await quote.filter({ hasText: 'Recalled message' }).waitFor({ timeout: T })
  assert.equal(await a.getByTestId('message-list').getByText('the secret plan').count(), 0)
  await shots(a, 'recalled-quote', `/chat/${gconv}`, () => quote.first().waitFor({ timeout: T }))
})

test('small ones: mentions of me and bare www links in messages, search hits, the phone header, the row button, typing', async () => {
  await a.setViewportSize({ width: 1280, height: 800 })
  await a.goto(`${base}/chat/${gconv}`)
  await a.getByTestId('message-list').waitFor({ timeout: T })
  await sendRaw(b, gconv, `@${alice.nickname} the map is at www.example.org, ask @${carol.nickname}`)
  const mark = a.getByTestId('mention-me')
  await mark.waitFor({ timeout: T })
  assert.deepEqual(await mark.allTextContents(), [`@${alice.nickname}`], 'only the mention of me is highlighted')
  assert.equal(await a.getByTestId('message-list').getByRole('link', { name: 'www.example.org' }).getAttribute('href'), 'https://www.example.org')

  // Search: the hit's words are marked.
  await a.getByTestId('conversation-filter').fill('map')
  await a.getByTestId('search-hit').first().waitFor({ timeout: T })
  assert.deepEqual(await a.getByTestId('search-mark').allTextContents(), ['map'])
  await a.getByTestId('conversation-filter').fill('')
  // The results go with the text, so the rows below them are where they stay for the hover.
  await waitForCount(a.getByTestId('search-results'), 0)

  // The row's hover button leaves the mute icon visible.
  await api(A.token, 'PATCH', `/api/conversations/${gconv}`, { muted: true })
  const row = a.locator(`li:has([data-testid="row-more-${gconv}"])`)
  await row.getByTestId('muted-icon').waitFor({ timeout: T })
  await row.hover()
  const [icon, more] = await Promise.all([row.getByTestId('muted-icon').boundingBox(), row.getByTestId(`row-more-${gconv}`).boundingBox()])
  assert.ok(icon.x + icon.width <= more.x, `the mute icon (${JSON.stringify(icon)}) is not under the button (${JSON.stringify(more)})`)
  await api(A.token, 'PATCH', `/api/conversations/${gconv}`, { muted: false })

  // On a phone the group's name is not squeezed by the header's icons: the calls are in the menu.
  await a.setViewportSize({ width: 390, height: 844 })
  await a.getByTestId('chat-title').waitFor({ timeout: T })
  const title = await a.getByTestId('chat-title').evaluate((el) => ({ sw: el.scrollWidth, cw: el.clientWidth }))
  assert.ok(title.sw <= title.cw, `the group name fits: ${JSON.stringify(title)}`)
  assert.equal(await a.getByTestId('call-audio').isVisible(), false)
  await a.getByTestId('chat-menu').click()
  await a.getByTestId('chat-menu-call-video').waitFor({ timeout: T })
  await a.getByTestId('chat-menu').click()
  await a.setViewportSize({ width: 1280, height: 800 })

  // Typing ends when the typist's message arrives (no lingering "typing…").
  const synced = lib.frameReceived(b, 'synced')
  await b.goto(`${base}/chat/${gconv}`)
  await synced
  await b.getByTestId('composer-input').fill('on my w')
  await a.getByTestId('chat-subtitle').filter({ hasText: /typing/i }).waitFor({ timeout: T })
  // Watches a's page from now on: the header as it was drawn just before the message appeared,
  // and in the same update that drew it. "typing…" would otherwise last its own few seconds.
  await a.evaluate(() => {
    const subtitle = () => document.querySelector('[data-testid="chat-subtitle"]')?.textContent ?? ''
    const arrived = () => [...document.querySelectorAll('[data-testid="message-text"]')].some((e) => e.textContent.includes('on my way'))
    window.__typingAtMessage = new Promise((resolve) => {
      let before = subtitle()
      const obs = new MutationObserver(() => {
        if (!arrived()) return void (before = subtitle())
        obs.disconnect()
        resolve({ before, with: subtitle() })
      })
      obs.observe(document.body, { subtree: true, childList: true, characterData: true })
    })
  })
  await b.getByTestId('composer-input').fill('on my way')
  await b.getByTestId('composer-input').press('Enter')
  await a.getByTestId('message-text').filter({ hasText: 'on my way' }).waitFor({ timeout: T })
  const seen = await a.evaluate(() => window.__typingAtMessage)
  assert.match(seen.before, /typing/i, 'still typing until the message came')
  assert.doesNotMatch(seen.with, /typing/i, 'the message ended the typing')
})

test('calls: minimised to a corner window, the chat goes on; restored; hung up', async () => {
  await a.setViewportSize({ width: 1280, height: 800 })
  await a.goto(`${base}/chat/${dconv}`)
  await b.goto(`${base}/`)
  await b.getByTestId('conversation-list').waitFor({ timeout: T })
  await a.getByTestId('call-video').click()
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  await b.getByTestId('call-accept').click()
  const connected = (p) => p.waitForFunction(() => document.querySelector('[data-testid="call-screen"]')?.dataset.phase === 'connected', null, { timeout: 20_000 })
  await connected(a)
  await connected(b)
  await a.getByTestId('call-status').getByText(/^\d+:\d\d$/).waitFor({ timeout: T })

  await a.getByTestId('call-minimise').click()
  await a.locator('[data-testid="call-screen"][data-mini="true"]').waitFor({ timeout: T })
  const box = await a.getByTestId('call-screen').boundingBox()
  assert.ok(box.width <= 260 && box.height <= 200, `a small window: ${JSON.stringify(box)}`)
  // The window shows the duration and a hang-up button; the composer is usable beside it.
  const d0 = await a.getByTestId('call-status').textContent()
  assert.match(d0, /^\d+:\d\d$/)
  await lib.poll(() => a.getByTestId('call-status').textContent(), (d) => d !== d0, 'the duration ticks in the small window', 3000)
  assert.equal(await a.getByTestId('call-hangup').isVisible(), true)
  await lib.send(a, 'talking while we call')
  await waitForCount(lib.storedMessages(a, 'talking while we call'), 1)
  // The call went on meanwhile, on both sides.
  assert.equal(await a.getByTestId('call-screen').getAttribute('data-phase'), 'connected')
  assert.equal(await b.getByTestId('call-screen').getAttribute('data-phase'), 'connected')
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    for (const locale of ['en', 'zh-CN']) {
      if (locale !== 'en') {
        // Chosen in Settings and back, inside the app: a reload would end the call.
        await a.setViewportSize({ width: 1280, height: 800 })
        await a.getByTestId('nav-settings').click()
        await a.getByTestId('settings-language').selectOption(locale)
        await a.goBack()
        await a.getByTestId('message-list').waitFor({ timeout: T })
      }
      for (const [size, viewport] of [
        ['desktop', { width: 1280, height: 800 }],
        ['phone', { width: 390, height: 844 }],
      ]) {
        await a.setViewportSize(viewport)
        await lib.settled(a)
        await a.screenshot({ path: join(SHOTS, `call-minimised-${size}-${locale}.png`) })
      }
    }
    await a.setViewportSize({ width: 1280, height: 800 })
    assert.equal(await a.getByTestId('call-screen').getAttribute('data-phase'), 'connected', 'the call went on through the navigation')
  }
  await a.getByTestId('call-restore').click()
  await a.locator('[data-testid="call-screen"][data-mini="false"]').waitFor({ timeout: T })
  const full = await a.getByTestId('call-screen').boundingBox()
  assert.ok(full.width >= 1200, `the full call view again: ${JSON.stringify(full)}`)
  await a.getByTestId('call-hangup').click()
  await waitForCount(a.getByTestId('call-screen'), 0)
})
