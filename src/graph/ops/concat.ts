import { SymflowError, checkAxisAttr, normAxis } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { type Dim, shapeString, type Tensor } from '../tensor.js';
import { slice } from './slice.js';

export const concatOp = defineOp({
  name: 'concat',
  attrs: { axis: 'int' },
  infer: (xs, { axis }, ctx) => {
    if (xs.length === 0) throw new SymflowError('concat', 'needs at least one tensor');
    const first = xs[0]!;
    checkAxisAttr('concat', axis, first.rank);
    let along: Dim = 0;
    const shape = [...first.shape];
    xs.forEach((x, i) => {
      if (x.dtype !== first.dtype) throw new SymflowError('concat', `dtypes differ: xs[0] is ${first.dtype}, xs[${i}] is ${x.dtype}`);
      const same = x.rank === first.rank && x.shape.every((d, j) => j === axis || !ctx.known(d) || !ctx.known(shape[j]!) || d === shape[j]);
      if (!same) {
        throw new SymflowError('concat', `shapes differ off axis ${axis}: xs[0] is ${shapeString(first.shape)}, xs[${i}] is ${shapeString(x.shape)}`);
      }
      x.shape.forEach((d, j) => { if (j !== axis && !ctx.known(shape[j]!)) shape[j] = d; });
      const n = x.shape[axis]!;
      along = ctx.known(along) && ctx.known(n) ? along + n : null;
    });
    shape[axis] = along;
    return { shape, dtype: first.dtype };
  },
  grad: (dy, _y, xs, { axis }) => {
    let offset = 0;
    return xs.map((x, i) => {
      const size = x.shape[axis];
      const begin = offset;
      if (size === null) {
        return () => { throw new SymflowError('gradients', `concat: gradient needs a static size along axis ${axis}, xs[${i}] is ${shapeString(x.shape)}`); };
      }
      offset += size;
      return () => slice(dy, x.shape.map((_, j) => (j === axis ? begin : 0)), x.shape.map((_, j) => (j === axis ? size : -1)));
    });
  },
});

/**
 * Joins tensors along an axis.
 * @param xs tensors of one dtype whose shapes agree off `axis` @param axis the axis @returns the concatenation
 */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new SymflowError('concat', 'needs at least one tensor');
  if (xs.length === 1) return xs[0]!;
  return makeNode(concatOp, xs, { axis: normAxis('concat', axis, xs[0]!.rank) });
}
