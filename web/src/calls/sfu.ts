// A device's one connection to the server's SFU in a group call (docs/protocol.md, "Group calls
// through the SFU"): it sends the microphone, the camera (three simulcast layers) and a shared
// screen as sendonly transceivers, and receives everyone else's tracks on transceivers that the
// server's offers add. No Vue here: `sfuCall.ts` ties it to the calls store.
//
// Negotiation runs one step at a time (a promise chain), and each side offers: I offer when what
// I send changes (and for an ICE restart); the server offers when what I receive changes. The
// server gives way in a collision: while an offer of mine is out, its offer is ignored (it drops
// it, answers mine and offers again). A change of mine made while any offer is out is offered
// once that exchange is over. ICE restarts: on a network change here, on a failure through the
// calls store's link watch.
import { summarizeStats } from '@/lib/calls'
import type { SfuSource, SfuTrack, UserId } from '@/protocol/types'

/** The camera's simulcast layers, smallest first: the server forwards one per receiver. */
export const CAMERA_LAYERS: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
]
/** A shared screen: one layer at full resolution, favouring sharp text over frame rate. */
export const SCREEN_ENCODING: RTCRtpEncodingParameters = { maxBitrate: 2_500_000 }

/** What I send: each source's track, or null for none. */
export type Outgoing = Record<SfuSource, MediaStreamTrack | null>

/** One other participant's tracks as I receive them. */
export interface RemoteMedia {
  audio: MediaStreamTrack | null
  camera: MediaStreamTrack | null
  screen: MediaStreamTrack | null
}

export interface SfuHooks {
  offer(sdp: string, sources: Record<string, SfuSource>): void
  answer(sdp: string): void
  /** What I receive, by user, after each offer or answer applied. */
  received(media: Map<UserId, RemoteMedia>): void
  state(state: RTCPeerConnectionState): void
}

/** Per user: media bytes received and video frames decoded so far; the route of the connection. */
export interface SfuStats {
  route: 'relay' | 'direct' | null
  byUser: Map<UserId, { bytes: number; frames: number }>
}

export class SfuLink {
  readonly pc: RTCPeerConnection
  private readonly hooks: SfuHooks
  private readonly mine: Record<SfuSource, RTCRtpTransceiver | null> = { audio: null, camera: null, screen: null }
  private tracks: SfuTrack[] = []
  private chain: Promise<void> = Promise.resolve()
  private again = false
  private restartNext = false
  private closed = false
  private readonly onNetwork = () => this.restartIce()

  constructor(config: RTCConfiguration, hooks: SfuHooks) {
    this.pc = new RTCPeerConnection(config)
    this.hooks = hooks
    // A failed connection is restarted by the calls store's watch (`calls/linkWatch.ts`), as
    // in every call; here only a network change restarts at once.
    this.pc.onconnectionstatechange = () => hooks.state(this.pc.connectionState)
    // A new network (Wi-Fi to mobile data, a VPN coming up): the old path may be gone.
    window.addEventListener('online', this.onNetwork)
    netInfo()?.addEventListener('change', this.onNetwork)
  }

  /** Sends `want`: adds, replaces or stops my tracks, and offers when the set sent changed. */
  send(want: Outgoing): Promise<void> {
    return this.step(async () => {
      let changed = false
      for (const source of ['audio', 'camera', 'screen'] as const) {
        const track = want[source]
        const t = this.mine[source]
        if (track && !t) {
          this.mine[source] = this.pc.addTransceiver(track, sendInit(source, track))
          if (source === 'screen') track.contentHint = 'detail'
          changed = true
        } else if (track && t) {
          if (t.sender.track !== track) {
            if (source === 'screen') track.contentHint = 'detail'
            await t.sender.replaceTrack(track)
          }
          if (t.direction !== 'sendonly') {
            t.direction = 'sendonly'
            changed = true
          }
        } else if (!track && t && t.direction !== 'inactive') {
          await t.sender.replaceTrack(null)
          t.direction = 'inactive'
          changed = true
        }
      }
      if (changed) await this.offer()
    })
  }

  /** The server's answer to my offer. */
  onAnswer(sdp: string): Promise<void> {
    return this.step(async () => {
      if (this.pc.signalingState !== 'have-local-offer') return
      await this.pc.setRemoteDescription({ type: 'answer', sdp })
      this.report()
      await this.offerIfAgain()
    })
  }

  /** The server's offer: what I receive changed (`tracks` is the full list). */
  onOffer(sdp: string, tracks: SfuTrack[]): Promise<void> {
    return this.step(async () => {
      // An offer of mine is out: the server drops its own and offers again after answering.
      if (this.pc.signalingState !== 'stable') return
      this.tracks = tracks
      await this.pc.setRemoteDescription({ type: 'offer', sdp })
      const answer = await this.pc.createAnswer()
      await this.pc.setLocalDescription(answer)
      this.hooks.answer(answer.sdp ?? '')
      this.report()
      await this.offerIfAgain()
    })
  }

  /** New ICE credentials and a new offer: the way back after a network change or a failure. */
  restartIce(): Promise<void> {
    return this.step(async () => {
      this.restartNext = true
      await this.offer()
    })
  }

  async stats(): Promise<SfuStats> {
    const report = await this.pc.getStats()
    const owner = new Map<string, UserId>()
    for (const t of this.pc.getTransceivers()) {
      const who = t.mid !== null ? this.tracks.find((x) => x.mid === t.mid) : undefined
      if (who && t.receiver.track) owner.set(t.receiver.track.id, who.user)
    }
    return summarizeSfuStats(report, (s) => {
      const mid = typeof s.mid === 'string' ? this.tracks.find((x) => x.mid === s.mid)?.user : undefined
      return mid ?? owner.get(String(s.trackIdentifier))
    })
  }

  close() {
    this.closed = true
    window.removeEventListener('online', this.onNetwork)
    netInfo()?.removeEventListener('change', this.onNetwork)
    this.pc.onconnectionstatechange = null
    this.pc.close()
  }

  /** Runs `fn` after every step before it; a failed step is reported, not fatal to the next. */
  private step(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(() => (this.closed ? undefined : fn()))
    this.chain = next.catch((e: unknown) => console.warn('SFU negotiation step failed', e))
    return this.chain
  }

  /** Offers now, or once the exchange in progress is over. */
  private async offer() {
    if (this.pc.signalingState !== 'stable') {
      this.again = true
      return
    }
    this.again = false
    const offer = await this.pc.createOffer(this.restartNext ? { iceRestart: true } : undefined)
    this.restartNext = false
    await this.pc.setLocalDescription(offer)
    this.hooks.offer(offer.sdp ?? '', this.sources())
  }

  private async offerIfAgain() {
    if (this.again) await this.offer()
  }

  /** What each of my sending `mid`s carries (`sources` of `call_sfu_offer`). */
  private sources(): Record<string, SfuSource> {
    const out: Record<string, SfuSource> = {}
    for (const [source, t] of Object.entries(this.mine) as [SfuSource, RTCRtpTransceiver | null][]) {
      if (t?.mid != null && t.direction === 'sendonly') out[t.mid] = source
    }
    return out
  }

  /** Hands the tracks I receive, by user and source, to `received`. */
  private report() {
    const byMid = new Map(this.pc.getTransceivers().map((t) => [t.mid, t]))
    this.hooks.received(remoteMedia(this.tracks, (mid) => byMid.get(mid)?.receiver.track ?? null))
  }
}

/** Groups the server's track list by user, with each `mid`'s receiving track. */
export function remoteMedia(tracks: SfuTrack[], trackOf: (mid: string) => MediaStreamTrack | null): Map<UserId, RemoteMedia> {
  const out = new Map<UserId, RemoteMedia>()
  for (const t of tracks) {
    const m = out.get(t.user) ?? { audio: null, camera: null, screen: null }
    m[t.source] = trackOf(t.mid) ?? m[t.source]
    out.set(t.user, m)
  }
  return out
}

/**
 * Sums an SFU connection's stats per sender: `userOf` names the user of an inbound-rtp entry (by
 * its `mid`, else its track). The route is that of the selected candidate pair, as in 1:1 calls.
 */
export function summarizeSfuStats(report: RTCStatsReport, userOf: (s: Record<string, unknown>) => UserId | undefined): SfuStats {
  const byUser = new Map<UserId, { bytes: number; frames: number }>()
  report.forEach((s: Record<string, unknown>) => {
    if (s.type !== 'inbound-rtp') return
    const user = userOf(s)
    if (user === undefined) return
    const e = byUser.get(user) ?? { bytes: 0, frames: 0 }
    e.bytes += Number(s.bytesReceived ?? 0)
    e.frames += Number(s.framesDecoded ?? 0)
    byUser.set(user, e)
  })
  return { byUser, route: summarizeStats(report).route }
}

function sendInit(source: SfuSource, track: MediaStreamTrack): RTCRtpTransceiverInit {
  const streams = [new MediaStream([track])]
  if (source === 'camera') return { direction: 'sendonly', streams, sendEncodings: CAMERA_LAYERS.map((e) => ({ ...e })) }
  if (source === 'screen') return { direction: 'sendonly', streams, sendEncodings: [{ ...SCREEN_ENCODING }] }
  return { direction: 'sendonly', streams }
}

/** The Network Information API where the browser has it (Chromium): it says when the network changes. */
function netInfo(): EventTarget | undefined {
  return (navigator as Navigator & { connection?: EventTarget }).connection
}
