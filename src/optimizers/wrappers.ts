// Wrappers around transformations and optimizers: apply to some parameters (masked, partition), skip non-finite
// steps (applyIfFinite), fast and slow weights (lookahead), an average of the weights (emaParams).
import { cond, type Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { nameScope } from '../graph/names.js';
import { add, mul } from '../graph/ops/binary.js';
import { cast } from '../graph/ops/cast.js';
import { equal, greater, logicalOr } from '../graph/ops/compare.js';
import { sub } from '../graph/ops/math.js';
import { where } from '../graph/ops/where.js';
import type { Tensor, Variable } from '../graph/tensor.js';
import { exactlyFinite } from '../session/updates.js';
import { checkGrads, counter, hyper, makeOptimizer, type Optimizer, type OptimizerState, slotLike } from './optimizer.js';
import { fromTransform, type GradientTransformation, makeTransform, type TransformLike, transformOf, type UpdateContext } from './transform.js';
import { type Mask, maskFlags } from './transforms.js';


/** The parameters at `idx`, and a way to put results for them back among all of them. */
const pick = <T>(xs: readonly T[], idx: readonly number[]): T[] => idx.map((i) => xs[i]!);

/** State of `masked`: which parameters it applies to, and the inner state for those. */
export interface MaskedState extends OptimizerState {
  /** Positions (in the parameter list) of the parameters the mask selects, ascending. */
  readonly indices: readonly number[];
  /** The inner transformation's state for those parameters; undefined when the mask selects none. */
  readonly inner?: OptimizerState;
}

/**
 * Applies `inner` only to the parameters `mask` selects; the others' updates pass through unchanged (optax
 * `masked`). E.g. `masked(addDecayedWeights({rate: 1e-4}), kernelsOnly)`.
 * @param inner a transformation (or an optimizer made of one) @param mask a flag per parameter, or a predicate
 */
export function masked(inner: TransformLike, mask: Mask): GradientTransformation<MaskedState> {
  const t = transformOf('masked', inner, 'inner');
  if (typeof mask !== 'function' && !Array.isArray(mask)) throw new SymflowError('masked', `mask must be a predicate or an array of booleans, got ${mask === null ? 'null' : typeof mask}`);
  return makeTransform({
    name: `masked(${t.name})`,
    init(params) {
      const indices = maskFlags('masked', mask, params).flatMap((on, i) => (on ? [i] : []));
      if (indices.length === 0) return { indices, variables: [] };
      const state = t.init(pick(params, indices));
      return { indices, inner: state, variables: state.variables };
    },
    update(updates, state, params, ctx) {
      if (state.inner === undefined) return [[...updates], []];
      const [sub, assigns] = t.update(pick(updates, state.indices), state.inner, pick(params, state.indices), ctx);
      const out = [...updates];
      state.indices.forEach((i, j) => (out[i] = sub[j]!));
      return [out, assigns];
    },
    learningRate: (state, ctx) => (state.inner === undefined ? undefined : t.learningRate?.(state.inner, ctx)),
  });
}

/** State of `partition`: each group's parameter indices and state. */
export interface PartitionState extends OptimizerState {
  /** One entry per label that has parameters. */
  readonly groups: readonly {
    /** The group's label (a key of `transforms`). */
    readonly label: string;
    /** Positions of the group's parameters in the parameter list. */
    readonly indices: readonly number[];
    /** Its transformation's state for those parameters. */
    readonly state: OptimizerState;
  }[];
}

/**
 * A transformation per group of parameters (optax `multi_transform`, PyTorch's param groups): per-group learning
 * rates, decay for some groups only. A group's state is named under its label (`kernels/sgd/lr`), so
 * `setHyperparameter('kernels/sgd/lr', v)` sets one group's rate.
 *
 * ```ts
 * partition({ kernels: adamw({ lr: 1e-3 }), biases: adam({ lr: 1e-2 }) }, (p) => (p.rank >= 2 ? 'kernels' : 'biases'));
 * ```
 * @param transforms a transformation per label @param labelOf each parameter's label: a function or an array
 */
export function partition(transforms: Readonly<Record<string, TransformLike>>, labelOf: ((param: Variable, index: number) => string) | readonly string[]): GradientTransformation<PartitionState> {
  if (transforms === null || typeof transforms !== 'object') throw new SymflowError('partition', 'transforms must be a record of label → transformation');
  const ts = Object.entries(transforms).map(([label, x]) => [label, transformOf('partition', x, `transforms.${label}`)] as const);
  if (ts.length === 0) throw new SymflowError('partition', 'transforms has no labels');
  const known = new Map(ts);
  return makeTransform({
    name: `partition(${ts.map(([l, x]) => `${l}: ${x.name}`).join(', ')})`,
    init(params) {
      const labels = typeof labelOf === 'function' ? params.map((p, i) => labelOf(p, i)) : labelOf;
      if (!Array.isArray(labels) || labels.length !== params.length) throw new SymflowError('partition', `labelOf must be a function or ${params.length} labels (one per parameter), got ${Array.isArray(labels) ? labels.length : typeof labels}`);
      labels.forEach((l, i) => {
        if (!known.has(l)) throw new SymflowError('partition', `params[${i}] '${params[i]!.name}' has label ${JSON.stringify(l)}, which is not one of ${[...known.keys()].map((k) => `'${k}'`).join(', ')}`);
      });
      const groups = ts.flatMap(([label, t]) => {
        const indices = labels.flatMap((l, i) => (l === label ? [i] : []));
        return indices.length === 0 ? [] : [{ label, indices, state: nameScope(label, () => t.init(pick(params, indices))) }];
      });
      return { groups, variables: groups.flatMap((g) => g.state.variables) };
    },
    update(updates, state, params, ctx) {
      const out = [...updates];
      const assigns: Update[] = [];
      for (const g of state.groups) {
        const [u, a] = known.get(g.label)!.update(pick(updates, g.indices), g.state, pick(params, g.indices), ctx);
        g.indices.forEach((i, j) => (out[i] = u[j]!));
        assigns.push(...a);
      }
      return [out, assigns];
    },
    learningRate(state, ctx) {
      for (const g of state.groups) {
        const lr = known.get(g.label)!.learningRate?.(g.state, ctx);
        if (lr !== undefined) return lr;
      }
      return undefined;
    },
  });
}

/** An optimizer as such: a single-run optimizer, or a transformation turned into one. */
function optimizerOf(who: string, x: unknown): Optimizer<any> {
  const o = x as Optimizer | GradientTransformation | undefined;
  if (o?.kind === 'single') return o;
  if (o?.kind === 'transform') return fromTransform(o);
  throw new SymflowError(who, `inner must be a single-run optimizer or a gradient transformation (sgd(), chain(…), …), got ${o === null ? 'null' : typeof o === 'object' ? `'${String((o as { name?: unknown }).name)}'` : typeof o}`);
}

/** State of `applyIfFinite`: the inner state, and counts of non-finite steps. */
export interface ApplyIfFiniteState extends OptimizerState {
  /** The wrapped optimizer's state (unchanged by a non-finite step). */
  readonly inner: OptimizerState;
  /** Non-finite steps in a row (int32). */
  readonly notFiniteCount: Variable;
  /** Non-finite steps in all (int32). */
  readonly totalNotFinite: Variable;
  /** 1 when the last step's gradients were finite, else 0 (int32). */
  readonly lastFinite: Variable;
}

/**
 * Skips a step whose gradients are not all finite (optax `apply_if_finite`), inside the run: a lazy `cond`, so a
 * skipped step does none of the inner optimizer's work and leaves the parameters and its state bit-identical; only
 * the counts move. After more than `maxConsecutiveErrors` non-finite steps in a row the update is applied anyway
 * (and a step compiled with the default `onNonFinite: 'error'` then refuses it). Default: never applied.
 * @param inner the optimizer to guard @param opts maxConsecutiveErrors (default Infinity)
 */
export function applyIfFinite(inner: Optimizer<any> | TransformLike, opts: { maxConsecutiveErrors?: number } = {}): Optimizer<ApplyIfFiniteState> {
  const o = optimizerOf('applyIfFinite', inner);
  const max = opts.maxConsecutiveErrors ?? Infinity;
  if (max !== Infinity) hyper('applyIfFinite', 'maxConsecutiveErrors', max, { min: 0 });
  if (max !== Infinity && !Number.isInteger(max)) throw new SymflowError('applyIfFinite', `maxConsecutiveErrors must be an integer >= 0 or Infinity, got ${max}`);
  const name = `applyIfFinite(${o.name})`;
  return makeOptimizer<ApplyIfFiniteState>({
    name,
    init(params) {
      const state = o.init(params);
      const notFiniteCount = counter('applyIfFinite', 'notFiniteCount');
      const totalNotFinite = counter('applyIfFinite', 'totalNotFinite');
      const lastFinite = counter('applyIfFinite', 'lastFinite');
      return { inner: state, notFiniteCount, totalNotFinite, lastFinite, variables: [...state.variables, notFiniteCount, totalNotFinite, lastFinite] };
    },
    update(grads, state, params, values = params) {
      checkGrads(name, grads, params);
      const finite = exactlyFinite(grads);
      const apply = max === Infinity ? finite : logicalOr(finite, greater(state.notFiniteCount, max));
      const counts: Update[] = [
        [state.notFiniteCount, where(finite, 0, add(state.notFiniteCount, 1))],
        [state.totalNotFinite, where(finite, state.totalNotFinite, add(state.totalNotFinite, 1))],
        [state.lastFinite, cast(finite, 'int32')],
      ];
      return [...counts, cond(
        apply,
        () => o.update(grads, state.inner, params, values),
        // Read at other values (a multi-run method such as sam): the parameters go back to them unchanged.
        () => (values === params ? [] : params.map((p, i): Update => [p, values[i]!])),
      )];
    },
    ...(o.flush ? { flush: (state: ApplyIfFiniteState, params: readonly Variable[]) => o.flush!(state.inner, params) } : {}),
    learningRate: (state) => o.learningRate?.(state.inner),
    averages: (state) => o.averages?.(state.inner),
  });
}

/** State of `lookahead`: the inner transformation's, the slow weights, and the step counts. */
export interface LookaheadState extends OptimizerState {
  /** The inner transformation's state. */
  readonly inner: OptimizerState;
  /** The slow weights, one per parameter. */
  readonly slow: readonly Variable[];
  /** Steps in all (int32): the inner transformation's step. */
  readonly iterations: Variable;
  /** Fast steps since the last synchronisation (int32). */
  readonly count: Variable;
}

/**
 * Lookahead (Zhang et al.): the inner transformation moves fast weights (the parameters); every k-th step the slow
 * weights move α of the way to them, φ ← φ + α(θ − φ), and the fast weights restart there, θ ← φ. One run per
 * step; the slow weights start as the parameters at the first step.
 * @param inner a transformation (or optimizer made of one) @param opts k (5), alpha (0.5)
 */
export function lookahead(inner: TransformLike, opts: { k?: number; alpha?: number } = {}): Optimizer<LookaheadState> {
  const t = transformOf('lookahead', inner, 'inner');
  const k = opts.k ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new SymflowError('lookahead', `k must be an integer >= 1, got ${String(k)}`);
  const alpha = hyper('lookahead', 'alpha', opts.alpha ?? 0.5, { min: 0, max: 1 });
  const name = `lookahead(${t.name})`;
  const ctxOf = (state: LookaheadState): UpdateContext => ({ step: cast(state.iterations, 'float32') });
  return makeOptimizer<LookaheadState>({
    name,
    init(params) {
      const state = t.init(params);
      const slow = params.map((p) => slotLike('lookahead', 'slow', p));
      const iterations = counter('lookahead');
      const count = counter('lookahead', 'count');
      return { inner: state, slow, iterations, count, variables: [...state.variables, ...slow, iterations, count] };
    },
    update(grads, state, params, values = params) {
      checkGrads(name, grads, params);
      const [u, assigns] = t.update(grads, state.inner, values, ctxOf(state));
      const fast = values.map((v, i) => add(v, u[i]!));
      const first = equal(state.iterations, 0);
      const next = add(state.count, 1);
      return [
        [state.iterations, add(state.iterations, 1)],
        ...assigns,
        cond(
          equal(next, k),
          () => {
            // The slow weights are the parameters as the first step found them until the first synchronisation.
            const slowPrev = cond(first, () => [...values], () => [...state.slow]) as Tensor[];
            return [
              [state.count, 0],
              ...params.flatMap((p, i): Update[] => {
                const s = add(slowPrev[i]!, mul(alpha, sub(fast[i]!, slowPrev[i]!)));
                return [[state.slow[i]!, s], [p, s]];
              }),
            ];
          },
          () => [
            [state.count, next],
            ...params.map((p, i): Update => [p, fast[i]!]),
            cond(first, () => params.map((_, i): Update => [state.slow[i]!, values[i]!]), () => []),
          ],
        ),
      ];
    },
    learningRate: (state) => t.learningRate?.(state.inner, ctxOf(state)),
  });
}

/** State of `emaParams`: the averaged copy of each parameter. */
export interface EmaParamsState extends OptimizerState {
  /** The averaged copy of each parameter (`ema/param`), in parameter order. */
  readonly averages: readonly Variable[];
}

/**
 * An exponential moving average of the parameters (Keras 3's `use_ema`, Polyak averaging): after each step,
 * a ← decay·a + (1 − decay)·p, starting from the parameters at the first step. The updates pass through unchanged,
 * so it goes LAST in a chain (after `scaleByLearningRate`, where p + u is the new parameter). Evaluate at the
 * averages with `atAverages(train, tensors)` or fit's `validation.weights: 'averages'`; swap them in with
 * `swapAverages(train)`.
 * @param opts decay (0.999), name (of the variables, 'ema': `ema/param`)
 */
export function emaParams(opts: { decay?: number; name?: string } = {}): GradientTransformation<EmaParamsState> {
  const decay = hyper('emaParams', 'decay', opts.decay ?? 0.999, { min: 0, max: 1 });
  const owner = opts.name ?? 'ema';
  return makeTransform({
    name: 'emaParams',
    init(params) {
      const averages = params.map((p) => slotLike(owner, 'average', p));
      return { averages, variables: averages };
    },
    update(updates, state, params, { step }) {
      const prev = cond(equal(step, 0), () => [...params], () => [...state.averages]) as Tensor[];
      const assigns = state.averages.map((a, i): Update => [a, add(mul(decay, prev[i]!), mul(1 - decay, add(params[i]!, updates[i]!)))]);
      return [[...updates], assigns];
    },
    averages: (state) => state.averages,
  });
}
