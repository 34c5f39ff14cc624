// Watches one RTCPeerConnection of a call with the health machine (`calls/health.ts`): feeds it
// the connection's state changes and its own timer, and calls back to connect, restart ICE or
// give up. It also collects what the likely cause of a failure needs (candidate types seen on
// both sides). The calls store makes one per connection and stops it with the connection.
//
// The timings are `DEFAULT_HEALTH`; a test may shorten them with
// `localStorage['chinwag.callHealth'] = '{"connectMs":4000,...}'`.
import { DEFAULT_HEALTH, candidateType, likelyCause, linkState, onState, onTimer, startHealth, type FailureCause, type Health, type HealthAction, type HealthOptions } from './health'

export interface LinkWatchHooks {
  /** Media flows; `first`: for the first time on this connection. */
  connected(first: boolean): void
  /** Restart ICE: `pc.restartIce()` and a new offer. */
  restart(): void
  /** The connection is lost for good, most likely because of `cause`. */
  giveUp(cause: FailureCause): void
}

export interface LinkWatch {
  /** A candidate the other side sent. */
  remoteCandidate(candidate: string | undefined): void
  /** Stops the timer and the listeners. */
  stop(): void
  /** The likely cause if the connection failed now. */
  cause(): FailureCause
  readonly everConnected: boolean
  /** It gave up. */
  readonly gaveUp: boolean
  /** It failed, restarted or gave up: a call ending now ends in trouble, not by choice. */
  readonly troubled: boolean
}

export function healthOptions(): HealthOptions {
  try {
    const raw = typeof localStorage !== 'undefined' ? localStorage.getItem('chinwag.callHealth') : null
    if (raw) return { ...DEFAULT_HEALTH, ...(JSON.parse(raw) as Partial<HealthOptions>) }
  } catch {
    // A malformed override: the defaults.
  }
  return DEFAULT_HEALTH
}

export function watchLink(pc: RTCPeerConnection, relay: { offered: boolean; only: boolean }, hooks: LinkWatchHooks, o = healthOptions()): LinkWatch {
  const local = new Set<string>()
  const remote = new Set<string>()
  let timer: ReturnType<typeof setTimeout> | null = null
  let stopped = false
  let h: Health
  let first: HealthAction
  ;[h, first] = startHealth(Date.now(), o)

  function act([next, a]: [Health, HealthAction]) {
    h = next
    if (stopped) return
    if (timer) clearTimeout(timer)
    timer = null
    switch (a.kind) {
      case 'wait':
        timer = setTimeout(() => act(onTimer(h, Date.now(), o)), Math.max(0, a.until - Date.now()))
        break
      case 'connected':
        hooks.connected(a.first)
        break
      case 'restart':
        // The restart runs on its own deadline.
        if (h.deadline !== null) timer = setTimeout(() => act(onTimer(h, Date.now(), o)), Math.max(0, h.deadline - Date.now()))
        hooks.restart()
        break
      case 'give_up':
        hooks.giveUp(cause())
        break
    }
  }

  function cause(): FailureCause {
    return likelyCause({ everConnected: h.everConnected, relayOffered: relay.offered, relayOnly: relay.only, local, remote })
  }

  const onChange = () => act(onState(h, linkState(pc.connectionState, pc.iceConnectionState), Date.now(), o))
  const onCandidate = (e: RTCPeerConnectionIceEvent) => {
    const t = e.candidate?.type ?? candidateType(e.candidate?.candidate)
    if (t) local.add(t)
  }
  pc.addEventListener('connectionstatechange', onChange)
  pc.addEventListener('iceconnectionstatechange', onChange)
  pc.addEventListener('icecandidate', onCandidate)
  act([h, first])

  return {
    remoteCandidate(c) {
      const t = candidateType(c)
      if (t) remote.add(t)
    },
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      pc.removeEventListener('connectionstatechange', onChange)
      pc.removeEventListener('iceconnectionstatechange', onChange)
      pc.removeEventListener('icecandidate', onCandidate)
    },
    cause,
    get everConnected() {
      return h.everConnected
    },
    get gaveUp() {
      return h.gaveUp
    },
    get troubled() {
      return h.gaveUp || h.restarts > 0 || h.state === 'failed'
    },
  }
}
