import { asPair, checkSameDtype, type TensorLike } from '../convert.js';
import { SymflowError } from '../errors.js';
import { cPow, castValue, elementwise } from '../hostEval.js';
import { defineOp, makeNode, type GradThunks, type HostEvaluator, type OpDef } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { unbroadcast } from './broadcast.js';
import { cast } from './cast.js';
import { greater, greaterEqual, less, lessEqual } from './compare.js';
import { log, neg } from './unary.js';
import { sub } from './math.js';
import { where } from './where.js';

/** A broadcasting binary op on numbers; `subtract` (ops/fused.ts) shares it. */
export function binary<const N extends string>(
  name: N, evaluate: HostEvaluator, grad?: (dy: Tensor, y: Tensor, a: Tensor, b: Tensor) => GradThunks, compose?: (a: Tensor, b: Tensor) => Tensor,
): OpDef<{}, N> {
  return defineOp({
    name,
    infer: ([a, b], _attrs, ctx) => {
      const dtype = checkSameDtype(name, a!, b!);
      if (dtype === 'bool') throw new SymflowError(name, `arguments must be numeric, got bool (a is ${a!.name})`);
      return { shape: ctx.broadcast(name, a!.shape, b!.shape), dtype };
    },
    evaluate,
    grad: grad && ((dy, y, [a, b]) => grad(dy, y, a!, b!)),
    compose: compose && (([a, b]) => compose(a!, b!)),
  });
}

const mask = (t: Tensor) => cast(t, 'float32');

// Each primitive with its gradient rule; every input's gradient goes through the shared unbroadcast.
export const addOp = binary('add', elementwise((a, b) => a + b), (dy, _y, a, b) => [() => unbroadcast(dy, a), () => unbroadcast(dy, b)]);
// int32: × wraps (Math.imul), ÷ floors with x / 0 = 0, a power saturates as a cast (docs/semantics.md).
export const mulOp = binary('mul', elementwise((a, b) => a * b, { int: Math.imul }), (dy, _y, a, b) => [() => unbroadcast(mul(dy, b), a), () => unbroadcast(mul(dy, a), b)]);
export const divOp = binary('div', elementwise((a, b) => a / b, { int: (a, b) => (b === 0 ? 0 : Math.floor(a / b)) }), (dy, _y, a, b) => [
  () => unbroadcast(div(dy, b), a),
  () => unbroadcast(neg(div(mul(dy, a), mul(b, b))), b),
]);
// Ties send the gradient to `a`, as in TF and TF.js.
export const maximumOp = binary('maximum', elementwise(Math.max), (dy, _y, a, b) => [
  () => unbroadcast(mul(dy, mask(greaterEqual(a, b))), a),
  () => unbroadcast(mul(dy, mask(less(a, b))), b),
]);
export const minimumOp = binary('minimum', elementwise(Math.min), (dy, _y, a, b) => [
  () => unbroadcast(mul(dy, mask(lessEqual(a, b))), a),
  () => unbroadcast(mul(dy, mask(greater(a, b))), b),
]);
// d/da aᵇ = b·aᵇ⁻¹; d/db aᵇ = aᵇ·ln a, taken as 0 where a ≤ 0 (TF.js does the same).
export const powOp = binary('pow', elementwise(cPow, { int: (a, b) => castValue('int32', Math.pow(a, b)) }), (dy, y, a, b) => [
  () => unbroadcast(mul(dy, mul(b, pow(a, sub(b, 1)))), a),
  () => unbroadcast(mul(dy, mul(y, where(greater(a, 0), log(a), 0))), b),
]);

const make = (def: OpDef<{}>) => (a: TensorLike, b: TensorLike): Tensor => makeNode(def, asPair(def.name, a, b), {});

/** a + b with NumPy broadcasting. @param a tensor or number @param b tensor or number @returns a + b */
export const add = make(addOp);
/** a · b elementwise, broadcasting. @param a tensor or number @param b tensor or number @returns a · b */
export const mul = make(mulOp);
/** a / b elementwise, broadcasting. @param a tensor or number @param b tensor or number @returns a / b */
export const div = make(divOp);
/** Elementwise maximum, broadcasting. @param a tensor or number @param b tensor or number @returns max(a, b) */
export const maximum = make(maximumOp);
/** Elementwise minimum, broadcasting. @param a tensor or number @param b tensor or number @returns min(a, b) */
export const minimum = make(minimumOp);
/** Elementwise power aᵇ, broadcasting. @param a base @param b exponent @returns aᵇ */
export const pow = make(powOp);
