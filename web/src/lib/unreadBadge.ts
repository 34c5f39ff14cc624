// The total unread count where the system shows it: the tab's title (`(3) Chinwag`) and the
// installed app's badge (`navigator.setAppBadge`, where the browser has it).

/** The count as shown: 1 to 99, then `99+`. */
export function unreadLabel(n: number): string {
  return n > 99 ? '99+' : String(n)
}

/** The document title for `n` unread messages; `withCount` is the translated `({n}) Chinwag`. */
export function unreadTitle(n: number, appName: string, withCount: (label: string) => string): string {
  return n > 0 ? withCount(unreadLabel(n)) : appName
}

/** The part of `navigator` that sets the app badge (Chromium, Safari for home-screen apps). */
export interface BadgeNavigator {
  setAppBadge?: (n?: number) => Promise<void>
  clearAppBadge?: () => Promise<void>
}

/** Sets (or clears, at 0) the app badge where supported; failures are ignored (no permission). */
export function setAppBadge(nav: BadgeNavigator | undefined, n: number): void {
  if (!nav?.setAppBadge) return
  const p = n > 0 ? nav.setAppBadge(n) : nav.clearAppBadge ? nav.clearAppBadge() : nav.setAppBadge(0)
  void p?.catch?.(() => {})
}
