// The calls store's side of a group call through the SFU: it opens the one connection to the
// server when I join (`call_accepted` for me with `sfu`), keeps each participant's PeerState
// (their audio and camera in `stream`, a shared screen in `screen`) in step with the tracks the
// server forwards, says who speaks, and sends the view (`call_sfu_view`) the call screen asks
// for. The store calls in from a handful of places; everything else about SFU calls is here.
import { markRaw, ref, type Ref } from 'vue'
import type { ActiveCall, PeerState } from '@/lib/calls'
import type { LinkWatch, LinkWatchHooks } from './linkWatch'
import type { CallClientFrame, CallServerFrame, SfuVideo, UserId } from '@/protocol/types'
import { sameView } from './layers'
import { SfuLink, type RemoteMedia } from './sfu'

/** The view is sent at most this often while tiles move or resize. */
const VIEW_DEBOUNCE_MS = 250
const STATS_EVERY_MS = 1000
/**
 * Test hook: with this localStorage key set to "1", the SFU connection uses only the TURN relay
 * (`iceTransportPolicy: "relay"`) whatever the server hands out, so that an end-to-end run can
 * prove that a participant behind a relay-only network still gets through (web/e2e/sfu.mjs).
 */
export const RELAY_ONLY_KEY = 'chinwag.test.relayOnly'

export interface SfuDeps {
  send(frame: CallClientFrame): boolean
  iceConfig(): Promise<RTCConfiguration>
  active: Ref<ActiveCall | null>
  peers: Ref<Record<UserId, PeerState>>
  peerState(user: UserId): PeerState
  me(): UserId | null
  /** My microphone and camera, and the screen I share. */
  local(): { stream: MediaStream | null; screen: MediaStream | null }
  /** Watches the connection as every call's are (`calls/linkWatch.ts`): restart, give up. */
  watch(pc: RTCPeerConnection, hooks: LinkWatchHooks): LinkWatch
  /** Media flows: the call took place. */
  connected(): void
  /** The connection to the server is lost for good. */
  gaveUp: LinkWatchHooks['giveUp']
}

export function sfuCall(deps: SfuDeps) {
  /** The call in progress goes through the SFU. */
  const on = ref(false)
  /** Who speaks, loudest first (`call_sfu_speakers`). */
  const speakers = ref<UserId[]>([])
  let link: Promise<SfuLink | null> | null = null
  /** My first offer went out: the server has my session, so a view may follow. */
  let ready = false
  let pcState: RTCPeerConnectionState = 'new'
  let received = new Map<UserId, RemoteMedia>()
  let wanted: SfuVideo[] | null = null
  let sent: SfuVideo[] | null = null
  let viewTimer: ReturnType<typeof setTimeout> | null = null
  let statsTimer: ReturnType<typeof setInterval> | null = null
  let watch: LinkWatch | null = null
  /** Bumped by `close`, so that a connection still being set up for an ended call is dropped. */
  let epoch = 0

  function callId() {
    return deps.active.value?.call ?? null
  }

  /**
   * `call_accepted` in an SFU call: someone joined. The first one I get connects me: it is for me
   * when I answered or joined, and for the first to answer when I started the call.
   */
  function accepted(f: Extract<CallServerFrame, { type: 'call_accepted' }>) {
    on.value = true
    const me = deps.me()
    for (const u of f.participants) if (u !== me) deps.peerState(u)
    link ??= connect()
  }

  async function connect(): Promise<SfuLink | null> {
    const mine = epoch
    const config = await deps.iceConfig()
    if (mine !== epoch || !deps.active.value) return null
    if (localStorage.getItem(RELAY_ONLY_KEY) === '1') config.iceTransportPolicy = 'relay'
    const l = new SfuLink(config, {
      offer: (sdp, sources) => {
        const call = callId()
        if (call) deps.send({ type: 'call_sfu_offer', call, sdp, sources })
      },
      answer: (sdp) => {
        const call = callId()
        if (call) deps.send({ type: 'call_sfu_answer', call, sdp })
      },
      received: (media) => {
        received = media
        for (const user of media.keys()) deps.peerState(user)
        applyMedia()
      },
      state: (s) => {
        pcState = s
        applyMedia()
        const a = deps.active.value
        if (s === 'connected' && a) a.phase = 'connected'
      },
    })
    watch = deps.watch(l.pc, { connected: () => deps.connected(), restart: () => void l.restartIce(), giveUp: (cause) => deps.gaveUp(cause) })
    statsTimer = setInterval(() => void readStats(l), STATS_EVERY_MS)
    await l.send(outgoing())
    ready = true
    flushView()
    return l
  }

  /** Puts what I receive into each participant's PeerState. */
  function applyMedia() {
    for (const p of Object.values(deps.peers.value)) {
      const m = received.get(p.user)
      const av = [m?.audio, m?.camera].filter((t): t is MediaStreamTrack => !!t)
      // A new MediaStream only when its tracks change, so that playing elements keep playing.
      if (!sameTracks(p.stream, av)) p.stream = av.length ? markRaw(new MediaStream(av)) : null
      p.videoTracks = m?.camera ? 1 : 0
      const screen = m?.screen ? [m.screen] : []
      if (!sameTracks(p.screen ?? null, screen)) p.screen = screen.length ? markRaw(new MediaStream(screen)) : null
      p.connected = pcState === 'connected' && !!m
    }
  }

  async function readStats(l: SfuLink) {
    try {
      const s = await l.stats()
      for (const p of Object.values(deps.peers.value)) {
        const u = s.byUser.get(p.user)
        p.bytesIn = u?.bytes ?? 0
        p.framesDecoded = u?.frames ?? 0
        p.route = s.route
      }
    } catch {
      // Closed while reading: the next round (if any) tries again.
    }
  }

  /** What I send now: the microphone, the camera (if any) and the screen I share. */
  function outgoing() {
    const { stream, screen } = deps.local()
    return { audio: stream?.getAudioTracks()[0] ?? null, camera: stream?.getVideoTracks()[0] ?? null, screen: screen?.getVideoTracks()[0] ?? null }
  }

  /** Sends my current tracks (after the camera was turned on or a screen share started or ended). */
  async function sync() {
    const l = await link
    if (l) await l.send(outgoing())
  }

  async function onFrame(f: CallServerFrame) {
    if (f.type === 'call_sfu_speakers') {
      speakers.value = f.speakers
      return
    }
    const l = await link
    if (!l) return
    if (f.type === 'call_sfu_answer') await l.onAnswer(f.sdp)
    else if (f.type === 'call_sfu_offer') await l.onOffer(f.sdp, f.tracks)
  }

  /** The videos the call screen shows; sent (debounced, only when changed) as `call_sfu_view`. */
  function setView(videos: SfuVideo[]) {
    wanted = videos
    if (viewTimer) clearTimeout(viewTimer)
    viewTimer = setTimeout(flushView, VIEW_DEBOUNCE_MS)
  }

  function flushView() {
    viewTimer = null
    const call = callId()
    if (!ready || !call || !wanted || (sent && sameView(sent, wanted))) return
    if (deps.send({ type: 'call_sfu_view', call, videos: wanted })) sent = wanted
  }

  function close() {
    epoch++
    const l = link
    link = null
    void l?.then((x) => x?.close())
    watch?.stop()
    watch = null
    if (statsTimer) clearInterval(statsTimer)
    if (viewTimer) clearTimeout(viewTimer)
    statsTimer = viewTimer = null
    on.value = false
    ready = false
    speakers.value = []
    received = new Map()
    pcState = 'new'
    wanted = sent = null
  }

  return { on, speakers, accepted, onFrame, sync, setView, close }
}

function sameTracks(stream: MediaStream | null, tracks: MediaStreamTrack[]) {
  const had = stream?.getTracks() ?? []
  return had.length === tracks.length && tracks.every((t) => had.includes(t))
}
