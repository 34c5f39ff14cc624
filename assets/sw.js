// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = 'c136868093e3'
const PRECACHE = [
  "/",
  "/assets/AdminView-B6cGd2eQ.css",
  "/assets/AdminView-BjV_0_XE.js",
  "/assets/AuthView-6hiCQQLA.js",
  "/assets/AuthView-BZXHJuWZ.css",
  "/assets/ChatView-C87Y-RZs.js",
  "/assets/ChatView-CSWZpBFZ.css",
  "/assets/ContactsView-CpUFK_ND.css",
  "/assets/ContactsView-CrMcRTc4.js",
  "/assets/GroupPanel-0WteZYlv.js",
  "/assets/GroupPanel-BKXK45jt.css",
  "/assets/Lightbox-38yrTTAw.js",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/ReadersDialog-Bh1CTyd6.js",
  "/assets/ReadersDialog-CTKKJY0k.css",
  "/assets/SettingsView-BOb3n7lr.css",
  "/assets/SettingsView-C-hnll1d.js",
  "/assets/core-BUPVMOQJ.js",
  "/assets/index-BuM373ed.js",
  "/assets/index-CmqYqFox.css",
  "/assets/vendor--eF53iv6.js",
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
