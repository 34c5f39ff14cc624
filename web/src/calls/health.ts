// The health of one call connection, as a pure state machine: the browser's connection-state
// events and timer wake-ups go in with the time, actions come out ("wait until", "restart ICE",
// "give up"). `calls/linkWatch.ts` feeds it from an RTCPeerConnection and carries out its
// actions; nothing here touches the browser, so the rules are table-tested
// (tests/callHealth.test.ts).
//
// The rules: a connection has `connectMs` to connect at first. `disconnected` (the network
// hiccupped) gets `graceMs` to recover on its own; `failed`, or a wait that ran out, restarts ICE
// (a new offer with fresh credentials), at most `maxRestarts` times in a row, each with
// `restartMs` to connect (failures reported meanwhile do not cut it short); after that the
// connection gives up. Connecting again resets the count,
// so a later network change may restart again.

/** What the browser says of a connection: `connectionState`, or `iceConnectionState` mapped. */
export type LinkState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed'

export interface HealthOptions {
  /** Time to connect at first, ms. */
  connectMs: number
  /** Time a `disconnected` connection gets to come back by itself before an ICE restart, ms. */
  graceMs: number
  /** Time to connect after an ICE restart, ms. */
  restartMs: number
  /** ICE restarts in a row before giving up. */
  maxRestarts: number
}

export const DEFAULT_HEALTH: HealthOptions = { connectMs: 20_000, graceMs: 4_000, restartMs: 12_000, maxRestarts: 1 }

export interface Health {
  state: LinkState
  /** It was connected at least once. */
  everConnected: boolean
  /** ICE restarts since it was last connected. */
  restarts: number
  /** What the running wait is for, and when it runs out (ms); null: no wait. */
  waiting: 'connect' | 'grace' | 'restart' | null
  deadline: number | null
  gaveUp: boolean
}

export type HealthAction =
  | { kind: 'none' }
  /** Call back at `until` (ms). */
  | { kind: 'wait'; until: number }
  /** Media flows (again); `first` the first time. */
  | { kind: 'connected'; first: boolean }
  /** `pc.restartIce()` and a new offer. */
  | { kind: 'restart' }
  /** Stop trying: the connection is lost for good. */
  | { kind: 'give_up' }

export function startHealth(now: number, o: HealthOptions = DEFAULT_HEALTH): [Health, HealthAction] {
  const deadline = now + o.connectMs
  return [{ state: 'new', everConnected: false, restarts: 0, waiting: 'connect', deadline, gaveUp: false }, { kind: 'wait', until: deadline }]
}

/** The state the browser reports, from `connectionState` or, where that is missing, `iceConnectionState`. */
export function linkState(connectionState: string | undefined, iceConnectionState: string | undefined): LinkState {
  switch (connectionState ?? iceConnectionState) {
    case 'connected':
    case 'completed':
      return 'connected'
    case 'disconnected':
      return 'disconnected'
    case 'failed':
      return 'failed'
    case 'closed':
      return 'closed'
    case 'connecting':
    case 'checking':
      return 'connecting'
    default:
      return 'new'
  }
}

/** The browser reported `state` at `now`. */
export function onState(h: Health, state: LinkState, now: number, o: HealthOptions = DEFAULT_HEALTH): [Health, HealthAction] {
  if (h.gaveUp || state === 'closed') return [{ ...h, state, waiting: null, deadline: null }, { kind: 'none' }]
  // The same state again (both the connection and its ICE transport report each change).
  if (state === h.state) return [h, h.deadline !== null ? { kind: 'wait', until: h.deadline } : { kind: 'none' }]
  const next = { ...h, state }
  switch (state) {
    case 'connected':
      return [{ ...next, everConnected: true, restarts: 0, waiting: null, deadline: null }, { kind: 'connected', first: !h.everConnected }]
    case 'disconnected': {
      // Already waiting for a restart or the first connection: that wait goes on.
      if (h.waiting !== null) return [next, { kind: 'wait', until: h.deadline ?? now }]
      const deadline = now + o.graceMs
      return [{ ...next, waiting: 'grace', deadline }, { kind: 'wait', until: deadline }]
    }
    case 'failed':
      // During a restart the old ICE generation may still report failing (Chromium does, within
      // milliseconds, before the new offer is even answered): the restart's deadline decides.
      if (h.waiting === 'restart') return [next, { kind: 'wait', until: h.deadline ?? now }]
      return restartOrGiveUp(next, now, o)
    default:
      return [next, h.deadline !== null ? { kind: 'wait', until: h.deadline } : { kind: 'none' }]
  }
}

/** A wait asked for earlier may have run out at `now`. */
export function onTimer(h: Health, now: number, o: HealthOptions = DEFAULT_HEALTH): [Health, HealthAction] {
  if (h.gaveUp || h.deadline === null) return [h, { kind: 'none' }]
  if (now < h.deadline) return [h, { kind: 'wait', until: h.deadline }]
  return restartOrGiveUp(h, now, o)
}

function restartOrGiveUp(h: Health, now: number, o: HealthOptions): [Health, HealthAction] {
  if (h.restarts < o.maxRestarts) {
    const deadline = now + o.restartMs
    return [{ ...h, restarts: h.restarts + 1, waiting: 'restart', deadline }, { kind: 'restart' }]
  }
  return [{ ...h, gaveUp: true, waiting: null, deadline: null }, { kind: 'give_up' }]
}

/** Why a call could not connect, as far as one side can tell; each has a sentence in `call.failed.*`. */
export type FailureCause = 'lost' | 'relay_unreachable' | 'relay_refused' | 'no_relay' | 'no_route'

export interface Evidence {
  /** Media flowed at some point. */
  everConnected: boolean
  /** The server handed out a TURN relay. */
  relayOffered: boolean
  /** All media must go through the relay (`ice_transport_policy` `relay`). */
  relayOnly: boolean
  /** Candidate types gathered here (`host`, `srflx`, `relay`...), and received from the other side. */
  local: ReadonlySet<string>
  remote: ReadonlySet<string>
}

/**
 * The likely cause, from what this side saw. A relay candidate here means the relay could be
 * reached and gave an allocation; if relay candidates were on offer and still nothing
 * connected, the relay most likely refused to forward between them (its peer filter: a relay
 * address in a range it refuses, `turn.public_ip`/`turn.allow_peers`) or a firewall dropped it.
 */
export function likelyCause(e: Evidence): FailureCause {
  if (e.everConnected) return 'lost'
  if (!e.relayOffered) return 'no_relay'
  if (!e.local.has('relay')) return 'relay_unreachable'
  if (e.relayOnly || e.remote.has('relay')) return 'relay_refused'
  return 'no_route'
}

/** The candidate type (`typ host`, `typ relay`...) in an SDP candidate line, if any. */
export function candidateType(candidate: string | undefined): string | null {
  return /\btyp (\w+)/.exec(candidate ?? '')?.[1] ?? null
}
