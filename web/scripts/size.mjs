// Prints the gzipped size of the JavaScript the first page load needs (the entry script and its
// modulepreloads in index.html) and fails the build past the budget of 250 KB. The build keeps
// files of 1 KiB or more only gzipped (vite.config.ts), which is what a browser receives.
import { existsSync, readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const BUDGET = 250 * 1024
const out = fileURLToPath(new URL('../../assets/', import.meta.url))
/** The file as the server sends it to a browser: its gzip copy, or itself when it is small. */
const sent = (f) => (existsSync(out + f + '.gz') ? readFileSync(out + f + '.gz') : readFileSync(out + f))
const plain = (f) => (existsSync(out + f + '.gz') ? gunzipSync(readFileSync(out + f + '.gz')) : readFileSync(out + f))
const html = plain('index.html').toString('utf8')
const files = [...html.matchAll(/(?:src|href)="\/([^"]+\.js)"/g)].map((m) => m[1])
let total = 0
for (const f of files) {
  const gz = sent(f).length
  total += gz
  console.log(`${(gz / 1024).toFixed(1).padStart(7)} KB  ${f}`)
}
console.log(`${(total / 1024).toFixed(1).padStart(7)} KB  initial JS, gzipped (budget ${BUDGET / 1024} KB)`)
if (total > BUDGET) {
  console.error('over budget')
  process.exit(1)
}
