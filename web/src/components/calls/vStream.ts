// `v-stream`: binds a MediaStream to a <video>/<audio> element (srcObject is not an attribute).
import type { Directive } from 'vue'

export const vStream: Directive<HTMLMediaElement, MediaStream | null | undefined> = {
  mounted(el, b) {
    el.srcObject = b.value ?? null
  },
  updated(el, b) {
    if (el.srcObject !== (b.value ?? null)) el.srcObject = b.value ?? null
  },
}
