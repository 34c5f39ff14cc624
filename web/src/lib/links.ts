// The app's shareable links, carried by QR codes and pasted as text: a profile
// (`https://HOST/u/USERNAME`, opens the profile with "Add contact") and a group invite
// (`https://HOST/join/TOKEN`, joins by the group's join mode). Only links to this server
// are followed.

export type AppLink = { kind: 'user'; username: string; path: string } | { kind: 'group'; token: string; path: string }

export function profileLink(origin: string, username: string): string {
  return `${origin}/u/${encodeURIComponent(username)}`
}

export function groupLink(origin: string, token: string): string {
  return `${origin}/join/${token}`
}

/** What a scanned or pasted text links to, if it is a link of this server (`origin`). */
export function parseLink(text: string, origin: string): AppLink | null {
  let url: URL
  try {
    url = new URL(text.trim(), origin)
  } catch {
    return null
  }
  if (url.origin !== origin) return null
  const user = /^\/u\/([^/]{1,64})\/?$/.exec(url.pathname)
  if (user) {
    let username: string
    try {
      username = decodeURIComponent(user[1]!)
    } catch {
      return null
    }
    return { kind: 'user', username, path: `/u/${encodeURIComponent(username)}` }
  }
  const join = /^\/join\/([0-9a-f]{32})\/?$/.exec(url.pathname)
  if (join) return { kind: 'group', token: join[1]!, path: `/join/${join[1]}` }
  return null
}
