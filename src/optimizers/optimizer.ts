import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { inSpaceOf } from '../graph/names.js';
import { gradients } from '../graph/gradients.js';
import { initializers } from '../graph/initializers.js';
import { add, div, mul } from '../graph/ops/binary.js';
import { cast } from '../graph/ops/cast.js';
import { scalarConstant, variable } from '../graph/sources.js';
import { isTensor, type Tensor, type Variable } from '../graph/tensor.js';

/** A learning rate: a number, or a schedule built from the symbolic step counter (float32, 0 on the first step). */
export type LearningRate = number | ((step: Tensor) => Tensor);

/** An optimizer's state: graph variables, so a session holds, snapshots and checkpoints them like parameters. */
export interface OptimizerState {
  /** Every state variable (slots and counters). */
  readonly variables: readonly Variable[];
}

/** What finishing a pending partial step takes: its updates, and a bool scalar telling whether anything was pending. */
export interface Flush {
  /** The assignments that finish the pending step (applying a ragged last group, or dropping it). */
  readonly updates: Update[];
  /** A bool scalar, true when there was a pending partial step (read before the updates apply). */
  readonly pending: Tensor;
}

/**
 * An optimizer as an (init, update) pair, in the spirit of optax and Keras 3.
 *
 * `init` creates the slot variables; `update` returns `[variable, newValue]` pairs for the parameters and the
 * state, built from the gradients. `values` are what the parameters are read as (the parameters themselves unless a
 * multi-run method applies the update at another point, as `sam` does).
 */
export interface Optimizer<S extends OptimizerState = OptimizerState> {
  /** Tells optimizer kinds apart: `'single'` (one session run per step). */
  readonly kind: 'single';
  /** The optimizer's name (`'sgd'`, `'adam'`, …): its variables' name prefix and what its errors name. */
  readonly name: string;
  /** Makes the state variables (slots, counters) for these parameters; `compile` calls it once. */
  init(params: readonly Variable[]): S;
  /**
   * One step, symbolically: the `[variable, newValue]` pairs for the parameters and the state.
   * @param grads one gradient per parameter
   * @param state what `init` made
   * @param params the parameters assigned
   * @param values what the parameters are read as (default: the parameters themselves)
   * @returns the assignments of one step
   */
  update(grads: readonly Tensor[], state: S, params: readonly Variable[], values?: readonly Tensor[]): Update[];
  /** Finishes a pending partial step (soft batch's ragged last group); absent for most optimizers. */
  flush?(state: S, params: readonly Variable[]): Flush;
  /**
   * Takes over the model's state updates (`compile`'s `updates`): what to apply instead, and the variables that
   * takes. Absent for most optimizers (the updates then go into each step's run as they are).
   */
  modelUpdates?(updates: readonly Update[], state: S): {
    /** The updates to apply instead, in each step's run. */
    updates: Update[];
    /** The variables those updates need besides the model's (pools, counters), restored with the step. */
    variables: Variable[];
  };
  /** The learning rate a step uses, read from the state the step starts at (what `StepResult.lr` reports). */
  learningRate?(state: S): Tensor | undefined;
  /** The averaged copy of each parameter the optimizer keeps (`emaParams`), in the order of `params`. */
  averages?(state: S): readonly Variable[] | undefined;
  /** The seed's `get_updates`: init + gradients + update in one call. */
  getUpdates(loss: Tensor, params: readonly Variable[]): Update[];
}

/** Makes a complete optimizer from init and update (adds `kind` and `getUpdates`). */
export function makeOptimizer<S extends OptimizerState>(def: {
  name: string;
  init: (params: readonly Variable[]) => S;
  update: (grads: readonly Tensor[], state: S, params: readonly Variable[], values?: readonly Tensor[]) => Update[];
  flush?: (state: S, params: readonly Variable[]) => Flush;
  modelUpdates?: (updates: readonly Update[], state: S) => { updates: Update[]; variables: Variable[] };
  learningRate?: (state: S) => Tensor | undefined;
  averages?: (state: S) => readonly Variable[] | undefined;
}): Optimizer<S> {
  return Object.freeze({
    kind: 'single' as const,
    ...def,
    getUpdates(loss: Tensor, params: readonly Variable[]): Update[] {
      checkParams(def.name, params);
      checkLoss(def.name, loss);
      return def.update(paramGradients(def.name, loss, params), inSpaceOf(params[0], () => def.init(params)), params);
    },
  });
}

export function checkLoss(who: string, loss: Tensor): void {
  if (!isTensor(loss)) throw new SymflowError(who, `loss must be a Tensor, got ${typeof loss}`);
  if (loss.rank !== 0 || loss.dtype !== 'float32') {
    // The hint fits what is wrong: an int or bool loss has no gradient, and reducing it would not give it one.
    const hint = loss.dtype !== 'float32'
      ? `${loss.dtype === 'int32' ? 'an' : 'a'} ${loss.dtype} tensor has no gradient: compute the loss in float32 from the parameters (cast inputs, not the loss)`
      : 'reduce it with mean or sum';
    throw new SymflowError(who, `loss must be a float32 scalar, got ${loss.dtype} [${loss.shape.map((d) => d ?? '?').join(',')}] ('${loss.name}'); ${hint}`);
  }
}

/**
 * The gradients of `loss` with respect to `params`, for an optimizer or `compile`: a parameter the loss does not
 * read is an error in the caller's own terms (its name, `params[i]`, and a hint about its own options), not in
 * those of `gradients`. `hint` defaults to leaving the parameter out.
 * @param who the function named in the error @param loss the scalar loss @param params the parameters
 * @returns one gradient per parameter
 */
export function paramGradients(who: string, loss: Tensor, params: readonly Variable[], hint = 'leave it out of params'): Tensor[] {
  return gradients(loss, params, { report: { who, xs: 'params', hint } });
}

export function checkParams(who: string, params: readonly Variable[]): void {
  if (!Array.isArray(params) || params.length === 0) throw new SymflowError(who, 'params must be a non-empty array of variables');
  params.forEach((p, i) => {
    if (!isTensor(p) || p.op !== 'variable') throw new SymflowError(who, `params[${i}] is not a variable`);
    if (p.dtype !== 'float32') throw new SymflowError(who, `params[${i}] '${p.name}' is ${p.dtype}; only float32 variables can be trained`);
  });
  if (new Set(params).size !== params.length) throw new SymflowError(who, 'params lists a variable twice');
}

export function checkGrads(who: string, grads: readonly Tensor[], params: readonly Variable[]): void {
  if (grads.length !== params.length) throw new SymflowError(who, `got ${grads.length} gradients for ${params.length} params`);
}

/** Validates a hyper-parameter: finite, and within bounds. Errors name the optimizer and the argument. */
export function hyper(who: string, arg: string, value: unknown, opts: { min?: number; max?: number; minExclusive?: boolean } = {}): number {
  const v = value as number;
  const low = opts.min ?? -Infinity;
  const bad = typeof v !== 'number' || !Number.isFinite(v) || (opts.minExclusive ? v <= low : v < low) || v > (opts.max ?? Infinity);
  if (bad) {
    const range = `${opts.minExclusive ? '>' : '>='} ${low}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`;
    throw new SymflowError(who, `${arg} must be a finite number ${range}, got ${String(value)}`);
  }
  return v;
}

export function checkLearningRate(who: string, lr: unknown): LearningRate {
  if (typeof lr === 'function') return lr as LearningRate;
  return hyper(who, 'lr', lr, { min: 0 });
}

/** A zero-initialised, non-trainable slot like `p`, named `optimizer/slot/param`. */
export function slotLike(who: string, slot: string, p: Variable): Variable {
  return variable(initializers.zeros(p.shape as number[]), { name: `${who}/${slot}/${p.name}`, trainable: false });
}

/** A scalar step counter (int32, so it counts exactly). */
export function counter(who: string, name = 'iterations'): Variable {
  return variable(0, { name: `${who}/${name}`, dtype: 'int32', trainable: false });
}

/**
 * The learning rate a step uses, as Keras 2.2.4 computes it: the schedule (or constant) at the step counter,
 * times 1 / (1 + decay · iterations) when `decay` > 0. Read before the counter advances (0 on the first step).
 */
export function learningRate(lr: LearningRate, decay: number, iterations: Variable): Tensor {
  const t = cast(iterations, 'float32');
  const base = typeof lr === 'number' ? scalarConstant(lr, 'float32') : lr(t);
  if (!isTensor(base) || base.dtype !== 'float32' || base.rank !== 0) {
    throw new SymflowError('learningRate', 'a schedule must return a float32 scalar tensor');
  }
  return decay > 0 ? mul(base, div(1, add(1, mul(decay, t)))) : base;
}
