import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  NonFiniteError, Session, SymflowError, add, compile, constant, defineMultiRun, exp, lbfgs, mean, mul, neg, placeholder, softplus, square, sub, sum, variable,
  type LbfgsOptions, type Tensor, type Variable,
} from '../src/index.js';
import { BACKENDS, bits, failingSession, values } from './helpers.js';

interface LbfgsCase {
  name: string;
  options: Required<LbfgsOptions>;
  init: { w: number[]; b: number[] };
  steps: { loss: number; evals: number; w: number[]; b: number[] }[];
  finalLoss: number;
  torchFloat32MaxRelDeviation: number;
}
interface LbfgsRefs {
  dtype: string;
  problem: { kind: string; x: number[][]; y: number[]; l2: number };
  cases: LbfgsCase[];
}

const refs = JSON.parse(readFileSync(new URL('./refs/lbfgs.json', import.meta.url), 'utf8')) as LbfgsRefs;

/** The reference problem, built from the JSON: mean(softplus(−y·(x·w + b))) + l2/2·‖w‖². */
function logistic(c: LbfgsCase) {
  const { x, l2 } = refs.problem;
  const xs = placeholder([null, x[0]!.length], { name: 'x' });
  const ys = placeholder([null], { name: 'y' });
  const w = variable(c.init.w, { name: 'w' });
  const b = variable(c.init.b, { name: 'b' });
  const z = add(sum(mul(xs, w), 1), b);
  const loss = add(mean(softplus(neg(mul(ys, z)))), mul(0.5 * l2, sum(square(w))));
  return { xs, ys, w, b, loss };
}

/** Largest |a − e| / max(|e|, 1e-3) over two parameter lists. */
function relErr(actual: readonly number[], expected: readonly number[]): number {
  expect(actual.length).toBe(expected.length);
  return Math.max(...expected.map((e, i) => Math.abs(actual[i]! - e) / Math.max(Math.abs(e), 1e-3)));
}

describe('lbfgs reference data', () => {
  it('is the problem and cases the tests expect', () => {
    expect(refs.problem.kind).toBe('logisticRegression');
    expect(refs.problem.x.length).toBe(refs.problem.y.length);
    expect(refs.cases.map((c) => c.name)).toEqual(['strongWolfe', 'strongWolfeInner', 'strongWolfeExtrapolate', 'none']);
    for (const c of refs.cases) {
      expect(c.steps.length).toBeGreaterThanOrEqual(c.name === 'strongWolfeInner' ? 4 : 10);
      expect(c.init.w.length).toBe(refs.problem.x[0]!.length);
      // torch's own float32 run stays within the tolerance of this float64 reference.
      expect(c.torchFloat32MaxRelDeviation).toBeLessThan(2e-5);
    }
  });
});

describe.each(BACKENDS)('lbfgs on %s', (backend) => {
  it.each(refs.cases.map((c) => [c.name, c] as const))('follows torch.optim.LBFGS (%s) over every reference step to 1e-4', async (_name, c) => {
    const s = await Session.create({ backend });
    const { xs, ys, w, b, loss } = logistic(c);
    const train = compile(lbfgs(c.options), s, { loss, inputs: [xs, ys] });
    for (const [k, ref] of c.steps.entries()) {
      const r = await train.step([refs.problem.x, refs.problem.y]);
      expect(Math.abs(r.loss - ref.loss) / ref.loss, `step ${k} loss`).toBeLessThan(1e-4);
      const got = [...values(await s.getValue(w)), ...values(await s.getValue(b))];
      const err = relErr(got, [...ref.w, ...ref.b]);
      expect(err, `step ${k} params ${got} vs ${[...ref.w, ...ref.b]}`).toBeLessThan(1e-4);
      // Before the float64 reference reaches max|g| ≤ tolerance (then float32 noise decides), the same
      // evaluations: torch's func_evals, plus the run that writes the new point.
      if (ref.evals > 1) expect(r.runs, `step ${k} runs`).toBe(ref.evals + 1);
      expect(r.lr).toBeGreaterThanOrEqual(0);
    }
    // The trajectory moves: the last loss is well below the first.
    expect(c.steps.at(-1)!.loss).toBeLessThan(c.steps[0]!.loss * 0.2);
    expect((await train.step([refs.problem.x, refs.problem.y])).loss).toBeCloseTo(c.finalLoss, 6);
    await s.dispose();
  });

  it('a hand-computed quadratic: a gradient step of length 1/|g|₁, then the secant step lands on the minimum', async () => {
    const s = await Session.create({ backend });
    const c = placeholder([], { name: 'c' });
    const w = variable([0], { name: 'w' });
    // L = (w − c)², c = 3: at w = 0, g = −6, so t = min(1, 1/6)·lr and w = 0 + t·6 = 1.
    const train = compile(lbfgs({ maxIter: 1 }), s, { loss: sum(square(sub(w, c))), inputs: [c] });
    const r1 = await train.step([3]);
    expect(r1).toMatchObject({ loss: 9, runs: 2 });
    expect(r1.lr).toBeCloseTo(1 / 6, 7);
    expect(values(await s.getValue(w))[0]).toBeCloseTo(1, 6);
    // At w = 1, g = −4: y = 2, s = 1, ys = 2, H = ys/yy = ½; the two-loop gives d = 2 and t = lr = 1: w = 3.
    const r2 = await train.step([3]);
    expect(r2).toMatchObject({ loss: 4, runs: 2, lr: 1 });
    expect(values(await s.getValue(w))[0]).toBeCloseTo(3, 5);
    // At the minimum max|g| ≤ tolerance: one evaluation, nothing written, no step taken.
    const before = bits(await s.getValue(w));
    const r3 = await train.step([3]);
    expect(r3.runs).toBe(1);
    expect(r3.lr).toBe(0);
    expect(r3.loss).toBeLessThan(1e-10);
    expect(bits(await s.getValue(w))).toEqual(before);
    await s.dispose();
  });

  it('strong Wolfe backs off from a trial point where the loss overflows, and the step still descends', async () => {
    const s = await Session.create({ backend });
    const { loss, w, x } = coshProblem();
    // lr 1000 sends the first trial to w ≈ −999, where exp(10·999) is Inf.
    const train = compile(lbfgs({ lr: 1000, maxIter: 3, lineSearch: 'strongWolfe' }), s, { loss, inputs: [x] });
    const r = await train.step([[[10]]]);
    expect(r.runs).toBeGreaterThan(2);
    const after = values(await s.getValue(w))[0]!;
    expect(Number.isFinite(after)).toBe(true);
    const [l] = await s.run([loss], [[x, [[10]]]]);
    expect(l!.data[0]!).toBeLessThan(r.loss);
    await s.dispose();
  });

  it('a step that fails part-way leaves the parameters, the counter and the host history as they were', async () => {
    const ok = 1, bad = 1e30;
    const run = async (ks: readonly number[], policy?: 'apply') => {
      const s = await Session.create({ backend });
      const { loss, w, k } = quarticProblem();
      // maxEval 3: a step does not stop after its first trial (the default, ⌊2·5/4⌋ = 2, would).
      const train = compile(lbfgs({ maxIter: 2, maxEval: 3 }), s, { loss, inputs: [k], ...(policy ? { onNonFinite: policy } : {}) });
      return { s, w, train, k };
    };
    // Reference: three good steps (the history matters: the loss is not quadratic).
    const ref = await run([]);
    for (let i = 0; i < 3; i++) await ref.train.step([ok]);
    const expected = bits(await ref.s.getValue(ref.w));
    await ref.s.dispose();

    const { s, w, train } = await run([]);
    await train.step([ok]);
    await train.step([ok]);
    const mid = bits(await s.getValue(w));
    const state = (await Promise.all(train.stateVariables.map((v) => s.getValue(v)))).map(bits);
    // Curvature 1e30: the first trial point's loss and gradient overflow, the direction that follows is NaN, and the
    // run that would write the new point refuses it — after four session runs of the step.
    const err = await train.step([bad]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as NonFiniteError).report).toMatchObject({ what: 'value', variable: w.name });
    expect(bits(await s.getValue(w))).toEqual(mid);
    expect((await Promise.all(train.stateVariables.map((v) => s.getValue(v)))).map(bits)).toEqual(state);
    await train.step([ok]);
    expect(bits(await s.getValue(w))).toEqual(expected);
    expect(expected).not.toEqual(mid);
    await s.dispose();

    // Compiled with 'apply', a NaN batch runs to the end and writes; asked to skip, compile then undoes the step,
    // and the step counter (restored with the parameters) tells the optimizer to forget that step's history.
    const applied = await run([], 'apply');
    await applied.train.step([ok]);
    await applied.train.step([ok]);
    const r = await applied.train.step([NaN], { onNonFinite: 'skip' });
    expect(r.skipped?.what).toBe('loss');
    expect(bits(await applied.s.getValue(applied.w))).toEqual(mid);
    await applied.train.step([ok]);
    expect(bits(await applied.s.getValue(applied.w))).toEqual(expected);
    await applied.s.dispose();
  });

  it.each(['strongWolfe', 'none'] as const)('%s: a failure injected into any run of a step (start, trial, write) restores everything, and the next step is the uninterrupted one', async (lineSearch) => {
    const c = refs.cases[0]!;
    const opts = { lineSearch, maxIter: 3, maxEval: 6, historySize: 3 };
    const batch = [refs.problem.x, refs.problem.y];
    // Reference: three steps without failures.
    const ref = await Session.create({ backend });
    const p1 = logistic(c);
    const t1 = compile(lbfgs(opts), ref, { loss: p1.loss, inputs: [p1.xs, p1.ys] });
    for (let i = 0; i < 3; i++) await t1.step(batch);
    const expected = [bits(await ref.getValue(p1.w)), bits(await ref.getValue(p1.b))];
    await ref.dispose();

    const { s, calls, failAt } = await failingSession(backend);
    const p2 = logistic(c);
    const train = compile(lbfgs(opts), s, { loss: p2.loss, inputs: [p2.xs, p2.ys] });
    await train.step(batch);
    const start = calls();
    await train.step(batch);
    const perStep = calls() - start;
    expect(perStep).toBeGreaterThan(3);
    const state = async () => Promise.all(s.variables.map(async (v) => bits(await s.getValue(v))));
    for (let k = 0; k < perStep; k++) {
      const before = await state();
      const tensors = s.numTensors();
      const n = calls() + k;
      failAt(n);
      await expect(train.step(batch)).rejects.toThrow(`injected failure in call ${n}`);
      failAt(-1);
      expect(await state(), `after a failure in run ${k + 1} of ${perStep}`).toEqual(before);
      // The trial points and the written point were uploaded for the step, and released with it.
      expect(s.numTensors()).toBe(tensors);
    }
    await train.step(batch);
    expect([bits(await s.getValue(p2.w)), bits(await s.getValue(p2.b))]).toEqual(expected);
    await s.dispose();
  });

  it('reports the extra outputs at the starting point, and trains only the params it is given', async () => {
    const s = await Session.create({ backend });
    const c = placeholder([], { name: 'c' });
    const w = variable([0], { name: 'w' });
    const v = variable([5], { name: 'v' });
    const loss = add(sum(square(sub(w, c))), sum(square(v)));
    const train = compile(lbfgs({ maxIter: 4 }), s, { loss, inputs: [c], params: [w], outputs: [mul(w, 10)] });
    const r = await train.step([3]);
    expect(values(r.outputs[0]!)).toEqual([0]);
    expect(values(await s.getValue(v))).toEqual([5]);
    expect(values(await s.getValue(w))[0]).toBeCloseTo(3, 5);
    await s.dispose();
  });
});


/** L = k/2·‖w − (3, −1)‖² + ‖w‖⁴₄/4 from w = 0: not quadratic, so the curvature history shapes every step. */
function quarticProblem(): { loss: Tensor; w: Variable; k: Tensor } {
  const k = placeholder([], { name: 'k' });
  const w = variable([0, 0], { name: 'w' });
  const loss = add(mul(mul(0.5, k), sum(square(sub(w, constant([3, -1]))))), mul(0.25, sum(square(square(w)))));
  return { loss, w, k };
}

/** L = mean(exp(x·w) + exp(−x·w)) at w = 1: for x = 10 a long step overflows, for x = 0.1 it does not. */
function coshProblem(): { loss: Tensor; w: Variable; x: Tensor } {
  const x = placeholder([null, 1], { name: 'x' });
  const w = variable([1], { name: 'w' });
  const xw = mul(x, w);
  return { loss: mean(add(exp(xw), exp(neg(xw)))), w, x };
}

describe.each(BACKENDS)('RunSpec.feeds on %s', (backend) => {
  it('a run takes its feeds\' values after the batch: a fed variable is read at the fed value, a placeholder carries a point', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null], { name: 'x' });
    const w = variable([1, 2], { name: 'w' });
    const target = placeholder([2], { name: 'target' });
    const loss = sum(square(mul(w, x)));
    const seen: number[][] = [];
    const probe = defineMultiRun('probe', (ctx) => {
      const at = ctx.run({ feeds: [w], outputs: { loss: ctx.loss, g: ctx.grads[0]! }, guard: false });
      const write = ctx.run({ feeds: [target], updates: [[w, target]] });
      return {
        runsPerStep: 2,
        variables: [],
        async step(batch) {
          const fed = s.upload(w, [3, -1]);
          const r = await at([...batch, fed]);
          fed.dispose();
          seen.push([...values(r.loss), ...values(r.g)]);
          const point = s.upload(target, [5, 6]);
          await write([...batch, point]);
          point.dispose();
          return { loss: r.loss.data[0]!, outputs: [], runs: 2 };
        },
      };
    });
    const train = compile(probe, s, { loss, inputs: [x] });
    await train.step([[2]]);
    // At w = (3, −1), x = 2: L = 36 + 4 = 40, ∂L/∂w = 2·w·x² = (24, −8) — not at the variable's value (1, 2).
    expect(seen).toEqual([[40, 24, -8]]);
    expect(values(await s.getValue(w))).toEqual([5, 6]);
    expect(() => compile(defineMultiRun('bad', (ctx) => {
      ctx.run({ feeds: [42 as unknown as Tensor] });
      return { runsPerStep: 1, variables: [], step: async () => ({ loss: 0, outputs: [], runs: 1 }) };
    }), s, { loss, inputs: [x] })).toThrow(/RunContext.run: feeds\[0\] is not a Tensor/);
    await s.dispose();
  });
});

describe('lbfgs refuses bad arguments', () => {
  it.each([
    [{ lr: 0 }, /lbfgs: lr must be a finite number > 0, got 0/],
    [{ lr: NaN }, /lbfgs: lr must be/],
    [{ historySize: 0 }, /lbfgs: historySize must be a positive integer, got 0/],
    [{ maxIter: 2.5 }, /lbfgs: maxIter must be a positive integer, got 2.5/],
    [{ maxEval: -1 }, /lbfgs: maxEval must be a positive integer/],
    [{ tolerance: -1 }, /lbfgs: tolerance must be a finite number >= 0/],
    [{ toleranceChange: Infinity }, /lbfgs: toleranceChange must be/],
    [{ lineSearch: 'strong_wolfe' }, /lbfgs: lineSearch must be 'strongWolfe' or 'none', got "strong_wolfe"/],
    [{ line_search_fn: 'strong_wolfe' }, /lbfgs: unknown option 'line_search_fn'/],
  ])('%j', (opts, message) => {
    expect(() => lbfgs(opts as LbfgsOptions)).toThrow(SymflowError);
    expect(() => lbfgs(opts as LbfgsOptions)).toThrow(message);
  });
});
