// Gradient transformations (optax's contract): an (init, update) pair whose update maps updates to updates, and
// `chain` to compose them. In a static graph the state is graph variables and "new state" is a list of
// assignments, so `update` returns `[updates, assignments]` — the same pair optax returns, as graph values.
import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { add } from '../graph/ops/binary.js';
import { cast } from '../graph/ops/cast.js';
import { variable } from '../graph/sources.js';
import { isTensor, isVariable, type Tensor, type Variable } from '../graph/tensor.js';
import { checkGrads, counter, makeOptimizer, type Optimizer, type OptimizerState } from './optimizer.js';

/** What every transformation's update sees besides the updates: the step it is part of. */
export interface UpdateContext {
  /** Steps the optimizer applied before this one (float32 scalar: 0 on the first step). */
  readonly step: Tensor;
}

/**
 * A gradient transformation: `init` makes its state (graph variables), `update` maps this step's updates (at first
 * the gradients) to new updates and returns the assignments of its state, built from the state as the step read it.
 * `params` are the values the parameters are read at.
 */
export interface GradientTransformation<S extends OptimizerState = OptimizerState> {
  /** Tells optimizer kinds apart: `'transform'`. */
  readonly kind: 'transform';
  /** The transformation's name, for messages (`'scaleByAdam'`, `'chain(…)'`). */
  readonly name: string;
  /**
   * Makes the state for these parameters: its variables (slots named after the parameters) and anything else the
   * update needs. Called once, when the optimizer is compiled.
   */
  init(params: readonly Variable[]): S;
  /**
   * One step, symbolically: maps the incoming updates (one per parameter; the gradients for the first link) to
   * outgoing ones, and returns the assignments of its state, all computed from the state as the step read it.
   * @param updates the incoming updates, one per parameter
   * @param state what `init` made
   * @param params the values the parameters are read at (the parameters themselves, or another point)
   * @param ctx the step counter
   * @returns `[updates, assignments]`
   */
  update(updates: readonly Tensor[], state: S, params: readonly Tensor[], ctx: UpdateContext): [Tensor[], Update[]];
  /** The learning rate this transformation scales by at this step, if it is one (what `StepResult.lr` reports). */
  learningRate?(state: S, ctx: UpdateContext): Tensor | undefined;
  /** The averaged copy of each parameter it keeps, if it keeps one (`emaParams`). */
  averages?(state: S): readonly Variable[] | undefined;
}

/** A transformation from its parts (adds `kind`, freezes it). */
export const makeTransform = <S extends OptimizerState>(t: Omit<GradientTransformation<S>, 'kind'>): GradientTransformation<S> => Object.freeze({ kind: 'transform' as const, ...t });

/** What `chain` and the wrappers take: a transformation, or an optimizer made of one (`adam()`, a chain). */
export type TransformLike = GradientTransformation<any> | (Optimizer<any> & {
  /** The transformation the optimizer is made of. */
  readonly transform: GradientTransformation<any>;
});

/** State of an optimizer made from a transformation: the transformation's state and the step counter. */
export interface TransformOptimizerState<S extends OptimizerState = OptimizerState> extends OptimizerState {
  /** The transformation's state. */
  readonly inner: S;
  /** The int32 step counter `name/iterations`: steps applied so far (`UpdateContext.step` is it, as float32). */
  readonly iterations: Variable;
}

/** An optimizer that is a gradient transformation plus `applyUpdates`: usable wherever either is. */
export type TransformOptimizer<S extends OptimizerState = OptimizerState> = Optimizer<TransformOptimizerState<S>> & {
  /** The transformation it is made of (what `chain` and the wrappers use). */
  readonly transform: GradientTransformation<S>;
};

/** The transformation behind `t`: itself, or the one an optimizer such as `adam()` or a chain is made of. */
export function transformOf(who: string, t: unknown, arg = 'transform'): GradientTransformation<any> {
  const x = t as TransformLike | undefined;
  if (x?.kind === 'transform') return x;
  if (x?.kind === 'single' && (x as { transform?: unknown }).transform !== undefined) return x.transform;
  const what = (x as { name?: unknown } | undefined)?.name;
  throw new SymflowError(who, `${arg} must be a gradient transformation (scaleByAdam(), clipByGlobalNorm(1), …) or an optimizer made of one (sgd(), adam(), chain(…)), got ${typeof what === 'string' ? `'${what}', which is not (wrap the chain in it instead)` : t === null ? 'null' : typeof t}`);
}

/**
 * New parameter values from updates: p + u for each (optax's `apply_updates`), as assignments.
 * @param params the variables @param updates one per parameter @param values what the parameters are read as
 * (default the parameters themselves) @returns `[p, value + u]` pairs
 */
export function applyUpdates(params: readonly Variable[], updates: readonly Tensor[], values: readonly Tensor[] = params): Update[] {
  if (updates.length !== params.length) throw new SymflowError('applyUpdates', `got ${updates.length} updates for ${params.length} params`);
  return params.map((p, i): Update => [p, add(values[i]!, updates[i]!)]);
}

/**
 * Turns a transformation into an optimizer: a step counter, the transformation, then `applyUpdates`.
 * @param t the transformation @param name the optimizer's name (its counter is `name/iterations`)
 */
export function fromTransform<S extends OptimizerState>(t: GradientTransformation<S>, name = t.name): TransformOptimizer<S> {
  const ctxOf = (state: TransformOptimizerState<S>): UpdateContext => ({ step: cast(state.iterations, 'float32') });
  const opt = makeOptimizer<TransformOptimizerState<S>>({
    name,
    init(params) {
      const inner = t.init(params);
      const iterations = counter(name);
      return { inner, iterations, variables: [...inner.variables, iterations] };
    },
    update(grads, state, params, values = params) {
      checkGrads(name, grads, params);
      const [updates, assigns] = t.update(grads, state.inner, values, ctxOf(state));
      return [[state.iterations, add(state.iterations, 1)], ...assigns, ...applyUpdates(params, updates, values)];
    },
    learningRate: (state) => t.learningRate?.(state.inner, ctxOf(state)),
    ...(t.averages ? { averages: (state: TransformOptimizerState<S>) => t.averages!(state.inner) } : {}),
  });
  return Object.freeze({ ...opt, transform: t });
}

/** State of a chain: each link's state, in order. */
export interface ChainState extends OptimizerState {
  /** The state of each link, in chain order. */
  readonly links: readonly OptimizerState[];
}

/**
 * Composes transformations: the updates go through each in order (optax's `chain`). The result is a transformation
 * and an optimizer: pass it to `compile`, `accumulate`, `sam`, `applyIfFinite`, … or into another chain.
 *
 * ```ts
 * const opt = chain(clipByGlobalNorm(1), scaleByAdam(), addDecayedWeights({ rate: 1e-4 }), scaleByLearningRate(1e-3));
 * ```
 * @param links transformations, or optimizers made of them
 * @returns the composed transformation as an optimizer (its counter is `chain/iterations`)
 */
export function chain(...links: TransformLike[]): TransformOptimizer<ChainState> {
  return chainAs('chain', links);
}

/** `chain` under another name: the optimizers made of transformations (`adam` is `chainAs('adam', …)`). */
export function chainAs(name: string, links: readonly TransformLike[]): TransformOptimizer<ChainState> {
  if (links.length === 0) throw new SymflowError('chain', 'needs at least one transformation');
  const ts = links.map((l, i) => transformOf('chain', l, `links[${i}]`));
  const avg = ts.findIndex((x) => x.averages !== undefined);
  if (avg >= 0 && avg !== ts.length - 1) throw new SymflowError('chain', `'${ts[avg]!.name}' (links[${avg}]) averages the new parameters, so it must be the last link; it is followed by '${ts[avg + 1]!.name}'`);
  const t: GradientTransformation<ChainState> = {
    kind: 'transform',
    name: `chain(${ts.map((x) => x.name).join(', ')})`,
    init(params) {
      const states = ts.map((x) => x.init(params));
      return { links: states, variables: states.flatMap((s) => s.variables) };
    },
    update(updates, state, params, ctx) {
      let u = [...updates];
      const assigns: Update[] = [];
      ts.forEach((x, i) => {
        const [next, a] = x.update(u, state.links[i]!, params, ctx);
        if (next.length !== u.length) throw new SymflowError('chain', `'${x.name}' returned ${next.length} updates for ${u.length}`);
        u = next;
        assigns.push(...a);
      });
      return [u, assigns];
    },
    // The first link that scales by a learning rate says which one the chain uses.
    learningRate(state, ctx) {
      for (const [i, x] of ts.entries()) {
        const lr = x.learningRate?.(state.links[i]!, ctx);
        if (lr !== undefined) return lr;
      }
      return undefined;
    },
    // An average of the parameters (emaParams) sees p + u, the new parameters, only as the last link.
    ...(avg < 0 ? {} : { averages: (state: ChainState) => ts[avg]!.averages!(state.links[avg]!) }),
  };
  return fromTransform(Object.freeze(t), name);
}

/** Variables made by `hyperparameter`: the ones `TrainStep.setHyperparameter` may set. */
const hyperparameters = new WeakSet<Variable>();

/**
 * A hyperparameter as state (optax's `inject_hyperparams`): a float32 scalar variable that transformations read
 * each step, so `TrainStep.setHyperparameter(name, v)` changes it between steps without recompiling. Numeric
 * learning rates are made into one (`<optimizer>/lr`) by `scaleByLearningRate`.
 * @param name its variable's name @param value its initial value
 */
export function hyperparameter(name: string, value: number): Variable {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new SymflowError('hyperparameter', `value of '${name}' must be a finite number, got ${String(value)}`);
  const v = variable(value, { name, dtype: 'float32', trainable: false });
  hyperparameters.add(v);
  return v;
}

/** Whether `v` is a variable made by `hyperparameter` (what `TrainStep.setHyperparameter` may set). */
export const isHyperparameter = (v: unknown): boolean => isVariable(v) && hyperparameters.has(v as Variable);

/** A scalar argument of a transformation: a number, or a float32 scalar tensor (a hyperparameter, a schedule's value). */
export type Scalar = number | Tensor;

/** Checks a scalar argument: a number within bounds, or a float32 scalar tensor. */
export function scalarArg(who: string, arg: string, v: unknown, opts: { min?: number; minExclusive?: boolean; max?: number } = {}): Scalar {
  if (isTensor(v)) {
    if (v.dtype !== 'float32' || v.rank !== 0) throw new SymflowError(who, `${arg} must be a float32 scalar tensor, got ${v.dtype} [${v.shape.join(',')}] ('${v.name}')`);
    return v;
  }
  const x = v as number;
  const low = opts.min ?? -Infinity;
  if (typeof x !== 'number' || !Number.isFinite(x) || (opts.minExclusive ? x <= low : x < low) || x > (opts.max ?? Infinity)) {
    throw new SymflowError(who, `${arg} must be a finite number ${opts.minExclusive ? '>' : '>='} ${low}${opts.max !== undefined ? ` and <= ${opts.max}` : ''} (or a float32 scalar tensor), got ${String(v)}`);
  }
  return x;
}

/** The hyperparameter variables among `xs` (a transformation lists the ones it was given in its state). */
export const hyperVariables = (...xs: unknown[]): Variable[] => xs.filter(isHyperparameter) as Variable[];
