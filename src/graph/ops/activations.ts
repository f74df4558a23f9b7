// Activations (issue 12 §1): erf and softplus are primitives (a kernel on every backend: TF.js Erf / Softplus, ONNX
// Erf and a float64 softplus); gelu, silu, logSumExp and clipByValue are composites of public ops, so their
// gradients (of every order) come from the rules of the ops they are made of.
import { asTensor, checkFloat, type TensorLike } from '../convert.js';
import { SymflowError, normAxes } from '../errors.js';
import { makeNode } from '../registry.js';
import { isTensor, type Tensor } from '../tensor.js';
import { add, maximum, minimum, mul } from './binary.js';
import { less } from './compare.js';
import { stopGradient } from './identity.js';
import { square, sub } from './math.js';
import { max, sum } from './reduce.js';
import { squeeze } from './reshape.js';
import { abs, exp, log, neg, sigmoid, tanh, unary } from './unary.js';
import { where } from './where.js';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

// erf's last bits are the backend's (TF.js uses Abramowitz–Stegun 7.1.26, onnxruntime its own): no host evaluator.
export const erfOp = unary('erf', { float: true, grad: (dy, _y, x) => mul(dy, mul(TWO_OVER_SQRT_PI, exp(neg(square(x))))) });
// d/dx log(1 + eˣ) = σ(x).
export const softplusOp = unary('softplus', { float: true, grad: (dy, _y, x) => mul(dy, sigmoid(x)) });

/**
 * The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt. Absolute error ≤ 3e-7 on every backend (TF.js computes
 * Abramowitz–Stegun 7.1.26); `erf(±0) = ±0`, `erf(±Inf) = ±1`.
 * @param x a float32 tensor @returns erf(x)
 */
export function erf(x: Tensor): Tensor {
  return makeNode(erfOp, [x], {});
}

/**
 * softplus(x) = log(1 + eˣ), in TF's stable form: eˣ below x = log(ε) + 2 ≈ −13.9, x above −(log(ε) + 2), and
 * log(1 + eˣ) (in double precision) between, so it neither overflows for large x nor rounds to 0 for very negative x.
 * @param x a float32 tensor @returns softplus(x)
 */
export function softplus(x: Tensor): Tensor {
  return makeNode(softplusOp, [x], {});
}

/** Options of `gelu`. */
export interface GeluOptions {
  /** `'none'` (default): the exact x·Φ(x) with erf; `'tanh'`: the tanh approximation (PyTorch's `approximate='tanh'`, Keras' `approximate=True`). */
  approximate?: 'none' | 'tanh';
}

/**
 * The Gaussian error linear unit, as PyTorch and Keras define it: exact, 0.5·x·(1 + erf(x/√2)); with
 * `approximate: 'tanh'`, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). A composite (erf or tanh and a few
 * elementwise ops), so every order of derivative works. By its formula gelu(−Inf) is NaN, as in PyTorch and TF.
 * ```ts
 * const h = gelu(add(matMul(x, w), b));
 * ```
 * @param x a float32 tensor @param opts `{approximate}` @returns gelu(x)
 */
export function gelu(x: Tensor, opts: GeluOptions = {}): Tensor {
  const approximate = opts.approximate ?? 'none';
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new SymflowError('gelu', `approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  }
  checkFloat('gelu', 'x', x);
  const inner = approximate === 'none'
    ? erf(mul(x, Math.SQRT1_2))
    : tanh(mul(Math.sqrt(2 / Math.PI), add(x, mul(0.044715, mul(x, square(x))))));
  return mul(mul(0.5, x), add(1, inner));
}

/**
 * The sigmoid linear unit (swish with β = 1): x·σ(x). A composite; silu(−Inf) is NaN by its formula, as in PyTorch.
 * @param x a float32 tensor @returns x·σ(x)
 */
export function silu(x: Tensor): Tensor {
  checkFloat('silu', 'x', x);
  return mul(x, sigmoid(x));
}

/** Options of `logSumExp`. */
export interface LogSumExpOptions {
  /** Keep the reduced axes as size 1 (default false). */
  keepDims?: boolean;
}

/**
 * log Σ exp(x) over `axes` (all when omitted), stable: shifted by the (gradient-stopped) max along the axes, as
 * TF's `reduce_logsumexp`. Where that max is not finite the shift is 0, so a slice of only −Inf (or an empty one)
 * gives −Inf, a slice holding +Inf gives +Inf, and NaN propagates; ±1e30 stays finite. The gradient is softmax(x)
 * along the axes.
 * @param x a float32 tensor @param axes axes to reduce @param opts `{keepDims}` @returns the log-sum-exp
 */
export function logSumExp(x: Tensor, axes?: number | readonly number[], opts: LogSumExpOptions = {}): Tensor {
  checkFloat('logSumExp', 'x', x);
  const keepDims = opts.keepDims ?? false;
  if (typeof keepDims !== 'boolean') throw new SymflowError('logSumExp', `keepDims must be a boolean, got ${JSON.stringify(keepDims)}`);
  const list = normAxes('logSumExp', axes, x.rank);
  if (list.length === 0) return x;
  const m = max(x, list, true);
  // |m| < Inf is false for ±Inf and NaN: shift by 0 there (a NaN max still makes the sum NaN).
  const shift = stopGradient(where(less(abs(m), Infinity), m, 0));
  const r = add(log(sum(exp(sub(x, shift)), list, true)), shift);
  return keepDims ? r : squeeze(r, list);
}

/**
 * Clips x to [lo, hi] elementwise: minimum(maximum(x, lo), hi), as `tf.clipByValue` (lo and hi may also be
 * tensors, broadcasting). NaN stays NaN. The gradient passes where lo ≤ x ≤ hi, boundaries included, as TF's
 * (`ClipByValue`'s gradient in TF.js), and is 0 outside; lo and hi tensors get the gradient where x was clipped to
 * them (strictly beyond them, as TF's). A NaN element gets no gradient (TF passes it). Numbers with lo > hi are an
 * error; tensors with lo > hi give hi, as TF.
 * @param x a numeric tensor @param lo the lower bound @param hi the upper bound @returns the clipped tensor
 */
export function clipByValue(x: Tensor, lo: TensorLike, hi: TensorLike): Tensor {
  if (!isTensor(x)) throw new SymflowError('clipByValue', `x must be a Tensor, got ${x === null ? 'null' : typeof x}`);
  if (x.dtype === 'bool') throw new SymflowError('clipByValue', `x must be numeric, got bool (${x.name})`);
  if (typeof lo === 'number' && typeof hi === 'number') {
    if (Number.isNaN(lo) || Number.isNaN(hi)) throw new SymflowError('clipByValue', `lo and hi must not be NaN, got lo ${lo}, hi ${hi}`);
    if (lo > hi) throw new SymflowError('clipByValue', `lo (${lo}) must be ≤ hi (${hi})`);
  }
  return minimum(maximum(x, asTensor('clipByValue', 'lo', lo, x.dtype)), asTensor('clipByValue', 'hi', hi, x.dtype));
}
