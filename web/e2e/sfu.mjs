// End-to-end test of group calls through the server's SFU, in Chromium: five people (fake
// camera and microphone at a low resolution) join one group video call through the web client;
// each receives the other four's videos over its one connection to the server, with frames
// decoded (getStats); one of them is forced to use only the TURN relay (the client's test hook,
// see RELAY_ONLY_KEY in src/calls/sfuCall.ts) and still gets through, relayed. A newcomer learns
// who is muted and who shares a screen; the screen is its own tile, uncropped; the server says
// who speaks; the view sent to the server follows the tiles; a network change restarts ICE; a
// sixth member who answers the ring late finds the call full; a camera turned on in an audio
// call reaches the other. About 20 s.
//
//   CHINWAG_BIN=/tmp/chinwag-x node e2e/sfu.mjs
//   SCREENSHOTS=/tmp/shots node e2e/sfu.mjs     # grid and speaker view, desktop and phone, en and zh-CN
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import * as lib from './lib.mjs'
import { SHOTS, T, apiOk, poll, waitForCount } from './lib.mjs'

const run = Date.now().toString(36).slice(-5)
const names = ['Ann', 'Bob', 'Cai', 'Dee', 'Eve', 'Fay']
const people = names.map((n, i) => ({ username: `${n.toLowerCase()}${run}`, nickname: n, password: `sfu password ${i}`, zh: n === 'Bob' }))
let srv
let base
let browser
let conv
let scratch
/** By nickname: { user, token, page, ctx }. */
const who = {}

before(async () => {
  srv = await lib.startServer({
    env: {
      ...(await lib.loopbackTurnEnv()),
      // The SFU's one UDP port, on loopback and free (the default 0.0.0.0:3479 may be taken).
      CHINWAG_CALLS__MEDIA_LISTEN: `127.0.0.1:${await lib.freePort()}`,
      // Five may take part in a video call, so that the sixth finds it full; she answers the
      // ring late, so it rings long enough for a slow run.
      CHINWAG_CALLS__SFU_MAX_VIDEO: '5',
      CHINWAG_CALLS__RING_TIMEOUT_SECS: '120',
    },
  })
  base = srv.base
  // Chromium's fake microphone beeps once a second, too briefly to count as speaking: every
  // microphone plays a steady tone instead, so that the server has speakers to report.
  scratch = mkdtempSync(join(tmpdir(), 'chinwag-sfu-'))
  const tone = join(scratch, 'tone.wav')
  writeFileSync(tone, toneWav())
  browser = await chromium.launch({ executablePath: lib.CHROMIUM, args: [...lib.HEADLESS_ARGS, `--use-file-for-fake-audio-capture=${tone}`] })
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  }
})

/** Two seconds of a 440 Hz tone at half scale, 48 kHz 16-bit mono PCM, as a WAV file. */
function toneWav() {
  const rate = 48_000
  const n = rate * 2
  const b = Buffer.alloc(44 + n * 2)
  b.write('RIFF', 0)
  b.writeUInt32LE(36 + n * 2, 4)
  b.write('WAVEfmt ', 8)
  b.writeUInt32LE(16, 16)
  b.writeUInt16LE(1, 20) // PCM
  b.writeUInt16LE(1, 22) // mono
  b.writeUInt32LE(rate, 24)
  b.writeUInt32LE(rate * 2, 28)
  b.writeUInt16LE(2, 32)
  b.writeUInt16LE(16, 34)
  b.write('data', 36)
  b.writeUInt32LE(n * 2, 40)
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(16_000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2)
  return b
}

/**
 * A page for `p`, logged in, with its calls' media captured (`lib.captureCallMedia`, a 640×360
 * camera at 15 fps); `relayOnly` forces its SFU connection through the relay.
 */
async function open(p, { relayOnly = false } = {}) {
  const up = await lib.sessionPage(browser, base, p.nickname, p.token, { locale: p.zh ? 'zh-CN' : 'en-US' })
  await lib.captureCallMedia(up.ctx, { video: { width: 640, height: 360, frameRate: 15 }, relayOnly })
  // The call frames the page sends and gets, parsed, from its first socket on.
  p.sent = []
  p.got = []
  const keep = (list) => (f) => {
    if (typeof f.payload === 'string' && f.payload.startsWith('{"type":"call_')) list.push(JSON.parse(f.payload))
  }
  up.page.on('websocket', (ws) => {
    ws.on('framesent', keep(p.sent))
    ws.on('framereceived', keep(p.got))
  })
  await up.page.goto(`${base}/chat/${conv}`)
  await up.page.getByTestId('chat-view').waitFor({ timeout: T })
  Object.assign(p, up)
  return up.page
}

/** Per received video track of the page's call connections: frames decoded so far. */
function framesByTrack(page) {
  return page.evaluate(async () => {
    const out = {}
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue
      const r = await pc.getStats()
      r.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out[`${s.trackIdentifier ?? s.id}`] = s.framesDecoded ?? 0
      })
    }
    return out
  })
}

/** Waits until `n` received videos on `page` decode frames, and keep decoding. */
async function decodes(page, n, what) {
  const first = await poll(
    () => framesByTrack(page),
    (f) => Object.values(f).filter((x) => x > 0).length >= n,
    `${what}: ${n} videos decoding`,
    30_000,
  )
  await poll(
    () => framesByTrack(page),
    (f) => Object.entries(first).filter(([k, x]) => x > 0 && (f[k] ?? 0) > x).length >= n,
    `${what}: ${n} videos still decoding`,
  )
}

/** Waits for a call frame of `type` that `p` sends from index `from` of its list on and `ok` accepts. */
function sentFrame(p, type, ok = () => true, from = 0, timeout = T) {
  return poll(
    () => p.sent.slice(from).find((f) => f.type === type && ok(f)) ?? null,
    (f) => f !== null,
    `${p.nickname} sends ${type}`,
    timeout,
  )
}

/** The remote videos drawn on `page` with a picture (videoWidth > 0). */
const drawn = (page) => page.$$eval('[data-testid="call-peer"] video', (vs) => vs.filter((v) => v.videoWidth > 0).length)

test('setup: six people, contacts of Ann, one group', async () => {
  for (const p of people) Object.assign(p, await lib.registerApi(base, p))
  for (const p of people.slice(1)) await lib.befriendApi(base, people[0], p)
  const g = await apiOk(base, people[0].token, 'POST', '/api/groups', { name: 'SFU crew', members: people.slice(1).map((p) => p.user.id) })
  conv = `g:${g.id}`
  for (const p of people) who[p.nickname] = p
})

test('five join a group video call through the SFU; each decodes the four others; one is relay-only', async () => {
  const [ann, bob, cai, dee, eve, fay] = await Promise.all([open(who.Ann), open(who.Bob), open(who.Cai), open(who.Dee, { relayOnly: true }), open(who.Eve), open(who.Fay)])
  await ann.getByTestId('call-video').click()
  await ann.getByTestId('call-screen').waitFor({ timeout: T })
  for (const p of [bob, cai, dee, eve, fay]) await p.getByTestId('call-incoming').waitFor({ timeout: T })
  for (const p of [bob, cai, dee]) await p.getByTestId('call-accept').click()
  // Eve declines for now and comes later with the group's call button; Fay lets it ring.
  await eve.getByTestId('call-decline').click()
  await waitForCount(eve.getByTestId('call-incoming'), 0)
  assert.equal(await fay.getByTestId('call-incoming').count(), 1)
  // Ann's first offer goes to the server, not to a peer.
  const sent = await sentFrame(who.Ann, 'call_sfu_offer')
  assert.deepEqual(Object.values(sent.sources).sort(), ['audio', 'camera'])
  assert.match(sent.sdp, /a=simulcast:send q;h;f/, 'the camera is offered with three simulcast layers')
  for (const p of [ann, bob, cai, dee]) await decodes(p, 3, 'four in the call')
  // Bob mutes and Cai shares a screen before Eve comes: she must learn both.
  await bob.getByTestId('call-mute').click()
  await cai.getByTestId('call-share').click()
  await cai.getByTestId('call-sharing').waitFor({ timeout: T })
  await ann.locator('[data-testid="call-peer"][data-source="screen"] video').waitFor({ timeout: T })
  // Eve joins the call going on with the group's call button.
  await eve.getByTestId('call-video').click()
  await eve.getByTestId('call-screen').waitFor({ timeout: T })
  // Four cameras and Cai's screen: five videos decode on every page but Cai's (four cameras).
  for (const p of [ann, bob, dee, eve]) await decodes(p, 5, 'five in the call, a screen shared')
  await decodes(cai, 4, 'five in the call (the sharer)')
  for (const p of [ann, bob, cai, dee, eve]) await poll(() => drawn(p), (n) => n >= 4, 'four remote videos drawn')
  // Eve, the newcomer, was told who is muted and who shares a screen.
  await eve.locator(`[data-testid="call-peer"][data-user="${who.Bob.user.id}"][data-source="camera"][data-muted="true"]`).waitFor({ timeout: T })
  await eve.locator(`[data-testid="call-peer"][data-user="${who.Cai.user.id}"][data-source="screen"][data-sharing="true"]`).waitFor({ timeout: T })
  const fit = await eve.$eval('[data-testid="call-peer"][data-source="screen"] video', (v) => getComputedStyle(v).objectFit)
  assert.equal(fit, 'contain', 'a shared screen is not cropped')
  // Eve asks for the four cameras and the screen she shows (the screen at high).
  const v = await sentFrame(who.Eve, 'call_sfu_view', (f) => f.videos.length === 5)
  assert.ok(v.videos.some((x) => x.source === 'screen' && x.layer === 'high'), `the screen is asked for at high: ${JSON.stringify(v.videos)}`)
  for (const p of people.slice(0, 5)) assert.deepEqual(p.sent.filter((f) => f.type === 'call_offer' || f.type === 'call_candidate'), [], `${p.nickname}: no per-peer signalling in an SFU call`)
  // Dee's connection goes through the TURN relay, and her media keeps coming.
  await dee.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('[data-testid="call-peer"]')]
    return tiles.length >= 4 && tiles.every((t) => t.dataset.route === 'relay')
  }, null, { timeout: T })
  await ann.waitForFunction(() => [...document.querySelectorAll('[data-testid="call-peer"]')].every((t) => t.dataset.route === 'direct'), null, { timeout: T })
  // The server says who speaks (every microphone plays a tone): someone's tile is ringed. (On
  // Ann's page, in the call from the start: the server reports speakers when the list changes,
  // and with tones that never stop it may not change after Eve came.)
  await ann
    .locator('[data-speaking="true"]')
    .first()
    .waitFor({ timeout: T })
    .catch((e) => assert.fail(`no speaker shown; Ann got ${JSON.stringify(who.Ann.got.filter((f) => f.type === 'call_sfu_speakers'))} (${e.message})`))
  if (SHOTS) await screenshots()
})

test('a network change restarts ICE: a new offer with new credentials, and the videos go on', async () => {
  const ann = who.Ann.page
  const ufrag = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1]
  const first = ufrag(who.Ann.sent.find((f) => f.type === 'call_sfu_offer').sdp)
  const from = who.Ann.sent.length
  await ann.evaluate(() => window.dispatchEvent(new Event('online')))
  const again = await sentFrame(who.Ann, 'call_sfu_offer', () => true, from)
  assert.notEqual(ufrag(again.sdp), first, 'the restart offer has new ICE credentials')
  // The server answered it (the connection is stable again), and the videos keep coming.
  await poll(
    () => ann.evaluate(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').map((pc) => `${pc.signalingState}/${pc.connectionState}`)),
    (s) => s.length === 1 && s[0] === 'stable/connected',
    'the restarted connection',
  )
  await decodes(ann, 5, 'after the ICE restart')
})

async function screenshots() {
  mkdirSync(SHOTS, { recursive: true })
  for (const p of [who.Ann, who.Bob]) {
    const lang = p.zh ? 'zh-CN' : 'en'
    const page = p.page
    for (const [size, viewport] of [
      ['desktop', { width: 1280, height: 800 }],
      ['phone', { width: 390, height: 844 }],
    ]) {
      await page.setViewportSize(viewport)
      for (const mode of ['grid', 'speaker']) {
        const toggle = page.getByTestId('call-view-toggle')
        if ((await toggle.getAttribute('data-mode')) !== mode) await toggle.click()
        await page.locator(`[data-testid="call-grid"][data-mode="${mode}"]`).waitFor({ timeout: T })
        await poll(() => drawn(page), (n) => n >= (mode === 'grid' ? 4 : 1), 'videos drawn')
        await lib.settled(page)
        await page.screenshot({ path: join(SHOTS, `sfu-${mode}-${size}-${lang}.png`) })
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 })
  }
  // Minimised: the large tile only, in the corner window.
  const page = who.Ann.page
  await page.getByTestId('call-minimise').click()
  await page.locator('[data-testid="call-grid"][data-mode="mini"]').waitFor({ timeout: T })
  await lib.settled(page)
  await page.screenshot({ path: join(SHOTS, 'sfu-mini-desktop-en.png') })
  await page.getByTestId('call-restore').click()
}

test('the speaker view shows one large video and a strip; the view asked of the server follows', async () => {
  const ann = who.Ann.page
  const toggle = ann.getByTestId('call-view-toggle')
  if ((await toggle.getAttribute('data-mode')) !== 'grid') {
    // Back to the grid first, and wait until the server was told (larger tiles: larger layers).
    const back = who.Ann.sent.length
    await toggle.click()
    await sentFrame(who.Ann, 'call_sfu_view', (f) => f.videos.some((x) => x.source === 'camera' && x.layer !== 'low'), back)
  }
  const from = who.Ann.sent.length
  await toggle.click()
  await ann.locator('[data-testid="call-grid"][data-mode="speaker"]').waitFor({ timeout: T })
  // Cai shares a screen: it is the large tile, asked for at high; the strip's cameras at low.
  const large = ann.locator('.speaker-main [data-testid="call-peer"]')
  assert.equal(await large.getAttribute('data-source'), 'screen')
  const v = await sentFrame(who.Ann, 'call_sfu_view', () => true, from)
  assert.ok(v.videos.some((x) => x.source === 'screen' && x.layer === 'high'), JSON.stringify(v.videos))
  assert.ok(v.videos.filter((x) => x.source === 'camera').every((x) => x.layer === 'low'), JSON.stringify(v.videos))
})

test('a sixth member answers the ring after the call filled up: a clear message, and the camera is let go', async () => {
  const fay = who.Fay.page
  await fay.getByTestId('call-accept').click()
  await fay.getByTestId('call-toast').getByText('This call is full.').waitFor({ timeout: T })
  await waitForCount(fay.getByTestId('call-screen'), 0)
  // Her camera and microphone were started to answer, and are stopped again.
  const tracks = await fay.evaluate(() => window.__streams.flatMap((s) => s.getTracks().map((t) => t.readyState)))
  assert.ok(tracks.length >= 2, 'the camera and microphone were started')
  assert.deepEqual([...new Set(tracks)], ['ended'])
})

test('leaving: the others see one tile fewer, and the call goes on', async () => {
  const eve = who.Eve.page
  await eve.getByTestId('call-hangup').click()
  await waitForCount(eve.getByTestId('call-screen'), 0)
  for (const p of [who.Ann, who.Bob, who.Dee]) await waitForCount(p.page.locator(`[data-testid="call-peer"][data-user="${who.Eve.user.id}"]`), 0)
  await who.Ann.page.getByTestId('call-hangup').click()
  await waitForCount(who.Ann.page.getByTestId('call-screen'), 0)
})

test('an audio call: turning the camera on sends it through the SFU (a new offer), and the others see it', async () => {
  // Everyone still in the video call leaves; it ends and is recorded.
  for (const p of [who.Bob, who.Cai, who.Dee]) {
    await p.page.getByTestId('call-hangup').click()
    await waitForCount(p.page.getByTestId('call-screen'), 0)
  }
  const [bob, cai] = [who.Bob.page, who.Cai.page]
  const from = who.Cai.sent.length
  await bob.getByTestId('call-audio').click()
  await cai.getByTestId('call-incoming').waitFor({ timeout: T })
  await cai.getByTestId('call-accept').click()
  const first = await sentFrame(who.Cai, 'call_sfu_offer', () => true, from)
  assert.deepEqual(Object.values(first.sources), ['audio'])
  await bob.locator(`[data-testid="call-peer"][data-user="${who.Cai.user.id}"][data-connected="true"]`).waitFor({ timeout: T })
  await cai.getByTestId('call-camera').click()
  const withCamera = await sentFrame(who.Cai, 'call_sfu_offer', (f) => Object.values(f.sources).includes('camera'), from)
  assert.deepEqual(Object.values(withCamera.sources).sort(), ['audio', 'camera'])
  await decodes(bob, 1, "Cai's camera in the audio call")
  await bob.locator(`[data-testid="call-peer"][data-user="${who.Cai.user.id}"] video`).waitFor({ timeout: T })
  // The others still ring, so the call would go on with Cai alone: both leave.
  for (const p of [bob, cai]) {
    await p.getByTestId('call-hangup').click()
    await waitForCount(p.getByTestId('call-screen'), 0)
  }
})
