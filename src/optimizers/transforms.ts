// The building blocks of optimizers, as gradient transformations (optax's, in camelCase). Each is a pure update
// rule over graph tensors; its state is slot variables named `owner/slot/param`.
import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { initializers } from '../graph/initializers.js';
import { clipByValue as clipTensor } from '../graph/ops/activations.js';
import { add, div, maximum, mul, pow } from '../graph/ops/binary.js';
import { greater, less } from '../graph/ops/compare.js';
import { addN } from '../graph/ops/identity.js';
import { square, sub } from '../graph/ops/math.js';
import { sum } from '../graph/ops/reduce.js';
import { neg, sqrt } from '../graph/ops/unary.js';
import { where } from '../graph/ops/where.js';
import { variable } from '../graph/sources.js';
import type { TensorLike } from '../graph/convert.js';
import { isTensor, type Tensor, type Variable } from '../graph/tensor.js';
import { hyper, type OptimizerState } from './optimizer.js';
import {
  type GradientTransformation, hyperparameter, hyperVariables, makeTransform, type Scalar, scalarArg, type UpdateContext,
} from './transform.js';

/** A learning rate: a number (made a hyperparameter), a float32 scalar tensor, or a schedule of the step counter. */
export type LearningRateLike = number | Tensor | ((step: Tensor) => Tensor);

/** Checks a learning rate for the optimizer `who`, so its errors name that optimizer. */
export function lrArg(who: string, lr: unknown): LearningRateLike {
  if (typeof lr === 'function') return lr as LearningRateLike;
  return isTensor(lr) ? scalarArg(who, 'lr', lr) : hyper(who, 'lr', lr, { min: 0 });
}

/** State of a per-parameter rule: named slot variables, one per parameter each. */
export interface SlotsState extends OptimizerState {
  /** The slots by name (`m`, `v`, `momentum`, …), each a list with one variable per parameter, in parameter order. */
  readonly slots: Readonly<Record<string, readonly Variable[]>>;
}

const stateless = (...xs: unknown[]): OptimizerState => ({ variables: hyperVariables(...xs) });

/** Slot variables like each parameter, filled with `value`, named `owner/slot/param`. */
function slotsFor(owner: string, names: readonly string[], params: readonly Variable[], value = 0, extra: unknown[] = []): SlotsState {
  const slots = Object.fromEntries(names.map((s) => [s, params.map((p) => variable(
    value === 0 ? initializers.zeros(p.shape as number[]) : initializers.fill(p.shape as number[], value),
    { name: `${owner}/${s}/${p.name}`, trainable: false },
  ))]));
  return { slots, variables: [...Object.values(slots).flat(), ...hyperVariables(...extra)] };
}

/**
 * A transformation with one slot per parameter: `rule(u, old)` gives the new update and the slot's new value (RMS
 * and Adagrad accumulators, momentum).
 */
function oneSlot(who: string, owner: string, slot: string, initial: number, rule: (u: Tensor, old: Tensor) => [Tensor, Tensor]): GradientTransformation<SlotsState> {
  return makeTransform({
    name: who,
    init: (params) => slotsFor(owner, [slot], params, initial),
    update(updates, state) {
      const assigns: Update[] = [];
      const out = updates.map((g, i) => {
        const [u, next] = rule(g, state.slots[slot]![i]!);
        assigns.push([state.slots[slot]![i]!, next]);
        return u;
      });
      return [out, assigns];
    },
  });
}


/** A scalar argument as a graph value. */
const asValue = (x: Scalar): TensorLike => x;

/** Options of `scaleByAdam`. */
export interface ScaleByAdamOptions {
  /** Decay of the first moment (0.9). */
  b1?: number;
  /** Decay of the second moment (0.999). */
  b2?: number;
  /** Added to the denominator's root (1e-8). */
  eps?: number;
  /** Added under the root (0), optax's eps_root. */
  epsRoot?: number;
  /** Keep the largest second moment seen (AMSGrad, as PyTorch and Keras do it: the max of the raw moments). Default false. */
  amsgrad?: boolean;
  /**
   * Kingma & Ba's "ε̂" form, Keras 2 and TF 1's: m·√(1 − b2ᵗ)/(1 − b1ᵗ) / (√v + ε) — ε added to the uncorrected
   * root. Default false: optax's and PyTorch's m̂ / (√v̂ + ε).
   */
  epsilonHat?: boolean;
  /** Names the slots `name/m/param`, `name/v/param` (default 'scaleByAdam'). */
  name?: string;
}

/**
 * Adam's rescaling (optax `scale_by_adam`): m ← b1·m + (1−b1)·g, v ← b2·v + (1−b2)·g², u = m̂ / (√(v̂ + εᵣ) + ε)
 * with the bias corrections at t = step + 1. Follow it with `scaleByLearningRate`.
 */
export function scaleByAdam(opts: ScaleByAdamOptions = {}): GradientTransformation<SlotsState> {
  const who = 'scaleByAdam';
  const b1 = hyper(who, 'b1', opts.b1 ?? 0.9, { min: 0, max: 1 });
  const b2 = hyper(who, 'b2', opts.b2 ?? 0.999, { min: 0, max: 1 });
  const eps = hyper(who, 'eps', opts.eps ?? 1e-8, { min: 0 });
  const epsRoot = hyper(who, 'epsRoot', opts.epsRoot ?? 0, { min: 0 });
  const amsgrad = opts.amsgrad ?? false;
  const hat = opts.epsilonHat ?? false;
  const owner = opts.name ?? who;
  return makeTransform({
    name: who,
    init: (params) => slotsFor(owner, amsgrad ? ['m', 'v', 'vhat'] : ['m', 'v'], params),
    update(updates, state, _params, { step }) {
      const t = add(step, 1);
      const c1 = sub(1, pow(b1, t));
      const c2 = sub(1, pow(b2, t));
      // Step-wide scalars, once: the bias corrections (folded into one factor in the ε̂ form).
      const scale = hat ? div(sqrt(c2), c1) : undefined;
      const assigns: Update[] = [];
      const out = updates.map((g, i) => {
        const m = add(mul(b1, state.slots['m']![i]!), mul(sub(1, b1), g));
        const v = add(mul(b2, state.slots['v']![i]!), mul(sub(1, b2), square(g)));
        assigns.push([state.slots['m']![i]!, m], [state.slots['v']![i]!, v]);
        let vmax = v;
        if (amsgrad) {
          vmax = maximum(state.slots['vhat']![i]!, v);
          assigns.push([state.slots['vhat']![i]!, vmax]);
        }
        const root = (x: Tensor) => sqrt(epsRoot > 0 ? add(x, epsRoot) : x);
        return hat ? div(mul(scale!, m), add(root(vmax), eps)) : div(div(m, c1), add(root(div(vmax, c2)), eps));
      });
      return [out, assigns];
    },
  });
}

/**
 * RMSprop's rescaling (optax `scale_by_rms`): ν ← decay·ν + (1−decay)·g²; u = g / √(ν + ε) (`epsInSqrt`, optax's
 * default) or g / (√ν + ε) (PyTorch's and Keras').
 */
export function scaleByRms(opts: { decay?: number; eps?: number; initialScale?: number; epsInSqrt?: boolean; name?: string } = {}): GradientTransformation<SlotsState> {
  const who = 'scaleByRms';
  const decay = hyper(who, 'decay', opts.decay ?? 0.9, { min: 0, max: 1 });
  const eps = hyper(who, 'eps', opts.eps ?? 1e-8, { min: 0 });
  const initial = hyper(who, 'initialScale', opts.initialScale ?? 0, { min: 0 });
  const inSqrt = opts.epsInSqrt ?? true;
  return oneSlot(who, opts.name ?? who, 'accumulator', initial, (g, old) => {
    const a = add(mul(decay, old), mul(sub(1, decay), square(g)));
    return [div(g, inSqrt ? sqrt(add(a, eps)) : add(sqrt(a), eps)), a];
  });
}

/** Adagrad's rescaling: a ← a + g²; u = g / (√a + ε) (PyTorch's and Keras' form; accumulators start at `initialAccumulatorValue`). */
export function scaleByAdagrad(opts: { initialAccumulatorValue?: number; eps?: number; name?: string } = {}): GradientTransformation<SlotsState> {
  const who = 'scaleByAdagrad';
  const initial = hyper(who, 'initialAccumulatorValue', opts.initialAccumulatorValue ?? 0, { min: 0 });
  const eps = hyper(who, 'eps', opts.eps ?? 1e-7, { min: 0 });
  return oneSlot(who, opts.name ?? who, 'accumulator', initial, (g, old) => {
    const a = add(old, square(g));
    return [div(g, add(sqrt(a), eps)), a];
  });
}

/**
 * Momentum (optax `trace`): t ← u + decay·t; the update is t, or u + decay·t with `nesterov`. Before
 * `scaleByLearningRate` this is PyTorch's SGD momentum; after it, Keras'.
 */
export function trace(opts: { decay: number; nesterov?: boolean; name?: string; slot?: string }): GradientTransformation<SlotsState> {
  const who = 'trace';
  const decay = hyper(who, 'decay', opts?.decay, { min: 0 });
  const nesterov = opts.nesterov ?? false;
  return oneSlot(who, opts.name ?? who, opts.slot ?? 'momentum', 0, (g, old) => {
    const t = add(g, mul(decay, old));
    return [nesterov ? add(g, mul(decay, t)) : t, t];
  });
}

/** State of `scaleByLearningRate`: the hyperparameter a numeric rate became. */
export interface LearningRateState extends OptimizerState {
  /** The hyperparameter variable `name/lr` a numeric rate became; undefined for a tensor or a schedule. */
  readonly lr?: Variable;
}

/**
 * Scales by −lr (optax `scale_by_learning_rate`): the last link of most chains. A number becomes the
 * hyperparameter `name/lr` (settable with `TrainStep.setHyperparameter('lr', v)`); a schedule is called with the
 * step counter; Keras 2's `decay` multiplies by 1 / (1 + decay·step).
 */
export function scaleByLearningRate(lr: LearningRateLike, opts: { decay?: number; flipSign?: boolean; name?: string } = {}): GradientTransformation<LearningRateState> {
  const who = 'scaleByLearningRate';
  if (typeof lr !== 'function') scalarArg(who, 'lr', lr, { min: 0 });
  const decay = hyper(who, 'decay', opts.decay ?? 0, { min: 0 });
  const flip = opts.flipSign ?? true;
  const owner = opts.name ?? who;
  const rate = (state: LearningRateState, { step }: UpdateContext): Tensor => {
    const base = state.lr ?? (isTensor(lr) ? lr : (lr as (s: Tensor) => Tensor)(step));
    if (!isTensor(base) || base.dtype !== 'float32' || base.rank !== 0) throw new SymflowError(who, 'a schedule must return a float32 scalar tensor');
    return decay > 0 ? mul(base, div(1, add(1, mul(decay, step)))) : base;
  };
  return makeTransform({
    name: who,
    init: () => {
      if (typeof lr === 'number') {
        const v = hyperparameter(`${owner}/lr`, lr);
        return { lr: v, variables: [v] };
      }
      return stateless(lr);
    },
    update(updates, state, _params, ctx) {
      const r = rate(state, ctx);
      const factor = flip ? neg(r) : r;
      return [updates.map((u) => mul(factor, u)), []];
    },
    learningRate: rate,
  });
}

/** Multiplies the updates by a fixed factor (optax `scale`). */
export function scale(factor: Scalar): GradientTransformation {
  const f = scalarArg('scale', 'factor', factor);
  return makeTransform({ name: 'scale', init: () => stateless(f), update: (updates) => [updates.map((u) => mul(asValue(f), u)), []] });
}

/** Which parameters a transformation applies to: a flag per parameter, or a predicate. */
export type Mask = readonly boolean[] | ((param: Variable, index: number) => boolean);

/** The flags of a mask for `params`, checked. */
export function maskFlags(who: string, mask: Mask, params: readonly Variable[]): boolean[] {
  if (typeof mask === 'function') return params.map((p, i) => mask(p, i) === true);
  if (!Array.isArray(mask) || mask.length !== params.length || mask.some((m) => typeof m !== 'boolean')) {
    throw new SymflowError(who, `mask must be a predicate or ${params.length} booleans (one per parameter), got ${Array.isArray(mask) ? `${mask.length} entries` : typeof mask}`);
  }
  return [...mask];
}

/** Only the kernels, not biases or normalisation scales: parameters of rank ≥ 2 (the usual weight-decay mask). */
export const kernelsOnly: Mask = (p) => p.rank >= 2;

/**
 * Adds rate·p to the updates (optax `add_decayed_weights`): decoupled weight decay when followed by
 * `scaleByLearningRate` (AdamW). `mask` limits it to some parameters, e.g. `kernelsOnly`.
 */
export function addDecayedWeights(opts: { rate: Scalar; mask?: Mask }): GradientTransformation {
  const who = 'addDecayedWeights';
  const rate = scalarArg(who, 'rate', opts?.rate, { min: 0 });
  const mask = opts.mask;
  return makeTransform<OptimizerState & { flags?: readonly boolean[] }>({
    name: who,
    init: (params) => ({ variables: hyperVariables(rate), ...(mask === undefined ? {} : { flags: maskFlags(who, mask, params) }) }),
    update(updates, { flags }, params) {
      return [updates.map((u, i) => (flags === undefined || flags[i] ? add(u, mul(asValue(rate), params[i]!)) : u)), []];
    },
  });
}

/** The global norm √Σ‖uᵢ‖² of a list of tensors (optax `global_norm`). */
export function globalNorm(xs: readonly Tensor[]): Tensor {
  return sqrt(addN(xs.map((x) => sum(square(x)))));
}

/**
 * Scales all updates by min(1, maxNorm / ‖u‖) with ‖u‖ the global norm over all of them (optax
 * `clip_by_global_norm`; PyTorch's `clip_grad_norm_` without its 1e-6). A non-finite norm makes the updates
 * non-finite, so a guarded step refuses it.
 */
export function clipByGlobalNorm(maxNorm: Scalar): GradientTransformation {
  const max = scalarArg('clipByGlobalNorm', 'maxNorm', maxNorm, { min: 0, minExclusive: true });
  return makeTransform({
    name: 'clipByGlobalNorm',
    init: () => stateless(max),
    update(updates) {
      const norm = globalNorm(updates);
      const factor = where(less(norm, asValue(max)), 1, div(asValue(max), norm));
      return [updates.map((u) => mul(factor, u)), []];
    },
  });
}

/** Scales each update by min(1, maxNorm / ‖uᵢ‖), its own norm (Keras' `clipnorm`). */
export function clipByNorm(maxNorm: Scalar): GradientTransformation {
  const max = scalarArg('clipByNorm', 'maxNorm', maxNorm, { min: 0, minExclusive: true });
  return makeTransform({
    name: 'clipByNorm',
    init: () => stateless(max),
    update(updates) {
      return [updates.map((u) => {
        const norm = sqrt(sum(square(u)));
        return mul(where(less(norm, asValue(max)), 1, div(asValue(max), norm)), u);
      }), []];
    },
  });
}

/** Clips each element of the updates to [−maxDelta, maxDelta], or to [min, max] (optax `clip`, Keras' `clipvalue`). */
export function clipUpdatesByValue(bounds: number | { min: number; max: number }): GradientTransformation {
  const who = 'clipByValue';
  const [lo, hi] = typeof bounds === 'number'
    ? [-hyper(who, 'maxDelta', bounds, { min: 0 }), hyper(who, 'maxDelta', bounds, { min: 0 })]
    : [hyper(who, 'min', bounds?.min), hyper(who, 'max', bounds?.max)];
  if (lo > hi) throw new SymflowError(who, `min (${lo}) must be <= max (${hi})`);
  return makeTransform({ name: who, init: () => stateless(), update: (updates) => [updates.map((u) => clipTensor(u, lo, hi)), []] });
}

/**
 * `clipByValue(maxDelta)` or `clipByValue({min, max})`: the gradient transformation; `clipByValue(x, lo, hi)`:
 * the elementwise op on a tensor.
 */
export function clipByValue(bounds: number | { min: number; max: number }): GradientTransformation;
export function clipByValue(x: Tensor, lo: TensorLike, hi: TensorLike): Tensor;
export function clipByValue(a: Tensor | number | { min: number; max: number }, lo?: TensorLike, hi?: TensorLike): Tensor | GradientTransformation {
  return isTensor(a) ? clipTensor(a, lo!, hi!) : clipUpdatesByValue(a as number | { min: number; max: number });
}

/** Axes a unit-wise norm reduces: all but the last (output) axis of a kernel; all of a vector or scalar. */
const unitAxes = (rank: number): number[] => (rank <= 1 ? [...Array(rank).keys()] : [...Array(rank - 1).keys()]);

/**
 * Adaptive gradient clipping (Brock et al., optax `adaptive_grad_clip`): each unit's gradient (a column of a
 * kernel, a whole bias) is scaled down to at most `clipping`·max(‖p‖, eps) of its parameter's norm.
 */
export function adaptiveGradClip(clipping: number, opts: { eps?: number } = {}): GradientTransformation {
  const who = 'adaptiveGradClip';
  const c = hyper(who, 'clipping', clipping, { min: 0, minExclusive: true });
  const eps = hyper(who, 'eps', opts.eps ?? 1e-3, { min: 0 });
  return makeTransform({
    name: who,
    init: () => stateless(),
    update(updates, _state, params) {
      return [updates.map((g, i) => {
        const axes = unitAxes(g.rank);
        const norm = (x: Tensor) => sqrt(sum(square(x), axes, true));
        const maxNorm = mul(c, maximum(norm(params[i]!), eps));
        const gNorm = norm(g);
        return where(greater(gNorm, maxNorm), mul(g, div(maxNorm, maximum(gNorm, 1e-6))), g);
      }), []];
    },
  });
}
