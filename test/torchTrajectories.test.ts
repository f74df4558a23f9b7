// symflow's composed optimizers against PyTorch's own trajectories (test/refs/*.json, written by
// refs/torch_refs.py with Debian's python3-torch; these tests never need Python):
// chain(clipByGlobalNorm(1), scaleByAdam, addDecayedWeights, scaleByLearningRate(warmup then cosine)) is
// torch.optim.AdamW + clip_grad_norm_ + LambdaLR, and partition({kernels, biases}) of trace(nesterov) → lr is
// torch.optim.SGD with two param groups.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  add, addDecayedWeights, chain, clipByGlobalNorm, compile, constant, cosineDecay, join, linear, matMul, mean, partition,
  scaleByAdam, scaleByLearningRate, Session, square, sub, tanh, trace, type TransformLike, variable, type Variable,
} from '../src/index.js';
import { BACKENDS, values } from './helpers.js';

type Matrix = number[][];
interface Params { W1: Matrix; b1: number[]; W2: Matrix; b2: number[] }
interface Refs {
  paramOrder: (keyof Params)[];
  data: { x: Matrix; t: Matrix };
  init: Params;
  steps: { loss: number; lr?: number; clipped?: boolean; params: Params }[];
  hyper: Record<string, number | boolean>;
}
const load = (name: string): Refs => JSON.parse(readFileSync(new URL(`./refs/${name}`, import.meta.url), 'utf8')) as Refs;
const ORDER = ['W1', 'b1', 'W2', 'b2'] as const;

function mlp(refs: Refs) {
  const p = Object.fromEntries(ORDER.map((k) => [k, variable(refs.init[k], { name: k })])) as Record<keyof Params, Variable>;
  const h = tanh(add(matMul(constant(refs.data.x), p.W1), p.b1));
  const loss = mean(square(sub(add(matMul(h, p.W2), p.b2), constant(refs.data.t))));
  return { p, loss };
}

/** Max over the parameters of max|got − torch| / max|torch|, per step. */
async function follow(s: Session, refs: Refs, opt: TransformLike) {
  const { p, loss } = mlp(refs);
  const train = compile(opt, s, { loss, params: ORDER.map((k) => p[k]), inputs: [] });
  const worst: number[] = [];
  const lrs: number[] = [];
  const losses: number[] = [];
  for (const ref of refs.steps) {
    const r = await train.step([]);
    lrs.push(r.lr!);
    losses.push(r.loss);
    let w = 0;
    for (const k of ORDER) {
      const got = values(await s.getValue(p[k]));
      const want = (ref.params[k] as unknown[]).flat() as number[];
      const scale = Math.max(...want.map(Math.abs));
      w = Math.max(w, ...got.map((g, i) => Math.abs(g - want[i]!) / scale));
    }
    worst.push(w);
  }
  return { worst, lrs, losses };
}

describe.each(BACKENDS)('PyTorch trajectories on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('chain(clipByGlobalNorm(1), adamw, warmup-cosine) = torch AdamW + clip_grad_norm_ + LambdaLR over 20 steps (≤ 1e-4 relative)', async () => {
    const refs = load('adamwClipCosine.json');
    const h = refs.hyper as { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number; warmupSteps: number; totalSteps: number };
    expect(refs.steps.length).toBe(20);
    // LambdaLR's factor: (k + 1)/5 for k < 5, then ½(1 + cos(π(k − 5)/15)): a linear ramp joined to a cosine.
    const lr = join([
      linear({ init: h.lr / h.warmupSteps, end: h.lr, steps: h.warmupSteps - 1 }),
      cosineDecay({ init: h.lr, steps: h.totalSteps - h.warmupSteps }),
    ], [h.warmupSteps]);
    const opt = chain(
      clipByGlobalNorm(h.clipNorm),
      scaleByAdam({ b1: h.beta1, b2: h.beta2, eps: h.eps }),
      addDecayedWeights({ rate: h.weightDecay }),
      scaleByLearningRate(lr),
    );
    const { worst, lrs, losses } = await follow(s, refs, opt);
    expect(Math.max(...worst), `per-step deviation ${worst.map((w) => w.toExponential(1)).join(' ')}`).toBeLessThanOrEqual(1e-4);
    lrs.forEach((v, k) => expect(Math.abs(v - refs.steps[k]!.lr!)).toBeLessThanOrEqual(1e-7 * h.lr + 1e-9));
    losses.forEach((v, k) => expect(Math.abs(v - refs.steps[k]!.loss) / refs.steps[k]!.loss).toBeLessThanOrEqual(1e-4));
    // The trajectory exercises the clip (active early, not late) and the whole schedule.
    expect(refs.steps.some((x) => x.clipped) && refs.steps.some((x) => !x.clipped)).toBe(true);
  });

  it('partition({kernels, biases}) of trace(nesterov) → lr = torch SGD with two param groups over 20 steps (≤ 1e-4 relative)', async () => {
    const refs = load('sgdNesterovGroups.json');
    const h = refs.hyper as { kernelLr: number; biasLr: number; momentum: number };
    const group = (rate: number) => chain(trace({ decay: h.momentum, nesterov: true }), scaleByLearningRate(rate));
    const opt = partition({ kernels: group(h.kernelLr), biases: group(h.biasLr) }, (p) => (p.rank >= 2 ? 'kernels' : 'biases'));
    const { worst, losses } = await follow(s, refs, opt);
    expect(refs.steps.length).toBe(20);
    expect(Math.max(...worst), `per-step deviation ${worst.map((w) => w.toExponential(1)).join(' ')}`).toBeLessThanOrEqual(1e-4);
    losses.forEach((v, k) => expect(Math.abs(v - refs.steps[k]!.loss) / refs.steps[k]!.loss).toBeLessThanOrEqual(1e-4));
    // Two rates really differ: one group's rate for all would go elsewhere.
    const oneRate = await follow(s, refs, group(h.kernelLr));
    expect(Math.max(...oneRate.worst)).toBeGreaterThan(1e-3);
  });
});
