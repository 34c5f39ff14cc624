// Audio and video calls (docs/protocol.md, "Calls"): the signalling state machine over the chat
// socket and one RTCPeerConnection per other participant (a mesh in group calls; through the
// server's SFU, one connection to it: calls/sfuCall.ts), with the ICE
// servers (STUN/TURN) and transport policy the server hands out. The server decides who rings,
// who answered and when a call ends; this store follows its frames.
//
// Who offers: the participant who joins (answers) sends an offer to everyone already in the
// call; the others answer. Candidates that arrive before the remote description are queued.
// Later changes of what is sent: the camera or a shared screen replaces the track of the video
// sender in place (`replaceTrack`, no renegotiation); a call that has no video sender yet gets
// one and renegotiates (a new offer). When both sides offer at once, the peer with the higher
// user id gives way (rolls back, answers, then offers again).
//
// A connection that does not connect, or drops, is watched by `calls/linkWatch.ts`: ICE restart
// (a new offer, same glare rule), then giving up with the likely cause (`failure`), shown on the
// call screen. The first connection sends `call_connected`: only then did the call take place.
import { defineStore } from 'pinia'
import { computed, markRaw, ref, shallowRef, watch } from 'vue'
import { api } from '@/protocol/api'
import type { CallClientFrame, CallMedia, CallServerFrame, ConvId, IceServer, UserId } from '@/protocol/types'
import type { FailureCause } from '@/calls/health'
import { watchLink, type LinkWatch } from '@/calls/linkWatch'
import { acceptAnswer, addCandidate, answerOffer, makeOffer, replaceVideoTrack, summarizeStats, type ActiveCall, type Incoming, type PeerLink, type PeerState } from '@/lib/calls'
import { sfuCall } from '@/calls/sfuCall'
import { useChat } from './chat'
import { useSocket } from './socket'

export type { ActiveCall, CallPhase, Incoming, PeerState } from '@/lib/calls'
export { replaceVideoTrack, summarizeStats } from '@/lib/calls'

const ENDED_SHOWN_MS = 2500
const STATS_EVERY_MS = 1000
/** Refusals of a call_accept or call_invite that end the attempt, with a message of their own. */
const REFUSED = ['limit_reached', 'not_found', 'forbidden', 'conflict']

export const useCalls = defineStore('calls', () => {
  const supported = typeof window !== 'undefined' && typeof window.RTCPeerConnection === 'function' && !!navigator.mediaDevices?.getUserMedia
  const canShareScreen = supported && typeof navigator.mediaDevices?.getDisplayMedia === 'function'
  const incoming = ref<Incoming[]>([])
  const active = ref<ActiveCall | null>(null)
  const peers = ref<Record<UserId, PeerState>>({})
  const localStream = shallowRef<MediaStream | null>(null)
  /** The screen I share, while I share it. */
  const screenStream = shallowRef<MediaStream | null>(null)
  const muted = ref(false)
  const cameraOff = ref(false)
  /** Why the last call ended, shown for a moment on the call screen. */
  const ended = ref<{ reason: string; duration: number | null } | null>(null)
  const error = ref<string | null>(null)
  /** Why the last call could not connect, shown on the call screen until dismissed. */
  const failure = ref<{ cause: FailureCause; conv: ConvId; other: UserId | null } | null>(null)
  const links = new Map<UserId, PeerLink>()
  const watches = new Map<UserId, LinkWatch>()
  const linking = new Map<UserId, Promise<PeerLink>>()
  let ice: { servers: IceServer[]; policy: RTCIceTransportPolicy; until: number } | null = null
  let unsubs: (() => void)[] = []
  let endedTimer: ReturnType<typeof setTimeout> | null = null
  let statsTimer: ReturnType<typeof setInterval> | null = null
  // Group calls through the server's SFU (calls/sfuCall.ts): one connection, not a mesh.
  const sfu = sfuCall({
    send,
    iceConfig,
    active,
    peers,
    peerState,
    me: myId,
    local: () => ({ stream: localStream.value, screen: screenStream.value }),
    watch: (pc, hooks) => watchLink(pc, relayInfo(), hooks),
    connected: mediaConnected,
    gaveUp: linkGaveUp,
  })

  const ringing = computed(() => incoming.value[0] ?? null)
  const sharing = computed(() => !!screenStream.value)
  const cameraTrack = computed(() => localStream.value?.getVideoTracks()[0] ?? null)
  const hasVideo = computed(() => !!cameraTrack.value && !cameraOff.value)
  const isGroup = computed(() => !!active.value?.conv.startsWith('g:'))

  function chat() {
    return useChat()
  }

  function myId(): UserId | null {
    return chat().me?.id ?? null
  }

  /** Starts listening to the chat socket (called once the socket store runs). */
  function attach() {
    detach()
    const c = useSocket()
    unsubs = [
      // The server ends a call whose device disconnects; the socket dropping means it is over.
      watch(
        () => c.conn,
        (s) => {
          if ((s === 'offline' || s === 'connecting' || s === 'stopped') && active.value?.call) cleanup('connection_lost')
          if (s !== 'online' && s !== 'syncing') incoming.value = []
        },
      ),
      c.onCallFrame(onFrame),
      c.onFrameError((code, message) => {
        // A refused call_invite (forbidden, conflict, a full group call...) names no call: it is
        // ours if we wait. So is a refused call_accept (the group call filled up meanwhile).
        const a = active.value
        if (a && (a.call === null || (!a.outgoing && !a.answeredAt && REFUSED.includes(code)))) {
          error.value = REFUSED.includes(code) ? code : message || code
          cleanup('failed')
        }
      }),
    ]
  }

  function detach() {
    for (const u of unsubs) u()
    unsubs = []
    incoming.value = []
    if (active.value) cleanup('hangup')
  }

  async function iceConfig(): Promise<RTCConfiguration> {
    if (!ice || ice.until <= Date.now()) {
      try {
        const r = await api.iceServers()
        const policy: RTCIceTransportPolicy = r.ice_transport_policy === 'relay' ? 'relay' : 'all'
        ice = { servers: r.ice_servers, policy, until: Date.now() + Math.max(60, r.ttl_secs / 2) * 1000 }
      } catch {
        // Without STUN/TURN a call still works on the same network.
        return { iceServers: [] }
      }
    }
    return { iceServers: ice.servers as RTCIceServer[], iceTransportPolicy: ice.policy }
  }

  /** Bumped by every cleanup, so that media arriving for a call that has ended is let go. */
  let callEpoch = 0

  /**
   * The microphone (and camera) for the call now starting or being answered, or null, with the
   * tracks already stopped, when that call ended while the browser was asking: a call cancelled
   * during the permission prompt must not leave the camera on.
   */
  async function mediaForThisCall(video: boolean): Promise<MediaStream | null> {
    const epoch = callEpoch
    const stream = await getMedia(video)
    if (epoch === callEpoch && active.value) return stream
    for (const t of stream.getTracks()) t.stop()
    return null
  }

  async function getMedia(video: boolean): Promise<MediaStream> {
    return navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: video ? { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' } : false,
    })
  }

  function send(frame: CallClientFrame) {
    return useSocket().signal(frame)
  }

  // ---- starting, answering, ending ----

  /** Calls a 1:1 chat, or starts a group call (or joins the one going on in that group). */
  async function start(conv: ConvId, media: CallMedia) {
    if (active.value || !supported) return
    error.value = null
    ended.value = null
    failure.value = null
    const other = myId() !== null ? peerOf(conv) : null
    active.value = { call: null, conv, media, phase: 'starting', outgoing: true, answeredAt: null, connectedAt: null, other }
    let stream: MediaStream | null
    try {
      stream = await mediaForThisCall(media === 'video')
    } catch (e) {
      error.value = mediaError(e)
      cleanup('failed')
      return
    }
    if (!stream) return
    localStream.value = markRaw(stream)
    muted.value = false
    cameraOff.value = false
    if (!send({ type: 'call_invite', conv, media })) {
      error.value = 'offline'
      cleanup('failed')
    }
  }

  async function accept(call: string) {
    const inc = incoming.value.find((x) => x.call === call)
    if (!inc || active.value) return
    error.value = null
    ended.value = null
    failure.value = null
    incoming.value = incoming.value.filter((x) => x.call !== call)
    const other = inc.conv.startsWith('g:') ? null : inc.from
    active.value = { call, conv: inc.conv, media: inc.media, phase: 'connecting', outgoing: false, answeredAt: null, connectedAt: null, other }
    let stream: MediaStream | null
    try {
      stream = await mediaForThisCall(inc.media === 'video')
    } catch (e) {
      // Answer anyway without sending media? No: tell the caller we cannot.
      error.value = mediaError(e)
      send({ type: 'call_reject', call })
      cleanup('failed')
      return
    }
    // The caller gave up (or this device hung up) while the browser was asking for the camera.
    if (!stream) return
    localStream.value = markRaw(stream)
    muted.value = false
    cameraOff.value = false
    send({ type: 'call_accept', call })
  }

  function reject(call: string) {
    incoming.value = incoming.value.filter((x) => x.call !== call)
    send({ type: 'call_reject', call })
  }

  /** Hangs up a 1:1 call, or leaves a group call (which goes on for the others). */
  function hangup() {
    const a = active.value
    if (!a) return
    if (a.call) send({ type: 'call_hangup', call: a.call })
    // An answered call that never connected did not take place: no duration to show.
    if (a.connectedAt) cleanup('hangup', Math.round((Date.now() - a.connectedAt) / 1000))
    else cleanup(a.answeredAt ? 'not_connected' : 'cancelled')
  }

  function toggleMute() {
    muted.value = !muted.value
    for (const t of localStream.value?.getAudioTracks() ?? []) t.enabled = !muted.value
    sendMediaState()
  }

  async function toggleCamera() {
    const stream = localStream.value
    if (!stream || !active.value) return
    if (cameraTrack.value) {
      cameraOff.value = !cameraOff.value
      cameraTrack.value.enabled = !cameraOff.value
      sendMediaState()
      return
    }
    // An audio call: start the camera and send it to everyone.
    try {
      const v = await navigator.mediaDevices.getUserMedia({ video: true })
      const track = v.getVideoTracks()[0]
      if (!track || !active.value || localStream.value !== stream) {
        // The call ended while the browser was asking: let the camera go.
        for (const t of v.getTracks()) t.stop()
        return
      }
      stream.addTrack(track)
      localStream.value = markRaw(new MediaStream(stream.getTracks()))
      cameraOff.value = false
      // While the screen is shared, the camera waits for the share to end.
      if (!sharing.value || sfu.on.value) await sendVideo(track)
      sendMediaState()
    } catch (e) {
      error.value = mediaError(e)
    }
  }

  /** Shares a screen (or window) in place of the camera; again: back to the camera. */
  async function toggleScreenShare() {
    if (!active.value || !canShareScreen) return
    if (screenStream.value) {
      await stopSharing()
      return
    }
    let screen: MediaStream
    try {
      screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })
    } catch (e) {
      // Cancelling the browser's picker is not an error worth showing.
      if (e instanceof Error && e.name !== 'NotAllowedError' && e.name !== 'AbortError') error.value = 'share_failed'
      return
    }
    const track = screen.getVideoTracks()[0]
    if (!track || !active.value) {
      for (const t of screen.getTracks()) t.stop()
      return
    }
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => {
      if (screenStream.value === screen) void stopSharing()
    })
    screenStream.value = markRaw(screen)
    await sendVideo(track)
    sendMediaState()
  }

  async function stopSharing() {
    const screen = screenStream.value
    if (!screen) return
    screenStream.value = null
    for (const t of screen.getTracks()) t.stop()
    // Back to the camera (its track keeps its on/off state), or to sending no video.
    await sendVideo(cameraTrack.value)
    sendMediaState()
  }

  /** Sends `track` as my video to everyone in the call. */
  async function sendVideo(track: MediaStreamTrack | null) {
    if (sfu.on.value) return sfu.sync()
    for (const [user, link] of links) {
      if (await replaceVideoTrack(link.pc, track)) continue
      if (!track) continue
      link.pc.addTrack(track, localStream.value ?? new MediaStream([track]))
      await offer(user, link)
    }
  }

  function sendMediaState() {
    const a = active.value
    if (a?.call)
      send({ type: 'call_media_state', call: a.call, muted: muted.value, camera_off: !hasVideo.value, screen_sharing: sharing.value })
  }

  // ---- frames ----

  function onFrame(f: CallServerFrame) {
    const me = myId()
    const a = active.value
    switch (f.type) {
      case 'call_started':
        // Also the answer to calling a group whose call goes on: that call's id and media.
        if (a && a.call === null && a.conv === f.conv) {
          a.call = f.call
          a.media = f.media
          incoming.value = incoming.value.filter((x) => x.call !== f.call)
        }
        break
      case 'call_incoming':
        if (a?.call === f.call) break
        if (!incoming.value.some((x) => x.call === f.call)) incoming.value.push({ ...f })
        break
      case 'call_ringing':
        if (a?.call === f.call && a.phase === 'starting') a.phase = 'ringing'
        break
      case 'call_accepted':
        if (!a || a.call !== f.call) break
        // I joined (or my call was first answered): the others learn my microphone, camera and screen state.
        if (f.user === me || !a.answeredAt) sendMediaState()
        a.answeredAt ??= Date.now()
        if (a.phase !== 'connected') a.phase = 'connecting'
        if (f.sfu) sfu.accepted(f)
        else if (f.user === me) {
          // I joined: I offer to everyone already in the call.
          for (const u of f.participants) if (u !== me) void connectTo(u, true)
        }
        break
      case 'call_offer':
        if (a?.call === f.call) void onOffer(f.from, f.sdp)
        break
      case 'call_answer':
        if (a?.call === f.call) void onAnswer(f.from, f.sdp)
        break
      case 'call_candidate':
        if (a?.call === f.call) {
          watches.get(f.from)?.remoteCandidate((f.candidate as RTCIceCandidateInit).candidate)
          void onCandidate(f.from, f.candidate as RTCIceCandidateInit)
        }
        break
      case 'call_media_state':
        if (a?.call === f.call) {
          const p = peerState(f.user)
          p.muted = f.muted
          p.cameraOff = f.camera_off
          p.sharing = !!f.screen_sharing
        }
        break
      case 'call_sfu_offer':
      case 'call_sfu_answer':
      case 'call_sfu_speakers':
        if (a?.call === f.call) void sfu.onFrame(f)
        break
      case 'call_left':
        if (a?.call === f.call) dropPeer(f.user)
        break
      case 'call_ended':
        incoming.value = incoming.value.filter((x) => x.call !== f.call)
        if (a?.call === f.call && !endedUnconnected(a)) cleanup(f.reason, f.duration_secs ?? null)
        break
    }
  }

  function peerState(user: UserId): PeerState {
    return (peers.value[user] ??= {
      user,
      stream: null,
      videoTracks: 0,
      muted: false,
      cameraOff: false,
      sharing: false,
      connected: false,
      bytesIn: 0,
      route: null,
    })
  }

  /** The connection to `user`, made once even when frames for it arrive together. */
  function connectTo(user: UserId, offering: boolean): Promise<PeerLink> {
    let p = linking.get(user)
    if (!p) {
      p = makeLink(user, offering)
      linking.set(user, p)
    }
    return p
  }

  async function makeLink(user: UserId, offering: boolean): Promise<PeerLink> {
    const pc = new RTCPeerConnection(await iceConfig())
    const link: PeerLink = { pc, pending: [], remoteSet: false, makingOffer: false, offerAgain: false }
    if (!active.value) {
      // The call ended while the ICE servers were fetched.
      pc.close()
      return link
    }
    links.set(user, link)
    peerState(user)
    const stream = localStream.value
    if (stream) {
      for (const track of stream.getTracks()) {
        // While I share my screen, the screen goes where the camera would.
        const send = track.kind === 'video' && screenStream.value ? (screenStream.value.getVideoTracks()[0] ?? track) : track
        pc.addTrack(send, stream)
      }
      const screen = screenStream.value?.getVideoTracks()[0]
      if (screen && !stream.getVideoTracks().length) pc.addTrack(screen, stream)
    }
    pc.onicecandidate = (e) => {
      const call = active.value?.call
      if (e.candidate && call) send({ type: 'call_candidate', call, to: user, candidate: e.candidate.toJSON() })
    }
    pc.ontrack = (e) => {
      const p = peerState(user)
      const s = e.streams[0] ?? new MediaStream([e.track])
      const count = () => (p.videoTracks = s.getVideoTracks().length)
      s.onaddtrack = count
      s.onremovetrack = count
      p.stream = markRaw(s)
      count()
    }
    pc.onconnectionstatechange = () => {
      const p = peers.value[user]
      if (!p) return
      p.connected = pc.connectionState === 'connected'
      if (p.connected && active.value) active.value.phase = 'connected'
    }
    watches.set(
      user,
      watchLink(pc, relayInfo(), {
        connected: () => mediaConnected(),
        restart: () => {
          pc.restartIce()
          // An offer that cannot be made now (a negotiation in progress) leaves the restart to
          // that negotiation; the watch's deadline still bounds it.
          offer(user, link).catch(() => undefined)
        },
        giveUp: (cause) => linkGaveUp(cause),
      }),
    )
    startStats()
    if (offering) await offer(user, link)
    return link
  }

  async function offer(user: UserId, link: PeerLink) {
    const call = active.value?.call
    if (call) await makeOffer(link, (sdp) => send({ type: 'call_offer', call, to: user, sdp }))
  }

  async function onOffer(from: UserId, sdp: string) {
    const link = await connectTo(from, false)
    await answerOffer(link, sdp, (myId() ?? 0) > from, (ans) => {
      const call = active.value?.call
      if (call) send({ type: 'call_answer', call, to: from, sdp: ans })
    }, () => offer(from, link))
  }

  async function onAnswer(from: UserId, sdp: string) {
    const link = await linking.get(from)
    if (link) await acceptAnswer(link, sdp)
  }

  async function onCandidate(from: UserId, c: RTCIceCandidateInit) {
    await addCandidate(await connectTo(from, false), c)
  }

  /** What the relay offers the watch needs for its likely cause. */
  function relayInfo() {
    const offered = !!ice?.servers.some((s) => [s.urls].flat().some((u) => /^turns?:/.test(u)))
    return { offered, only: ice?.policy === 'relay' }
  }

  /** Media flows on a connection: the first time in this call, the server hears of it. */
  function mediaConnected() {
    const a = active.value
    if (!a || a.connectedAt) return
    a.connectedAt = Date.now()
    if (a.call) send({ type: 'call_connected', call: a.call })
  }

  /** A connection gave up. While another still connects or is connected, the call goes on. */
  function linkGaveUp(cause: FailureCause) {
    const a = active.value
    if (!a) return
    if ([...links.values()].some((l) => l.pc.connectionState === 'connected')) return
    if ([...watches.values()].some((w) => !w.gaveUp)) return
    if (a.call) send({ type: 'call_hangup', call: a.call })
    failure.value = { cause, conv: a.conv, other: a.other }
    cleanup('failed')
  }

  /**
   * The call ended (the other side gave up or hung up) after an answer but before media ever
   * flowed. When this side's connection was in trouble too, that is a failed call: its likely
   * cause is shown. Returns false when the ending is an ordinary one, for the caller to handle.
   */
  function endedUnconnected(a: ActiveCall): boolean {
    if (!a.answeredAt || a.connectedAt) return false
    const troubled = [...watches.values()].find((w) => w.troubled)
    if (troubled) failure.value = { cause: troubled.cause(), conv: a.conv, other: a.other }
    cleanup(troubled ? 'failed' : 'not_connected')
    return true
  }

  /** Reads each connection's stats every second: bytes received and the route in use. */
  function startStats() {
    if (statsTimer) return
    statsTimer = setInterval(() => {
      for (const [user, link] of links) {
        link.pc
          .getStats()
          .then((r) => {
            const p = peers.value[user]
            if (!p || links.get(user) !== link) return
            const s = summarizeStats(r)
            p.bytesIn = s.bytesIn
            p.route = s.route
          })
          .catch(() => {
            // A connection closed while reading: the next round skips it.
          })
      }
    }, STATS_EVERY_MS)
  }

  function dropPeer(user: UserId) {
    watches.get(user)?.stop()
    watches.delete(user)
    links.get(user)?.pc.close()
    links.delete(user)
    linking.delete(user)
    delete peers.value[user]
  }

  function cleanup(reason: string, duration: number | null = null) {
    callEpoch++
    sfu.close()
    for (const user of [...links.keys()]) dropPeer(user)
    linking.clear()
    peers.value = {}
    if (statsTimer) clearInterval(statsTimer)
    statsTimer = null
    for (const t of localStream.value?.getTracks() ?? []) t.stop()
    for (const t of screenStream.value?.getTracks() ?? []) t.stop()
    localStream.value = null
    screenStream.value = null
    const a = active.value
    active.value = null
    muted.value = false
    cameraOff.value = false
    if (a && reason !== 'failed') {
      ended.value = { reason, duration }
      if (endedTimer) clearTimeout(endedTimer)
      endedTimer = setTimeout(() => (ended.value = null), ENDED_SHOWN_MS)
    }
  }

  function peerOf(conv: ConvId): UserId | null {
    const me = myId()
    const m = /^d:(\d+):(\d+)$/.exec(conv)
    if (!m || me === null) return null
    const a = Number(m[1])
    const b = Number(m[2])
    return a === me ? b : a
  }

  function mediaError(e: unknown): string {
    const name = e instanceof Error ? e.name : ''
    if (name === 'NotAllowedError' || name === 'SecurityError') return 'media_denied'
    if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'media_missing'
    return 'media_failed'
  }

  function dismissError() {
    error.value = null
    failure.value = null
  }

  return {
    supported,
    canShareScreen,
    incoming,
    ringing,
    active,
    isGroup,
    peers,
    localStream,
    screenStream,
    muted,
    cameraOff,
    hasVideo,
    sharing,
    /** SFU calls: the call goes through the server, who speaks, and the videos shown. */
    sfu: sfu.on,
    speakers: sfu.speakers,
    setView: sfu.setView,
    ended,
    error,
    failure,
    attach,
    detach,
    start,
    accept,
    reject,
    hangup,
    toggleMute,
    toggleCamera,
    toggleScreenShare,
    dismissError,
  }
})
