import { checkSameDtype } from '../convert.js';
import { SymflowError, argShape, checkBoolAttr } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import type { Dim, Tensor } from '../tensor.js';
import { unbroadcast } from './broadcast.js';

/** Options of `matMul`. */
export interface MatMulOptions {
  /** Use a's last two axes transposed: op(a) = aᵀ. Default false. */
  transposeA?: boolean;
  /** Use b's last two axes transposed: op(b) = bᵀ. Default false. */
  transposeB?: boolean;
}

export const matMulOp = defineOp({
  name: 'matMul',
  attrs: { transposeA: 'bool', transposeB: 'bool' },
  infer: ([a, b], { transposeA, transposeB }, ctx) => {
    const dtype = checkSameDtype('matMul', a!, b!);
    checkBoolAttr('matMul', 'transposeA', transposeA);
    checkBoolAttr('matMul', 'transposeB', transposeB);
    if (dtype === 'bool') throw new SymflowError('matMul', 'arguments must be numeric, got bool');
    if (a!.rank < 2 || b!.rank < 2) {
      throw new SymflowError('matMul', `arguments must have rank >= 2: ${argShape('a', a!)}, ${argShape('b', b!)}`);
    }
    const [m, ka] = matrixDims(a!.shape, transposeA);
    const [kb, n] = matrixDims(b!.shape, transposeB);
    if (ctx.known(ka) && ctx.known(kb) && ka !== kb) {
      const t = transposeA || transposeB ? ` (transposeA ${transposeA}, transposeB ${transposeB})` : '';
      throw new SymflowError('matMul', `inner dimensions differ: ${argShape('a', a!)}, ${argShape('b', b!)}${t}`);
    }
    ctx.equal(ka, kb);
    const batch = ctx.broadcast('matMul', a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return { shape: [...batch, m, n], dtype };
  },
  grad: (dy, _y, [a, b], { transposeA: ta, transposeB: tb }) => {
    // The four cases of d(op(A)·op(B)); batched dimensions that were broadcast are summed back.
    const da = !ta ? () => matMul(dy, b!, { transposeB: !tb }) : () => matMul(b!, dy, { transposeA: tb, transposeB: true });
    const db = !tb ? () => matMul(a!, dy, { transposeA: !ta }) : () => matMul(dy, a!, { transposeA: true, transposeB: ta });
    return [() => unbroadcast(da(), a!), () => unbroadcast(db(), b!)];
  },
});

function matrixDims(shape: readonly Dim[], transposed: boolean): [Dim, Dim] {
  const r = shape[shape.length - 2]!;
  const c = shape[shape.length - 1]!;
  return transposed ? [c, r] : [r, c];
}

/**
 * Matrix product over the last two axes; leading axes are batch axes and broadcast.
 * ```ts
 * const h = matMul(x, w); // [batch, 784] · [784, 256] → [batch, 256]
 * ```
 * @param a left matrix @param b right matrix @param opts transposeA / transposeB @returns op(a) · op(b)
 */
export function matMul(a: Tensor, b: Tensor, opts: MatMulOptions = {}): Tensor {
  return makeNode(matMulOp, [a, b], { transposeA: opts.transposeA ?? false, transposeB: opts.transposeB ?? false });
}
