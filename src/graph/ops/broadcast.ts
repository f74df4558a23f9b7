import { SymflowError } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { sameKnownShape } from '../shapes.js';
import type { Tensor } from '../tensor.js';

/**
 * `sumToShape(x, like)`: sums `x` over the axes along which `like` was broadcast, giving `like`'s shape. The
 * reduction axes are found from the real shapes at run time, so unknown dimensions are handled exactly (the
 * batch dimension of a bias gradient, say). It is the inverse of `broadcastLike`, and each is the other's gradient.
 */
export const sumToShapeOp = defineOp({
  name: 'sumToShape',
  infer: ([x, like], _attrs, ctx) => {
    ctx.broadcast('sumToShape', like!.shape, x!.shape, ['like', 'x']);
    if (like!.rank > x!.rank) throw new SymflowError('sumToShape', `like has rank ${like!.rank} > x's ${x!.rank}`);
    return { shape: like!.shape, dtype: x!.dtype };
  },
  grad: (dy, _y, [x]) => [() => broadcastLike(dy, x!), undefined],
});

/** `broadcastLike(x, like)`: broadcasts `x` to the (run-time) shape of `like`. */
export const broadcastLikeOp = defineOp({
  name: 'broadcastLike',
  infer: ([x, like], _attrs, ctx) => ({ shape: ctx.broadcast('broadcastLike', x!.shape, like!.shape, ['x', 'like']), dtype: x!.dtype }),
  grad: (dy, _y, [x]) => [() => sumToShape(dy, x!), undefined],
});

/**
 * Sums `x` over the axes along which `like` was broadcast, giving `like`'s shape (the axes found at run time); the
 * gradient of a broadcast.
 * @param x the broadcast value @param like the tensor whose shape to reduce to @returns x summed to like's shape
 */
export function sumToShape(x: Tensor, like: Tensor): Tensor {
  return makeNode(sumToShapeOp, [x, like], {});
}

/**
 * Broadcasts `x` to the run-time shape of `like` (NumPy rules); x itself when both shapes are known and equal.
 * @param x the tensor @param like the tensor whose shape to take @returns x broadcast to like's shape
 */
export function broadcastLike(x: Tensor, like: Tensor): Tensor {
  if (sameKnownShape(x.shape, like.shape)) return x;
  return makeNode(broadcastLikeOp, [x, like], {});
}

/**
 * The one shared unbroadcast of every broadcasting op's gradient: reduce `dy` to the shape of input `x`.
 * Free when both shapes are known and equal; otherwise the run-time `sumToShape` decides.
 */
export function unbroadcast(dy: Tensor, x: Tensor): Tensor {
  if (sameKnownShape(dy.shape, x.shape)) return dy;
  return sumToShape(dy, x);
}
