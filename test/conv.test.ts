// Convolutions (issue 12 §1): conv2d, its two backprops, depthwiseConv2d and conv1d against TF.js's own ops on cpu
// (the reference), on every backend; gradients and second derivatives; bad inputs; tensor counts; a training step.
//
// Tolerances: float32 sums of up to ~50 products in another order (XNNPACK, MLAS, im2col): |a − e| ≤ 1e-5 + 1e-4·|e|
// for values (inputs in [−1, 1], outputs O(1)); finite differences as in gradients.test.ts (step 1e-2, 2e-2 / 2e-3).
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compile, conv1d, conv2d, conv2dBackpropFilter, conv2dBackpropInput, constant, depthwiseConv2d, gradients, mean, mul, placeholder,
  fromJSON, relu, reshape, Session, sgd, square, sub, sum, symbolicShapes, SymflowError, type Tensor, toIR, toJSON, variable,
} from '../src/index.js';
import { composedKernel, tfKernelFor, tfjsCoverage } from '../src/backend/tfjsKernels.js';
import { onnxCoverage } from '../src/backend/onnx/lower.js';
import { BACKENDS, bits, expectClose, rng, values } from './helpers.js';

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

const CONV1D: { name: string; x: number[]; f: number[]; stride: number; padding: Pad; dilation: number }[] = [
  { name: 'x [2,9,3] filter [3,3,4] stride 1 same', x: [2, 9, 3], f: [3, 3, 4], stride: 1, padding: 'same', dilation: 1 },
  { name: 'x [3,10,2] filter [4,2,3] stride 2 valid', x: [3, 10, 2], f: [4, 2, 3], stride: 2, padding: 'valid', dilation: 1 },
  { name: 'x [2,8,2] filter [2,2,2] stride 3 same', x: [2, 8, 2], f: [2, 2, 2], stride: 3, padding: 'same', dilation: 1 },
  { name: 'x [2,11,2] filter [3,2,2] dilation 2 same', x: [2, 11, 2], f: [3, 2, 2], stride: 1, padding: 'same', dilation: 2 },
];

/** Central finite differences of the scalar `z` with respect to every element of one fed input. */
async function finiteDifferences(s: Session, z: Tensor, feeds: [Tensor, { shape: number[]; data: Float32Array }][], k: number): Promise<number[]> {
  const base = Array.from(feeds[k]![1].data);
  const at = async (j: number, h: number) => {
    const d = Float32Array.from(base);
    d[j] = Math.fround(base[j]! + h);
    const fs = feeds.map(([t, v], i) => [t, i === k ? { shape: v.shape, data: d } : v] as [Tensor, typeof v]);
    return [(await s.run(z, fs)).data[0]!, d[j]!] as const;
  };
  const out: number[] = [];
  for (let j = 0; j < base.length; j++) {
    const [yp, xp] = await at(j, H), [ym, xm] = await at(j, -H);
    out.push((yp - ym) / (xp - xm));
  }
  return out;
}

describe.each(BACKENDS)('convolutions on %s, more', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(CONV1D.map((c) => [c.name, c] as const))('conv1d %s against tf.conv1d (value; gradients where TF.js has them)', async (_n, c) => {
    const xs = data(c.x), fs = data(c.f);
    const x = placeholder(c.x), f = placeholder(c.f);
    const y = conv1d(x, f, { stride: c.stride, padding: c.padding, dilation: c.dilation });
    const w = data(y.shape as number[]);
    tf.setBackend('cpu');
    const ref = tf.tidy(() => {
      const tx = tf.tensor3d(xs, c.x as [number, number, number]), tfl = tf.tensor3d(fs, c.f as [number, number, number]);
      const ty = tf.conv1d(tx, tfl, c.stride, c.padding, 'NWC', c.dilation);
      const grads = c.dilation === 1 ? tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, c.stride, c.padding), tf.tensor(w, ty.shape))))([tx, tfl]) : [];
      return { shape: ty.shape, y: Array.from(ty.dataSync()), g: grads.map((g) => Array.from(g.dataSync())) };
    });
    expect(y.shape).toEqual(ref.shape);
    const [gx, gf] = gradients(sum(mul(y, constant({ shape: y.shape as number[], data: Float32Array.from(w) }))), [x, f]);
    const got = await s.run([y, gx!, gf!], [[x, feed(c.x, xs)], [f, feed(c.f, fs)]]);
    expectClose(values(got[0]!), ref.y, RTOL, ATOL);
    ref.g.forEach((g, i) => expectClose(values(got[1 + i]!), g, RTOL, ATOL));
  });

  // First derivatives are checked against TF.js above and in test/gradients.test.ts; here the gradients of the
  // backprop ops themselves: z = Σ c·∂L/∂x and z' = Σ c'·∂L/∂f for a non-linear L = Σ conv(x, f)², differentiated
  // again with respect to x and f, against finite differences of z and z'.
  const second: [string, (x: Tensor, f: Tensor) => Tensor, number[], number[]][] = [
    ['conv2d same, strides 2', (x, f) => conv2d(x, f, { strides: 2, padding: 'same' }), [2, 5, 4, 2], [3, 2, 2, 2]],
    ['conv2d valid, dilations [2, 1]', (x, f) => conv2d(x, f, { dilations: [2, 1] }), [1, 6, 4, 2], [2, 2, 2, 3]],
    ['depthwiseConv2d same, strides [1, 2], multiplier 2', (x, f) => depthwiseConv2d(x, f, { strides: [1, 2], padding: 'same' }), [2, 4, 5, 2], [2, 3, 2, 2]],
    ['conv1d same, stride 2', (x, f) => conv1d(reshape(x, [2, 7, 2]), reshape(f, [3, 2, 2]), { stride: 2, padding: 'same' }), [2, 1, 7, 2], [1, 3, 2, 2]],
  ];
  it.each(second)('second derivatives: %s', async (_n, op, xShape, fShape) => {
    const x = placeholder(xShape), f = placeholder(fShape);
    const y = op(x, f);
    const L = sum(square(y));
    const [gx, gf] = gradients(L, [x, f]);
    const z = sum(mul(gx!, constant({ shape: xShape, data: Float32Array.from(data(xShape)) })));
    const z2 = sum(mul(gf!, constant({ shape: fShape, data: Float32Array.from(data(fShape)) })));
    const feeds: [Tensor, { shape: number[]; data: Float32Array }][] = [[x, feed(xShape, data(xShape))], [f, feed(fShape, data(fShape))]];
    for (const target of [z, z2]) {
      const [hx, hf] = gradients(target, [x, f]);
      const [hxv, hfv] = await s.run([hx!, hf!], feeds);
      expectClose(values(hxv!), await finiteDifferences(s, target, feeds, 0), FD_RTOL, FD_ATOL);
      expectClose(values(hfv!), await finiteDifferences(s, target, feeds, 1), FD_RTOL, FD_ATOL);
    }
  });

  // TF.js differentiates its Conv2DBackpropInput, not its Conv2DBackpropFilter: z = Σ c·∂L/∂x only.
  it("second derivatives of conv2d against TF.js's own (tf.grads of tf.grads)", async () => {
    const xShape = [2, 5, 4, 2], fShape = [3, 2, 2, 3];
    const xs = data(xShape), fs = data(fShape), cx = data(xShape);
    const x = placeholder(xShape), f = placeholder(fShape);
    const L = sum(square(conv2d(x, f, { strides: 2, padding: 'same' })));
    const [gx] = gradients(L, [x]);
    const z = sum(mul(gx!, constant({ shape: xShape, data: Float32Array.from(cx) })));
    const got = await s.run(gradients(z, [x, f]), [[x, feed(xShape, xs)], [f, feed(fShape, fs)]]);
    tf.setBackend('cpu');
    const want = tf.tidy(() => {
      const tx = tf.tensor(xs, xShape), tfl = tf.tensor(fs, fShape);
      const tL = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')));
      const first = (a: tf.Tensor, b: tf.Tensor) => tf.grads((u: tf.Tensor, v: tf.Tensor) => tL(u, v))([a, b]);
      const h1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(first(a, b)[0]!, tf.tensor(cx, xShape))))([tx, tfl]);
      return h1.map((t) => Array.from(t.dataSync()));
    });
    got.forEach((g, i) => expectClose(values(g), want[i]!, 1e-3, 1e-4));
  });

  it('an unknown batch: values, gradients (onnx: the empty-batch guard of the filter gradient) and an empty batch', async () => {
    const x = placeholder([null, 5, 5, 2]), f = placeholder([3, 3, 2, 3]);
    const y = conv2d(x, f, { strides: 2, padding: 'same' });
    expect(y.shape).toEqual([null, 3, 3, 3]);
    const [gx, gf] = gradients(sum(square(y)), [x, f]);
    const xs = data([2, 5, 5, 2]), fs = data([3, 3, 2, 3]);
    const [yv, gxv, gfv] = await s.run([y, gx!, gf!], [[x, feed([2, 5, 5, 2], xs)], [f, feed([3, 3, 2, 3], fs)]]);
    const ref = tfRef(cfg([2, 5, 5, 2], [3, 3, 2, 3], [2, 2], 'same'), false, xs, fs, values(yv!).map((v) => 2 * v));
    expectClose(values(yv!), ref.y, RTOL, ATOL);
    expectClose(values(gxv!), ref.gx, RTOL, ATOL);
    expectClose(values(gfv!), ref.gf, 1e-3, 1e-4);
    const [ye, gxe, gfe] = await s.run([y, gx!, gf!], [[x, feed([0, 5, 5, 2], [])], [f, feed([3, 3, 2, 3], fs)]]);
    expect([ye!.shape, gxe!.shape, gfe!.shape]).toEqual([[0, 3, 3, 3], [0, 5, 5, 2], [3, 3, 2, 3]]);
    expect(values(gfe!).every((v) => v === 0)).toBe(true);
  });

  it.each([...CONV, ...DEPTHWISE].filter((c) => c.padding === 'same').map((c) => [c.name, c] as const))('unknown spatial sizes (onnx: SAME_UPPER padding): %s', async (_n, c) => {
    const depthwise = DEPTHWISE.includes(c);
    const xs = data(c.x), fs = data(c.f);
    const x = placeholder([null, null, null, c.x[3]!]), f = placeholder(c.f);
    const y = (depthwise ? depthwiseConv2d : conv2d)(x, f, { strides: c.strides, padding: c.padding, dilations: c.dilations });
    const yShape = (depthwise ? depthwiseConv2d : conv2d)(placeholder(c.x), f, { strides: c.strides, padding: c.padding, dilations: c.dilations }).shape as number[];
    expect(y.shape).toEqual([null, null, null, yShape[3]]);
    const ref = tfRef(c, depthwise, xs, fs, data(yShape));
    const got = await s.run(y, [[x, feed(c.x, xs)], [f, feed(c.f, fs)]]);
    expect(got.shape).toEqual(ref.shape);
    expectClose(values(got), ref.y, RTOL, ATOL);
  });

  it('a filter of unknown size: TF.js kernels run it; onnx refuses it when compiling, naming the op', async () => {
    const x = placeholder([1, 4, 4, 1]), f = placeholder([null, null, 1, 1]);
    const y = conv2d(x, f, { padding: 'same' });
    expect(y.shape).toEqual([1, null, null, 1]);
    const run = s.run(y, [[x, feed([1, 4, 4, 1], data([16]))], [f, feed([1, 1, 1, 1], [2])]]);
    if (backend.startsWith('onnx')) await expect(run).rejects.toThrow(/^conv2d: the onnx lowering needs the static filter's spatial size \(node 'conv2d(_\d+)?'\), got \[\?,\?,1,1\]/);
    else expect((await run).shape).toEqual([1, 4, 4, 1]);
  });

  it('a graph of convolutions and their gradients survives the JSON round trip bit for bit', async () => {
    const x = placeholder([null, 5, 5, 2], { name: 'input' }), f = variable({ shape: [3, 3, 2, 2], data: Float32Array.from(data([3, 3, 2, 2])) }, { name: 'convJsonF' });
    const y = depthwiseConv2d(conv2d(x, f, { strides: 2, padding: 'same' }), reshape(f, [3, 3, 2, 2]), { padding: 'same' });
    const [dx, df] = gradients(sum(square(y)), [x, f]);
    const back = fromJSON(JSON.parse(JSON.stringify(toJSON([y, dx!, df!]))), { variables: [f] });
    const xs = feed([2, 5, 5, 2], data([2, 5, 5, 2]));
    const original = await s.run([y, dx!, df!], [[x, xs]]);
    const rebuilt = await s.run(back.outputs, [[back.nodes.get(x.name)!, xs]]);
    expect(rebuilt.map((t) => bits(t).join(','))).toEqual(original.map((t) => bits(t).join(',')));
  });

  it('TF.js tensor counts stay flat across runs', async () => {
    const x = placeholder([null, 6, 6, 2]), f = placeholder([3, 3, 2, 2]), d = placeholder([2, 2, 2, 2]);
    const y = depthwiseConv2d(relu(conv2d(x, f, { padding: 'same', dilations: 2 })), d, { strides: 2 });
    const grads = gradients(sum(square(y)), [x, f, d]);
    const second = gradients(sum(square(grads[0]!)), [f, d]);
    const fn = s.function({ inputs: [x, f, d], outputs: [y, ...grads, ...second] });
    const feeds = [feed([3, 6, 6, 2], data([3, 6, 6, 2])), feed([3, 3, 2, 2], data([3, 3, 2, 2])), feed([2, 2, 2, 2], data([2, 2, 2, 2]))];
    await fn(feeds);
    const live = s.numTensors(), tfLive = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await fn(feeds);
    expect(s.numTensors()).toBe(live);
    expect(tf.memory().numTensors).toBe(tfLive);
  });

  it('a tiny conv net: sgd steps lower the loss', async () => {
    const r = rng(99);
    const init = (shape: number[], scale: number) => variable({ shape, data: Float32Array.from({ length: shape.reduce((p, v) => p * v, 1) }, () => (r() * 2 - 1) * scale) });
    const w1 = init([3, 3, 1, 4], 0.5), w2 = init([2, 2, 4, 2], 0.3), w3 = init([3, 3, 8, 1], 0.3);
    const x = placeholder([null, 6, 6, 1]), t = placeholder([null, 1]);
    const h1 = relu(conv2d(x, w1, { padding: 'same' }));
    const h2 = relu(depthwiseConv2d(h1, w2, { strides: 2, padding: 'same' })); // [n, 3, 3, 8]
    const out = reshape(conv2d(h2, w3), [-1, 1]);
    const loss = mean(square(sub(out, t)));
    const train = compile(sgd({ lr: 0.2 }), s, { loss, inputs: [x, t] });
    const n = 8;
    const xs = Array.from({ length: n * 36 }, () => r() * 2 - 1);
    const ts = Array.from({ length: n }, (_, i) => xs.slice(i * 36, i * 36 + 36).reduce((p, v) => p + v, 0) / 6);
    const batch = [feed([n, 6, 6, 1], xs), feed([n, 1], ts)];
    const losses: number[] = [];
    for (let i = 0; i < 10; i++) losses.push((await train.step(batch)).loss);
    for (let i = 1; i < losses.length; i++) expect(losses[i]!, `losses ${losses.join(', ')}`).toBeLessThan(losses[i - 1]!);
    expect(losses.at(-1)!, `losses ${losses.join(', ')}`).toBeLessThan(0.8 * losses[0]!);
  });
});

describe('convolutions: bad inputs are SymflowErrors naming the op, the argument and the shapes', () => {
  const x = placeholder([2, 5, 5, 3]), f = placeholder([3, 3, 3, 4]);
  const cases: [string, () => unknown, RegExp][] = [
    ['x of rank 3', () => conv2d(placeholder([2, 5, 5]), f), /^conv2d: x must have rank 4, got x is \[2,5,5\]/],
    ['filter of rank 2', () => conv2d(x, placeholder([3, 3])), /^conv2d: filter must have rank 4, got filter is \[3,3\]/],
    ['channels that differ', () => conv2d(x, placeholder([3, 3, 2, 4])), /^conv2d: x's channels \(axis 3\) must equal the filter's input channels \(axis 2\): x is \[2,5,5,3\], filter is \[3,3,2,4\]/],
    ['an int32 x', () => conv2d(placeholder([2, 5, 5, 3], { dtype: 'int32' }), f), /^conv2d: x must be float32, got int32/],
    ['padding SAME', () => conv2d(x, f, { padding: 'SAME' as 'same' }), /^conv2d: padding must be 'same' or 'valid', got "SAME"/],
    ['strides 0', () => conv2d(x, f, { strides: 0 }), /^conv2d: strides must be a positive integer or a pair \[h, w\] of positive integers, got \[0,0\]/],
    ['dilations [1, -2]', () => conv2d(x, f, { dilations: [1, -2] }), /^conv2d: dilations must be .* got \[1,-2\]/],
    ['strides [1, 2, 3]', () => conv2d(x, f, { strides: [1, 2, 3] as unknown as [number, number] }), /^conv2d: strides must be a number or a pair \[h, w\], got \[1,2,3\]/],
    ['a fractional stride', () => conv2d(x, f, { strides: 1.5 }), /^conv2d: strides must be a positive integer/],
    ['strides and dilations both > 1', () => conv2d(x, f, { strides: 2, dilations: 2 }), /^conv2d: strides \[2,2\] and dilations \[2,2\] may not both exceed 1/],
    ['a filter larger than a valid input', () => conv2d(placeholder([1, 2, 5, 3]), f), /^conv2d: output size 0 < 1 on spatial axis 0: input 2, filter 3 .*padding 'valid'/],
    ['a dilated filter larger than the input', () => conv2d(x, f, { dilations: [3, 1] }), /^conv2d: output size -1 < 1 on spatial axis 0: input 5, filter 3 dilated by 3 \(7\)/],
    ['a filter of size 0', () => conv2d(x, placeholder([0, 3, 3, 4])), /^conv2d: the filter's spatial size must be at least 1/],
    ['depthwise channels that differ', () => depthwiseConv2d(x, placeholder([3, 3, 2, 2])), /^depthwiseConv2d: x's channels .* x is \[2,5,5,3\], filter is \[3,3,2,2\]/],
    ['conv1d of rank 4', () => conv1d(x, placeholder([3, 3, 4])), /^conv1d: x must have rank 3 \(NWC\), got x is \[2,5,5,3\]/],
    ['conv1d channels that differ', () => conv1d(placeholder([2, 9, 3]), placeholder([3, 2, 4])), /^conv1d: x's channels .*conv1d runs as conv2d.*x is \[2,9,3\], filter is \[3,2,4\]/],
    ['conv1d stride [1, 2]', () => conv1d(placeholder([2, 9, 3]), placeholder([3, 3, 4]), { stride: [1, 2] as unknown as number }), /^conv1d: stride must be a number/],
    ['a backprop input of the wrong size', () => conv2dBackpropInput(placeholder([2, 4, 3, 4]), f, [5, 5], { strides: 2, padding: 'same' }), /^conv2dBackpropInput: dy's spatial axis 1 must be 3 for inputSize \[5,5\]/],
    ['a backprop input of other channels', () => conv2dBackpropInput(placeholder([2, 3, 3, 5]), f, [5, 5], { strides: 2, padding: 'same' }), /^conv2dBackpropInput: dy's channels .* dy is \[2,3,3,5\], filter is \[3,3,3,4\]/],
    ['a backprop filter of other batches', () => conv2dBackpropFilter(x, placeholder([3, 3, 3, 4]), [3, 3], { strides: 2, padding: 'same' }), /^conv2dBackpropFilter: x and dy must have the same batch size: x is \[2,5,5,3\], dy is \[3,3,3,4\]/],
    ['a bad filterSize', () => conv2dBackpropFilter(x, placeholder([2, 3, 3, 4]), [3, -1] as [number, number]), /^conv2dBackpropFilter: filterSize must be \[h, w\] of non-negative integers/],
    ['an input gradient through unknown spatial sizes', () => { const u = placeholder([null, null, null, 3]); return gradients(sum(conv2d(u, f)), u); },
      /^gradients: conv2d: the gradient needs the static spatial size of x, got \[\?,\?,\?,3\]/],
  ];
  it.each(cases)('%s', (_n, build, re) => {
    let err: unknown;
    try {
      build();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SymflowError);
    expect((err as Error).message).toMatch(re);
  });
});

describe('convolutions: symbolic shapes', () => {
  it('an unknown batch is one symbol from x through every conv and its gradients; spatial dims follow the rule', () => {
    const f = placeholder([3, 3, 2, 4]), d = placeholder([2, 2, 4, 2]);
    // An unknown width: the forward shapes (input gradients need static spatial sizes, see the bad-input cases).
    expect(depthwiseConv2d(conv2d(placeholder([null, 9, null, 2]), f, { strides: 2, padding: 'same' }), d).shape).toEqual([null, 4, null, 8]);
    const x = placeholder([null, 9, 7, 2]);
    const y = depthwiseConv2d(conv2d(x, f, { strides: 2, padding: 'same' }), d);
    expect(y.shape).toEqual([null, 4, 3, 8]);
    const [df, dd] = gradients(sum(y), [f, d]);
    const { ir } = toIR([y, df!, dd!], []);
    const shapes = symbolicShapes(ir);
    expect(shapes.get(y.id)![0]).toBe(shapes.get(x.id)![0]);
    expect(shapes.get(y.id)!.slice(1)).toEqual([4, 3, 8]);
    expect(shapes.get(df!.id)).toEqual([3, 3, 2, 4]);
    expect(shapes.get(dd!.id)).toEqual([2, 2, 4, 2]);
  });
});

describe('convolutions: coverage and the declared fallback', () => {
  it('kernels on cpu, wasm and onnx; the filter backprops on wasm (depthwise: and onnx) and the depthwise input backprop on wasm are declared compositions', () => {
    for (const op of ['conv2d', 'conv2dBackpropInput', 'depthwiseConv2d']) expect([tfjsCoverage(op, 'cpu'), tfjsCoverage(op, 'wasm'), onnxCoverage(op)]).toEqual(['kernel', 'kernel', 'kernel']);
    const cells = (op: string) => [tfjsCoverage(op, 'cpu'), tfjsCoverage(op, 'wasm'), onnxCoverage(op)];
    expect(cells('conv2dBackpropFilter')).toEqual(['kernel', 'compose', 'kernel']);
    expect(cells('depthwiseConv2dBackpropInput')).toEqual(['kernel', 'compose', 'kernel']);
    expect(cells('depthwiseConv2dBackpropFilter')).toEqual(['kernel', 'compose', 'compose']);
  });

  const forced = [...CONV.map((c) => ['conv2dBackpropFilter', c] as const), ...DEPTHWISE.flatMap((c) => [['depthwiseConv2dBackpropFilter', c], ['depthwiseConv2dBackpropInput', c]] as const)];
  it.each(forced.map(([op, c]) => [op, c.name, op, c] as const))('the composition of %s on cpu agrees with the cpu kernel: %s', async (_o, _n, op, c) => {
    tf.setBackend('cpu');
    const dw = op !== 'conv2dBackpropFilter';
    const y = placeholder(c.x);
    const dyShape = (dw ? depthwiseConv2d : conv2d)(y, placeholder(c.f), { strides: c.strides, padding: c.padding, dilations: c.dilations }).shape as number[];
    const input = op === 'depthwiseConv2dBackpropInput';
    const node = {
      op, name: 'bp', dtype: 'float32' as const, shape: input ? c.x : c.f,
      attrs: { ...(input ? { inputSize: c.x.slice(1, 3) } : { filterSize: c.f.slice(0, 2) }), strides: c.strides, padding: c.padding, dilations: c.dilations },
      inputs: input ? [{ shape: dyShape, dtype: 'float32' as const }, { shape: c.f, dtype: 'float32' as const }] : [{ shape: c.x, dtype: 'float32' as const }, { shape: dyShape, dtype: 'float32' as const }],
    };
    const before = tf.memory().numTensors;
    const ins = node.inputs.map((i) => tf.tensor(data(i.shape), i.shape));
    const kernel = tfKernelFor(node, { backend: 'cpu' }, 'cpu')(ins);
    const composed = composedKernel(node, { backend: 'cpu' }, 'cpu')!(ins);
    expect(composed.shape).toEqual(node.shape);
    expectClose(composed.dataSync(), kernel.dataSync(), RTOL, ATOL);
    tf.dispose([...ins, kernel, composed]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
