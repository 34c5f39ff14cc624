// Per-browser preferences: language, theme, sound, notifications. Persisted in localStorage.
import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'
import { detectLocale, setLocale, type Locale } from '@/i18n'
import { loadJson, saveJson } from '@/lib/persist'

export type ThemePref = 'system' | 'light' | 'dark'

interface Saved {
  locale?: Locale
  theme?: ThemePref
  sound?: boolean
  notifications?: boolean
  notifyBannerDismissed?: boolean
}

const KEY = 'chinwag:settings'

export const useSettings = defineStore('settings', () => {
  const saved = loadJson<Saved>(KEY, {})
  const locale = ref<Locale>(saved.locale === 'en' || saved.locale === 'zh-CN' ? saved.locale : detectLocale())
  const theme = ref<ThemePref>(saved.theme ?? 'system')
  const sound = ref(saved.sound ?? true)
  const notifications = ref(saved.notifications ?? false)
  const notifyBannerDismissed = ref(saved.notifyBannerDismissed ?? false)
  /** Whether the user picked the language (else it follows the browser). */
  const localeChosen = ref(saved.locale !== undefined)

  const systemDark = ref(typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches)
  if (typeof matchMedia === 'function') {
    matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', (e) => (systemDark.value = e.matches))
  }
  const dark = computed(() => (theme.value === 'system' ? systemDark.value : theme.value === 'dark'))

  function persist() {
    saveJson(KEY, {
      locale: localeChosen.value ? locale.value : undefined,
      theme: theme.value,
      sound: sound.value,
      notifications: notifications.value,
      notifyBannerDismissed: notifyBannerDismissed.value,
    } satisfies Saved)
  }

  function chooseLocale(l: Locale) {
    locale.value = l
    localeChosen.value = true
  }

  watch([locale, theme, sound, notifications, notifyBannerDismissed, localeChosen], persist)
  watch(locale, (l) => setLocale(l), { immediate: true })
  watch(
    dark,
    (d) => {
      if (typeof document === 'undefined') return
      document.documentElement.dataset.theme = d ? 'dark' : 'light'
      document.querySelector('meta[name="theme-color"]')?.setAttribute('content', d ? '#17191c' : '#ededed')
    },
    { immediate: true },
  )

  return { locale, theme, sound, notifications, notifyBannerDismissed, dark, chooseLocale }
})
