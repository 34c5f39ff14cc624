// Tells the user about new messages: the document title and the app badge, a WebAudio chime and,
// while the tab is hidden, a browser Notification (only after the user allowed it from settings or
// the banner). When this device has a Web Push subscription the server pushes to it while the tab
// is hidden, and the service worker's notification is the only one: the page shows none.
import { watchEffect } from 'vue'
import { useI18n } from 'vue-i18n'
import type { Router } from 'vue-router'
import { useChat, type ConvMeta } from '@/stores/chat'
import { useUsers } from '@/stores/users'
import { useSettings } from '@/stores/settings'
import { usePush } from '@/stores/push'
import { setAppBadge, unreadTitle } from '@/lib/unreadBadge'
import { previewOf } from '@/lib/content'
import { playChime } from '@/lib/sound'
import type { Message } from '@/protocol/types'

/**
 * What the page does for a message from someone else: the chime, and its own notification. A
 * hidden tab on a device with a push subscription does neither: the server pushes to it, and the
 * service worker's notification (with its sound) is the only one.
 */
export function pageAlert(o: {
  hidden: boolean
  pushSubscribed: boolean
  sound: boolean
  inActiveChat: boolean
  notifications: boolean
  permitted: boolean
}): { chime: boolean; notify: boolean } {
  if (o.hidden && o.pushSubscribed) return { chime: false, notify: false }
  return { chime: o.sound && (o.hidden || !o.inActiveChat), notify: o.hidden && o.notifications && o.permitted }
}

export function notificationsSupported(): boolean {
  return typeof window !== 'undefined' && 'Notification' in window && window.isSecureContext
}

/** Asks the browser for permission; returns whether notifications may be shown. */
export async function askNotificationPermission(): Promise<boolean> {
  if (!notificationsSupported()) return false
  if (Notification.permission === 'granted') return true
  if (Notification.permission === 'denied') return false
  try {
    return (await Notification.requestPermission()) === 'granted'
  } catch {
    return false
  }
}

export function useNotifier(router: Router) {
  const chat = useChat()
  const users = useUsers()
  const settings = useSettings()
  const push = usePush()
  const { t } = useI18n()

  watchEffect(() => {
    const n = chat.totalUnread
    document.title = unreadTitle(n, t('app.name'), (label) => t('title.unread', { n: label }))
    setAppBadge(typeof navigator === 'undefined' ? undefined : navigator, n)
  })

  function onIncoming(m: Message, conv: ConvMeta) {
    const alert = pageAlert({
      hidden: document.visibilityState === 'hidden',
      pushSubscribed: push.subscribed,
      sound: settings.sound,
      inActiveChat: chat.activeConv === conv.id,
      notifications: settings.notifications,
      permitted: notificationsSupported() && Notification.permission === 'granted',
    })
    if (alert.chime) playChime()
    if (!alert.notify) return
    const nameOf = (id: number) => users.name(id)
    const text = previewOf(m.content, t, nameOf, m.sender)
    try {
      const n = new Notification(chat.displayName(conv.id), {
        body: conv.id.startsWith('g:') ? `${nameOf(m.sender)}: ${text}` : text,
        tag: conv.id,
        icon: '/icons/icon-192.png',
      })
      n.onclick = () => {
        window.focus()
        void router.push({ name: 'chat', params: { id: conv.id } })
        n.close()
      }
    } catch {
      // Some platforms (Android Chrome) only allow notifications from a service worker.
    }
  }

  return { onIncoming }
}
