import { SymflowError, checkAxisAttr, normAxis } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import type { Tensor } from '../tensor.js';

export const oneHotOp = defineOp({
  name: 'oneHot',
  attrs: { depth: 'int', onValue: 'number', offValue: 'number' },
  infer: ([indices], { depth }) => {
    if (indices!.dtype !== 'int32') throw new SymflowError('oneHot', `indices must be int32, got ${indices!.dtype} (${indices!.name})`);
    if (!Number.isInteger(depth) || depth < 1) throw new SymflowError('oneHot', `depth must be a positive integer, got ${depth}`);
    return { shape: [...indices!.shape, depth], dtype: 'float32' };
  },
});

export const argMaxOp = defineOp({
  name: 'argMax',
  attrs: { axis: 'int' },
  infer: ([x], { axis }) => {
    if (x!.dtype === 'bool') throw new SymflowError('argMax', 'x must be numeric, got bool');
    checkAxisAttr('argMax', axis, x!.rank);
    return { shape: x!.shape.filter((_, i) => i !== axis), dtype: 'int32' };
  },
});

/**
 * One-hot encoding as float32: `onValue` at each index, `offValue` elsewhere (indices out of range give a row of
 * `offValue`).
 * @param indices int32 class indices @param depth number of classes @returns [...indices.shape, depth]
 */
export function oneHot(indices: Tensor, depth: number, opts: { onValue?: number; offValue?: number } = {}): Tensor {
  return makeNode(oneHotOp, [indices], { depth, onValue: opts.onValue ?? 1, offValue: opts.offValue ?? 0 });
}

/**
 * Index of the largest value along `axis` (the first one on ties).
 * @param x the tensor @param axis the axis (default last) @returns int32 indices
 */
export function argMax(x: Tensor, axis = -1): Tensor {
  return makeNode(argMaxOp, [x], { axis: normAxis('argMax', axis, x.rank) });
}
