// End-to-end test of the settings blocks and the admin area's paged lists (users, groups, the
// audit log): paging forward and back with the range line, a search that starts again at the
// first page, the empty state, an action's refusal shown in the list, "Load more" in the audit
// log; and the settings blocks' save, cancel and status lines, theme and language.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/health.mjs
//   SCREENSHOTS=/tmp/shots node e2e/health.mjs   # also saves settings and the admin lists, en and zh-CN, desktop and phone
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, apiOk, waitForCount } from './lib.mjs'

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const pw = 'health proof password'
const ada = { username: `ada${run}`, nickname: 'Ada', password: pw }
// 24 more users, so the users list has two pages of 20 (25 users in all).
const others = Array.from({ length: 24 }, (_, i) => ({ username: `u${run}${String(i + 1).padStart(2, '0')}`, nickname: `User ${i + 1}`, password: pw }))
let A // ada's { token, user }
let page

before(async () => {
  srv = await lib.startServer({ env: { CHINWAG_AUTH__REGISTRATIONS_PER_IP_PER_HOUR: '1000', CHINWAG_TURN__ENABLED: 'false' } })
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

const rows = (testid) => page.getByTestId(testid).locator('ul.admin-rows > li')

test('setup: an administrator, 24 users, three groups and 60 audit entries, through the API', async () => {
  A = await lib.registerApi(base, ada) // the first user is the administrator
  const made = []
  for (const u of others) made.push(await lib.registerApi(base, u))
  await lib.befriendApi(base, A, made[0])
  await lib.befriendApi(base, A, made[1])
  for (const name of ['Walkers', 'Readers', 'Cooks']) await apiOk(base, A.token, 'POST', '/api/groups', { name, members: [made[0].user.id, made[1].user.id] })
  const last = made[made.length - 1].user.id
  for (let i = 0; i < 30; i++) {
    await apiOk(base, A.token, 'POST', `/api/admin/users/${last}/disable`, {})
    await apiOk(base, A.token, 'POST', `/api/admin/users/${last}/enable`, {})
  }
  ;({ page } = await lib.sessionPage(browser, base, 'ada', A.token))
})

test('admin users: pages of 20 forward and back, a search starts at page one, the empty state, a refusal', async () => {
  await page.goto(`${base}/admin/users`)
  await waitForCount(rows('admin-users'), 20)
  const pager = page.getByTestId('admin-users').locator('.pager')
  await pager.getByText('1–20 of 25').waitFor({ timeout: T })
  assert.ok(await page.getByTestId('admin-prev').isDisabled())
  await page.getByTestId('admin-next').click()
  await waitForCount(rows('admin-users'), 5)
  await pager.getByText('21–25 of 25').waitFor({ timeout: T })
  assert.ok(await page.getByTestId('admin-next').isDisabled())
  await page.getByTestId('admin-prev').click()
  await pager.getByText('1–20 of 25').waitFor({ timeout: T })
  await waitForCount(rows('admin-users'), 20)
  await page.getByTestId('admin-next').click()
  await pager.getByText('21–25 of 25').waitFor({ timeout: T })
  // A search from page two starts again at the first page: 9 users match "…0" (01 to 09).
  await page.getByTestId('admin-user-search').fill(`u${run}0`)
  await waitForCount(rows('admin-users'), 9)
  await pager.getByText('1–9 of 9').waitFor({ timeout: T })
  assert.equal(await page.getByTestId('admin-next').count(), 0, 'one page: no pager buttons')
  await page.getByTestId('admin-user-search').fill('nobody-at-all')
  await page.getByTestId('admin-users').getByText('Nothing found.').waitFor({ timeout: T })
  await waitForCount(rows('admin-users'), 0)
  // The server's refusal shows above the list.
  await page.getByTestId('admin-user-search').fill(ada.username)
  await page.getByTestId(`admin-user-${ada.username}`).getByTestId('admin-user-actions').click()
  await page.getByTestId('admin-user-demote').click()
  await page.getByTestId('admin-error').getByText(/at least one administrator/).waitFor({ timeout: T })
  // An action's success line, and the row replaced in place.
  await page.getByTestId('admin-user-search').fill(others[2].username)
  await page.getByTestId(`admin-user-${others[2].username}`).getByTestId('admin-user-actions').click()
  await page.getByTestId('admin-user-promote').click()
  await page.getByTestId(`admin-user-${others[2].username}`).getByText('Admin', { exact: true }).waitFor({ timeout: T })
  assert.equal(await page.getByTestId('admin-error').count(), 0, 'a success clears the earlier error')
})

test('admin groups: the list, a search, disable with confirmation, the list reloaded', async () => {
  await page.getByTestId('admin-tab-groups').click()
  await waitForCount(rows('admin-groups'), 3)
  await page.getByTestId('admin-groups').locator('.pager').getByText('1–3 of 3').waitFor({ timeout: T })
  await page.getByTestId('admin-group-search').fill('Read')
  await waitForCount(rows('admin-groups'), 1)
  const readers = rows('admin-groups').filter({ hasText: 'Readers' })
  await readers.getByTestId('admin-group-disable').click()
  await page.getByTestId('confirm-ok').click()
  await readers.getByTestId('admin-group-enable').waitFor({ timeout: T })
  await page.getByTestId('admin-group-search').fill('nothing like it')
  await page.getByTestId('admin-groups').getByText('Nothing found.').waitFor({ timeout: T })
})

test('admin audit log: 50 entries, then "Load more" brings the rest and goes away', async () => {
  await page.getByTestId('admin-tab-audit').click()
  await waitForCount(page.getByTestId('audit-entry'), 50)
  // 60 disable/enable, the promotion and the group's disabling.
  await page.getByTestId('admin-audit').getByRole('button', { name: 'Load more' }).click()
  await waitForCount(page.getByTestId('audit-entry'), 62)
  await waitForCount(page.getByTestId('admin-audit').getByRole('button', { name: 'Load more' }), 0)
})

test('settings: the profile block saves and cancels with its status line; theme and language apply', async () => {
  await page.goto(`${base}/settings`)
  const save = page.getByTestId('settings-save-profile')
  assert.ok(await save.isDisabled(), 'nothing to save yet')
  await page.getByTestId('settings-nickname').fill('Ada L.')
  await page.getByTestId('settings-view').getByRole('button', { name: 'Cancel' }).click()
  assert.equal(await page.getByTestId('settings-nickname').inputValue(), 'Ada')
  await page.getByTestId('settings-signature').fill('Notes on the engine.')
  await save.click()
  await page.getByTestId('settings-view').getByRole('status').getByText('Saved').waitFor({ timeout: T })
  await page.getByTestId('settings-view').locator('.me-sig').getByText('Notes on the engine.').waitFor({ timeout: T })
  await page.getByTestId('settings-theme').getByText('Dark').click()
  await page.locator('html[data-theme="dark"]').waitFor({ state: 'attached', timeout: T })
  await page.getByTestId('settings-theme').getByText('System').click()
  await page.locator('html[data-theme="light"]').waitFor({ state: 'attached', timeout: T })
  await page.getByTestId('settings-language').selectOption('zh-CN')
  await page.getByTestId('settings-save-profile').getByText('保存').waitFor({ timeout: T })
  await page.getByTestId('settings-language').selectOption('en')
  await page.getByTestId('settings-save-profile').getByText('Save').waitFor({ timeout: T })
  await page.getByTestId('settings-admin').waitFor()
  await page.getByTestId('settings-view').getByTestId('settings-change-password').waitFor()
  await page.context().close()
})

test('screenshots: settings and the admin users and groups lists, en and zh-CN, desktop and phone', { skip: !SHOTS }, async () => {
  mkdirSync(SHOTS, { recursive: true })
  const variants = [
    { tag: 'en-desktop', locale: 'en-US', viewport: { width: 1280, height: 800 } },
    { tag: 'en-phone', locale: 'en-US', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    { tag: 'zh-desktop', locale: 'zh-CN', viewport: { width: 1280, height: 800 } },
    { tag: 'zh-phone', locale: 'zh-CN', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    { tag: 'en-desktop-dark', locale: 'en-US', viewport: { width: 1280, height: 800 }, colorScheme: 'dark' },
  ]
  for (const { tag, ...opts } of variants) {
    const { ctx, page: p } = await lib.sessionPage(browser, base, tag, A.token, opts)
    await p.goto(`${base}/settings`)
    await p.getByTestId('settings-save-profile').waitFor()
    await lib.settled(p)
    await p.screenshot({ path: join(SHOTS, `${tag}-settings.png`) })
    await p.getByTestId('logout').scrollIntoViewIfNeeded()
    await lib.settled(p)
    await p.screenshot({ path: join(SHOTS, `${tag}-settings-end.png`) })
    await p.goto(`${base}/admin/users`)
    await waitForCount(p.getByTestId('admin-users').locator('ul.admin-rows > li'), 20)
    await lib.settled(p)
    await p.screenshot({ path: join(SHOTS, `${tag}-admin-users.png`) })
    await p.getByTestId('admin-next').scrollIntoViewIfNeeded()
    await lib.settled(p)
    await p.screenshot({ path: join(SHOTS, `${tag}-admin-users-pager.png`) })
    await p.goto(`${base}/admin/groups`)
    await waitForCount(p.getByTestId('admin-groups').locator('ul.admin-rows > li'), 3)
    await lib.settled(p)
    await p.screenshot({ path: join(SHOTS, `${tag}-admin-groups.png`) })
    await ctx.close()
  }
  console.log(`screenshots in ${SHOTS}`)
})
