import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * The scipy reference step sequences (test/refs/scipyRk.json, written by refs/scipy_refs.py): their shape, and a
 * float64 host replay of scipy's RK23/RK45 step-size controller written from the formulas the file documents
 * (own tableaux, RMS error norm, elementary controller, select_initial_step), matched to scipy's recorded steps to
 * 1e-9 relative. This pins down the semantics a symflow stepper with scipy-style rtol/atol control and lr: 'auto'
 * must reproduce; nothing here runs a session.
 */

interface Attempt { h: number; errorNorm: number }
interface Step extends Attempt { t: number; y: number[]; nfev: number; rejections: number; rejected: Attempt[]; hNext: number }
interface InitialStep { h: number; d0: number; d1: number; d2: number; h0: number; h1: number }
interface Case {
  problem: string;
  method: 'RK23' | 'RK45';
  rtol: number;
  atol: number;
  firstStep: number | null;
  selectInitialStep: InitialStep;
  init: { h: number; nfev: number };
  float32: { maxRelDeviationH: number; sameRejections: boolean; reproducible: boolean };
  steps: Step[];
}
interface Problem { name: string; loss: string; y0: number[]; a?: number[]; b?: number; x?: number[][]; label?: number[] }
interface MethodRecord { order: number; errorEstimatorOrder: number; nStages: number; C: number[]; A: number[][]; B: number[]; E: number[] }
interface Refs {
  description: string;
  scipy: string;
  dtype: string;
  conventions: Record<string, unknown>;
  controller: { safety: number; minFactor: number; maxFactor: number };
  methods: Record<'RK23' | 'RK45', MethodRecord>;
  problems: Problem[];
  cases: Case[];
}

const refs = JSON.parse(readFileSync(new URL('./scipyRk.json', import.meta.url), 'utf8')) as Refs;

/**
 * scipy's pairs as written in the papers (Bogacki–Shampine 1989, Dormand–Prince 1980): the stage rows a, the
 * weights b of the propagated solution and e = b − b̂ over the s stages plus the FSAL stage f(y_new).
 */
const METHODS = {
  RK23: {
    order: 3, errorOrder: 2, c: [0, 1 / 2, 3 / 4],
    a: [[], [1 / 2], [0, 3 / 4]],
    b: [2 / 9, 1 / 3, 4 / 9],
    e: [5 / 72, -1 / 12, -1 / 9, 1 / 8],
  },
  RK45: {
    order: 5, errorOrder: 4, c: [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1],
    a: [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9], [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
      [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]],
    b: [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    e: [-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40],
  },
} as const;
type Method = (typeof METHODS)[keyof typeof METHODS];

type Vec = number[];
const axpy = (y: Vec, terms: readonly (readonly [number, Vec])[]): Vec => y.map((v, i) => terms.reduce((s, [c, k]) => s + c * k[i]!, v));
const rms = (x: Vec): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);

/** −∇L for each problem, from the coefficients in the file (the formulas in its `loss` fields). */
function flowOf(p: Problem): (y: Vec) => Vec {
  if (p.name === 'quadratic') return (y) => y.map((v, i) => -p.a![i]! * v);
  if (p.name === 'rosenbrock') {
    const b = p.b!;
    return ([u, v]) => {
      const r = v! - u! * u!;
      return [2 * (1 - u!) + 4 * b * u! * r, -2 * b * r];
    };
  }
  if (p.name === 'logistic') {
    const x = p.x!, label = p.label!;
    return (w) => {
      const g = w.map(() => 0);
      x.forEach((row, n) => {
        const m = label[n]! * row.reduce((s, v, j) => s + v * w[j]!, 0);
        const sig = 1 / (1 + Math.exp(m)); // sigmoid(−m)
        row.forEach((v, j) => { g[j]! += (label[n]! * v * sig) / x.length; });
      });
      return g;
    };
  }
  throw new Error(`unknown problem ${p.name}`);
}

/** Hairer–Nørsett–Wanner II.4's starting step, as scipy's select_initial_step computes it (t_bound, max_step not binding). */
function selectInitialStep(f: (y: Vec) => Vec, y0: Vec, errorOrder: number, rtol: number, atol: number): InitialStep {
  const f0 = f(y0);
  const scale = y0.map((v) => atol + Math.abs(v) * rtol);
  const d0 = rms(y0.map((v, i) => v / scale[i]!));
  const d1 = rms(f0.map((v, i) => v / scale[i]!));
  const h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
  const f1 = f(axpy(y0, [[h0, f0]]));
  const d2 = rms(f1.map((v, i) => (v - f0[i]!) / scale[i]!)) / h0;
  const h1 = d1 <= 1e-15 && d2 <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : (0.01 / Math.max(d1, d2)) ** (1 / (errorOrder + 1));
  return { h: Math.min(100 * h0, h1), d0, d1, d2, h0, h1 };
}

/**
 * scipy's RungeKutta._step_impl, one accepted step: attempts h, computes the s stages and the FSAL stage f(y_new),
 * err = h·Σ eⱼkⱼ, errorNorm = RMS(err / (atol + max(|y|, |y_new|)·rtol)); accepts when errorNorm < 1.
 */
function makeStepper(m: Method, f: (y: Vec) => Vec, rtol: number, atol: number, y0: Vec, init: { h: number; nfev: number }) {
  const { safety, minFactor, maxFactor } = refs.controller;
  const exponent = -1 / (m.errorOrder + 1);
  // init.nfev counts f(y0), and select_initial_step's evaluation when it chose the first step.
  let t = 0, y = y0, fy = f(y0), hAbs = init.h, nfev = init.nfev;
  return (): Step => {
    const rejected: Attempt[] = [];
    for (;;) {
      // scipy takes the step t_new − t, not h itself (they differ by rounding).
      const tNew = t + hAbs;
      const h = tNew - t;
      const k: Vec[] = [fy];
      for (let i = 1; i < m.b.length; i++) k.push(f(axpy(y, m.a[i]!.map((aij, j) => [h * aij, k[j]!] as const))));
      const yNew = axpy(y, m.b.map((bj, j) => [h * bj, k[j]!] as const));
      const fNew = f(yNew);
      nfev += m.b.length;
      k.push(fNew);
      const err = m.e.reduce((acc, ej, j) => acc.map((v, i) => v + ej * k[j]![i]!), y.map(() => 0)).map((v) => v * h);
      const errorNorm = rms(err.map((v, i) => v / (atol + Math.max(Math.abs(y[i]!), Math.abs(yNew[i]!)) * rtol)));
      if (errorNorm < 1) {
        let factor = errorNorm === 0 ? maxFactor : Math.min(maxFactor, safety * errorNorm ** exponent);
        if (rejected.length > 0) factor = Math.min(1, factor);
        hAbs = Math.abs(h) * factor;
        t = tNew;
        y = yNew;
        fy = fNew;
        return { h, t, y, nfev, rejections: rejected.length, errorNorm, rejected, hNext: hAbs };
      }
      rejected.push({ h, errorNorm });
      hAbs = Math.abs(h) * Math.max(minFactor, safety * errorNorm ** exponent);
    }
  };
}

const rel = (a: number, e: number) => Math.abs(a - e) / Math.max(Math.abs(e), 1e-300);
const expectRel = (a: number, e: number, tol: number, what: string) => expect(rel(a, e), `${what}: got ${a}, scipy ${e}`).toBeLessThanOrEqual(tol);

const label = (c: Case) => `${c.problem} ${c.method} rtol ${c.rtol} first ${c.firstStep ?? 'auto'}`;
const problemOf = (c: Case) => refs.problems.find((p) => p.name === c.problem)!;

describe('scipy RK23/RK45 reference sequences (test/refs/scipyRk.json)', () => {
  it('has the documented shape: 3 problems × 2 methods × 3 tolerances × 2 first steps, ≥ 30 accepted steps each', () => {
    expect(refs.dtype).toBe('float64');
    expect(refs.scipy).toMatch(/^\d+\.\d+/);
    expect(refs.controller).toEqual({ safety: 0.9, minFactor: 0.2, maxFactor: 10, errorExponent: '-1 / (errorEstimatorOrder + 1)', norm: 'RMS over all components' });
    expect(refs.problems.map((p) => p.name)).toEqual(['quadratic', 'rosenbrock', 'logistic']);
    expect(refs.problems[0]).toMatchObject({ a: [1, 4, 16, 0.25], y0: [1, -0.5, 0.25, 2] });
    expect(refs.problems[1]).toMatchObject({ b: 10, y0: [-1.2, 1] });
    const logistic = refs.problems[2]!;
    expect([logistic.x!.length, logistic.x![0]!.length, logistic.label!.length]).toEqual([16, 3, 16]);
    expect(logistic.label!.every((l) => l === 1 || l === -1)).toBe(true);
    expect(refs.cases).toHaveLength(36);
    for (const c of refs.cases) {
      const p = problemOf(c);
      const s = refs.methods[c.method].nStages;
      expect(c.steps.length, label(c)).toBeGreaterThanOrEqual(30);
      expect(c.init.nfev, label(c)).toBe(c.firstStep === null ? 2 : 1);
      expect(c.init.h, label(c)).toBe(c.firstStep ?? c.selectInitialStep.h);
      let attempts = 0, t = 0;
      for (const st of c.steps) {
        expect(st.y).toHaveLength(p.y0.length);
        expect(st.rejected).toHaveLength(st.rejections);
        expect(st.errorNorm).toBeLessThan(1);
        for (const r of st.rejected) expect(r.errorNorm).toBeGreaterThanOrEqual(1);
        attempts += st.rejections + 1;
        expect(st.nfev, label(c)).toBe(c.init.nfev + s * attempts);
        t += st.h;
        expectRel(st.t, t, 1e-12, `${label(c)}: t is the sum of h`);
      }
    }
  });

  it("the method records are scipy's tableaux, and mine", () => {
    for (const name of ['RK23', 'RK45'] as const) {
      const r = refs.methods[name], m = METHODS[name];
      expect([r.order, r.errorEstimatorOrder, r.nStages]).toEqual([m.order, m.errorOrder, m.b.length]);
      const close = (x: readonly number[], y: readonly number[]) => {
        expect(x).toHaveLength(y.length);
        x.forEach((v, i) => expect(Math.abs(v - y[i]!)).toBeLessThan(1e-15));
      };
      close(r.C, m.c);
      close(r.B, m.b);
      close(r.E, m.e);
      r.A.forEach((row, i) => close(row, m.a[i]!));
      // c is the row sum of a, and e sums to 0 (b and b̂ are both consistent).
      m.a.forEach((row, i) => expect(Math.abs(row.reduce((s: number, v: number) => s + v, 0) - m.c[i]!)).toBeLessThan(1e-15));
      expect(Math.abs(m.e.reduce((s: number, v: number) => s + v, 0))).toBeLessThan(1e-15);
    }
  });

  it('some cases, all on the quadratic, are float32-reproducible (for both methods); the logistic ones at rtol 1e-3 are not', () => {
    const good = refs.cases.filter((c) => c.float32.reproducible);
    expect(new Set(good.map((c) => c.method))).toEqual(new Set(['RK23', 'RK45']));
    for (const c of good) {
      expect(c.problem).toBe('quadratic');
      expect(c.float32.sameRejections).toBe(true);
      expect(c.float32.maxRelDeviationH).toBeLessThan(2e-5);
    }
    expect(good.map(label)).toContain('quadratic RK23 rtol 0.001 first 0.01');
    const logistic = refs.cases.filter((c) => c.problem === 'logistic' && c.rtol === 1e-3);
    for (const c of logistic) expect(c.float32.maxRelDeviationH, label(c)).toBeGreaterThan(1e-4);
  });

  it.each(refs.cases.filter((c) => c.firstStep === null).map((c) => [label(c), c] as const))(
    'select_initial_step replayed: %s', (_, c) => {
      const m = METHODS[c.method];
      const got = selectInitialStep(flowOf(problemOf(c)), problemOf(c).y0, m.errorOrder, c.rtol, c.atol);
      for (const k of ['h', 'd0', 'd1', 'd2', 'h0', 'h1'] as const) expectRel(got[k], c.selectInitialStep[k], 1e-12, `${label(c)} ${k}`);
    });

  it.each(refs.cases.map((c) => [label(c), c] as const))('controller replayed in float64 matches scipy: %s', (_, c) => {
    const m = METHODS[c.method];
    const step = makeStepper(m, flowOf(problemOf(c)), c.rtol, c.atol, problemOf(c).y0, c.init);
    for (const [n, want] of c.steps.entries()) {
      const got = step();
      const at = `${label(c)} step ${n}`;
      expect(got.rejections, at).toBe(want.rejections);
      expect(got.nfev, at).toBe(want.nfev);
      expectRel(got.h, want.h, 1e-9, `${at} h`);
      expectRel(got.hNext, want.hNext, 1e-9, `${at} hNext`);
      expectRel(got.t, want.t, 1e-9, `${at} t`);
      // A tiny errorNorm is mostly float64 rounding (it is a difference that cancels); it only matters near 1.
      expect(Math.abs(got.errorNorm - want.errorNorm), `${at} errorNorm`).toBeLessThanOrEqual(1e-9 + 1e-7 * want.errorNorm);
      got.rejected.forEach((r, i) => expectRel(r.h, want.rejected[i]!.h, 1e-9, `${at} rejected h`));
      got.y.forEach((v, i) => expect(Math.abs(v - want.y[i]!), `${at} y[${i}]`).toBeLessThanOrEqual(1e-9 * (1 + Math.abs(want.y[i]!))));
    }
  });
});
