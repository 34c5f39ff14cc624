// End-to-end test of forwarding and favourites in the browser: Ann picks two messages of her
// chat with Bob (one of each) in multi-select mode and forwards them to Cat as one chat-history card; Cat
// sees the card ("Chat history of Bob and Ann") and opens it; Ann saves a message and finds it
// in Saved by searching.
//
//   CHINWAG_BIN=$CARGO_TARGET_DIR/debug/chinwag node e2e/forward.mjs
//   SCREENSHOTS=/tmp/shots node e2e/forward.mjs   # also the card and Saved, desktop and phone, en and zh-CN
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
const users = {
  ann: { username: `ann${run}`, nickname: 'Ann', password: 'forward proof password 1' },
  bob: { username: `bob${run}`, nickname: 'Bob', password: 'forward proof password 2' },
  cat: { username: `cat${run}`, nickname: 'Cat', password: 'forward proof password 3' },
}
const s = {} // name -> { token, user }
const dm = (a, b) => `d:${Math.min(s[a].user.id, s[b].user.id)}:${Math.max(s[a].user.id, s[b].user.id)}`

const api = (who, method, path, body) => lib.apiCall(base, s[who].token, method, path, body)

const befriend = (a, b) => lib.befriendApi(base, s[a], s[b])

async function shot(page, name) {
  if (!SHOTS) return
  mkdirSync(SHOTS, { recursive: true })
  await lib.settled(page)
  await page.screenshot({ path: join(SHOTS, `${name}.png`) })
}

before(async () => {
  srv = await lib.startServer()
  base = srv.base
  browser = await lib.launchBrowser()
  for (const [name, u] of Object.entries(users)) s[name] = await lib.registerApi(base, u)
  await befriend('ann', 'bob')
  await befriend('ann', 'cat')
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
  }
})

/** Opens the action menu of the stored message whose text is `text`. */
async function menuOf(page, text) {
  await storedMessages(page, text).locator('.bubble').click({ button: 'right' })
  await page.getByTestId('message-menu').waitFor({ timeout: T })
}

test('multi-select two messages and forward them to another chat as a chat-history card', async () => {
  const bob = await lib.sessionPage(browser, base, 'bob', s.bob.token)
  await bob.page.goto(`${base}/chat/${dm('ann', 'bob')}`)
  await send(bob.page, 'Lunch at noon?')
  await waitForCount(storedMessages(bob.page, 'Lunch at noon?'), 1)
  await bob.ctx.close()
  const { page } = await lib.sessionPage(browser, base, 'ann', s.ann.token)
  await page.goto(`${base}/chat/${dm('ann', 'bob')}`)
  await waitForCount(storedMessages(page, 'Lunch at noon?'), 1)
  await send(page, '好的，十二点见')
  await waitForCount(storedMessages(page, '好的，十二点见'), 1)

  await menuOf(page, 'Lunch at noon?')
  await page.getByTestId('message-select').click()
  await page.getByTestId('select-bar').waitFor({ timeout: T })
  await page.getByTestId('pick-row').filter({ has: page.getByText('好的，十二点见', { exact: true }) }).click()
  await page.getByTestId('select-bar').getByText('2 selected').waitFor({ timeout: T })
  assert.equal(await page.getByTestId('pick').and(page.locator(':checked')).count(), 2)
  await shot(page, 'multi-select-en')
  await page.getByTestId('select-forward').click()

  const dialog = page.getByTestId('forward-dialog')
  await dialog.waitFor({ timeout: T })
  await page.getByTestId('forward-search').fill('Cat')
  await page.getByTestId(`forward-target-${dm('ann', 'cat')}`).click()
  await page.getByTestId('forward-card').check()
  await shot(page, 'forward-dialog-en')
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/forward') && r.request().method() === 'POST')
  await page.getByTestId('forward-send').click()
  const res = await answered
  assert.equal(res.status(), 200)
  const { results } = await res.json()
  assert.equal(results[0].messages[0].content.kind, 'history')
  await page.getByTestId('chat-notice').getByText('Forwarded').waitFor({ timeout: T })
  assert.equal(await page.getByTestId('select-bar').count(), 0, 'multi-select ends after the forward')
  s.annPage = page
})

test('the other user sees the card and opens it', async () => {
  const { page } = await lib.sessionPage(browser, base, 'cat', s.cat.token)
  await page.goto(`${base}/chat/${dm('ann', 'cat')}`)
  const card = page.getByTestId('history-card')
  await card.waitFor({ timeout: T })
  assert.match(await card.innerText(), /Chat history of Bob and Ann/)
  assert.match(await card.innerText(), /Bob: Lunch at noon\?/)
  await shot(page, 'forwarded-history-en')
  await card.click()
  const viewer = page.getByTestId('history-viewer')
  await viewer.waitFor({ timeout: T })
  await waitForCount(viewer.getByTestId('history-item'), 2)
  await viewer.getByText('好的，十二点见').waitFor({ timeout: T })
  await shot(page, 'forwarded-history-viewer-en')
  await page.keyboard.press('Escape')
  await viewer.waitFor({ state: 'detached', timeout: T })
  if (SHOTS) {
    await page.setViewportSize({ width: 390, height: 844 })
    await shot(page, 'forwarded-history-phone-en')
  }
})

test('save a message and find it in Saved by searching', async () => {
  const page = lib.need(s.annPage, "Ann's page", 'multi-select two messages and forward them')
  await menuOf(page, '好的，十二点见')
  const saved = page.waitForResponse((r) => r.url().endsWith('/api/favorites') && r.request().method() === 'POST')
  await page.getByTestId('message-save').click()
  assert.equal((await saved).status(), 201)
  await page.getByTestId('nav-saved').click()
  await page.getByTestId('saved-view').waitFor({ timeout: T })
  await waitForCount(page.getByTestId('saved-item'), 1)
  await page.getByTestId('saved-search').fill('十二点')
  await page.getByTestId('saved-item').getByText('好的，十二点见').waitFor({ timeout: T })
  await page.getByTestId('saved-search').fill('nothing like this')
  await waitForCount(page.getByTestId('saved-item'), 0)
  await page.getByTestId('saved-search').fill('')
  await waitForCount(page.getByTestId('saved-item'), 1)
  await shot(page, 'saved-en')
})

test('Chinese screenshots of the card and Saved', { skip: !SHOTS }, async () => {
  const { page } = await lib.sessionPage(browser, base, 'cat-zh', s.cat.token, { locale: 'zh-CN' })
  await page.goto(`${base}/chat/${dm('ann', 'cat')}`)
  await page.getByTestId('history-card').waitFor({ timeout: T })
  await shot(page, 'forwarded-history-zh')
  await page.setViewportSize({ width: 390, height: 844 })
  await shot(page, 'forwarded-history-phone-zh')
  const ann = await lib.sessionPage(browser, base, 'ann-zh', s.ann.token, { locale: 'zh-CN', colorScheme: 'dark' })
  await ann.page.goto(`${base}/saved`)
  await waitForCount(ann.page.getByTestId('saved-item'), 1)
  await shot(ann.page, 'saved-zh-dark')
  await ann.page.setViewportSize({ width: 390, height: 844 })
  await shot(ann.page, 'saved-phone-zh-dark')
  await ann.page.goto(`${base}/`)
  await ann.page.getByTestId('nav-saved').waitFor({ timeout: T })
  await shot(ann.page, 'list-phone-zh-dark')
  await ann.page.goto(`${base}/chat/${dm('ann', 'bob')}`)
  await storedMessages(ann.page, 'Lunch at noon?').locator('.bubble').click({ button: 'right' })
  await ann.page.getByTestId('message-select').click()
  await ann.page.getByTestId('select-bar').waitFor({ timeout: T })
  await shot(ann.page, 'multi-select-phone-zh-dark')
  await ann.page.getByTestId('select-forward').click()
  await ann.page.getByTestId('forward-dialog').waitFor({ timeout: T })
  await shot(ann.page, 'forward-dialog-phone-zh-dark')
})
