// TF.js kernels wrapped to follow docs/semantics.md where a TF.js backend does not: edge values (NaN, ±Inf,
// empty tensors, int32 overflow) give the same bits on cpu, wasm and onnx.
import * as tf from '@tensorflow/tfjs-core';
import { SymflowError } from '../graph/errors.js';
import { shapeString } from '../graph/tensor.js';

/** The TF.js backend a kernel is built for: a few wrappers are needed on one of them only. */
export type TfBackendName = 'cpu' | 'wasm' | 'tensorflow';

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
/** The largest float32 below 2^31: clipping to it keeps a float → int32 cast in range. */
const F32_BELOW_2_31 = 2147483520;

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
/** A double to int32 as `cast` does: truncated toward zero, saturated, NaN → 0. */
const saturate = (v: number) => (Number.isNaN(v) ? 0 : Math.trunc(Math.min(Math.max(v, INT32_MIN), INT32_MAX)));

/** The shape a reduction over `axes` gives. */
function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Sum over axes; an empty reduction is 0 (TF.js wasm reads uninitialised memory there). */
export function sum(x: tf.Tensor, axes: readonly number[], keepDims: boolean): tf.Tensor {
  // Any empty x: TF.js wasm also fails ("divide by zero") on an empty x reduced along a non-empty axis.
  if (x.size === 0) return tf.zeros(reducedShape(x.shape, axes, keepDims), x.dtype);
  return tf.sum(x, [...axes], keepDims);
}

/** Max over axes; NaN propagates, an empty reduction is −Inf (int32: INT32_MIN), as TF. */
export function max(x: tf.Tensor, axes: readonly number[], keepDims: boolean): tf.Tensor {
  if (x.size === 0) return tf.fill(reducedShape(x.shape, axes, keepDims), x.dtype === 'int32' ? INT32_MIN : -Infinity, x.dtype);
  return tf.max(x, [...axes], keepDims);
}

/**
 * Casts: to bool is x ≠ 0 (NaN → true), as NumPy; float → int32 truncates toward zero and saturates (NaN → 0,
 * ±Inf and out-of-range values → INT32_MAX / INT32_MIN), as WebAssembly's trunc_sat and Rust's `as`.
 */
export function cast(x: tf.Tensor, dtype: 'float32' | 'int32' | 'bool', backend: TfBackendName): tf.Tensor {
  if (dtype === 'bool') return tf.tidy(() => tf.notEqual(x, tf.scalar(0, x.dtype)));
  // NOTE: the wrappers below leave empty tensors to the plain op: TF.js's broadcasting where turns [0] into [1].
  if (dtype === 'int32' && x.dtype === 'float32' && x.size > 0) {
    return tf.tidy(() => {
      const clipped = tf.clipByValue(tf.where(tf.isNaN(x), tf.scalar(0), x), INT32_MIN, F32_BELOW_2_31);
      return tf.where(tf.greaterEqual(x, 2 ** 31), tf.scalar(INT32_MAX, 'int32'), tf.cast(clipped, 'int32'));
    });
  }
  // NOTE: TF.js cpu "casts" int32 to float32 by relabelling the Int32Array, so 16777217 stays exact and later ops
  // round it differently from float32; adding 0 writes a real Float32Array (int32 has no −0 to lose).
  if (dtype === 'float32' && x.dtype === 'int32' && backend === 'cpu') return tf.tidy(() => tf.add(tf.cast(x, 'float32'), tf.scalar(0)));
  return tf.cast(x, dtype);
}

/** relu(NaN) = NaN: TF.js wasm's relu (XNNPACK's clamp) gives 0 for NaN on some shapes. */
export function relu(backend: TfBackendName): (x: tf.Tensor) => tf.Tensor {
  if (backend !== 'wasm') return (x) => tf.relu(x);
  return (x) => (x.dtype !== 'float32' || x.size === 0 ? tf.relu(x) : tf.tidy(() => tf.where(tf.isNaN(x), x, tf.relu(x))));
}

/** sin(−0) = −0 (TF.js wasm gives +0): a zero is passed through as it is. */
export function sin(backend: TfBackendName): (x: tf.Tensor) => tf.Tensor {
  if (backend !== 'wasm') return (x) => tf.sin(x);
  return (x) => (x.size === 0 ? tf.sin(x) : tf.tidy(() => tf.where(tf.equal(x, 0), x, tf.sin(x))));
}

/** where, also to an empty shape (TF.js broadcasts [0] against [] to [1]). */
export function where(c: tf.Tensor, x: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const shape = tf.backend_util.assertAndGetBroadcastShape(c.shape, tf.backend_util.assertAndGetBroadcastShape(x.shape, y.shape));
  return size(shape) === 0 ? tf.zeros(shape, x.dtype) : tf.where(c, x, y);
}

/** sign(NaN) = NaN, as NumPy (TF.js gives 0). */
export function sign(x: tf.Tensor): tf.Tensor {
  if (x.dtype !== 'float32' || x.size === 0) return tf.sign(x);
  return tf.tidy(() => tf.where(tf.isNaN(x), x, tf.sign(x)));
}

/** maximum / minimum propagate NaN from either side (TF.js wasm drops a NaN in the second argument). */
export function extremum(f: typeof tf.maximum, backend: TfBackendName): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  if (backend !== 'wasm') return (a, b) => f(a, b);
  return (a, b) => {
    if (a.dtype !== 'float32' || a.size === 0 || b.size === 0) return f(a, b);
    return tf.tidy(() => tf.where(tf.logicalOr(tf.isNaN(a), tf.isNaN(b)), tf.scalar(NaN), f(a, b)));
  };
}

/** pow as C and NumPy: pow(1, y) = 1 and pow(−1, ±Inf) = 1 (TF.js cpu uses Math.pow, which gives NaN). */
export function pow(backend: TfBackendName): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return (a, b) => {
    // int32: the double power, truncated and saturated as a cast (wasm overflowed to INT32_MIN, cpu wrapped).
    if (a.dtype === 'int32') return hostInt32(a, b, (x, y) => saturate(Math.pow(x, y)));
    if (backend !== 'cpu' || a.size === 0 || b.size === 0) return tf.pow(a, b);
    return tf.tidy(() => {
      const one = tf.logicalOr(tf.equal(a, 1), tf.logicalAnd(tf.equal(a, -1), tf.isInf(b)));
      return tf.where(one, tf.scalar(1), tf.pow(a, b));
    });
  };
}

/** An int32 binary op computed on the host, exactly (broadcast on the device first). */
function hostInt32(a: tf.Tensor, b: tf.Tensor, f: (x: number, y: number) => number): tf.Tensor {
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const [x, y] = tf.tidy(() => [tf.broadcastTo(a, shape), tf.broadcastTo(b, shape)]);
  const xs = x!.dataSync(), ys = y!.dataSync();
  tf.dispose([x!, y!]);
  const out = new Int32Array(xs.length);
  for (let i = 0; i < out.length; i++) out[i] = f(xs[i]!, ys[i]!);
  return tf.tensor(out, shape, 'int32');
}

/**
 * div: float32 is IEEE; int32 floors, x / 0 = 0 (as NumPy) and INT32_MIN / −1 wraps. TF.js divides int32 in
 * float32 on wasm (2147483647 / 1 gave INT32_MIN), so int32 division is exact host arithmetic there: a double
 * quotient of two int32s floors correctly.
 */
export function div(backend: TfBackendName): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return (a, b) => {
    if (a.dtype !== 'int32' || backend === 'cpu') return tf.div(a, b);
    return hostInt32(a, b, (x, y) => (y === 0 ? 0 : Math.floor(x / y) | 0));
  };
}

/** mul: int32 wraps (two's complement). TF.js cpu multiplies in doubles, which loses the low bits past 2^53. */
export function mul(backend: TfBackendName): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return (a, b) => (a.dtype === 'int32' && backend === 'cpu' ? hostInt32(a, b, Math.imul) : tf.mul(a, b));
}

/** argMax: the first NaN counts as the largest value (as NumPy); an empty axis is an error (as NumPy and TF). */
export function argMax(x: tf.Tensor, axis: number): tf.Tensor {
  if (x.shape[axis] === 0) throw new SymflowError('argMax', `axis ${axis} of x ${shapeString(x.shape)} is empty: no index to return`);
  if (x.dtype !== 'float32' || x.size === 0) return tf.argMax(x, axis);
  return tf.tidy(() => {
    const nan = tf.isNaN(x);
    return tf.where(tf.any(nan, axis), tf.argMax(tf.cast(nan, 'int32'), axis), tf.argMax(x, axis));
  });
}

/** gather: every index must lie in [0, n) (TF.js checks that); an empty result is made here (wasm gets its shape wrong). */
export function gather(x: tf.Tensor, indices: tf.Tensor, axis: number): tf.Tensor {
  const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  if (size(shape) > 0) return tf.gather(x, indices, axis);
  if (indices.size > 0 && x.shape[axis] === 0) {
    throw new SymflowError('gather', `indices ${shapeString(indices.shape)} index an empty axis ${axis} of x ${shapeString(x.shape)}`);
  }
  return tf.zeros(shape, x.dtype);
}

/**
 * matMul with an inner dimension of 0 is zeros (TF.js wasm's XNNPACK refuses it and leaves garbage); the fused
 * form then is its bias (and relu).
 */
export function emptyMatMul(x: tf.Tensor, y: tf.Tensor, ta: boolean, tb: boolean): tf.Tensor | undefined {
  const k = ta ? x.shape[x.rank - 2] : x.shape[x.rank - 1];
  if (k !== 0) return undefined;
  const batch = tf.backend_util.assertAndGetBroadcastShape(x.shape.slice(0, -2), y.shape.slice(0, -2));
  const m = ta ? x.shape[x.rank - 1]! : x.shape[x.rank - 2]!;
  const n = tb ? y.shape[y.rank - 2]! : y.shape[y.rank - 1]!;
  return tf.zeros([...batch, m, n], x.dtype);
}

// --- activations and scans (issue 12) ---

/** erf in double precision: its Maclaurin series below |x| = 4 (≥ 11 correct digits), ±1 beyond (erfc(4) < ½ ulp of 1). */
export function erfDouble(v: number): number {
  const a = Math.abs(v);
  if (a >= 4) return Math.sign(v);
  if (v === 0) return v;
  // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)); NaN passes through the sum.
  const x2 = v * v;
  let term = v, total = v;
  for (let n = 1; n < 80; n++) {
    term *= -x2 / n;
    const t = term / (2 * n + 1);
    total += t;
    if (Math.abs(t) < 1e-17 * Math.abs(total)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * total;
}

/**
 * erf. TF.js cpu computes Abramowitz–Stegun 7.1.26 (absolute error 1.5e-7, so erf(1e-30) = 1e-9 and erf(0) = 1e-9):
 * on cpu it is computed on the host in double precision instead, rounded to float32 (as wasm and onnxruntime are
 * accurate to about one ulp, so the backends agree to an ulp or two).
 */
export function erf(backend: TfBackendName): (x: tf.Tensor) => tf.Tensor {
  if (backend !== 'cpu') return (x) => tf.erf(x);
  return (x) => {
    const xs = x.dataSync();
    const out = new Float32Array(xs.length);
    for (let i = 0; i < out.length; i++) out[i] = erfDouble(xs[i]!);
    return tf.tensor(out, x.shape, 'float32');
  };
}

/** cumsum, also of an empty tensor (an empty result of x's shape). */
export function cumsum(x: tf.Tensor, axis: number, exclusive: boolean, reverse: boolean): tf.Tensor {
  if (x.size === 0) return tf.zeros(x.shape, x.dtype);
  return tf.cumsum(x, axis, exclusive, reverse);
}
