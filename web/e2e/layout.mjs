// Layout check of every main screen, at 1280x800 and 390x844, in English and Chinese (the login
// and registration forms in the dark theme too): it fails when interactive elements (buttons,
// inputs, links, switches) overlap one another, when text is clipped or spills out of its box
// (or is wrapped into a column narrower than 40 px), or when anything visible lies outside the
// viewport. The rules run in the page (`audit` below) over
// what is actually drawn: an element counts only where it is the topmost thing at one of its
// points, and its box is cut by every ancestor that clips (a scrolled-away list row is fine).
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/layout.mjs
//   SCREENSHOTS=/tmp/shots node e2e/layout.mjs     # also saves every screen it checked
//
// One server, two browser contexts (a visitor for the login and registration forms, the
// administrator for the rest); the screens are reached by URL.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import * as lib from './lib.mjs'
import { SHOTS, T, send, storedMessages, waitForCount } from './lib.mjs'

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const alice = { username: `alice${run}`, nickname: 'Alice Lindqvist', password: 'layout password 1' }
const bob = { username: `bob${run}`, nickname: 'Bob 鲍勃', password: 'layout password 2' }
const carol = { username: `carol${run}`, nickname: 'Carol', password: 'layout password 3' }

before(async () => {
  srv = await lib.startServer()
  base = srv.base
  browser = await lib.launchBrowser()
})

after(async () => {
  try {
    await browser?.close()
  } finally {
    await srv?.stop()
  }
})

const api = (token, method, path, body) => lib.apiOk(base, token, method, path, body)

/**
 * Runs in the page: returns a list of layout problems, each a short sentence naming the
 * elements. Exported as a string-free function so Playwright can ship it to the page.
 */
function audit() {
  const vw = document.documentElement.clientWidth
  const vh = document.documentElement.clientHeight
  const problems = []
  const name = (el) => {
    const id = el.getAttribute('data-testid')
    const text = (el.getAttribute('aria-label') || el.textContent || el.getAttribute('placeholder') || '').trim().replace(/\s+/g, ' ').slice(0, 30)
    const cls = typeof el.className === 'string' && el.className ? `.${el.className.trim().split(/\s+/).join('.')}` : ''
    return `<${el.tagName.toLowerCase()}${id ? ` testid=${id}` : ''}${cls}>"${text}"`
  }
  const shown = (el) => {
    for (let e = el; e && e !== document.documentElement; e = e.parentElement) {
      const s = getComputedStyle(e)
      if (s.display === 'none' || s.visibility === 'hidden' || Number(s.opacity) === 0) return false
      if (s.clipPath && s.clipPath !== 'none') return false
      if (s.clip && s.clip !== 'auto') return false
    }
    return true
  }
  /** The element's box cut by every clipping ancestor, or null when nothing of it is left. */
  const visibleRect = (el) => {
    const r = el.getBoundingClientRect()
    let [l, t, ri, b] = [r.left, r.top, r.right, r.bottom]
    for (let e = el.parentElement; e && e !== document.body && e !== document.documentElement; e = e.parentElement) {
      const s = getComputedStyle(e)
      if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
        const c = e.getBoundingClientRect()
        if (s.overflowX !== 'visible') [l, ri] = [Math.max(l, c.left), Math.min(ri, c.right)]
        if (s.overflowY !== 'visible') [t, b] = [Math.max(t, c.top), Math.min(b, c.bottom)]
      }
      if (s.position === 'fixed') break
    }
    if (ri - l < 1 || b - t < 1) return null
    return { l, t, r: ri, b }
  }
  /** Whether the element is the topmost thing (or holds it) at one of nine points of its visible box. */
  const onTop = (el, v) => {
    for (const fx of [0.5, 0.15, 0.85])
      for (const fy of [0.5, 0.2, 0.8]) {
        const x = v.l + (v.r - v.l) * fx
        const y = v.t + (v.b - v.t) * fy
        if (x < 0 || y < 0 || x >= vw || y >= vh) continue
        const hit = document.elementFromPoint(x, y)
        if (hit && (hit === el || el.contains(hit) || hit.contains(el) || (hit.tagName === 'LABEL' && hit.control === el))) return true
      }
    return false
  }
  const all = [...document.body.querySelectorAll('*')].filter((el) => !['SCRIPT', 'STYLE', 'svg', 'path', 'OPTION', 'TEMPLATE', 'BR'].includes(el.tagName))
  const drawn = new Map()
  for (const el of all) {
    const r = el.getBoundingClientRect()
    if (r.width <= 1 || r.height <= 1 || !shown(el)) continue
    const v = visibleRect(el)
    if (v) drawn.set(el, v)
  }

  // Outside the viewport.
  for (const [el, v] of drawn) {
    if (el.children.length > 0 && !el.matches('button, a, input, [role=switch]') && ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue
    if (v.l < -1 || v.t < -1 || v.r > vw + 1 || v.b > vh + 1) {
      problems.push(`outside the viewport (${vw}x${vh}): ${name(el)} at ${Math.round(v.l)},${Math.round(v.t)}-${Math.round(v.r)},${Math.round(v.b)}`)
    }
  }
  if (document.documentElement.scrollWidth > vw + 1) problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${vw}`)

  // Interactive elements overlapping one another.
  const interactive = [...drawn.keys()].filter(
    (el) => el.matches('button, input:not([type=hidden]), select, textarea, a[href], [role=switch], [role=button]') && onTop(el, drawn.get(el)),
  )
  for (let i = 0; i < interactive.length; i++) {
    for (let j = i + 1; j < interactive.length; j++) {
      const [a, b] = [interactive[i], interactive[j]]
      if (a.contains(b) || b.contains(a)) continue
      const [p, q] = [drawn.get(a), drawn.get(b)]
      const w = Math.min(p.r, q.r) - Math.max(p.l, q.l)
      const h = Math.min(p.b, q.b) - Math.max(p.t, q.t)
      if (w <= 2 || h <= 2) continue
      // A button drawn inside a text field's padding (show password, clear) is an adornment.
      const adorned = (field, btn, fr, br) => {
        if (!field.matches('input, textarea')) return false
        const s = getComputedStyle(field)
        const inside = br.l >= fr.l - 1 && br.r <= fr.r + 1 && br.t >= fr.t - 1 && br.b <= fr.b + 1
        const room = br.l >= fr.r - parseFloat(s.paddingRight) - 1 || br.r <= fr.l + parseFloat(s.paddingLeft) + 1
        return inside && room
      }
      if (adorned(a, b, p, q) || adorned(b, a, q, p)) continue
      problems.push(`overlap ${Math.round(w)}x${Math.round(h)}: ${name(a)} and ${name(b)}`)
    }
  }

  // Text clipped, spilling out of its box, or wrapped into a narrow column.
  for (const [el, v] of drawn) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim())
    if (own.length === 0 || el.matches('input, textarea, select')) continue
    const s = getComputedStyle(el)
    if (s.display === 'inline' || s.display === 'contents') {
      // An inline's lines: a word per line in a narrow column is the defect.
      continue
    }
    const ellipsis = s.textOverflow === 'ellipsis' || Number(s.webkitLineClamp) > 0
    const scrolls = (o) => o === 'auto' || o === 'scroll'
    if (!ellipsis && !scrolls(s.overflowX) && el.scrollWidth > el.clientWidth + 2) {
      problems.push(`text clipped sideways (${el.scrollWidth} > ${el.clientWidth}): ${name(el)}`)
    }
    if (!ellipsis && !scrolls(s.overflowY) && el.scrollHeight > el.clientHeight + 3 && el.clientHeight > 0) {
      problems.push(`text spills out of its box (${el.scrollHeight} > ${el.clientHeight} px high): ${name(el)}`)
    }
    const lines = new Set()
    for (const n of own) {
      const range = document.createRange()
      range.selectNodeContents(n)
      for (const rect of range.getClientRects()) if (rect.width > 0) lines.add(Math.round(rect.top))
    }
    if (lines.size > 1 && v.r - v.l < 40) problems.push(`text wrapped into a ${Math.round(v.r - v.l)} px column: ${name(el)}`)
  }
  // Inline text (a link, a span) broken over many lines in a narrow column.
  for (const [el] of drawn) {
    if (getComputedStyle(el).display !== 'inline' || !el.textContent.trim()) continue
    const rects = [...el.getClientRects()].filter((r) => r.width > 0)
    if (rects.length > 1 && Math.max(...rects.map((r) => r.width)) < 40) problems.push(`text wrapped into a narrow column: ${name(el)}`)
  }
  return [...new Set(problems)]
}

/** Problems on the current screen, each prefixed with where it was seen. */
async function check(page, where) {
  await lib.settled(page)
  const found = await page.evaluate(audit)
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true })
    await page.screenshot({ path: join(SHOTS, `layout-${where.replace(/[^a-zA-Z0-9-]+/g, '-')}.png`) })
  }
  return found.map((p) => `${where}: ${p}`)
}

async function setPref(page, pref) {
  await page.evaluate((p) => {
    const s = JSON.parse(localStorage.getItem('chinwag:settings') ?? '{}')
    localStorage.setItem('chinwag:settings', JSON.stringify({ ...s, ...p }))
  }, pref)
}
const setLocale = (page, locale) => setPref(page, { locale })

const SIZES = [
  ['desktop', { width: 1280, height: 800 }],
  ['phone', { width: 390, height: 844 }],
]

test('every main screen: no overlapping controls, no clipped text, nothing outside the viewport', async () => {
  const a = await lib.registerApi(base, alice) // the first account: the administrator
  const b = await lib.registerApi(base, bob)
  const c = await lib.registerApi(base, carol)
  for (const [other, who] of [
    [b, bob],
    [c, carol],
  ]) {
    await lib.befriendApi(base, a, other)
    assert.ok(who)
  }
  const group = await api(a.token, 'POST', '/api/groups', {
    name: 'Weekend hiking club 周末徒步俱乐部',
    notice: 'Meet at the north gate at 8:00.',
    members: [b.user.id, c.user.id],
  })
  const gconv = `g:${group.id}`
  const [lo, hi] = [a.user.id, b.user.id].sort((x, y) => x - y)
  const dconv = `d:${lo}:${hi}`

  const visitor = await lib.newUserPage(browser, 'visitor')
  const admin = await lib.sessionPage(browser, base, 'alice', a.token)
  const page = admin.page
  // Something to show in both chats, from the administrator's own page.
  await page.goto(`${base}/chat/${dconv}`)
  await send(page, 'Hello Bob, are we still on for Saturday? The forecast says sunshine all day.')
  await waitForCount(storedMessages(page, 'Hello Bob, are we still on for Saturday? The forecast says sunshine all day.'), 1)
  await page.goto(`${base}/chat/${gconv}`)
  await send(page, `Hi all @${bob.username}, bring water and a hat 🧢`)
  await page.getByTestId('message-list').getByTestId('message').first().waitFor({ timeout: T })

  const screens = [
    ['login', visitor.page, '/login', async (p) => p.getByTestId('auth-submit').waitFor({ timeout: T })],
    [
      'register',
      visitor.page,
      '/login',
      async (p) => {
        await p.getByTestId('auth-tab-register').click()
        await p.getByTestId('auth-confirm').waitFor({ timeout: T })
      },
    ],
    ['chats', page, '/', async (p) => p.getByTestId('conversation-list').waitFor({ timeout: T })],
    ['direct-chat', page, `/chat/${dconv}`, async (p) => p.getByTestId('message').first().waitFor({ timeout: T })],
    ['group-chat', page, `/chat/${gconv}`, async (p) => p.getByTestId('message').first().waitFor({ timeout: T })],
    [
      'group-info',
      page,
      `/chat/${gconv}`,
      async (p) => {
        await p.getByTestId('message').first().waitFor({ timeout: T })
        await p.getByTestId('group-info').click()
        await p.getByTestId('group-panel').waitFor({ timeout: T })
      },
    ],
    ['contacts', page, '/contacts', async (p) => p.getByTestId('contacts-view').waitFor({ timeout: T })],
    ['settings', page, '/settings', async (p) => p.getByTestId('settings-view').waitFor({ timeout: T })],
    ['admin-dashboard', page, '/admin/dashboard', async (p) => p.getByTestId('admin-view').waitFor({ timeout: T })],
    ['admin-users', page, '/admin/users', async (p) => p.getByTestId('admin-view').waitFor({ timeout: T })],
  ]

  const problems = []
  for (const locale of ['en', 'zh-CN']) {
    for (const p of [visitor.page, page]) {
      if (p.url() === 'about:blank') await p.goto(`${base}/login`)
      await setLocale(p, locale)
    }
    for (const [size, viewport] of SIZES) {
      for (const p of [visitor.page, page]) await p.setViewportSize(viewport)
      for (const [screen, p, path, ready] of screens) {
        await p.goto(base + path)
        await ready(p)
        problems.push(...(await check(p, `${screen} ${size} ${locale}`)))
      }
      // The first screens anyone sees, in the dark theme too.
      await setPref(visitor.page, { theme: 'dark' })
      for (const [screen, p, path, ready] of screens.filter(([, p]) => p === visitor.page)) {
        await p.goto(base + path)
        await ready(p)
        problems.push(...(await check(p, `${screen} ${size} ${locale} dark`)))
      }
      await setPref(visitor.page, { theme: 'light' })
    }
  }
  assert.deepEqual(problems, [], `layout problems:\n${problems.join('\n')}`)
})
