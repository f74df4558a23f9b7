import { asPair, checkSameDtype, type TensorLike } from '../convert.js';
import { SymflowError } from '../errors.js';
import { elementwise } from '../hostEval.js';
import { defineOp, makeNode, type OpDef } from '../registry.js';
import type { Tensor } from '../tensor.js';

// Comparisons and logic give bool tensors and carry no gradient. Comparisons with NaN are false, −0 == +0.
function comparison<const N extends string>(name: N, fn: (a: number, b: number) => boolean, logical = false): OpDef<{}, N> {
  return defineOp({
    name,
    infer: ([a, b], _attrs, ctx) => {
      const dtype = checkSameDtype(name, a!, b!);
      if (logical && dtype !== 'bool') throw new SymflowError(name, `arguments must be bool, got ${dtype}`);
      return { shape: ctx.broadcast(name, a!.shape, b!.shape), dtype: 'bool' };
    },
    evaluate: elementwise((a, b) => +fn(a, b)),
  });
}

export const greaterOp = comparison('greater', (a, b) => a > b);
export const lessOp = comparison('less', (a, b) => a < b);
export const equalOp = comparison('equal', (a, b) => a === b);
export const notEqualOp = comparison('notEqual', (a, b) => a !== b);
export const greaterEqualOp = comparison('greaterEqual', (a, b) => a >= b);
export const lessEqualOp = comparison('lessEqual', (a, b) => a <= b);
export const logicalAndOp = comparison('logicalAnd', (a, b) => a !== 0 && b !== 0, true);
export const logicalOrOp = comparison('logicalOr', (a, b) => a !== 0 || b !== 0, true);
export const logicalNotOp = defineOp({
  name: 'logicalNot',
  evaluate: elementwise((a) => +!a),
  infer: ([x]) => {
    if (x!.dtype !== 'bool') throw new SymflowError('logicalNot', `x must be bool, got ${x!.dtype}`);
    return { shape: x!.shape, dtype: 'bool' };
  },
});

const make = (def: OpDef<{}>) => (a: TensorLike, b: TensorLike): Tensor => makeNode(def, asPair(def.name, a, b), {});

/** a > b elementwise, broadcasting. @returns a bool tensor */
export const greater = make(greaterOp);
/** a < b elementwise, broadcasting. @returns a bool tensor */
export const less = make(lessOp);
/** a == b elementwise, broadcasting. @returns a bool tensor */
export const equal = make(equalOp);
/** a != b elementwise, broadcasting. @returns a bool tensor */
export const notEqual = make(notEqualOp);
/** a ≥ b elementwise, broadcasting. @returns a bool tensor */
export const greaterEqual = make(greaterEqualOp);
/** a ≤ b elementwise, broadcasting. @returns a bool tensor */
export const lessEqual = make(lessEqualOp);
/** Logical and of two bool tensors. @returns a bool tensor */
export const logicalAnd = make(logicalAndOp);
/** Logical or of two bool tensors. @returns a bool tensor */
export const logicalOr = make(logicalOrOp);
/** Logical not of a bool tensor. @returns a bool tensor */
export function logicalNot(x: Tensor): Tensor {
  return makeNode(logicalNotOp, [x], {});
}
