// The size proof of group calls through the SFU, in Chromium: N people (12 unless SFU_PEOPLE
// says otherwise) join one group video call through the web client, and every page decodes the
// N-1 other cameras. Too heavy for the test command on a small machine (N browsers encoding
// three simulcast layers and decoding N-1 videos each): scripts/proof runs it, with the release
// binary when CHINWAG_BIN points at one. Fake cameras at 320x180, 10 fps, to spare the CPU.
//
// Measured 2026-12-07 (release binary, 12 pages in one headless Chromium on the 2-core box):
// every page decoded the 11 others 20.9 s after the call started (the pages answer one after
// another), the server used 10 % of a core; the browsers, not the server, were the limit
// (load average 11, the slowest received video at 1.3 frames/s).
//
//   CHINWAG_BIN=target/release/chinwag node e2e/sfu-large.mjs
//   SFU_PEOPLE=8 node e2e/sfu-large.mjs
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as lib from './lib.mjs'
import { T, apiOk, poll } from './lib.mjs'

const N = Number(process.env.SFU_PEOPLE ?? 12)
const run = Date.now().toString(36).slice(-5)
const people = Array.from({ length: N }, (_, i) => ({ username: `p${i}x${run}`, nickname: `P${i}`, password: `large call password ${i}` }))
let srv
let browser
let conv

before(async () => {
  srv = await lib.startServer({
    env: {
      ...(await lib.loopbackTurnEnv()),
      CHINWAG_CALLS__MEDIA_LISTEN: `127.0.0.1:${await lib.freePort()}`,
      CHINWAG_CALLS__RING_TIMEOUT_SECS: '300',
    },
  })
  browser = await lib.launchBrowser()
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
  }
})

/** Seconds of CPU the server process has used (utime + stime from /proc). */
function serverCpu() {
  const stat = readFileSync(`/proc/${srv.pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

async function open(p) {
  const up = await lib.sessionPage(browser, srv.base, p.nickname, p.token)
  await lib.captureCallMedia(up.ctx, { video: { width: 320, height: 180, frameRate: 10 } })
  await up.page.goto(`${srv.base}/chat/${conv}`)
  await up.page.getByTestId('chat-view').waitFor({ timeout: T })
  p.page = up.page
  return up.page
}

/** What `page` sends of its camera: per simulcast rid, frames encoded and why it is limited. */
function sending(page) {
  return page.evaluate(async () => {
    const out = {}
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue
      ;(await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid ?? '-'] = `${s.framesEncoded ?? 0}f ${s.frameWidth ?? 0}w ${s.qualityLimitationReason}`
      })
      ;(await pc.getStats()).forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) out.out_kbps = Math.round(s.availableOutgoingBitrate / 1000)
      })
    }
    return out
  })
}

/** Received videos on `page` that have decoded frames, by track. */
function decoded(page) {
  return page.evaluate(async () => {
    const out = {}
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue
      ;(await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded ?? 0) > 0) out[s.trackIdentifier ?? s.id] = s.framesDecoded
      })
    }
    return out
  })
}

test(`${N} people in one group video call, each decoding the ${N - 1} others`, async () => {
  for (const p of people) Object.assign(p, await lib.registerApi(srv.base, p))
  for (const p of people.slice(1)) await lib.befriendApi(srv.base, people[0], p)
  const g = await apiOk(srv.base, people[0].token, 'POST', '/api/groups', { name: 'Everyone', members: people.slice(1).map((p) => p.user.id) })
  conv = `g:${g.id}`
  const pages = []
  for (const p of people) pages.push(await open(p))
  const t0 = Date.now()
  await pages[0].getByTestId('call-video').click()
  await pages[0].getByTestId('call-screen').waitFor({ timeout: T })
  for (const page of pages.slice(1)) {
    await page.getByTestId('call-accept').click({ timeout: T })
  }
  const first = []
  for (const [i, page] of pages.entries()) {
    first.push(await poll(() => decoded(page), (d) => Object.keys(d).length >= N - 1, `${people[i].nickname}: ${N - 1} videos decoding`, 180_000))
  }
  const all = (Date.now() - t0) / 1000
  // And they keep decoding.
  for (const [i, page] of pages.entries()) {
    await poll(() => decoded(page), (d) => Object.entries(first[i]).filter(([k, n]) => (d[k] ?? 0) > n).length >= N - 1, `${people[i].nickname}: still decoding`, 60_000)
  }
  // The server's CPU over 10 s of the call in full swing (a measurement window, not a wait
  // for something to happen), then every page still decoding every video.
  const [c1, w1] = [serverCpu(), Date.now()]
  await new Promise((r) => setTimeout(r, 10_000))
  const [cpu, secs] = [serverCpu() - c1, (Date.now() - w1) / 1000]
  const again = await Promise.all(pages.map((page) => decoded(page)))
  for (const [i, d] of again.entries()) {
    assert.ok(Object.keys(d).length >= N - 1, `${people[i].nickname} lost videos: ${JSON.stringify(d)}`)
  }
  const fps = again.map((d, i) => Object.entries(d).map(([k, n]) => (n - (first[i][k] ?? 0)) / ((Date.now() - t0) / 1000)))
  const low = Math.min(...fps.flat())
  console.log(`what P0 and P${N - 1} send: ${JSON.stringify(await sending(pages[0]))} ${JSON.stringify(await sending(pages[N - 1]))}`)
  console.log(
    `${N} people: every page decoded the ${N - 1} others ${all.toFixed(1)} s after the call started; ` +
      `server CPU ${((cpu / secs) * 100).toFixed(0)} % of a core in full swing (${(((cpu / secs) * 1e6) / (N * (N - 1))).toFixed(0)} µs of CPU per second for each camera forwarded, with its audio); ` +
      `slowest received video ${low.toFixed(1)} frames/s`,
  )
})
