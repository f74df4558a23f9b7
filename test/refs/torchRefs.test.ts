import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers.js';

/**
 * The PyTorch reference files for the AdamW + clip + warmup-cosine and the SGD Nesterov two-group trajectories
 * (written by refs/torch_refs.py): their shapes, and a float64 host replay of the formulas they document, so a
 * trajectory test can rely on both. (The symflow side of these trajectories needs `chain(...)`.)
 */

type Matrix = number[][];
interface Params { W1: Matrix; b1: number[]; W2: Matrix; b2: number[] }
interface MlpRefs {
  dtype: string;
  paramOrder: (keyof Params)[];
  data: { x: Matrix; t: Matrix };
  init: Params;
  steps: { loss: number; lr?: number; gradNorm?: number; clipped?: boolean; params: Params }[];
}
interface AdamWRefs extends MlpRefs {
  hyper: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number; warmupSteps: number; totalSteps: number };
}
interface SgdRefs extends MlpRefs {
  groups: { kernels: (keyof Params)[]; biases: (keyof Params)[] };
  hyper: { kernelLr: number; biasLr: number; momentum: number; nesterov: boolean; weightDecay: number; steps: number };
}

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')) as T;
const adamw = load<AdamWRefs>('adamwClipCosine.json');
const sgd = load<SgdRefs>('sgdNesterovGroups.json');

const SHAPES: Record<keyof Params, number[]> = { W1: [3, 4], b1: [4], W2: [4, 2], b2: [2] };
const shapeOf = (v: unknown): number[] => (Array.isArray(v) ? [v.length, ...shapeOf(v[0])] : []);
const flat = (p: Params, order: readonly (keyof Params)[]): number[] => order.flatMap((k) => (p[k] as unknown[]).flat() as number[]);

/** Loss and gradients of h = tanh(x·W1 + b1), pred = h·W2 + b2, L = mean((pred − t)²), in float64. */
function lossAndGrads(p: Params, x: Matrix, t: Matrix): { loss: number; g: Params } {
  const n = x.length;
  const h = x.map((r) => p.b1.map((b, j) => Math.tanh(b + r.reduce((s, v, i) => s + v * p.W1[i]![j]!, 0))));
  const pred = h.map((r) => p.b2.map((b, j) => b + r.reduce((s, v, i) => s + v * p.W2[i]![j]!, 0)));
  const diff = pred.map((r, a) => r.map((v, j) => v - t[a]![j]!));
  const loss = diff.flat().reduce((s, v) => s + v * v, 0) / (n * 2);
  const dPred = diff.map((r) => r.map((v) => (2 * v) / (n * 2)));
  const dz = h.map((r, a) => r.map((hv, i) => (1 - hv * hv) * dPred[a]!.reduce((s, d, j) => s + d * p.W2[i]![j]!, 0)));
  const outer = (a: Matrix, b: Matrix, rows: number, cols: number) =>
    Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => a.reduce((s, r, k) => s + r[i]! * b[k]![j]!, 0)));
  const colSum = (m: Matrix) => m[0]!.map((_, j) => m.reduce((s, r) => s + r[j]!, 0));
  return { loss, g: { W1: outer(x, dz, 3, 4), b1: colSum(dz), W2: outer(h, dPred, 4, 2), b2: colSum(dPred) } };
}

/** Applies f elementwise over the four parameters (values, grads, slots of the same shapes). */
function map(fn: (...xs: number[]) => number, ...ps: Params[]): Params {
  const m = (k: keyof Params) => (Array.isArray((ps[0]![k] as unknown[])[0])
    ? (ps[0]![k] as Matrix).map((r, i) => r.map((_, j) => fn(...ps.map((p) => (p[k] as Matrix)[i]![j]!))))
    : (ps[0]![k] as number[]).map((_, i) => fn(...ps.map((p) => (p[k] as number[])[i]!))));
  return { W1: m('W1') as Matrix, b1: m('b1') as number[], W2: m('W2') as Matrix, b2: m('b2') as number[] };
}

function checkShapes(r: MlpRefs, steps: number): void {
  expect(r.paramOrder).toEqual(['W1', 'b1', 'W2', 'b2']);
  expect(shapeOf(r.data.x)).toEqual([16, 3]);
  expect(shapeOf(r.data.t)).toEqual([16, 2]);
  expect(r.steps.length).toBe(steps);
  for (const p of [r.init, ...r.steps.map((s) => s.params)]) {
    for (const k of r.paramOrder) expect(shapeOf(p[k]), k).toEqual(SHAPES[k]);
  }
}

describe('torch reference: AdamW + clip_grad_norm_ + LambdaLR (warmup, cosine)', () => {
  it('has the shapes and the per-step fields a trajectory test reads', () => {
    checkShapes(adamw, adamw.hyper.totalSteps);
    expect(adamw.hyper).toMatchObject({ warmupSteps: 5, totalSteps: 20, clipNorm: 1 });
    // The clip is active on some steps and not on others.
    expect(adamw.steps.some((s) => s.clipped) && adamw.steps.some((s) => !s.clipped)).toBe(true);
    adamw.steps.forEach((s) => expect(s.clipped).toBe(s.gradNorm! > adamw.hyper.clipNorm));
  });

  it('is the documented formulas: a float64 host replay follows it to 1e-4', () => {
    const h = adamw.hyper;
    const factor = (k: number) => (k < h.warmupSteps ? (k + 1) / h.warmupSteps : 0.5 * (1 + Math.cos((Math.PI * (k - h.warmupSteps)) / (h.totalSteps - h.warmupSteps))));
    let p = adamw.init;
    let m = map(() => 0, p), v = map(() => 0, p);
    for (const [k, ref] of adamw.steps.entries()) {
      const { loss, g } = lossAndGrads(p, adamw.data.x, adamw.data.t);
      expect(Math.abs(loss - ref.loss) / ref.loss, `step ${k} loss`).toBeLessThan(1e-5);
      const norm = Math.sqrt(flat(g, adamw.paramOrder).reduce((s, x) => s + x * x, 0));
      expect(Math.abs(norm - ref.gradNorm!) / ref.gradNorm!).toBeLessThan(1e-5);
      const lr = h.lr * factor(k);
      expect(ref.lr).toBeCloseTo(lr, 12);
      // clip_grad_norm_: g·min(1, max_norm / (‖g‖ + 1e-6)); then AdamW: decoupled decay with the scheduled lr,
      // moments of the clipped g, bias-corrected, eps added to √v̂.
      const gc = map((x) => x * Math.min(1, h.clipNorm / (norm + 1e-6)), g);
      m = map((mi, gi) => h.beta1 * mi + (1 - h.beta1) * gi, m, gc);
      v = map((vi, gi) => h.beta2 * vi + (1 - h.beta2) * gi * gi, v, gc);
      const bc1 = 1 - h.beta1 ** (k + 1), bc2 = 1 - h.beta2 ** (k + 1);
      p = map((pi, mi, vi) => pi * (1 - lr * h.weightDecay) - (lr / bc1) * mi / (Math.sqrt(vi) / Math.sqrt(bc2) + h.eps), p, m, v);
      expectClose(flat(p, adamw.paramOrder), flat(ref.params, adamw.paramOrder), 1e-4, 1e-6);
    }
  });
});

describe('torch reference: SGD, two param groups, Nesterov momentum', () => {
  it('has the shapes and the groups a trajectory test reads', () => {
    checkShapes(sgd, sgd.hyper.steps);
    expect(sgd.groups).toEqual({ kernels: ['W1', 'W2'], biases: ['b1', 'b2'] });
    expect(sgd.hyper).toMatchObject({ kernelLr: 0.1, biasLr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0 });
  });

  it('is the documented formulas: a float64 host replay follows it to 1e-4', () => {
    const h = sgd.hyper;
    // Each parameter's group lr, as a parameter-shaped value.
    const lrs: Params = { ...sgd.init };
    for (const k of sgd.paramOrder) lrs[k] = map(() => (sgd.groups.kernels.includes(k) ? h.kernelLr : h.biasLr), sgd.init)[k] as never;
    let p = sgd.init;
    let buf = map(() => 0, p);
    for (const [k, ref] of sgd.steps.entries()) {
      const { loss, g } = lossAndGrads(p, sgd.data.x, sgd.data.t);
      expect(Math.abs(loss - ref.loss) / ref.loss, `step ${k} loss`).toBeLessThan(1e-5);
      // torch: buf = μ·buf + g (buf = g on the first step: the same, from zero); p ← p − lr·(g + μ·buf).
      buf = map((b, gi) => h.momentum * b + gi, buf, g);
      const step = map((gi, b) => gi + h.momentum * b, g, buf);
      p = map((pi, si, lr) => pi - lr * si, p, step, lrs);
      expectClose(flat(p, sgd.paramOrder), flat(ref.params, sgd.paramOrder), 1e-4, 1e-6);
    }
  });
});
