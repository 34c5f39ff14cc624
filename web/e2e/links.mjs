// End-to-end test of link previews: a small web site of our own on 127.0.0.1 (opened through
// `links.allow`), a message with its URL, and the card under the message with the page's title,
// description, site name and image, all served by Chinwag: the browsers never contact the site.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/links.mjs
//   SCREENSHOTS=/tmp/shots node e2e/links.mjs     # also saves the chat with its card, en and zh-CN
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { deflateSync, crc32 } from 'node:zlib'
import * as lib from './lib.mjs'
import { SHOTS, T, send, storedMessages, waitForCount } from './lib.mjs'

let srv
let site
let siteBase
let browser
const hits = []
const run = Date.now().toString(36).slice(-5)
const ann = { username: `ann${run}`, nickname: 'Ann', password: 'links proof password 1' }
const ben = { username: `ben${run}`, nickname: 'Ben', password: 'links proof password 2' }

/** A 480x300 PNG: a warm gradient with a round "plate" in the middle. */
function png() {
  const [w, h] = [480, 300]
  const raw = Buffer.alloc((w * 3 + 1) * h)
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0
    for (let x = 0; x < w; x++) {
      const i = y * (w * 3 + 1) + 1 + x * 3
      const d = Math.hypot(x - w / 2, y - h / 2)
      const plate = d < 110 ? (d < 80 ? [250, 196, 70] : [245, 245, 240]) : [230 - y / 6, 120 + x / 8, 60]
      raw.set(plate.map((v) => Math.max(0, Math.min(255, Math.round(v)))), i)
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<title>Fallback</title>
<meta property="og:title" content="Golden Noodle House &mdash; hand-pulled noodles">
<meta property="og:description" content="Twelve kinds of hand-pulled noodles, dumplings made every morning, and a chili oil people cross town for.">
<meta property="og:site_name" content="City Food Guide">
<meta property="og:image" content="/images/noodles.png">
</head><body>An article</body></html>`

before(async () => {
  const image = png()
  site = createServer((req, res) => {
    hits.push(req.url)
    if (req.url === '/article') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(PAGE)
    } else if (req.url === '/images/noodles.png') {
      res.writeHead(200, { 'content-type': 'image/png' })
      res.end(image)
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  await new Promise((r) => site.listen(0, '127.0.0.1', r))
  siteBase = `http://127.0.0.1:${site.address().port}`
  srv = await lib.startServer({ env: { CHINWAG_LINKS__PREVIEWS: 'true', CHINWAG_LINKS__ALLOW: '["127.0.0.1/32"]' } })
  browser = await lib.launchBrowser()
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
    site?.close()
  }
})

/** Fails the test if the page ever asks the linked site for anything. */
function guard(page, who) {
  page.on('request', (r) => {
    if (r.url().startsWith(siteBase)) assert.fail(`${who}'s browser contacted the linked site: ${r.url()}`)
  })
}

test('a message with a link shows the preview card, fetched by the server only', async () => {
  const a = await lib.newUserPage(browser, 'ann')
  const b = await lib.newUserPage(browser, 'ben')
  guard(a.page, 'Ann')
  guard(b.page, 'Ben')
  await lib.register(srv.base, a.page, ann)
  await lib.register(srv.base, b.page, ben)
  const { page } = a
  await page.getByTestId('new-chat').click()
  await page.getByTestId('user-search').fill(ben.username)
  await page.getByTestId(`user-result-${ben.username}`).click()
  await page.waitForURL(/\/chat\//)
  const conv = decodeURIComponent(new URL(page.url()).pathname.split('/').pop())
  await send(page, 'Lunch tomorrow? I found a place.')
  const text = `Have a look: ${siteBase}/article`
  // The draft shows the card before it is sent; sending clears it.
  await page.getByTestId('composer-input').fill(text)
  await page.getByTestId('composer-link-preview').getByTestId('link-preview-title').waitFor({ timeout: T })
  await page.getByTestId('composer-input').press('Enter')
  await waitForCount(page.getByTestId('composer-link-preview'), 0)
  await waitForCount(storedMessages(page, text), 1)

  const card = storedMessages(page, text).getByTestId('link-preview')
  await card.waitFor({ timeout: T })
  assert.equal(await card.getByTestId('link-preview-title').textContent(), 'Golden Noodle House — hand-pulled noodles')
  assert.match(await card.textContent(), /City Food Guide/)
  assert.match(await card.textContent(), /dumplings made every morning/)
  assert.equal(await card.getAttribute('href'), `${siteBase}/article`)
  const img = card.getByTestId('link-preview-image')
  await lib.poll(() => img.evaluate((el) => el.complete && el.naturalWidth), (w) => w > 0, 'the thumbnail loads')
  const src = await img.getAttribute('src')
  assert.match(src, /^\/api\/files\/[0-9a-f]{32}\/thumb$/, 'the image comes from Chinwag')

  // Ben sees the same card; the server answers from its cache, so the site saw one fetch each.
  await b.page.goto(`${srv.base}/chat/${encodeURIComponent(conv)}`)
  const bcard = storedMessages(b.page, text).getByTestId('link-preview')
  await bcard.waitFor({ timeout: T })
  assert.equal(await bcard.getByTestId('link-preview-title').textContent(), 'Golden Noodle House — hand-pulled noodles')
  assert.deepEqual(hits.sort(), ['/article', '/images/noodles.png'])
  await send(b.page, 'Looks great, count me in!')
  await waitForCount(storedMessages(page, 'Looks great, count me in!'), 1)

  // A message without a link has no card.
  assert.equal(await storedMessages(page, 'Lunch tomorrow? I found a place.').getByTestId('link-preview').count(), 0)

  if (SHOTS) await shots(page, conv, text)
  await b.ctx.close()
  await a.ctx.close()
})

/** The chat with its card at 1280x800 and 390x844, English and Chinese, light and dark. */
async function shots(page, conv, text) {
  mkdirSync(SHOTS, { recursive: true })
  for (const [lang, theme] of [
    ['en', 'light'],
    ['zh-CN', 'light'],
    ['en', 'dark'],
  ]) {
    await page.evaluate(
      ([l, th]) => {
        const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
        localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, locale: l, theme: th }))
      },
      [lang, theme],
    )
    for (const [size, viewport] of [
      ['desktop', { width: 1280, height: 800 }],
      ['phone', { width: 390, height: 844 }],
    ]) {
      await page.setViewportSize(viewport)
      await page.goto(`${srv.base}/chat/${encodeURIComponent(conv)}`)
      const img = storedMessages(page, text).getByTestId('link-preview-image')
      await img.waitFor({ timeout: T })
      await lib.poll(() => img.evaluate((el) => el.complete && el.naturalWidth), (w) => w > 0, 'the thumbnail loads')
      await page.screenshot({ path: join(SHOTS, `link-preview-${size}-${lang}-${theme}.png`) })
      // The draft's card above the composer.
      await page.getByTestId('composer-input').fill(`${siteBase}/article`)
      const draft = page.getByTestId('composer-link-preview').getByTestId('link-preview-image')
      await draft.waitFor({ timeout: T })
      await lib.poll(() => draft.evaluate((el) => el.complete && el.naturalWidth), (w) => w > 0, 'the draft thumbnail loads')
      await page.screenshot({ path: join(SHOTS, `link-preview-draft-${size}-${lang}-${theme}.png`) })
      await page.getByTestId('composer-input').fill('')
    }
  }
}
