// Test doubles: a WebSocket the test drives by hand, and an in-memory Storage.
import type { WebSocketLike } from '@/protocol/client'
import type { Message } from '@/protocol/types'

export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = []
  static get last(): FakeSocket {
    return FakeSocket.all[FakeSocket.all.length - 1]!
  }
  static reset() {
    FakeSocket.all = []
    FakeSocket.helloUser = { id: 3, username: 'ann', nickname: 'Ann' }
  }

  readyState = 0
  sent: unknown[] = []
  closedWith: number | null = null
  onopen: ((ev: unknown) => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  onclose: ((ev: { code: number; reason?: string }) => void) | null = null
  onerror: ((ev: unknown) => void) | null = null

  constructor(readonly url: string) {
    FakeSocket.all.push(this)
  }

  send(data: string) {
    if (this.readyState !== 1) throw new Error('not open')
    this.sent.push(JSON.parse(data))
  }

  close(code = 1000) {
    this.closedWith = code
    this.readyState = 3
  }

  /** The user named by the `hello` that `open()` sends; null to send none. */
  static helloUser: { id: number; username: string; nickname: string } | null = { id: 3, username: 'ann', nickname: 'Ann' }

  // ---- driven by the test ----
  open() {
    this.readyState = 1
    this.onopen?.({})
    if (FakeSocket.helloUser) this.receive({ type: 'hello', user: FakeSocket.helloUser })
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  /** The server (or the network) closed the socket. */
  serverClose(code: number) {
    this.readyState = 3
    this.onclose?.({ code })
  }
  sentOfType(type: string) {
    return this.sent.filter((f) => (f as { type: string }).type === type) as Record<string, unknown>[]
  }
}

export class MemoryStorage {
  map = new Map<string, string>()
  getItem(k: string) {
    return this.map.has(k) ? this.map.get(k)! : null
  }
  setItem(k: string, v: string) {
    this.map.set(k, v)
  }
  removeItem(k: string) {
    this.map.delete(k)
  }
  clear() {
    this.map.clear()
  }
  key(i: number) {
    return [...this.map.keys()][i] ?? null
  }
  get length() {
    return this.map.size
  }
}

let ts = 1_795_766_400_000
export function msg(conv: string, seq: number, sender: number, text = `m${seq}`, client_id = `c-${conv}-${seq}`): Message {
  return { conv, seq, sender, client_id, ts: ts++, content: { kind: 'text', text } }
}
