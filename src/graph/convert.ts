import { SymflowError } from './errors.js';
import { scalarConstant } from './sources.js';
import { type DType, isTensor, type Tensor } from './tensor.js';

/** What ops accept: a symbolic tensor, or a JS number or boolean that becomes a scalar constant. */
export type TensorLike = Tensor | number | boolean;

/**
 * Converts an op argument. A number takes the dtype of the op's other tensor arguments (`like`), as in
 * `mul(0.5, x)`; errors name the op and the argument.
 */
export function asTensor(op: string, arg: string, x: TensorLike, like: DType = 'float32'): Tensor {
  if (isTensor(x)) return x;
  if (typeof x === 'boolean') return scalarConstant(x ? 1 : 0, 'bool');
  if (typeof x === 'number') {
    if (like === 'int32' && !Number.isInteger(x)) throw new SymflowError(op, `${arg} is ${x}, not an integer, for an int32 op`);
    if (like === 'bool') return scalarConstant(x, 'float32');
    return scalarConstant(x, like);
  }
  throw new SymflowError(op, `${arg} must be a Tensor or a number, got ${x === null ? 'null' : typeof x}`);
}

/** Converts two operands; a number adopts the other operand's dtype. */
export function asPair(op: string, a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  const da = isTensor(a) ? a.dtype : undefined;
  const db = isTensor(b) ? b.dtype : undefined;
  return [asTensor(op, 'a', a, da ?? db), asTensor(op, 'b', b, db ?? da)];
}

export function checkSameDtype(op: string, a: Tensor, b: Tensor, names: [string, string] = ['a', 'b']): DType {
  if (a.dtype !== b.dtype) throw new SymflowError(op, `dtypes differ: ${names[0]} is ${a.dtype}, ${names[1]} is ${b.dtype}`);
  return a.dtype;
}

export function checkFloat(op: string, arg: string, t: Tensor): void {
  if (t.dtype !== 'float32') throw new SymflowError(op, `${arg} must be float32, got ${t.dtype} (${t.name})`);
}
