// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = '379e88a33223'
const PRECACHE = [
  "/",
  "/assets/AdminView-BxFzYhii.js",
  "/assets/AdminView-DO_8fFyb.css",
  "/assets/AuthView-BZXHJuWZ.css",
  "/assets/AuthView-DFr2-Qv2.js",
  "/assets/ChatView-C_DfmjZM.css",
  "/assets/ChatView-DfGw_liG.js",
  "/assets/ContactsView-CpUFK_ND.css",
  "/assets/ContactsView-DpqOmFXv.js",
  "/assets/GroupPanel-BKXK45jt.css",
  "/assets/GroupPanel-CO4llP-R.js",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/Lightbox-U_6PslD8.js",
  "/assets/ReadersDialog-BiF0CyXG.js",
  "/assets/ReadersDialog-fOMuMlId.css",
  "/assets/SettingsView-Bq-b_fKu.css",
  "/assets/SettingsView-C1J4DgrI.js",
  "/assets/core-BpTTbn-x.js",
  "/assets/index-C4CpJIfW.css",
  "/assets/index-spbHKsnv.js",
  "/assets/vendor-CLakbYUr.js",
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
