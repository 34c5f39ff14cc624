// The pure parts of group calls through the SFU: the layer each tile asks for, the view sent to
// the server, the grid for every size of call at desktop and phone sizes, and the speaker view's
// choice of who is large.
import { describe, expect, it } from 'vitest'
import { layerFor, sameView, viewOf } from '@/calls/layers'
import { gridShape, mainSpeaker, NARROWEST, WIDEST } from '@/calls/layout'

describe('layer from the rendered tile size', () => {
  it.each([
    [0, 'camera', 'low'],
    [160, 'camera', 'low'],
    [319, 'camera', 'low'],
    [320, 'camera', 'medium'],
    [719, 'camera', 'medium'],
    [720, 'camera', 'high'],
    [1920, 'camera', 'high'],
    [100, 'screen', 'high'],
    [1000, 'screen', 'high'],
  ] as const)('%i px wide %s → %s', (width, source, layer) => {
    expect(layerFor(width, source)).toBe(layer)
  })
})

describe('the view sent to the server', () => {
  it('lists each shown video once, at the largest layer drawn, in a stable order', () => {
    const v = viewOf([
      { user: 9, source: 'camera', width: 200 },
      { user: 7, source: 'screen', width: 150 },
      { user: 7, source: 'camera', width: 800 },
      { user: 9, source: 'camera', width: 400 },
    ])
    expect(v).toEqual([
      { user: 7, source: 'camera', layer: 'high' },
      { user: 7, source: 'screen', layer: 'high' },
      { user: 9, source: 'camera', layer: 'medium' },
    ])
  })

  it('leaves out tiles not drawn (zero width) and audio', () => {
    expect(viewOf([{ user: 3, source: 'camera', width: 0 }, { user: 4, source: 'audio', width: 300 }])).toEqual([])
  })

  it('compares views', () => {
    const a = viewOf([{ user: 3, source: 'camera', width: 300 }])
    expect(sameView(a, viewOf([{ user: 3, source: 'camera', width: 310 }]))).toBe(true)
    expect(sameView(a, viewOf([{ user: 3, source: 'camera', width: 330 }]))).toBe(false)
    expect(sameView(a, [])).toBe(false)
  })
})

describe('the grid for 2..16 tiles', () => {
  // The group call's stage: the window less the title above and the buttons below.
  const stages = {
    desktop: { width: 1280 - 16, height: 800 - 244 },
    phone: { width: 390 - 16, height: 844 - 244 },
    'phone landscape': { width: 844 - 16, height: 390 - 160 },
  }
  for (const [name, stage] of Object.entries(stages)) {
    it(`${name}: every tile fits, none is a strip, and they use the room`, () => {
      for (let n = 2; n <= 16; n++) {
        const g = gridShape(n, stage.width, stage.height)
        const what = `${n} tiles: ${JSON.stringify(g)}`
        expect(g.cols * g.rows, what).toBeGreaterThanOrEqual(n)
        // No empty row.
        expect(g.cols * (g.rows - 1), what).toBeLessThan(n)
        expect(g.cols * g.width + 8 * (g.cols - 1), what).toBeLessThanOrEqual(stage.width)
        expect(g.rows * g.height + 8 * (g.rows - 1), what).toBeLessThanOrEqual(stage.height)
        const aspect = g.width / g.height
        expect(aspect, what).toBeLessThanOrEqual(WIDEST + 0.02)
        expect(aspect, what).toBeGreaterThanOrEqual(NARROWEST - 0.02)
        // The tiles together cover a fair part of the stage (the rest is gaps and centring).
        expect((n * g.width * g.height) / (stage.width * stage.height), what).toBeGreaterThan(0.3)
      }
    })
  }

  it('puts 4 people on a desktop in a 2 × 2 grid of equal tiles (no thin strip on top)', () => {
    expect(gridShape(4, 1264, 556)).toMatchObject({ cols: 2, rows: 2 })
    expect(gridShape(3, 1264, 556)).toMatchObject({ cols: 3, rows: 1 })
    expect(gridShape(9, 1264, 556)).toMatchObject({ cols: 5, rows: 2 })
    expect(gridShape(16, 1264, 556)).toMatchObject({ cols: 6, rows: 3 })
  })

  it('stacks two people on an upright phone', () => {
    expect(gridShape(2, 374, 600)).toMatchObject({ cols: 1, rows: 2 })
  })

  it('copes with nothing to lay out', () => {
    expect(gridShape(0, 100, 100).width).toBe(0)
    expect(gridShape(3, 0, 0).width).toBe(0)
  })
})

describe('who the speaker view shows large', () => {
  const base = { me: 1, present: [2, 3, 4], sharing: [] as number[], speakers: [] as number[], previous: null }
  it('a screen share first', () => {
    expect(mainSpeaker({ ...base, sharing: [3], speakers: [2] })).toBe(3)
  })
  it('else the loudest other speaker', () => {
    expect(mainSpeaker({ ...base, speakers: [1, 4, 2] })).toBe(4)
  })
  it('keeps the last one through silence, while they are here', () => {
    expect(mainSpeaker({ ...base, previous: 3 })).toBe(3)
    expect(mainSpeaker({ ...base, previous: 9 })).toBe(2)
  })
  it('ignores speakers and sharers who left', () => {
    expect(mainSpeaker({ ...base, speakers: [9], sharing: [8] })).toBe(2)
    expect(mainSpeaker({ ...base, present: [] })).toBe(null)
  })
})
