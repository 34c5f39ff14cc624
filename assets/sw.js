// Chinwag's service worker (hand-written; the build fills in the two constants below and pastes
// sw/push-logic.ts, without its types, where the marker is).
// It caches the app shell so the app opens offline, and shows Web Push notifications. It never
// touches /api/: messages, the socket and the session always go to the network.
const VERSION = '5cbb532a4c18'
const PRECACHE = [
  "/",
  "/assets/AdminView-CP-05pTS.js",
  "/assets/AdminView-Cl6AUAKM.css",
  "/assets/AuthView-BkfGMKeJ.js",
  "/assets/AuthView-D1oqc4R1.css",
  "/assets/ChatView-D7P56MIJ.css",
  "/assets/ChatView-vDfAQmIL.js",
  "/assets/ContactsView-4zBB3YDj.js",
  "/assets/ContactsView-DkDagn1O.css",
  "/assets/ForwardDialog-C57HejoT.js",
  "/assets/ForwardDialog-Cu0yFn1W.css",
  "/assets/GroupPanel-B-EeMhab.js",
  "/assets/GroupPanel-BEYkqusB.css",
  "/assets/HistoryCard-BG0gNKhe.css",
  "/assets/HistoryCard-SIulrcgM.js",
  "/assets/HistoryViewer-B14WTi2a.js",
  "/assets/HistoryViewer-CmNnPQqj.css",
  "/assets/Lightbox-BZdkFr4A.css",
  "/assets/Lightbox-DnQtZKvb.js",
  "/assets/LinkView-B6BfcfPa.js",
  "/assets/LinkView-BE0plZCJ.css",
  "/assets/QrDialog-BLeCWKiu.css",
  "/assets/QrDialog-DhmE5PUt.js",
  "/assets/ReadersDialog-CTKKJY0k.css",
  "/assets/ReadersDialog-CW8BN4Et.js",
  "/assets/SavedView-Bc-zGQsK.css",
  "/assets/SavedView-BfPvFKjr.js",
  "/assets/ScanDialog-DBrSTbXh.css",
  "/assets/ScanDialog-ejjbF5EM.js",
  "/assets/SelectBar-CHHIHRTu.css",
  "/assets/SelectBar-Cdk2LBSE.js",
  "/assets/SettingsView-DVQI8Am-.css",
  "/assets/SettingsView-Dxp4zesy.js",
  "/assets/_plugin-vue_export-helper-BDNMzG2s.js",
  "/assets/browser-DfYHeeW3.js",
  "/assets/core-S3J92T2g.js",
  "/assets/index-CO1vSRvy.js",
  "/assets/index-Dyg7SYS0.css",
  "/assets/jsQR-DMfxOdIb.js",
  "/assets/rolldown-runtime-XKyaHtl9.js",
  "/assets/users-BW37Gqd_.js",
  "/assets/vendor-ZsljopeA.js",
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

const TEXTS = {
	en: {
		app: "Chinwag",
		newMessage: "New message",
		newMessages: (n) => `${n} new messages`,
		count: (n) => `[${n}] `,
		mention: "[You were mentioned] ",
		audioCall: "Incoming voice call",
		videoCall: "Incoming video call",
		request: "New contact request",
		requestFrom: "wants to add you as a contact"
	},
	zh: {
		app: "Chinwag",
		newMessage: "新消息",
		newMessages: (n) => `${n} 条新消息`,
		count: (n) => `[${n}条] `,
		mention: "[有人@我] ",
		audioCall: "语音通话邀请",
		videoCall: "视频通话邀请",
		request: "新的好友请求",
		requestFrom: "请求添加你为联系人"
	}
};
/** The worker's language from `navigator.language` (`zh-CN`, `zh-TW`, `en-US`...). */
function pushLang(language) {
	return typeof language === "string" && language.toLowerCase().startsWith("zh") ? "zh" : "en";
}
/** An app path for a conversation; its id keeps its colons (`/chat/d:3:7`). */
function chatPath(conv) {
	return `/chat/${encodeURIComponent(conv).replace(/%3A/gi, ":")}`;
}
const ICON = "/icons/icon-192.png";
function spec(tag, body, url, requireInteraction = false) {
	return {
		body,
		tag,
		renotify: true,
		requireInteraction,
		icon: ICON,
		data: { url }
	};
}
function present(s) {
	return typeof s === "string" && s.length > 0;
}
/**
* The notification a payload asks for, or null for a payload this worker does not know (a newer
* server's). One notification per conversation (tag `conv:<id>`) is replaced with each message
* and rings again (`renotify`); a call's (tag `call:<id>`) stays until answered or closed.
*/
function pushAction(payload, lang) {
	if (!payload || typeof payload !== "object") return null;
	const p = payload;
	const t = TEXTS[lang];
	switch (p.type) {
		case "message": {
			if (!present(p.conv)) return null;
			const n = typeof p.unread === "number" && p.unread > 1 ? p.unread : 1;
			const mention = p.mention === true ? t.mention : "";
			// Without the text the count is the text itself ("3 new messages"), not a prefix.
			let line = present(p.text) ? (n > 1 ? t.count(n) : "") + p.text : n > 1 ? t.newMessages(n) : t.newMessage;
			if (present(p.group_name) && present(p.sender_name)) line = `${p.sender_name}: ${line}`;
			const title = present(p.group_name) ? p.group_name : present(p.sender_name) ? p.sender_name : t.app;
			const badge = typeof p.total_unread === "number" && p.total_unread >= 0 ? p.total_unread : null;
			return {
				kind: "show",
				title,
				options: spec(`conv:${p.conv}`, mention + line, chatPath(p.conv)),
				badge
			};
		}
		case "call": {
			if (!present(p.call) || !present(p.conv)) return null;
			const body = p.media === "video" ? t.videoCall : t.audioCall;
			const title = present(p.caller_name) ? p.caller_name : t.app;
			// The app shows the incoming call once its socket reconnects, on the chat's page.
			return {
				kind: "show",
				title,
				options: spec(`call:${p.call}`, body, chatPath(p.conv), true),
				badge: null
			};
		}
		case "call_end": return present(p.call) ? {
			kind: "close",
			tag: `call:${p.call}`
		} : null;
		// The chat's notification may show the recalled text: it goes.
		case "recall": return present(p.conv) ? {
			kind: "close",
			tag: `conv:${p.conv}`
		} : null;
		case "contact_request": {
			if (typeof p.user !== "number") return null;
			const title = present(p.from_name) ? p.from_name : t.app;
			const body = present(p.from_name) ? t.requestFrom : t.request;
			return {
				kind: "show",
				title,
				options: spec(`request:${p.user}`, body, "/contacts"),
				badge: null
			};
		}
		default: return null;
	}
}
/** The path a click opens: the notification's own, or the app's start for anything else. */
function clickPath(data) {
	const url = data && typeof data === "object" ? data.url : undefined;
	return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : "/";
}
/**
* Which open Chinwag window a click should bring forward: the focused one, else a visible one,
* else any of this origin; null when none is open (the worker opens one).
*/
function pickWindow(windows, origin) {
	const ours = windows.filter((w) => {
		try {
			return new URL(w.url).origin === origin;
		} catch {
			return false;
		}
	});
	return ours.find((w) => w.focused) ?? ours.find((w) => w.visibilityState === "visible") ?? ours[0] ?? null;
}
/** The message a worker posts to a window it brings forward, so the app's router goes there. */
const OPEN_MESSAGE = "chinwag:open";


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
