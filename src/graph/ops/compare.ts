import { asPair, checkSameDtype, type TensorLike } from '../convert.js';
import { SymflowError } from '../errors.js';
import { defineOp, makeNode, type OpDef } from '../registry.js';
import { broadcastShapes } from '../shapes.js';
import type { Tensor } from '../tensor.js';

// Comparisons and logic give bool tensors and carry no gradient.
function comparison(name: string, logical = false): OpDef {
  return defineOp({
    name,
    infer: ([a, b]) => {
      const dtype = checkSameDtype(name, a!, b!);
      if (logical && dtype !== 'bool') throw new SymflowError(name, `arguments must be bool, got ${dtype}`);
      return { shape: broadcastShapes(name, a!.shape, b!.shape), dtype: 'bool' };
    },
  });
}

export const greaterOp = comparison('greater');
export const lessOp = comparison('less');
export const equalOp = comparison('equal');
export const notEqualOp = comparison('notEqual');
export const greaterEqualOp = comparison('greaterEqual');
export const lessEqualOp = comparison('lessEqual');
export const logicalAndOp = comparison('logicalAnd', true);
export const logicalOrOp = comparison('logicalOr', true);
export const logicalNotOp = defineOp({
  name: 'logicalNot',
  infer: ([x]) => {
    if (x!.dtype !== 'bool') throw new SymflowError('logicalNot', `x must be bool, got ${x!.dtype}`);
    return { shape: x!.shape, dtype: 'bool' };
  },
});

const make = (def: OpDef) => (a: TensorLike, b: TensorLike): Tensor => makeNode(def, asPair(def.name, a, b), {});

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
