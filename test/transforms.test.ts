// Gradient transformations and their composition: every building block against a float64 host model of its
// formula, compositions as optax tests them (chain(a, b) is a then b; the built-in optimizers are their chains),
// hyperparameters as state, and the wrappers (masked, partition, applyIfFinite, lookahead, emaParams).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accumulate, adam, adaptiveGradClip, addDecayedWeights, applyIfFinite, atAverages, chain, clipByGlobalNorm, clipByNorm,
  clipByValue, compile, constant, emaParams, fit, type GradientTransformation, hyperparameter, kernelsOnly, lookahead, masked,
  matMul, mean, mul, partition, perParameter, placeholder, reshape, scale, scaleByAdagrad, scaleByAdam, scaleByLearningRate, scaleByRms,
  type Optimizer, Session, sgd, sqrt, square, sub, sum, swapAverages, SymflowError, trace, type TransformLike, type Variable, variable, add,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, rng, values } from './helpers.js';

// ---- the problem: L = ½Σ a⊙W² + ½Σ c⊙b², so ∇W = a⊙W, ∇b = c⊙b (W a [2,2] kernel, b a [2] bias) ----
const A = [1, 4, 0.5, 2];
const C = [3, 0.25];
const W0 = [1, -2, 0.5, 1.5];
const B0 = [-1, 0.8];

function problem() {
  const W = variable([[W0[0]!, W0[1]!], [W0[2]!, W0[3]!]], { name: 'W' });
  const b = variable(B0, { name: 'b' });
  const loss = add(mul(0.5, sum(mul(constant([[A[0]!, A[1]!], [A[2]!, A[3]!]]), square(W)))), mul(0.5, sum(mul(constant(C), square(b)))));
  return { W, b, loss };
}

// ---- float64 host models of the formulas, one closure per transformation: (updates, params, step) → updates ----
type Vecs = number[][];
type HostT = (u: Vecs, p: Vecs, step: number) => Vecs;
const map2 = (u: Vecs, f: (x: number, i: number, j: number) => number): Vecs => u.map((v, i) => v.map((x, j) => f(x, i, j)));
const zeros = (u: Vecs) => u.map((v) => v.map(() => 0));
const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

const host = {
  adam(o: { b1?: number; b2?: number; eps?: number; epsRoot?: number; amsgrad?: boolean; hat?: boolean } = {}): HostT {
    const [b1, b2, eps, er] = [o.b1 ?? 0.9, o.b2 ?? 0.999, o.eps ?? 1e-8, o.epsRoot ?? 0];
    let m: Vecs | undefined, v: Vecs | undefined, vmax: Vecs | undefined;
    return (u, _p, step) => {
      m ??= zeros(u); v ??= zeros(u); vmax ??= zeros(u);
      const t = step + 1;
      m = map2(u, (g, i, j) => b1 * m![i]![j]! + (1 - b1) * g);
      v = map2(u, (g, i, j) => b2 * v![i]![j]! + (1 - b2) * g * g);
      vmax = o.amsgrad ? map2(u, (_g, i, j) => Math.max(vmax![i]![j]!, v![i]![j]!)) : v;
      const c1 = 1 - b1 ** t;
      const c2 = 1 - b2 ** t;
      return map2(u, (_g, i, j) => (o.hat
        ? (Math.sqrt(c2) / c1) * m![i]![j]! / (Math.sqrt(vmax![i]![j]! + er) + eps)
        : (m![i]![j]! / c1) / (Math.sqrt(vmax![i]![j]! / c2 + er) + eps)));
    };
  },
  rms(o: { decay?: number; eps?: number; inSqrt?: boolean } = {}): HostT {
    const [d, eps] = [o.decay ?? 0.9, o.eps ?? 1e-8];
    let a: Vecs | undefined;
    return (u) => {
      a ??= zeros(u);
      a = map2(u, (g, i, j) => d * a![i]![j]! + (1 - d) * g * g);
      return map2(u, (g, i, j) => g / ((o.inSqrt ?? true) ? Math.sqrt(a![i]![j]! + eps) : Math.sqrt(a![i]![j]!) + eps));
    };
  },
  adagrad(init: number, eps: number): HostT {
    let a: Vecs | undefined;
    return (u) => {
      a ??= u.map((v) => v.map(() => init));
      a = map2(u, (g, i, j) => a![i]![j]! + g * g);
      return map2(u, (g, i, j) => g / (Math.sqrt(a![i]![j]!) + eps));
    };
  },
  trace(decay: number, nesterov: boolean): HostT {
    let t: Vecs | undefined;
    return (u) => {
      t ??= zeros(u);
      t = map2(u, (g, i, j) => g + decay * t![i]![j]!);
      return nesterov ? map2(u, (g, i, j) => g + decay * t![i]![j]!) : t;
    };
  },
  lr: (lr: number | ((s: number) => number)): HostT => (u, _p, step) => map2(u, (x) => -(typeof lr === 'number' ? lr : lr(step)) * x),
  scale: (f: number): HostT => (u) => map2(u, (x) => f * x),
  decayWeights: (rate: number, mask: boolean[]): HostT => (u, p) => map2(u, (x, i, j) => (mask[i] ? x + rate * p[i]![j]! : x)),
  clipGlobal: (max: number): HostT => (u) => {
    const n = norm(u.flat());
    return n < max ? u : map2(u, (x) => (x * max) / n);
  },
  clipNorm: (max: number): HostT => (u) => u.map((v) => (norm(v) < max ? v : v.map((x) => (x * max) / norm(v)))),
  clipValue: (lo: number, hi: number): HostT => (u) => map2(u, (x) => Math.min(Math.max(x, lo), hi)),
  // Unit-wise: W's columns (axis 0 reduced), b whole.
  agc(c: number, eps = 1e-3): HostT {
    return (u, p) => u.map((g, i) => {
      const cols = i === 0 ? [[0, 2], [1, 3]] : [[0, 1]];
      const out = [...g];
      for (const idx of cols) {
        const pn = Math.sqrt(idx.reduce((s, k) => s + p[i]![k]! ** 2, 0));
        const gn = Math.sqrt(idx.reduce((s, k) => s + g[k]! ** 2, 0));
        const maxN = c * Math.max(pn, eps);
        if (gn > maxN) for (const k of idx) out[k] = g[k]! * (maxN / Math.max(gn, 1e-6));
      }
      return out;
    });
  },
};

/** Runs host transformations as a chain for `steps` steps of gradient descent on the problem; returns [W, b] after each. */
function hostTrajectory(links: HostT[], steps: number): Vecs[] {
  let p: Vecs = [[...W0], [...B0]];
  const out: Vecs[] = [];
  for (let step = 0; step < steps; step++) {
    let u: Vecs = [p[0]!.map((w, k) => A[k]! * w), p[1]!.map((x, k) => C[k]! * x)];
    for (const l of links) u = l(u, p, step);
    p = map2(p, (x, i, j) => x + u[i]![j]!);
    out.push(p);
  }
  return out;
}

const CASES: { name: string; make: () => TransformLike; host: () => HostT[] }[] = [
  { name: 'scaleByAdam (optax form) → lr 0.1', make: () => chain(scaleByAdam(), scaleByLearningRate(0.1)), host: () => [host.adam(), host.lr(0.1)] },
  { name: 'scaleByAdam amsgrad, epsRoot → lr 0.3', make: () => chain(scaleByAdam({ amsgrad: true, epsRoot: 1e-6, b2: 0.9 }), scaleByLearningRate(0.3)), host: () => [host.adam({ amsgrad: true, epsRoot: 1e-6, b2: 0.9 }), host.lr(0.3)] },
  { name: 'scaleByAdam ε̂ form (Keras 2)', make: () => chain(scaleByAdam({ epsilonHat: true, eps: 1e-7 }), scaleByLearningRate(0.1)), host: () => [host.adam({ hat: true, eps: 1e-7 }), host.lr(0.1)] },
  { name: 'scaleByRms (ε in the root)', make: () => chain(scaleByRms(), scaleByLearningRate(0.01)), host: () => [host.rms(), host.lr(0.01)] },
  { name: 'scaleByRms (ε outside)', make: () => chain(scaleByRms({ decay: 0.5, eps: 1e-3, epsInSqrt: false }), scaleByLearningRate(0.01)), host: () => [host.rms({ decay: 0.5, eps: 1e-3, inSqrt: false }), host.lr(0.01)] },
  { name: 'scaleByAdagrad from 0.1', make: () => chain(scaleByAdagrad({ initialAccumulatorValue: 0.1 }), scaleByLearningRate(0.2)), host: () => [host.adagrad(0.1, 1e-7), host.lr(0.2)] },
  { name: 'trace nesterov → lr (PyTorch SGD)', make: () => chain(trace({ decay: 0.9, nesterov: true }), scaleByLearningRate(0.05)), host: () => [host.trace(0.9, true), host.lr(0.05)] },
  { name: 'lr → trace (Keras SGD)', make: () => chain(scaleByLearningRate(0.05), trace({ decay: 0.5 })), host: () => [host.lr(0.05), host.trace(0.5, false)] },
  { name: 'clipByGlobalNorm(3) → lr 0.3 (clipping, then not)', make: () => chain(clipByGlobalNorm(3), scaleByLearningRate(0.3)), host: () => [host.clipGlobal(3), host.lr(0.3)] },
  { name: 'clipByNorm(0.7) per tensor', make: () => chain(clipByNorm(0.7), scaleByLearningRate(0.3)), host: () => [host.clipNorm(0.7), host.lr(0.3)] },
  { name: 'clipByValue(0.6)', make: () => chain(clipByValue(0.6), scaleByLearningRate(0.3)), host: () => [host.clipValue(-0.6, 0.6), host.lr(0.3)] },
  { name: 'clipByValue({min: -0.2, max: 0.5})', make: () => chain(clipByValue({ min: -0.2, max: 0.5 }), scaleByLearningRate(0.3)), host: () => [host.clipValue(-0.2, 0.5), host.lr(0.3)] },
  { name: 'addDecayedWeights masked to kernels', make: () => chain(addDecayedWeights({ rate: 0.5, mask: kernelsOnly }), scaleByLearningRate(0.1)), host: () => [host.decayWeights(0.5, [true, false]), host.lr(0.1)] },
  { name: 'adaptiveGradClip(0.5)', make: () => chain(adaptiveGradClip(0.5), scaleByLearningRate(0.1)), host: () => [host.agc(0.5), host.lr(0.1)] },
  { name: 'scale(-0.1) alone (plain gradient descent)', make: () => scale(-0.1), host: () => [host.scale(-0.1)] },
  { name: 'clip → adam → decay → lr: a four-link chain', make: () => chain(clipByGlobalNorm(2), scaleByAdam(), addDecayedWeights({ rate: 0.01 }), scaleByLearningRate(0.1)), host: () => [host.clipGlobal(2), host.adam(), host.decayWeights(0.01, [true, true]), host.lr(0.1)] },
  { name: 'a schedule as lr', make: () => chain(scaleByAdam(), scaleByLearningRate((t) => mul(0.1, sub(1, mul(0.1, t))))), host: () => [host.adam(), host.lr((s) => 0.1 * (1 - 0.1 * s))] },
];

async function trajectory(s: Session, opt: TransformLike | Optimizer<any>, steps: number) {
  const m = problem();
  const train = compile(opt as never, s, { loss: m.loss, inputs: [] });
  const out: number[][][] = [];
  const lrs: (number | undefined)[] = [];
  for (let i = 0; i < steps; i++) {
    lrs.push((await train.step([])).lr);
    out.push([values(await s.getValue(m.W)), values(await s.getValue(m.b))]);
  }
  return { out, train, m, lrs };
}

const flatBits = async (s: Session, vs: readonly Variable[]) => (await Promise.all(vs.map(async (v) => bits(await s.getValue(v))))).flat();

describe.each(BACKENDS)('gradient transformations on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(CASES)('$name: 6 steps equal the float64 model of the formulas (rtol 1e-5)', async ({ make, host: h }) => {
    const { out } = await trajectory(s, make(), 6);
    const expected = hostTrajectory(h(), 6);
    out.forEach((p, k) => {
      expectClose(p[0]!, expected[k]![0]!, 1e-5, 1e-6);
      expectClose(p[1]!, expected[k]![1]!, 1e-5, 1e-6);
    });
    // The model moved: a transformation that did nothing would fail here.
    expect(out.at(-1)![0]).not.toEqual(W0.map(Math.fround));
  });

  it('clipByGlobalNorm(3) clips the first steps and not the last ones (the case exercises both sides)', () => {
    const gradNorm = (p: Vecs) => norm([...p[0]!.map((w, k) => A[k]! * w), ...p[1]!.map((x, k) => C[k]! * x)]);
    expect(gradNorm([W0, B0])).toBeGreaterThan(3);
    expect(gradNorm(hostTrajectory([host.clipGlobal(3), host.lr(0.3)], 6).at(-2)!)).toBeLessThan(3);
  });

  it('composes as optax does: chain(chain(a, b), c) and chain(a, b, c) are bit-identical; adam() is its chain', async () => {
    const nested = await trajectory(s, chain(chain(clipByGlobalNorm(2), scaleByAdam()), scaleByLearningRate(0.1)), 4);
    const flat = await trajectory(s, chain(clipByGlobalNorm(2), scaleByAdam(), scaleByLearningRate(0.1)), 4);
    expect(nested.out.map((p) => p.flat().map(Math.fround))).toEqual(flat.out.map((p) => p.flat().map(Math.fround)));
    const keras = await trajectory(s, adam({ lr: 0.1 }), 4);
    const asChain = await trajectory(s, chain(scaleByAdam({ epsilonHat: true, eps: 1e-7 }), scaleByLearningRate(0.1)), 4);
    expect(keras.out).toEqual(asChain.out);
    // An optimizer is a link too: chain(clip, adam()) is clip then Adam's transformation.
    const clipped = await trajectory(s, chain(clipByGlobalNorm(1), adam({ lr: 0.1 })), 4);
    const byHand = await trajectory(s, chain(clipByGlobalNorm(1), scaleByAdam({ epsilonHat: true, eps: 1e-7 }), scaleByLearningRate(0.1)), 4);
    expect(clipped.out).toEqual(byHand.out);
  });

  it('a bare transformation compiles as an optimizer (its updates applied as they are)', async () => {
    const { out } = await trajectory(s, scaleByLearningRate(0.1) as GradientTransformation, 2);
    expectClose(out[1]![0]!, hostTrajectory([host.lr(0.1)], 2)[1]![0]!);
  });

  it('reports the lr each step used: numbers, schedules, setHyperparameter — and a set lr is used from the next step', async () => {
    const sched = await trajectory(s, sgd({ lr: (t) => mul(0.1, sub(1, mul(0.25, t))) }), 4);
    expectClose(sched.lrs as number[], [0.1, 0.075, 0.05, 0.025]);
    const m = problem();
    const train = compile(sgd({ lr: 0.1 }), s, { loss: m.loss, inputs: [] });
    expect(train.hyperparameters.map((v) => v.name.replace(/_\d+$/, ''))).toEqual(['sgd/lr']);
    expect((await train.step([])).lr).toBe(Math.fround(0.1));
    await train.setHyperparameter('lr', 0.02);
    expect(await train.getHyperparameter('lr')).toBe(Math.fround(0.02));
    const w1 = values(await s.getValue(m.W));
    expect((await train.step([])).lr).toBe(Math.fround(0.02));
    expectClose(values(await s.getValue(m.W)), w1.map((w, k) => w - 0.02 * A[k]! * w));
    // State like any other: checkpointed, snapshotted, restored with the step it belongs to.
    expect(train.stateVariables).toContain(train.hyperparameters[0]);
  });

  it('an optimizer built with perParameter reports its lr too (a schedule here)', async () => {
    const m = problem();
    const mine = perParameter({ name: 'mine', slots: [], lr: (t) => mul(0.1, sub(1, mul(0.5, t))), rule: ({ g, p, lr }) => ({ p: sub(p, mul(lr, g)) }) });
    const train = compile(mine, s, { loss: m.loss, inputs: [] });
    expect((await train.step([])).lr).toBe(Math.fround(0.1));
    expect((await train.step([])).lr).toBe(Math.fround(0.05));
    const w1 = W0.map((w, k) => w - 0.1 * A[k]! * w);
    expectClose(values(await s.getValue(m.W)), w1.map((w, k) => w - 0.05 * A[k]! * w));
  });

  it('a hyperparameter of any transformation is settable: clipByGlobalNorm(hyperparameter(…))', async () => {
    const m = problem();
    const train = compile(chain(clipByGlobalNorm(hyperparameter('maxNorm', 1)), scaleByLearningRate(0.1)), s, { loss: m.loss, inputs: [] });
    expect(train.hyperparameters.map((v) => v.name.replace(/_\d+$/, '')).sort()).toEqual(['maxNorm', 'scaleByLearningRate/lr']);
    await train.setHyperparameter('maxNorm', 1e6); // no clipping from now on: plain gradient descent
    await train.step([]);
    expectClose(values(await s.getValue(m.W)), W0.map((w, k) => w - 0.1 * A[k]! * w));
  });

  it('setHyperparameter issued while steps are in flight lands between two steps, never inside one', async () => {
    const m = problem();
    const train = compile(sgd({ lr: 0.1 }), s, { loss: m.loss, inputs: [] });
    const steps = [train.step([]), train.step([])];
    const set = train.setHyperparameter('lr', 0.01);
    const later = train.step([]);
    const results = await Promise.all([...steps, later]);
    await set;
    expect(results.map((r) => r.lr)).toEqual([0.1, 0.1, 0.01].map(Math.fround));
    expect(results[2]!.lr).toBe(await train.getHyperparameter('lr'));
  });

  it('refuses unknown, ambiguous and bad hyperparameter names and values, changing nothing', async () => {
    const m = problem();
    const train = compile(partition({ kernels: sgd({ lr: 0.1 }), biases: sgd({ lr: 0.01 }) }, (p) => (p.rank >= 2 ? 'kernels' : 'biases')), s, { loss: m.loss, inputs: [] });
    expect(train.hyperparameters.map((v) => v.name.replace(/_\d+$/, '')).sort()).toEqual(['biases/sgd/lr', 'kernels/sgd/lr']);
    await expect(train.setHyperparameter('lr', 1)).rejects.toThrow(/'lr' is ambiguous in partition.*'kernels\/sgd\/lr(_\d+)?'.*pass the full name/);
    await expect(train.setHyperparameter('momentum', 1)).rejects.toThrow(/no hyperparameter 'momentum'/);
    const kernels = train.hyperparameters.find((v) => v.name.startsWith('kernels/'))!.name;
    await expect(train.setHyperparameter(kernels, NaN)).rejects.toThrow(/must be a finite number, got NaN/);
    expect(await train.getHyperparameter(kernels)).toBe(Math.fround(0.1));
    await train.setHyperparameter(kernels, 0.5);
    await train.step([]);
    // Kernels at 0.5, biases at 0.01: per-group learning rates.
    expectClose(values(await s.getValue(m.W)), W0.map((w, k) => w - 0.5 * A[k]! * w));
    expectClose(values(await s.getValue(m.b)), B0.map((x, k) => x - 0.01 * C[k]! * x));
  });

  it('masked applies its transformation only to the parameters the mask selects', async () => {
    const { out } = await trajectory(s, chain(masked(scaleByAdam(), [false, true]), scaleByLearningRate(0.1)), 3);
    // W: plain gradient descent (its updates passed through); b: Adam.
    const sgdW = hostTrajectory([host.lr(0.1)], 3);
    const adamB = hostTrajectory([host.adam(), host.lr(0.1)], 3);
    out.forEach((p, k) => {
      expectClose(p[0]!, sgdW[k]![0]!);
      expectClose(p[1]!, adamB[k]![1]!);
    });
    expect(() => compile(chain(masked(scaleByAdam(), [true]), scaleByLearningRate(0.1)), s, { loss: problem().loss, inputs: [] })).toThrow(/masked: mask must be a predicate or 2 booleans/);
  });

  it('partition: a transformation per group, its state named under the label; unknown labels refused', async () => {
    const { out, train } = await trajectory(s, partition({ kernels: chain(trace({ decay: 0.9, nesterov: true }), scaleByLearningRate(0.1)), biases: chain(scaleByAdam(), scaleByLearningRate(0.05)) }, ['kernels', 'biases']), 3);
    const k = hostTrajectory([host.trace(0.9, true), host.lr(0.1)], 3);
    const b = hostTrajectory([host.adam(), host.lr(0.05)], 3);
    out.forEach((p, i) => {
      expectClose(p[0]!, k[i]![0]!);
      expectClose(p[1]!, b[i]![1]!);
    });
    expect(train.stateVariables.some((v) => /^kernels\/trace\/momentum\/W/.test(v.name))).toBe(true);
    expect(train.stateVariables.some((v) => /^biases\/scaleByAdam\/m\/b/.test(v.name))).toBe(true);
    expect(() => compile(partition({ kernels: sgd() }, () => 'biases'), s, { loss: problem().loss, inputs: [] })).toThrow(/partition: params\[0\] 'W(_\d+)?' has label "biases", which is not one of 'kernels'/);
  });

  it('chain refuses what is not a transformation, an empty chain, and emaParams before the last link', () => {
    expect(() => chain()).toThrow(/chain: needs at least one transformation/);
    expect(() => chain(accumulate(sgd(), { steps: 2 }) as never)).toThrow(/chain: links\[0\] must be a gradient transformation .* 'accumulate\(sgd\)', which is not \(wrap the chain in it instead\)/);
    expect(() => chain(emaParams(), scaleByLearningRate(0.1))).toThrow(/'emaParams' \(links\[0\]\) averages the new parameters, so it must be the last link/);
    expect(() => clipByGlobalNorm(0)).toThrow(/clipByGlobalNorm: maxNorm must be a finite number > 0/);
    expect(() => scaleByAdam({ b1: 1.5 })).toThrow(/scaleByAdam: b1 must be a finite number >= 0 and <= 1, got 1.5/);
    expect(() => clipByValue({ min: 1, max: 0 })).toThrow(/clipByValue: min \(1\) must be <= max \(0\)/);
    expect(() => scaleByLearningRate(-1)).toThrow(SymflowError);
  });
});

describe.each(BACKENDS)('applyIfFinite, lookahead and emaParams on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  /**
   * A loss that stays finite while its gradient is NaN when k = 0: 0·√(k·(Σw)²) is 0, its derivative 0·∞.
   * `probe` must have 2 elements for the inner work to run.
   */
  function guarded() {
    const w = variable([1, -2], { name: 'w' });
    const k = placeholder([], { name: 'k' });
    const probe = placeholder([null], { name: 'probe' });
    const loss = add(mul(0.5, sum(square(w))), mul(0, sqrt(mul(k, square(sum(w))))));
    // An inner transformation whose work fails at run time unless probe has 2 elements: it runs only when applied.
    const picky: GradientTransformation = {
      kind: 'transform', name: 'picky', init: () => ({ variables: [] }),
      update: (u) => [u.map((x) => add(x, mul(0, sum(reshape(probe, [2]))))), []],
    };
    return { w, k, probe, loss, picky };
  }

  it('skips a non-finite step inside the run: no inner work, parameters and inner state bit-identical, counts move', async () => {
    const g = guarded();
    const train = compile(applyIfFinite(chain(g.picky, scaleByAdam(), scaleByLearningRate(0.1))), s, { loss: g.loss, inputs: [g.k, g.probe] });
    await train.step([1, [0, 0]]);
    const before = await flatBits(s, [g.w, ...train.stateVariables.filter((v) => !v.name.startsWith('applyIfFinite/'))]);
    // k = 0: NaN gradients at a finite loss; a probe of 3 elements would make the inner work fail if it ran.
    const r = await train.step([0, [0, 0, 0]]);
    expect(r.skipped).toBeUndefined();
    expect(await flatBits(s, [g.w, ...train.stateVariables.filter((v) => !v.name.startsWith('applyIfFinite/'))])).toEqual(before);
    const read = async (n: string) => values(await s.getValue(train.stateVariables.find((v) => v.name.startsWith(`applyIfFinite/${n}`))!))[0];
    expect([await read('notFiniteCount'), await read('totalNotFinite'), await read('lastFinite')]).toEqual([1, 1, 0]);
    await train.step([1, [0, 0]]);
    expect([await read('notFiniteCount'), await read('totalNotFinite'), await read('lastFinite')]).toEqual([0, 1, 1]);
    // The step after the skip is Adam's second: its counter did not move on the skipped one.
    const adamCount = train.stateVariables.find((v) => /^chain\/iterations/.test(v.name))!;
    expect(values(await s.getValue(adamCount))).toEqual([2]);
  });

  it('applies anyway after more than maxConsecutiveErrors non-finite steps (and the guarded step then refuses it)', async () => {
    const g = guarded();
    const train = compile(applyIfFinite(sgd({ lr: 0.1 }), { maxConsecutiveErrors: 1 }), s, { loss: g.loss, inputs: [g.k, g.probe], onNonFinite: 'skip' });
    const w0 = bits(await s.getValue(g.w));
    expect((await train.step([0, [0]])).skipped).toBeUndefined(); // 1st: skipped in the graph
    expect((await train.step([0, [0]])).skipped).toBeUndefined(); // 2nd: skipped (count 1 is not > 1)
    const third = await train.step([0, [0]]); // count 2 > 1: applied, so the NaN reaches w and the step is refused
    expect(third.skipped?.what).toBe('gradient');
    expect(bits(await s.getValue(g.w))).toEqual(w0);
  });

  it('no tensor leaks: 60 steps of applyIfFinite(chain(clip, adam, lr, ema)) and applyIfFinite(lookahead(…)) with skipped steps, swaps and substituted runs', async () => {
    const g = guarded();
    const train = compile(applyIfFinite(chain(clipByGlobalNorm(1), scaleByAdam(), scaleByLearningRate(0.1), emaParams())), s, { loss: g.loss, inputs: [g.k, g.probe] });
    const g2 = guarded();
    const slowFast = compile(applyIfFinite(lookahead(chain(clipByGlobalNorm(1), scaleByAdam(), scaleByLearningRate(0.1)), { k: 3 })), s, { loss: g2.loss, inputs: [g2.k, g2.probe] });
    const atAvg = atAverages(train, [g.loss]);
    const round = async (i: number) => {
      await train.step([i % 4 === 3 ? 0 : 1, [0, 0]]);
      await slowFast.step([i % 4 === 3 ? 0 : 1, [0, 0]]);
      if (i % 10 === 0) await swapAverages(train);
      await s.run(atAvg, [[g.k, 1], [g.probe, [0, 0]]]);
    };
    for (let i = 0; i < 6; i++) await round(i);
    const live = s.numTensors();
    for (let i = 6; i < 66; i++) await round(i);
    expect(s.numTensors()).toBe(live);
    expect(values(await s.getValue(train.stateVariables.find((v) => v.name.startsWith('applyIfFinite/totalNotFinite'))!))).toEqual([16]);
  });

  it('lookahead: fast weights by the inner rule, slow weights synchronised every k steps (float64 model)', async () => {
    const { out } = await trajectory(s, lookahead(chain(scaleByLearningRate(0.2)), { k: 3, alpha: 0.5 }), 7);
    let p: Vecs = [[...W0], [...B0]];
    let slow: Vecs = [[...W0], [...B0]];
    const expected: Vecs[] = [];
    for (let step = 1; step <= 7; step++) {
      p = [p[0]!.map((w, k) => w - 0.2 * A[k]! * w), p[1]!.map((x, k) => x - 0.2 * C[k]! * x)];
      if (step % 3 === 0) {
        slow = map2(slow, (x, i, j) => x + 0.5 * (p[i]![j]! - x));
        p = slow.map((v) => [...v]);
      }
      expected.push(p);
    }
    out.forEach((q, k) => {
      expectClose(q[0]!, expected[k]![0]!);
      expectClose(q[1]!, expected[k]![1]!);
    });
    expect(() => lookahead(sgd(), { k: 0 })).toThrow(/lookahead: k must be an integer >= 1, got 0/);
  });

  it('emaParams: averages as the float64 model; evaluated by substitution, swapped in and out bit-exactly, in fit validation', async () => {
    const m = problem();
    const train = compile(chain(scaleByAdam(), scaleByLearningRate(0.1), emaParams({ decay: 0.8 })), s, { loss: m.loss, inputs: [] });
    const avg = train.averages!;
    expect(avg.map((v) => v.name.replace(/_\d+$/, ''))).toEqual(['ema/average/W', 'ema/average/b']);
    const traj = hostTrajectory([host.adam(), host.lr(0.1)], 5);
    let ema: Vecs = [[...W0], [...B0]];
    for (let k = 0; k < 5; k++) {
      await train.step([]);
      ema = map2(ema, (x, i, j) => 0.8 * x + 0.2 * traj[k]![i]![j]!);
    }
    expectClose(values(await s.getValue(avg[0]!)), ema[0]!);
    expectClose(values(await s.getValue(avg[1]!)), ema[1]!);
    const lossAt = (p: Vecs) => 0.5 * p[0]!.reduce((t, w, k) => t + A[k]! * w * w, 0) + 0.5 * p[1]!.reduce((t, x, k) => t + C[k]! * x * x, 0);
    const [atAvg] = await s.run(atAverages(train, [m.loss]), []);
    expectClose(values(atAvg!), [lossAt(ema)]);
    // The substitution wrote nothing: the parameters are still the trained ones.
    expectClose(values(await s.getValue(m.W)), traj[4]![0]!);
    const trained = await flatBits(s, [m.W, m.b]);
    const averaged = await flatBits(s, avg);
    await swapAverages(train);
    expect(await flatBits(s, [m.W, m.b])).toEqual(averaged);
    expect(await flatBits(s, avg)).toEqual(trained);
    await swapAverages(train);
    expect(await flatBits(s, [m.W, m.b])).toEqual(trained);
    expect(() => atAverages(compile(sgd(), s, { loss: problem().loss, inputs: [] }), [m.loss])).toThrow(/atAverages: the train step's optimizer keeps no averages/);
  });
});

describe.each(BACKENDS)('fit validation at the averages on %s', (backend) => {
  it("validation.weights: 'averages' reports the loss at the averaged weights, 'params' at the trained ones", async () => {
    const s = await Session.create({ backend });
    try {
      const r = rng(7);
      const X = Array.from({ length: 32 }, () => [r() * 2 - 1, r() * 2 - 1]);
      const Y = X.map((x) => [x[0]! - x[1]! + 0.1 * (r() - 0.5)]);
      const w = variable([[0], [0]], { name: 'w' });
      const x = placeholder([null, 2]);
      const y = placeholder([null, 1]);
      const loss = mean(square(sub(matMul(x, w), y)));
      const train = compile(chain(scaleByLearningRate(0.2), emaParams({ decay: 0.9 })), s, { loss, inputs: [x, y] });
      const run = async (weights: 'params' | 'averages') => {
        const events: { type: string; val?: { loss: number } }[] = [];
        await new Promise<void>((done, fail) => fit(train, [X, Y], { epochs: 1, batchSize: 8, shuffle: false, validation: { data: [X, Y], weights } })
          .subscribe({ next: (e) => events.push(e as never), complete: done, error: fail }));
        return (events.find((e) => e.type === 'epoch') as { val?: { loss: number } } | undefined)?.val?.loss;
      };
      const atAvg = await run('averages');
      const [expectedAvg] = await s.run(atAverages(train, [loss]), [[x, X], [y, Y]]);
      expectClose([atAvg!], values(expectedAvg!));
      const atParams = await run('params');
      const [expectedParams] = await s.run([loss], [[x, X], [y, Y]]);
      expectClose([atParams!], values(expectedParams!));
      expect(Math.abs(atAvg! - atParams!)).toBeGreaterThan(1e-4);
    } finally {
      await s.dispose();
    }
  });
});
