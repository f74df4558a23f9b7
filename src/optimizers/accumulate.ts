import { cond, type MomentsUpdate, type Update } from '../graph/cond.js';
import { batchMoments, movingPairs } from '../graph/moments.js';
import { square, sub } from '../graph/ops/math.js';
import { variable } from '../graph/sources.js';
import { SymflowError } from '../graph/errors.js';
import { add, div, mul } from '../graph/ops/binary.js';
import { cast } from '../graph/ops/cast.js';
import { equal, greater } from '../graph/ops/compare.js';
import { isTensor, type Tensor, type Variable } from '../graph/tensor.js';
import { checkGrads, counter, makeOptimizer, type Optimizer, type OptimizerState, slotLike } from './optimizer.js';
import { fromTransform, type GradientTransformation } from './transform.js';

/** One moments update's pool: rows, mean and sum of squared deviations of the mini-batches since the last apply. */
interface Pool {
  readonly update: MomentsUpdate;
  readonly n: Variable;
  readonly mean: Variable;
  readonly m2: Variable;
}

/** Options of `accumulate`. */
export interface AccumulateOptions {
  /** Mini-batches per update (an integer >= 1). */
  steps: number;
  /**
   * What `flush()` does with a ragged last group of k < steps mini-batches: `'apply'` (the default) applies the
   * inner optimizer to their mean gradient (weighted by the k mini-batches they really hold); `'drop'` discards it.
   */
  remainder?: 'apply' | 'drop';
  /**
   * Each mini-batch's weight, a float32 scalar tensor computed from its batch (e.g. its count of non-padding tokens):
   * the update uses Σ wᵢ·gᵢ / Σ wᵢ instead of the plain mean, so mini-batches whose losses are means over wᵢ items
   * give exactly the gradient of one big batch whose loss is the sum over all items divided by their total.
   */
  weight?: Tensor;
}

export interface AccumulateState<S extends OptimizerState = OptimizerState> extends OptimizerState {
  /** The inner optimizer's state (changed only on apply steps). */
  readonly inner: S;
  /** Per-parameter gradient sums since the last apply. */
  readonly acc: readonly Variable[];
  /** Mini-batches summed into `acc` (0 … steps − 1 between calls). */
  readonly count: Variable;
  /** With `weight`: the weights summed since the last apply. */
  readonly weightSum?: Variable;
}

/**
 * Soft batch (gradient accumulation) around ANY single-run optimizer, compiled to one session function whose
 * update is a lazy `cond`: every mini-batch adds its gradient to per-parameter accumulators; every `steps`-th
 * applies the inner optimizer to the mean of the `steps` gradients (the current one included) and resets them.
 * The inner optimizer's state, its step counter included, changes only on apply steps, so Adam's t counts outer
 * steps; an accumulate-only step runs no inner-optimizer work at all.
 *
 * ```ts
 * const opt = accumulate(adam({ lr: 1e-3 }), { steps: 4 }); // batch 16, the effect of batch 64
 * ```
 * @param given the optimizer to apply every `steps` mini-batches (single-run, or a gradient transformation)
 * @param opts steps, remainder, weight
 * @returns a single-run optimizer
 */
export function accumulate<S extends OptimizerState>(given: Optimizer<S> | GradientTransformation<S>, opts: AccumulateOptions): Optimizer<AccumulateState<S>> {
  const inner = (given?.kind === 'transform' ? fromTransform(given) : given) as Optimizer<S>;
  const steps = opts?.steps;
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1) {
    throw new SymflowError('accumulate', `steps must be an integer >= 1, got ${String(steps)}`);
  }
  if (inner?.kind !== 'single') throw new SymflowError('accumulate', 'inner must be a single-run optimizer (sgd, adam, …)');
  const remainder = opts.remainder ?? 'apply';
  const weight = opts.weight;
  if (weight !== undefined && (!isTensor(weight) || weight.dtype !== 'float32' || weight.rank !== 0)) {
    throw new SymflowError('accumulate', `weight must be a float32 scalar tensor (one weight per mini-batch), got ${isTensor(weight) ? `${weight.dtype} [${weight.shape.join(',')}] ('${weight.name}')` : typeof weight}`);
  }
  if (remainder !== 'apply' && remainder !== 'drop') throw new SymflowError('accumulate', `remainder must be 'apply' or 'drop', got ${String(remainder)}`);
  const name = `accumulate(${inner.name})`;
  // Each moments update of the model, pooled: rows, mean and M2 of the mini-batches since the last apply.
  const pools = new WeakMap<AccumulateState<S>, readonly Pool[]>();
  const resetPools = (state: AccumulateState<S>): Update[] => (pools.get(state) ?? []).flatMap((p): Update[] => [[p.n, 0], [p.mean, 0], [p.m2, 0]]);
  const reset = (state: AccumulateState<S>): Update[] => [...state.acc.map((a): Update => [a, 0]), [state.count, 0], ...(state.weightSum ? [[state.weightSum, 0] as Update] : [])];
  const weighted = (g: Tensor): Tensor => (weight === undefined ? g : mul(weight, g));
  return makeOptimizer<AccumulateState<S>>({
    name,
    init(params) {
      const innerState = inner.init(params);
      const acc = params.map((p) => slotLike('accumulate', 'acc', p));
      const count = counter('accumulate', 'count');
      const weightSum = weight === undefined ? undefined : variable(0, { name: 'accumulate/weightSum', dtype: 'float32', trainable: false });
      return { inner: innerState, acc, count, ...(weightSum ? { weightSum } : {}), variables: [...innerState.variables, ...acc, count, ...(weightSum ? [weightSum] : [])] };
    },
    update(grads, state, params, values) {
      checkGrads(name, grads, params);
      const next = add(state.count, 1);
      const sums = (): Tensor[] => state.acc.map((a, i) => add(a, weighted(grads[i]!)));
      return [cond(
        equal(next, steps),
        () => {
          const total = state.weightSum ? add(state.weightSum, weight!) : undefined;
          return [...inner.update(sums().map((s) => div(s, total ?? steps)), state.inner, params, values), ...reset(state)];
        },
        () => [
          ...state.acc.map((a, i): Update => [a, add(a, weighted(grads[i]!))]),
          [state.count, next],
          ...(state.weightSum ? [[state.weightSum, add(state.weightSum, weight!)] as Update] : []),
          // Read at other values (a multi-run method such as sam): the parameters go back to them unchanged.
          ...(values === undefined || values === params ? [] : params.map((p, i): Update => [p, values[i]!])),
        ],
      )];
    },
    flush(state, params) {
      const pending = greater(state.count, 0);
      if (remainder === 'drop') return { pending, updates: [cond(pending, () => [...reset(state), ...resetPools(state)], () => [])] };
      const k = state.weightSum ?? cast(state.count, 'float32');
      const moments = (): Update[] => (pools.get(state) ?? []).flatMap((p) => movingPairs(p.update, p.mean, div(p.m2, p.n)));
      return { pending, updates: [cond(pending, () => [...inner.update(state.acc.map((a) => div(a, k)), state.inner, params), ...moments(), ...reset(state), ...resetPools(state)], () => [])] };
    },
    learningRate: (state) => inner.learningRate?.(state.inner),
    ...(inner.averages ? { averages: (state: AccumulateState<S>) => inner.averages!(state.inner) } : {}),
    modelUpdates(updates, state) {
      // Chan et al.'s pairwise combination of (rows, mean, M2): exact pooling, without E[x²] − E[x]²'s cancellation.
      const list: Pool[] = [];
      const isApply = equal(add(state.count, 1), steps);
      const out = updates.flatMap((u): Update[] => {
        if ((u as MomentsUpdate).kind !== 'moments') return [u];
        const m = u as MomentsUpdate;
        const pool: Pool = {
          update: m,
          n: variable(0, { name: `accumulate/n/${m.mean.name}`, trainable: false }),
          mean: slotLike('accumulate', 'mean', m.mean),
          m2: slotLike('accumulate', 'm2', m.mean),
        };
        list.push(pool);
        const b = batchMoments(m);
        const n = add(pool.n, b.n);
        const delta = sub(b.mean, pool.mean);
        const mean = add(pool.mean, mul(delta, div(b.n, n)));
        const m2 = add(add(pool.m2, b.m2), mul(square(delta), div(mul(pool.n, b.n), n)));
        return [cond(isApply,
          () => [...movingPairs(m, mean, div(m2, n)), [pool.n, 0], [pool.mean, 0], [pool.m2, 0]],
          () => [[pool.n, n], [pool.mean, mean], [pool.m2, m2]])];
      });
      pools.set(state, list);
      return { updates: out, variables: list.flatMap((p) => [p.n, p.mean, p.m2]) };
    },
  });
}
