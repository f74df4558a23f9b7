import { SymflowError } from '../errors.js';
import { castValue, elementwise } from '../hostEval.js';
import { defineOp, makeNode } from '../registry.js';
import type { DType, Tensor } from '../tensor.js';

export const castOp = defineOp({
  name: 'cast',
  attrs: { dtype: 'dtype' },
  evaluate: (ins, attrs, out) => elementwise((v) => castValue(attrs.dtype, v), { exact: true })(ins, attrs, out),
  infer: ([x], { dtype }) => {
    if (!['float32', 'int32', 'bool'].includes(dtype)) throw new SymflowError('cast', `unknown dtype ${JSON.stringify(dtype)}`);
    return { shape: x!.shape, dtype };
  },
  // Only a float-to-float cast passes a gradient; anything through int or bool has none.
  grad: (dy, _y, [x], { dtype }) => [x!.dtype === 'float32' && dtype === 'float32' ? () => dy : undefined],
});

/**
 * Converts to another dtype (float to int truncates toward zero, as TF.js does).
 * ```ts
 * const f = cast(labels, 'float32');
 * ```
 * @param x the tensor @param dtype the target dtype @returns x as `dtype` (x itself if already so)
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return makeNode(castOp, [x], { dtype });
}
