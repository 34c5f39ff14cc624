// Records a voice message from the microphone with MediaRecorder (Opus in WebM or Ogg where the
// browser has it), with a live timer and a hard stop at the server's limit. The result carries
// its waveform and length, read back from the recording with an OfflineAudioContext.
import { onBeforeUnmount, ref } from 'vue'
import { recorderMime, voiceFileName, waveformOf } from '@/lib/voice'

export interface Recording {
  file: File
  durationMs: number
  waveform: number[]
}

export function useVoiceRecorder(maxMs: () => number) {
  const recording = ref(false)
  const elapsedMs = ref(0)
  const error = ref<string | null>(null)
  let recorder: MediaRecorder | null = null
  let stream: MediaStream | null = null
  let chunks: Blob[] = []
  let started = 0
  let timer: ReturnType<typeof setInterval> | null = null
  let finish: ((r: Recording | null) => void) | null = null
  let keep = false

  function cleanup() {
    if (timer) clearInterval(timer)
    timer = null
    stream?.getTracks().forEach((tr) => tr.stop())
    stream = null
    recorder = null
    recording.value = false
  }

  /** Starts recording; false when there is no microphone or permission. */
  async function start(): Promise<boolean> {
    if (recording.value) return true
    error.value = null
    const mime = typeof MediaRecorder === 'undefined' ? null : recorderMime((m) => MediaRecorder.isTypeSupported(m))
    if (!mime || !navigator.mediaDevices?.getUserMedia) {
      error.value = 'unsupported'
      return false
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true })
    } catch {
      error.value = 'denied'
      return false
    }
    chunks = []
    recorder = new MediaRecorder(stream, { mimeType: mime, audioBitsPerSecond: 32_000 })
    recorder.ondataavailable = (e) => {
      if (e.data.size) chunks.push(e.data)
    }
    const rec = recorder
    recorder.onstop = () => {
      const ms = Date.now() - started
      const type = rec.mimeType || mime
      cleanup()
      const done = finish
      finish = null
      if (!keep || !chunks.length) return done?.(null)
      const blob = new Blob(chunks, { type })
      void analyse(blob, ms).then((r) => done?.({ file: new File([blob], voiceFileName(type), { type }), ...r }))
    }
    started = Date.now()
    elapsedMs.value = 0
    recorder.start(250)
    recording.value = true
    timer = setInterval(() => {
      elapsedMs.value = Date.now() - started
      if (elapsedMs.value >= maxMs()) void stop()
    }, 100)
    return true
  }

  function end(send: boolean): Promise<Recording | null> {
    if (!recorder || recorder.state === 'inactive') {
      cleanup()
      return Promise.resolve(null)
    }
    keep = send
    const p = new Promise<Recording | null>((resolve) => (finish = resolve))
    recorder.stop()
    return p
  }

  /** Stops and returns the recording (null if it was too short to keep). */
  const stop = () => end(true)
  /** Stops and throws the recording away. */
  const cancel = () => end(false)

  onBeforeUnmount(() => void cancel())
  return { recording, elapsedMs, error, start, stop, cancel }
}

/** The waveform and exact length of a recording; the timer's length when it cannot be decoded. */
async function analyse(blob: Blob, timerMs: number): Promise<{ durationMs: number; waveform: number[] }> {
  try {
    const data = await blob.arrayBuffer()
    const ctx = new OfflineAudioContext(1, 1, 48_000)
    const audio = await ctx.decodeAudioData(data)
    const ms = Math.round(audio.duration * 1000)
    return { durationMs: ms > 0 && Number.isFinite(ms) ? ms : timerMs, waveform: waveformOf(audio.getChannelData(0)) }
  } catch {
    return { durationMs: timerMs, waveform: waveformOf([]) }
  }
}
