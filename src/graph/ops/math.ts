// Composites: built from primitives, so they need no gradient code of their own.
import { type TensorLike, asPair } from '../convert.js';
import type { Tensor } from '../tensor.js';
import { add, div, mul } from './binary.js';
import { shapeSize } from './fill.js';
import { max, sum } from './reduce.js';
import { neg } from './unary.js';

/**
 * a − b, broadcasting (composed as a + (−b)).
 * @param a tensor or number @param b tensor or number @returns a − b
 */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asPair('sub', a, b);
  return add(x, neg(y));
}

/** x². @param x the tensor @returns x · x */
export function square(x: Tensor): Tensor {
  return mul(x, x);
}

/**
 * Mean over `axes` (all when omitted); divides by the run-time count where sizes are unknown.
 * @param x the tensor @param axes axes to reduce @param keepDims keep them as size 1 @returns the mean
 */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return div(sum(x, axes, keepDims), shapeSize(x, axes));
}

/**
 * Minimum over `axes` (all when omitted), as −max(−x).
 * @param x the tensor @param axes axes to reduce @param keepDims keep them as size 1 @returns the minimum
 */
export function min(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  // NOTE: on int32, −x wraps at INT32_MIN (min([INT32_MIN, 5]) would be 5); ~x = −x − 1 is an order-reversing
  // bijection of int32 under wrapping arithmetic, so min is ~max(~x) there (and an empty min is INT32_MAX).
  if (x.dtype === 'int32') return sub(neg(max(sub(neg(x), 1), axes, keepDims)), 1);
  return neg(max(neg(x), axes, keepDims));
}
