// End-to-end test of voice messages and attachments in the browser. Chromium's fake microphone
// (a beep) records a voice message; the other user sees its bubble with the duration and plays
// it (the progress moves). An image pasted into the composer opens the preview dialog, whose
// caption follows the image; a PDF opens in the in-app viewer, served inline and sandboxed by
// its CSP.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/media.mjs
//   SCREENSHOTS=/tmp/shots node e2e/media.mjs     # also saves the voice chat, en and zh-CN, desktop and phone
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { deflateSync } from 'node:zlib'
import * as lib from './lib.mjs'
import { SHOTS, T, poll, send, storedMessages, waitForCount } from './lib.mjs'

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const ann = { username: `ann${run}`, nickname: 'Ann', password: 'media proof password 1' }
const ben = { username: `ben${run}`, nickname: 'Ben', password: 'media proof password 2' }
let a
let b
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

/** A small PNG (a colour gradient), made here so the test needs no fixture. */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (buf) => {
    let c = 0xffffffff
    for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr.set([8, 2, 0, 0, 0], 8)
  const rows = []
  for (let y = 0; y < h; y++) {
    rows.push(0)
    for (let x = 0; x < w; x++) rows.push((x * 255) / w, (y * 255) / h, 160)
  }
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'binary'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from(rows))), chunk('IEND', Buffer.alloc(0))])
}

/** A one-page PDF saying "Chinwag". */
function pdf() {
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ]
  const stream = 'BT /F1 24 Tf 60 100 Td (Chinwag PDF) Tj ET'
  objs[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`
  let out = '%PDF-1.4\n'
  const offsets = []
  objs.forEach((o, i) => {
    offsets.push(out.length)
    out += `${i + 1} 0 obj\n${o}\nendobj\n`
  })
  const xref = out.length
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`
  return Buffer.from(out)
}

const voices = (page) => page.getByTestId('message-list').getByTestId('message').filter({ has: page.getByTestId('voice') })

/** Records `secs` seconds from the fake microphone: click to start, watch the timer, send. */
async function recordVoice(page, secs) {
  await page.getByTestId('voice-record').click()
  await page.getByTestId('voice-recording').waitFor({ timeout: T })
  await poll(() => page.getByTestId('voice-timer').textContent(), (t) => t.startsWith(`0:0${secs}`), `the timer at ${secs} s`)
  await page.getByTestId('voice-send').click()
  await waitForCount(page.getByTestId('voice-recording'), 0)
}

test('Ann records a voice message with the fake microphone; Ben sees it and plays it', async () => {
  a = await lib.newUserPage(browser, 'ann')
  b = await lib.newUserPage(browser, 'ben')
  await lib.register(base, a.page, ann)
  await lib.register(base, b.page, ben)
  const { page } = a
  await page.getByTestId('new-chat').click()
  await page.getByTestId('user-search').fill(ben.username)
  await page.getByTestId(`user-result-${ben.username}`).click()
  await page.waitForURL(/\/chat\//)
  conv = decodeURIComponent(new URL(page.url()).pathname.split('/').pop())
  await send(page, 'listen to this')
  await waitForCount(storedMessages(page, 'listen to this'), 1)

  // Cancelling throws the recording away.
  await page.getByTestId('voice-record').click()
  await page.getByTestId('voice-recording').waitFor({ timeout: T })
  await page.getByTestId('voice-cancel').click()
  await waitForCount(page.getByTestId('voice-recording'), 0)

  await recordVoice(page, 2)
  await waitForCount(voices(page), 1)
  const stored = await poll(
    () => page.evaluate(async (c) => (await (await fetch(`/api/conversations/${encodeURIComponent(c)}/messages`)).json()).messages, conv),
    (ms) => ms.some((m) => m.content.kind === 'voice'),
    'the stored voice message',
  )
  const v = stored.find((m) => m.content.kind === 'voice').content
  assert.ok(v.duration_ms >= 1200 && v.duration_ms <= 4000, `duration ${v.duration_ms}`)
  assert.ok(v.waveform.length >= 16 && v.waveform.length <= 64, 'a waveform')
  assert.ok(Math.max(...v.waveform) > 0, 'the beep is in the waveform')
  assert.match(v.mime, /webm|ogg/)
  await recordVoice(page, 2)
  await waitForCount(voices(page), 2)

  const bp = b.page
  await bp.goto(`${base}/chat/${conv}`)
  await waitForCount(voices(bp), 2)
  const first = voices(bp).first()
  // The bubble shows the stored length to the nearest second (a 2 s timer can stop on 1.4 s of
  // audio when the machine is busy, so the stored length, not the timer, is what it must show).
  assert.equal(await first.getByTestId('voice-duration').textContent(), `0:0${Math.max(1, Math.round(v.duration_ms / 1000))}`)
  assert.equal(await bp.getByTestId('voice-unheard').count(), 2)
  await first.getByTestId('voice-rate').click()
  assert.equal(await first.getByTestId('voice-rate').textContent(), '1.5×')
  await first.getByTestId('voice-play').click()
  await poll(() => first.getByTestId('voice').getAttribute('data-progress'), (p) => Number(p) > 0, 'playback progress')
  // When the first ends, the next unheard one plays on by itself.
  const second = voices(bp).nth(1)
  await poll(() => second.getByTestId('voice').getAttribute('data-progress'), (p) => Number(p) > 0, 'the next one playing on', 20_000)
  await waitForCount(bp.getByTestId('voice-unheard'), 0)
  const list = await bp.evaluate(async () => (await (await fetch('/api/conversations')).json()).conversations)
  assert.ok(list.length >= 1)
})

test('on a phone: hold to record and release to send; slide away to cancel', async () => {
  const { page } = b
  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(`${base}/chat/${conv}`)
  await waitForCount(voices(page), 2)
  const mic = page.getByTestId('voice-record')
  const touch = (type, dx = 0) =>
    mic.evaluate(
      (el, [type, dx]) => {
        const r = el.getBoundingClientRect()
        const init = { pointerType: 'touch', pointerId: 7, isPrimary: true, bubbles: true, cancelable: true, clientX: r.x + 10 + dx, clientY: r.y + 10 }
        el.dispatchEvent(new PointerEvent(type, init))
      },
      [type, dx],
    )
  await touch('pointerdown')
  await page.getByTestId('voice-recording').waitFor({ timeout: T })
  assert.match(await page.getByTestId('voice-recording').textContent(), /slide away to cancel/)
  assert.equal(await page.getByTestId('voice-send').count(), 0, 'no buttons while holding')
  await poll(() => page.getByTestId('voice-timer').textContent(), (t) => t.startsWith('0:02'), 'the timer at 2 s')
  await touch('pointerup')
  await waitForCount(voices(page), 3)
  // Sliding away arms the cancel; releasing then sends nothing.
  await touch('pointerdown')
  await page.getByTestId('voice-recording').waitFor({ timeout: T })
  await poll(() => page.getByTestId('voice-timer').textContent(), (t) => t.startsWith('0:01'), 'the timer at 1 s')
  await touch('pointermove', -150)
  await page.getByTestId('voice-recording').getByText('Release to cancel').waitFor({ timeout: T })
  await touch('pointerup', -150)
  await waitForCount(page.getByTestId('voice-recording'), 0)
  await waitForCount(page.getByTestId('message-sending'), 0)
  assert.equal(await voices(page).count(), 3)
  await page.setViewportSize({ width: 1280, height: 800 })
})

test('a pasted image opens the preview dialog; the caption follows the image', async () => {
  const { page } = a
  const bytes = [...png(160, 100)]
  await page.getByTestId('composer-input').evaluate((el, data) => {
    const dt = new DataTransfer()
    dt.items.add(new File([new Uint8Array(data)], 'pasted.png', { type: 'image/png' }))
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }))
  }, bytes)
  const dialog = page.getByTestId('attach-dialog')
  await dialog.waitFor({ timeout: T })
  await waitForCount(dialog.getByTestId('attach-item'), 1)
  assert.equal(await dialog.locator('img').count(), 1, 'the image is previewed')
  await dialog.getByTestId('attach-caption').fill('a gradient for you')
  await dialog.getByTestId('attach-send').click()
  await waitForCount(dialog, 0)
  await waitForCount(page.getByTestId('message-list').getByTestId('message').filter({ has: page.getByTestId('message-image') }), 1)
  await waitForCount(storedMessages(page, 'a gradient for you'), 1)
  // Dropping onto the chat goes through the same dialog; closing it sends nothing.
  await page.getByTestId('message-list').evaluate((el, data) => {
    const dt = new DataTransfer()
    dt.items.add(new File([new Uint8Array(data)], 'dropped.png', { type: 'image/png' }))
    el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }))
  }, bytes)
  await dialog.waitFor({ timeout: T })
  await dialog.getByTestId('modal-close').click()
  await waitForCount(dialog, 0)
})

test('a PDF opens in the viewer, sandboxed by its CSP, served inline', async () => {
  const { page } = a
  await page.getByTestId('attach-input').setInputFiles({ name: 'notes.pdf', mimeType: 'application/pdf', buffer: pdf() })
  await page.getByTestId('attach-dialog').waitFor({ timeout: T })
  await page.getByTestId('attach-send').click()
  const open = page.getByTestId('file-pdf-open')
  await open.waitFor({ timeout: T })
  await open.click()
  const frame = page.getByTestId('pdf-frame')
  await frame.waitFor({ timeout: T })
  // The sandbox comes from the response's CSP: an iframe `sandbox` attribute would make
  // Chromium block its PDF viewer.
  assert.equal(await frame.getAttribute('sandbox'), null)
  const src = await frame.getAttribute('src')
  const h = await page.evaluate(async (u) => {
    const r = await fetch(u)
    return Object.fromEntries(['content-type', 'content-disposition', 'x-content-type-options', 'content-security-policy'].map((k) => [k, r.headers.get(k)]))
  }, src)
  assert.equal(h['content-type'], 'application/pdf')
  assert.match(h['content-disposition'], /^inline;/)
  assert.equal(h['x-content-type-options'], 'nosniff')
  assert.equal(h['content-security-policy'], "sandbox; default-src 'none'")
  // Inside the frame is Chromium's PDF viewer, not an error page.
  const inner = page.frames().find((f) => f.url().includes('/api/files/'))
  assert.ok(inner, 'the frame loaded the file')
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    await page.screenshot({ path: join(SHOTS, 'pdf-viewer-desktop-en.png') })
  }
  await page.getByTestId('pdf-viewer').getByTestId('modal-close').click()
})

test('screenshots of a chat with voice messages', { skip: !SHOTS }, async () => {
  // Ben answers with a voice message and a line of text; the shots are Ann's.
  await b.page.setViewportSize({ width: 1280, height: 800 })
  await b.page.goto(`${base}/chat/${conv}`)
  await recordVoice(b.page, 3)
  await send(b.page, 'Got it, sounds great!')
  const { page } = a
  mkdirSync(SHOTS, { recursive: true })
  for (const lang of ['en', 'zh-CN']) {
    await page.evaluate((l) => {
      const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
      localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, locale: l }))
    }, lang)
    for (const [size, viewport] of [
      ['desktop', { width: 1280, height: 800 }],
      ['phone', { width: 390, height: 844 }],
    ]) {
      await page.setViewportSize(viewport)
      await page.goto(`${base}/chat/${conv}`)
      await waitForCount(voices(page), 4)
      await waitForCount(storedMessages(page, 'Got it, sounds great!'), 1)
      await page.screenshot({ path: join(SHOTS, `voice-message-${size}-${lang}.png`) })
    }
  }
  await page.emulateMedia({ colorScheme: 'dark' })
  await page.reload()
  await waitForCount(voices(page), 4)
  await page.screenshot({ path: join(SHOTS, 'voice-message-phone-dark.png') })
  await page.emulateMedia({ colorScheme: 'light' })
  // The recording bar and the attachment preview, on a phone in Chinese.
  await page.getByTestId('voice-record').click()
  await poll(() => page.getByTestId('voice-timer').textContent(), (t) => t.startsWith('0:01'), 'the timer at 1 s')
  await page.screenshot({ path: join(SHOTS, 'voice-recording-phone-zh-CN.png') })
  await page.getByTestId('voice-cancel').click()
  await page.getByTestId('composer-input').evaluate((el, data) => {
    const dt = new DataTransfer()
    dt.items.add(new File([new Uint8Array(data)], 'pasted.png', { type: 'image/png' }))
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }))
  }, [...png(320, 200)])
  await page.getByTestId('attach-dialog').waitFor({ timeout: T })
  await page.getByTestId('attach-caption').fill('给你看看')
  await page.screenshot({ path: join(SHOTS, 'attach-dialog-phone-zh-CN.png') })
  await page.getByTestId('attach-dialog').getByTestId('modal-close').click()
})
