// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = '7046be8e60e4'
const PRECACHE = [
  "/",
  "/assets/AuthView-Bo1osT8n.js",
  "/assets/AuthView-CA-0XBKN.css",
  "/assets/ChatView-C4RU5nyn.js",
  "/assets/ChatView-iEsn2Gdo.css",
  "/assets/ContactsView-BfJWb4fa.css",
  "/assets/ContactsView-VgDWlxuQ.js",
  "/assets/SettingsView-C5xJrShE.js",
  "/assets/SettingsView-DchTyOW1.css",
  "/assets/_plugin-vue_export-helper-79xPOGPk.js",
  "/assets/core-Bs9bUdYp.js",
  "/assets/index-BVIpclJZ.js",
  "/assets/index-CPcA8a6F.css",
  "/assets/vendor-D_nnGYxa.js",
  "/icons/apple-touch-icon.png",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/icon-maskable-512.png",
  "/icons/icon-maskable.svg",
  "/icons/icon.svg",
  "/manifest.webmanifest",
  "/theme-init.js"
]
const CACHE = `chinwag-shell-${VERSION}`

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
