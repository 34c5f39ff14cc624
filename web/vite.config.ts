/// <reference types="vitest/config" />
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { fileURLToPath, URL } from 'node:url'
import { join, relative } from 'node:path'
import { defineConfig, transformWithOxc, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'

const publicDir = fileURLToPath(new URL('./public', import.meta.url))

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? listFiles(p) : [p]
  })
}

/**
 * The service worker's tested logic (sw/push-logic.ts) as plain script: types stripped and the
 * `export`s dropped, to paste into sw.js. A classic worker (what every browser with Web Push
 * runs) cannot import modules, and the file imports nothing, so pasting is all the bundling it
 * needs.
 */
async function pushLogicScript(): Promise<string> {
  const file = fileURLToPath(new URL('./sw/push-logic.ts', import.meta.url))
  const { code } = await transformWithOxc(readFileSync(file, 'utf8'), file, { lang: 'ts' })
  if (/^\s*import\b/m.test(code)) throw new Error('sw/push-logic.ts must not import anything')
  return code.replace(/^export\s+/gm, '')
}

/**
 * Emits sw.js from sw/sw.js with the list of files to precache (the hashed bundle, index.html
 * and the public files) and a version derived from that list, so every build that changes a
 * file gets a fresh cache.
 */
function serviceWorker(): Plugin {
  return {
    name: 'chinwag-service-worker',
    apply: 'build',
    async generateBundle(_options, bundle) {
      const built = Object.keys(bundle).filter((f) => !f.endsWith('.map'))
      const pub = listFiles(publicDir).map((p) => relative(publicDir, p).split('\\').join('/'))
      const files = ['/', ...[...built, ...pub].filter((f) => f !== 'sw.js').map((f) => `/${f}`)].sort()
      const version = createHash('sha256').update(files.join('\n')).digest('hex').slice(0, 12)
      const template = readFileSync(fileURLToPath(new URL('./sw/sw.js', import.meta.url)), 'utf8')
      const logic = await pushLogicScript()
      this.emitFile({
        type: 'asset',
        fileName: 'sw.js',
        source: template
          .replace('__VERSION__', version)
          .replace('__PRECACHE__', JSON.stringify(files, null, 2))
          .replace('/* __PUSH_LOGIC__ */', () => logic),
      })
    },
  }
}

/**
 * Replaces each text file of 1 KiB or more by its gzip copy (`app.js` becomes `app.js.gz`): the
 * server sends it to every browser as it is and decompresses it for the rare client that accepts
 * no gzip (src/web.rs). One copy instead of three keeps the binary and its packages small.
 */
function precompress(): Plugin {
  let outDir = ''
  return {
    name: 'chinwag-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir.startsWith('/') ? config.build.outDir : join(config.root, config.build.outDir)
    },
    closeBundle() {
      for (const file of listFiles(outDir)) {
        if (!/\.(js|css|html|svg|webmanifest|json)$/.test(file)) continue
        const data = readFileSync(file)
        if (data.length < 1024) continue
        writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }))
        rmSync(file)
      }
    },
  }
}

export default defineConfig({
  plugins: [vue(), serviceWorker(), precompress()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  define: {
    __VUE_OPTIONS_API__: false,
    __VUE_PROD_DEVTOOLS__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  build: {
    outDir: '../assets',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    rolldownOptions: {
      output: {
        // One long-lived vendor chunk (Vue, Pinia, router, i18n) apart from the app's own code.
        advancedChunks: {
          groups: [
            // The QR code encoder and decoder load with the dialogs that use them, not up front.
            { name: 'vendor', test: /node_modules\/(?!(qrcode|jsqr|dijkstrajs|pngjs)\/)/ },
            { name: 'core', test: /\/src\/(protocol|lib)\// },
          ],
        },
      },
    },
  },
  server: {
    // `npm run dev` against a running server: `chinwag serve --listen 127.0.0.1:8080`.
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true, changeOrigin: false },
      '/healthz': 'http://127.0.0.1:8080',
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
  },
})
