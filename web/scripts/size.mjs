// Prints the gzipped size of the JavaScript the first page load needs (the entry script and its
// modulepreloads in index.html) and fails the build past the budget of 250 KB.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const BUDGET = 250 * 1024
const out = fileURLToPath(new URL('../../assets/', import.meta.url))
const html = readFileSync(out + 'index.html', 'utf8')
const files = [...html.matchAll(/(?:src|href)="\/([^"]+\.js)"/g)].map((m) => m[1])
let total = 0
for (const f of files) {
  const gz = gzipSync(readFileSync(out + f), { level: 9 }).length
  total += gz
  console.log(`${(gz / 1024).toFixed(1).padStart(7)} KB  ${f}`)
}
console.log(`${(total / 1024).toFixed(1).padStart(7)} KB  initial JS, gzipped (budget ${BUDGET / 1024} KB)`)
if (total > BUDGET) {
  console.error('over budget')
  process.exit(1)
}
