// Chinwag's service worker (hand-written; the build fills in the two constants below).
// It caches the app shell so the app opens offline. It never touches /api/: messages, the socket
// and the session always go to the network.
const VERSION = 'f82bd68836c6'
const PRECACHE = [
  "/",
  "/assets/AdminView-C8ZtlMw1.css",
  "/assets/AdminView-CAS-BTJL.js",
  "/assets/AuthView-BSm6KA18.js",
  "/assets/AuthView-BZXHJuWZ.css",
  "/assets/ChatView-CMVtOq0n.js",
  "/assets/ChatView-CSWZpBFZ.css",
  "/assets/ContactsView-CNzLHDOd.js",
  "/assets/ContactsView-CpUFK_ND.css",
  "/assets/GroupPanel-2lt5Jc6H.js",
  "/assets/GroupPanel-BKXK45jt.css",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/Lightbox-C8_V8Am0.js",
  "/assets/ReadersDialog-1ka5WJnF.js",
  "/assets/ReadersDialog-CTKKJY0k.css",
  "/assets/SettingsView-BOb3n7lr.css",
  "/assets/SettingsView-Cr0VcsBP.js",
  "/assets/core-BUPVMOQJ.js",
  "/assets/index-ClDBMEEo.js",
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
