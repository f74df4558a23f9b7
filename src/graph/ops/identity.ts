import { SymflowError } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { type Shape, shapeString, type Tensor } from '../tensor.js';

export const identityOp = defineOp({
  name: 'identity',
  evaluate: ([x]) => x!.data.slice(),
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  grad: (dy) => [() => dy],
});

// The same value with no gradient rule: gradients stop here.
export const stopGradientOp = defineOp({
  name: 'stopGradient',
  evaluate: ([x]) => x!.data.slice(),
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
});

export const addNOp = defineOp({
  name: 'addN',
  infer: (xs, _attrs, ctx) => {
    if (xs.length === 0) throw new SymflowError('addN', 'needs at least one tensor');
    const first = xs[0]!;
    let shape: Shape = first.shape;
    xs.forEach((x, i) => {
      if (x.dtype !== first.dtype) throw new SymflowError('addN', `dtypes differ: xs[0] is ${first.dtype}, xs[${i}] is ${x.dtype}`);
      if (!ctx.sameShape(x.shape, shape)) {
        throw new SymflowError('addN', `shapes differ: xs[0] is ${shapeString(first.shape)}, xs[${i}] is ${shapeString(x.shape)}`);
      }
      shape = ctx.merge(shape, x.shape);
    });
    if (first.dtype === 'bool') throw new SymflowError('addN', 'arguments must be numeric, got bool');
    return { shape, dtype: first.dtype };
  },
  grad: (dy, _y, xs) => xs.map(() => () => dy),
});

/** The same value under a new node (and optionally a readable name). @param x the tensor @returns x */
export function identity(x: Tensor, name?: string): Tensor {
  return makeNode(identityOp, [x], {}, name);
}

/** The same value, but gradients do not flow back through it. @param x the tensor @returns x */
export function stopGradient(x: Tensor): Tensor {
  return makeNode(stopGradientOp, [x], {});
}

/**
 * Sum of several tensors of one shape and dtype, in one kernel.
 * @param xs the tensors @returns their sum
 */
export function addN(xs: readonly Tensor[]): Tensor {
  if (xs.length === 1) return xs[0]!;
  return makeNode(addNOp, xs, {});
}
