// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = 'e7fc8885d58b'
const PRECACHE = [
  "/",
  "/assets/AdminView-BSIXYJyE.css",
  "/assets/AdminView-DR_Jq6QF.js",
  "/assets/AuthView-BZXHJuWZ.css",
  "/assets/AuthView-qUvSgooL.js",
  "/assets/ChatView-B6s8jKp3.js",
  "/assets/ChatView-C_DfmjZM.css",
  "/assets/ContactsView-CpUFK_ND.css",
  "/assets/ContactsView-Douk54MM.js",
  "/assets/GroupPanel-BKXK45jt.css",
  "/assets/GroupPanel-DYubCvzB.js",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/Lightbox-iHBCkUYq.js",
  "/assets/ReadersDialog-BND_BVXV.js",
  "/assets/ReadersDialog-fOMuMlId.css",
  "/assets/SettingsView-B7FcFFPe.js",
  "/assets/SettingsView-Bq-b_fKu.css",
  "/assets/core-CB8dRrLS.js",
  "/assets/index-BfnDGVJJ.js",
  "/assets/index-C4CpJIfW.css",
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
