// The shared example frames (tests/fixtures/frames.json, which the Rust tests check against the
// Rust types) against the client: the typed copy that vue-tsc checks is up to date, and the
// client's frame parser accepts every server frame.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseServerFrame } from '@/protocol/types'
import { clientFrames, contents, serverFrames } from './frames.examples'

const shared = JSON.parse(readFileSync(join(__dirname, '../../tests/fixtures/frames.json'), 'utf8')) as {
  client_frames: unknown[]
  server_frames: unknown[]
  contents: unknown[]
}

describe('shared example frames', () => {
  it('the type-checked copy is the shared file (else run `node scripts/frames.mjs`)', () => {
    expect(clientFrames).toEqual(shared.client_frames)
    expect(serverFrames).toEqual(shared.server_frames)
    expect(contents).toEqual(shared.contents)
  })

  it('the client parses every server frame as it is', () => {
    for (const f of shared.server_frames) {
      expect(parseServerFrame(JSON.stringify(f)), JSON.stringify(f)).toEqual(f)
    }
  })

  it('holds every kind the client knows (vue-tsc checks which)', () => {
    expect(new Set(serverFrames.map((f) => f.type)).size).toBeGreaterThanOrEqual(29)
    expect(new Set(clientFrames.map((f) => f.type)).size).toBeGreaterThanOrEqual(16)
  })
})
