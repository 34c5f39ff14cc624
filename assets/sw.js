// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = '01889fd633c6'
const PRECACHE = [
  "/",
  "/assets/AdminView-3EvEoRPe.js",
  "/assets/AdminView-DO_8fFyb.css",
  "/assets/AuthView-BZXHJuWZ.css",
  "/assets/AuthView-C-AMsYLs.js",
  "/assets/ChatView-CZBJuEg_.js",
  "/assets/ChatView-VQeWYkE7.css",
  "/assets/ContactsView-BOpC3v5g.js",
  "/assets/ContactsView-CpUFK_ND.css",
  "/assets/GroupPanel-BKXK45jt.css",
  "/assets/GroupPanel-C-x31Z3Y.js",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/Lightbox-KgKo9lq4.js",
  "/assets/ReadersDialog-fOMuMlId.css",
  "/assets/ReadersDialog-mtKc7Pl1.js",
  "/assets/SettingsView-Bq-b_fKu.css",
  "/assets/SettingsView-N-HaIxmS.js",
  "/assets/core-BpTTbn-x.js",
  "/assets/index-8WjbwmhJ.js",
  "/assets/index-CylT9a0v.css",
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
