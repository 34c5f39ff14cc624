// Calls: the pieces of the call store that can be checked without a browser's WebRTC. The whole
// flow (relay-only connections, group mesh, screen sharing) runs in e2e/run.mjs in Chromium.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { replaceVideoTrack, summarizeStats, useCalls } from '@/stores/calls'
import { useSocket } from '@/stores/socket'

/** An RTCStatsReport is a read-only Map of stats objects by id. */
function report(entries: Record<string, unknown>[]): RTCStatsReport {
  return new Map(entries.map((e) => [e.id as string, e])) as unknown as RTCStatsReport
}

describe('call stats', () => {
  it('adds up media bytes received and names the route of the selected pair', () => {
    const r = report([
      { id: 'T1', type: 'transport', selectedCandidatePairId: 'P1' },
      { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', nominated: true },
      { id: 'P2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', state: 'failed' },
      { id: 'L1', type: 'local-candidate', candidateType: 'relay' },
      { id: 'L2', type: 'local-candidate', candidateType: 'host' },
      { id: 'IA', type: 'inbound-rtp', kind: 'audio', bytesReceived: 1200 },
      { id: 'IV', type: 'inbound-rtp', kind: 'video', bytesReceived: 34000 },
      { id: 'OA', type: 'outbound-rtp', kind: 'audio', bytesSent: 999 },
    ])
    expect(summarizeStats(r)).toEqual({ bytesIn: 35200, route: 'relay' })
  })

  it('falls back to the selected pair without transport stats, and says direct for other types', () => {
    const r = report([
      { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', nominated: true },
      { id: 'L1', type: 'local-candidate', candidateType: 'srflx' },
      { id: 'R1', type: 'remote-candidate', candidateType: 'host' },
    ])
    expect(summarizeStats(r)).toEqual({ bytesIn: 0, route: 'direct' })
    expect(summarizeStats(report([{ id: 'T1', type: 'transport' }]))).toEqual({ bytesIn: 0, route: null })
  })

  it('says relayed when the other end of the pair is a relay, and direct only when both ends are known', () => {
    const pair = (local: string, remote?: string) =>
      report([
        { id: 'T1', type: 'transport', selectedCandidatePairId: 'P1' },
        { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1' },
        { id: 'L1', type: 'local-candidate', candidateType: local },
        ...(remote ? [{ id: 'R1', type: 'remote-candidate', candidateType: remote }] : []),
      ])
    expect(summarizeStats(pair('srflx', 'relay')).route).toBe('relay')
    expect(summarizeStats(pair('host', 'relay')).route).toBe('relay')
    expect(summarizeStats(pair('relay', 'host')).route).toBe('relay')
    expect(summarizeStats(pair('host', 'prflx')).route).toBe('direct')
    expect(summarizeStats(pair('host')).route).toBeNull()
  })
})

/** Just enough of an RTCPeerConnection for `replaceVideoTrack`. */
function fakePc(transceivers: { kind: string; direction: RTCRtpTransceiverDirection }[]) {
  const replaced: { kind: string; track: unknown }[] = []
  const list = transceivers.map((t) => ({
    direction: t.direction,
    receiver: { track: { kind: t.kind } },
    sender: { replaceTrack: async (track: unknown) => void replaced.push({ kind: t.kind, track }) },
  }))
  return { pc: { getTransceivers: () => list } as unknown as RTCPeerConnection, replaced }
}

describe('screen sharing: the video track is replaced in place', () => {
  const screen = { kind: 'video', label: 'screen' } as unknown as MediaStreamTrack

  it('replaces the track of the video sender, without renegotiating', async () => {
    const { pc, replaced } = fakePc([
      { kind: 'audio', direction: 'sendrecv' },
      { kind: 'video', direction: 'sendrecv' },
    ])
    expect(await replaceVideoTrack(pc, screen)).toBe(true)
    expect(replaced).toEqual([{ kind: 'video', track: screen }])
    // Back to no video (or the camera): the same sender.
    expect(await replaceVideoTrack(pc, null)).toBe(true)
    expect(replaced[1]).toEqual({ kind: 'video', track: null })
  })

  it('asks for a renegotiation when nothing sends video yet (an audio call)', async () => {
    for (const t of [[{ kind: 'audio', direction: 'sendrecv' }], [{ kind: 'audio', direction: 'sendrecv' }, { kind: 'video', direction: 'recvonly' }]] as const) {
      const { pc, replaced } = fakePc([...t])
      expect(await replaceVideoTrack(pc, screen)).toBe(false)
      expect(replaced).toEqual([])
    }
  })
})

describe('media that arrives after the call ended', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    Reflect.deleteProperty(navigator, 'mediaDevices')
  })

  /** A store whose getUserMedia waits for the test to answer; `stopped` lists stopped tracks. */
  function setup() {
    let answer!: (s: MediaStream) => void
    vi.stubGlobal('RTCPeerConnection', function RTCPeerConnection() {})
    Object.defineProperty(navigator, 'mediaDevices', {
      configurable: true,
      value: { getUserMedia: () => new Promise<MediaStream>((r) => (answer = r)) },
    })
    setActivePinia(createPinia())
    const stopped: string[] = []
    const stream = {
      getTracks: () => ['audio', 'video'].map((kind) => ({ kind, stop: () => stopped.push(kind) })),
    } as unknown as MediaStream
    return { calls: useCalls(), stopped, answer: () => answer(stream) }
  }

  it('is stopped when the caller hangs up during the permission prompt, so the camera goes off', async () => {
    const { calls, stopped, answer } = setup()
    expect(calls.supported).toBe(true)
    const starting = calls.start('d:1:2', 'video')
    calls.hangup()
    expect(calls.active).toBeNull()
    answer()
    await starting
    expect(stopped).toEqual(['audio', 'video'])
    expect(calls.localStream).toBeNull()
    expect(calls.active).toBeNull()
  })

  it('is kept when the call is still on', async () => {
    const { calls, stopped, answer } = setup()
    const signal = vi.spyOn(useSocket(), 'signal').mockReturnValue(true)
    const starting = calls.start('d:1:2', 'audio')
    answer()
    await starting
    expect(signal).toHaveBeenCalledWith({ type: 'call_invite', conv: 'd:1:2', media: 'audio' })
    expect(stopped).toEqual([])
    expect(calls.localStream).not.toBeNull()
  })
})
