// Layer objects (issue 12 §3): each layer's forward pass against the same layer in TF.js (tf.layers, or a
// hand-written TF.js reference for attention and GRU's reset_after) with the same weights, on every backend;
// gradients against central finite differences; weight sharing; batch norm's training / inference statistics and
// its moving-average updates through compile; dropout; bad input.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, adam, add, compile, gradients, graph, heun, mean, nameScope, nn, placeholder, sgd, sparseSoftmaxCrossEntropy, square, sum,
  type HostTensor, type Layer, type Tensor, type Variable,
} from '../src/index.js';
import { BACKENDS, expectClose, rng, values } from './helpers.js';

// float32 tolerances against TF.js (same weights, same inputs): the kernels sum in different orders.
const RTOL = 1e-5;
const ATOL = 2e-6;

function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

const toTf = (h: HostTensor) => tf.tensor(Array.from(h.data), [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32');

async function weightsOf(s: Session, vs: readonly Variable[]): Promise<tf.Tensor[]> {
  return Promise.all(vs.map(async (v) => toTf(await s.getValue(v))));
}

/** Gives every variable of a layer random values (so zero biases and unit gammas do not hide mistakes). */
async function randomise(s: Session, vs: readonly Variable[], seed: number, scale = 0.5): Promise<void> {
  const r = rng(seed);
  for (const v of vs) {
    const n = v.shape.reduce((p: number, d) => p * (d as number), 1);
    const data = randn(r, n, scale);
    if (v.name.endsWith('moving_variance')) for (let i = 0; i < n; i++) data[i] = 0.5 + Math.abs(data[i]!);
    await s.setValue(v, { shape: v.shape as number[], data });
  }
}

describe.each(BACKENDS)('layers on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(async () => {
    await s.dispose();
  });

  const feedOf = (shape: number[], seed: number, scale = 1) => ({ shape, data: randn(rng(seed), shape.reduce((p, d) => p * d, 1), scale) });

  it('dense matches tf.layers.dense (rank 2 and 3)', async () => {
    for (const shape of [[3, 4], [2, 3, 4]]) {
      const x = placeholder([null, ...shape.slice(1)]);
      const d = nn.dense(5, { activation: 'tanh', seed: 1 });
      const y = d.apply(x);
      expect(y.shape).toEqual([null, ...shape.slice(1, -1), 5]);
      await randomise(s, d.variables, 3);
      const xv = feedOf(shape, 7);
      const got = await s.run(y, [[x, xv]]);
      const ref = tf.layers.dense({ units: 5, activation: 'tanh' });
      ref.apply(tf.zeros(shape));
      ref.setWeights(await weightsOf(s, [d.kernel!, d.bias!]));
      const want = ref.apply(tf.tensor(Array.from(xv.data), shape)) as tf.Tensor;
      expect(got.shape).toEqual(want.shape);
      expectClose(values(got), want.dataSync(), RTOL, ATOL);
    }
  });

  it('conv2d, depthwiseConv2d, maxPool2d and avgPool2d match tf.layers (same weights; strides, padding, dilations)', async () => {
    const xs = [2, 7, 6, 3];
    const xv = feedOf(xs, 11);
    const xt = tf.tensor(Array.from(xv.data), xs);
    const x = placeholder([null, 7, 6, 3]);
    const cases: [Layer & { variables: readonly Variable[] }, tf.layers.Layer][] = [
      [nn.conv2d(4, 3, { activation: 'relu', seed: 1 }), tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu' })],
      [nn.conv2d(5, [2, 3], { strides: 2, padding: 'same', seed: 2 }), tf.layers.conv2d({ filters: 5, kernelSize: [2, 3], strides: 2, padding: 'same' })],
      [nn.conv2d(2, 3, { dilations: 2, padding: 'same', useBias: false, seed: 3 }), tf.layers.conv2d({ filters: 2, kernelSize: 3, dilationRate: 2, padding: 'same', useBias: false })],
      [nn.depthwiseConv2d(3, { depthMultiplier: 2, activation: 'tanh', seed: 4 }), tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, activation: 'tanh' })],
      [nn.maxPool2d({ size: 2 }), tf.layers.maxPooling2d({ poolSize: 2 })],
      [nn.maxPool2d({ size: 3, strides: 2, padding: 'same' }), tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' })],
      [nn.avgPool2d({ size: [2, 3], strides: [2, 1] }), tf.layers.averagePooling2d({ poolSize: [2, 3], strides: [2, 1] })],
    ];
    for (const [layer, ref] of cases) {
      const y = layer.apply(x);
      await randomise(s, layer.variables, 5);
      const got = await s.run(y, [[x, xv]]);
      ref.apply(xt);
      if (layer.variables.length > 0) ref.setWeights(await weightsOf(s, layer.variables));
      const want = ref.apply(xt) as tf.Tensor;
      expect(got.shape).toEqual(want.shape);
      expectClose(values(got), want.dataSync(), 1e-4, 1e-5);
    }
  });

  it('a conv2d layer called twice shares its kernel; its gradients add up', async () => {
    const x = placeholder([1, 4, 4, 2]);
    const c = nn.conv2d(3, 2, { seed: 9 });
    const a = c.apply(x), b = c.apply(x);
    expect(c.variables.length).toBe(2);
    const [g1] = gradients(sum(a), [c.kernel!]);
    const [g2] = gradients(add(sum(a), sum(b)), [c.kernel!]);
    const xv = feedOf([1, 4, 4, 2], 2);
    const [v1, v2] = await s.run([g1!, g2!], [[x, xv]]);
    expectClose(values(v2!), values(v1!).map((v) => 2 * v), 1e-5, 1e-6);
  });

  it('flatten keeps the batch axis', async () => {
    const x = placeholder([null, 3, 4]);
    const y = nn.flatten().apply(x);
    expect(y.shape).toEqual([null, 12]);
    const xv = feedOf([2, 3, 4], 1);
    const got = await s.run(y, [[x, xv]]);
    expect(got.shape).toEqual([2, 12]);
    expect(values(got)).toEqual(Array.from(xv.data));
  });

  it('batchNorm matches tf.layers.batchNormalization (training and inference, axis −1 and 1)', async () => {
    for (const [shape, axis] of [[[6, 3], -1], [[4, 3, 5], 1]] as [number[], number][]) {
      const x = placeholder([null, ...shape.slice(1)]);
      const bn = nn.batchNorm({ momentum: 0.9, epsilon: 1e-3, axis });
      const y = bn.apply(x);
      await randomise(s, [...bn.variables, ...bn.nonTrainableVariables], 5);
      const xv = feedOf(shape, 11, 2);
      const train = await s.run(y, [[x, xv]], { training: true });
      const infer = await s.run(y, [[x, xv]]);
      // TF.js's batchNormalization mis-broadcasts its parameters for an axis other than the last (checked by hand on
      // [[[1,2],[3,4]],[[5,0],[0,1]]], axis 1), so the reference is TF.js's layer on axis −1 of the transposed input.
      const perm = shape.map((_, i) => i).filter((i) => i !== (axis + shape.length) % shape.length).concat([(axis + shape.length) % shape.length]);
      const inv = perm.map((_, i) => perm.indexOf(i));
      const ref = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3, axis: -1 });
      ref.apply(tf.zeros(perm.map((p) => shape[p]!)));
      ref.setWeights(await weightsOf(s, [bn.gamma!, bn.beta!, bn.movingMean!, bn.movingVariance!]));
      const xt = tf.transpose(tf.tensor(Array.from(xv.data), shape), perm);
      const run = (training: boolean) => tf.transpose(ref.apply(xt, { training }) as tf.Tensor, inv).dataSync();
      // Inference first: TF.js's layer moves its own moving statistics in a training call.
      expectClose(values(infer), run(false), RTOL, ATOL);
      expectClose(values(train), run(true), RTOL, ATOL);
      // One moments update of both moving statistics (pooled under accumulate).
      expect(bn.updates.map((u) => (u as { kind?: string }).kind)).toEqual(['moments']);
    }
  });

  it('layerNorm matches tf.layers.layerNormalization', async () => {
    const shape = [2, 3, 6];
    const x = placeholder([null, 3, 6]);
    const ln = nn.layerNorm({ epsilon: 1e-3 });
    const y = ln.apply(x);
    await randomise(s, ln.variables, 9);
    const xv = feedOf(shape, 13, 3);
    const got = await s.run(y, [[x, xv]]);
    const ref = tf.layers.layerNormalization({ epsilon: 1e-3 });
    ref.apply(tf.zeros(shape));
    ref.setWeights(await weightsOf(s, ln.variables));
    expectClose(values(got), (ref.apply(tf.tensor(Array.from(xv.data), shape)) as tf.Tensor).dataSync(), RTOL, ATOL);
  });

  it('embedding matches tf.layers.embedding', async () => {
    const ids = placeholder([null, 4], { dtype: 'int32' });
    const e = nn.embedding(10, 3, { seed: 2 });
    const y = e.apply(ids);
    expect(y.shape).toEqual([null, 4, 3]);
    const idv = { shape: [2, 4], data: Int32Array.from([0, 9, 3, 3, 5, 1, 0, 7]) };
    const got = await s.run(y, [[ids, idv]]);
    const ref = tf.layers.embedding({ inputDim: 10, outputDim: 3 });
    ref.apply(tf.zeros([2, 4], 'int32'));
    ref.setWeights(await weightsOf(s, e.variables));
    expectClose(values(got), (ref.apply(tf.tensor(Array.from(idv.data), [2, 4], 'int32')) as tf.Tensor).dataSync(), 0, 0);
  });

  /** Keras' MultiHeadAttention, written out in TF.js ops with 2-D projection kernels. */
  function mhaRef(w: tf.Tensor[], q: tf.Tensor, v: tf.Tensor, k: tf.Tensor, h: number, dk: number, dv: number, causal: boolean): tf.Tensor {
    const [wq, bq, wk, bk, wv, bv, wo, bo] = w as [tf.Tensor2D, tf.Tensor, tf.Tensor2D, tf.Tensor, tf.Tensor2D, tf.Tensor, tf.Tensor2D, tf.Tensor];
    const [b, tq] = q.shape as [number, number, number];
    const tv = v.shape[1]!;
    const proj = (x: tf.Tensor, W: tf.Tensor2D, B: tf.Tensor, t: number, d: number) =>
      tf.transpose(tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, x.shape[2]!]), W), B), [b, t, h, d]), [0, 2, 1, 3]);
    const qh = tf.mul(proj(q, wq, bq, tq, dk), 1 / Math.sqrt(dk));
    const kh = proj(k, wk, bk, tv, dk), vh = proj(v, wv, bv, tv, dv);
    let scores = tf.matMul(qh as tf.Tensor4D, kh as tf.Tensor4D, false, true);
    if (causal) {
      const mask = tf.linalg.bandPart(tf.ones([tq, tv]), -1, 0);
      scores = tf.add(scores, tf.mul(tf.sub(1, mask), -1e9));
    }
    const out = tf.matMul(tf.softmax(scores), vh as tf.Tensor4D);
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * tq, h * dv]);
    return tf.reshape(tf.add(tf.matMul(merged, wo), bo), [b, tq, wo.shape[1]]);
  }

  it.each([false, true])('multiHeadAttention matches a TF.js reference (causal %s; self and cross)', async (causal) => {
    const q = placeholder([null, 4, 6]);
    const v = placeholder([null, 5, 3]);
    const self = nn.multiHeadAttention({ numHeads: 2, keyDim: 3, causal, seed: 1 });
    const cross = nn.multiHeadAttention({ numHeads: 3, keyDim: 2, valueDim: 4, causal, seed: 2 });
    const ys = self.apply(q);
    const yc = cross.apply(q, v);
    expect(ys.shape).toEqual([null, 4, 6]);
    expect(yc.shape).toEqual([null, 4, 6]);
    await randomise(s, self.variables, 21);
    await randomise(s, cross.variables, 22);
    const qv = feedOf([2, 4, 6], 23), vv = feedOf([2, 5, 3], 24);
    const [gs, gc] = await s.run([ys, yc], [[q, qv], [v, vv]]);
    const qt = tf.tensor(Array.from(qv.data), [2, 4, 6]), vt = tf.tensor(Array.from(vv.data), [2, 5, 3]);
    expectClose(values(gs!), mhaRef(await weightsOf(s, self.variables), qt, qt, qt, 2, 3, 3, causal).dataSync(), RTOL, ATOL);
    expectClose(values(gc!), mhaRef(await weightsOf(s, cross.variables), qt, vt, vt, 3, 2, 4, causal).dataSync(), RTOL, ATOL);
    if (causal) {
      // The first position sees only itself: changing later positions leaves it alone.
      const q2 = { shape: qv.shape, data: Float32Array.from(qv.data, (a, i) => (i % 24 >= 6 ? a + 1 : a)) };
      const g2 = await s.run(ys, [[q, q2]]);
      for (const b of [0, 1]) expectClose(values(g2).slice(b * 24, b * 24 + 6), values(gs!).slice(b * 24, b * 24 + 6), 1e-6, 1e-6);
    }
  });

  it.each([false, true])('lstm matches tf.layers.lstm (returnSequences %s)', async (returnSequences) => {
    const x = placeholder([null, 5, 3]);
    const l = nn.lstm(4, { returnSequences, seed: 3 });
    const y = l.apply(x);
    expect(y.shape).toEqual(returnSequences ? [null, 5, 4] : [null, 4]);
    await randomise(s, l.variables, 31);
    const xv = feedOf([2, 5, 3], 32);
    const got = await s.run(y, [[x, xv]]);
    const ref = tf.layers.lstm({ units: 4, returnSequences, recurrentActivation: 'sigmoid' });
    ref.apply(tf.zeros([2, 5, 3]));
    ref.setWeights(await weightsOf(s, l.variables));
    const want = ref.apply(tf.tensor(Array.from(xv.data), [2, 5, 3])) as tf.Tensor;
    expect(got.shape).toEqual(want.shape);
    expectClose(values(got), want.dataSync(), RTOL, ATOL);
  });

  it.each([false, true])('gru (resetAfter false) matches tf.layers.gru (returnSequences %s)', async (returnSequences) => {
    const x = placeholder([null, 5, 3]);
    const g = nn.gru(4, { returnSequences, resetAfter: false, seed: 4 });
    const y = g.apply(x);
    await randomise(s, g.variables, 41);
    const xv = feedOf([2, 5, 3], 42);
    const got = await s.run(y, [[x, xv]]);
    const ref = tf.layers.gru({ units: 4, returnSequences, recurrentActivation: 'sigmoid' });
    ref.apply(tf.zeros([2, 5, 3]));
    ref.setWeights(await weightsOf(s, g.variables));
    const want = ref.apply(tf.tensor(Array.from(xv.data), [2, 5, 3])) as tf.Tensor;
    expect(got.shape).toEqual(want.shape);
    expectClose(values(got), want.dataSync(), RTOL, ATOL);
  });

  it('gru (Keras default resetAfter) matches a TF.js reference of Keras\' reset_after cell', async () => {
    const x = placeholder([null, 5, 3]);
    const g = nn.gru(4, { returnSequences: true, seed: 5 });
    const y = g.apply(x);
    expect(g.bias!.shape).toEqual([2, 12]);
    await randomise(s, g.variables, 51);
    const xv = feedOf([2, 5, 3], 52);
    const got = await s.run(y, [[x, xv]]);
    const [W, U, B] = await weightsOf(s, g.variables) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const [bIn, bRec] = tf.unstack(B);
    const xt = tf.tensor3d(Array.from(xv.data), [2, 5, 3]);
    let h: tf.Tensor2D = tf.zeros([2, 4]);
    const outs: tf.Tensor[] = [];
    for (let t = 0; t < 5; t++) {
      const xs = tf.squeeze(tf.slice(xt, [0, t, 0], [2, 1, 3]), [1]) as tf.Tensor2D;
      const [xz, xr, xh] = tf.split(tf.add(tf.matMul(xs, W), bIn!), 3, 1);
      const [rz, rr, rh] = tf.split(tf.add(tf.matMul(h, U), bRec!), 3, 1);
      const z = tf.sigmoid(tf.add(xz!, rz!)), r = tf.sigmoid(tf.add(xr!, rr!));
      const hh = tf.tanh(tf.add(xh!, tf.mul(r, rh!)));
      h = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), hh)) as tf.Tensor2D;
      outs.push(h);
    }
    expectClose(values(got), tf.stack(outs, 1).dataSync(), RTOL, ATOL);
  });

  // --- gradients against central finite differences ---------------------------------------------------------

  /**
   * Directional central differences of f = sum(y²): for a random direction d per variable (and for x, when it is
   * float), (f(θ + εd) − f(θ − εd)) / 2ε against ⟨∇f, d⟩.
   */
  async function checkGradients(layer: Layer, x: Tensor, y: Tensor, xv: { shape: number[]; data: Float32Array | Int32Array }, training: boolean, seed: number) {
    const f = sum(square(y));
    const vs = layer.variables;
    const withX = x.dtype === 'float32';
    const targets: Tensor[] = [...vs, ...(withX ? [x] : [])];
    const grads = gradients(f, targets);
    const opts = { training };
    const g = await s.run(grads, [[x, xv]], opts);
    const r = rng(seed);
    const eps = 1e-2;
    const check = (fd: number, an: number, what: string) => {
      expect(Math.abs(fd - an), `${what}: finite difference ${fd}, gradient ${an}`).toBeLessThanOrEqual(5e-3 * (Math.abs(fd) + Math.abs(an)) + 2e-3);
    };
    for (let k = 0; k < vs.length; k++) {
      const v = vs[k]!;
      const base = await s.getValue(v);
      const d = randn(r, base.data.length);
      const at = async (sign: number) => {
        await s.setValue(v, { shape: [...base.shape], data: Float32Array.from(base.data, (a, i) => a + sign * eps * d[i]!) });
        return values(await s.run(f, [[x, xv]], opts))[0]!;
      };
      const fd = ((await at(1)) - (await at(-1))) / (2 * eps);
      await s.setValue(v, base);
      check(fd, values(g[k]!).reduce((p, a, i) => p + a * d[i]!, 0), `${v.name}`);
    }
    if (withX) {
      const d = randn(r, xv.data.length);
      const at = async (sign: number) => values(await s.run(f, [[x, { shape: xv.shape, data: Float32Array.from(xv.data, (a, i) => a + sign * eps * d[i]!) }]], opts))[0]!;
      const fd = ((await at(1)) - (await at(-1))) / (2 * eps);
      check(fd, values(g[vs.length]!).reduce((p, a, i) => p + a * d[i]!, 0), 'x');
    }
  }

  const gradCases: [string, () => Layer, number[], boolean, 'float32' | 'int32'][] = [
    ['dense', () => nn.dense(3, { activation: 'tanh', seed: 1 }), [3, 4], false, 'float32'],
    ['batchNorm (training)', () => nn.batchNorm({ momentum: 0.9 }), [5, 3], true, 'float32'],
    ['batchNorm (inference)', () => nn.batchNorm({ momentum: 0.9 }), [5, 3], false, 'float32'],
    ['layerNorm', () => nn.layerNorm(), [3, 5], false, 'float32'],
    ['embedding', () => nn.embedding(6, 3, { seed: 1 }), [2, 3], false, 'int32'],
    ['multiHeadAttention (causal)', () => nn.multiHeadAttention({ numHeads: 2, keyDim: 2, causal: true, seed: 1 }), [2, 3, 4], false, 'float32'],
    ['lstm', () => nn.lstm(3, { returnSequences: true, seed: 1 }), [2, 3, 2], false, 'float32'],
    ['gru', () => nn.gru(3, { returnSequences: true, seed: 1 }), [2, 3, 2], false, 'float32'],
    ['gru (resetAfter false)', () => nn.gru(3, { resetAfter: false, seed: 1 }), [2, 3, 2], false, 'float32'],
    ['dropout (training)', () => nn.dropout(0.5, { seed: 3 }), [4, 4], true, 'float32'],
    ['sequential', () => nn.sequential([nn.dense(4, { activation: 'relu', seed: 2 }), nn.batchNorm(), nn.dense(2, { seed: 3 })]), [4, 3], true, 'float32'],
  ];
  it.each(gradCases)('%s: gradients match central finite differences', async (_name, make, shape, training, dtype) => {
    const layer = make();
    const x = placeholder(shape, { dtype });
    const y = layer.apply(x);
    if (layer.variables.length > 0) await randomise(s, [...layer.variables, ...layer.nonTrainableVariables], 61);
    const n = shape.reduce((p, d) => p * d, 1);
    const xv = dtype === 'int32' ? { shape, data: Int32Array.from({ length: n }, (_, i) => (i * 5) % 6) } : feedOf(shape, 62);
    await checkGradients(layer, x, y, xv, training, 63);
  });

  // --- weight sharing ----------------------------------------------------------------------------------------

  it('a layer called twice has one set of variables, and both calls\' gradients add up', async () => {
    const d = nn.dense(3, { seed: 4 });
    const x1 = placeholder([null, 2]), x2 = placeholder([null, 2]);
    const f1 = sum(square(d.apply(x1)));
    const f2 = sum(square(d.apply(x2)));
    expect(d.variables.map((v) => v.name)).toEqual([d.kernel!.name, d.bias!.name]);
    expect(d.variables.length).toBe(2);
    await randomise(s, d.variables, 71);
    const feeds = [[x1, feedOf([3, 2], 72)], [x2, feedOf([2, 2], 73)]] as const;
    const both = await s.run(gradients(add(f1, f2), d.variables), feeds);
    const one = await s.run(gradients(f1, d.variables), feeds);
    const two = await s.run(gradients(f2, d.variables), feeds);
    for (let k = 0; k < 2; k++) expectClose(values(both[k]!), values(one[k]!).map((a, i) => a + values(two[k]!)[i]!), 1e-5, 1e-5);
    expect(() => d.apply(placeholder([null, 3]))).toThrow(/dense 'dense(_\d+)?': x has last dimension 3 .*built for 2/);
  });

  // --- batch norm through compile ----------------------------------------------------------------------------

  it.each([['sgd', () => sgd({ lr: 0.1 })], ['heun', () => heun({ lr: 0.1 })]] as const)('batchNorm: one %s step moves the moving statistics once, by Keras\' formula', async (_n, make) => {
    const x = placeholder([null, 3]);
    const bn = nn.batchNorm({ momentum: 0.8 });
    const head = nn.dense(1, { seed: 5 });
    const model = nn.sequential([bn, head]);
    const y = model.apply(x);
    const loss = mean(square(y));
    expect(model.updates).toEqual([expect.objectContaining({ kind: 'moments', mean: bn.movingMean, variance: bn.movingVariance })]);
    expect(model.nonTrainableVariables).toEqual([bn.movingMean, bn.movingVariance]);
    const train = compile(make(), s, { loss, inputs: [x], updates: model.updates });
    const xv = feedOf([4, 3], 81, 2);
    const cols = [0, 1, 2].map((c) => [0, 1, 2, 3].map((r) => xv.data[r * 3 + c]!));
    const bm = cols.map((c) => c.reduce((p, a) => p + a, 0) / 4);
    const bv = cols.map((c, j) => c.reduce((p, a) => p + (a - bm[j]!) ** 2, 0) / 4);
    let mm = [0, 0, 0], mv = [1, 1, 1];
    for (let k = 0; k < 2; k++) {
      await train.step([xv]);
      mm = mm.map((m, j) => m * 0.8 + bm[j]! * 0.2);
      mv = mv.map((m, j) => m * 0.8 + bv[j]! * 0.2);
      expectClose(values(await s.getValue(bn.movingMean!)), mm, 1e-5, 1e-6);
      expectClose(values(await s.getValue(bn.movingVariance!)), mv, 1e-5, 1e-6);
    }
    // Training output used the batch statistics; session.run uses the moving ones.
    const h = bn.apply(x);
    const [g, b] = [values(await s.getValue(bn.gamma!)), values(await s.getValue(bn.beta!))];
    const byStats = (m: number[], v: number[]) => Array.from(xv.data, (a, i) => ((a - m[i % 3]!) / Math.sqrt(v[i % 3]! + 1e-3)) * g[i % 3]! + b[i % 3]!);
    expectClose(values(await s.run(h, [[x, xv]], { training: true })), byStats(bm, bv), 1e-4, 1e-5);
    expectClose(values(await s.run(h, [[x, xv]])), byStats(mm, mv), 1e-4, 1e-5);
  });

  it('batchNorm after a dense layer: the statistics come from the parameters as the step started (heun)', async () => {
    const x = placeholder([null, 2]);
    const d = nn.dense(2, { seed: 6 });
    const bn = nn.batchNorm({ momentum: 0.5 });
    const loss = mean(square(nn.dense(1, { seed: 7 }).apply(bn.apply(d.apply(x)))));
    const train = compile(heun({ lr: 0.2 }), s, { loss, inputs: [x], updates: bn.updates });
    const xv = [[1, 2], [-1, 0.5], [0, 3]];
    const k0 = values(await s.getValue(d.kernel!));
    const r = await train.step([xv]);
    expect(r.runs).toBe(2);
    const h = xv.map(([a, b]) => [a! * k0[0]! + b! * k0[2]!, a! * k0[1]! + b! * k0[3]!]);
    const m = [0, 1].map((j) => h.reduce((p, row) => p + row[j]!, 0) / 3);
    const v = [0, 1].map((j) => h.reduce((p, row) => p + (row[j]! - m[j]!) ** 2, 0) / 3);
    expect(values(await s.getValue(d.kernel!))).not.toEqual(k0);
    expectClose(values(await s.getValue(bn.movingMean!)), m.map((a) => 0.5 * a), 1e-5, 1e-6);
    expectClose(values(await s.getValue(bn.movingVariance!)), v.map((a) => 0.5 + 0.5 * a), 1e-5, 1e-6);
  });

  it('the README example trains', async () => {
    const x = placeholder([null, 4]);
    const y = placeholder([null], { dtype: 'int32' });
    const model = nn.sequential([nn.dense(16, { activation: 'relu', seed: 1 }), nn.batchNorm(), nn.dropout(0.2), nn.dense(3, { seed: 2 })]);
    const loss = mean(sparseSoftmaxCrossEntropy(model.apply(x), y));
    const train = compile(adam({ lr: 0.01 }), s, { loss, inputs: [x, y], updates: model.updates });
    const xv = feedOf([6, 4], 95);
    const yv = { shape: [6], data: Int32Array.from([0, 1, 2, 0, 1, 2]) };
    for (let k = 0; k < 3; k++) await train.step([xv, yv]);
    expect(Number.isFinite(values(await s.run(loss, [[x, xv], [y, yv]]))[0]!)).toBe(true);
  });

  // --- dropout ---------------------------------------------------------------------------------------------------

  it('dropout: the identity in session.run, masked and scaled in training', async () => {
    const x = placeholder([null, 50]);
    const y = nn.dropout(0.4, { seed: 9 }).apply(x);
    const xv = { shape: [4, 50], data: Float32Array.from({ length: 200 }, (_, i) => 1 + (i % 7)) };
    expect(values(await s.run(y, [[x, xv]]))).toEqual(Array.from(xv.data));
    const t = values(await s.run(y, [[x, xv]], { training: true }));
    let zeros = 0;
    t.forEach((a, i) => {
      if (a === 0) zeros++;
      else expect(a).toBeCloseTo(xv.data[i]! / 0.6, 5);
    });
    expect(zeros).toBeGreaterThan(40);
    expect(zeros).toBeLessThan(120);
  });

  it('sequential trains a small model (variables and updates of all its layers)', async () => {
    const x = placeholder([null, 2, 3]);
    const model = nn.sequential([nn.flatten(), nn.dense(8, { activation: 'relu', seed: 1 }), nn.batchNorm(), nn.dropout(0.25, { seed: 2 }), nn.dense(1, { seed: 3 })]);
    const loss = mean(square(model.apply(x)));
    expect(model.variables.length).toBe(6);
    const train = compile(sgd({ lr: 0.05 }), s, { loss, inputs: [x], updates: model.updates });
    const xv = feedOf([5, 2, 3], 91);
    const before = values(await s.run(loss, [[x, xv]], { training: true }))[0]!;
    for (let k = 0; k < 5; k++) await train.step([xv]);
    const after = values(await s.run(loss, [[x, xv]], { training: true }))[0]!;
    expect(Number.isFinite(after)).toBe(true);
    expect(after).not.toBe(before);
  });
});

describe('layer names', () => {
  it('variables are named <layer>/<weight> on first call, deterministically inside graph(…)', () => {
    const build = () => graph(() => {
      const x = placeholder([null, 3]);
      const enc = nameScope('enc', () => nn.dense(4));
      const a = nn.dense(2);
      const b = nn.dense(2);
      // Called outside the scope it was made in: still named under its own name.
      a.apply(enc.apply(x));
      b.apply(x);
      const bn = nn.batchNorm();
      bn.apply(x);
      return [...enc.variables, ...a.variables, ...b.variables, ...bn.variables, ...bn.nonTrainableVariables].map((v) => v.name);
    });
    const names = build();
    expect(names).toEqual(['enc/dense/kernel', 'enc/dense/bias', 'dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias',
      'batchNorm/gamma', 'batchNorm/beta', 'batchNorm/moving_mean', 'batchNorm/moving_variance']);
    expect(build()).toEqual(names);
    expect(graph(() => {
      const m = nn.multiHeadAttention({ numHeads: 1, keyDim: 2, name: 'att' });
      m.apply(placeholder([null, 2, 3]));
      return m.variables.map((v) => v.name);
    })).toEqual(['att/query/kernel', 'att/query/bias', 'att/key/kernel', 'att/key/bias', 'att/value/kernel', 'att/value/bias', 'att/attention_output/kernel', 'att/attention_output/bias']);
  });
});

describe('layers refuse bad input', () => {
  const err = (f: () => unknown, re: RegExp) => {
    expect(f).toThrow(SymflowError);
    expect(f).toThrow(re);
  };
  it('names the layer, the argument and the shapes', () => {
    err(() => nn.embedding(5, 2, { name: 'tok' }).apply(placeholder([null, 3])), /embedding 'tok(_\d+)?': ids must be int32, got float32 \(ids is \[\?,3\]\)/);
    err(() => nn.multiHeadAttention({ numHeads: 2, keyDim: 2, name: 'att' }).apply(placeholder([null, 4, 6]), placeholder([null, 5, 3]), placeholder([null, 6, 3])),
      /multiHeadAttention 'att(_\d+)?': key and value sequence lengths differ: key is \[\?,6,3\], value is \[\?,5,3\]/);
    err(() => nn.multiHeadAttention({ numHeads: 2, keyDim: 2 }).apply(placeholder([null, 6])), /query must be \[batch, sequence, features\] \(rank 3\), query is \[\?,6\]/);
    err(() => nn.multiHeadAttention({ numHeads: 2, keyDim: 2 }).apply(placeholder([2, 4, 6]), placeholder([3, 4, 6])), /batch sizes differ: query is \[2,4,6\], value is \[3,4,6\]/);
    err(() => nn.lstm(4, { name: 'enc' }).apply(placeholder([null, 3])), /lstm 'enc(_\d+)?': x must be \[batch, timesteps, features\] \(rank 3\), x is \[\?,3\]/);
    err(() => nn.gru(4).apply(placeholder([2, null, 3])), /gru 'gru(_\d+)?': x needs a known number of timesteps .*x is \[2,\?,3\]/);
    err(() => nn.dense(3).apply(placeholder([4])), /dense 'dense(_\d+)?': x needs rank >= 2, x is \[4\]/);
    err(() => nn.dense(3).apply(placeholder([2, null])), /x needs a known last dimension \(axis 1\), x is \[2,\?\]/);
    err(() => nn.dense(0), /dense 'dense(_\d+)?': units must be a positive integer, got 0/);
    err(() => nn.batchNorm({ axis: 3 }).apply(placeholder([2, 3])), /batchNorm 'batchNorm(_\d+)?': axis 3 is out of range for x of rank 2 \(x is \[2,3\]\)/);
    err(() => nn.layerNorm().apply(placeholder([2, 3], { dtype: 'int32' })), /layerNorm 'layerNorm(_\d+)?': x must be float32, got int32/);
    err(() => nn.dropout(1), /dropout 'dropout(_\d+)?': rate must be in \[0, 1\), got 1/);
    err(() => nn.flatten().apply(placeholder([null, null, 2])), /flatten 'flatten(_\d+)?': x needs a known size after the batch axis \(axis 1\)/);
    err(() => nn.sequential([nn.dense(2), {} as Layer]), /sequential 'sequential(_\d+)?': layers\[1\] is not a layer/);
    err(() => nn.multiHeadAttention({ numHeads: 2, keyDim: 2 }).apply(placeholder([null, 4, 6]), placeholder([null, 4, 3]), placeholder([null, 4, 3], { dtype: 'int32' })), /key must be float32, got int32/);
    const lstm = nn.lstm(2);
    lstm.apply(placeholder([null, 3, 4]));
    err(() => lstm.apply(placeholder([null, 3, 5])), /lstm 'lstm(_\d+)?': x has feature size 5 \(x is \[\?,3,5\]\), but the layer was built for 4/);
  });
});
