// Audio and video calls (docs/protocol.md, "Calls"): the signalling state machine over the chat
// socket and one RTCPeerConnection per other participant, with the ICE servers (STUN/TURN) the
// server hands out. The server decides who rings, who answered and when a call ends; this store
// follows its frames.
//
// Who offers: the participant who joins (answers) sends an offer to everyone already in the
// call; the others answer. Candidates that arrive before the remote description are queued.
// Turning the camera on in a call that has no video track yet renegotiates (a new offer).
import { defineStore } from 'pinia'
import { computed, markRaw, ref, shallowRef, watch } from 'vue'
import { api } from '@/protocol/api'
import type { CallMedia, CallServerFrame, ConvId, IceServer, UserId } from '@/protocol/types'
import { useChat } from './chat'

export type CallPhase = 'starting' | 'ringing' | 'connecting' | 'connected'

export interface Incoming {
  call: string
  conv: ConvId
  from: UserId
  media: CallMedia
  participants: UserId[]
}

export interface PeerState {
  user: UserId
  stream: MediaStream | null
  muted: boolean
  cameraOff: boolean
  connected: boolean
}

export interface ActiveCall {
  call: string | null
  conv: ConvId
  media: CallMedia
  phase: CallPhase
  /** I started it. */
  outgoing: boolean
  /** When it was answered (ms), for the duration. */
  answeredAt: number | null
  /** Who I am calling or who called me (the other person of a 1:1 call). */
  other: UserId | null
}

interface PeerLink {
  pc: RTCPeerConnection
  /** Candidates that came before the remote description. */
  pending: RTCIceCandidateInit[]
  remoteSet: boolean
}

const ENDED_SHOWN_MS = 2500

export const useCalls = defineStore('calls', () => {
  const supported = typeof window !== 'undefined' && typeof window.RTCPeerConnection === 'function' && !!navigator.mediaDevices?.getUserMedia
  const incoming = ref<Incoming[]>([])
  const active = ref<ActiveCall | null>(null)
  const peers = ref<Record<UserId, PeerState>>({})
  const localStream = shallowRef<MediaStream | null>(null)
  const muted = ref(false)
  const cameraOff = ref(false)
  /** Why the last call ended, shown for a moment on the call screen. */
  const ended = ref<{ reason: string; duration: number | null } | null>(null)
  const error = ref<string | null>(null)
  const links = new Map<UserId, PeerLink>()
  const linking = new Map<UserId, Promise<PeerLink>>()
  let ice: { servers: IceServer[]; until: number } | null = null
  let unsubs: (() => void)[] = []
  let endedTimer: ReturnType<typeof setTimeout> | null = null

  const ringing = computed(() => incoming.value[0] ?? null)
  const hasVideo = computed(() => !!localStream.value?.getVideoTracks().length && !cameraOff.value)

  function chat() {
    return useChat()
  }

  function myId(): UserId | null {
    return chat().me?.id ?? null
  }

  /** Starts listening to the chat socket (called once the chat store runs). */
  function attach() {
    detach()
    const c = chat()
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
        // A refused call_invite (forbidden, conflict...) names no call: it is ours if we wait.
        if (active.value && active.value.call === null) {
          error.value = message || code
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

  async function iceServers(): Promise<RTCIceServer[]> {
    if (ice && ice.until > Date.now()) return ice.servers as RTCIceServer[]
    try {
      const r = await api.iceServers()
      ice = { servers: r.ice_servers, until: Date.now() + Math.max(60, r.ttl_secs / 2) * 1000 }
      return r.ice_servers as RTCIceServer[]
    } catch {
      // Without STUN/TURN a call still works on the same network.
      return []
    }
  }

  async function getMedia(video: boolean): Promise<MediaStream> {
    return navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: video ? { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' } : false,
    })
  }

  function send(frame: Parameters<ReturnType<typeof useChat>['signal']>[0]) {
    return chat().signal(frame)
  }

  // ---- starting, answering, ending ----

  async function start(conv: ConvId, media: CallMedia) {
    if (active.value || !supported) return
    error.value = null
    ended.value = null
    const other = myId() !== null ? peerOf(conv) : null
    active.value = { call: null, conv, media, phase: 'starting', outgoing: true, answeredAt: null, other }
    try {
      localStream.value = markRaw(await getMedia(media === 'video'))
    } catch (e) {
      error.value = mediaError(e)
      cleanup('failed')
      return
    }
    muted.value = false
    cameraOff.value = false
    if (!active.value) return
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
    incoming.value = incoming.value.filter((x) => x.call !== call)
    active.value = { call, conv: inc.conv, media: inc.media, phase: 'connecting', outgoing: false, answeredAt: null, other: inc.from }
    try {
      localStream.value = markRaw(await getMedia(inc.media === 'video'))
    } catch (e) {
      // Answer anyway without sending media? No: tell the caller we cannot.
      error.value = mediaError(e)
      send({ type: 'call_reject', call })
      cleanup('failed')
      return
    }
    muted.value = false
    cameraOff.value = false
    send({ type: 'call_accept', call })
  }

  function reject(call: string) {
    incoming.value = incoming.value.filter((x) => x.call !== call)
    send({ type: 'call_reject', call })
  }

  function hangup() {
    const a = active.value
    if (!a) return
    if (a.call) send({ type: 'call_hangup', call: a.call })
    cleanup(a.answeredAt ? 'hangup' : 'cancelled', a.answeredAt ? Math.round((Date.now() - a.answeredAt) / 1000) : null)
  }

  function toggleMute() {
    muted.value = !muted.value
    for (const t of localStream.value?.getAudioTracks() ?? []) t.enabled = !muted.value
    sendMediaState()
  }

  async function toggleCamera() {
    const stream = localStream.value
    if (!stream || !active.value) return
    const tracks = stream.getVideoTracks()
    if (tracks.length) {
      cameraOff.value = !cameraOff.value
      for (const t of tracks) t.enabled = !cameraOff.value
      sendMediaState()
      return
    }
    // An audio call: add a camera track and renegotiate with everyone.
    try {
      const v = await navigator.mediaDevices.getUserMedia({ video: true })
      const track = v.getVideoTracks()[0]
      if (!track) return
      stream.addTrack(track)
      localStream.value = markRaw(new MediaStream(stream.getTracks()))
      cameraOff.value = false
      for (const [user, link] of links) {
        link.pc.addTrack(track, stream)
        await offer(user, link)
      }
      sendMediaState()
    } catch (e) {
      error.value = mediaError(e)
    }
  }

  function sendMediaState() {
    const a = active.value
    if (a?.call) send({ type: 'call_media_state', call: a.call, muted: muted.value, camera_off: cameraOff.value || !localStream.value?.getVideoTracks().length })
  }

  // ---- frames ----

  function onFrame(f: CallServerFrame) {
    const me = myId()
    const a = active.value
    switch (f.type) {
      case 'call_started':
        if (a && a.call === null && a.conv === f.conv) a.call = f.call
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
        a.answeredAt ??= Date.now()
        if (a.phase !== 'connected') a.phase = 'connecting'
        if (f.user === me) {
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
        if (a?.call === f.call) void onCandidate(f.from, f.candidate as RTCIceCandidateInit)
        break
      case 'call_media_state':
        if (a?.call === f.call) {
          const p = peerState(f.user)
          p.muted = f.muted
          p.cameraOff = f.camera_off
        }
        break
      case 'call_left':
        if (a?.call === f.call) dropPeer(f.user)
        break
      case 'call_ended':
        incoming.value = incoming.value.filter((x) => x.call !== f.call)
        if (a?.call === f.call) cleanup(f.reason, f.duration_secs ?? null)
        break
    }
  }

  function peerState(user: UserId): PeerState {
    return (peers.value[user] ??= { user, stream: null, muted: false, cameraOff: false, connected: false })
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
    const pc = new RTCPeerConnection({ iceServers: await iceServers() })
    const link: PeerLink = { pc, pending: [], remoteSet: false }
    if (!active.value) {
      // The call ended while the ICE servers were fetched.
      pc.close()
      return link
    }
    links.set(user, link)
    peerState(user)
    const stream = localStream.value
    if (stream) for (const track of stream.getTracks()) pc.addTrack(track, stream)
    pc.onicecandidate = (e) => {
      const call = active.value?.call
      if (e.candidate && call) send({ type: 'call_candidate', call, to: user, candidate: e.candidate.toJSON() })
    }
    pc.ontrack = (e) => {
      const p = peerState(user)
      const s = e.streams[0] ?? new MediaStream([e.track])
      p.stream = markRaw(s)
    }
    pc.onconnectionstatechange = () => {
      const p = peers.value[user]
      if (!p) return
      p.connected = pc.connectionState === 'connected'
      if (p.connected && active.value) active.value.phase = 'connected'
    }
    if (offering) await offer(user, link)
    return link
  }

  async function offer(user: UserId, link: PeerLink) {
    const call = active.value?.call
    if (!call) return
    const o = await link.pc.createOffer()
    await link.pc.setLocalDescription(o)
    send({ type: 'call_offer', call, to: user, sdp: o.sdp ?? '' })
  }

  async function onOffer(from: UserId, sdp: string) {
    const link = await connectTo(from, false)
    await link.pc.setRemoteDescription({ type: 'offer', sdp })
    await flushCandidates(link)
    const ans = await link.pc.createAnswer()
    await link.pc.setLocalDescription(ans)
    const call = active.value?.call
    if (call) send({ type: 'call_answer', call, to: from, sdp: ans.sdp ?? '' })
  }

  async function onAnswer(from: UserId, sdp: string) {
    const link = await linking.get(from)
    if (!link) return
    await link.pc.setRemoteDescription({ type: 'answer', sdp })
    await flushCandidates(link)
  }

  async function onCandidate(from: UserId, c: RTCIceCandidateInit) {
    const link = await connectTo(from, false)
    if (!link.remoteSet) {
      // Not yet: keep it for when the description arrives.
      link.pending.push(c)
      return
    }
    try {
      await link.pc.addIceCandidate(c)
    } catch {
      // A candidate for a transport that is gone: harmless.
    }
  }

  async function flushCandidates(link: PeerLink) {
    link.remoteSet = true
    const list = link.pending.splice(0)
    for (const c of list) {
      try {
        await link.pc.addIceCandidate(c)
      } catch {
        // See above.
      }
    }
  }

  function dropPeer(user: UserId) {
    links.get(user)?.pc.close()
    links.delete(user)
    linking.delete(user)
    delete peers.value[user]
  }

  function cleanup(reason: string, duration: number | null = null) {
    for (const user of [...links.keys()]) dropPeer(user)
    linking.clear()
    peers.value = {}
    for (const t of localStream.value?.getTracks() ?? []) t.stop()
    localStream.value = null
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
  }

  return {
    supported,
    incoming,
    ringing,
    active,
    peers,
    localStream,
    muted,
    cameraOff,
    hasVideo,
    ended,
    error,
    attach,
    detach,
    start,
    accept,
    reject,
    hangup,
    toggleMute,
    toggleCamera,
    dismissError,
  }
})
