import { cond, type Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { add, div, maximum, minimum, mul, pow } from '../graph/ops/binary.js';
import { equal, greater, greaterEqual, less, lessEqual, logicalAnd, logicalOr } from '../graph/ops/compare.js';
import { addN } from '../graph/ops/identity.js';
import { square, sub } from '../graph/ops/math.js';
import { sum } from '../graph/ops/reduce.js';
import { abs, sqrt } from '../graph/ops/unary.js';
import { where } from '../graph/ops/where.js';
import { scalarConstant, variable } from '../graph/sources.js';
import { substitute } from '../graph/substitute.js';
import { isVariable, sizeOf, type Tensor, type Variable } from '../graph/tensor.js';
import { toposort } from '../graph/walk.js';
import type { DeviceValue } from '../session/session.js';
import { defineMultiRun, type MultiRunOptimizer, type NamedRun, type RunOutputs, type StepResult } from './compile.js';
import type { HostTensor } from '../graph/hostValue.js';
import { checkLearningRate, counter, hyper, type LearningRate, learningRate } from './optimizer.js';
import { type ButcherTableau, checkTableau, isFsal, tableaux } from './tableaux.js';

/** How an adaptive step's size changes with its error norm ε (accepted when ε ≤ 1). */
export type Controller =
  /** scipy's `solve_ivp`: factor = safety·ε^(−1/(q+1)), clipped to [minFactor, maxFactor], no growth right after a rejection. */
  | 'scipy'
  /** OrdinaryDiffEq.jl's PI controller: factor = safety·ε^(−β₁)·ε_prev^(β₂); defaults β₁ = 7/(10k), β₂ = 2/(5k), k the order. */
  | {
    /** Selects the PI controller. */
    kind: 'pi';
    /** Exponent β₁ ≥ 0 of the current error norm. Default 7/(10k), k the tableau's order. */
    beta1?: number;
    /** Exponent β₂ ≥ 0 of the previous accepted step's error norm. Default 2/(5k). */
    beta2?: number;
  }
  /**
   * diffrax's PIDController: factor = safety·(1/εₙ)^(β₁/k)·(1/εₙ₋₁)^(β₂/k)·(1/εₙ₋₂)^(β₃/k) with β₁ = p + i + d,
   * β₂ = −(p + 2d), β₃ = d, k = q + 1; never below 1 after an accepted step. Defaults p = 0, i = 1, d = 0.
   */
  | {
    /** Selects the PID controller. */
    kind: 'pid';
    /** Proportional coefficient p. Default 0. */
    pcoeff?: number;
    /** Integral coefficient i. Default 1 (with p = d = 0: the plain I controller, safety·ε^(−1/k)). */
    icoeff?: number;
    /** Derivative coefficient d. Default 0. */
    dcoeff?: number;
  };

/** `RungeKuttaOptions.adaptive`: error control of an embedded tableau. */
export interface AdaptiveOptions {
  /**
   * Relative and absolute tolerance: the error norm is RMS(err / (atol + rtol·max(|p₀|, |p₁|))) over all parameter
   * elements and a step is accepted when it is ≤ 1 (scipy's defaults: rtol 1e-3, atol 1e-6). rtol ≥ 0, default 1e-3.
   */
  rtol?: number;
  /** Absolute tolerance ≥ 0 (see `rtol`; not both 0). Default 1e-6. */
  atol?: number;
  /** Shorthand for `{atol: tol, rtol: 0}`: the RMS of the error itself must be ≤ tol (what `tol` always meant). Positive; not with rtol / atol. */
  tol?: number;
  /** The step-size controller (default 'scipy'). */
  controller?: Controller;
  /** Safety factor of the controller, in (0, 1] (default 0.9). */
  safety?: number;
  /** Smallest factor by which one step may shrink lr, in (0, 1] (default 0.2, scipy's). */
  minFactor?: number;
  /** Largest factor by which one step may grow lr, ≥ 1 (default 10, scipy's). */
  maxFactor?: number;
  /** Smallest step size ≥ 0: lr is clipped to [dtMin, dtMax], and a step rejected at dtMin is an error. Default 0. */
  dtMin?: number;
  /** Largest step size, positive (the first step too is clipped to it). Default: unbounded. */
  dtMax?: number;
  /** Rejections of one step before it fails with an error (default 20). */
  maxRejections?: number;
}

/** Options of `rungeKutta`. */
export interface RungeKuttaOptions {
  /** The method: one of `tableaux` or your own explicit table (checked by `checkTableau`). Adaptive mode needs `bStar`. */
  tableau: ButcherTableau;
  /**
   * The step size of gradient flow. Adaptive mode needs a number (the first step) or 'auto': Hairer's initial step
   * (scipy's `select_initial_step`), from the gradient at the start and one more evaluation, on the first step.
   */
  lr: LearningRate | 'auto';
  /**
   * Error control (embedded tableaux only): each step's error is estimated, steps with error norm > 1 are rejected
   * and retried smaller, and the controller sets the next step size (`StepResult.lr`). Default: fixed steps.
   */
  adaptive?: AdaptiveOptions;
  /**
   * Evaluate every stage in ONE session run: a single compiled graph holds the s gradient evaluations (each on the
   * graph substituted at its stage point), so no stage gradient is stored or copied between runs. Same values as
   * the s-run step (the same kernels on the same inputs); `runsPerStep` is 1. Default false: one run per stage.
   */
  fused?: boolean;
  /**
   * Declares that every step is fed the same batch (full-batch training), so a tableau whose last stage is the new
   * point (FSAL: Dormand–Prince, Bogacki–Shampine, Tsit5) reuses that gradient as the next step's first. Without
   * it the reuse happens when the step has no inputs or is fed the same `DeviceValue`s. Default false.
   */
  fullBatch?: boolean;
}

/**
 * The terms (−c·lr)·Σgⱼ of lr·Σ cⱼkⱼ with kⱼ = −gⱼ: stages that share a coefficient are summed first (Heun's
 * ½, ½ and RK4's ⅙, ⅓, ⅓, ⅙ need one multiply per distinct coefficient, not per stage), each coefficient joins
 * lr in a scalar (folded at compile time for a constant lr), and zero coefficients cost nothing and add no rounding.
 */
function terms(coefs: readonly number[], gs: readonly (Tensor | undefined)[], lr: Tensor): Tensor[] {
  const groups = new Map<number, Tensor[]>();
  coefs.forEach((c, j) => {
    if (c !== 0) groups.set(c, [...(groups.get(c) ?? []), gs[j]!]);
  });
  return [...groups].map(([c, g]) => mul(mul(-c, lr), g.length === 1 ? g[0]! : addN(g)));
}

/**
 * The stages a step must evaluate: those the solution reads (bⱼ ≠ 0), the error estimate reads (adaptive,
 * bⱼ − b*ⱼ ≠ 0) or a needed later stage reads (aᵢⱼ ≠ 0). Dormand–Prince without error control needs 6 of its 7.
 */
export function neededStages(t: ButcherTableau, adaptive: boolean): boolean[] {
  const s = t.b.length;
  const need = t.b.map((b, j) => b !== 0 || (adaptive && b !== t.bStar![j]!));
  for (let i = s - 1; i >= 0; i--) if (need[i]) t.a[i]!.forEach((c, j) => (need[j] ||= c !== 0));
  // The first stage is the gradient at the start: always evaluated (it reports the loss there).
  need[0] = true;
  return need;
}

/**
 * Gradient descent as an explicit Runge–Kutta method for the gradient flow dp/dt = −∇L(p), on ANY explicit Butcher
 * tableau: each needed stage is a session run, run i evaluating kᵢ = −∇L at p₀ + lr·Σⱼ aᵢⱼkⱼ on the SAME batch;
 * the last run sets p = p₀ + lr·Σᵢ bᵢkᵢ. The stage points are never written to the parameters: run i evaluates a
 * copy of the gradient graph with p replaced by its stage point (`substitute`), so only the stage gradients are
 * stored. With `adaptive` (embedded tableaux), the last run also computes the error norm RMS(err/(atol +
 * rtol·max(|p₀|, |p₁|))) of err = lr·Σ(bᵢ − b*ᵢ)kᵢ in the graph; a step with norm > 1 is rejected (parameters left
 * at p₀, a smaller lr) and retried without re-evaluating the first stage, and the controller sets the next lr.
 * An FSAL tableau's last stage is the next step's first when the batch is the same.
 *
 * ```ts
 * const rk4 = rungeKutta({ tableau: tableaux.rk4, lr: 0.1 });
 * const rk45 = rungeKutta({ tableau: tableaux.dormandPrince, lr: 'auto', adaptive: { rtol: 1e-3, atol: 1e-6 } });
 * ```
 * @param opts tableau, lr, adaptive, fused, fullBatch
 * @returns a multi-run optimizer
 */
export function rungeKutta(opts: RungeKuttaOptions): MultiRunOptimizer {
  const t = opts?.tableau;
  checkTableau(t);
  const name = t.name;
  // Errors say which function and which method: `rungeKutta(rk4): lr must be …`.
  const who = `rungeKutta(${name})`;
  if (opts.lr === 'auto' && opts.adaptive === undefined) throw new SymflowError(who, "lr 'auto' needs adaptive mode (it picks the first step from the tolerances)");
  const lrOpt = opts.lr === 'auto' ? 'auto' : checkLearningRate(who, opts.lr);
  if (opts.fused !== undefined && typeof opts.fused !== 'boolean') throw new SymflowError(who, `fused must be true or false, got ${String(opts.fused)}`);
  if (opts.fullBatch !== undefined && typeof opts.fullBatch !== 'boolean') throw new SymflowError(who, `fullBatch must be true or false, got ${String(opts.fullBatch)}`);
  const adaptive = opts.adaptive === undefined ? undefined : checkAdaptive(who, t, lrOpt, opts.adaptive);
  const s = t.b.length;
  const fused = opts.fused === true;
  const need = neededStages(t, adaptive !== undefined);
  const evaluated = need.flatMap((n, j) => (n ? [j] : []));
  const fsal = adaptive !== undefined && isFsal(t) && need[s - 1]! && !fused;
  return defineMultiRun(fused ? `${name} (fused)` : name, (ctx) => {
    const { params, grads, session } = ctx;
    const iterations = counter(name);
    const control = adaptive ? controllerState(name, t, adaptive) : undefined;
    const lrVar = adaptive ? variable(adaptive.first, { name: `${name}/lr`, trainable: false }) : undefined;
    const fixedLr = lrVar ?? learningRate(lrOpt as LearningRate, 0, iterations);
    // p₀ + lr·Σ coef·k over the given stage gradients (stage j's for each parameter).
    const pointWith = (lr: Tensor) => (coefs: readonly number[], i: number, stages: readonly (readonly Tensor[] | undefined)[]): Tensor => {
      const ts = terms(coefs, stages.map((g) => g?.[i]), lr);
      return ts.length === 0 ? params[i]! : addN([params[i]!, ...ts]);
    };
    // Stage r's gradient (and, with `extra`, those tensors too) at its stage point: the graph substituted, so
    // evaluating it needs no write of the parameters.
    const at = (lr: Tensor, r: number, stages: readonly (readonly Tensor[] | undefined)[], extra: readonly Tensor[] = []): Tensor[] => {
      if (r === 0 || t.a[r]!.every((c) => c === 0)) return [...grads, ...extra];
      const point = pointWith(lr);
      return substitute([...grads, ...extra], new Map(params.map((p, i) => [p, point(t.a[r]!, i, stages)] as const)));
    };
    // A random draw makes the gradient at p₁ differ between this step and the next: no reuse then.
    const reusable = fsal && !readsRandom([ctx.loss, ...grads]);
    const e = adaptive ? t.b.map((b, j) => b - t.bStar![j]!) : [];
    // DOP853's second, 3rd-order companion (scipy's combined norm).
    const e3 = adaptive && t.bStar3 ? t.b.map((b, j) => b - t.bStar3![j]!) : undefined;

    // The last run: the new parameters (adaptive: the error test that accepts or rejects them, and the controller).
    // `finite`: what must be finite besides the new values (the fused run's gradient at the starting point).
    const finish = (lr: Tensor, outputs: StageOutputs, stages: readonly (readonly Tensor[] | undefined)[], extra: { finite?: readonly Tensor[]; also?: Update[]; last?: readonly Tensor[] } = {}): StageRun => {
      const point = pointWith(lr);
      const p1 = params.map((_, i) => point(t.b, i, stages));
      const apply: Update[] = [...params.map((p, i): Update => [p, p1[i]!]), [iterations, add(iterations, 1)]];
      if (adaptive === undefined) return ctx.run({ outputs: { ...outputs, lr }, updates: [...(extra.also ?? []), ...apply], finite: extra.finite ?? [] });
      const err = errorNorm(params, p1, stages, lr, e, adaptive, e3);
      const test = control!.test(err, lr, lrVar!);
      // FSAL: the last stage's gradient (at p₁) becomes the next step's first, stored where stage 0's goes.
      const keep: Update[] = reusable && extra.last ? extra.last.map((g, i): Update => [firstSlot[i]!, g]) : [];
      const updates = [...(extra.also ?? []), cond(test.accepted, () => [...apply, ...keep, ...test.onAccept()], () => test.onReject())];
      return ctx.run({ outputs: { ...outputs, lr, err, accepted: test.accepted }, updates, finite: extra.finite ?? [] });
    };

    // The first run reports the loss and the user's extra outputs at p₀.
    const first: StageOutputs = { loss: ctx.loss, outputs: ctx.outputs };
    // lr 'auto': the first step's size is Hairer's estimate, chosen in the first run the first time (a lazy cond: a
    // scalar test on later steps).
    const auto = lrOpt === 'auto' ? autoStep(t, adaptive!, params, grads) : undefined;
    let firstSlot: Variable[] = [];
    let runs: StageRun[];
    let stored: Variable[] = [];
    if (fused) {
      const lr = auto ? cond(equal(lrVar!, 0), () => clipLr(auto(), adaptive!), () => lrVar!) : fixedLr;
      // Every stage in one graph: stage r reads the earlier stages' gradient tensors themselves.
      const stages: (readonly Tensor[] | undefined)[] = [];
      for (let r = 0; r < s; r++) stages.push(need[r] ? at(lr, r, stages) : undefined);
      runs = [finish(lr, first, stages, { finite: grads })];
    } else {
      // Only the stage gradients gⱼ = −kⱼ are stored between runs; the parameters keep p₀ until the last run.
      const last = evaluated.at(-1)!;
      const gs: (Variable[] | undefined)[] = Array.from({ length: s }, (_, j) => (need[j] && j < last ? ctx.slots(name, `g${j + 1}`) : undefined));
      firstSlot = gs[0] ?? [];
      stored = gs.flatMap((g) => g ?? []);
      const lr = fixedLr;
      runs = evaluated.map((r) => {
        const outputs: StageOutputs = r === 0 ? first : {};
        // lr 'auto' picks the first step in the first run; later runs read the variable it wrote.
        const also: Update[] = r === 0 && auto ? [[lrVar!, cond(equal(lrVar!, 0), () => clipLr(auto(), adaptive!), () => lrVar!)]] : [];
        if (r < last) {
          const g = at(lr, r, gs);
          // A non-finite gradient at the starting point is a bad batch (refused at once: no lr would fix it); one at
          // a later stage is not refused here: it reaches the last run, where an adaptive step rejects it.
          return ctx.run({ outputs, updates: [...also, ...params.map((_, i): Update => [gs[r]![i]!, g[i]!])], guard: r === 0 });
        }
        // The last stage of an FSAL tableau is at p₁: with its gradient come the loss and outputs there.
        const withLoss = reusable ? [ctx.loss, ...ctx.outputs] : [];
        const evaluatedLast = at(lr, r, gs, withLoss);
        const g = evaluatedLast.slice(0, params.length);
        const atNew: StageOutputs = reusable ? { lossNew: evaluatedLast[params.length]!, outputsNew: evaluatedLast.slice(params.length + 1) } : {};
        return finish(lr, { ...outputs, ...atNew }, gs.map((x, j) => (j === r ? g : x)), { also, last: g });
      });
    }
    const sameBatch = batchTracker(opts.fullBatch === true);
    // Every variable the loss and gradients read (parameters, and any other state, e.g. a fed-back constant), and
    // the stored first stage: a write of any of them between steps makes the carried gradient stale.
    const watched = reusable ? [...readVariables([ctx.loss, ...grads]), ...firstSlot] : [];
    const tokens = () => watched.map((v) => session.valueToken(v));
    let carried: { tokens: unknown[]; loss: number; outputs: StepResult['outputs'] } | undefined;
    const program = stepScript(who, runs, evaluated, adaptive, {
      reuse: (batch) => {
        const same = sameBatch(batch);
        if (!reusable || carried === undefined || !same) return undefined;
        const now = tokens();
        return now.every((x, i) => x === carried!.tokens[i]) ? carried : undefined;
      },
      keep: (result) => {
        carried = reusable && result.lossNew !== undefined ? { tokens: tokens(), loss: result.lossNew.data[0]!, outputs: result.outputsNew ?? [] } : undefined;
      },
      autoEvaluations: () => (auto ? 1 : 0),
    });
    const n = ctx.outputs.length;
    return {
      runsPerStep: runs.length,
      variables: [...stored, iterations, ...(lrVar ? [lrVar] : []), ...(control?.variables ?? [])],
      step: program,
      // Fused without error control, a step is its one run (outputs: loss, the extra outputs, lr): `steps` may run
      // k of them in one call.
      ...(fused && adaptive === undefined ? {
        resultOf: (out: readonly HostTensor[]): StepResult => ({ loss: out[0]!.data[0]!, outputs: out.slice(1, 1 + n), runs: 1, lr: out[1 + n]!.data[0]!, gradientEvaluations: evaluated.length }),
      } : {}),
    };
  });
}

/** What a stage run reports, by name: the first the loss and extra outputs; the last lr and (adaptive) its verdict. */
type StageOutputs = {
  loss?: Tensor; outputs?: readonly Tensor[]; lr?: Tensor; err?: Tensor; accepted?: Tensor; lossNew?: Tensor; outputsNew?: readonly Tensor[];
};
type StageRun = NamedRun<StageOutputs & RunOutputs>;
type StageResult = Awaited<ReturnType<StageRun>>;

/** Whether a graph draws random values (its gradient at a point then changes from step to step). */
function readsRandom(roots: readonly Tensor[]): boolean {
  return toposort(roots, (x) => x.inputs).some((x) => x.op === 'random');
}

/** The variables a graph reads. */
function readVariables(roots: readonly Tensor[]): Variable[] {
  return toposort(roots, (x) => x.inputs).filter((x): x is Variable => isVariable(x));
}

/** Tells whether a step's batch is the previous step's: no inputs, the same device values, or declared full batch. */
function batchTracker(fullBatch: boolean) {
  let previous: readonly DeviceValue[] | undefined;
  return (batch: readonly DeviceValue[]): boolean => {
    const same = fullBatch || batch.length === 0 || (previous !== undefined && previous.length === batch.length && batch.every((b, i) => b === previous![i] && !b.isDisposed));
    previous = batch;
    return same;
  };
}

/** lr clipped to [dtMin, dtMax]. */
function clipLr(lr: Tensor, a: AdaptiveSettings): Tensor {
  let x = lr;
  if (a.dtMax !== Infinity) x = minimum(x, a.dtMax);
  if (a.dtMin > 0) x = maximum(x, a.dtMin);
  return x;
}

/**
 * Hairer's initial step (Hairer, Nørsett & Wanner, and scipy's `select_initial_step`), from f₀ = −∇L(p₀) and one
 * more gradient at p₀ + h₀f₀: d₀ = ‖p₀‖, d₁ = ‖f₀‖, h₀ = 0.01·d₀/d₁ (1e-6 when either is below 1e-5),
 * d₂ = ‖f₁ − f₀‖/h₀, h₁ = (0.01/max(d₁, d₂))^(1/(q+1)) (max(1e-6, 1e-3·h₀) when both are ≤ 1e-15), h = min(100·h₀, h₁),
 * the norms RMS over all elements scaled by atol + rtol·|p₀|.
 */
function autoStep(t: ButcherTableau, a: AdaptiveSettings, params: readonly Variable[], grads: readonly Tensor[]): () => Tensor {
  return () => {
    const count = params.reduce((n, p) => n + sizeOf(p.shape as number[]), 0);
    const scale = params.map((p) => add(a.atol, mul(a.rtol, abs(p))));
    const rms = (xs: readonly Tensor[]) => sqrt(div(addN(xs.map((x, i) => sum(square(div(x, scale[i]!))))), count));
    const d0 = rms(params);
    const d1 = rms(grads);
    const small = logicalOr(less(d0, 1e-5), less(d1, 1e-5));
    const h0 = where(small, 1e-6, mul(0.01, div(d0, where(small, 1, d1))));
    const g1 = substitute(grads, new Map(params.map((p, i) => [p, sub(p, mul(h0, grads[i]!))] as const)));
    const d2 = div(rms(g1.map((g, i) => sub(g, grads[i]!))), h0);
    const q = errorOrder(t);
    const flat = logicalAnd(lessEqual(d1, 1e-15), lessEqual(d2, 1e-15));
    const h1 = where(flat, maximum(1e-6, mul(h0, 1e-3)), pow(div(0.01, maximum(d1, d2)), 1 / (q + 1)));
    return minimum(mul(100, h0), h1);
  };
}

/** The order q in the controller's exponent −1/(q + 1): the error estimate's (DOP853's combined norm: order − 1, scipy's 7). */
const errorOrder = (t: ButcherTableau) => (t.bStar3 !== undefined ? t.order - 1 : Math.min(t.order, t.errorOrder ?? t.order - 1));

/** A controller in the graph: its verdict on an error norm and what it assigns on either outcome. */
interface ControllerGraph {
  readonly variables: readonly Variable[];
  test(err: Tensor, lr: Tensor, lrVar: Variable): { accepted: Tensor; onAccept: () => Update[]; onReject: () => Update[] };
}

/**
 * The controllers, with their state as graph variables (checkpointed, restored with a failed step). ε is the error
 * norm (accept when ε ≤ 1; a NaN is a rejection that shrinks lr by minFactor); lr changes either way.
 */
function controllerState(name: string, t: ButcherTableau, a: AdaptiveSettings): ControllerGraph {
  const q = errorOrder(t);
  // NaN or ±Inf error: rejected, shrunk as far as allowed.
  const finiteErr = (err: Tensor) => logicalAnd(greaterEqual(err, 0), less(err, Infinity));
  const next = (lr: Tensor, factor: Tensor) => clipLr(mul(lr, factor), a);
  const c = a.controller;
  if (c === 'scipy') {
    // scipy: no growth on the step right after a rejection, within one step.
    const rejected = counter(name, 'rejected');
    return {
      variables: [rejected],
      test(err, lr, lrVar) {
        const raw = mul(a.safety, pow(err, -1 / (q + 1)));
        const up = where(equal(err, 0), a.maxFactor, minimum(a.maxFactor, raw));
        const grow = where(equal(rejected, 1), minimum(1, up), up);
        const shrink = where(finiteErr(err), maximum(a.minFactor, raw), a.minFactor);
        return {
          accepted: lessEqual(err, 1),
          onAccept: () => [[lrVar, next(lr, grow)], [rejected, 0]],
          onReject: () => [[lrVar, next(lr, shrink)], [rejected, 1]],
        };
      },
    };
  }
  if (c.kind === 'pi') {
    // OrdinaryDiffEq: q = ε^β₁/qold^β₂, dt/q clipped; on rejection dt·max(qmin, γ/ε^β₁); qold = max(ε, 1e-4) on accept.
    const qold = variable(1e-4, { name: `${name}/qold`, trainable: false });
    const beta1 = c.beta1!;
    const beta2 = c.beta2!;
    return {
      variables: [qold],
      test(err, lr, lrVar) {
        const q11 = pow(err, beta1);
        const up = where(equal(err, 0), a.maxFactor, minimum(a.maxFactor, maximum(a.minFactor, div(mul(a.safety, pow(qold, beta2)), q11))));
        const shrink = where(finiteErr(err), maximum(a.minFactor, div(a.safety, q11)), a.minFactor);
        return {
          accepted: lessEqual(err, 1),
          onAccept: () => [[lrVar, next(lr, up)], [qold, maximum(err, 1e-4)]],
          onReject: () => [[lrVar, next(lr, shrink)]],
        };
      },
    };
  }
  // diffrax: inverse scaled errors of the last two accepted steps (1 at the start; 0 and ∞ replaced by 1).
  const prev = variable(1, { name: `${name}/invErrPrev`, trainable: false });
  const prevPrev = variable(1, { name: `${name}/invErrPrevPrev`, trainable: false });
  const k = q + 1;
  const [c1, c2, c3] = [(c.pcoeff! + c.icoeff! + c.dcoeff!) / k, -(c.pcoeff! + 2 * c.dcoeff!) / k, c.dcoeff! / k];
  return {
    variables: [prev, prevPrev],
    test(err, lr, lrVar) {
      const inv = div(1, err);
      let raw: Tensor = mul(a.safety, c1 === 0 ? 1 : pow(inv, c1));
      if (c2 !== 0) raw = mul(raw, pow(prev, c2));
      if (c3 !== 0) raw = mul(raw, pow(prevPrev, c3));
      const up = minimum(a.maxFactor, maximum(1, raw));
      const shrink = where(finiteErr(err), minimum(a.maxFactor, maximum(a.minFactor, raw)), a.minFactor);
      const kept = where(logicalOr(equal(inv, 0), greater(inv, 3.4e38)), 1, inv);
      return {
        accepted: lessEqual(err, 1),
        onAccept: () => [[lrVar, next(lr, up)], [prevPrev, prev], [prev, kept]],
        onReject: () => [[lrVar, next(lr, shrink)]],
      };
    },
  };
}

interface ScriptHooks {
  /** The loss and outputs at p₀ carried from the last step (FSAL), when the first run can be skipped. */
  reuse(batch: readonly DeviceValue[]): { loss: number; outputs: StepResult['outputs'] } | undefined;
  /** Called with the last run's results of an accepted step. */
  keep(last: StageResult): void;
  /** Gradient evaluations `lr: 'auto'` adds on the first step. */
  autoEvaluations(): number;
}

/**
 * The host script of one step: the runs in order; for adaptive methods the verdict from the last, a rejected step
 * retried from the second run (the first stage, ∇L(p₀), is stored and the parameters are unchanged) up to
 * maxRejections times; with FSAL, the first run skipped when the last step's last stage is this step's first.
 */
function stepScript(who: string, runs: readonly StageRun[], evaluated: readonly number[], adaptive: AdaptiveSettings | undefined, hooks: ScriptHooks) {
  let firstStep = true;
  return async (batch: readonly DeviceValue[]): Promise<StepResult> => {
    const carried = hooks.reuse(batch);
    let loss = carried?.loss;
    let outputs = carried?.outputs;
    let runCount = 0;
    let evaluations = 0;
    if (firstStep && loss === undefined) evaluations += hooks.autoEvaluations();
    for (let rejections = 0; ; rejections++) {
      // The first stage runs unless FSAL carried it in, and only on the first attempt.
      const skipFirst = carried !== undefined || rejections > 0;
      let last: StageResult | undefined;
      for (const [k, run] of runs.entries()) {
        if (k === 0 && skipFirst && runs.length > 1) continue;
        const out = await run(batch);
        runCount++;
        // A fused run evaluates every needed stage; a stage run one.
        evaluations += runs.length === 1 ? evaluated.length : 1;
        if (k === 0 && loss === undefined) {
          loss = out.loss!.data[0]!;
          outputs = out.outputs ?? [];
        }
        last = out;
      }
      const base: StepResult = { loss: loss!, outputs: outputs ?? [], runs: runCount, lr: last!.lr!.data[0]!, gradientEvaluations: evaluations };
      firstStep = false;
      if (adaptive === undefined) {
        hooks.keep(last!);
        return base;
      }
      const errValue = last!.err!.data[0]!;
      if (last!.accepted!.data[0] === 1) {
        hooks.keep(last!);
        return { ...base, accepted: true, rejections, errorNorm: errValue };
      }
      if (adaptive.dtMin > 0 && base.lr! <= Math.fround(adaptive.dtMin)) {
        throw new SymflowError(who, `step rejected at the smallest step size dtMin = ${adaptive.dtMin} (error norm ${errValue} > 1); lower dtMin or loosen rtol/atol`);
      }
      if (rejections + 1 > adaptive.maxRejections) {
        throw new SymflowError(who, `step rejected ${rejections + 1} times (error norm ${errValue} > 1 at lr ${base.lr}); lower lr or loosen ${adaptive.tolName}`);
      }
    }
  };
}

/**
 * The scaled error norm: RMS over all parameter elements of err / (atol + rtol·max(|p₀|, |p₁|)), with
 * err = lr·Σⱼ eⱼkⱼ (eⱼ = bⱼ − b*ⱼ) over the stages' gradients (scipy's `_estimate_error_norm`).
 */
function errorNorm(
  params: readonly Variable[], p1: readonly Tensor[], stages: readonly (readonly Tensor[] | undefined)[], lr: Tensor, e: readonly number[], a: AdaptiveSettings,
  e3?: readonly number[],
): Tensor {
  const count = params.reduce((n, p) => n + sizeOf(p.shape as number[]), 0);
  if (e3 !== undefined) {
    // scipy's DOP853: ε = ‖e₅‖² / √(n·(‖e₅‖² + 0.01·‖e₃‖²)) over the scaled errors, 0 when both are 0.
    const s5 = sumOfScaledSquares(params, p1, stages, lr, e, a);
    const s3 = sumOfScaledSquares(params, p1, stages, lr, e3, a);
    const denom = sqrt(mul(count, add(s5, mul(0.01, s3))));
    return where(greater(denom, 0), div(s5, where(greater(denom, 0), denom, 1)), 0);
  }
  return sqrt(div(sumOfScaledSquares(params, p1, stages, lr, e, a), count));
}

/** Σ over all parameter elements of (err / scale)², err = lr·Σⱼ eⱼkⱼ. */
function sumOfScaledSquares(
  params: readonly Variable[], p1: readonly Tensor[], stages: readonly (readonly Tensor[] | undefined)[], lr: Tensor, e: readonly number[], a: AdaptiveSettings,
): Tensor {
  // Σeⱼ = 0 (b and b* both sum to 1), so Σeⱼgⱼ = Σ_{j≥1} eⱼ(gⱼ − g₀): the differences are small and exact-ish, where
  // Σeⱼgⱼ itself cancels O(|g|) terms down to O(h·|g|) and loses float32 digits (1e-4 relative in the norm, seen).
  const diffs = stages.map((g, j) => (g === undefined || j === 0 || e[j] === 0 ? undefined : g.map((x, i) => sub(x, stages[0]![i]!))));
  const squares = params.map((p, i) => {
    const ts = terms(e.map((c, j) => (j === 0 ? 0 : c)), diffs.map((d) => d?.[i]), lr);
    if (ts.length === 0) return undefined;
    const err = addN(ts);
    const scaled = a.rtol === 0 ? div(err, a.atol) : div(err, add(a.atol, mul(a.rtol, maximum(abs(p), abs(p1[i]!)))));
    return sum(square(scaled));
  }).filter((x): x is Tensor => x !== undefined);
  return squares.length === 0 ? scalarConstant(0, 'float32') : addN(squares);
}

interface AdaptiveSettings {
  rtol: number;
  atol: number;
  tolName: string;
  controller: Controller & ('scipy' | { kind: 'pi'; beta1: number; beta2: number } | { kind: 'pid'; pcoeff: number; icoeff: number; dcoeff: number });
  safety: number;
  minFactor: number;
  maxFactor: number;
  dtMin: number;
  dtMax: number;
  maxRejections: number;
  /** The first step size (0: chosen by lr 'auto' on the first step). */
  first: number;
}

function checkAdaptive(name: string, t: ButcherTableau, lr: LearningRate | 'auto', a: AdaptiveOptions): AdaptiveSettings {
  if (t.bStar === undefined) throw new SymflowError(name, `adaptive mode needs an embedded tableau (one with bStar), '${t.name}' has none`);
  if (lr !== 'auto' && (typeof lr !== 'number' || lr <= 0)) throw new SymflowError(name, "adaptive mode needs a positive number as lr (its first step size), or 'auto'");
  if (a === null || typeof a !== 'object') throw new SymflowError(name, `adaptive must be an object ({rtol, atol, …}), got ${String(a)}`);
  let rtol: number;
  let atol: number;
  if (a.tol !== undefined) {
    if (a.rtol !== undefined || a.atol !== undefined) throw new SymflowError(name, 'adaptive: give tol or rtol/atol, not both (tol is {atol: tol, rtol: 0})');
    atol = hyper(name, 'adaptive.tol', a.tol, { min: 0, minExclusive: true });
    rtol = 0;
  } else {
    rtol = hyper(name, 'adaptive.rtol', a.rtol ?? 1e-3, { min: 0 });
    atol = hyper(name, 'adaptive.atol', a.atol ?? 1e-6, { min: 0 });
    if (rtol === 0 && atol === 0) throw new SymflowError(name, 'adaptive: rtol and atol cannot both be 0');
  }
  const safety = hyper(name, 'adaptive.safety', a.safety ?? 0.9, { min: 0, minExclusive: true, max: 1 });
  const minFactor = hyper(name, 'adaptive.minFactor', a.minFactor ?? 0.2, { min: 0, minExclusive: true, max: 1 });
  const maxFactor = hyper(name, 'adaptive.maxFactor', a.maxFactor ?? 10, { min: 1 });
  const maxRejections = hyper(name, 'adaptive.maxRejections', a.maxRejections ?? 20, { min: 0 });
  const dtMin = hyper(name, 'adaptive.dtMin', a.dtMin ?? 0, { min: 0 });
  const dtMax = a.dtMax === undefined ? Infinity : hyper(name, 'adaptive.dtMax', a.dtMax, { min: 0, minExclusive: true });
  if (dtMin > dtMax) throw new SymflowError(name, `adaptive: dtMin (${dtMin}) must be <= dtMax (${dtMax})`);
  const controller = checkController(name, t, a.controller ?? 'scipy');
  const first = lr === 'auto' ? 0 : Math.min(dtMax, Math.max(dtMin, lr as number));
  return { rtol, atol, tolName: a.tol !== undefined ? 'tol' : 'rtol/atol', controller, safety, minFactor, maxFactor, dtMin, dtMax, maxRejections, first };
}

function checkController(name: string, t: ButcherTableau, c: unknown): AdaptiveSettings['controller'] {
  if (c === 'scipy') return 'scipy';
  const x = c as { kind?: unknown } | null;
  if (x?.kind === 'pi') {
    const p = x as { beta1?: number; beta2?: number };
    return {
      kind: 'pi',
      beta1: hyper(name, 'controller.beta1', p.beta1 ?? 7 / (10 * t.order), { min: 0 }),
      beta2: hyper(name, 'controller.beta2', p.beta2 ?? 2 / (5 * t.order), { min: 0 }),
    };
  }
  if (x?.kind === 'pid') {
    const p = x as { pcoeff?: number; icoeff?: number; dcoeff?: number };
    return {
      kind: 'pid',
      pcoeff: hyper(name, 'controller.pcoeff', p.pcoeff ?? 0),
      icoeff: hyper(name, 'controller.icoeff', p.icoeff ?? 1),
      dcoeff: hyper(name, 'controller.dcoeff', p.dcoeff ?? 0),
    };
  }
  throw new SymflowError(name, `adaptive.controller must be 'scipy', {kind: 'pi', beta1, beta2} or {kind: 'pid', pcoeff, icoeff, dcoeff}, got ${JSON.stringify(c) ?? String(c)}`);
}

/**
 * Heun's method: `rungeKutta` with the heun tableau (two runs per step on the same batch; one with `fused`). It is
 * the seed's form: p̃ = p − lr·g(p); p ← p̃ − lr/2·(g(p̃) − g(p)).
 * @param opts lr, fused @returns a multi-run optimizer
 */
export function heun(opts: { lr: LearningRate; fused?: boolean }): MultiRunOptimizer {
  return rungeKutta({ tableau: tableaux.heun, lr: opts?.lr, ...(opts?.fused === undefined ? {} : { fused: opts.fused }) });
}

