// Who is logged in. The session itself is an HttpOnly cookie; this store only mirrors `/api/me`.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api, ApiError, type ProfilePatch, type RegisterInput } from '@/protocol/api'
import type { User } from '@/protocol/types'

export const useSession = defineStore('session', () => {
  const me = ref<User | null>(null)
  /** True once `/api/me` has answered (or failed) at least once. */
  const checked = ref(false)
  /** True when the server could not be reached on start-up (offline app shell). */
  const unreachable = ref(false)

  async function fetchMe(): Promise<User | null> {
    try {
      me.value = await api.me()
      unreachable.value = false
      cacheMe(me.value)
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        me.value = null
        forgetCachedMe()
      } else {
        // Offline or server down: keep going with the last known user so queued messages show.
        unreachable.value = true
        me.value = me.value ?? cachedMe()
      }
    } finally {
      checked.value = true
    }
    return me.value
  }

  async function login(username: string, password: string) {
    const r = await api.login(username, password)
    me.value = r.user
    cacheMe(r.user)
  }

  async function register(input: RegisterInput) {
    const r = await api.register(input)
    me.value = r.user
    cacheMe(r.user)
  }

  async function otpLogin(username: string, code: string) {
    const r = await api.otpLogin(username, code)
    me.value = r.user
    cacheMe(r.user)
  }

  async function updateProfile(patch: ProfilePatch) {
    me.value = await api.updateMe(patch)
    cacheMe(me.value)
  }

  /** A newer view of myself (after an avatar change, say). */
  function replaceMe(u: User) {
    me.value = { ...me.value, ...u }
    cacheMe(me.value)
  }

  async function changePassword(oldPassword: string, newPassword: string) {
    await api.changePassword(oldPassword, newPassword)
  }

  async function logout() {
    try {
      await api.logout()
    } catch {
      // Already logged out, or offline: forget locally anyway.
    }
    clear()
  }

  /** Forgets the user locally (after a 401 or a 4001 close). */
  function clear() {
    me.value = null
    forgetCachedMe()
  }

  return { me, checked, unreachable, fetchMe, login, register, otpLogin, updateProfile, replaceMe, changePassword, logout, clear }
})

const ME_KEY = 'chinwag:me'
function cacheMe(u: User) {
  try {
    localStorage.setItem(ME_KEY, JSON.stringify(u))
  } catch {
    /* storage unavailable */
  }
}
function cachedMe(): User | null {
  try {
    const raw = localStorage.getItem(ME_KEY)
    return raw ? (JSON.parse(raw) as User) : null
  } catch {
    return null
  }
}
function forgetCachedMe() {
  try {
    localStorage.removeItem(ME_KEY)
  } catch {
    /* storage unavailable */
  }
}
