// Group calls through the SFU without a browser's WebRTC: the one connection's negotiation
// (simulcast camera, sources by mid, the server giving way in a collision, changes queued while
// an offer is out, ICE restarts), the tracks received mapped to users, and the calls store's use
// of it (no per-peer offers, my state sent when I join, a full call refused on accept). The
// real thing runs in Chromium in e2e/sfu.mjs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { CAMERA_LAYERS, remoteMedia, SfuLink, summarizeSfuStats } from '@/calls/sfu'
import { RELAY_ONLY_KEY } from '@/calls/sfuCall'
import { api } from '@/protocol/api'
import { useCalls } from '@/stores/calls'
import { useChat } from '@/stores/chat'
import { useSocket } from '@/stores/socket'
import type { CallClientFrame, CallServerFrame, SfuTrack, User } from '@/protocol/types'

type Track = MediaStreamTrack & { stopped?: boolean }
const track = (kind: string, id = `${kind}-${Math.random()}`): Track =>
  ({ kind, id, contentHint: '', enabled: true, stop() { (this as Track).stopped = true } }) as unknown as Track

/**
 * Just enough of an RTCPeerConnection: mids are given out when a description is set, and the
 * "SDP" of the server's offers is JSON naming the mids it adds (each received as a new track).
 */
class FakePc {
  static all: FakePc[] = []
  transceivers: RTCRtpTransceiver[] = []
  signalingState: RTCSignalingState = 'stable'
  connectionState: RTCPeerConnectionState = 'new'
  iceConnectionState: RTCIceConnectionState = 'new'
  onconnectionstatechange: (() => void) | null = null
  listeners: Record<string, (() => void)[]> = {}
  addEventListener(type: string, fn: () => void) {
    ;(this.listeners[type] ??= []).push(fn)
  }
  removeEventListener(type: string, fn: () => void) {
    this.listeners[type] = (this.listeners[type] ?? []).filter((f) => f !== fn)
  }
  offers: (RTCOfferOptions | undefined)[] = []
  closed = false
  private nextMid = 0
  constructor(readonly config: RTCConfiguration) {
    FakePc.all.push(this)
  }
  addTransceiver(t: MediaStreamTrack, init: RTCRtpTransceiverInit) {
    const x = { mid: null, direction: init.direction, init, sender: { track: t, replaceTrack: async (n: MediaStreamTrack | null) => void ((x.sender as { track: unknown }).track = n) }, receiver: { track: track(t.kind) } }
    this.transceivers.push(x as unknown as RTCRtpTransceiver)
    return x as unknown as RTCRtpTransceiver
  }
  getTransceivers() {
    return this.transceivers
  }
  async createOffer(o?: RTCOfferOptions) {
    this.offers.push(o)
    return { type: 'offer', sdp: `offer ${this.offers.length}` }
  }
  async createAnswer() {
    return { type: 'answer', sdp: 'answer' }
  }
  async setLocalDescription(d: RTCSessionDescriptionInit) {
    if (d.type === 'offer') {
      for (const t of this.transceivers) if (t.mid === null) (t as { mid: string | null }).mid = String(this.nextMid++)
      this.signalingState = 'have-local-offer'
    } else this.signalingState = 'stable'
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit) {
    if (d.type === 'answer') {
      this.signalingState = 'stable'
      return
    }
    for (const mid of JSON.parse(d.sdp ?? '[]') as string[]) {
      if (this.transceivers.some((t) => t.mid === mid)) continue
      this.transceivers.push({ mid, direction: 'recvonly', receiver: { track: track('video', `r${mid}`) }, sender: { track: null } } as unknown as RTCRtpTransceiver)
      this.nextMid = Math.max(this.nextMid, Number(mid) + 1)
    }
    this.signalingState = 'have-remote-offer'
  }
  async getStats() {
    return new Map() as unknown as RTCStatsReport
  }
  close() {
    this.closed = true
  }
  setState(s: RTCPeerConnectionState) {
    this.connectionState = s
    this.iceConnectionState = s === 'connecting' ? 'checking' : s === 'new' || s === 'closed' ? s : s === 'failed' ? 'failed' : s === 'disconnected' ? 'disconnected' : 'connected'
    this.onconnectionstatechange?.()
    for (const fn of this.listeners.connectionstatechange ?? []) fn()
  }
}

function newLink() {
  const out = { offers: [] as { sdp: string; sources: Record<string, string> }[], answers: [] as string[], received: [] as Map<number, unknown>[] }
  const link = new SfuLink({ iceServers: [] }, {
    offer: (sdp, sources) => out.offers.push({ sdp, sources }),
    answer: (sdp) => out.answers.push(sdp),
    received: (m) => out.received.push(m),
    state: () => {},
  })
  return { link, pc: FakePc.all[FakePc.all.length - 1]!, out }
}

beforeEach(() => {
  FakePc.all = []
  vi.stubGlobal('RTCPeerConnection', FakePc)
  vi.stubGlobal('MediaStream', class { constructor(readonly tracks: MediaStreamTrack[] = []) {} getTracks() { return this.tracks } getAudioTracks() { return this.tracks.filter((t) => t.kind === 'audio') } getVideoTracks() { return this.tracks.filter((t) => t.kind === 'video') } })
})
afterEach(() => {
  vi.unstubAllGlobals()
  Reflect.deleteProperty(navigator, 'mediaDevices')
})

describe('the connection to the SFU', () => {
  it('sends the microphone and a simulcast camera as sendonly transceivers, and names them by mid', async () => {
    const { link, pc, out } = newLink()
    await link.send({ audio: track('audio'), camera: track('video'), screen: null })
    expect(pc.transceivers.map((t) => t.direction)).toEqual(['sendonly', 'sendonly'])
    const init = (pc.transceivers[1] as unknown as { init: RTCRtpTransceiverInit }).init
    expect(init.sendEncodings).toEqual(CAMERA_LAYERS)
    expect(init.sendEncodings?.map((e) => e.rid)).toEqual(['q', 'h', 'f'])
    expect(out.offers).toEqual([{ sdp: 'offer 1', sources: { '0': 'audio', '1': 'camera' } }])
  })

  it("ignores the server's offer while mine is out, then answers its next one and maps what it receives", async () => {
    const { link, pc, out } = newLink()
    await link.send({ audio: track('audio'), camera: null, screen: null })
    const tracks: SfuTrack[] = [
      { mid: '1', user: 7, source: 'audio' },
      { mid: '2', user: 7, source: 'camera' },
      { mid: '3', user: 9, source: 'audio' },
    ]
    await link.onOffer(JSON.stringify(['1', '2', '3']), tracks)
    expect(out.answers).toEqual([])
    await link.onAnswer('server answer')
    expect(pc.signalingState).toBe('stable')
    await link.onOffer(JSON.stringify(['1', '2', '3']), tracks)
    expect(out.answers).toEqual(['answer'])
    const got = out.received[out.received.length - 1]!
    expect([...got.keys()]).toEqual([7, 9])
    expect(got.get(7)).toMatchObject({ audio: { id: 'r1' }, camera: { id: 'r2' }, screen: null })
    expect(got.get(9)).toMatchObject({ audio: { id: 'r3' }, camera: null })
  })

  it('offers a screen share as a transceiver of its own once the exchange in progress is over, and drops it again', async () => {
    const { link, pc, out } = newLink()
    await link.send({ audio: track('audio'), camera: track('video'), screen: null })
    const screen = track('video')
    // My first offer is still out: the screen waits for its answer.
    await link.send({ audio: pc.transceivers[0]!.sender.track, camera: pc.transceivers[1]!.sender.track, screen })
    expect(out.offers).toHaveLength(1)
    await link.onAnswer('a')
    expect(out.offers).toHaveLength(2)
    expect(out.offers[1]!.sources).toEqual({ '0': 'audio', '1': 'camera', '2': 'screen' })
    expect(screen.contentHint).toBe('detail')
    await link.onAnswer('a')
    await link.send({ audio: pc.transceivers[0]!.sender.track, camera: pc.transceivers[1]!.sender.track, screen: null })
    expect(pc.transceivers[2]!.direction).toBe('inactive')
    expect(out.offers[2]!.sources).toEqual({ '0': 'audio', '1': 'camera' })
    // Replacing a track in place needs no offer.
    await link.onAnswer('a')
    await link.send({ audio: pc.transceivers[0]!.sender.track, camera: track('video'), screen: null })
    expect(out.offers).toHaveLength(3)
  })

  it('restarts ICE with a new offer when the network changes', async () => {
    const { link, pc, out } = newLink()
    await link.send({ audio: track('audio'), camera: null, screen: null })
    await link.onAnswer('a')
    window.dispatchEvent(new Event('online'))
    // The restart is queued; the answer to it comes after.
    await link.onAnswer('a')
    expect(pc.offers).toEqual([undefined, { iceRestart: true }])
    expect(out.offers).toHaveLength(2)
    expect(pc.signalingState).toBe('stable')
    // Later offers are plain ones.
    await link.send({ audio: pc.transceivers[0]!.sender.track, camera: track('video'), screen: null })
    expect(pc.offers[2]).toBeUndefined()
    link.close()
  })

  it('closes', () => {
    const { link, pc } = newLink()
    link.close()
    expect(pc.closed).toBe(true)
  })
})

describe('tracks and stats by user', () => {
  it('groups the track list by user', () => {
    const m = remoteMedia(
      [
        { mid: 'a', user: 3, source: 'screen' },
        { mid: 'b', user: 3, source: 'audio' },
      ],
      (mid) => track('x', mid),
    )
    expect(m.get(3)).toMatchObject({ audio: { id: 'b' }, camera: null, screen: { id: 'a' } })
  })

  it('adds up bytes and frames decoded per sender', () => {
    const r = new Map(
      [
        { id: 'I1', type: 'inbound-rtp', mid: '1', bytesReceived: 100 },
        { id: 'I2', type: 'inbound-rtp', mid: '2', bytesReceived: 1000, framesDecoded: 30 },
        { id: 'I3', type: 'inbound-rtp', mid: '9', bytesReceived: 5 },
        { id: 'T', type: 'transport', selectedCandidatePairId: 'P' },
        { id: 'P', type: 'candidate-pair', localCandidateId: 'L' },
        { id: 'L', type: 'local-candidate', candidateType: 'relay' },
      ].map((e) => [e.id, e]),
    ) as unknown as RTCStatsReport
    const s = summarizeSfuStats(r, (e) => (e.mid === '9' ? undefined : 7))
    expect(s.route).toBe('relay')
    expect(s.byUser.get(7)).toEqual({ bytes: 1100, frames: 30 })
  })
})

describe('the calls store in an SFU call', () => {
  function setup() {
    setActivePinia(createPinia())
    useChat().me = { id: 3, username: 'ann', nickname: 'Ann' } as User
    const socket = useSocket()
    let onFrame!: (f: CallServerFrame) => void
    let onError!: (code: string, message: string) => void
    vi.spyOn(socket, 'onCallFrame').mockImplementation((fn) => ((onFrame = fn), () => {}))
    vi.spyOn(socket, 'onFrameError').mockImplementation((fn) => ((onError = fn), () => {}))
    const sent: CallClientFrame[] = []
    vi.spyOn(socket, 'signal').mockImplementation((f) => (sent.push(f), true))
    const tracks = [track('audio'), track('video')]
    Object.defineProperty(navigator, 'mediaDevices', {
      configurable: true,
      value: { getUserMedia: async () => new MediaStream(tracks) },
    })
    vi.spyOn(api, 'iceServers').mockResolvedValue({ ice_servers: [], ttl_secs: 0, ice_transport_policy: 'all' })
    const calls = useCalls()
    calls.attach()
    return { calls, sent, tracks, frame: (f: CallServerFrame) => onFrame(f), error: (c: string) => onError(c, 'The call is full') }
  }
  const ringing: CallServerFrame = { type: 'call_incoming', call: 'k1', conv: 'g:5', from: 7, media: 'video', participants: [7, 9], sfu: true }

  it('joins with one offer to the server (no per-peer offers) and tells the others its state', async () => {
    const { calls, sent, frame } = setup()
    frame(ringing)
    await calls.accept('k1')
    frame({ type: 'call_accepted', call: 'k1', user: 3, participants: [7, 9, 3], sfu: true })
    await vi.waitFor(() => expect(sent.some((f) => f.type === 'call_sfu_offer')).toBe(true))
    expect(sent.map((f) => f.type)).toEqual(['call_accept', 'call_media_state', 'call_sfu_offer'])
    expect(sent[2]).toMatchObject({ call: 'k1', sources: { '0': 'audio', '1': 'camera' } })
    expect(Object.keys(calls.peers)).toEqual(['7', '9'])
    expect(calls.sfu).toBe(true)
    // The state of the others, sent right after: applied before any of their media arrives.
    frame({ type: 'call_media_state', call: 'k1', user: 9, muted: true, camera_off: false, screen_sharing: true })
    expect(calls.peers[9]).toMatchObject({ muted: true, sharing: true })
    frame({ type: 'call_sfu_speakers', call: 'k1', speakers: [9, 7] })
    expect(calls.speakers).toEqual([9, 7])
    calls.hangup()
    expect(calls.sfu).toBe(false)
    expect(calls.speakers).toEqual([])
  })

  it('uses only the relay when the test hook says so, whatever the server hands out', async () => {
    const { calls, frame } = setup()
    localStorage.setItem(RELAY_ONLY_KEY, '1')
    try {
      frame(ringing)
      await calls.accept('k1')
      frame({ type: 'call_accepted', call: 'k1', user: 3, participants: [7, 3], sfu: true })
      await vi.waitFor(() => expect(FakePc.all).toHaveLength(1))
      expect(FakePc.all[0]!.config.iceTransportPolicy).toBe('relay')
    } finally {
      localStorage.removeItem(RELAY_ONLY_KEY)
      calls.hangup()
    }
  })

  it('counts the call as connected once the server connection is, and restarts ICE through the watch when it fails', async () => {
    const { calls, sent, frame } = setup()
    localStorage.setItem('chinwag.callHealth', JSON.stringify({ connectMs: 60_000 }))
    try {
      frame(ringing)
      await calls.accept('k1')
      frame({ type: 'call_accepted', call: 'k1', user: 3, participants: [7, 3], sfu: true })
      await vi.waitFor(() => expect(sent.some((f) => f.type === 'call_sfu_offer')).toBe(true))
      frame({ type: 'call_sfu_answer', call: 'k1', sdp: 'answer' })
      const pc = FakePc.all[0]!
      await vi.waitFor(() => expect(pc.signalingState).toBe('stable'))
      pc.setState('connected')
      expect(calls.active?.connectedAt).not.toBeNull()
      expect(calls.active?.phase).toBe('connected')
      expect(sent.filter((f) => f.type === 'call_connected')).toHaveLength(1)
      pc.setState('failed')
      await vi.waitFor(() => expect(pc.offers.at(-1)).toEqual({ iceRestart: true }))
      expect(sent.filter((f) => f.type === 'call_sfu_offer')).toHaveLength(2)
    } finally {
      localStorage.removeItem('chinwag.callHealth')
      calls.hangup()
    }
  })

  it('sends the view once its session exists, and again only when it changes', async () => {
    const { calls, sent, frame } = setup()
    frame(ringing)
    await calls.accept('k1')
    frame({ type: 'call_accepted', call: 'k1', user: 3, participants: [7, 9, 3], sfu: true })
    calls.setView([{ user: 7, source: 'camera', layer: 'low' }])
    await vi.waitFor(() => expect(sent.some((f) => f.type === 'call_sfu_view')).toBe(true))
    const types = sent.map((f) => f.type)
    expect(types.indexOf('call_sfu_view')).toBeGreaterThan(types.indexOf('call_sfu_offer'))
    calls.setView([{ user: 7, source: 'camera', layer: 'low' }])
    calls.setView([{ user: 7, source: 'camera', layer: 'high' }])
    await vi.waitFor(() => expect(sent.filter((f) => f.type === 'call_sfu_view')).toHaveLength(2))
    expect(sent[sent.length - 1]).toEqual({ type: 'call_sfu_view', call: 'k1', videos: [{ user: 7, source: 'camera', layer: 'high' }] })
    calls.setView([{ user: 7, source: 'camera', layer: 'high' }])
    await new Promise((r) => setTimeout(r, 400))
    expect(sent.filter((f) => f.type === 'call_sfu_view')).toHaveLength(2)
    calls.hangup()
  })

  it('ends the attempt when accepting a call that filled up, with the camera and microphone let go', async () => {
    const { calls, tracks, frame, error } = setup()
    frame(ringing)
    await calls.accept('k1')
    expect(calls.active?.phase).toBe('connecting')
    error('limit_reached')
    expect(calls.active).toBeNull()
    expect(calls.error).toBe('limit_reached')
    expect(tracks.every((t) => t.stopped)).toBe(true)
  })

  it('keeps the call for errors that are not about it', async () => {
    const { calls, frame, error } = setup()
    frame(ringing)
    await calls.accept('k1')
    error('rate_limited')
    expect(calls.active?.call).toBe('k1')
  })
})
