// Files on their way to `POST /api/files`, with progress; once stored, each is sent as an image
// or file message through the chat store. Uploads live here, not in the chat view, so they finish
// when the user moves on to another chat.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { ApiError, uploadFile } from '@/protocol/api'
import type { OutboxEntry } from '@/protocol/client'
import type { ConvId, SendableContent } from '@/protocol/types'
import { useChat } from './chat'

/** What goes with an upload: a caption sent after it, or the voice message it is. */
export interface UploadExtra {
  caption?: string
  voice?: { duration_ms: number; waveform: number[] }
}

export interface UploadItem {
  id: string
  conv: ConvId
  kind: 'image' | 'file'
  name: string
  size: number
  /** A local preview of an image (an object URL). */
  url: string | null
  width: number | null
  height: number | null
  progress: number
  error: unknown
  created_at: number
}

export const useUploads = defineStore('uploads', () => {
  const uploads = ref<UploadItem[]>([])
  const aborts = new Map<string, () => void>()
  /** The files of uploads, kept to try a failed one again. */
  const files = new Map<string, { file: File; replyTo?: OutboxEntry['reply_to']; extra?: UploadExtra }>()

  function find(id: string): UploadItem | undefined {
    return uploads.value.find((x) => x.id === id)
  }

  /**
   * Uploads a file with progress, then sends it as an image (when the server decoded it as one)
   * or a file.
   */
  function start(conv: ConvId, file: File, replyTo?: OutboxEntry['reply_to'], extra?: UploadExtra) {
    const looksImage = /^image\/(png|jpeg|gif|webp)$/.test(file.type)
    const item: UploadItem = {
      id: `up-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      conv,
      kind: looksImage ? 'image' : 'file',
      name: file.name || 'file',
      size: file.size,
      url: looksImage && typeof URL.createObjectURL === 'function' ? URL.createObjectURL(file) : null,
      width: null,
      height: null,
      progress: 0,
      error: null,
      created_at: Date.now(),
    }
    useChat().ensureConv(conv)
    uploads.value.push(item)
    files.set(item.id, { file, replyTo, extra })
    if (item.url) {
      // The preview's shape, so the bubble does not jump when the upload ends.
      const img = new Image()
      img.onload = () => {
        const u = find(item.id)
        if (u) {
          u.width = img.naturalWidth
          u.height = img.naturalHeight
        }
      }
      img.src = item.url
    }
    transmit(item.id)
  }

  function transmit(id: string) {
    const item = find(id)
    const src = files.get(id)
    if (!item || !src) return
    const { conv } = item
    const { file, replyTo, extra } = src
    item.error = null
    item.progress = 0
    const up = uploadFile(file, item.name, (sent, total) => {
      const u = find(item.id)
      if (u) u.progress = total ? sent / total : 0
    })
    aborts.set(item.id, up.abort)
    up.done
      .then((f) => {
        const isImage = !!f.width && !!f.height && f.mime.startsWith('image/')
        const content: SendableContent = extra?.voice
          ? { kind: 'voice', file_id: f.id, duration_ms: extra.voice.duration_ms, waveform: extra.voice.waveform, size: f.size, mime: f.mime }
          : isImage
            ? { kind: 'image', file_id: f.id, width: f.width!, height: f.height!, name: f.name, size: f.size }
            : { kind: 'file', file_id: f.id, name: f.name, size: f.size, mime: f.mime }
        remove(item.id)
        useChat().sendContent(conv, content, replyTo ? { replyTo } : {})
        // The caption follows as its own text message (docs/protocol.md).
        if (extra?.caption) useChat().sendContent(conv, { kind: 'text', text: extra.caption })
      })
      .catch((e: unknown) => {
        const u = find(item.id)
        if (!u) return
        if (e instanceof ApiError && e.code === 'aborted') remove(item.id)
        else u.error = e
      })
      .finally(() => aborts.delete(item.id))
  }

  /** Tries a failed upload again. */
  function retry(id: string) {
    transmit(id)
  }

  /** Cancels an upload (or forgets a failed one). */
  function remove(id: string) {
    aborts.get(id)?.()
    files.delete(id)
    const i = uploads.value.findIndex((x) => x.id === id)
    if (i < 0) return
    const [u] = uploads.value.splice(i, 1)
    // Keep the preview a moment: the sent message's thumbnail takes over.
    if (u?.url) setTimeout(() => URL.revokeObjectURL(u.url!), 30_000)
  }

  function of(conv: ConvId): UploadItem[] {
    return uploads.value.filter((u) => u.conv === conv)
  }

  /** Cancels everything (log-out). */
  function reset() {
    for (const abort of aborts.values()) abort()
    aborts.clear()
    files.clear()
    uploads.value = []
  }

  return { uploads, start, retry, remove, of, reset }
})
