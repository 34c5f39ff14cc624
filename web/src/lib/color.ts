// A stable avatar colour per user, from a small palette that reads in light and dark themes.
const palette = ['#e57373', '#f06292', '#ba68c8', '#7986cb', '#4fc3f7', '#4db6ac', '#81c784', '#ffb74d', '#a1887f', '#90a4ae']

export function avatarColor(seed: number | string): string {
  const s = String(seed)
  let h = 0
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0
  return palette[h % palette.length]!
}

/** The first grapheme of a name, upper-cased (works for CJK and emoji names). */
export function initialOf(name: string): string {
  const s = name.trim()
  if (!s) return '?'
  const first = [...s][0]!
  return first.toUpperCase()
}
