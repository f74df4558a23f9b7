import { asTensor, checkSameDtype, type TensorLike } from '../convert.js';
import { SymflowError } from '../errors.js';
import { elementwise } from '../hostEval.js';
import { defineOp, makeNode } from '../registry.js';
import { isTensor, type Tensor } from '../tensor.js';
import { unbroadcast } from './broadcast.js';

export const whereOp = defineOp({
  name: 'where',
  infer: ([c, a, b], _attrs, ctx) => {
    if (c!.dtype !== 'bool') throw new SymflowError('where', `cond must be bool, got ${c!.dtype} (${c!.name})`);
    const dtype = checkSameDtype('where', a!, b!);
    const ab = ctx.broadcast('where', a!.shape, b!.shape);
    return { shape: ctx.broadcast('where', c!.shape, ab, ['cond', 'a/b']), dtype };
  },
  // Selects bits as they are (NaN and −0 kept).
  evaluate: elementwise((c, a, b) => (c ? a : b), { exact: true }),
  grad: (dy, _y, [c, a, b]) => [
    undefined,
    () => unbroadcast(where(c!, dy, 0), a!),
    () => unbroadcast(where(c!, 0, dy), b!),
  ],
});

/**
 * Elementwise selection: `a` where `cond` is true, else `b`; all three broadcast. Both sides are computed; for
 * lazy evaluation of whole subgraphs use `cond`.
 * @param cond bool tensor @param a value where true @param b value where false @returns the selection
 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const like = isTensor(a) ? a.dtype : isTensor(b) ? b.dtype : 'float32';
  return makeNode(whereOp, [cond, asTensor('where', 'a', a, like), asTensor('where', 'b', b, like)], {});
}
