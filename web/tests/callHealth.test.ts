// The call connection health machine (calls/health.ts): each row plays events through it from
// the start and checks the action of the last one, and the likely cause of a failure.
import { describe, expect, it } from 'vitest'
import { candidateType, likelyCause, linkState, onState, onTimer, startHealth, type Health, type HealthAction, type HealthOptions, type LinkState } from '@/calls/health'

const O: HealthOptions = { connectMs: 20_000, graceMs: 4_000, restartMs: 12_000, maxRestarts: 1 }

/** A state change at `t` ms, or the timer firing at `t`. */
type Ev = [number, LinkState | 'timer']

function play(events: Ev[], o = O): { h: Health; actions: HealthAction[] } {
  let [h, a] = startHealth(0, o)
  const actions = [a]
  for (const [t, e] of events) {
    ;[h, a] = e === 'timer' ? onTimer(h, t, o) : onState(h, e, t, o)
    actions.push(a)
  }
  return { h, actions }
}

describe('call connection health', () => {
  const rows: [string, Ev[], HealthAction][] = [
    ['at the start it waits for the first connection', [], { kind: 'wait', until: 20_000 }],
    ['checking keeps that wait', [[100, 'connecting']], { kind: 'wait', until: 20_000 }],
    ['connecting is reported once', [[100, 'connecting'], [900, 'connected']], { kind: 'connected', first: true }],
    ['the ICE transport repeating a state changes nothing', [[900, 'connected'], [901, 'connected']], { kind: 'none' }],
    ['a timer before the deadline waits on', [[5_000, 'timer']], { kind: 'wait', until: 20_000 }],
    ['never connecting in time restarts ICE', [[100, 'connecting'], [20_000, 'timer']], { kind: 'restart' }],
    ['…and gives up when the restart does not connect either', [[20_000, 'timer'], [32_000, 'timer']], { kind: 'give_up' }],
    ['failed restarts ICE at once', [[100, 'connecting'], [3_000, 'failed']], { kind: 'restart' }],
    ['failed repeated by the ICE transport does not count twice', [[3_000, 'failed'], [3_001, 'failed']], { kind: 'wait', until: 15_000 }],
    ['failing again during the restart waits for its deadline (the old ICE generation may still fail)', [[3_000, 'failed'], [3_005, 'connecting'], [3_010, 'failed']], { kind: 'wait', until: 15_000 }],
    ['…and gives up when it runs out', [[3_000, 'failed'], [3_005, 'connecting'], [3_010, 'failed'], [15_000, 'timer']], { kind: 'give_up' }],
    ['a restart that connects is a reconnection', [[3_000, 'failed'], [3_500, 'connecting'], [4_000, 'connected']], { kind: 'connected', first: true }],
    ['disconnected waits a moment for the network to come back', [[900, 'connected'], [60_000, 'disconnected']], { kind: 'wait', until: 64_000 }],
    ['…and coming back needs nothing more', [[900, 'connected'], [60_000, 'disconnected'], [61_000, 'connected']], { kind: 'connected', first: false }],
    ['…else restarts ICE when the grace runs out', [[900, 'connected'], [60_000, 'disconnected'], [64_000, 'timer']], { kind: 'restart' }],
    ['…and gives up when the restart runs out', [[900, 'connected'], [60_000, 'disconnected'], [64_000, 'timer'], [76_000, 'timer']], { kind: 'give_up' }],
    ['failed while disconnected restarts at once', [[900, 'connected'], [60_000, 'disconnected'], [61_000, 'failed']], { kind: 'restart' }],
    ['connecting again resets the restarts: a later failure restarts again', [[3_000, 'failed'], [4_000, 'connected'], [90_000, 'failed']], { kind: 'restart' }],
    ['closed stops everything', [[100, 'closed'], [20_000, 'timer']], { kind: 'none' }],
    ['nothing after giving up', [[3_000, 'failed'], [15_000, 'timer'], [16_000, 'connected']], { kind: 'none' }],
  ]
  for (const [name, events, want] of rows) {
    it(name, () => {
      const { actions } = play(events)
      expect(actions.at(-1)).toEqual(want)
    })
  }

  it('gives up only after as many restarts as allowed', () => {
    const o = { ...O, maxRestarts: 2 }
    const { actions } = play([[1, 'failed'], [2, 'connecting'], [12_001, 'timer'], [12_002, 'failed'], [24_001, 'timer']], o)
    expect(actions.map((a) => a.kind)).toEqual(['wait', 'restart', 'wait', 'restart', 'wait', 'give_up'])
  })

  it('reads connectionState, or iceConnectionState where that is missing', () => {
    expect(linkState('connected', 'checking')).toBe('connected')
    expect(linkState(undefined, 'completed')).toBe('connected')
    expect(linkState(undefined, 'checking')).toBe('connecting')
    expect(linkState('failed', undefined)).toBe('failed')
    expect(linkState(undefined, undefined)).toBe('new')
  })
})

describe('the likely cause of a failed call', () => {
  const none = new Set<string>()
  const relay = new Set(['relay'])
  const direct = new Set(['host', 'srflx'])
  const base = { everConnected: false, relayOffered: true, relayOnly: false, local: relay, remote: relay }
  it.each([
    ['it was connected: lost', { ...base, everConnected: true }, 'lost'],
    ['no relay offered', { ...base, relayOffered: false, local: direct }, 'no_relay'],
    ['no relay candidate here: the relay was not reached', { ...base, local: direct }, 'relay_unreachable'],
    ['no candidate at all', { ...base, local: none, remote: none }, 'relay_unreachable'],
    ['relay candidates on both sides and nothing connects: refused', base, 'relay_refused'],
    ['relay only: refused', { ...base, relayOnly: true, remote: none }, 'relay_refused'],
    ['relay here, direct there, not relay-only: no route', { ...base, remote: direct }, 'no_route'],
  ] as const)('%s', (_name, e, want) => {
    expect(likelyCause(e)).toBe(want)
  })

  it('reads the candidate type from a candidate line', () => {
    expect(candidateType('candidate:1 1 udp 41885439 127.0.0.1 50000 typ relay raddr 0.0.0.0 rport 0')).toBe('relay')
    expect(candidateType('candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host')).toBe('host')
    expect(candidateType('')).toBeNull()
    expect(candidateType(undefined)).toBeNull()
  })
})
