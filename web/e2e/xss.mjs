// Stored XSS proof (pass bar S3): every payload of e2e/xss-payloads.txt (one per line, `$ID`
// replaced by its line number) is stored through the API as message texts, nicknames,
// signatures, contact-request messages, group names and notices, file names and sticker pack
// names, then rendered in Chromium: the chat list, every chat, group info with its members,
// search results, contacts, a profile card and the admin lists. Nothing may run.
//
//   CHINWAG_BIN=../target/debug/chinwag node e2e/xss.mjs
//
// How a run would be seen: each payload, if it ran, calls `__xss(id)` (a function exposed to
// the page), opens a dialog (`alert`, `confirm`, `prompt`, `print`) or leaves markup in the DOM
// (an `on*` attribute, a script, frame or object element, a `javascript:` URL), and under the
// server's CSP it would raise a `securitypolicyviolation`. The walk runs twice: once with the CSP
// switched off in the browser (the rendering alone must be safe) and once with it (nothing may
// even try). A control payload injected on purpose at the end shows that each detector fires.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as lib from './lib.mjs'
import { T } from './lib.mjs'

const payloads = readFileSync(new URL('./xss-payloads.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l, i) => l.replaceAll('$ID', String(i + 1)))

let srv
let base
let browser
const run = Date.now().toString(36).slice(-5)
const PASSWORD = 'xss proof password 1'
const viewer = { username: `xv${run}`, password: PASSWORD }
const others = [] // { username, token, id, nickname, signature }
const groups = [] // { id, name, notice, texts: [] }
const direct = { texts: [] } // the 1:1 chat of the viewer and others[0]
const fileNames = []
const packNames = []

/** Characters a name may hold: the server refuses control characters and trims. */
const fits = (p, max) => p.trim().length > 0 && [...p.trim()].length <= max && !/\p{Cc}/u.test(p)
/** `n` payloads that fit `max`, taken from `from` on (wrapping), so each field gets a mix. */
function pick(max, n, from) {
  const ok = payloads.filter((p) => fits(p, max))
  assert.ok(ok.length >= n, `only ${ok.length} payloads fit ${max} characters`)
  return Array.from({ length: n }, (_, i) => ok[(from + i) % ok.length])
}

async function api(token, method, path, body, raw) {
  const headers = { authorization: `Bearer ${token}` }
  if (body !== undefined && !raw) headers['content-type'] = 'application/json'
  const r = await fetch(base + path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) })
  const text = await r.text()
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`)
  return text ? JSON.parse(text) : null
}

async function registerApi(username, nickname) {
  const r = await fetch(base + '/api/auth/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, nickname }),
  })
  const body = await r.json()
  assert.equal(r.status, 201, JSON.stringify(body))
  return body
}

/** Sends frames on a WebSocket of the user whose session `token` is, from a page of this
 * origin (so the Origin check passes); resolves when every frame is answered. */
async function sendFrames(token, frames) {
  const ctx = await browser.newContext()
  await ctx.addCookies([{ name: 'chinwag_session', value: token, url: base }])
  const page = await ctx.newPage()
  await page.goto(base + '/api/auth/options')
  const errors = await page.evaluate(async (frames) => {
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/ws')
    await new Promise((res, rej) => {
      ws.onmessage = (e) => JSON.parse(e.data).type === 'hello' && res()
      ws.onerror = () => rej(new Error('socket failed'))
    })
    const errors = []
    let left = frames.length
    const done = new Promise((res) => {
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data)
        if (f.type === 'error') errors.push(f)
        if ((f.type === 'ack' || f.type === 'error') && --left === 0) res()
      }
    })
    for (const f of frames) ws.send(JSON.stringify(f))
    await done
    ws.close()
    return errors
  }, frames)
  await ctx.close()
  assert.deepEqual(errors, [], 'every payload is accepted as a message')
}

before(async () => {
  srv = await lib.startServer({ env: { CHINWAG_AUTH__REGISTRATIONS_PER_IP_PER_HOUR: '100000', CHINWAG_TURN__ENABLED: 'false' } })
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

test('the payload list is long enough and the CSP is strict', async () => {
  assert.ok(payloads.length >= 200, `${payloads.length} payloads`)
  assert.equal(new Set(payloads).size, payloads.length, 'payloads are distinct')
  const csp = (await fetch(base + '/')).headers.get('content-security-policy') ?? ''
  const scriptSrc = /script-src ([^;]*)/.exec(csp)?.[1] ?? /default-src ([^;]*)/.exec(csp)?.[1]
  assert.equal(scriptSrc?.trim(), "'self'", `script-src: ${csp}`)
  assert.match(csp, /object-src 'none'/)
  assert.match(csp, /base-uri 'self'/)
  assert.doesNotMatch(csp, /unsafe-eval/)
})

test('payloads are stored as names, requests, groups, files and messages', async () => {
  const v = await registerApi(viewer.username, 'Viewer')
  viewer.token = v.token
  viewer.id = v.user.id
  assert.equal(v.user.is_admin, true, 'the first user administers the server')
  const nicknames = pick(64, 30, 0)
  const signatures = pick(256, 30, 60)
  const requestMessages = pick(200, 30, 120)
  for (let i = 0; i < 30; i++) {
    const u = await registerApi(`xu${run}${i}`, nicknames[i])
    const o = { username: u.user.username, token: u.token, id: u.user.id, nickname: nicknames[i].trim(), signature: signatures[i].trim() }
    await api(o.token, 'PATCH', '/api/me', { signature: signatures[i] })
    await api(o.token, 'POST', '/api/contacts/requests', { user: viewer.id, message: requestMessages[i] })
    o.request = requestMessages[i].trim()
    others.push(o)
  }
  // Twenty become contacts; ten requests stay pending, with their messages shown.
  const contacts = others.slice(0, 20)
  for (const o of contacts) await api(viewer.token, 'POST', `/api/contacts/requests/${o.id}/accept`, {})

  // Groups: created, then renamed (the rename is a system message that quotes the name).
  const chunk = 44
  const nGroups = Math.ceil(payloads.length / chunk) + 2
  const names = pick(64, nGroups * 2, 200)
  const notices = pick(2000, nGroups, 20)
  for (let i = 0; i < nGroups; i++) {
    const g = await api(viewer.token, 'POST', '/api/groups', {
      name: names[2 * i],
      notice: notices[i],
      members: contacts.map((o) => o.id),
    })
    const renamed = await api(viewer.token, 'PATCH', `/api/groups/${g.id}`, { name: names[2 * i + 1] })
    groups.push({ id: g.id, name: renamed.name, notice: renamed.notice, texts: payloads.slice(i * chunk, (i + 1) * chunk) })
  }
  assert.equal(groups.at(-1).name, names.at(-1).trim())

  // Files with payload names (the server sanitizes names: what it stored is what must show).
  const filesGroup = groups.at(-1)
  const files = []
  for (const name of pick(200, 20, 7)) {
    const f = await api(others[1].token, 'POST', `/api/files?name=${encodeURIComponent(name)}`, undefined, `file named ${name}`)
    files.push(f)
    fileNames.push(f.name)
  }
  for (const name of pick(64, 5, 33)) {
    const p = await api(viewer.token, 'POST', '/api/stickers/packs', { name })
    packNames.push(p.name)
  }

  // Messages: every payload in a group, sent by members with payload nicknames; some in 1:1.
  const conv = (g) => `g:${g.id}`
  const frames = new Map(others.slice(0, 3).map((o) => [o, []]))
  let n = 0
  for (const g of groups) {
    for (const text of g.texts) {
      const sender = others[n % 3]
      frames.get(sender).push({ type: 'send', client_id: `x${n++}`, conv: conv(g), content: { kind: 'text', text } })
    }
  }
  for (const f of files) {
    frames.get(others[1]).push({ type: 'send', client_id: `f${n++}`, conv: conv(filesGroup), content: { kind: 'file', file_id: f.id } })
  }
  const [lo, hi] = [viewer.id, others[0].id].sort((a, b) => a - b)
  direct.conv = `d:${lo}:${hi}`
  direct.texts = payloads.filter((_, i) => i % 6 === 0).slice(0, 40)
  for (const text of direct.texts) frames.get(others[0]).push({ type: 'send', client_id: `d${n++}`, conv: direct.conv, content: { kind: 'text', text } })
  for (const [o, fs] of frames) await sendFrames(o.token, fs)
  const covered = new Set(groups.flatMap((g) => g.texts))
  assert.equal(covered.size, payloads.length, 'every payload is a message somewhere')
})

/** Starts a viewer session: `csp` false switches the page's CSP off (the rendering alone must
 * hold), true keeps it (nothing may even try to run). Returns the page and its findings. */
async function viewerPage(csp) {
  const label = csp ? 'with CSP' : 'without CSP'
  const { ctx, page } = await lib.newUserPage(browser, `viewer ${label}`, { bypassCSP: !csp })
  const found = { hits: [], dialogs: [], violations: [] }
  await ctx.exposeFunction('__xss', (id) => found.hits.push(String(id)))
  await ctx.exposeFunction('__cspViolation', (v) => found.violations.push(v))
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sample ?? ''}`),
    )
  })
  page.on('dialog', (d) => {
    found.dialogs.push(`${d.type()}: ${d.message()}`)
    void d.dismiss().catch(() => {})
  })
  // print() opens no dialog in headless Chromium; catch it where it is called.
  await ctx.addInitScript(() => {
    window.print = () => window.__xss('print')
  })
  await lib.login(base, page, viewer)
  return { ctx, page, found, label }
}

/** Markup that can only have come from a payload: handlers, active elements, script URLs. */
function domFindings() {
  const out = []
  const active = new Set(['script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'base', 'meta', 'link', 'portal'])
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'xlink:href', 'poster', 'data', 'background', 'srcdoc']
  for (const el of document.body.querySelectorAll('*')) {
    const tag = el.localName
    if (active.has(tag)) out.push(`<${tag}>`)
    for (const a of el.attributes) {
      if (/^on/i.test(a.name)) out.push(`<${tag} ${a.name}>`)
      if (urlAttrs.includes(a.name.toLowerCase())) {
        const v = a.value.replace(/[\s\u0000-\u001f]/g, '').toLowerCase()
        if (/^(javascript|vbscript|data:text\/html)/.test(v) || a.name === 'srcdoc') out.push(`<${tag} ${a.name}=${a.value}>`)
      }
    }
  }
  return out
}

/** Waits for what could still run a payload, then asserts nothing ran and nothing active is
 * in the page. An image's `error` event is fired in the same task that marks it broken, so once
 * every image is `complete` their handlers have had their chance; a frame after that, anything
 * a render scheduled has been drawn. */
async function assertClean(v, where) {
  await v.page.waitForFunction(() => [...document.images].every((i) => i.complete || i.loading === 'lazy'), null, { timeout: T })
  await v.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
  const dom = await v.page.evaluate(domFindings)
  assert.deepEqual(v.found.hits, [], `${v.label}, ${where}: payloads ran`)
  assert.deepEqual(v.found.dialogs, [], `${v.label}, ${where}: dialogs opened`)
  assert.deepEqual(v.found.violations, [], `${v.label}, ${where}: CSP violations`)
  assert.deepEqual(dom, [], `${v.label}, ${where}: active markup in the page`)
}

/** Texts of the elements matching `selector`, as the user sees them (textContent). */
const textsOf = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent ?? ''))

/** Waits until every string of `want` is, as text, in some element matching `selector`. */
async function waitForTexts(page, selector, want, what) {
  const deadline = Date.now() + T
  let missing = want
  while (Date.now() < deadline) {
    const have = await textsOf(page, selector)
    missing = want.filter((w) => !have.some((h) => h.includes(w)))
    if (missing.length === 0) return
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.fail(`${what}: ${missing.length} not shown as text, e.g. ${JSON.stringify(missing.slice(0, 3))}`)
}

/** Opens a conversation from the list and waits until its messages show exactly these texts. */
async function openChat(v, conv, texts) {
  await v.page.getByTestId(`conversation-${conv}`).click()
  await v.page.getByTestId('message-list').waitFor({ timeout: T })
  const deadline = Date.now() + T
  let missing = texts
  while (Date.now() < deadline) {
    const shown = new Set(await textsOf(v.page, '[data-testid="message-list"] [data-testid="message-text"]'))
    missing = texts.filter((t) => !shown.has(t))
    if (missing.length === 0) break
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.deepEqual(missing, [], `${conv}: messages not shown as their exact text`)
}

async function walk(csp) {
  const v = await viewerPage(csp)
  const { page } = v
  try {
    // The chat list: group names and last-message previews.
    await waitForTexts(page, '[data-testid="conversation-name"]', groups.map((g) => g.name), 'group names in the list')
    await assertClean(v, 'the chat list')

    // Every chat, and every group's info panel with its members.
    for (const g of groups) {
      await openChat(v, `g:${g.id}`, g.texts)
      await waitForTexts(page, '[data-testid="system-message"]', [g.name], `g:${g.id} rename notice`)
      await page.getByTestId('group-info').click()
      await page.getByTestId('group-panel').waitFor({ timeout: T })
      await waitForTexts(page, '[data-testid="group-panel-name"]', [g.name], 'group name')
      await waitForTexts(page, '[data-testid="group-notice-text"]', [g.notice], 'group notice')
      await waitForTexts(page, '[data-testid^="member-"]', others.slice(0, 20).map((o) => o.nickname), 'member names')
      await assertClean(v, `group g:${g.id}`)
      await page.getByTestId('group-panel-close').click()
    }
    await waitForTexts(page, '[data-testid="message-file"]', fileNames, 'file names')
    await assertClean(v, 'the files')

    // The 1:1 chat, the other person's profile card (nickname and signature).
    await openChat(v, direct.conv, direct.texts)
    await page.getByTestId('chat-profile').click()
    await waitForTexts(page, '[data-testid="profile-card"]', [others[0].nickname, others[0].signature], 'profile card')
    await assertClean(v, 'the 1:1 chat and profile card')
    await page.keyboard.press('Escape')

    // Search results quote the matching messages.
    await page.getByTestId('conversation-filter').fill('xss')
    await page.getByTestId('search-hit').first().waitFor({ timeout: T })
    await assertClean(v, 'search results')
    await page.getByTestId('conversation-filter').fill('')

    // Contacts: nicknames, signatures, pending requests with their messages.
    await page.goto(base + '/contacts')
    await page.getByTestId('contacts-view').waitFor({ timeout: T })
    const contacts = others.slice(0, 20)
    await waitForTexts(page, '[data-testid^="contact-"]', contacts.map((o) => o.nickname), 'contact names')
    await waitForTexts(page, '[data-testid^="contact-"]', contacts.map((o) => o.signature).filter(Boolean), 'signatures')
    await waitForTexts(page, '[data-testid^="request-"]', others.slice(20).map((o) => o.request), 'request messages')
    await assertClean(v, 'contacts')

    // Administration: the user list and the sticker packs.
    await page.goto(base + '/admin/users')
    await page.getByTestId('admin-users').waitFor({ timeout: T })
    // Twenty users a page: the first page, then the next ones.
    const rows = 'li[data-testid^="admin-user-"]'
    const shownAdmin = new Set()
    for (;;) {
      await page.locator(rows).first().waitFor({ timeout: T })
      for (const t of await textsOf(page, rows)) shownAdmin.add(t)
      await assertClean(v, 'admin users')
      const next = page.getByTestId('admin-next')
      if (!(await next.isVisible()) || (await next.isDisabled())) break
      const first = await textsOf(page, rows).then((t) => t[0])
      await next.click()
      await page.waitForFunction(
        ([sel, was]) => document.querySelector(sel)?.textContent !== was,
        [rows, first],
        { timeout: T },
      )
    }
    const missingAdmin = others.filter((o) => ![...shownAdmin].some((t) => t.includes(o.nickname)))
    assert.deepEqual(missingAdmin.map((o) => o.nickname), [], 'admin user list')
    await page.goto(base + '/admin/stickers')
    await page.getByTestId('admin-stickers').waitFor({ timeout: T })
    await waitForTexts(page, '[data-testid="admin-stickers"]', packNames, 'sticker packs')
    await assertClean(v, 'admin stickers')

    // Controls: markup injected on purpose is caught, so the silence above means something.
    await page.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<img id="xss-control" src="x:" onerror="__xss(\'control\')">'))
    const deadline = Date.now() + T
    while (Date.now() < deadline && v.found.hits.length === 0 && v.found.violations.length === 0) await new Promise((r) => setTimeout(r, 50))
    if (csp) {
      assert.deepEqual(v.found.hits, [], 'the CSP stops the control handler')
      assert.ok(v.found.violations.length > 0, 'the CSP reports the control handler')
    } else {
      assert.deepEqual(v.found.hits, ['control'], 'the control handler runs without the CSP')
    }
    assert.ok((await page.evaluate(domFindings)).length > 0, 'the DOM scan sees the control element')
  } finally {
    await v.ctx.close()
  }
}

test('no payload runs when rendered without the CSP (the rendering alone is safe)', async () => {
  await walk(false)
})

test('no payload even tries to run under the CSP', async () => {
  await walk(true)
})
