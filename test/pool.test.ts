// Pooling (issue 12 §1): maxPool, avgPool (2-D, NHWC, TF's 'same' / 'valid'), their gradient ops maxPoolGrad and
// avgPoolGrad, and globalAveragePool. Values against TF.js (cpu) and a plain-JS reference of TF's rules, on every
// backend; gradients against finite differences and TF.js's autodiff; second derivatives; the tie rule; errors.
//
// Tolerances: maxPool (and maxPoolGrad, which only moves dy values) are exact on every backend. avgPool and
// avgPoolGrad are sums in different orders (XNNPACK and onnxruntime multiply by a reciprocal or sum windows
// differently): 1e-6 relative + 1e-6 absolute against the double-precision reference. Finite differences: central,
// step 1e-2 in float32 on inputs whose values are ≥ 0.05 apart (no window changes its argmax), 2e-2 relative +
// 2e-3 absolute (as test/gradients.test.ts).
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, type HostTensor,
  avgPool, constant, fromJSON, globalAveragePool, gradients, maxPool, mul, placeholder, square, sum, symbolicShapes, toIR, toJSON,
} from '../src/index.js';
import { avgPoolGradOp, maxPoolGradOp, poolAxis } from '../src/graph/ops/pool.js';
import { makeNode } from '../src/graph/registry.js';
import { BACKENDS, expectClose, rng, values } from './helpers.js';

type Pad = 'same' | 'valid';
interface Cfg { shape: [number, number, number, number]; size: [number, number]; strides: [number, number]; padding: Pad }

const AVG_RTOL = 1e-6, AVG_ATOL = 1e-6;
const H = 1e-2, FD_RTOL = 2e-2, FD_ATOL = 2e-3;

const CONFIGS: Cfg[] = [
  { shape: [2, 5, 6, 3], size: [2, 2], strides: [2, 2], padding: 'valid' },
  { shape: [2, 5, 6, 3], size: [2, 2], strides: [2, 2], padding: 'same' },
  { shape: [1, 7, 7, 2], size: [3, 3], strides: [2, 2], padding: 'same' },
  { shape: [1, 7, 7, 2], size: [3, 3], strides: [1, 1], padding: 'valid' },
  { shape: [3, 4, 5, 1], size: [2, 3], strides: [1, 2], padding: 'same' },
  { shape: [2, 6, 5, 2], size: [3, 2], strides: [3, 1], padding: 'valid' },
  { shape: [1, 5, 5, 4], size: [1, 1], strides: [2, 2], padding: 'same' },
  { shape: [2, 4, 4, 2], size: [2, 2], strides: [3, 3], padding: 'same' },
  { shape: [1, 6, 6, 1], size: [4, 4], strides: [1, 1], padding: 'same' },
  // 'same' windows larger than the input, strides larger than the window.
  { shape: [2, 3, 4, 2], size: [5, 3], strides: [1, 4], padding: 'same' },
  { shape: [1, 7, 5, 1], size: [2, 1], strides: [3, 2], padding: 'valid' },
];
const label = (c: Cfg) => `x [${c.shape}] size [${c.size}] strides [${c.strides}] ${c.padding}`;
const sizeOf = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** Pairwise distinct values (gaps ≥ 0.05) in a random order: no ties, and finite differences never cross one. */
function distinct(n: number, seed: number): number[] {
  const r = rng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.map((k) => Math.fround((k - n / 2) * 0.07 + 0.01 * r()));
}
const host = (shape: number[], data: ArrayLike<number>): HostTensor => ({ shape, dtype: 'float32', data: Float32Array.from(data) });

// ---------------------------------------------------------------------------------------------------------------
// The reference: TF's pooling rules in plain JS (doubles, rounded to float32 at the end).

interface Win { rows: number[]; cols: number[] }
/** The valid positions of each output window along one axis. */
function axisWindows(n: number, k: number, s: number, padding: Pad): number[][] {
  const a = poolAxis(n, k, s, padding);
  return Array.from({ length: a.out }, (_, o) => Array.from({ length: k }, (_, t) => o * s - a.before + t).filter((p) => p >= 0 && p < n));
}
function windows(c: Cfg): { oh: number; ow: number; at: (i: number, j: number) => Win } {
  const rw = axisWindows(c.shape[1], c.size[0], c.strides[0], c.padding);
  const cw = axisWindows(c.shape[2], c.size[1], c.strides[1], c.padding);
  return { oh: rw.length, ow: cw.length, at: (i, j) => ({ rows: rw[i]!, cols: cw[j]! }) };
}
const idx = (c: Cfg, n: number, h: number, w: number, ch: number) => ((n * c.shape[1] + h) * c.shape[2] + w) * c.shape[3] + ch;

/** maxPool (NaN if the window holds one) or avgPool (mean of the valid elements). */
function refPool(c: Cfg, x: number[], kind: 'max' | 'avg'): number[] {
  const { oh, ow, at } = windows(c);
  const out: number[] = [];
  for (let n = 0; n < c.shape[0]; n++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let ch = 0; ch < c.shape[3]; ch++) {
    const { rows, cols } = at(i, j);
    const vs = rows.flatMap((h) => cols.map((w) => x[idx(c, n, h, w, ch)]!));
    out.push(Math.fround(kind === 'max' ? (vs.some(Number.isNaN) ? NaN : Math.max(...vs)) : vs.reduce((p, v) => p + v, 0) / vs.length));
  }
  return out;
}
/** The gradient rule: each window's dy to its first (row-major) largest key (NaN as +Inf, −Inf as −F32_MAX). */
const key = (v: number) => (Number.isNaN(v) ? Infinity : v === -Infinity ? -3.4028234663852886e38 : v);
function refGrad(c: Cfg, x: number[], dy: number[], kind: 'max' | 'avg'): number[] {
  const { oh, ow, at } = windows(c);
  const dx = new Array<number>(x.length).fill(0);
  let k = 0;
  for (let n = 0; n < c.shape[0]; n++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let ch = 0; ch < c.shape[3]; ch++) {
    const { rows, cols } = at(i, j);
    const pos = rows.flatMap((h) => cols.map((w) => idx(c, n, h, w, ch)));
    const d = dy[k++]!;
    if (kind === 'avg') { for (const p of pos) dx[p]! += d / pos.length; continue; }
    let best = pos[0]!;
    for (const p of pos) if (key(x[p]!) > key(x[best]!)) best = p;
    dx[best]! += d;
  }
  return dx.map(Math.fround);
}
const outShape = (c: Cfg): number[] => { const w = windows(c); return [c.shape[0], w.oh, w.ow, c.shape[3]]; };

// ---------------------------------------------------------------------------------------------------------------

describe('the JS reference agrees with TF.js (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  it.each(CONFIGS.map((c) => [label(c), c] as const))('%s', (_l, c) => {
    const x = distinct(sizeOf(c.shape), 7);
    const xt = tf.tensor4d(x, c.shape);
    const m = tf.maxPool(xt, c.size, c.strides, c.padding), a = tf.avgPool(xt, c.size, c.strides, c.padding);
    expect(m.shape).toEqual(outShape(c));
    expect(Array.from(m.dataSync())).toEqual(refPool(c, x, 'max'));
    expectClose(a.dataSync(), refPool(c, x, 'avg'), AVG_RTOL, AVG_ATOL);
    // TF.js's maxPool gradient (cpu: the first maximum, no ties here) is the reference's.
    const dy = distinct(sizeOf(outShape(c)), 8);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, c.size, c.strides, c.padding), tf.tensor(dy, m.shape))))(xt);
    expect(Array.from(g.dataSync())).toEqual(refGrad(c, x, dy, 'max'));
    tf.dispose([xt, m, a, g]);
  });
});

describe.each(BACKENDS)('pooling on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
    await tf.setBackend('cpu');
  });
  afterAll(() => s.dispose());

  it.each(CONFIGS.map((c) => [label(c), c] as const))('values and gradients: %s', async (_l, c) => {
    const x = distinct(sizeOf(c.shape), 11);
    const dyv = distinct(sizeOf(outShape(c)), 12);
    const xp = placeholder([null, c.shape[1], c.shape[2], c.shape[3]]);
    const dy = placeholder(outShape(c).map((d, i) => (i === 0 ? null : d)));
    const opts = { size: c.size, strides: c.strides, padding: c.padding };
    const m = maxPool(xp, opts), a = avgPool(xp, opts);
    const [gm, ga] = [gradients(sum(mul(m, dy)), xp), gradients(sum(mul(a, dy)), xp)];
    const feeds = [[xp, host(c.shape, x)], [dy, host(outShape(c), dyv)]] as const;
    const [mv, av, gmv, gav] = await s.run([m, a, gm, ga], [...feeds]);
    expect(mv!.shape).toEqual(outShape(c));
    expect(values(mv!)).toEqual(refPool(c, x, 'max'));
    expectClose(av!.data, refPool(c, x, 'avg'), AVG_RTOL, AVG_ATOL);
    // maxPoolGrad only moves dy values: exact where windows do not overlap, else sums in another order.
    if (c.strides[0] >= c.size[0] && c.strides[1] >= c.size[1]) expect(values(gmv!)).toEqual(refGrad(c, x, dyv, 'max'));
    else expectClose(gmv!.data, refGrad(c, x, dyv, 'max'), AVG_RTOL, AVG_ATOL);
    expectClose(gav!.data, refGrad(c, x, dyv, 'avg'), AVG_RTOL, AVG_ATOL);
    // TF.js's avgPool gradient divides by the whole window also where 'same' padding cut it (its forward divides
    // by the valid elements): it is a reference only where no window is cut.
    const cut = c.padding === 'same' && [1, 2].some((ax) => { const p = poolAxis(c.shape[ax]!, c.size[ax - 1]!, c.strides[ax - 1]!, 'same'); return p.before + p.after > 0; });
    if (!cut) {
      const ref = tf.tidy(() => Array.from(tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, c.size, c.strides, c.padding), tf.tensor(dyv, outShape(c)))))(tf.tensor4d(x, c.shape)).dataSync()));
      expectClose(gav!.data, ref, 1e-5, 1e-6);
    }
  });

  it.each(CONFIGS.slice(0, 5).map((c) => [label(c), c] as const))('finite differences: %s', async (_l, c) => {
    const x = distinct(sizeOf(c.shape), 21);
    const w = distinct(sizeOf(outShape(c)), 22).map((v) => v + (v >= 0 ? 0.5 : -0.5));
    const xp = placeholder(c.shape);
    const wt = constant(host(outShape(c), w));
    for (const pool of [maxPool, avgPool]) {
      const y = sum(mul(pool(xp, { size: c.size, strides: c.strides, padding: c.padding }), wt));
      const g = values(await s.run(gradients(y, xp), [[xp, host(c.shape, x)]]));
      const fd: number[] = [];
      for (let k = 0; k < x.length; k++) {
        const plus = [...x], minus = [...x];
        plus[k] = Math.fround(x[k]! + H);
        minus[k] = Math.fround(x[k]! - H);
        const [yp, ym] = [await s.run(y, [[xp, host(c.shape, plus)]]), await s.run(y, [[xp, host(c.shape, minus)]])];
        fd.push((yp.data[0]! - ym.data[0]!) / (plus[k]! - minus[k]!));
      }
      expectClose(g, fd, FD_RTOL, FD_ATOL);
    }
  });

  it.each(CONFIGS.slice(1, 6).map((c) => [label(c), c] as const))('second derivatives (finite differences of the first): %s', async (_l, c) => {
    // f(x) = Σ w·pool(x)² ; g(x) = Σ v·∇f(x), whose gradient runs through maxPoolGrad's and avgPoolGrad's rules.
    const x = distinct(sizeOf(c.shape), 31);
    const w = constant(host(outShape(c), distinct(sizeOf(outShape(c)), 32)));
    const v = constant(host(c.shape, distinct(sizeOf(c.shape), 33)));
    const xp = placeholder(c.shape);
    for (const pool of [maxPool, avgPool]) {
      const f = sum(mul(square(pool(xp, { size: c.size, strides: c.strides, padding: c.padding })), w));
      const gx = sum(mul(gradients(f, xp), v));
      const got = values(await s.run(gradients(gx, xp), [[xp, host(c.shape, x)]]));
      expect(got.some((e) => e !== 0)).toBe(true);
      const fd: number[] = [];
      for (let k = 0; k < x.length; k++) {
        const plus = [...x], minus = [...x];
        plus[k] = Math.fround(x[k]! + H);
        minus[k] = Math.fround(x[k]! - H);
        const [gp, gm] = [await s.run(gx, [[xp, host(c.shape, plus)]]), await s.run(gx, [[xp, host(c.shape, minus)]])];
        fd.push((gp.data[0]! - gm.data[0]!) / (plus[k]! - minus[k]!));
      }
      expectClose(got, fd, FD_RTOL, FD_ATOL);
    }
  });

  it('third derivative of maxPool runs (the gradient of the second-derivative rule is built from public ops)', async () => {
    const c: Cfg = { shape: [1, 4, 4, 1], size: [2, 2], strides: [1, 1], padding: 'same' };
    const x = distinct(16, 41);
    const xp = placeholder(c.shape);
    const y = sum(mul(maxPool(xp, { size: 2, strides: 1, padding: 'same' }), maxPool(xp, { size: 2, strides: 1, padding: 'same' })));
    const g1 = gradients(y, xp);
    const g2 = gradients(sum(mul(g1, g1)), xp);
    const g3 = gradients(sum(mul(g2, g2)), xp);
    const [v2, v3] = await s.run([g2, g3], [[xp, host(c.shape, x)]]);
    expect(v2!.shape).toEqual(c.shape);
    expect(values(v3!).every(Number.isFinite)).toBe(true);
  });

  it("ties: the gradient goes to each window's first maximum (row-major); NaN ranks as +Inf, −Inf as −F32_MAX", async () => {
    const N = NaN, I = Infinity;
    // 2×2 windows of a 4×4 input, stride 2: [1 1; 2 2] (tie of 2s), [3 3; 3 3] (all equal), [N 5; N 5] (NaN),
    // [−I −I; −I −I] (all −Inf); then a 1-channel 3×3 'same' stride 1 input with overlapping ties.
    const x = [1, 1, 3, 3, 2, 2, 3, 3, N, 5, -I, -I, N, 5, -I, -I];
    const xp = placeholder([1, 4, 4, 1]);
    const dy = placeholder([1, 2, 2, 1]);
    const y = maxPool(xp, { size: 2 });
    const [yv, gv] = await s.run([y, gradients(sum(mul(y, dy)), xp)], [[xp, host([1, 4, 4, 1], x)], [dy, host([1, 2, 2, 1], [10, 20, 30, 40])]]);
    expect(values(yv!)).toEqual([2, 3, N, -I]);
    expect(values(gv!)).toEqual([0, 0, 20, 0, 10, 0, 0, 0, 30, 0, 40, 0, 0, 0, 0, 0]);
    const c: Cfg = { shape: [1, 3, 3, 1], size: [2, 2], strides: [1, 1], padding: 'same' };
    const u = [1, 1, 1, 1, 1, 1, 1, 1, 1];
    const up = placeholder(c.shape);
    const g2 = values(await s.run(gradients(sum(maxPool(up, { size: 2, strides: 1, padding: 'same' })), up), [[up, host(c.shape, u)]]));
    expect(g2).toEqual(refGrad(c, u, new Array(9).fill(1), 'max'));
    expect(g2).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    // +Inf before NaN in a window: both rank +Inf, the first wins; −Inf ties with −F32_MAX, the first wins.
    const z = [I, N, -I, -I, 7, 1, -3.4028234663852886e38, -I];
    const zp = placeholder([1, 2, 4, 1]);
    const zg = values(await s.run(gradients(sum(maxPool(zp, { size: 2 })), zp), [[zp, host([1, 2, 4, 1], z)]]));
    expect(zg).toEqual([1, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('ties in the second derivative follow the same rule', async () => {
    const c: Cfg = { shape: [1, 3, 3, 1], size: [2, 2], strides: [1, 1], padding: 'same' };
    const x = [2, 2, 1, 2, 2, 1, 0, 0, 0];
    const xp = placeholder(c.shape);
    const dy = placeholder([1, 3, 3, 1]);
    const vv = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    // d/d(dy) Σ v·maxPoolGrad(x, dy) = v at each window's chosen position.
    const dx = gradients(sum(mul(maxPool(xp, { size: 2, strides: 1, padding: 'same' }), dy)), xp);
    const back = gradients(sum(mul(dx, constant(host(c.shape, vv)))), dy);
    const got = values(await s.run(back, [[xp, host(c.shape, x)], [dy, host([1, 3, 3, 1], new Array(9).fill(1))]]));
    const onehot = (p: number) => refGrad(c, x, Array.from({ length: 9 }, (_, k) => (k === p ? 1 : 0)), 'max');
    expect(got).toEqual(Array.from({ length: 9 }, (_, o) => onehot(o).reduce((acc, d, k) => acc + d * vv[k]!, 0)));
  });

  it('empty batch and channels give empty results and zero gradients; globalAveragePool', async () => {
    const xp = placeholder([null, 4, 4, null]);
    const y = maxPool(xp, { size: 2, padding: 'same' }), a = avgPool(xp, { size: 3, strides: 1, padding: 'same' });
    const g = gradients(sum(y), xp);
    for (const shape of [[0, 4, 4, 2], [2, 4, 4, 0]]) {
      const [yv, av, gv] = await s.run([y, a, g], [[xp, host(shape, [])]]);
      expect(yv!.shape).toEqual([shape[0], 2, 2, shape[3]]);
      expect(av!.shape).toEqual([shape[0], 4, 4, shape[3]]);
      expect(gv!.shape).toEqual(shape);
    }
    const x = distinct(2 * 3 * 4 * 5, 51);
    const gp = placeholder([2, 3, 4, 5]);
    const [m, mk] = await s.run([globalAveragePool(gp), globalAveragePool(gp, { keepDims: true })], [[gp, host([2, 3, 4, 5], x)]]);
    const ref = tf.tidy(() => Array.from(tf.mean(tf.tensor4d(x, [2, 3, 4, 5]), [1, 2]).dataSync()));
    expect(m!.shape).toEqual([2, 5]);
    expect(mk!.shape).toEqual([2, 1, 1, 5]);
    expectClose(m!.data, ref, 1e-6, 1e-6);
    expectClose(mk!.data, ref, 1e-6, 1e-6);
  });

  it('TF.js tensor counts stay flat across runs', async () => {
    const c = CONFIGS[2]!;
    const xp = placeholder(c.shape);
    const y = sum(mul(square(maxPool(xp, { size: 3, strides: 2, padding: 'same' })), avgPool(xp, { size: 3, strides: 2, padding: 'same' })));
    const g = gradients(y, xp);
    const g2 = gradients(sum(mul(g, g)), xp);
    const f = s.function({ inputs: [xp], outputs: [y, g, g2] });
    const feed = host(c.shape, distinct(sizeOf(c.shape), 61));
    await f([feed]);
    const live = s.numTensors();
    for (let k = 0; k < 3; k++) await f([feed]);
    expect(s.numTensors()).toBe(live);
  });

  it("unknown height and width ('same' as SAME_UPPER on onnx): values and first derivatives as with static ones", async () => {
    const c: Cfg = { shape: [2, 5, 7, 3], size: [3, 2], strides: [2, 3], padding: 'same' };
    const x = distinct(sizeOf(c.shape), 81);
    const xp = placeholder([null, null, null, 3]);
    const opts = { size: c.size, strides: c.strides, padding: c.padding };
    const [m, gm, gmax] = await s.run([maxPool(xp, opts), gradients(sum(maxPool(xp, opts)), xp), gradients(sum(avgPool(xp, opts)), xp)], [[xp, host(c.shape, x)]]).then(
      (r) => r, (e: unknown) => { if (backend.startsWith('onnx')) return [undefined, undefined, e]; throw e; });
    if (backend.startsWith('onnx')) {
      // avgPool's gradient on onnx is a ConvTranspose sized at compile time.
      expect(String(gmax)).toMatch(/avgPoolGrad: on onnx the gradient of avgPool needs a static height and width, x is \[\?,\?,\?,3\]/);
      const [mo, go] = await s.run([maxPool(xp, opts), gradients(sum(maxPool(xp, opts)), xp)], [[xp, host(c.shape, x)]]);
      expect(values(mo!)).toEqual(refPool(c, x, 'max'));
      expect(values(go!)).toEqual(refGrad(c, x, new Array(sizeOf(outShape(c))).fill(1), 'max'));
      return;
    }
    expect(values(m as HostTensor)).toEqual(refPool(c, x, 'max'));
    expect(values(gm as HostTensor)).toEqual(refGrad(c, x, new Array(sizeOf(outShape(c))).fill(1), 'max'));
    expectClose((gmax as HostTensor).data, refGrad(c, x, new Array(sizeOf(outShape(c))).fill(1), 'avg'), AVG_RTOL, AVG_ATOL);
  });

  it('a valid window larger than the run-time input is an error naming the op', async () => {
    const xp = placeholder([1, null, 4, 1]);
    const err = await s.run(maxPool(xp, { size: 3 }), [[xp, host([1, 2, 4, 1], new Array(8).fill(1))]]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SymflowError);
    expect(String(err)).toMatch(/maxPool/);
  });
});

describe('shape rules and bad inputs', () => {
  it('output shapes follow TF (same: ceil(n / s); valid: floor((n − k) / s) + 1); unknown dims stay unknown', () => {
    expect(maxPool(placeholder([null, 28, 28, 32]), { size: 2 }).shape).toEqual([null, 14, 14, 32]);
    expect(avgPool(placeholder([2, 7, 9, 3]), { size: [3, 2], strides: [2, 3], padding: 'same' }).shape).toEqual([2, 4, 3, 3]);
    expect(avgPool(placeholder([2, 7, 9, 3]), { size: [3, 2], strides: [2, 3], padding: 'valid' }).shape).toEqual([2, 3, 3, 3]);
    expect(maxPool(placeholder([1, null, 5, 1]), { size: 2, padding: 'same' }).shape).toEqual([1, null, 3, 1]);
    expect(globalAveragePool(placeholder([null, 5, 5, 8])).shape).toEqual([null, 8]);
  });

  const x = placeholder([1, 4, 4, 2]);
  it.each([
    ['rank 3', () => maxPool(placeholder([4, 4, 2]), { size: 2 }), /maxPool: x must be rank 4 \(NHWC.*x is \[4,4,2\]/],
    ['int32 input', () => avgPool(placeholder([1, 4, 4, 1], { dtype: 'int32' }), { size: 2 }), /avgPool: x must be float32, got int32/],
    ['size 0', () => maxPool(x, { size: 0 }), /maxPool: size must be a positive integer.*size \[0,0\]/],
    ['fractional size', () => maxPool(x, { size: 1.5 }), /maxPool: size must be a positive integer/],
    ['strides of one entry', () => avgPool(x, { size: 2, strides: [1] as unknown as [number, number] }), /avgPool: strides must be a positive integer or a pair.*strides \[1\]/],
    ['unknown padding', () => maxPool(x, { size: 2, padding: 'full' as 'same' }), /maxPool: padding must be 'same' or 'valid'/],
    ['valid window larger than the input', () => maxPool(x, { size: [5, 2] }), /maxPool: with padding 'valid' the window height 5 must not exceed the input height 4: x is \[1,4,4,2\]/],
    ['missing options', () => maxPool(x, undefined as never), /maxPool: options \{size, strides, padding\} are required/],
    ['globalAveragePool of rank 2', () => globalAveragePool(placeholder([3, 4])), /globalAveragePool: x must be rank 4/],
    ['maxPoolGrad with a dy of the wrong shape', () => makeNode(maxPoolGradOp, [x, placeholder([1, 3, 2, 2])], { size: [2, 2], strides: [2, 2], padding: 'valid' }),
      /maxPoolGrad: dy must be shaped like the pooling's output \[1,2,2,2\], got \[1,3,2,2\]/],
    ['avgPoolGrad with an int32 dy', () => makeNode(avgPoolGradOp, [placeholder([1, 2, 2, 2], { dtype: 'int32' }), x], { size: [2, 2], strides: [2, 2], padding: 'valid' }),
      /avgPoolGrad: dy must be float32, got int32/],
  ])('%s', (_name, build, msg) => {
    expect(build).toThrow(SymflowError);
    expect(build).toThrow(msg);
  });

  it('symbolicShapes: the batch symbol and channels pass through; dy unifies with the output', () => {
    const xp = placeholder([null, 8, 8, 4]);
    const y = maxPool(xp, { size: 2 });
    const g = gradients(sum(mul(avgPool(y, { size: 3, strides: 1, padding: 'same' }), y)), xp);
    const shapes = symbolicShapes(toIR([y, g], []).ir);
    const batch = shapes.get(xp.id)![0]!;
    expect(typeof batch).toBe('string');
    expect(shapes.get(y.id)).toEqual([batch, 4, 4, 4]);
    expect(shapes.get(g.id)).toEqual([batch, 8, 8, 4]);
  });

  it("the second derivative of maxPool needs a static height and width (an error naming it), the first does not", () => {
    const xp = placeholder([1, null, 6, 1]);
    const g = gradients(sum(square(maxPool(xp, { size: 2 }))), xp);
    expect(g.shape).toEqual([1, null, 6, 1]);
    expect(() => gradients(sum(mul(g, g)), xp)).toThrow(/maxPoolGrad: the second derivative of maxPool needs a static height and width, x is \[1,\?,6,1\]/);
  });

  it("the gradient ops' own x input gets no gradient (piecewise constant, as sign or floor): unconnected unless asked for zeros", () => {
    const xp = placeholder([1, 4, 4, 1]);
    for (const pool of [maxPool, avgPool]) {
      const g1 = gradients(sum(pool(xp, { size: 2 })), xp); // dy is a constant: only x reaches g1
      expect(() => gradients(sum(mul(g1, g1)), xp)).toThrow(/gradients: xs\[0\] .* is not connected/);
      expect(gradients(sum(mul(g1, g1)), xp, { unconnected: 'zero' }).shape).toEqual([1, 4, 4, 1]);
    }
  });

  it('round-trips through JSON', async () => {
    const xp = placeholder([1, 4, 4, 1], { name: 'x' });
    const y = avgPool(maxPool(xp, { size: 2, strides: 1, padding: 'same' }), { size: [2, 1], padding: 'valid' });
    const g = gradients(sum(y), xp);
    const back = fromJSON(toJSON([y, g]));
    const s = await Session.create({ backend: 'cpu' });
    const feed = host([1, 4, 4, 1], distinct(16, 71));
    const want = await s.run([y, g], [[xp, feed]]);
    const got = await s.run(back.outputs, [[back.nodes.get('x')!, feed]]);
    expect(got.map(values)).toEqual(want.map(values));
    await s.dispose();
  });
});
