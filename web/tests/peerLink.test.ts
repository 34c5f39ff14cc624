// One peer connection's offer/answer exchange (lib/calls.ts), over a scripted fake
// RTCPeerConnection: the "perfect negotiation" rules the calls store relies on.
import { describe, expect, it } from 'vitest'
import { acceptAnswer, addCandidate, answerOffer, makeOffer, type PeerLink } from '@/lib/calls'

/** Records what was done to it; `signalingState` follows the descriptions set. */
function fakeLink(state: RTCSignalingState = 'stable') {
  const log: string[] = []
  const pc = {
    signalingState: state,
    async createOffer() {
      return { type: 'offer', sdp: 'my-offer' }
    },
    async createAnswer() {
      return { type: 'answer', sdp: 'my-answer' }
    },
    async setLocalDescription(d: { type: string }) {
      log.push(`local ${d.type}`)
      pc.signalingState = d.type === 'offer' ? 'have-local-offer' : 'stable'
    },
    async setRemoteDescription(d: { type: string; sdp: string }) {
      log.push(`remote ${d.type} ${d.sdp}`)
      pc.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable'
    },
    async addIceCandidate(c: RTCIceCandidateInit) {
      log.push(`candidate ${c.candidate}`)
    },
  }
  const link: PeerLink = { pc: pc as unknown as RTCPeerConnection, pending: [], remoteSet: false, makingOffer: false, offerAgain: false }
  return { link, log, pc }
}

describe('one peer connection', () => {
  it('offers, then takes the answer and the candidates that came before it', async () => {
    const { link, log } = fakeLink()
    const sent: string[] = []
    await makeOffer(link, (sdp) => sent.push(sdp))
    expect(sent).toEqual(['my-offer'])
    expect(link.makingOffer).toBe(false)
    await addCandidate(link, { candidate: 'early' })
    expect(log).not.toContain('candidate early')
    await acceptAnswer(link, 'their-answer')
    expect(log).toEqual(['local offer', 'remote answer their-answer', 'candidate early'])
    await addCandidate(link, { candidate: 'late' })
    expect(log.at(-1)).toBe('candidate late')
  })

  it('ignores an answer when no offer of mine is out', async () => {
    const { link, log } = fakeLink('stable')
    await acceptAnswer(link, 'stray')
    expect(log).toEqual([])
  })

  it('answers an offer when nothing collides', async () => {
    const { link, log } = fakeLink()
    const answers: string[] = []
    let again = 0
    await answerOffer(link, 'their-offer', false, (sdp) => answers.push(sdp), async () => void again++)
    expect(answers).toEqual(['my-answer'])
    expect(log).toEqual(['remote offer their-offer', 'local answer'])
    expect(again).toBe(0)
  })

  it('on a collision, the side that keeps its offer ignores theirs', async () => {
    const { link, log } = fakeLink('have-local-offer')
    const answers: string[] = []
    await answerOffer(link, 'their-offer', false, (sdp) => answers.push(sdp), async () => {})
    expect(answers).toEqual([])
    expect(log).toEqual([])
  })

  it('on a collision, the side that gives way rolls back, answers, then offers again', async () => {
    const { link, log } = fakeLink('have-local-offer')
    const answers: string[] = []
    let again = 0
    await answerOffer(link, 'their-offer', true, (sdp) => answers.push(sdp), async () => void again++)
    expect(log).toEqual(['local rollback', 'remote offer their-offer', 'local answer'])
    expect(answers).toEqual(['my-answer'])
    expect(again).toBe(1)
    expect(link.offerAgain).toBe(false)
  })
})
