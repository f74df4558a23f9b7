import type { MomentsUpdate, Update } from './cond.js';
import { SymflowError, normAxes } from './errors.js';
import { add, div, mul } from './ops/binary.js';
import { shapeSize } from './ops/fill.js';
import { mean as meanOf, square, sub } from './ops/math.js';
import { sum } from './ops/reduce.js';
import { shapesCompatible } from './shapes.js';
import { isTensor, isVariable, shapeString, type Tensor, type Variable } from './tensor.js';

/**
 * Moving averages of the mean and (biased, as Keras) variance of `x` over `axes`, for `compile(…, {updates})`.
 * ```ts
 * const updates = [movingMoments(movingMean, movingVar, h, [0], { momentum: 0.99 })];
 * ```
 * @param mean the moving mean (shaped like x with `axes` removed) @param variance the moving variance (same shape)
 * @param x the batch @param axes the axes the moments are taken over (the batch axis, at least)
 */
export function movingMoments(mean: Variable, variance: Variable, x: Tensor, axes: number | readonly number[], opts: { momentum?: number } = {}): MomentsUpdate {
  const who = 'movingMoments';
  if (!isVariable(mean) || !isVariable(variance)) throw new SymflowError(who, 'mean and variance must be variables');
  if (!isTensor(x) || x.dtype !== 'float32') throw new SymflowError(who, `x must be a float32 Tensor, got ${isTensor(x) ? x.dtype : typeof x}`);
  const list = normAxes(who, axes, x.rank);
  const momentum = opts.momentum ?? 0.99;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) throw new SymflowError(who, `momentum must be in [0, 1], got ${String(momentum)}`);
  const reduced = x.shape.filter((_, i) => !list.includes(i));
  for (const v of [mean, variance]) {
    if (v.dtype !== 'float32' || !shapesCompatible(v.shape, reduced)) {
      throw new SymflowError(who, `variable '${v.name}' is ${v.dtype} ${shapeString(v.shape)}; the moments of x ${shapeString(x.shape)} over axes [${list.join(',')}] are float32 ${shapeString(reduced)}`);
    }
  }
  return Object.freeze({ kind: 'moments', mean, variance, x, axes: list, momentum });
}

/** A batch's moments: its row count over the axes, mean, and sum of squared deviations (M2). */
export function batchMoments(u: MomentsUpdate): { n: Tensor; mean: Tensor; m2: Tensor } {
  const m = meanOf(u.x, u.axes, true);
  return { n: shapeSize(u.x, u.axes), mean: meanOf(u.x, u.axes), m2: sum(square(sub(u.x, m)), u.axes) };
}

/** The two moving-average pairs of given moments (a mean and a biased variance). */
export function movingPairs(u: MomentsUpdate, mean: Tensor, variance: Tensor): Update[] {
  const k = 1 - u.momentum;
  return [[u.mean, add(mul(u.momentum, u.mean), mul(k, mean))], [u.variance, add(mul(u.momentum, u.variance), mul(k, variance))]];
}

/** A moments update on its own: one batch's moments, folded into the moving averages. */
export function lowerMoments(u: MomentsUpdate): Update[] {
  const b = batchMoments(u);
  return movingPairs(u, b.mean, div(b.m2, b.n));
}
