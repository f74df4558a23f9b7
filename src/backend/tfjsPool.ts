// TF.js kernels of the pooling ops (issue 12), wrapped to the rules of docs/semantics.md: NaN windows, the tie rule
// of maxPool's gradient (cpu's MaxPoolGrad picks the first maximum; wasm's is wrong for windows of non-positive
// values, so wasm composes it), TF.js's AvgPoolGrad dividing by the whole window under 'same' padding (its
// forward divides by the valid elements), empty tensors.
import * as tf from '@tensorflow/tfjs-core';
import { SymflowError } from '../graph/errors.js';
import { F32_MAX, type PoolAttrs, poolAxis } from '../graph/ops/pool.js';
import type { TfBackendName } from './tfjsSemantics.js';

type Kernel = (xs: tf.Tensor[]) => tf.Tensor;
type Pad = 'same' | 'valid';

/** Window geometry at run time; a 'valid' window larger than the input is an error naming the op. */
function geometry(op: string, shape: readonly number[], a: PoolAttrs) {
  const [kh, kw] = a.size as [number, number];
  const [sh, sw] = a.strides as [number, number];
  const [n, h, w, c] = shape as [number, number, number, number];
  if (a.padding === 'valid' && (h < kh || w < kw)) {
    throw new SymflowError(op, `with padding 'valid' the window [${kh},${kw}] must fit in the input: x is [${shape.join(',')}]`);
  }
  const ah = poolAxis(h, kh, sh, a.padding), aw = poolAxis(w, kw, sw, a.padding);
  return { kh, kw, sh, sw, n, h, w, c, ah, aw, out: [n, ah.out, aw.out, c], pad: a.padding as Pad };
}
const sizeOf = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

// NOTE: TF.js wasm's where, equal and tile with a broadcast operand are 10–40× slower than with full-shape ones
// (a where against a scalar took 62 ms on [32, 24, 24, 32], against a full fill 3 ms): values are filled out.
/** `where(cond, v, t)` with v filled to t's shape. */
const put = (cond: tf.Tensor, v: number, t: tf.Tensor) => tf.where(cond, tf.fill(t.shape, v, t.dtype as 'float32'), t);
/** Whether t holds NaN or ±Inf: one host read of Σ t·0 (NaN exactly then). Kernels run synchronously. */
function nonFinite(t: tf.Tensor): boolean {
  const probe = tf.tidy(() => tf.sum(tf.mul(t, tf.scalar(0))));
  const v = probe.dataSync()[0]!;
  probe.dispose();
  return Number.isNaN(v);
}

/** maxPool: NaN if the window holds one (TF.js cpu skipped NaN, wasm gave −Inf or the max); padding never wins. */
export function maxPool(a: PoolAttrs, backend: TfBackendName): Kernel {
  return ([x]) => {
    const g = geometry('maxPool', x!.shape, a);
    if (x!.size === 0 || sizeOf(g.out) === 0) return tf.zeros(g.out);
    const pool = (t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad) as tf.Tensor;
    // A window's result depends on its own elements only: one without NaN is right on every backend.
    if (!nonFinite(x!)) return pool(x!);
    return tf.tidy(() => {
      const nan = tf.isNaN(x!);
      const hasNaN = tf.cast(pool(tf.cast(nan, 'float32')), 'bool');
      return put(hasNaN, NaN, pool(x!));
    });
  };
}

/**
 * avgPool: the mean of each window's valid elements (TF.js's own rule). TF.js wasm (XNNPACK, whose output clamp
 * turns NaN into −Inf) gave −Inf for a window holding NaN or both infinities: there those windows are set to NaN.
 */
export function avgPool(a: PoolAttrs, backend: TfBackendName): Kernel {
  return ([x]) => {
    const g = geometry('avgPool', x!.shape, a);
    if (x!.size === 0 || sizeOf(g.out) === 0) return tf.zeros(g.out);
    const pool = (t: tf.Tensor) => tf.avgPool(t as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad) as tf.Tensor;
    if (backend !== 'wasm' || !nonFinite(x!)) return pool(x!);
    return tf.tidy(() => {
      const nan = tf.isNaN(x!);
      const any = (m: tf.Tensor) => tf.cast(tf.maxPool(tf.cast(m, 'float32') as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad), 'bool');
      const undefinedSum = tf.logicalAnd(any(tf.logicalOr(nan, tf.equal(x!, tf.fill(x!.shape, Infinity)))), any(tf.logicalOr(nan, tf.equal(x!, tf.fill(x!.shape, -Infinity)))));
      return put(undefinedSum, NaN, pool(x!));
    });
  };
}

/** The rank maxPool's gradient picks by (graph/ops/pool.ts `gradKey`): NaN as +Inf, −Inf as −F32_MAX. */
function gradKey(x: tf.Tensor): tf.Tensor {
  if (!nonFinite(x)) return x;
  return put(tf.isNaN(x), Infinity, put(tf.equal(x, tf.fill(x.shape, -Infinity)), -F32_MAX, x));
}

/** Pads (fill) or crops axis 1 and 2 of an NHWC tensor: `before` rows added in front, the result `len` long. */
function frame(x: tf.Tensor, before: [number, number], len: [number, number], fill: number): tf.Tensor {
  let t = x;
  for (const ax of [1, 2] as const) {
    const b = before[ax - 1]!, n = t.shape[ax]!, l = len[ax - 1]!;
    const after = l - b - n;
    if (b < 0 || after < 0) {
      // Crop first (a negative before: drop rows in front), then pad what is left.
      const begin = [0, 0, 0, 0], size = [-1, -1, -1, -1];
      begin[ax] = Math.max(-b, 0);
      size[ax] = Math.min(n - begin[ax]!, l - Math.max(b, 0));
      t = tf.slice(t, begin, size);
    }
    const pads: [number, number][] = [[0, 0], [0, 0], [0, 0], [0, 0]];
    pads[ax] = [Math.max(b, 0), l - Math.max(b, 0) - t.shape[ax]!];
    if (pads[ax]![0] > 0 || pads[ax]![1] > 0) t = tf.pad(t, pads, fill);
  }
  return t;
}

/**
 * maxPoolGrad: each window's dy to its first maximum by `gradKey`. cpu's MaxPoolGrad kernel picks the first
 * maximum. TF.js wasm's is wrong for windows of non-positive values (it sends [−5, −1, −1, −5]'s gradient to the
 * −5, an all-equal window's to the first element, a positive tie's to the last), so on wasm it is composed from
 * TF.js ops: the windows' maxima by MaxPool, then per window offset the first hit, and dy placed back.
 */
export function maxPoolGrad(a: PoolAttrs, backend: TfBackendName): Kernel {
  return ([x, dy]) => {
    const g = geometry('maxPoolGrad', x!.shape, a);
    if (x!.size === 0 || dy!.size === 0) return tf.zeros(x!.shape);
    return tf.tidy(() => {
      const key = gradKey(x!);
      if (backend !== 'wasm') {
        const output = tf.maxPool(key as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad);
        return tf.engine().runKernel('MaxPoolGrad', { dy: dy!, input: key, output }, { filterSize: [g.kh, g.kw], strides: [g.sh, g.sw], pad: g.pad }) as tf.Tensor;
      }
      return frame(composedMaxPoolGrad(key, dy!, g), [-g.ah.before, -g.aw.before], [g.h, g.w], 0);
    });
  };
}

/**
 * maxPoolGrad over the span the windows cover ([N, (OH−1)·sh + kh, (OW−1)·sw + kw, C], padding as −Inf, which
 * never wins: keys are ≥ −F32_MAX), from TF.js ops. Non-overlapping windows (stride = size) in one pass over
 * the window axes; others offset by offset.
 */
function composedMaxPoolGrad(key: tf.Tensor, dy: tf.Tensor, g: ReturnType<typeof geometry>): tf.Tensor {
  const { n, c, kh, kw, sh, sw } = g;
  const [oh, ow] = [g.ah.out, g.aw.out];
  const span: [number, number] = [(oh - 1) * sh + kh, (ow - 1) * sw + kw];
  const kp = frame(key, [g.ah.before, g.aw.before], span, -Infinity);
  if (sh === kh && sw === kw && !nonFinite(dy)) {
    // [N, OH, kh, OW, kw, C] → [N, OH, OW, C, kh·kw]; argMax gives each window's first maximum (keys have no NaN).
    // dy · oneHot + 0 is the where it stands for while dy is finite (0 · Inf would be NaN): + 0 makes a −0 dy and
    // the other positions' −0 (0 · a negative dy) +0, dx being a sum from +0 as on the other backends.
    const windows = tf.reshape(tf.transpose(tf.reshape(kp, [n, oh, kh, ow, kw, c]), [0, 1, 3, 5, 2, 4]), [n, oh, ow, c, kh * kw]);
    // NOTE: int32 oneHot, then cast: TF.js wasm's float32 OneHot writes int32 bits (see tfjsKernels.ts).
    const hot = tf.cast(tf.oneHot(tf.argMax(windows, 4), kh * kw, 1, 0, 'int32'), 'float32');
    const spread = tf.add(tf.mul(hot, tf.expandDims(dy, 4)), tf.scalar(0));
    return tf.reshape(tf.transpose(tf.reshape(spread, [n, oh, ow, c, kh, kw]), [0, 1, 4, 2, 5, 3]), [n, span[0], span[1], c]);
  }
  const top = tf.maxPool(kp as tf.Tensor4D, [kh, kw], [sh, sw], 'valid');
  const zeros = tf.zerosLike(dy);
  let taken: tf.Tensor | undefined;
  let dx: tf.Tensor | undefined;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const view = tf.stridedSlice(kp, [0, i, j, 0], [n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c], [1, sh, sw, 1]);
      const hit = tf.equal(view, top);
      const first = taken === undefined ? hit : tf.logicalAnd(hit, tf.logicalNot(taken));
      taken = taken === undefined ? hit : tf.logicalOr(taken, hit);
      const part = place(tf.where(first, dy, zeros), i, j, sh, sw, span);
      dx = dx === undefined ? part : tf.add(dx, part);
    }
  }
  return dx!;
}

/** Puts v [N, OH, OW, C] at rows i + sh·oh and columns j + sw·ow of a zero [N, span, C] tensor. */
function place(v: tf.Tensor, i: number, j: number, sh: number, sw: number, span: [number, number]): tf.Tensor {
  const [n, oh, ow, c] = v.shape as [number, number, number, number];
  let t = v;
  if (sh > 1 || sw > 1) {
    const spaced = tf.pad(tf.reshape(v, [n, oh, 1, ow, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
    t = tf.reshape(spaced, [n, oh * sh, ow * sw, c]);
  }
  // Rows past the last window's (zeros) are cut where the offset would push them out of the span.
  return frame(t, [i, j], span, 0);
}

/** Per output position, the window's size over its number of valid elements (1 everywhere for 'valid'). */
const scales = new Map<string, Float32Array | null>();
function windowScale(g: ReturnType<typeof geometry>): Float32Array | null {
  const key = [g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.pad].join(',');
  let s = scales.get(key);
  if (s === undefined) {
    const count = (o: number, ax: { before: number }, st: number, k: number, n: number) => Math.min(o * st - ax.before + k, n) - Math.max(o * st - ax.before, 0);
    const vals = new Float32Array(g.ah.out * g.aw.out);
    let trivial = true;
    for (let i = 0; i < g.ah.out; i++) {
      for (let j = 0; j < g.aw.out; j++) {
        const v = (g.kh * g.kw) / (count(i, g.ah, g.sh, g.kh, g.h) * count(j, g.aw, g.sw, g.kw, g.w));
        vals[i * g.aw.out + j] = v;
        if (v !== 1) trivial = false;
      }
    }
    s = trivial ? null : vals;
    if (scales.size > 256) scales.clear();
    scales.set(key, s);
  }
  return s;
}

/**
 * avgPoolGrad: dy of each window divided by its number of valid elements, spread over them. TF.js's AvgPoolGrad
 * divides by the whole window's size also where 'same' padding cut it: dy is rescaled first.
 */
export function avgPoolGrad(a: PoolAttrs): Kernel {
  return ([dy, x]) => {
    const g = geometry('avgPoolGrad', x!.shape, a);
    if (x!.size === 0 || dy!.size === 0) return tf.zeros(x!.shape);
    return tf.tidy(() => {
      const s = windowScale(g);
      const d = s === null ? dy! : tf.mul(dy!, tf.tensor(s, [1, g.ah.out, g.aw.out, 1]));
      return tf.engine().runKernel('AvgPoolGrad', { dy: d, input: x! }, { filterSize: [g.kh, g.kw], strides: [g.sh, g.sw], pad: g.pad }) as tf.Tensor;
    });
  };
}
