import { SymflowError } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import type { Tensor } from '../tensor.js';

export const transposeOp = defineOp({
  name: 'transpose',
  attrs: { perm: 'ints' },
  infer: ([x], { perm }) => {
    const ok = perm.length === x!.rank && [...perm].sort((p, q) => p - q).every((p, i) => p === i);
    if (!ok) throw new SymflowError('transpose', `perm [${perm.join(',')}] is not a permutation of rank ${x!.rank} (${x!.name})`);
    return { shape: perm.map((p) => x!.shape[p]!), dtype: x!.dtype };
  },
  grad: (dy, _y, _x, { perm }) => [() => transpose(dy, inversePerm(perm))],
});

export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/**
 * Permutes axes; by default reverses them.
 * @param x the tensor @param perm the new order of x's axes @returns the transposed tensor
 */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? Array.from({ length: x.rank }, (_, i) => x.rank - 1 - i);
  if (p.every((q, i) => q === i)) return x;
  return makeNode(transposeOp, [x], { perm: [...p] });
}
