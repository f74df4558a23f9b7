import { cond, type Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { add, div, maximum, minimum, mul, pow } from '../graph/ops/binary.js';
import { greaterEqual, lessEqual } from '../graph/ops/compare.js';
import { addN } from '../graph/ops/identity.js';
import { square } from '../graph/ops/math.js';
import { sum } from '../graph/ops/reduce.js';
import { sqrt } from '../graph/ops/unary.js';
import { where } from '../graph/ops/where.js';
import { scalarConstant, variable } from '../graph/sources.js';
import { substitute } from '../graph/substitute.js';
import { sizeOf, type Tensor, type Variable } from '../graph/tensor.js';
import { defineMultiRun, type MultiRunOptimizer, type NamedRun, type Run, type RunOutputs, type StepResult } from './compile.js';
import { checkLearningRate, counter, hyper, type LearningRate, learningRate } from './optimizer.js';
import { type ButcherTableau, checkTableau, tableaux } from './tableaux.js';

export interface AdaptiveOptions {
  /** Largest accepted local error (RMS over all parameters of lr·Σ(bᵢ − b*ᵢ)kᵢ). */
  tol: number;
  /** Safety factor of the step-size controller (default 0.9). */
  safety?: number;
  /** Smallest and largest factor by which one step may change lr (defaults 0.2 and 5). */
  minFactor?: number;
  maxFactor?: number;
  /** Rejections of one step before it fails (default 20). */
  maxRejections?: number;
}

export interface RungeKuttaOptions {
  tableau: ButcherTableau;
  /** The step size of gradient flow. Adaptive mode needs a number (it becomes the controller's first step). */
  lr: LearningRate;
  adaptive?: AdaptiveOptions;
  /**
   * Evaluate every stage in ONE session run: a single compiled graph holds the s gradient evaluations (each on the
   * graph substituted at its stage point), so no stage gradient is stored or copied between runs. Same values as
   * the s-run step (the same kernels on the same inputs); `runsPerStep` is 1. Default false: one run per stage.
   */
  fused?: boolean;
}

/**
 * The terms (−c·lr)·Σgⱼ of lr·Σ cⱼkⱼ with kⱼ = −gⱼ: stages that share a coefficient are summed first (Heun's
 * ½, ½ and RK4's ⅙, ⅓, ⅓, ⅙ need one multiply per distinct coefficient, not per stage), each coefficient joins
 * lr in a scalar (folded at compile time for a constant lr), and zero coefficients cost nothing and add no rounding.
 */
function terms(coefs: readonly number[], gs: readonly Tensor[], lr: Tensor): Tensor[] {
  const groups = new Map<number, Tensor[]>();
  coefs.forEach((c, j) => {
    if (c !== 0) groups.set(c, [...(groups.get(c) ?? []), gs[j]!]);
  });
  return [...groups].map(([c, g]) => mul(mul(-c, lr), g.length === 1 ? g[0]! : addN(g)));
}

/**
 * Gradient descent as an explicit Runge–Kutta method for the gradient flow dp/dt = −∇L(p), on ANY explicit Butcher
 * tableau: s stages are s session runs per step, run i evaluating kᵢ = −∇L at p₀ + lr·Σⱼ aᵢⱼkⱼ on the SAME batch;
 * the last run sets p = p₀ + lr·Σᵢ bᵢkᵢ. The stage points are never written to the parameters: run i evaluates a
 * copy of the gradient graph with p replaced by its stage point (`substitute`), so only the stage gradients are stored and
 * the parameters hold p₀ until the last run. With `adaptive` (embedded tableaux), the last run also estimates the local
 * error lr·Σ(bᵢ − b*ᵢ)kᵢ in the graph; a step over `tol` is rejected (parameters left at p₀, a smaller lr) and
 * retried, and an accepted step may grow lr (the standard controller, exponent 1/(q + 1) with q the lower order).
 *
 * ```ts
 * const rk4 = rungeKutta({ tableau: tableaux.rk4, lr: 0.1 });
 * const rk45 = rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.1, adaptive: { tol: 1e-4 } });
 * ```
 * @param opts tableau, lr, adaptive
 * @returns a multi-run optimizer
 */
export function rungeKutta(opts: RungeKuttaOptions): MultiRunOptimizer {
  const t = opts?.tableau;
  checkTableau(t);
  const name = t.name;
  // Errors say which function and which method: `rungeKutta(rk4): lr must be …`.
  const who = `rungeKutta(${name})`;
  const lrOpt = checkLearningRate(who, opts.lr);
  if (opts.fused !== undefined && typeof opts.fused !== 'boolean') throw new SymflowError(who, `fused must be true or false, got ${String(opts.fused)}`);
  const adaptive = opts.adaptive === undefined ? undefined : checkAdaptive(who, t, lrOpt, opts.adaptive);
  const s = t.b.length;
  const fused = opts.fused === true;
  return defineMultiRun(fused ? `${name} (fused)` : name, (ctx) => {
    const { params, grads } = ctx;
    const iterations = counter(name);
    const lrVar = adaptive ? variable(adaptive.lr, { name: `${name}/lr`, trainable: false }) : undefined;
    const lr = lrVar ?? learningRate(lrOpt, 0, iterations);
    // p₀ + lr·Σ coef·k over the given stage gradients (stage j's for each parameter).
    const point = (coefs: readonly number[], i: number, stages: readonly (readonly Tensor[])[]): Tensor => {
      const ts = terms(coefs, stages.map((g) => g[i]!), lr);
      return ts.length === 0 ? params[i]! : addN([params[i]!, ...ts]);
    };
    // Stage r's gradient: the gradient graph with each parameter replaced by its stage point (graph to graph), so
    // evaluating it needs no write of the parameters.
    const gradsAt = (r: number, stages: readonly (readonly Tensor[])[]): readonly Tensor[] => {
      if (r === 0 || t.a[r]!.every((c) => c === 0)) return grads;
      return substitute(grads, new Map(params.map((p, i) => [p, point(t.a[r]!, i, stages)] as const)));
    };
    // The last run: the new parameters (and, adaptive, the error test that accepts or rejects them).
    // `finite`: what must be finite besides the new values (the fused run's gradient at the starting point).
    const finish = (outputs: StageOutputs, stages: readonly (readonly Tensor[])[], finite: readonly Tensor[] = []): StageRun => {
      const apply: Update[] = [...params.map((p, i): Update => [p, point(t.b, i, stages)]), [iterations, add(iterations, 1)]];
      if (adaptive === undefined) return ctx.run({ outputs, updates: apply, finite });
      const test = errorTest(t, adaptive, lrVar!, errorNorm(params, stages, lr, t.b.map((b, j) => b - t.bStar![j]!)));
      const updates = [cond(test.accepted, () => [...apply, ...test.rejected], () => test.rejected)];
      return ctx.run({ outputs: { ...outputs, err: test.err, accepted: test.accepted }, updates, finite });
    };
    // The first run reports the loss, the user's extra outputs and the lr the step uses.
    const first: StageOutputs = { loss: ctx.loss, outputs: ctx.outputs, lr };
    let runs: StageRun[];
    let stored: Variable[] = [];
    if (fused) {
      // Every stage in one graph: stage r reads the earlier stages' gradient tensors themselves.
      const stages: (readonly Tensor[])[] = [];
      for (let r = 0; r < s; r++) stages.push(gradsAt(r, stages));
      runs = [finish(first, stages, grads)];
    } else {
      // Only the stage gradients gⱼ = −kⱼ are stored between runs; the parameters keep p₀ until the last run.
      const gs = Array.from({ length: s - 1 }, (_, i) => ctx.slots(name, `g${i + 1}`));
      stored = gs.flat();
      runs = Array.from({ length: s }, (_, r) => {
        const g = gradsAt(r, gs);
        const outputs: StageOutputs = r === 0 ? first : {};
        // A non-finite gradient at the starting point is a bad batch (refused at once: no lr would fix it); one at a
        // later stage is not refused here: it reaches the last run, where an adaptive step rejects it.
        if (r < s - 1) return ctx.run({ outputs, updates: params.map((_, i): Update => [gs[r]![i]!, g[i]!]), guard: r === 0 });
        return finish(outputs, [...gs, g]);
      });
    }
    return {
      runsPerStep: runs.length,
      variables: [...stored, iterations, ...(lrVar ? [lrVar] : [])],
      step: stepScript(who, runs, adaptive),
    };
  });
}

/** What a stage run reports, by name: the first the loss, extra outputs and lr; an adaptive last one its verdict. */
type StageOutputs = { loss?: Tensor; outputs?: readonly Tensor[]; lr?: Tensor; err?: Tensor; accepted?: Tensor };
type StageRun = NamedRun<StageOutputs & RunOutputs>;

/**
 * The adaptive step's test, in the graph: accepted when the error norm is within tol; lr changes either way (the
 * standard controller, exponent 1/(q + 1) with q the lower order), so `rejected` holds for both outcomes.
 */
function errorTest(t: ButcherTableau, adaptive: ReturnType<typeof checkAdaptive>, lrVar: Variable, err: Tensor) {
  const accepted = lessEqual(err, adaptive.tol);
  const exponent = 1 / (Math.min(t.order, t.errorOrder ?? t.order - 1) + 1);
  const raw = mul(adaptive.safety, pow(div(adaptive.tol, err), exponent));
  // A NaN error (a diverging step) is rejected and shrinks lr as far as allowed.
  const factor = where(greaterEqual(err, 0), minimum(adaptive.maxFactor, maximum(adaptive.minFactor, raw)), adaptive.minFactor);
  const rejected: Update[] = [[lrVar, mul(lrVar, factor)]];
  return { err, accepted, rejected };
}

/**
 * The host script of one step: the runs in order, the loss and lr from the first, and for adaptive methods the
 * verdict from the last, retrying a rejected step (its lr already shrunk) up to maxRejections times.
 */
function stepScript(who: string, runs: readonly StageRun[], adaptive: ReturnType<typeof checkAdaptive> | undefined) {
  return async (batch: Parameters<Run>[0]): Promise<StepResult> => {
    for (let rejections = 0; ; rejections++) {
      const results = [];
      for (const run of runs) results.push(await run(batch));
      const head = results[0]!;
      const base: StepResult = { loss: head.loss!.data[0]!, outputs: head.outputs ?? [], runs: runs.length * (rejections + 1), lr: head.lr!.data[0]! };
      if (adaptive === undefined) return base;
      const last = results[runs.length - 1]!;
      const errValue = last.err!.data[0]!;
      if (last.accepted!.data[0] === 1) return { ...base, accepted: true, rejections, errorNorm: errValue };
      if (rejections + 1 > adaptive.maxRejections) {
        throw new SymflowError(who, `step rejected ${rejections + 1} times (error norm ${errValue} > tol ${adaptive.tol}); lower lr or raise tol`);
      }
    }
  };
}

/** RMS over all parameter elements of lr·Σⱼ eⱼkⱼ (eⱼ = bⱼ − b*ⱼ) over the stages' gradients. */
function errorNorm(params: readonly Variable[], stages: readonly (readonly Tensor[])[], lr: Tensor, e: readonly number[]): Tensor {
  const count = params.reduce((n, p) => n + sizeOf(p.shape as number[]), 0);
  const squares = params.map((_, i) => {
    const ts = terms(e, stages.map((g) => g[i]!), lr);
    return ts.length === 0 ? undefined : sum(square(addN(ts)));
  }).filter((x): x is Tensor => x !== undefined);
  if (squares.length === 0) return scalarConstant(0, 'float32');
  return sqrt(div(addN(squares), count));
}

function checkAdaptive(name: string, t: ButcherTableau, lr: LearningRate, a: AdaptiveOptions) {
  if (t.bStar === undefined) throw new SymflowError(name, `adaptive mode needs an embedded tableau (one with bStar), '${t.name}' has none`);
  if (typeof lr !== 'number' || lr <= 0) throw new SymflowError(name, 'adaptive mode needs a positive number as lr (its first step size)');
  const tol = hyper(name, 'adaptive.tol', a?.tol, { min: 0, minExclusive: true });
  const safety = hyper(name, 'adaptive.safety', a.safety ?? 0.9, { min: 0, minExclusive: true, max: 1 });
  const minFactor = hyper(name, 'adaptive.minFactor', a.minFactor ?? 0.2, { min: 0, minExclusive: true, max: 1 });
  const maxFactor = hyper(name, 'adaptive.maxFactor', a.maxFactor ?? 5, { min: 1 });
  const maxRejections = hyper(name, 'adaptive.maxRejections', a.maxRejections ?? 20, { min: 0 });
  return { tol, safety, minFactor, maxFactor, maxRejections, lr };
}

/**
 * Heun's method: `rungeKutta` with the heun tableau (two runs per step on the same batch; one with `fused`). It is
 * the seed's form: p̃ = p − lr·g(p); p ← p̃ − lr/2·(g(p̃) − g(p)).
 * @param opts lr, fused @returns a multi-run optimizer
 */
export function heun(opts: { lr: LearningRate; fused?: boolean }): MultiRunOptimizer {
  return rungeKutta({ tableau: tableaux.heun, lr: opts?.lr, ...(opts?.fused === undefined ? {} : { fused: opts.fused }) });
}
