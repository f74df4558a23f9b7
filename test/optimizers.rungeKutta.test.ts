import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  add, type ButcherTableau, compile, constant, div, heun, mul, rungeKutta, Session, square, sum, SymflowError, tableaux,
  variable,
} from '../src/index.js';
import { flowError } from './flow.js';
import { BACKENDS, expectClose, values } from './helpers.js';

/** L = 0.5·Σ a·p² with a = [1, 4]: gradient flow dp/dt = −a·p. */
function quadratic(init: number[] = [1, -2]) {
  const p = variable(init, { name: 'p' });
  const loss = mul(0.5, sum(mul(constant([1, 4]), square(p))));
  return { p, loss };
}

/** One explicit RK step of dp/dt = f(p), componentwise, in float64. */
function referenceStep(t: ButcherTableau, p: number[], f: (y: number, c: number) => number, h: number): number[] {
  return p.map((p0, c) => {
    const ks: number[] = [];
    t.b.forEach((_, i) => {
      const y = p0 + h * t.a[i]!.reduce((acc, aij, j) => acc + aij * ks[j]!, 0);
      ks.push(f(y, c));
    });
    return p0 + h * t.b.reduce((acc, bi, i) => acc + bi * ks[i]!, 0);
  });
}

const STAGES: Record<keyof typeof tableaux, number> = {
  euler: 1, midpoint: 2, heun: 2, ralston: 2, rk3: 3, rk4: 4, bogackiShampine: 4, dormandPrince: 7, tsit5: 7, cashKarp: 6, dop853: 12,
};
/** Stages a non-adaptive step evaluates: a last stage of weight 0 that nothing reads is skipped (RK45: 6 of 7). */
const EVALUATED: Record<keyof typeof tableaux, number> = { ...STAGES, bogackiShampine: 3, dormandPrince: 6, tsit5: 6 };


/**
 * Order tests. Step sizes are chosen so that (a) the error at h/2 is still well above the float32 round-off floor
 * (~1e-8 relative after averaging), which bounds how small h can go, especially for the 4th/5th-order methods, and
 * (b) h is small enough to be in the asymptotic range. For odd-order methods (euler, rk3, bogackiShampine) and for
 * dormandPrince, a spectrum symmetric about 0 (aᵢ = ±1) cancels the next error term (odd in h·a), which brings the
 * asymptotic range up to step sizes float32 can resolve. Even-order methods use pure decay (aᵢ = 1).
 */
const ORDER_CASES: { name: keyof typeof tableaux; spectrum: 'decay' | 'symmetric'; h: number; T: number; order: number }[] = [
  { name: 'euler', spectrum: 'symmetric', h: 0.25, T: 1, order: 1 },
  { name: 'midpoint', spectrum: 'decay', h: 0.125, T: 2, order: 2 },
  { name: 'heun', spectrum: 'decay', h: 0.125, T: 2, order: 2 },
  { name: 'ralston', spectrum: 'decay', h: 0.125, T: 2, order: 2 },
  { name: 'rk3', spectrum: 'symmetric', h: 0.25, T: 1, order: 3 },
  { name: 'rk4', spectrum: 'decay', h: 0.25, T: 2, order: 4 },
  { name: 'bogackiShampine', spectrum: 'symmetric', h: 0.25, T: 1, order: 3 },
  { name: 'dormandPrince', spectrum: 'symmetric', h: 0.4, T: 1.2, order: 5 },
];

describe.each(BACKENDS)('Runge–Kutta gradient flow on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it("heun is the seed's two-run method: p̃ = p − lr·g(p); p ← p̃ − lr/2·(g(p̃) − g(p))", async () => {
    const { p, loss } = quadratic();
    const train = compile(heun({ lr: 0.25 }), s, { loss, inputs: [] });
    expect(train.runsPerStep).toBe(2);
    const r = await train.step([]);
    expect(r.runs).toBe(2);
    expect(r.loss).toBe(8.5);
    expect(r.lr).toBe(0.25);
    // g(p) = [1, −8]; p̃ = [0.75, 0]; g(p̃) = [0.75, 0]; p = [0.75 + 0.125·0.25, 0 − 0.125·8] = [0.78125, −1].
    expect(values(await s.getValue(p))).toEqual([0.78125, -1]);
  });

  it('a schedule lr(t) is read from the step counter, the same for every run of a step', async () => {
    const { p, loss } = quadratic();
    const train = compile(heun({ lr: (t) => div(0.25, add(1, t)) }), s, { loss, inputs: [] });
    const r1 = await train.step([]);
    expect(r1.lr).toBe(0.25);
    expect(values(await s.getValue(p))).toEqual([0.78125, -1]);
    const r2 = await train.step([]);
    expect(r2.lr).toBe(0.125);
    expectClose(values(await s.getValue(p)), referenceStep(tableaux.heun, [0.78125, -1], (y, c) => -[1, 4][c]! * y, 0.125));
  });

  it.each(Object.keys(tableaux) as (keyof typeof tableaux)[])('%s: runsPerStep = the stages it needs, and two steps on a nonlinear loss match a float64 reference (rtol 1e-5)', async (name) => {
    const tableau = tableaux[name];
    expect(tableau.b.length).toBe(STAGES[name]);
    // L = 0.5·Σ a·p² + 0.25·Σ p⁴, g = a·p + p³: nonlinear, so methods of equal order (midpoint, heun, ralston) differ.
    const { p, loss: quad } = quadratic();
    const loss = add(quad, mul(0.25, sum(square(square(p)))));
    const a = [1, 4];
    const flow = (y: number, c: number) => -(a[c]! * y + y ** 3);
    const train = compile(rungeKutta({ tableau, lr: 0.05 }), s, { loss, inputs: [] });
    expect(train.runsPerStep).toBe(EVALUATED[name]);
    const r = await train.step([]);
    expect(r.runs).toBe(EVALUATED[name]);
    expect(r.gradientEvaluations).toBe(EVALUATED[name]);
    expect(r.loss).toBe(8.5 + 0.25 * (1 + 16));
    expect(r.lr).toBeCloseTo(0.05, 7);
    expect(r.accepted).toBeUndefined();
    expectClose(values(await s.getValue(p)), referenceStep(tableau, [1, -2], flow, 0.05), 1e-5, 1e-6);
    await train.step([]);
    const ref = referenceStep(tableau, referenceStep(tableau, [1, -2], flow, 0.05), flow, 0.05);
    expectClose(values(await s.getValue(p)), ref, 1e-5, 1e-6);
  });

  it.each(ORDER_CASES)('$name converges with order $order (±0.25)', async ({ name, spectrum, h, T, order }) => {
    const tableau = tableaux[name];
    const coarse = await flowError(s, tableau, spectrum, h, T);
    const fine = await flowError(s, tableau, spectrum, h / 2, T);
    const measured = Math.log2(coarse / fine);
    expect(measured, `${name} on ${backend}: err(${h}) = ${coarse}, err(${h / 2}) = ${fine}`).toBeGreaterThan(order - 0.25);
    expect(measured, `${name} on ${backend}: err(${h}) = ${coarse}, err(${h / 2}) = ${fine}`).toBeLessThan(order + 0.25);
  });

  it.each([
    ['dormandPrince', tableaux.dormandPrince],
    ['bogackiShampine', tableaux.bogackiShampine],
  ] as const)('adaptive %s: rejects the first too-long step, then grows lr while the loss decreases', async (_, tableau) => {
    const tol = 1e-4;
    const { p, loss } = quadratic();
    const train = compile(rungeKutta({ tableau, lr: 0.5, adaptive: { tol } }), s, { loss, inputs: [] });
    const stages = tableau.b.length;
    const first = await train.step([]);
    expect(first.accepted).toBe(true);
    expect(first.rejections).toBeGreaterThanOrEqual(1);
    // A retry re-evaluates every stage but the first (∇L(p₀) is stored; the parameters did not move).
    expect(first.runs).toBe(stages + (stages - 1) * first.rejections!);
    expect(first.gradientEvaluations).toBe(first.runs);
    // The error norm is scaled: tol is {atol: tol, rtol: 0}, so ≤ 1 means RMS(err) ≤ tol.
    expect(first.errorNorm).toBeLessThanOrEqual(1);
    expect(first.lr).toBeLessThan(0.5);
    expect(first.loss).toBe(8.5);
    const results = [first];
    for (let i = 0; i < 5; i++) results.push(await train.step([]));
    for (const [k, r] of results.entries()) {
      expect(r.accepted).toBe(true);
      expect(r.errorNorm).toBeLessThanOrEqual(1);
      // FSAL (both tableaux): the last stage, at the new point, is the next step's first — no inputs, same batch.
      expect(r.runs).toBe((k === 0 ? 1 : 0) + (stages - 1) * (r.rejections! + 1));
    }
    // lr (the accepted step's size) grows from step to step once steps are accepted without rejection.
    for (let i = 2; i < results.length; i++) {
      expect(results[i]!.rejections).toBe(0);
      expect(results[i]!.lr!).toBeGreaterThan(results[i - 1]!.lr!);
    }
    for (let i = 1; i < results.length; i++) expect(results[i]!.loss).toBeLessThan(results[i - 1]!.loss);
    const pv = values(await s.getValue(p));
    const finalLoss = 0.5 * (pv[0]! ** 2 + 4 * pv[1]! ** 2);
    expect(finalLoss).toBeLessThan(results[results.length - 1]!.loss);
    // The iterations counter counts accepted steps only; lr lives in a state variable.
    const counter = train.stateVariables.find((v) => /\/iterations(_\d+)?$/.test(v.name))!;
    expect(values(await s.getValue(counter))).toEqual([results.length]);
  });

  it('adaptive: a step rejected more than maxRejections times fails and changes nothing', async () => {
    const { p, loss } = quadratic();
    const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-4, maxRejections: 0 } }), s, { loss, inputs: [] });
    const everything = [...train.params, ...train.stateVariables];
    const before = await Promise.all(everything.map(async (v) => values(await s.getValue(v))));
    await expect(train.step([])).rejects.toThrow(/rejected 1 times/);
    expect(await Promise.all(everything.map(async (v) => values(await s.getValue(v))))).toEqual(before);
    // The first call uploads the graph's constants into the session's cache; a second failure must leave the count flat.
    const count = s.numTensors();
    await expect(train.step([])).rejects.toThrow(/rejected 1 times/);
    expect(s.numTensors()).toBe(count);
    expect(await Promise.all(everything.map(async (v) => values(await s.getValue(v))))).toEqual(before);
    expect(values(await s.getValue(p))).toEqual([1, -2]);
  });
});

describe.each(BACKENDS)('fused Runge–Kutta (every stage in one run) on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  // Bits of a float32 array, to compare results exactly (NaN-safe, −0 ≠ +0).
  const bits = (xs: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(xs).buffer));

  it('heun fused: one run, the same exact step on the quadratic', async () => {
    const { p, loss } = quadratic();
    const train = compile(heun({ lr: 0.25, fused: true }), s, { loss, inputs: [] });
    expect(train.runsPerStep).toBe(1);
    // No stage gradient is stored: the state is the step counter only.
    expect(train.stateVariables.map((v) => v.name)).toEqual([expect.stringMatching(/iterations/)]);
    const r = await train.step([]);
    expect(r.runs).toBe(1);
    expect(r.loss).toBe(8.5);
    expect(values(await s.getValue(p))).toEqual([0.78125, -1]);
  });

  it.each(Object.keys(tableaux) as (keyof typeof tableaux)[])('%s fused gives the s-run step’s values, bit for bit, over three steps', async (name) => {
    const tableau = tableaux[name];
    const results: { losses: number[]; p: number[] }[] = [];
    for (const fused of [false, true]) {
      const { p, loss: quad } = quadratic([0.7, -1.3]);
      const loss = add(quad, mul(0.25, sum(square(square(p)))));
      const train = compile(rungeKutta({ tableau, lr: 0.05, fused }), s, { loss, inputs: [] });
      expect(train.runsPerStep).toBe(fused ? 1 : EVALUATED[name]);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) losses.push((await train.step([])).loss);
      results.push({ losses, p: values(await s.getValue(p)) });
    }
    expect(bits(results[1]!.losses)).toEqual(bits(results[0]!.losses));
    expect(bits(results[1]!.p)).toEqual(bits(results[0]!.p));
    // And the step moved the parameters (the comparison is not vacuous).
    expect(results[0]!.p).not.toEqual([0.7, -1.3].map(Math.fround));
  });

  it('adaptive dormandPrince fused: the same rejections, lr and parameters as the 7-run step', async () => {
    const runs: { rejections: number[]; lrs: number[]; runs: number[]; p: number[] }[] = [];
    for (const fused of [false, true]) {
      const { p, loss } = quadratic();
      const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-4 }, fused }), s, { loss, inputs: [] });
      const rs = [];
      for (let i = 0; i < 4; i++) rs.push(await train.step([]));
      runs.push({ rejections: rs.map((r) => r.rejections!), lrs: rs.map((r) => r.lr!), runs: rs.map((r) => r.runs), p: values(await s.getValue(p)) });
    }
    const [multi, one] = runs as [typeof runs[0], typeof runs[0]];
    expect(multi.rejections[0]).toBeGreaterThanOrEqual(1);
    expect(one.rejections).toEqual(multi.rejections);
    expect(bits(one.lrs)).toEqual(bits(multi.lrs));
    expect(bits(one.p)).toEqual(bits(multi.p));
    expect(one.runs).toEqual(multi.rejections.map((k) => k + 1));
    // The 7-run step: the first stage once per step (and not at all when FSAL carries it), 6 per try.
    expect(multi.runs).toEqual(multi.rejections.map((k, i) => (i === 0 ? 1 : 0) + 6 * (k + 1)));
  });
});

describe('Runge–Kutta settings', () => {
  it('adaptive mode needs an embedded tableau', () => {
    expect(() => rungeKutta({ tableau: tableaux.rk4, lr: 0.1, adaptive: { tol: 1e-4 } })).toThrow(SymflowError);
    expect(() => rungeKutta({ tableau: tableaux.rk4, lr: 0.1, adaptive: { tol: 1e-4 } })).toThrow(/embedded tableau/);
  });

  it('adaptive mode needs a positive numeric lr and a positive tol', () => {
    expect(() => rungeKutta({ tableau: tableaux.dormandPrince, lr: (t) => t, adaptive: { tol: 1e-4 } })).toThrow(/positive number as lr/);
    expect(() => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0, adaptive: { tol: 1e-4 } })).toThrow(/positive number as lr/);
    expect(() => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.1, adaptive: { tol: 0 } })).toThrow(/adaptive\.tol/);
  });

  it('refuses weights b that do not sum to 1, naming the tableau', () => {
    const t: ButcherTableau = { name: 'lopsided', a: [[], [1]], b: [0.5, 0.6], order: 2 };
    expect(() => rungeKutta({ tableau: t, lr: 0.1 })).toThrow(SymflowError);
    expect(() => rungeKutta({ tableau: t, lr: 0.1 })).toThrow(/tableau 'lopsided'.*sum to 1/);
  });

  it('refuses a non-explicit tableau (row i with more than i entries)', () => {
    const implicit: ButcherTableau = { name: 'implicitMidpoint', a: [[0.5]], b: [1], order: 2 };
    expect(() => rungeKutta({ tableau: implicit, lr: 0.1 })).toThrow(/tableau 'implicitMidpoint'.*row 0.*explicit/);
    const rowTwo: ButcherTableau = { name: 'wide', a: [[], [0.5, 0.5]], b: [0.5, 0.5], order: 2 };
    expect(() => rungeKutta({ tableau: rowTwo, lr: 0.1 })).toThrow(/row 1/);
  });

  it('refuses a mismatched a and b, and bStar that does not sum to 1', () => {
    expect(() => rungeKutta({ tableau: { name: 'short', a: [[]], b: [0.5, 0.5], order: 1 }, lr: 0.1 })).toThrow(/a has 1 rows/);
    const t: ButcherTableau = { ...tableaux.bogackiShampine, name: 'badStar', bStar: [0.5, 0.5, 0.5, 0] };
    expect(() => rungeKutta({ tableau: t, lr: 0.1 })).toThrow(/bStar/);
  });

  it.each([-1, NaN])('lr = %s is refused, naming lr', (lr) => {
    expect(() => rungeKutta({ tableau: tableaux.heun, lr })).toThrow(/lr must be a finite number/);
    expect(() => heun({ lr })).toThrow(SymflowError);
  });
});
