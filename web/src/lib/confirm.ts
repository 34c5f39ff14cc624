// One confirmation (or one-field prompt) at a time, shown by components/ConfirmHost.vue:
// `if (await confirmAction({...}))` reads like window.confirm but is styled, translated and
// keyboard friendly.
import { shallowRef } from 'vue'

export interface ConfirmRequest {
  title: string
  message?: string
  ok?: string
  danger?: boolean
  /** Ask for a value too (a new password, say); the answer is then the text, or null. */
  input?: { label: string; type?: 'text' | 'password' | 'number'; minLength?: number; value?: string }
}

interface Pending extends ConfirmRequest {
  resolve: (v: string | boolean | null) => void
}

export const pendingConfirm = shallowRef<Pending | null>(null)

export function confirmAction(req: ConfirmRequest & { input?: undefined }): Promise<boolean>
export function confirmAction(req: ConfirmRequest & { input: NonNullable<ConfirmRequest['input']> }): Promise<string | null>
export function confirmAction(req: ConfirmRequest): Promise<string | boolean | null> {
  pendingConfirm.value?.resolve(req.input ? null : false)
  return new Promise((resolve) => {
    pendingConfirm.value = {
      ...req,
      resolve: (v) => {
        pendingConfirm.value = null
        resolve(v)
      },
    }
  })
}
