// Activations and scans (issue 12 §1): erf, softplus, gelu (exact and tanh), silu, logSumExp, cumsum, clipByValue.
// Values against TF.js cpu and closed-form (PyTorch / Keras) definitions, every backend against the others within
// the tolerances docs/semantics.md states, logSumExp's stability, second derivatives, bad input, and TF.js tensor
// counts. The edge-value rows are in conformance.test.ts, the gradient rows in gradients.test.ts.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as sf from '../src/index.js';
import { fromJSON, gradients, placeholder, Session, SymflowError, type HostTensor, type Tensor, toJSON } from '../src/index.js';
import { BACKENDS, bits, expectClose, rng, values } from './helpers.js';

const F = Math.fround;

/**
 * erf in double precision, written independently of the cpu kernel's: Maclaurin series below |x| = 2.5 (≥ 13
 * digits), 1 − erfc(|x|) by erfc's continued fraction above (≥ 13 digits from x = 2.5 with 200 terms), ±1 past 10.
 */
function erfRef(x: number): number {
  if (x === 0 || Number.isNaN(x)) return x;
  const a = Math.abs(x);
  if (a >= 10) return Math.sign(x);
  if (a < 2.5) {
    let term = x, total = x;
    for (let n = 1; n < 100; n++) {
      term *= (-x * x) / n;
      total += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * total;
  }
  // erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated from the tail.
  let k = a;
  for (let n = 200; n >= 1; n--) k = a + n / 2 / k;
  return Math.sign(x) * (1 - Math.exp(-a * a) / (Math.sqrt(Math.PI) * k));
}
const sigmoidRef = (x: number) => 1 / (1 + Math.exp(-x));
const softplusRef = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
const geluRef = (x: number) => 0.5 * x * (1 + erfRef(x / Math.SQRT2));
const geluTanhRef = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const siluRef = (x: number) => x * sigmoidRef(x);

/** Distance in float32 ulps (same-sign finite values). */
function ulps(a: number, b: number): number {
  const i = new Int32Array(Float32Array.of(a, b).buffer);
  return Math.abs(i[0]! - i[1]!);
}

/** A dense grid over [−12, 12], tiny magnitudes of both signs, and a few large ones (float32 values). */
const GRID = [
  ...Array.from({ length: 4801 }, (_, k) => -12 + k * 0.005),
  ...Array.from({ length: 40 }, (_, k) => 10 ** (-k / 2)),
  ...Array.from({ length: 40 }, (_, k) => -(10 ** (-k / 2))),
  -30, -20, -16, -14, -13.9, 13.9, 14, 16, 20, 30, 88, 100, 1e4,
].map(F);

type Fn = 'erf' | 'softplus' | 'gelu' | 'geluTanh' | 'silu';
const build: Record<Fn, (x: Tensor) => Tensor> = {
  erf: sf.erf, softplus: sf.softplus, gelu: (x) => sf.gelu(x), geluTanh: (x) => sf.gelu(x, { approximate: 'tanh' }), silu: sf.silu,
};
const refs: Record<Fn, (x: number) => number> = { erf: erfRef, softplus: softplusRef, gelu: geluRef, geluTanh: geluTanhRef, silu: siluRef };

const results = new Map<string, Record<Fn, Float32Array>>();

describe.each(BACKENDS)('activations on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
    const x = placeholder([null]);
    const fns = Object.keys(build) as Fn[];
    const got = await s.run(fns.map((k) => build[k](x)), [[x, GRID]]);
    results.set(backend, Object.fromEntries(fns.map((k, i) => [k, got[i]!.data as Float32Array])) as Record<Fn, Float32Array>);
  });
  afterAll(() => s.dispose());

  it('erf is within 1 ulp of erf in double precision (abs 6e-8 near ±1)', () => {
    const got = results.get(backend)!.erf;
    GRID.forEach((x, i) => {
      const want = F(erfRef(x));
      expect(ulps(got[i]!, want) <= 1 || Math.abs(got[i]! - want) <= 6e-8, `erf(${x}) = ${got[i]}, expected ${want}`).toBe(true);
    });
  });

  it("softplus is TF's stable form: within 1 ulp of log1p(eˣ) except just below its threshold (relative 5e-7)", () => {
    const got = results.get(backend)!.softplus;
    GRID.forEach((x, i) => {
      const want = softplusRef(x);
      expect(Math.abs(got[i]! - want) <= 5e-7 * want || ulps(got[i]!, F(want)) <= 1, `softplus(${x}) = ${got[i]}, expected ${want}`).toBe(true);
    });
    // Very negative x: eˣ, not log(1 + eˣ) = 0 in float32; large x: x itself, no overflow.
    const at = (x: number) => got[GRID.indexOf(F(x))]!;
    expect(at(-30)).toBe(F(Math.exp(F(-30))));
    expect(at(100)).toBe(100);
    expect(at(1e4)).toBe(1e4);
  });

  it.each(['gelu', 'geluTanh', 'silu'] as const)('%s matches its closed form (abs 3e-7·max(1, |x|), rel 1e-5)', (fn) => {
    const got = results.get(backend)![fn];
    GRID.forEach((x, i) => {
      const want = refs[fn](x);
      const ok = Math.abs(got[i]! - want) <= 3e-7 * Math.max(1, Math.abs(x)) + 1e-5 * Math.abs(want);
      expect(ok, `${fn}(${x}) = ${got[i]}, expected ${want}`).toBe(true);
    });
  });

  it('gelu at PyTorch values: gelu(1) = 0.8413447, tanh form 0.8411920; gelu(−1) = −0.1586553', async () => {
    const x = placeholder([2]);
    const [e, t] = await s.run([sf.gelu(x), sf.gelu(x, { approximate: 'tanh' })], [[x, [1, -1]]]);
    expectClose(values(e!), [0.8413447, -0.1586553], 2e-7, 1e-7);
    expectClose(values(t!), [0.8411920, -0.1588080], 2e-7, 1e-7);
  });

  it('values match TF.js cpu: tf.erf (its A&S polynomial: abs 2e-7), tf.softplus, tf.logSumExp, tf.cumsum and tf.clipByValue', async () => {
    const r = rng(12);
    const data = Array.from({ length: 24 }, () => F(-4 + 8 * r()));
    const x = placeholder([4, 6]);
    const xi = placeholder([4, 6], { dtype: 'int32' });
    const ints = Int32Array.from(data, (v) => Math.round(v * 1e8));
    const outs = [sf.erf(x), sf.softplus(x), sf.logSumExp(x, 1), sf.logSumExp(x, [0, 1], { keepDims: true }), sf.cumsum(x, 1), sf.cumsum(x, 0, { exclusive: true, reverse: true }),
      sf.clipByValue(x, -1.5, 2), sf.cumsum(xi, 1, { reverse: true }), sf.clipByValue(xi, -1e8, 2e8)];
    const got = await s.run(outs, [[x, { shape: [4, 6], data: Float32Array.from(data) }], [xi, { shape: [4, 6], data: ints }]]);
    // After the run: a TF.js session makes its own backend active when it runs.
    await tf.setBackend('cpu');
    const t = tf.tensor(data, [4, 6]);
    const ti = tf.tensor(ints, [4, 6], 'int32');
    const want = [tf.erf(t), tf.softplus(t), tf.logSumExp(t, 1), tf.logSumExp(t, [0, 1], true), tf.cumsum(t, 1), tf.cumsum(t, 0, true, true), tf.clipByValue(t, -1.5, 2),
      tf.cumsum(ti, 1, false, true), tf.clipByValue(ti, -1e8, 2e8)];
    const w = want.map((v) => ({ shape: v.shape, dtype: v.dtype, data: v.dataSync() }) as HostTensor);
    tf.dispose([t, ti, ...want]);
    got.forEach((g, k) => expect(g.shape, `output ${k}`).toEqual(w[k]!.shape));
    expectClose(values(got[0]!), values(w[0]!), 0, 2e-7);
    expectClose(values(got[1]!), values(w[1]!), 2e-7, 0);
    expectClose(values(got[2]!), values(w[2]!), 1e-6, 1e-6);
    expectClose(values(got[3]!), values(w[3]!), 1e-6, 1e-6);
    // Running sums in order and clipping are exact: bit for bit.
    for (const k of [4, 5, 6, 7, 8]) expect(bits(got[k]!), `output ${k}`).toEqual(bits(w[k]!));
  });

  it('logSumExp is stable: ±1e30, 88..90 (exp overflows unshifted), −1000, rows of −Inf; its gradient is softmax and finite', async () => {
    const x = placeholder([5, 3]);
    const data = [1e30, 1e30, -1e30, 88, 89, 90, -1000, -1000, -1001, -Infinity, -Infinity, -Infinity, -Infinity, 0, -Infinity];
    const y = sf.logSumExp(x, -1);
    const g = gradients(sf.sum(y), x);
    const [v, dg] = await s.run([y, g], [[x, { shape: [5, 3], data: Float32Array.from(data) }]]);
    const lse = (row: number[]) => { const m = Math.max(...row); return m + Math.log(row.reduce((p, a) => p + Math.exp(a - m), 0)); };
    const want = [1e30, lse([88, 89, 90]), lse([-1000, -1000, -1001]), -Infinity, 0];
    const lv = values(v!);
    expect(lv[3]).toBe(-Infinity);
    expectClose([...lv.slice(0, 3), lv[4]!], [want[0]!, want[1]!, want[2]!, want[4]!].map(F), 1e-6, 0);
    // Softmax rows; the all −Inf row's gradient is 0/0 (NaN, as TF); a −Inf element gets 0.
    const d = values(dg!);
    expectClose(d.slice(0, 9), [0.5, 0.5, 0, ...[88, 89, 90].map((a) => Math.exp(a - want[1]!)), ...[-1000, -1000, -1001].map((a) => Math.exp(a - want[2]!))], 1e-5, 1e-6);
    expect(d.slice(9, 12).every(Number.isNaN)).toBe(true);
    expect(d.slice(12)).toEqual([0, 1, 0]);
  });

  it('second derivatives: gelu tanh, logSumExp (Hessian · w), clipByValue (d²/dx² clip(x)² = 2 inside, 0 outside)', async () => {
    const H = 1e-2;
    const pts = [-1.7, -0.6, 0.3, 1.1, 2.2];
    const x = placeholder([5]);
    const checks: [string, Tensor, ((v: number) => number) | undefined][] = [
      ['gelu tanh', sf.gelu(x, { approximate: 'tanh' }), undefined],
      ['logSumExp', sf.mul(sf.logSumExp(x), 3), undefined],
      ['clipByValue', sf.square(sf.clipByValue(x, -1, 1.5)), (v) => (v >= -1 && v <= 1.5 ? 2 : 0)],
    ];
    const w = sf.constant([0.7, -1.2, 0.9, 1.4, -0.6]);
    for (const [name, y, exact] of checks) {
      const g1 = gradients(sf.sum(y), x);
      // For a non-elementwise y, d/dx Σ w·g1 is the Hessian applied to w: compare with finite differences of Σ w·g1.
      const hw = gradients(sf.sum(sf.mul(w, g1)), x);
      const got = values(await s.run(hw, [[x, pts]]));
      const fd: number[] = [];
      for (let j = 0; j < pts.length; j++) {
        const p = [...pts], m = [...pts];
        p[j] = F(pts[j]! + H);
        m[j] = F(pts[j]! - H);
        const gp = values(await s.run(sf.sum(sf.mul(w, g1)), [[x, p]])), gm = values(await s.run(sf.sum(sf.mul(w, g1)), [[x, m]]));
        fd.push((gp[0]! - gm[0]!) / (p[j]! - m[j]!));
      }
      expectClose(got, fd, 2e-2, 2e-3);
      if (exact) expectClose(got, pts.map((v, j) => exact(v) * [0.7, -1.2, 0.9, 1.4, -0.6][j]!), 1e-6, 1e-6);
      expect(got.every(Number.isFinite), name).toBe(true);
    }
  });

  it("clipByValue's gradient is 1 on the boundaries, as tf.clipByValue's; tensor bounds get it only where x was clipped", async () => {
    const x = placeholder([6]);
    const lo = placeholder([6]);
    const pts = [-1, 1.5, -2, 3, 0.25, NaN];
    const g = gradients(sf.sum(sf.clipByValue(x, -1, 1.5)), x);
    const [got] = await s.run([g], [[x, pts]]);
    await tf.setBackend('cpu');
    const want = tf.tidy(() => Array.from(tf.grad((t: tf.Tensor) => tf.sum(tf.clipByValue(t, -1, 1.5)))(tf.tensor(pts.slice(0, 5))).dataSync()));
    expect(values(got!).slice(0, 5)).toEqual(want);
    expect(want).toEqual([1, 1, 0, 0, 1]);
    // NaN: no gradient (maximum's mask x ≥ lo is false; TF's own rule would pass it).
    expect(values(got!)[5]).toBe(0);
    const [gx, glo] = gradients(sf.sum(sf.clipByValue(x, lo, 1.5)), [x, lo]);
    const [vx, vlo] = await s.run([gx!, glo!], [[x, [-1, -3, 0, 2, 1.5, 0.5]], [lo, [-1, -1, -1, -1, -1, 1]]]);
    expect(values(vx!)).toEqual([1, 0, 1, 0, 1, 0]);
    expect(values(vlo!)).toEqual([0, 1, 0, 0, 0, 1]);
  });

  it('cumsum: the gradient is the reverse running sum, and a second cumsum gradient flows', async () => {
    const x = placeholder([2, 4]);
    const w = sf.constant([[1, 2, 3, 4], [-1, 0.5, 0, 2]]);
    const g = gradients(sf.sum(sf.mul(w, sf.cumsum(x, 1, { exclusive: true }))), x);
    const v = values(await s.run(g, [[x, [[0, 0, 0, 0], [0, 0, 0, 0]]]]));
    // d/dx_j Σ_i w_i Σ_{k<i} x_k = Σ_{i>j} w_i.
    expect(v).toEqual([9, 7, 4, 0, 2.5, 2, 2, 0]);
    // Through a product, the second derivative of Σ cumsum(x)² is cumsumᵀ · cumsum applied to w.
    const y = sf.sum(sf.square(sf.cumsum(x, 1)));
    const hw = gradients(sf.sum(sf.mul(w, gradients(y, x))), x);
    const got = values(await s.run(hw, [[x, [[1, 2, 3, 4], [0, 0, 0, 0]]]]));
    // H = 2·Cᵀ C with C lower triangular of ones: (Cᵀ C)_{jk} = n − max(j, k).
    const hess = (ws: number[]) => ws.map((_, j) => 2 * ws.reduce((acc, wk, k) => acc + (ws.length - Math.max(j, k)) * wk, 0));
    expect(got).toEqual([...hess([1, 2, 3, 4]), ...hess([-1, 0.5, 0, 2])]);
  });

  it('every backend agrees: erf and softplus within 1 ulp, gelu and silu within 2.5e-7·max(1, |x|) (the tolerances of docs/semantics.md)', () => {
    const mine = results.get(backend)!;
    for (const other of BACKENDS) {
      const theirs = results.get(other);
      if (theirs === undefined || other === backend) continue;
      for (const fn of Object.keys(build) as Fn[]) {
        GRID.forEach((x, i) => {
          const a = mine[fn][i]!, b = theirs[fn][i]!;
          const ok = fn === 'erf' || fn === 'softplus' ? ulps(a, b) <= 1 || a === b : Math.abs(a - b) <= 2.5e-7 * Math.max(1, Math.abs(x));
          expect(ok, `${fn}(${x}): ${a} on ${backend}, ${b} on ${other}`).toBe(true);
        });
      }
    }
  });

  it('TF.js tensor counts stay flat over repeated runs and gradients', async () => {
    const x = placeholder([null, 5]);
    const y = sf.add(sf.add(sf.sum(sf.gelu(x)), sf.sum(sf.silu(x))), sf.add(sf.sum(sf.logSumExp(x, 1)), sf.sum(sf.mul(sf.cumsum(sf.softplus(sf.clipByValue(x, -1, 1)), 1, { reverse: true }), sf.erf(x)))));
    const f = s.function({ inputs: [x], outputs: [y, ...gradients(y, [x])] });
    const feed = { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, k) => k / 4 - 2) };
    const first = await f([feed]);
    const live = s.numTensors();
    for (let k = 0; k < 3; k++) {
      const again = await f([feed]);
      expect(again.map(bits)).toEqual(first.map(bits));
    }
    expect(s.numTensors()).toBe(live);
  });
});

describe('bad input', () => {
  const xf = placeholder([2, 3], { name: 'xf' });
  const xi = placeholder([2, 3], { dtype: 'int32', name: 'xi' });
  const xb = placeholder([2, 3], { dtype: 'bool', name: 'xb' });
  const cases: [string, () => unknown, RegExp][] = [
    ['erf of int32', () => sf.erf(xi), /erf: x must be float32, got int32 \(xi\)/],
    ['softplus of bool', () => sf.softplus(xb), /softplus: x must be float32, got bool \(xb\)/],
    ['gelu of int32', () => sf.gelu(xi), /gelu: x must be float32, got int32/],
    ['gelu approximate', () => sf.gelu(xf, { approximate: 'erf' as 'none' }), /gelu: approximate must be 'none' or 'tanh', got "erf"/],
    ['silu of int32', () => sf.silu(xi), /silu: x must be float32, got int32/],
    ['logSumExp of int32', () => sf.logSumExp(xi, 1), /logSumExp: x must be float32, got int32/],
    ['logSumExp axis out of range', () => sf.logSumExp(xf, 2), /logSumExp: axes 2 is out of range for rank 2/],
    ['logSumExp repeated axes', () => sf.logSumExp(xf, [1, -1]), /logSumExp: axes \[1,-1\] repeat an axis/],
    ['logSumExp keepDims', () => sf.logSumExp(xf, 1, { keepDims: 1 as unknown as boolean }), /logSumExp: keepDims must be a boolean, got 1/],
    ['cumsum of bool', () => sf.cumsum(xb, 1), /cumsum: x must be float32 or int32, got bool \(xb\)/],
    ['cumsum of a scalar', () => sf.cumsum(sf.constant(1), 0), /cumsum: x must have rank ≥ 1, got a scalar/],
    ['cumsum axis out of range', () => sf.cumsum(xf, 2), /cumsum: axis 2 is out of range for rank 2/],
    ['cumsum axis not an integer', () => sf.cumsum(xf, 0.5), /cumsum: axis 0.5 is out of range for rank 2/],
    ['cumsum exclusive', () => sf.cumsum(xf, 0, { exclusive: 'yes' as unknown as boolean }), /cumsum: exclusive must be a boolean, got "yes"/],
    ['clipByValue of bool', () => sf.clipByValue(xb, 0, 1), /clipByValue: x must be numeric, got bool \(xb\)/],
    ['clipByValue lo > hi', () => sf.clipByValue(xf, 2, 1), /clipByValue: lo \(2\) must be ≤ hi \(1\)/],
    ['clipByValue NaN bound', () => sf.clipByValue(xf, NaN, 1), /clipByValue: lo and hi must not be NaN/],
    ['clipByValue int32 with a fraction', () => sf.clipByValue(xi, 0.5, 3), /clipByValue: lo is 0.5, not an integer, for an int32 op/],
    ['clipByValue bound of another dtype', () => sf.clipByValue(xf, sf.constant(Int32Array.of(0)), 1), /maximum: dtypes differ: a is float32, b is int32/],
    ['clipByValue bounds that do not broadcast', () => sf.clipByValue(xf, sf.constant([0, 0]), 1), /maximum.*\[2,3\].*\[2\]/],
  ];
  it.each(cases)('%s', (_name, bad, message) => {
    let err: unknown;
    try {
      bad();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SymflowError);
    expect((err as Error).message).toMatch(message);
  });

  it('fromJSON checks cumsum attributes; erf, softplus and cumsum round-trip', async () => {
    const x = placeholder([2, 3], { name: 'rx' });
    const y = sf.add(sf.cumsum(sf.erf(x), 1, { reverse: true }), sf.softplus(x));
    const json = toJSON(y);
    const back = fromJSON(JSON.parse(JSON.stringify(json)));
    const s = await Session.create({ backend: 'cpu' });
    const feed = [[-1, 0, 1], [2, -3, 0.5]];
    const [a] = await s.run([y], [[x, feed]]);
    const [b] = await s.run([back.outputs[0]!], [[back.nodes.get('rx')!, feed]]);
    expect(bits(b!)).toEqual(bits(a!));
    await s.dispose();
    const bad = JSON.parse(JSON.stringify(json)) as { nodes: { op: string; attrs?: Record<string, unknown> }[] };
    const node = bad.nodes.find((n) => n.op === 'cumsum')!;
    node.attrs = { ...node.attrs, exclusive: 'no' };
    expect(() => fromJSON(bad as never)).toThrow(/attribute 'exclusive' of op 'cumsum' must be of kind bool/);
    node.attrs = { ...node.attrs, exclusive: false, axis: 5 };
    expect(() => fromJSON(bad as never)).toThrow(/cumsum: axis/);
  });
});
