// Convolutions (issue 12 §1): conv2d, its two backprops, depthwiseConv2d and conv1d against TF.js's own ops on cpu
// (the reference), on every backend; gradients and second derivatives; bad inputs; tensor counts; a training step.
//
// Tolerances: float32 sums of up to ~50 products in another order (XNNPACK, MLAS, im2col): |a − e| ≤ 1e-5 + 1e-4·|e|
// for values (inputs in [−1, 1], outputs O(1)); finite differences as in gradients.test.ts (step 1e-2, 2e-2 / 2e-3).
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compile, conv1d, conv2d, conv2dBackpropFilter, conv2dBackpropInput, constant, depthwiseConv2d, gradients, mean, mul, placeholder,
  relu, reshape, Session, sgd, square, sum, SymflowError, type Tensor, variable,
} from '../src/index.js';
import { tfjsCoverage } from '../src/backend/tfjsKernels.js';
import { onnxCoverage } from '../src/backend/onnx/lower.js';
import { BACKENDS, expectClose, rng, values } from './helpers.js';

const RTOL = 1e-4, ATOL = 1e-5;
const H = 1e-2, FD_RTOL = 2e-2, FD_ATOL = 2e-3;

const rand = rng(1207);
const data = (shape: number[]) => Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rand() * 2 - 1);
const feed = (shape: number[], d: number[]) => ({ shape, data: Float32Array.from(d) });

type Pad = 'same' | 'valid';
interface Cfg { name: string; x: number[]; f: number[]; strides: [number, number]; padding: Pad; dilations: [number, number] }
const cfg = (x: number[], f: number[], strides: [number, number], padding: Pad, dilations: [number, number] = [1, 1]): Cfg =>
  ({ name: `x [${x}] filter [${f}] strides [${strides}] ${padding} dilations [${dilations}]`, x, f, strides, padding, dilations });

// Batch > 1, channels > 1, odd and even sizes (so 'same' pads unevenly), strides, dilations, non-square everything.
const CONV: Cfg[] = [
  cfg([2, 5, 5, 3], [3, 3, 3, 4], [1, 1], 'same'),
  cfg([2, 5, 5, 3], [3, 3, 3, 4], [1, 1], 'valid'),
  cfg([3, 6, 7, 2], [2, 3, 2, 3], [2, 2], 'same'),
  cfg([2, 7, 6, 2], [3, 2, 2, 2], [2, 3], 'valid'),
  cfg([1, 8, 8, 1], [4, 4, 1, 2], [3, 3], 'same'),
  cfg([2, 7, 7, 2], [3, 3, 2, 3], [1, 1], 'same', [2, 2]),
  cfg([2, 9, 8, 2], [2, 3, 2, 2], [1, 1], 'valid', [3, 2]),
  cfg([1, 4, 4, 3], [1, 1, 3, 5], [1, 1], 'valid'),
  cfg([2, 6, 6, 2], [2, 2, 2, 3], [2, 2], 'same'),
];
const DEPTHWISE: Cfg[] = [
  cfg([2, 5, 5, 3], [3, 3, 3, 2], [1, 1], 'same'),
  cfg([2, 6, 7, 2], [2, 3, 2, 1], [2, 2], 'valid'),
  cfg([1, 7, 7, 2], [3, 3, 2, 3], [1, 1], 'same', [2, 2]),
  cfg([3, 6, 6, 4], [2, 2, 4, 1], [2, 1], 'same'),
];

/** TF.js's own ops on cpu, the reference. TF.js's gradients take no dilations: a dilated filter stands in. */
function tfDilate(f: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [fh, fw, i, o] = f.shape;
  const out = tf.buffer([(fh - 1) * dh + 1, (fw - 1) * dw + 1, i, o]);
  const v = f.arraySync();
  for (let a = 0; a < fh; a++) for (let b = 0; b < fw; b++) for (let c = 0; c < i; c++) for (let d = 0; d < o; d++) out.set(v[a]![b]![c]![d]!, a * dh, b * dw, c, d);
  return out.toTensor() as tf.Tensor4D;
}
function tfRef(c: Cfg, depthwise: boolean, xs: number[], fs: number[], w: number[]) {
  tf.setBackend('cpu');
  return tf.tidy(() => {
    const x = tf.tensor4d(xs, c.x as [number, number, number, number]);
    const f0 = tf.tensor4d(fs, c.f as [number, number, number, number]);
    const dilated = c.dilations[0] > 1 || c.dilations[1] > 1;
    const plain = (a: tf.Tensor, b: tf.Tensor) => depthwise
      ? tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.padding)
      : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.padding);
    const direct = depthwise ? tf.depthwiseConv2d(x, f0, c.strides, c.padding, 'NHWC', c.dilations) : tf.conv2d(x, f0, c.strides, c.padding, 'NHWC', c.dilations);
    const fk = dilated ? tfDilate(f0, c.dilations) : f0;
    const y = plain(x, fk);
    expectClose(direct.dataSync(), y.dataSync(), 1e-5, 1e-6); // the spread-out filter is the dilation
    const wt = tf.tensor(w, y.shape);
    const [gx, gk] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plain(a, b), wt)))([x, fk]);
    // The gradient of the spread-out filter, read at its taps.
    const gf = dilated ? tf.stridedSlice(gk!, [0, 0, 0, 0], gk!.shape, [c.dilations[0], c.dilations[1], 1, 1]) : gk!;
    return { y: Array.from(y.dataSync()), shape: y.shape, gx: Array.from(gx!.dataSync()), gf: Array.from(gf.dataSync()) };
  });
}

describe.each(BACKENDS)('convolutions on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  for (const [kind, cases] of [['conv2d', CONV], ['depthwiseConv2d', DEPTHWISE]] as const) {
    it.each(cases.map((c) => [c.name, c] as const))(`${kind} %s: value and both gradients (the backprop ops) against TF.js`, async (_n, c) => {
      const xs = data(c.x), fs = data(c.f);
      const x = placeholder(c.x), f = placeholder(c.f);
      const op = kind === 'conv2d' ? conv2d : depthwiseConv2d;
      const y = op(x, f, { strides: c.strides, padding: c.padding, dilations: c.dilations });
      const w = data(y.shape as number[]);
      const ref = tfRef(c, kind === 'depthwiseConv2d', xs, fs, w);
      expect(y.shape).toEqual(ref.shape);
      const [gx, gf] = gradients(sum(mul(y, constant({ shape: y.shape as number[], data: Float32Array.from(w) }))), [x, f]);
      const [yv, gxv, gfv] = await s.run([y, gx!, gf!], [[x, feed(c.x, xs)], [f, feed(c.f, fs)]]);
      expect(yv!.shape).toEqual(ref.shape);
      expectClose(values(yv!), ref.y, RTOL, ATOL);
      expectClose(values(gxv!), ref.gx, RTOL, ATOL);
      expectClose(values(gfv!), ref.gf, RTOL, ATOL);
    });
  }
});
