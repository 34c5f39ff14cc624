// The plain parts of a call (no Vue, no store): its state as the UI shows it, and one peer
// connection's offer/answer exchange with the candidates that come before its description,
// the way the calls store (`stores/calls.ts`) drives each connection of the mesh.

import type { CallMedia, ConvId, UserId } from '@/protocol/types'

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
  /** Video tracks in `stream` (a MediaStream is not reactive). */
  videoTracks: number
  muted: boolean
  cameraOff: boolean
  sharing: boolean
  connected: boolean
  /** Media bytes received from this peer so far (RTP, from getStats). */
  bytesIn: number
  /** How the connection runs: through a TURN relay (either side's) or directly; null until known. */
  route: 'relay' | 'direct' | null
  /** SFU calls: the screen they share, apart from `stream` (their audio and camera). */
  screen?: MediaStream | null
  /** SFU calls: video frames of theirs decoded so far. */
  framesDecoded?: number
}

export interface ActiveCall {
  call: string | null
  conv: ConvId
  media: CallMedia
  phase: CallPhase
  /** I started it. */
  outgoing: boolean
  /** When it was answered (ms). */
  answeredAt: number | null
  /** When media first flowed (ms), for the duration; null while it never did. */
  connectedAt?: number | null
  /** Who I am calling or who called me (the other person of a 1:1 call). */
  other: UserId | null
}

export interface PeerLink {
  pc: RTCPeerConnection
  /** Candidates that came before the remote description. */
  pending: RTCIceCandidateInit[]
  remoteSet: boolean
  /** An offer of mine is being made; an offer arriving now collides with it. */
  makingOffer: boolean
  /** My change still has to be offered (I gave way in a collision). */
  offerAgain: boolean
}

/** Summary of one connection's getStats(): media bytes received and the selected route. */
export function summarizeStats(report: RTCStatsReport): { bytesIn: number; route: 'relay' | 'direct' | null } {
  let bytesIn = 0
  let pairId: string | undefined
  const byId = new Map<string, Record<string, unknown>>()
  report.forEach((s: Record<string, unknown>) => {
    byId.set(s.id as string, s)
    if (s.type === 'inbound-rtp') bytesIn += Number(s.bytesReceived ?? 0)
    if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') pairId = s.selectedCandidatePairId
  })
  if (!pairId) {
    // Browsers without transport stats mark the pair in use instead.
    for (const s of byId.values()) if (s.type === 'candidate-pair' && (s.selected === true || (s.nominated === true && s.state === 'succeeded'))) pairId = s.id as string
  }
  const pair = pairId ? byId.get(pairId) : undefined
  // Relayed when either end of the pair is a relay address: a call relayed through the other
  // side's allocation has a direct-looking local candidate. Direct only when both ends are known
  // and neither is a relay.
  const local = pair ? byId.get(pair.localCandidateId as string)?.candidateType : undefined
  const remote = pair ? byId.get(pair.remoteCandidateId as string)?.candidateType : undefined
  const route = local === 'relay' || remote === 'relay' ? 'relay' : local && remote ? 'direct' : null
  return { bytesIn, route }
}

/**
 * Puts `track` on the video sender of `pc` in place (`replaceTrack`, no renegotiation). Returns
 * false when the connection has no video sender yet: then the caller adds one and renegotiates.
 */
export async function replaceVideoTrack(pc: RTCPeerConnection, track: MediaStreamTrack | null): Promise<boolean> {
  const sender = pc.getTransceivers().find((t) => t.receiver.track?.kind === 'video' && (t.direction === 'sendrecv' || t.direction === 'sendonly'))?.sender
  if (!sender) return false
  await sender.replaceTrack(track)
  return true
}

/** Makes and sets an offer on `link`, handing its SDP to `send`. */
export async function makeOffer(link: PeerLink, send: (sdp: string) => void) {
  try {
    link.makingOffer = true
    const o = await link.pc.createOffer()
    await link.pc.setLocalDescription(o)
    send(o.sdp ?? '')
  } finally {
    link.makingOffer = false
  }
}

/**
 * Answers a remote offer on `link`. When both sides offered at once, the lower user id keeps its
 * offer and ignores this one (its answer is coming); the higher one (`iGiveWay`) rolls back,
 * answers, and offers its own change again afterwards through `offerAgain`.
 */
export async function answerOffer(
  link: PeerLink,
  sdp: string,
  iGiveWay: boolean,
  sendAnswer: (sdp: string) => void,
  offerAgain: () => Promise<void>,
) {
  const collision = link.makingOffer || link.pc.signalingState === 'have-local-offer'
  if (collision) {
    if (!iGiveWay) return
    if (link.pc.signalingState === 'have-local-offer') await link.pc.setLocalDescription({ type: 'rollback' })
    link.offerAgain = true
  }
  await link.pc.setRemoteDescription({ type: 'offer', sdp })
  await flushCandidates(link)
  const ans = await link.pc.createAnswer()
  await link.pc.setLocalDescription(ans)
  sendAnswer(ans.sdp ?? '')
  if (link.offerAgain) {
    link.offerAgain = false
    await offerAgain()
  }
}

/** The answer to an offer of mine; ignored unless an offer of mine is outstanding. */
export async function acceptAnswer(link: PeerLink, sdp: string) {
  if (link.pc.signalingState !== 'have-local-offer') return
  await link.pc.setRemoteDescription({ type: 'answer', sdp })
  await flushCandidates(link)
}

/** Adds a remote candidate, or keeps it until the remote description arrives. */
export async function addCandidate(link: PeerLink, c: RTCIceCandidateInit) {
  if (!link.remoteSet) {
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
      // See addCandidate.
    }
  }
}
