// Calls across NATs: the browser part of scripts/test-nat, which builds the network (two LANs
// behind port-randomizing NATs, a server on a documentation "internet" address) and starts the
// server; run it through that script, not alone:
//
//   scripts/test-nat
//
// Two headless Chromiums, one in each LAN namespace (launched through a wrapper that enters the
// namespace; the CDP pipe is inherited, so this one process drives both), register through the
// web client, become contacts and make a 1:1 video call: with UDP, then with UDP blocked at NAT A
// so that A can only reach the TURN relay over TCP. Each call must connect and decode video both
// ways. Then a group video call through the SFU, with a third user in LAN B (a second context of
// B's Chromium) and A still without UDP: each decodes the others' videos over its one connection
// to the SFU's media port; again with TCP to the media port blocked at NAT A too, so that A goes
// through the TURN relay over TCP. The selected candidate pairs and the connect times are printed.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chromium } from 'playwright-core'
import * as lib from './lib.mjs'
import { T, waitForCount } from './lib.mjs'

const env = (k) => process.env[k] ?? assert.fail(`${k} is not set: run this through scripts/test-nat`)
const base = env('NAT_BASE')
const SERVER_IP = new URL(base).hostname
const LAN = { a: '198.51.100.10', b: '192.0.2.10' }
const NAT_WAN = { a: '203.0.113.11', b: '203.0.113.12' }
// Connecting and decoding across the NATs; generous for a loaded 2-core machine.
const CALL_T = 20_000
// The SFU's media port (calls.media_listen in scripts/test-nat), on the server's address.
const SFU_PORT = Number(env('NAT_SFU_PORT'))

const run = Date.now().toString(36).slice(-5)
const users = {
  a: { username: `nata${run}`, nickname: 'Nat A', password: 'nat proof password 1' },
  b: { username: `natb${run}`, nickname: 'Nat B', password: 'nat proof password 2' },
  c: { username: `natc${run}`, nickname: 'Nat C', password: 'nat proof password 3' },
}
const ids = {} // side -> user id
const browsers = {}
const pages = {} // side -> Page (c: a second context of B's Chromium, in LAN B)
const callFrames = { a: [], b: [], c: [] } // side -> the call frames its page sent, parsed
let conv
const results = []

/**
 * Records every RTCPeerConnection the app makes (and when it connected), so that the test can
 * read its getStats() without a hook in the app.
 */
function trackPeerConnections() {
  const Native = window.RTCPeerConnection
  window.__natPcs = []
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args)
      const rec = { pc: this, created: Date.now(), connected: null }
      window.__natPcs.push(rec)
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected' && rec.connected === null) rec.connected = Date.now()
      })
    }
  }
}

/**
 * The call's open peer connection on `page`: its state, when it connected, the selected
 * candidate pair (types, addresses, protocols), video frames decoded and encoded, and every local
 * candidate gathered.
 */
function callStats(page) {
  return page.evaluate(async () => {
    const open = (window.__natPcs ?? []).filter((r) => r.pc.connectionState !== 'closed')
    if (open.length !== 1) return { open: open.length }
    const { pc, created, connected } = open[0]
    const all = new Map()
    ;(await pc.getStats()).forEach((s) => all.set(s.id, s))
    const stats = [...all.values()]
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId)
    const pair = transport && all.get(transport.selectedCandidatePairId)
    const cand = (c) => c && { type: c.candidateType, address: c.address, port: c.port, protocol: c.protocol, relayProtocol: c.relayProtocol }
    const sum = (type, key) => stats.filter((s) => s.type === type && s.kind === 'video').reduce((n, s) => n + (s[key] ?? 0), 0)
    return {
      open: 1,
      state: pc.connectionState,
      created,
      connected,
      local: cand(pair && all.get(pair.localCandidateId)),
      remote: cand(pair && all.get(pair.remoteCandidateId)),
      framesDecoded: sum('inbound-rtp', 'framesDecoded'),
      framesEncoded: sum('outbound-rtp', 'framesEncoded'),
      gathered: stats.filter((s) => s.type === 'local-candidate').map((c) => `${c.candidateType}/${c.protocol}${c.relayProtocol ? '/' + c.relayProtocol : ''} ${c.address}`),
    }
  })
}

/** Polls `callStats(page)` until `ok` holds; fails with the last reading. */
function statsUntil(page, ok, what) {
  return lib.poll(() => callStats(page), (s) => s.open === 1 && ok(s), what, CALL_T)
}

const fmt = (c) => (c ? `${c.type}${c.relayProtocol ? `(${c.relayProtocol})` : ''} ${c.protocol} ${c.address}:${c.port}` : 'none')

/**
 * A places a video call, B answers; both connect and decode a growing number of frames. Returns
 * the record: connect times (from B's click on accept, and from the making of each side's
 * RTCPeerConnection, to its connectionState `connected`) and the selected candidate pairs.
 */
async function videoCall(label) {
  const { a, b } = pages
  await a.goto(`${base}/chat/${conv}`)
  await b.goto(`${base}/`)
  await b.getByTestId('conversation-list').waitFor({ timeout: T })
  await a.getByTestId('call-video').click()
  await a.getByTestId('call-screen').waitFor({ timeout: T })
  await b.getByTestId('call-incoming').waitFor({ timeout: T })
  const accepted = Date.now()
  await b.getByTestId('call-accept').click()
  const connected = (p) =>
    p.waitForFunction(() => document.querySelector('[data-testid="call-screen"]')?.dataset.phase === 'connected', null, { timeout: CALL_T })
  await Promise.all([connected(a), connected(b)]).catch(async (e) => {
    const now = { a: await callStats(a), b: await callStats(b) }
    assert.fail(`${label}: the call did not connect within ${CALL_T} ms: ${JSON.stringify(now)} (${e.message})`)
  })
  // Frames decoded on both ends, and still growing a moment later (the media keeps flowing).
  const first = {}
  for (const side of ['a', 'b']) {
    first[side] = await statsUntil(pages[side], (s) => s.state === 'connected' && s.framesDecoded > 0, `${label}: ${side.toUpperCase()} decodes video`)
  }
  const rec = { label }
  for (const side of ['a', 'b']) {
    const s = await statsUntil(
      pages[side],
      (s) => s.framesDecoded >= first[side].framesDecoded + 20,
      `${label}: ${side.toUpperCase()} keeps decoding video (had ${first[side].framesDecoded})`,
    )
    rec[side] = { connectMs: s.connected - accepted, pcMs: s.connected - s.created, local: s.local, remote: s.remote, framesDecoded: s.framesDecoded, gathered: s.gathered }
  }
  results.push(rec)
  console.log(
    `${label}: connected ${rec.a.connectMs} ms (A) / ${rec.b.connectMs} ms (B) after accept` +
      ` (${rec.a.pcMs} / ${rec.b.pcMs} ms after each RTCPeerConnection was made);` +
      ` A ${fmt(rec.a.local)} -> ${fmt(rec.a.remote)}; B ${fmt(rec.b.local)} -> ${fmt(rec.b.remote)};` +
      ` frames decoded A ${rec.a.framesDecoded}, B ${rec.b.framesDecoded}`,
  )
  for (const side of ['a', 'b']) console.log(`  ${side.toUpperCase()} gathered: ${rec[side].gathered.join(', ')}`)
  return rec
}

/** Ends the call, if one is on A's screen (also after a failed scenario, so the next starts clean). */
async function hangUp() {
  if (!(await pages.a.getByTestId('call-screen').count())) return
  await pages.a.getByTestId('call-hangup').click()
  await waitForCount(pages.a.getByTestId('call-screen'), 0)
  await waitForCount(pages.b.getByTestId('call-screen'), 0)
}

/** `videoCall`, then hanging up; also after a failure, so that the next scenario starts clean. */
async function callAndHangUp(label) {
  let rec
  try {
    rec = await videoCall(label)
  } catch (e) {
    await hangUp().catch(() => null)
    throw e
  }
  await hangUp()
  return rec
}

before(async () => {
  for (const side of ['a', 'b']) {
    browsers[side] = await chromium.launch({
      executablePath: env(`NAT_CHROMIUM_${side.toUpperCase()}`),
      // Camera and microphone need a secure context; this origin is plain HTTP on a non-loopback
      // address.
      args: [...lib.HEADLESS_ARGS, `--unsafely-treat-insecure-origin-as-secure=${base}`],
    })
  }
  for (const [side, browser] of [['a', browsers.a], ['b', browsers.b], ['c', browsers.b]]) {
    const { ctx, page } = await lib.newUserPage(browser, `nat-${side}`)
    await ctx.addInitScript(trackPeerConnections)
    page.on('websocket', (ws) =>
      ws.on('framesent', (f) => {
        if (typeof f.payload === 'string' && f.payload.startsWith('{"type":"call_')) callFrames[side].push(JSON.parse(f.payload))
      }),
    )
    pages[side] = page
  }
})

after(async () => {
  for (const b of Object.values(browsers)) await b.close().catch(() => null)
  const brief = (r) => r && { ...r, gathered: undefined }
  if (results.length) console.log(`NAT_RESULTS ${JSON.stringify(results.map(({ label, a, b, c }) => ({ label, a: brief(a), b: brief(b), c: brief(c) })))}`)
})

test('two users register through the web client, each behind a NAT, and become contacts', async () => {
  for (const side of ['a', 'b']) await lib.register(base, pages[side], users[side])
  // The browsers use the server's "internet" address, not a loopback of their own.
  for (const side of ['a', 'b']) assert.equal(new URL(pages[side].url()).origin, base)
  const me = ids
  for (const side of ['a', 'b']) me[side] = await pages[side].evaluate(async () => (await (await fetch('/api/me')).json()).id)
  const status = await pages.a.evaluate(
    async (to) => (await fetch('/api/contacts/requests', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: to, message: 'hi' }) })).status,
    me.b,
  )
  assert.equal(status, 200, 'contact request')
  const accepted = await pages.b.evaluate(async (from) => (await fetch(`/api/contacts/requests/${from}/accept`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, me.a)
  assert.equal(accepted, 200, 'contact request accepted')
  conv = `d:${Math.min(me.a, me.b)}:${Math.max(me.a, me.b)}`
})

test('a 1:1 video call across two port-randomizing NATs connects and decodes video both ways', async () => {
  lib.need(conv, 'conv', 'two users register through the web client, each behind a NAT, and become contacts')
  const rec = await callAndHangUp('UDP')
  for (const side of ['a', 'b']) {
    const r = rec[side]
    // The browser sits in its LAN and is seen from the internet as its NAT's WAN address.
    assert.ok(r.gathered.some((g) => g.startsWith('host/') && g.endsWith(` ${LAN[side]}`)), `${side}: a host candidate on ${LAN[side]}: ${r.gathered}`)
    assert.ok(r.gathered.includes(`srflx/udp ${NAT_WAN[side]}`), `${side}: seen by the server as its NAT's ${NAT_WAN[side]}: ${r.gathered}`)
    assert.ok(r.gathered.some((g) => g.startsWith('relay/') && g.endsWith(` ${SERVER_IP}`)), `${side}: a relay candidate on ${SERVER_IP}: ${r.gathered}`)
  }
  // Both NATs pick a new port for every destination and let nothing new in, so no direct path
  // exists: the selected pair must use the relay on one end or the other.
  for (const side of ['a', 'b']) {
    const { local, remote } = rec[side]
    assert.ok(local.type === 'relay' || remote.type === 'relay', `${side}: the call goes through the relay (${fmt(local)} -> ${fmt(remote)})`)
  }
})

test('with UDP blocked at one NAT the call goes through TURN over TCP and decodes video both ways', async () => {
  lib.need(conv, 'conv', 'two users register through the web client, each behind a NAT, and become contacts')
  // The server offers TURN over TCP (turn.tcp).
  const ice = await pages.a.evaluate(async () => (await fetch('/api/calls/ice-servers')).json())
  const urls = ice.ice_servers.flatMap((s) => s.urls)
  assert.ok(urls.includes(`turn:${SERVER_IP}:3478?transport=tcp`), `a TURN over TCP URL: ${urls}`)
  execFileSync(env('NAT_BLOCK_UDP_A'), { stdio: 'inherit' })
  const rec = await callAndHangUp('UDP blocked at NAT A')
  assert.equal(rec.a.local.type, 'relay', `A's side of the pair is its relay: ${fmt(rec.a.local)}`)
  assert.equal(rec.a.local.relayProtocol, 'tcp', `A reaches its relay over TCP: ${fmt(rec.a.local)}`)
  assert.ok(!rec.a.gathered.some((g) => g.startsWith('relay/udp/udp') || g.startsWith('srflx/')), `A gathers nothing over UDP: ${rec.a.gathered}`)
})


/** `fetch` from inside `page` (this process cannot reach the server): status and JSON body. */
function api(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const r = await fetch(path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
      return { status: r.status, body: await r.json().catch(() => null) }
    },
    [method, path, body],
  )
}

/** Per received video track of the page's open peer connections: frames decoded so far. */
function framesByTrack(page) {
  return page.evaluate(async () => {
    const out = {}
    for (const { pc } of window.__natPcs ?? []) {
      if (pc.connectionState === 'closed') continue
      ;(await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out[s.trackIdentifier ?? s.id] = s.framesDecoded ?? 0
      })
    }
    return out
  })
}

/** The candidate pairs ICE tried on `page` (for the failure message), and the call's toast if any. */
function iceReport(page) {
  return page.evaluate(async () => {
    const open = (window.__natPcs ?? []).filter((r) => r.pc.connectionState !== 'closed')
    const pairs = []
    for (const { pc } of open) {
      const all = new Map()
      ;(await pc.getStats()).forEach((s) => all.set(s.id, s))
      for (const p of all.values()) {
        if (p.type !== 'candidate-pair') continue
        const l = all.get(p.localCandidateId)
        const r = all.get(p.remoteCandidateId)
        pairs.push(`${l?.candidateType}/${l?.protocol}${l?.relayProtocol ? '/' + l.relayProtocol : ''} -> ${r?.candidateType}/${r?.protocol} ${r?.address}:${r?.port} ${p.state}`)
      }
    }
    const toast = document.querySelector('[data-testid="call-toast"]')?.textContent?.trim() ?? null
    return { connections: open.map((r) => `${r.pc.iceConnectionState}/${r.pc.connectionState}`), pairs, toast }
  })
}

let group // the group conversation of A, B and C

/**
 * The group for the SFU calls: C, a third user in LAN B (a second context of B's Chromium),
 * registers through the web client; A makes an open group with B (a contact), and C joins it.
 */
async function makeGroup() {
  lib.need(ids.b, 'the users', 'two users register through the web client, each behind a NAT, and become contacts')
  await lib.register(base, pages.c, users.c)
  ids.c = await pages.c.evaluate(async () => (await (await fetch('/api/me')).json()).id)
  const g = await api(pages.a, 'POST', '/api/groups', { name: 'NAT crew', join_mode: 'open', members: [ids.b] })
  assert.equal(g.status, 201, `the group is made: ${JSON.stringify(g.body)}`)
  const joined = await api(pages.c, 'POST', `/api/groups/${g.body.id}/join`, {})
  assert.equal(joined.body?.joined, true, `C joins the group: ${joined.status} ${JSON.stringify(joined.body)}`)
  group = `g:${g.body.id}`
}

/**
 * A group video call through the SFU across the same NATs (issue #15): A (behind NAT A, whose UDP
 * is blocked by the scenario before), B (behind NAT B, with UDP) and C (in B's LAN) are in one
 * group; A starts a video call through the web client, B and C answer. Each browser has one
 * connection, to the SFU's one candidate (turn.public_ip, the media port), and decodes the video
 * of each of the others. Returns the record (connect times, selected pairs) after all left.
 */
async function groupCallThroughSfu(label) {
  try {
    return await groupCall(label)
  } catch (e) {
    // Everyone leaves, so that the next scenario starts clean.
    for (const s of ['a', 'b', 'c']) {
      if (await pages[s].getByTestId('call-hangup').count()) await pages[s].getByTestId('call-hangup').click({ timeout: T }).catch(() => null)
    }
    throw e
  }
}

async function groupCall(label) {
  const sides = ['a', 'b', 'c']
  lib.need(group, 'the group', 'a group call through the SFU across the NATs decodes every video, A over TCP')
  await Promise.all(sides.map((s) => pages[s].goto(`${base}/chat/${group}`)))
  for (const s of sides) await pages[s].getByTestId('chat-view').waitFor({ timeout: T })
  const from = Object.fromEntries(sides.map((s) => [s, callFrames[s].length]))
  await pages.a.getByTestId('call-video').click()
  await pages.a.getByTestId('call-screen').waitFor({ timeout: T })
  for (const s of ['b', 'c']) await pages[s].getByTestId('call-incoming').waitFor({ timeout: T })
  const accepted = Date.now()
  for (const s of ['b', 'c']) await pages[s].getByTestId('call-accept').click()
  const sfu = `${SERVER_IP}:${SFU_PORT}`
  const connected = (s) =>
    pages[s]
      .waitForFunction(() => document.querySelector('[data-testid="call-screen"]')?.dataset.phase === 'connected', null, { timeout: CALL_T })
      .catch(async () => {
        const r = await iceReport(pages[s])
        assert.fail(
          `${label}: ${s.toUpperCase()} did not connect to the SFU at ${sfu} within ${CALL_T} ms` +
            ` (is the media port reachable from NAT ${s === 'a' ? 'A, whose UDP is blocked: over TCP, or through the TURN relay' : 'B'}?):` +
            ` connection ${r.connections.join(', ') || 'none'}; ${r.pairs.length} candidate pairs: ${r.pairs.join('; ') || 'none'}; toast: ${r.toast ?? 'none'}`,
        )
      })
  await Promise.all(sides.map(connected))
  // Each decodes a video per other participant, and keeps decoding it.
  const others = sides.length - 1
  for (const s of sides) {
    const who = s.toUpperCase()
    const first = await lib.poll(() => framesByTrack(pages[s]), (f) => Object.values(f).filter((x) => x > 0).length >= others, `${label}: ${who} decodes ${others} videos`, CALL_T)
    await lib.poll(
      () => framesByTrack(pages[s]),
      (f) => Object.entries(first).filter(([k, x]) => x > 0 && (f[k] ?? 0) >= x + 20).length >= others,
      `${label}: ${who} keeps decoding ${others} videos (had ${JSON.stringify(first)})`,
      CALL_T,
    )
    // On each other participant's tile, the video has a picture.
    for (const o of sides.filter((x) => x !== s)) {
      await pages[s]
        .waitForFunction((u) => [...document.querySelectorAll(`[data-testid="call-peer"][data-user="${u}"] video`)].some((v) => v.videoWidth > 0), ids[o], { timeout: T })
        .catch(() => assert.fail(`${label}: ${who} shows no picture on ${o.toUpperCase()}'s tile`))
    }
  }
  const rec = { label }
  for (const s of sides) {
    const st = await callStats(pages[s])
    assert.equal(st.open, 1, `${s}: one connection, to the SFU (not a mesh): ${st.open}`)
    const frames = callFrames[s].slice(from[s])
    assert.ok(frames.some((f) => f.type === 'call_sfu_offer'), `${s}: offers its media to the SFU (call_sfu_offer)`)
    assert.deepEqual(frames.filter((f) => f.type === 'call_offer' || f.type === 'call_candidate').map((f) => f.type), [], `${s}: no per-peer signalling`)
    rec[s] = { connectMs: st.connected - accepted, pcMs: st.connected - st.created, local: st.local, remote: st.remote, framesDecoded: st.framesDecoded, gathered: st.gathered }
    // The far end of the pair is the SFU's one candidate: its host candidate on turn.public_ip.
    assert.equal(`${st.remote?.type} ${st.remote?.address}:${st.remote?.port}`, `host ${sfu}`, `${s}: the pair ends at the SFU (${fmt(st.local)} -> ${fmt(st.remote)})`)
  }
  // B and C have UDP: they reach the SFU's port through NAT B, without the relay.
  for (const s of ['b', 'c']) {
    assert.equal(rec[s].remote.protocol, 'udp', `${s}: UDP to the SFU: ${fmt(rec[s].remote)}`)
    assert.notEqual(rec[s].local.type, 'relay', `${s}: straight through its NAT, not relayed: ${fmt(rec[s].local)}`)
  }
  rec.aVia = rec.a.remote.protocol === 'tcp' ? 'ICE-TCP' : rec.a.local.type === 'relay' ? `TURN over ${rec.a.local.relayProtocol?.toUpperCase()}` : 'UDP'
  results.push(rec)
  console.log(
    `${label}: connected ${sides.map((s) => `${rec[s].connectMs}`).join(' / ')} ms (A / B / C) after the answers` +
      ` (${sides.map((s) => rec[s].pcMs).join(' / ')} ms after each RTCPeerConnection was made); A via ${rec.aVia};` +
      ` ${sides.map((s) => `${s.toUpperCase()} ${fmt(rec[s].local)} -> ${fmt(rec[s].remote)}`).join('; ')};` +
      ` frames decoded ${sides.map((s) => `${s.toUpperCase()} ${rec[s].framesDecoded}`).join(', ')}`,
  )
  // A and B leave; C, left alone with nobody ringing, is told the call ended.
  for (const s of ['a', 'b']) {
    await pages[s].getByTestId('call-hangup').click()
    await waitForCount(pages[s].getByTestId('call-screen'), 0)
  }
  await waitForCount(pages.c.getByTestId('call-screen'), 0)
  return rec
}

test('a group call through the SFU across the NATs decodes every video, A over TCP', async () => {
  await makeGroup()
  const rec = await groupCallThroughSfu('group call through the SFU')
  // A's UDP is blocked: it reaches the SFU over TCP, directly (ICE-TCP to the media port) or
  // through the relay (TURN over TCP).
  assert.ok(rec.aVia === 'ICE-TCP' || rec.aVia === 'TURN over TCP', `A reaches the SFU over TCP: ${fmt(rec.a.local)} -> ${fmt(rec.a.remote)}`)
})

test('with TCP to the media port blocked at NAT A too, A reaches the SFU through TURN over TCP', async () => {
  execFileSync(env('NAT_BLOCK_MEDIA_TCP_A'), { stdio: 'inherit' })
  const rec = await groupCallThroughSfu('group call, A without UDP nor TCP to the media port')
  assert.equal(rec.aVia, 'TURN over TCP', `A goes through its relay, over TCP: ${fmt(rec.a.local)} -> ${fmt(rec.a.remote)}`)
})
