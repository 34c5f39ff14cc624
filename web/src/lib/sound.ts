// A short two-tone chime made with WebAudio, so the app ships no audio file.

let ctx: AudioContext | null = null
let lastPlayed = 0

export function playChime() {
  const now = Date.now()
  if (now - lastPlayed < 800) return // a burst of messages rings once
  lastPlayed = now
  try {
    const AC = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext
    if (!AC) return
    ctx ??= new AC()
    if (ctx.state === 'suspended') void ctx.resume()
    const t0 = ctx.currentTime
    const gain = ctx.createGain()
    gain.connect(ctx.destination)
    gain.gain.setValueAtTime(0.0001, t0)
    gain.gain.exponentialRampToValueAtTime(0.18, t0 + 0.02)
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.35)
    for (const [freq, at] of [
      [880, 0],
      [1320, 0.09],
    ] as const) {
      const osc = ctx.createOscillator()
      osc.type = 'sine'
      osc.frequency.setValueAtTime(freq, t0 + at)
      osc.connect(gain)
      osc.start(t0 + at)
      osc.stop(t0 + 0.36)
    }
  } catch {
    // Autoplay policy or no audio device: silence is fine.
  }
}
