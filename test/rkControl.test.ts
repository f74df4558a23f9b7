// Adaptive Runge–Kutta as the good integrators do it (issue 14): the scaled error norm and the scipy, PI and PID
// controllers against a float64 host model of their formulas (accepted step sizes, rejections, error norms), lr
// 'auto' against Hairer's initial step, dtMin/dtMax, and the evaluation counts — stages nothing reads skipped,
// FSAL reuse with the same batch and not with a new one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compile, constant, type Controller, dropout, mul, placeholder, rungeKutta, Session, square, sum, tableaux, variable,
  type ButcherTableau,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, values } from './helpers.js';

// ---- the flow dp/dt = −a⊙p (L = ½Σ a·p²), solved on the host in float64 ----
const A = [1, 4, 16, 0.25];
const P0 = [1, -2, 0.5, 3];
const rms = (xs: readonly number[]) => Math.sqrt(xs.reduce((s, x) => s + x * x, 0) / xs.length);

/** One RK step of size h on the linear flow: the new point and the error estimate lr·Σ(b − b*)k. */
function hostStep(t: ButcherTableau, y: readonly number[], h: number): { y1: number[]; err: number[] } {
  const ks: number[][] = [];
  for (let r = 0; r < t.b.length; r++) {
    const yi = y.map((v, i) => v + h * t.a[r]!.reduce((s, c, j) => s + c * ks[j]![i]!, 0));
    ks.push(yi.map((v, i) => -A[i]! * v));
  }
  const comb = (w: readonly number[]) => y.map((_, i) => h * w.reduce((s, c, j) => s + c * ks[j]![i]!, 0));
  const y1 = y.map((v, i) => v + comb(t.b)[i]!);
  return { y1, err: comb(t.b.map((b, j) => b - t.bStar![j]!)) };
}

interface HostOpts { rtol: number; atol: number; controller: 'scipy' | 'pi' | 'pid'; beta1?: number; beta2?: number; p?: number; i?: number; d?: number; dtMax?: number }

/** The controllers' formulas, in float64: for each accepted step its size, rejections and error norm. */
function hostRun(t: ButcherTableau, h0: number, o: HostOpts, steps: number) {
  const q = Math.min(t.order, t.errorOrder!);
  let y = [...P0];
  let h = h0;
  let qold = 1e-4;
  let prev = 1;
  let prevPrev = 1;
  const out: { h: number; rejections: number; err: number }[] = [];
  for (let n = 0; n < steps; n++) {
    let rejections = 0;
    for (;;) {
      const { y1, err } = hostStep(t, y, h);
      const en = rms(err.map((e, i) => e / (o.atol + o.rtol * Math.max(Math.abs(y[i]!), Math.abs(y1[i]!)))));
      let factor: number;
      const accept = en <= 1;
      if (o.controller === 'scipy') {
        const raw = 0.9 * en ** (-1 / (q + 1));
        factor = accept ? (en === 0 ? 10 : Math.min(10, raw)) : Math.max(0.2, raw);
        if (accept && rejections > 0) factor = Math.min(1, factor);
      } else if (o.controller === 'pi') {
        const q11 = en ** o.beta1!;
        factor = accept ? Math.min(10, Math.max(0.2, (0.9 * qold ** o.beta2!) / q11)) : Math.max(0.2, 0.9 / q11);
        if (accept) qold = Math.max(en, 1e-4);
      } else {
        const k = q + 1;
        const [c1, c2, c3] = [(o.p! + o.i! + o.d!) / k, -(o.p! + 2 * o.d!) / k, o.d! / k];
        const raw = 0.9 * (1 / en) ** c1 * prev ** c2 * prevPrev ** c3;
        factor = Math.min(10, Math.max(accept ? 1 : 0.2, raw));
        if (accept) [prevPrev, prev] = [prev, 1 / en];
      }
      const used = h;
      h = Math.min(o.dtMax ?? Infinity, h * factor);
      if (accept) {
        out.push({ h: used, rejections, err: en });
        y = y1;
        break;
      }
      rejections++;
    }
  }
  return { out, y };
}

function problem(init = P0) {
  const p = variable(init, { name: 'p' });
  const loss = mul(0.5, sum(mul(constant(A), square(p))));
  return { p, loss };
}

const CONTROLLERS: { name: string; controller: Controller; host: HostOpts; tableau: ButcherTableau; h0: number }[] = [
  { name: "'scipy' on dormandPrince", controller: 'scipy', host: { rtol: 1e-3, atol: 1e-6, controller: 'scipy' }, tableau: tableaux.dormandPrince, h0: 0.8 },
  { name: "'scipy' on bogackiShampine", controller: 'scipy', host: { rtol: 1e-3, atol: 1e-6, controller: 'scipy' }, tableau: tableaux.bogackiShampine, h0: 0.5 },
  { name: 'PI (OrdinaryDiffEq defaults β₁ = 7/50, β₂ = 2/25) on dormandPrince', controller: { kind: 'pi' }, host: { rtol: 1e-3, atol: 1e-6, controller: 'pi', beta1: 7 / 50, beta2: 2 / 25 }, tableau: tableaux.dormandPrince, h0: 0.8 },
  { name: 'PI β₁ = 0.3, β₂ = 0.1 on bogackiShampine', controller: { kind: 'pi', beta1: 0.3, beta2: 0.1 }, host: { rtol: 1e-3, atol: 1e-6, controller: 'pi', beta1: 0.3, beta2: 0.1 }, tableau: tableaux.bogackiShampine, h0: 0.5 },
  { name: 'PID (0.2, 0.4, 0.1) on dormandPrince', controller: { kind: 'pid', pcoeff: 0.2, icoeff: 0.4, dcoeff: 0.1 }, host: { rtol: 1e-3, atol: 1e-6, controller: 'pid', p: 0.2, i: 0.4, d: 0.1 }, tableau: tableaux.dormandPrince, h0: 0.8 },
  { name: 'PID defaults (an I controller that never shrinks after an accept)', controller: { kind: 'pid' }, host: { rtol: 1e-3, atol: 1e-6, controller: 'pid', p: 0, i: 1, d: 0 }, tableau: tableaux.dormandPrince, h0: 0.8 },
];

describe.each(BACKENDS)('adaptive Runge–Kutta control on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(CONTROLLERS)('$name: step sizes (1e-4), rejections and error norms of 15 steps = the float64 model', async ({ controller, host, tableau, h0 }) => {
    const { p, loss } = problem();
    const train = compile(rungeKutta({ tableau, lr: h0, adaptive: { rtol: host.rtol, atol: host.atol, controller } }), s, { loss, inputs: [] });
    const expected = hostRun(tableau, h0, host, 15);
    expect(expected.out[0]!.rejections, 'the first step is too long: the reject path is exercised').toBeGreaterThanOrEqual(1);
    for (const e of expected.out) {
      const r = await train.step([]);
      expect(r.rejections).toBe(e.rejections);
      // float32 states: the error estimate is a small difference of stage points rounded to float32 (≈1e-4
      // relative in ε at these tolerances), and ε^(−β) carries a fraction of that into the step size.
      expectClose([r.lr!], [e.h], 1e-4, 0);
      expectClose([r.errorNorm!], [e.err], 1e-3, 1e-7);
    }
    expectClose(values(await s.getValue(p)), expected.y, 1e-4, 1e-6);
  });

  it('dtMax caps the step; a step rejected at dtMin is an error that says so and changes nothing', async () => {
    const { loss } = problem();
    const capped = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.05, adaptive: { rtol: 1e-2, atol: 1e-3, dtMax: 0.12 } }), s, { loss, inputs: [] });
    const lrs: number[] = [];
    for (let i = 0; i < 6; i++) lrs.push((await capped.step([])).lr!);
    expect(Math.max(...lrs)).toBeCloseTo(0.12, 6);
    expect(lrs.every((h) => h <= Math.fround(0.12))).toBe(true);
    const hostCapped = hostRun(tableaux.dormandPrince, 0.05, { rtol: 1e-2, atol: 1e-3, controller: 'scipy', dtMax: 0.12 }, 6).out.map((o) => o.h);
    expectClose(lrs, hostCapped, 1e-4, 0);
    const q = problem();
    const floor = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { rtol: 1e-9, atol: 1e-12, dtMin: 0.1 } }), s, { loss: q.loss, inputs: [] });
    const before = await Promise.all([q.p, ...floor.stateVariables].map(async (v) => bits(await s.getValue(v))));
    await expect(floor.step([])).rejects.toThrow(/rejected at the smallest step size dtMin = 0.1/);
    expect(await Promise.all([q.p, ...floor.stateVariables].map(async (v) => bits(await s.getValue(v))))).toEqual(before);
  });

  it("lr 'auto' takes Hairer's initial step (scipy's select_initial_step) on the first step, with one more evaluation", async () => {
    const rtol = 1e-3;
    const atol = 1e-6;
    for (const tableau of [tableaux.dormandPrince, tableaux.bogackiShampine]) {
      const { loss } = problem();
      const train = compile(rungeKutta({ tableau, lr: 'auto', adaptive: { rtol, atol } }), s, { loss, inputs: [] });
      // The formula, worked on the host: scale = atol + rtol·|p₀|; f₀ = −a·p₀.
      const scale = P0.map((v) => atol + rtol * Math.abs(v));
      const f0 = P0.map((v, i) => -A[i]! * v);
      const d0 = rms(P0.map((v, i) => v / scale[i]!));
      const d1 = rms(f0.map((v, i) => v / scale[i]!));
      const h0 = 0.01 * (d0 / d1);
      const f1 = P0.map((v, i) => -A[i]! * (v + h0 * f0[i]!));
      const d2 = rms(f1.map((v, i) => (v - f0[i]!) / scale[i]!)) / h0;
      const q = Math.min(tableau.order, tableau.errorOrder!);
      const h = Math.min(100 * h0, (0.01 / Math.max(d1, d2)) ** (1 / (q + 1)));
      const r = await train.step([]);
      expect(r.rejections).toBe(0);
      expectClose([r.lr!], [h], 1e-5, 0);
      // Its evaluations: the stages, plus the one at p₀ + h₀f₀.
      expect(r.gradientEvaluations).toBe(tableau.b.length + 1);
      // Later steps go on from the controller (no second selection).
      const r2 = await train.step([]);
      expect(r2.gradientEvaluations).toBe(tableau.b.length - 1);
    }
    expect(() => rungeKutta({ tableau: tableaux.rk4, lr: 'auto' })).toThrow(/lr 'auto' needs adaptive mode/);
  });

  it('counts evaluations: RK45 without error control 6 per step; adaptive 7 with a new batch, 6 per accepted step with FSAL', async () => {
    // L = ½Σ k·p², with the batch k a multiplier the loss really reads.
    const p = variable(P0, { name: 'p' });
    const k = placeholder([4], { name: 'k' });
    const fed = mul(0.5, sum(mul(k, square(p))));
    const plain = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.01 }), s, { loss: fed, params: [p], inputs: [k] });
    expect(plain.runsPerStep).toBe(6);
    expect((await plain.step([A])).gradientEvaluations).toBe(6);
    const adaptive = () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.05, adaptive: { rtol: 1e-3, atol: 1e-6 } });
    // A new batch each step (host arrays are uploaded afresh): the first stage is evaluated every time.
    const fresh = compile(adaptive(), s, { loss: fed, params: [p], inputs: [k] });
    for (let i = 0; i < 3; i++) {
      const r = await fresh.step([[...A]]);
      expect(r.rejections).toBe(0);
      expect(r.gradientEvaluations).toBe(7);
      expect(r.runs).toBe(7);
    }
    // The same DeviceValue: the last stage (at the new point) is the next step's first.
    const q = variable(P0, { name: 'q' });
    const same = compile(adaptive(), s, { loss: mul(0.5, sum(mul(k, square(q)))), params: [q], inputs: [k] });
    const batch = s.upload(k, A);
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) counts.push((await same.step([batch])).gradientEvaluations!);
    expect(counts).toEqual([7, 6, 6, 6]);
    // A write of the parameters between steps invalidates the carried gradient: 7 again, then 6.
    await s.setValue(q, await s.getValue(q).then((v) => Array.from(v.data)));
    expect((await same.step([batch])).gradientEvaluations).toBe(7);
    expect((await same.step([batch])).gradientEvaluations).toBe(6);
    batch.dispose();
    // Declared full batch: fresh host arrays, reused anyway.
    const r2 = variable(P0, { name: 'r2' });
    const declared = compile(rungeKutta({ tableau: tableaux.bogackiShampine, lr: 0.005, adaptive: { rtol: 1e-3, atol: 1e-6 }, fullBatch: true }), s, { loss: mul(0.5, sum(mul(k, square(r2)))), params: [r2], inputs: [k] });
    const rk23: number[] = [];
    for (let i = 0; i < 3; i++) rk23.push((await declared.step([[...A]])).gradientEvaluations!);
    expect(rk23).toEqual([4, 3, 3]);
  });

  it('FSAL changes no value: carried and recomputed first stages give bit-identical trajectories', async () => {
    const k = placeholder([4], { name: 'k' });
    const run = async (reuse: boolean) => {
      const p = variable(P0, { name: 'p' });
      const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.3, adaptive: { rtol: 1e-4, atol: 1e-7 } }), s, { loss: mul(0.5, sum(mul(k, square(p)))), params: [p], inputs: [k] });
      const batch = s.upload(k, A);
      const evals: number[] = [];
      const lrs: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await train.step([reuse ? batch : [...A]]);
        evals.push(r.gradientEvaluations!);
        lrs.push(r.lr!);
      }
      batch.dispose();
      return { p: bits(await s.getValue(p)), evals, lrs };
    };
    const carried = await run(true);
    const recomputed = await run(false);
    expect(carried.p).toEqual(recomputed.p);
    expect(carried.lrs).toEqual(recomputed.lrs);
    expect(carried.evals.reduce((a, b) => a + b)).toBeLessThan(recomputed.evals.reduce((a, b) => a + b));
  });

  it('a write of any variable the loss reads (not only the parameters) between steps makes FSAL recompute', async () => {
    const p = variable(P0, { name: 'p' });
    const scaleVar = variable(A, { name: 'scale', trainable: false });
    const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.05, adaptive: { rtol: 1e-3, atol: 1e-6 } }), s, { loss: mul(0.5, sum(mul(scaleVar, square(p)))), params: [p], inputs: [] });
    expect((await train.step([])).gradientEvaluations).toBe(7);
    expect((await train.step([])).gradientEvaluations).toBe(6);
    await s.setValue(scaleVar, A.map((a) => 2 * a));
    const r = await train.step([]);
    // Recomputed: 7 for the first try (6 with a carried first stage), 6 per retry.
    expect(r.gradientEvaluations).toBe(7 + 6 * r.rejections!);
  });

  it('no FSAL reuse when the loss draws random values (the next step draws new ones)', async () => {
    const p = variable(P0, { name: 'p' });
    const loss = mul(0.5, sum(mul(constant(A), square(dropout(p, 0.1, { seed: 3 })))));
    const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.01, adaptive: { rtol: 1e-2, atol: 1e-4 } }), s, { loss, inputs: [] });
    const evals: number[] = [];
    for (let i = 0; i < 3; i++) evals.push((await train.step([])).gradientEvaluations!);
    expect(evals.every((e) => e >= 7)).toBe(true);
  });
});
