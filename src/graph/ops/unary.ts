import { checkFloat } from '../convert.js';
import { SymflowError } from '../errors.js';
import { elementwise } from '../hostEval.js';
import { defineOp, makeNode, type HostEvaluator, type OpDef } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { div, mul } from './binary.js';
import { cast } from './cast.js';
import { sub } from './math.js';

type Grad = (dy: Tensor, y: Tensor, x: Tensor) => Tensor;

/** A same-shape op of one input; `relu` (ops/fused.ts) shares it. */
export function unary<const N extends string>(name: N, opts: { float?: boolean; numeric?: boolean; grad?: Grad; evaluate?: HostEvaluator; compose?: (x: Tensor) => Tensor }): OpDef<{}, N> {
  return defineOp({
    name,
    evaluate: opts.evaluate,
    infer: ([x]) => {
      if (opts.float) checkFloat(name, 'x', x!);
      if (opts.numeric && x!.dtype === 'bool') throw new SymflowError(name, `x must be numeric, got bool (${x!.name})`);
      return { shape: x!.shape, dtype: x!.dtype };
    },
    grad: opts.grad && ((dy, y, [x]) => [() => opts.grad!(dy, y, x!)]),
    compose: opts.compose && (([x]) => opts.compose!(x!)),
  });
}

// Each line: a primitive with its gradient rule beside it, and its host evaluator where the host computes the
// backends' bits exactly (sigmoid, tanh, sin and cos are left to the backends: their last bit may differ).
export const negOp = unary('neg', { numeric: true, evaluate: elementwise((a) => -a), grad: (dy) => neg(dy) });
export const expOp = unary('exp', { float: true, evaluate: elementwise(Math.exp), grad: (dy, y) => mul(dy, y) });
export const logOp = unary('log', { float: true, evaluate: elementwise(Math.log), grad: (dy, _y, x) => div(dy, x) });
export const sqrtOp = unary('sqrt', { float: true, evaluate: elementwise(Math.sqrt), grad: (dy, y) => div(dy, mul(2, y)) });
export const absOp = unary('abs', { numeric: true, evaluate: elementwise(Math.abs), grad: (dy, _y, x) => mul(dy, sign(x)) });
// sign(±0) = +0 and sign(NaN) = NaN, as NumPy (Math.sign(−0) is −0).
export const signOp = unary('sign', { numeric: true, evaluate: elementwise((a) => (a > 0 ? 1 : a < 0 ? -1 : a === 0 ? 0 : NaN)) });
export const sigmoidOp = unary('sigmoid', { float: true, grad: (dy, y) => mul(dy, mul(y, sub(1, y))) });
export const tanhOp = unary('tanh', { float: true, grad: (dy, y) => mul(dy, sub(1, mul(y, y))) });
export const sinOp = unary('sin', { float: true, grad: (dy, _y, x) => mul(dy, cos(x)) });
export const cosOp = unary('cos', { float: true, grad: (dy, _y, x) => neg(mul(dy, sin(x))) });
// NOTE: floor and round have zero gradient almost everywhere; TF gives none, so do we.
export const floorOp = unary('floor', { float: true, evaluate: elementwise(Math.floor) });

const make = (def: OpDef<{}>) => (x: Tensor): Tensor => makeNode(def, [x], {});

/** Elementwise −x. @param x a numeric tensor @returns −x */
export const neg = make(negOp);
/** Elementwise eˣ. @param x a float32 tensor @returns eˣ */
export const exp = make(expOp);
/** Elementwise natural logarithm. @param x a float32 tensor @returns ln x */
export const log = make(logOp);
/** Elementwise square root. @param x a float32 tensor @returns √x */
export const sqrt = make(sqrtOp);
/** Elementwise |x|. @param x a numeric tensor @returns |x| */
export const abs = make(absOp);
/** Elementwise sign (−1, 0, 1). @param x a numeric tensor @returns sign(x) */
export const sign = make(signOp);
/** Logistic sigmoid 1 / (1 + e⁻ˣ). @param x a float32 tensor @returns σ(x) */
export const sigmoid = make(sigmoidOp);
/** Hyperbolic tangent. @param x a float32 tensor @returns tanh x */
export const tanh = make(tanhOp);
/** Elementwise sine (radians), e.g. for a cosine schedule's phase. @param x a float32 tensor @returns sin x */
export const sin = make(sinOp);
/**
 * Elementwise cosine (radians).
 * ```ts
 * const lr = (t: Tensor) => mul(0.05, add(1, cos(mul(Math.PI / 1000, t)))); // cosine decay over 1,000 steps
 * ```
 * @param x a float32 tensor @returns cos x
 */
export const cos = make(cosOp);
/** Elementwise floor. @param x a float32 tensor @returns ⌊x⌋ */
export const floor = make(floorOp);

/** 1 / x, composed from div. @param x a float32 tensor @returns 1/x */
export function reciprocal(x: Tensor): Tensor {
  return div(1, x);
}

/** x as float32 (a convenience over `cast`). */
export function toFloat(x: Tensor): Tensor {
  return x.dtype === 'float32' ? x : cast(x, 'float32');
}
