import { SymflowError, checkAxesAttr, checkAxisAttr, normAxes, normAxis } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { allKnown } from '../shapes.js';
import { type Dim, isFullyKnown, shapeString, sizeOf, type Tensor } from '../tensor.js';

export const reshapeOp = defineOp({
  name: 'reshape',
  attrs: { shape: 'ints' },
  infer: ([x], { shape }) => ({ shape: reshapeTarget(x!, shape), dtype: x!.dtype }),
  grad: (dy, _y, [x]) => [() => reshapeLike(dy, x!)],
});

/** Reshapes to the run-time shape of `like` (used by gradients, where shapes may hold unknown dimensions). */
export const reshapeLikeOp = defineOp({
  name: 'reshapeLike',
  infer: ([x, like]) => {
    const a = x!.shape, b = like!.shape;
    if (allKnown(a) && allKnown(b) && sizeOf(a) !== sizeOf(b)) {
      throw new SymflowError('reshapeLike', `sizes differ: x is ${shapeString(a)}, like is ${shapeString(b)}`);
    }
    return { shape: b, dtype: x!.dtype };
  },
  grad: (dy, _y, [x]) => [() => reshapeLike(dy, x!), undefined],
});

export const expandDimsOp = defineOp({
  name: 'expandDims',
  attrs: { axis: 'int' },
  infer: ([x], { axis }) => {
    const s = [...x!.shape];
    s.splice(checkAxisAttr('expandDims', axis, x!.rank + 1), 0, 1);
    return { shape: s, dtype: x!.dtype };
  },
  grad: (dy, _y, [x]) => [() => reshapeLike(dy, x!)],
});

export const squeezeOp = defineOp({
  name: 'squeeze',
  attrs: { axes: 'ints' },
  infer: ([x], { axes }) => {
    for (const a of checkAxesAttr('squeeze', axes, x!.rank)) {
      if (x!.shape[a] !== 1) throw new SymflowError('squeeze', `axis ${a} of x ${shapeString(x!.shape)} is not 1`);
    }
    return { shape: x!.shape.filter((_, i) => !axes.includes(i)), dtype: x!.dtype };
  },
  grad: (dy, _y, [x]) => [() => reshapeLike(dy, x!)],
});

function reshapeTarget(x: Tensor, shape: readonly number[]): Dim[] {
  const bad = () => new SymflowError('reshape', `cannot reshape x ${shapeString(x.shape)} (${x.name}) to [${shape.join(',')}]`);
  if (!shape.every((d) => Number.isInteger(d) && d >= -1) || shape.filter((d) => d === -1).length > 1) throw bad();
  const known = sizeOf(shape.filter((d) => d !== -1));
  if (!allKnown(x.shape)) {
    // One unknown dimension (a batch) and the known ones of both sides of one size: the -1 is that dimension, so
    // it keeps its symbol (symbolicShapes), and a random node downstream can take its size from the feed.
    const unknown = x.shape.filter((d) => !(typeof d === 'number' && d >= 0));
    const rest = x.shape.filter((d) => typeof d === 'number' && d >= 0) as number[];
    if (unknown.length === 1 && unknown[0] !== null && shape.includes(-1) && sizeOf(rest) === known) return shape.map((d) => (d === -1 ? unknown[0]! : d));
    return shape.map((d) => (d === -1 ? null : d));
  }
  const total = sizeOf(x.shape);
  if (!shape.includes(-1)) {
    if (known !== total) throw bad();
    return [...shape];
  }
  if (known === 0 || total % known !== 0) throw bad();
  return shape.map((d) => (d === -1 ? total / known : d));
}

/**
 * Reshapes; one dimension may be -1 (or null) and is inferred.
 * @param x the tensor @param shape the new shape @returns x with that shape
 */
export function reshape(x: Tensor, shape: readonly (number | null)[]): Tensor {
  const s = shape.map((d) => (d === null ? -1 : d));
  if (s.includes(-1) && s.includes(0)) {
    throw new SymflowError('reshape', `cannot infer the -1 of [${s.join(',')}] beside a 0-size dimension (x is ${shapeString(x.shape)}): any size fits`);
  }
  return makeNode(reshapeOp, [x], { shape: s });
}

/**
 * Reshapes `x` to the run-time shape of `like` (same number of elements): x itself when the shapes are known and
 * equal, a plain `reshape` when like's shape is fully known.
 * @param x the tensor @param like the tensor whose shape to take @returns x with like's shape
 */
export function reshapeLike(x: Tensor, like: Tensor): Tensor {
  if (isFullyKnown(like.shape)) return x.shape.length === like.rank && x.shape.every((d, i) => d === like.shape[i]) ? x : reshape(x, like.shape);
  return makeNode(reshapeLikeOp, [x, like], {});
}

/**
 * Inserts an axis of size 1.
 * @param x the tensor @param axis where the new axis goes (negative counts from the end) @returns x with one more axis
 */
export function expandDims(x: Tensor, axis = 0): Tensor {
  return makeNode(expandDimsOp, [x], { axis: normAxis('expandDims', axis, x.rank + 1) });
}

/**
 * Removes axes of size 1 (all statically known ones when `axes` is omitted).
 * @param x the tensor @param axes axes to remove @returns x without them
 */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  const list = axes === undefined ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normAxes('squeeze', axes, x.rank);
  if (list.length === 0) return x;
  return makeNode(squeezeOp, [x], { axes: list });
}
