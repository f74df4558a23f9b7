import { SymflowError, checkAxesAttr, checkBoolAttr, normAxes } from '../errors.js';
import { defineOp, makeNode, type OpDef, type OpRules } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { broadcastLike } from './broadcast.js';
import { mul } from './binary.js';
import { cast } from './cast.js';
import { equal } from './compare.js';
import { expandDims } from './reshape.js';

type ReduceAttrs = { readonly axes: readonly number[]; readonly keepDims: boolean };

function reduce<const N extends string>(name: N, grad: OpRules<ReduceAttrs>['grad']): OpDef<ReduceAttrs, N> {
  return defineOp({ name, attrs: { axes: 'ints', keepDims: 'bool' }, infer: reduceInfer(name), grad });
}

function reduceInfer(name: string) {
  return ([x]: readonly Tensor[], { axes, keepDims }: ReduceAttrs) => {
    if (x!.dtype === 'bool') throw new SymflowError(name, `x must be numeric, got bool (${x!.name})`);
    checkAxesAttr(name, axes, x!.rank);
    checkBoolAttr(name, 'keepDims', keepDims);
    const shape = keepDims ? x!.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x!.shape.filter((_, i) => !axes.includes(i));
    return { shape, dtype: x!.dtype };
  };
}

/** Puts the reduced axes back as size-1 axes, so a reduction's result broadcasts against its input. */
export function keepReducedDims(t: Tensor, axes: readonly number[], keepDims: boolean): Tensor {
  if (keepDims) return t;
  return axes.reduce((acc, a) => expandDims(acc, a), t);
}

export const sumOp = reduce('sum', (dy, _y, [x], { axes, keepDims }) => [() => broadcastLike(keepReducedDims(dy, axes, keepDims), x!)]);

// Every position equal to the max receives the full gradient, as in TF.js.
export const maxOp = reduce('max', (dy, y, [x], { axes, keepDims }) => [() => {
  const hit = cast(equal(x!, keepReducedDims(y, axes, keepDims)), x!.dtype);
  return mul(keepReducedDims(dy, axes, keepDims), hit);
}]);

function reducer(def: OpDef<ReduceAttrs>) {
  return (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => {
    const list = normAxes(def.name, axes, x.rank);
    if (list.length === 0) return x;
    return makeNode(def, [x], { axes: list, keepDims });
  };
}

/**
 * Sum over `axes` (all axes when omitted).
 * ```ts
 * const total = sum(x);            // scalar
 * const rows = sum(x, 1, true);    // [n, 1]
 * ```
 * @param x the tensor @param axes axes to reduce @param keepDims keep them as size 1 @returns the sum
 */
export const sum = reducer(sumOp);
/**
 * Maximum over `axes` (all axes when omitted).
 * @param x the tensor @param axes axes to reduce @param keepDims keep them as size 1 @returns the maximum
 */
export const max = reducer(maxOp);
