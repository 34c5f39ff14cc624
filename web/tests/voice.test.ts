import { describe, expect, it } from 'vitest'
import { inlineKind, markPlayed, nextUnplayed, playedSet, recorderMime, slidAway, validWaveform, voiceFileName, voiceTime, waveformOf } from '@/lib/voice'

describe('voice waveform', () => {
  it('takes the peak of each slice, scaled to 0..31', () => {
    const samples = new Float32Array(480)
    samples.fill(0.5, 0, 240)
    samples.fill(-0.25, 240, 480)
    const w = waveformOf(samples, 16)
    expect(w).toHaveLength(16)
    expect(w.slice(0, 8)).toEqual(Array(8).fill(31))
    expect(w.slice(8)).toEqual(Array(8).fill(16))
    expect(validWaveform(w)).toBe(true)
  })
  it('keeps silence flat and copes with fewer samples than bars', () => {
    expect(waveformOf(new Float32Array(100), 32)).toEqual(Array(32).fill(0))
    const w = waveformOf([0.1, 0.9], 32)
    expect(w).toHaveLength(32)
    expect(Math.max(...w)).toBe(31)
    expect(validWaveform(waveformOf([], 16))).toBe(true)
  })
  it('says which waveforms the server takes', () => {
    expect(validWaveform(Array(15).fill(1))).toBe(false)
    expect(validWaveform(Array(65).fill(1))).toBe(false)
    expect(validWaveform([...Array(20).fill(1), 32])).toBe(false)
    expect(validWaveform([...Array(20).fill(1), 1.5])).toBe(false)
    expect(validWaveform(Array(64).fill(31))).toBe(true)
  })
})

describe('voice duration and format', () => {
  it('formats durations as m:ss, never 0:00 for a real clip', () => {
    expect(voiceTime(7040)).toBe('0:07')
    expect(voiceTime(7500)).toBe('0:08')
    expect(voiceTime(7000)).toBe('0:07')
    expect(voiceTime(300)).toBe('0:01')
    expect(voiceTime(60_000)).toBe('1:00')
    expect(voiceTime(0)).toBe('0:00')
  })
  it('prefers Opus in WebM, then Ogg, then MP4', () => {
    expect(recorderMime(() => true)).toBe('audio/webm;codecs=opus')
    expect(recorderMime((m) => m.startsWith('audio/ogg'))).toBe('audio/ogg;codecs=opus')
    expect(recorderMime((m) => m === 'audio/mp4')).toBe('audio/mp4')
    expect(recorderMime(() => false)).toBeNull()
    expect(voiceFileName('audio/ogg;codecs=opus', 5)).toBe('voice-5.ogg')
    expect(voiceFileName('audio/webm', 5)).toBe('voice-5.webm')
  })
  it('shows PDF, audio and video inline, nothing else', () => {
    expect(inlineKind('application/pdf')).toBe('pdf')
    expect(inlineKind('audio/ogg')).toBe('audio')
    expect(inlineKind('video/webm')).toBe('video')
    expect(inlineKind('text/html')).toBeNull()
    expect(inlineKind('image/svg+xml')).toBeNull()
    expect(inlineKind(undefined)).toBeNull()
  })
  it('cancels a hold once the finger slides away', () => {
    expect(slidAway(10, 10)).toBe(false)
    expect(slidAway(-90, 0)).toBe(true)
  })
})

describe('autoplay order', () => {
  it('finds the next unheard voice message that is not mine', () => {
    const items = [
      { id: 'a', mine: false },
      { id: 'b', mine: true },
      { id: 'c', mine: false },
      { id: 'd', mine: false },
    ]
    expect(nextUnplayed(items, 0, new Set())).toBe(2)
    expect(nextUnplayed(items, 0, new Set(['c']))).toBe(3)
    expect(nextUnplayed(items, 3, new Set())).toBe(-1)
  })
  it('remembers what was heard', () => {
    const store = new Map<string, string>()
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) }
    markPlayed('x', storage)
    markPlayed('y', storage)
    expect([...playedSet(storage)]).toEqual(['x', 'y'])
    store.set('chinwag.voicePlayed', 'not json')
    expect(playedSet(storage).size).toBe(0)
  })
})
