// Scans (issue 12 §1): cumsum, a primitive (TF.js Cumsum, ONNX CumSum). Every backend adds along the axis one
// element after the other, so the host evaluator (constant folding) gives the same bits: float32 rounds after each
// add, int32 wraps.
import { SymflowError, checkAxisAttr, checkBoolAttr, normAxis } from '../errors.js';
import { typedArrayFor } from '../hostValue.js';
import { defineOp, makeNode } from '../registry.js';
import type { Tensor } from '../tensor.js';

export const cumsumOp = defineOp({
  name: 'cumsum',
  attrs: { axis: 'int', exclusive: 'bool', reverse: 'bool' },
  infer: ([x], { axis, exclusive, reverse }) => {
    if (x!.dtype === 'bool') throw new SymflowError('cumsum', `x must be float32 or int32, got bool (${x!.name})`);
    if (x!.rank === 0) throw new SymflowError('cumsum', `x must have rank ≥ 1, got a scalar (${x!.name})`);
    checkAxisAttr('cumsum', axis, x!.rank);
    checkBoolAttr('cumsum', 'exclusive', exclusive);
    checkBoolAttr('cumsum', 'reverse', reverse);
    return { shape: x!.shape, dtype: x!.dtype };
  },
  // The adjoint of a running sum is the running sum the other way: TF's rule.
  grad: (dy, _y, _xs, { axis, exclusive, reverse }) => [() => cumsum(dy, axis, { exclusive, reverse: !reverse })],
  evaluate: ([x], { axis, exclusive, reverse }, out) => {
    const shape = out.shape;
    const n = shape[axis]!;
    const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
    const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
    const f32 = out.dtype === 'float32';
    const add = f32 ? (a: number, b: number) => Math.fround(a + b) : (a: number, b: number) => (a + b) | 0;
    const data = x!.data;
    const result = typedArrayFor(out.dtype, data.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let prev = 0;
        for (let s = 0; s < n; s++) {
          const j = reverse ? n - 1 - s : s;
          const at = (o * n + j) * inner + i;
          const v = data[at]!;
          if (exclusive) {
            result[at] = s === 0 ? 0 : add(prev, data[(o * n + (reverse ? j + 1 : j - 1)) * inner + i]!);
          } else {
            // The first element is copied (−0 stays −0), as every backend does.
            result[at] = s === 0 ? v : add(prev, v);
          }
          prev = result[at]!;
        }
      }
    }
    return result;
  },
});

/** Options of `cumsum`. */
export interface CumsumOptions {
  /** Each output leaves out its own element: [a, b, c] → [0, a, a + b]. Default false. */
  exclusive?: boolean;
  /** Sum from the end: [a, b, c] → [a + b + c, b + c, c]. Default false. */
  reverse?: boolean;
}

/**
 * Cumulative sum along `axis` (default 0), as TF's `cumsum`: `exclusive` starts each sum at 0 without its own
 * element, `reverse` sums from the end. float32 adds in order (IEEE, NaN propagates), int32 wraps.
 * ```ts
 * cumsum(x, 1, { exclusive: true, reverse: true }); // [a, b, c] → [b + c, c, 0]
 * ```
 * @param x a float32 or int32 tensor of rank ≥ 1 @param axis the axis @param opts `{exclusive, reverse}` @returns the running sums
 */
export function cumsum(x: Tensor, axis = 0, opts: CumsumOptions = {}): Tensor {
  const exclusive = opts.exclusive ?? false, reverse = opts.reverse ?? false;
  checkBoolAttr('cumsum', 'exclusive', exclusive);
  checkBoolAttr('cumsum', 'reverse', reverse);
  if (x.rank === 0) throw new SymflowError('cumsum', `x must have rank ≥ 1, got a scalar (${x.name})`);
  return makeNode(cumsumOp, [x], { axis: normAxis('cumsum', axis, x.rank), exclusive, reverse });
}
