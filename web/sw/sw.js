// Chinwag's service worker (hand-written; the build fills in the two constants below and pastes
// sw/push-logic.ts, without its types, where the marker is).
// It caches the app shell so the app opens offline, and shows Web Push notifications. It never
// touches /api/: messages, the socket and the session always go to the network.
const VERSION = '__VERSION__'
const PRECACHE = __PRECACHE__
const CACHE = `chinwag-shell-${VERSION}`

/* __PUSH_LOGIC__ */

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('chinwag-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (event) => {
  const req = event.request
  if (req.method !== 'GET') return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin) return
  if (url.pathname.startsWith('/api/') || url.pathname === '/healthz' || url.pathname === '/sw.js') return

  if (req.mode === 'navigate') {
    // Network first so a new version shows at once; the cached shell when offline (SPA routes
    // like /chat/d:1:2 all get index.html).
    event.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone()
            caches.open(CACHE).then((c) => c.put('/index.html', copy))
          }
          return res
        })
        .catch(() =>
          caches
            .match('/index.html')
            .then((r) => r || caches.match('/'))
            .then((r) => r || Response.error()),
        ),
    )
    return
  }

  // Hashed build files never change: cache first.
  event.respondWith(
    caches.match(req).then(
      (hit) =>
        hit ||
        fetch(req).then((res) => {
          if (res.ok && res.type === 'basic') {
            const copy = res.clone()
            caches.open(CACHE).then((c) => c.put(req, copy))
          }
          return res
        }),
    ),
  )
})

// ---- Web Push (docs/push.md) ----
// The decisions are push-logic's (tested apart); this part only carries them out.

self.addEventListener('push', (event) => {
  let payload = null
  try {
    payload = event.data ? event.data.json() : null
  } catch {
    payload = null
  }
  const action = pushAction(payload, pushLang(self.navigator.language))
  if (!action) return
  if (action.kind === 'close') {
    event.waitUntil(
      self.registration.getNotifications({ tag: action.tag }).then((list) => {
        for (const n of list) n.close()
      }),
    )
    return
  }
  const badge =
    action.badge === null || !('setAppBadge' in self.navigator)
      ? Promise.resolve()
      : (action.badge > 0 ? self.navigator.setAppBadge(action.badge) : self.navigator.clearAppBadge()).catch(() => {})
  event.waitUntil(Promise.all([self.registration.showNotification(action.title, action.options), badge]))
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  const path = clickPath(event.notification.data)
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      const w = pickWindow(windows, self.location.origin)
      if (!w) return self.clients.openWindow(path)
      // The app's router moves without a reload (src/stores/push.ts listens for this message).
      w.postMessage({ type: OPEN_MESSAGE, url: path })
      return w.focus()
    }),
  )
})
