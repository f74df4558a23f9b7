// TF.js kernels of the pooling ops (issue 12), wrapped to the rules of docs/semantics.md: NaN windows, the tie rule
// of maxPool's gradient (TF.js wasm's MaxPoolGrad picks the LAST maximum, cpu the first), TF.js's AvgPoolGrad
// dividing by the whole window under 'same' padding (its forward divides by the valid elements), empty tensors.
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

/** maxPool: NaN if the window holds one (TF.js cpu skipped NaN, wasm gave −Inf or the max); padding never wins. */
export function maxPool(a: PoolAttrs, backend: TfBackendName): Kernel {
  return ([x]) => {
    const g = geometry('maxPool', x!.shape, a);
    if (x!.size === 0 || sizeOf(g.out) === 0) return tf.zeros(g.out);
    return tf.tidy(() => {
      const nan = tf.isNaN(x!);
      const clean = backend === 'cpu' ? x! : tf.where(nan, tf.scalar(-Infinity), x!);
      const y = tf.maxPool(clean as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad);
      const hasNaN = tf.greater(tf.maxPool(tf.cast(nan, 'float32') as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad) as tf.Tensor, tf.scalar(0));
      return tf.where<tf.Tensor>(hasNaN, tf.scalar(NaN), y);
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
    if (backend !== 'wasm') return pool(x!);
    return tf.tidy(() => {
      const nan = tf.isNaN(x!);
      const any = (m: tf.Tensor) => tf.greater(tf.maxPool(tf.cast(m, 'float32') as tf.Tensor4D, [g.kh, g.kw], [g.sh, g.sw], g.pad) as tf.Tensor, tf.scalar(0));
      const undefinedSum = tf.logicalAnd(any(tf.logicalOr(nan, tf.equal(x!, Infinity))), any(tf.logicalOr(nan, tf.equal(x!, -Infinity))));
      return tf.where<tf.Tensor>(undefinedSum, tf.scalar(NaN), pool(x!));
    });
  };
}

/** The rank maxPool's gradient picks by (graph/ops/pool.ts `gradKey`): NaN as +Inf, −Inf as −F32_MAX. */
function gradKey(x: tf.Tensor): tf.Tensor {
  return tf.where(tf.isNaN(x), tf.scalar(Infinity), tf.where(tf.equal(x, -Infinity), tf.scalar(-F32_MAX), x));
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
  const top = tf.maxPool(kp as tf.Tensor4D, [kh, kw], [sh, sw], 'valid');
  if (sh === kh && sw === kw) {
    // [N, OH, kh, OW, kw, C] → [N, OH, OW, C, kh·kw]: the first hit along the last axis is where cumsum first is 1.
    const windows = tf.reshape(tf.transpose(tf.reshape(kp, [n, oh, kh, ow, kw, c]), [0, 1, 3, 5, 2, 4]), [n, oh, ow, c, kh * kw]);
    const hit = tf.cast(tf.equal(windows, tf.expandDims(top, 4)), 'float32');
    const first = tf.logicalAnd(tf.cast(hit, 'bool'), tf.equal(tf.cumsum(hit, 4), 1));
    // + 0: dx is a sum from +0 (a −0 dy gives +0), as the offset-by-offset sums and the other backends.
    const spread = tf.add(tf.where(first, tf.expandDims(dy, 4), tf.scalar(0)), tf.scalar(0));
    return tf.reshape(tf.transpose(tf.reshape(spread, [n, oh, ow, c, kh, kw]), [0, 1, 4, 2, 5, 3]), [n, span[0], span[1], c]);
  }
  let taken: tf.Tensor | undefined;
  let dx: tf.Tensor | undefined;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const view = tf.stridedSlice(kp, [0, i, j, 0], [n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c], [1, sh, sw, 1]);
      const hit = tf.equal(view, top);
      const first = taken === undefined ? hit : tf.logicalAnd(hit, tf.logicalNot(taken));
      taken = taken === undefined ? hit : tf.logicalOr(taken, hit);
      const part = place(tf.where(first, dy, tf.scalar(0)), i, j, sh, sw, span);
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
