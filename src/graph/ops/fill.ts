import { SymflowError, checkAxesAttr, normAxes } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { scalarConstant } from '../sources.js';
import type { Tensor } from '../tensor.js';

// Values that depend only on a tensor's (run-time) shape, never on its data: no gradient flows through them.
export const fillLikeOp = defineOp({
  name: 'fillLike',
  attrs: { value: 'number', dtype: 'dtype' },
  infer: ([x], { value, dtype }) => {
    if (typeof value !== 'number' || !['float32', 'int32', 'bool'].includes(dtype)) {
      throw new SymflowError('fillLike', `needs a number and a dtype, got ${JSON.stringify(value)} and ${JSON.stringify(dtype)}`);
    }
    return { shape: x!.shape, dtype };
  },
});

export const shapeSizeOp = defineOp({
  name: 'shapeSize',
  attrs: { axes: 'ints' },
  infer: ([x], { axes }) => {
    checkAxesAttr('shapeSize', axes, x!.rank);
    return { shape: [], dtype: 'float32' };
  },
});

/** A tensor of zeros with x's shape and dtype. @param x the template @returns zeros */
export function zerosLike(x: Tensor): Tensor {
  return makeNode(fillLikeOp, [x], { value: 0, dtype: x.dtype });
}

/** A tensor of ones with x's shape and dtype. @param x the template @returns ones */
export function onesLike(x: Tensor): Tensor {
  return makeNode(fillLikeOp, [x], { value: 1, dtype: x.dtype });
}

/**
 * The number of elements of x over `axes` as a float32 scalar: a constant when the sizes are known at build time,
 * otherwise read from the run-time shape.
 * @param x the tensor @param axes axes to count (all when omitted) @returns a float32 scalar
 */
export function shapeSize(x: Tensor, axes?: number | readonly number[]): Tensor {
  const list = normAxes('shapeSize', axes, x.rank);
  const dims = list.map((a) => x.shape[a]!);
  if (dims.every((d) => d !== null)) return scalarConstant(dims.reduce((p, d) => p * (d as number), 1), 'float32');
  return makeNode(shapeSizeOp, [x], { axes: list });
}
