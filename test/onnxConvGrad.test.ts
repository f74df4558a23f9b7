// The onnx lowerings of the convolution gradients (src/backend/onnx/lowerConv.ts) at the sizes where they take
// their fast paths — the filter gradient as one Gemm over x's patches (8 input channels or more), the input
// gradient as a Conv of the flipped filter (stride 1) — against the cpu backend: strides, dilations, 'same' and
// 'valid', an unknown batch, an empty batch, and NaN / ±Inf in x.
import { describe, expect, it } from 'vitest';
import { Session, conv2d, gradients, mul, placeholder, sum, constant } from '../src/index.js';
import { rng, values } from './helpers.js';

interface Case { x: number[]; f: number[]; strides: [number, number]; padding: 'same' | 'valid'; dilations: [number, number] }
const CASES: Case[] = [
  { x: [3, 7, 6, 8], f: [3, 3, 8, 5], strides: [1, 1], padding: 'valid', dilations: [1, 1] },
  { x: [2, 7, 6, 9], f: [3, 2, 9, 4], strides: [1, 1], padding: 'same', dilations: [1, 1] },
  { x: [2, 8, 7, 8], f: [3, 3, 8, 3], strides: [2, 2], padding: 'same', dilations: [1, 1] },
  { x: [2, 9, 8, 8], f: [2, 3, 8, 2], strides: [2, 3], padding: 'valid', dilations: [1, 1] },
  { x: [2, 9, 9, 10], f: [3, 2, 10, 3], strides: [1, 1], padding: 'same', dilations: [2, 3] },
  { x: [1, 10, 9, 8], f: [2, 2, 8, 4], strides: [1, 1], padding: 'valid', dilations: [3, 2] },
];
const name = (c: Case) => `x [${c.x}] f [${c.f}] strides [${c.strides}] ${c.padding} dilations [${c.dilations}]`;
const data = (shape: number[], seed: number) => { const r = rng(seed); return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 2 - 1); };

/** y, ∂/∂x and ∂/∂f of Σ w·conv2d(x, f) on one backend, x fed with `batch` rows ([null, …] placeholder). */
async function run(backend: 'cpu' | 'onnx', c: Case, xs: Float32Array, batch: number): Promise<number[][]> {
  const s = await Session.create({ backend });
  const x = placeholder([null, ...c.x.slice(1)]);
  const f = placeholder(c.f);
  const y = conv2d(x, f, { strides: c.strides, padding: c.padding, dilations: c.dilations });
  const yShape = [batch, ...(y.shape.slice(1) as number[])];
  const w = constant(data(yShape, 5), { shape: yShape });
  const [gx, gf] = gradients(sum(mul(y, w)), [x, f]);
  const out = await s.run([y, gx!, gf!], [[x, { shape: [batch, ...c.x.slice(1)], data: xs }], [f, { shape: c.f, data: data(c.f, 2) }]]);
  await s.dispose();
  return out.map(values);
}

function expectSame(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) expect(a, `element ${i}`).toBe(e);
    else expect(Math.abs(a - e), `element ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(e));
  });
}

describe('conv gradients on onnx at their fast paths', () => {
  it.each(CASES.map((c) => [name(c), c] as const))('%s: y, ∂x and ∂f as on cpu', async (_n, c) => {
    const xs = data(c.x, 1);
    const [want, got] = [await run('cpu', c, xs, c.x[0]!), await run('onnx', c, xs, c.x[0]!)];
    got.forEach((v, i) => expectSame(v, want[i]!));
    expect(want[2]!.some((v) => v !== 0)).toBe(true);
  });

  it('an empty batch: ∂f is zeros of the filter shape, ∂x empty', async () => {
    const c = CASES[1]!;
    const got = await run('onnx', c, new Float32Array(0), 0);
    expect(got[1]!.length).toBe(0);
    expect(got[2]!.length).toBe(c.f.reduce((a, b) => a * b, 1));
    expect(got[2]!.every((v) => v === 0)).toBe(true);
  });

  it('NaN and ±Inf in x reach ∂f as on cpu', async () => {
    const c = CASES[0]!;
    const xs = data(c.x, 3);
    xs[10] = NaN; xs[200] = Infinity; xs[333] = -Infinity;
    const [want, got] = [await run('cpu', c, xs, c.x[0]!), await run('onnx', c, xs, c.x[0]!)];
    got.forEach((v, i) => expectSame(v, want[i]!));
    expect(got[2]!.some(Number.isNaN)).toBe(true);
  });
});
