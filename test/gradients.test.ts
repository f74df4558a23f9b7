// Gradient checks for every differentiable op: symflow's symbolic gradients against central finite differences
// (through the same session) and against TF.js's own autodiff, on every backend.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, type Dim, type HostTensor, type Tensor,
  abs, add, addN, broadcastLike, cast, concat, cond, constant, cos, div, exp, expandDims, gather, gradients, identity,
  log, logSoftmax, matMul, max, maximum, mean, meanSquaredError, min, minimum, mul, neg, pad, placeholder, pow,
  relu, reshape, reshapeLike, sigmoid, sin, slice, softmax, softmaxCrossEntropy, sparseSoftmaxCrossEntropy, sqrt,
  square, squeeze, stopGradient, sub, sum, sumToShape, tanh, transpose, unsortedSegmentSum, where,
  // --- pooling (issue 12) ---
  avgPool, globalAveragePool, maxPool,
} from '../src/index.js';
// --- activations and scans (issue 12) ---
import { clipByValue, cumsum, erf, gelu, logSumExp, silu, softplus } from '../src/index.js';
import { seededRandom } from '../src/graph/initializers.js';
import { BACKENDS, expectClose, values } from './helpers.js';
// --- pooling (issue 12) ---
import { poolAxis } from '../src/graph/ops/pool.js';
// --- convolutions (issue 12) ---
import { conv1d, conv2d, conv2dBackpropFilter, conv2dBackpropInput, depthwiseConv2d } from '../src/index.js';

// ---------------------------------------------------------------------------------------------------------------
// Tolerances.
//   Finite differences (float32, central, step H): truncation error is O(H²·f''') and round-off O(eps·|y|/H),
//   both well below 1e-3 for the small, O(1) inputs used here; a wrong gradient (sign error, missing factor 2,
//   gradient routed to the wrong element) is off by O(1) since every objective weight has |w| ≥ 0.5.
//   TF.js autodiff computes the same float32 formulas in a different order: only rounding differs.
const H = 1e-2;
const FD_RTOL = 2e-2, FD_ATOL = 2e-3;
const TF_RTOL = 1e-4, TF_ATOL = 1e-5;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic inputs.

const seeded = seededRandom;
const rng = seeded(20240611);
const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const uni = (lo: number, hi: number) => lo + (hi - lo) * rng();
const sgn = () => (rng() < 0.5 ? -1 : 1);

type InDtype = 'float32' | 'int32' | 'bool';
interface Input {
  shape: number[];
  data: number[];
  dtype: InDtype;
  /** The placeholder's static shape, when it differs from the fed shape (unknown dimensions). */
  static?: Dim[];
}

/** Uniform in [lo, hi). */
const U = (shape: number[], lo = -1, hi = 1): Input => ({ shape, dtype: 'float32', data: Array.from({ length: size(shape) }, () => uni(lo, hi)) });
/** Positive, away from 0 (log, sqrt, pow base, divisors). */
const P = (shape: number[]) => U(shape, 0.5, 2);
/** Either sign, |x| in [0.2, 1.5): away from the kinks of abs and relu. */
const NZ = (shape: number[]): Input => ({ shape, dtype: 'float32', data: Array.from({ length: size(shape) }, () => sgn() * uni(0.2, 1.5)) });
/** Pairwise distinct (gaps ≥ 0.2) in random order: no ties for max / min. */
const D = (shape: number[]): Input => {
  const n = size(shape);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return { shape, dtype: 'float32', data: order.map((k) => (k - n / 2) * 0.3 + uni(0, 0.1)) };
};
/** Two inputs with |a − b| ≥ 0.2 everywhere; b's shape must be a suffix of a's (b broadcasts into a). */
const separated = (aShape: number[], bShape: number[]): [Input, Input] => {
  const b = U(bShape);
  const nb = b.data.length;
  const a: Input = { shape: aShape, dtype: 'float32', data: Array.from({ length: size(aShape) }, (_, i) => b.data[i % nb]! + sgn() * uni(0.2, 1)) };
  return [a, b];
};
/** Rows (last axis) of positive numbers summing to 1: soft labels. */
const S = (shape: number[]): Input => {
  const u = U(shape, 0.05, 1);
  const k = shape[shape.length - 1]!;
  for (let r = 0; r < u.data.length; r += k) {
    const total = u.data.slice(r, r + k).reduce((p, v) => p + v, 0);
    for (let j = r; j < r + k; j++) u.data[j]! /= total;
  }
  return u;
};
const I = (shape: number[], data: number[], stat?: Dim[]): Input => ({ shape, dtype: 'int32', data, ...(stat ? { static: stat } : {}) });
const withStatic = (inp: Input, stat: Dim[]): Input => ({ ...inp, static: stat });

// ---------------------------------------------------------------------------------------------------------------
// The cases: a symflow op and the TF.js reference, over the same inputs. Every float32 input is differentiated;
// int32 / bool inputs are fed (symflow) or passed as constants (TF.js) but not differentiated.

interface Case {
  name: string;
  inputs: Input[];
  sym: (...xs: Tensor[]) => Tensor;
  ref: (...xs: tf.Tensor[]) => tf.Tensor;
}

const c = (name: string, inputs: Input[], sym: Case['sym'], ref: Case['ref']): Case => ({ name, inputs, sym, ref });

function matMulCases(): Case[] {
  const out: Case[] = [];
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      const a = U(ta ? [3, 2] : [2, 3]);
      const b = U(tb ? [4, 3] : [3, 4]);
      out.push(c(`matMul transposeA=${ta} transposeB=${tb}`, [a, b],
        (x, y) => matMul(x!, y!, { transposeA: ta, transposeB: tb }), (x, y) => tf.matMul(x!, y!, ta, tb)));
    }
  }
  out.push(c('matMul batched [2,2,3]·[2,3,4]', [U([2, 2, 3]), U([2, 3, 4])], (x, y) => matMul(x!, y!), (x, y) => tf.matMul(x!, y!)));
  out.push(c('matMul batched, transposeA and transposeB [2,3,2]ᵀ·[2,4,3]ᵀ', [U([2, 3, 2]), U([2, 4, 3])],
    (x, y) => matMul(x!, y!, { transposeA: true, transposeB: true }), (x, y) => tf.matMul(x!, y!, true, true)));
  // A rank-2 b broadcast over a's batch: its gradient is summed over the batch (TF.js's BatchMatMul gradient
  // does not unbroadcast, so the reference tiles b explicitly).
  out.push(c('matMul batch-broadcast [2,2,3]·[3,4]', [U([2, 2, 3]), U([3, 4])], (x, y) => matMul(x!, y!),
    (x, y) => tf.matMul(x!, tf.tile(tf.expandDims(y!, 0), [2, 1, 1]))));
  return out;
}

const maxPair = separated([2, 3], [2, 3]);
const maxBroadcast = separated([2, 3], [3]);
const minPair = separated([2, 3], [2, 3]);
const minBroadcast = separated([3, 2], [2]);
const boolCond = [[true, false, true], [false, false, true]];
const oneHot34 = [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]];
const soft34 = [[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.7, 0, 0.1, 0.2]];

const CASES: Case[] = [
  // Binary arithmetic, with broadcasting and numbers mixed in.
  c('add [2,3]+[2,3]', [U([2, 3]), U([2, 3])], (a, b) => add(a!, b!), (a, b) => tf.add(a!, b!)),
  c('add [2,3]+[3]', [U([2, 3]), U([3])], (a, b) => add(a!, b!), (a, b) => tf.add(a!, b!)),
  c('add [2,1]+[1,3]', [U([2, 1]), U([1, 3])], (a, b) => add(a!, b!), (a, b) => tf.add(a!, b!)),
  c('add [2,3]+scalar tensor []', [U([2, 3]), U([])], (a, b) => add(a!, b!), (a, b) => tf.add(a!, b!)),
  c('add(x, 2)', [U([2, 3])], (a) => add(a!, 2), (a) => tf.add(a!, 2)),
  c('sub [2,3]-[2,3]', [U([2, 3]), U([2, 3])], (a, b) => sub(a!, b!), (a, b) => tf.sub(a!, b!)),
  c('sub [2,3]-[3]', [U([2, 3]), U([3])], (a, b) => sub(a!, b!), (a, b) => tf.sub(a!, b!)),
  c('sub [2,1]-[1,3]', [U([2, 1]), U([1, 3])], (a, b) => sub(a!, b!), (a, b) => tf.sub(a!, b!)),
  c('sub(1, x)', [U([2, 3])], (a) => sub(1, a!), (a) => tf.sub(1, a!)),
  c('mul [2,3]*[2,3]', [U([2, 3]), U([2, 3])], (a, b) => mul(a!, b!), (a, b) => tf.mul(a!, b!)),
  c('mul [2,3]*[3]', [U([2, 3]), U([3])], (a, b) => mul(a!, b!), (a, b) => tf.mul(a!, b!)),
  c('mul [2,1]*[1,3]', [U([2, 1]), U([1, 3])], (a, b) => mul(a!, b!), (a, b) => tf.mul(a!, b!)),
  c('mul [3]*[2,3] (smaller first)', [U([3]), U([2, 3])], (a, b) => mul(a!, b!), (a, b) => tf.mul(a!, b!)),
  c('mul(0.5, x)', [U([2, 3])], (a) => mul(0.5, a!), (a) => tf.mul(0.5, a!)),
  c('mul(x, x) (same input twice)', [U([2, 3])], (a) => mul(a!, a!), (a) => tf.mul(a!, a!)),
  c('div [2,3]/[2,3]', [U([2, 3]), NZ([2, 3])], (a, b) => div(a!, b!), (a, b) => tf.div(a!, b!)),
  c('div [2,3]/[3]', [U([2, 3]), NZ([3])], (a, b) => div(a!, b!), (a, b) => tf.div(a!, b!)),
  c('div [2,1]/[1,3]', [U([2, 1]), NZ([1, 3])], (a, b) => div(a!, b!), (a, b) => tf.div(a!, b!)),
  c('div(1, x)', [NZ([2, 3])], (a) => div(1, a!), (a) => tf.div(1, a!)),
  c('div(x, 4)', [U([2, 3])], (a) => div(a!, 4), (a) => tf.div(a!, 4)),
  c('pow(a, b) w.r.t. base and exponent', [P([2, 3]), U([2, 3], -1.5, 2.5)], (a, b) => pow(a!, b!), (a, b) => tf.pow(a!, b!)),
  c('pow [2,3]^[3] (broadcast exponent)', [P([2, 3]), U([3], -1, 2)], (a, b) => pow(a!, b!), (a, b) => tf.pow(a!, b!)),
  c('pow(x, 3)', [U([2, 3])], (a) => pow(a!, 3), (a) => tf.pow(a!, 3)),
  c('pow(2, x)', [U([2, 3])], (a) => pow(2, a!), (a) => tf.pow(2, a!)),
  c('maximum [2,3],[2,3]', maxPair, (a, b) => maximum(a!, b!), (a, b) => tf.maximum(a!, b!)),
  // TF.js's Maximum / Minimum gradients do not unbroadcast: the references broadcast b explicitly.
  c('maximum [2,3],[3]', maxBroadcast, (a, b) => maximum(a!, b!), (a, b) => tf.maximum(a!, tf.broadcastTo(b!, [2, 3]))),
  c('minimum [2,3],[2,3]', minPair, (a, b) => minimum(a!, b!), (a, b) => tf.minimum(a!, b!)),
  c('minimum [3,2],[2]', minBroadcast, (a, b) => minimum(a!, b!), (a, b) => tf.minimum(a!, tf.broadcastTo(b!, [3, 2]))),

  // Unary.
  c('neg', [U([2, 3])], (a) => neg(a!), (a) => tf.neg(a!)),
  c('square', [U([2, 3])], (a) => square(a!), (a) => tf.square(a!)),
  c('sqrt', [P([2, 3])], (a) => sqrt(a!), (a) => tf.sqrt(a!)),
  c('exp', [U([2, 3])], (a) => exp(a!), (a) => tf.exp(a!)),
  c('log', [P([2, 3])], (a) => log(a!), (a) => tf.log(a!)),
  c('abs', [NZ([2, 3])], (a) => abs(a!), (a) => tf.abs(a!)),
  c('relu', [NZ([2, 3])], (a) => relu(a!), (a) => tf.relu(a!)),
  c('sigmoid', [U([2, 3], -2, 2)], (a) => sigmoid(a!), (a) => tf.sigmoid(a!)),
  c('tanh', [U([2, 3], -2, 2)], (a) => tanh(a!), (a) => tf.tanh(a!)),
  c('sin', [U([2, 3], -3, 3)], (a) => sin(a!), (a) => tf.sin(a!)),
  c('cos', [U([2, 3], -3, 3)], (a) => cos(a!), (a) => tf.cos(a!)),
  c('identity', [U([2, 3])], (a) => identity(a!), (a) => tf.clone(a!)),
  c('cast float32→float32 (no-op)', [U([2, 3])], (a) => cast(a!, 'float32'), (a) => tf.cast(a!, 'float32')),

  // Matrix products.
  ...matMulCases(),

  // Shape ops.
  c('transpose perm [2,0,1]', [U([2, 3, 4])], (a) => transpose(a!, [2, 0, 1]), (a) => tf.transpose(a!, [2, 0, 1])),
  c('transpose default (reverse)', [U([2, 3])], (a) => transpose(a!), (a) => tf.transpose(a!)),
  c('reshape [2,3,2]→[3,4]', [U([2, 3, 2])], (a) => reshape(a!, [3, 4]), (a) => tf.reshape(a!, [3, 4])),
  c('reshape [2,6]→[-1,3]', [U([2, 6])], (a) => reshape(a!, [-1, 3]), (a) => tf.reshape(a!, [-1, 3])),
  c('reshapeLike [6] like [2,3]', [U([6])], (a) => reshapeLike(a!, constant([[0, 0, 0], [0, 0, 0]])), (a) => tf.reshape(a!, [2, 3])),
  c('expandDims axis 1', [U([2, 3])], (a) => expandDims(a!, 1), (a) => tf.expandDims(a!, 1)),
  c('expandDims axis -1', [U([2, 3])], (a) => expandDims(a!, -1), (a) => tf.expandDims(a!, -1)),
  c('squeeze axis 1', [U([2, 1, 3])], (a) => squeeze(a!, 1), (a) => tf.squeeze(a!, [1])),
  c('squeeze all size-1 axes', [U([1, 3, 1])], (a) => squeeze(a!), (a) => tf.squeeze(a!)),
  c('concat axis 0', [U([2, 3]), U([1, 3])], (a, b) => concat([a!, b!], 0), (a, b) => tf.concat([a!, b!], 0)),
  c('concat axis 1 (three inputs)', [U([2, 2]), U([2, 3]), U([2, 1])], (a, b, d) => concat([a!, b!, d!], 1), (a, b, d) => tf.concat([a!, b!, d!], 1)),
  c('concat axis -1 rank 3', [U([2, 2, 1]), U([2, 2, 2])], (a, b) => concat([a!, b!], -1), (a, b) => tf.concat([a!, b!], -1)),
  c('slice [3,4] begin [1,1] size [2,-1]', [U([3, 4])], (a) => slice(a!, [1, 1], [2, -1]), (a) => tf.slice(a!, [1, 1], [2, -1])),
  c('slice rank 3 begin [0,1,1] size [2,1,2]', [U([2, 3, 4])], (a) => slice(a!, [0, 1, 1], [2, 1, 2]), (a) => tf.slice(a!, [0, 1, 1], [2, 1, 2])),
  c('pad [[1,0],[2,1]] value 0.5', [U([2, 3])], (a) => pad(a!, [[1, 0], [2, 1]], 0.5), (a) => tf.pad(a!, [[1, 0], [2, 1]], 0.5)),
  c('broadcastLike [3] like [2,3]', [U([3])], (a) => broadcastLike(a!, constant([[0, 0, 0], [0, 0, 0]])), (a) => tf.broadcastTo(a!, [2, 3])),
  c('sumToShape [2,3] to [1,3]', [U([2, 3])], (a) => sumToShape(a!, constant([[0, 0, 0]])), (a) => tf.sum(a!, 0, true)),

  // Gathers (repeated indices: the gradient must accumulate).
  c('gather axis 0, repeated constant indices', [U([4, 3])],
    (a) => gather(a!, constant([0, 2, 0, 3, 2, 0], { dtype: 'int32' }), 0), (a) => tf.gather(a!, tf.tensor1d([0, 2, 0, 3, 2, 0], 'int32'), 0)),
  c('gather axis 1, repeated indices from an int32 placeholder', [U([2, 4]), I([5], [1, 1, 3, 0, 1])],
    (a, i) => gather(a!, i!, 1), (a, i) => tf.gather(a!, i!, 1)),
  c('gather axis 0, rank-2 indices', [U([3, 2]), I([2, 3], [0, 2, 2, 1, 2, 0])], (a, i) => gather(a!, i!, 0), (a, i) => tf.gather(a!, i!, 0)),
  c('gather axis 1 of rank 3, rank-2 indices', [U([2, 3, 2]), I([2, 2], [2, 0, 2, 2])], (a, i) => gather(a!, i!, 1), (a, i) => tf.gather(a!, i!, 1)),
  c('unsortedSegmentSum', [U([5, 2]), I([5], [0, 2, 0, 1, 2])],
    (a, i) => unsortedSegmentSum(a!, i!, 3), (a, i) => tf.unsortedSegmentSum(a!, i! as tf.Tensor1D, 3)),

  // Reductions.
  c('sum all', [U([2, 3])], (a) => sum(a!), (a) => tf.sum(a!)),
  c('sum axis 1', [U([2, 3])], (a) => sum(a!, 1), (a) => tf.sum(a!, 1)),
  c('sum axis 0 keepDims', [U([2, 3])], (a) => sum(a!, 0, true), (a) => tf.sum(a!, 0, true)),
  c('sum axes [0,2] rank 3', [U([2, 3, 2])], (a) => sum(a!, [0, 2]), (a) => tf.sum(a!, [0, 2])),
  c('sum axes [0,2] keepDims rank 3', [U([2, 3, 2])], (a) => sum(a!, [0, 2], true), (a) => tf.sum(a!, [0, 2], true)),
  c('sum all keepDims', [U([2, 3])], (a) => sum(a!, undefined, true), (a) => tf.sum(a!, undefined, true)),
  c('mean all', [U([2, 3])], (a) => mean(a!), (a) => tf.mean(a!)),
  c('mean axis 1', [U([2, 3])], (a) => mean(a!, 1), (a) => tf.mean(a!, 1)),
  c('mean axis -1 keepDims', [U([2, 3])], (a) => mean(a!, -1, true), (a) => tf.mean(a!, -1, true)),
  c('mean axes [0,2] rank 3', [U([2, 3, 2])], (a) => mean(a!, [0, 2]), (a) => tf.mean(a!, [0, 2])),
  c('max all', [D([2, 3])], (a) => max(a!), (a) => tf.max(a!)),
  c('max axis 1', [D([2, 3])], (a) => max(a!, 1), (a) => tf.max(a!, 1)),
  c('max axis 0 keepDims', [D([3, 2])], (a) => max(a!, 0, true), (a) => tf.max(a!, 0, true)),
  c('max axes [0,2] keepDims rank 3', [D([2, 3, 2])], (a) => max(a!, [0, 2], true), (a) => tf.max(a!, [0, 2], true)),
  c('max axes [0,2] rank 3', [D([2, 3, 2])], (a) => max(a!, [0, 2]), (a) => tf.max(a!, [0, 2])),
  c('min all', [D([2, 3])], (a) => min(a!), (a) => tf.min(a!)),
  c('min axis 0', [D([2, 3])], (a) => min(a!, 0), (a) => tf.min(a!, 0)),
  c('min axis 1 keepDims', [D([3, 2])], (a) => min(a!, 1, true), (a) => tf.min(a!, 1, true)),
  c('min all keepDims rank 3', [D([2, 2, 2])], (a) => min(a!, undefined, true), (a) => tf.min(a!, undefined, true)),

  // Neural-network ops.
  c('softmax [3,4]', [U([3, 4], -2, 2)], (a) => softmax(a!), (a) => tf.softmax(a!)),
  c('softmax rank 3', [U([2, 2, 3], -2, 2)], (a) => softmax(a!), (a) => tf.softmax(a!)),
  c('logSoftmax [3,4]', [U([3, 4], -2, 2)], (a) => logSoftmax(a!), (a) => tf.logSoftmax(a!)),
  c('softmaxCrossEntropy w.r.t. logits, one-hot labels', [U([3, 4], -2, 2)],
    (a) => softmaxCrossEntropy(a!, constant(oneHot34)),
    (a) => tf.losses.softmaxCrossEntropy(tf.tensor2d(oneHot34), a!, undefined, 0, tf.Reduction.NONE)),
  c('softmaxCrossEntropy w.r.t. logits, soft labels', [U([3, 4], -2, 2)],
    (a) => softmaxCrossEntropy(a!, constant(soft34)),
    (a) => tf.losses.softmaxCrossEntropy(tf.tensor2d(soft34), a!, undefined, 0, tf.Reduction.NONE)),
  // TF.js's fused loss gives labels a gradient of its own convention; compare the labels gradient with TF.js
  // autodiff of the defining formula −Σ labels · logSoftmax(logits). The closed-form logits gradient
  // softmax − labels assumes each row of labels sums to 1 (as in TF), so the labels are points of the simplex.
  c('softmaxCrossEntropy w.r.t. logits and labels', [U([3, 4], -2, 2), S([3, 4])],
    (a, l) => softmaxCrossEntropy(a!, l!), (a, l) => tf.neg(tf.sum(tf.mul(l!, tf.logSoftmax(a!)), -1))),
  c('sparseSoftmaxCrossEntropy w.r.t. logits', [U([3, 4], -2, 2), I([3], [2, 0, 3])],
    (a, l) => sparseSoftmaxCrossEntropy(a!, l!),
    (a, l) => tf.losses.softmaxCrossEntropy(tf.cast(tf.oneHot(l! as tf.Tensor1D, 4), 'float32'), a!, undefined, 0, tf.Reduction.NONE)),
  c('meanSquaredError w.r.t. both', [U([2, 3]), U([2, 3])], (a, b) => meanSquaredError(a!, b!), (a, b) => tf.losses.meanSquaredError(b!, a!)),

  // Selection and sums.
  c('where w.r.t. a and b', [U([2, 3]), U([2, 3])],
    (a, b) => where(constant(boolCond, { dtype: 'bool' }), a!, b!), (a, b) => tf.where(tf.tensor2d(boolCond, [2, 3], 'bool'), a!, b!)),
  c('where, b [3] broadcast', [U([2, 3]), U([3])],
    (a, b) => where(constant(boolCond, { dtype: 'bool' }), a!, b!), (a, b) => tf.where(tf.tensor2d(boolCond, [2, 3], 'bool'), a!, b!)),
  c('where, cond from a bool placeholder', [{ shape: [2, 3], dtype: 'bool', data: [1, 1, 0, 0, 1, 0] }, U([2, 3]), U([2, 3])],
    (k, a, b) => where(k!, a!, b!), (k, a, b) => tf.where(k!, a!, b!)),
  c('addN of three', [U([2, 3]), U([2, 3]), U([2, 3])], (a, b, d) => addN([a!, b!, d!]), (a, b, d) => tf.addN([a!, b!, d!])),
  c('cond, taken then-branch', [U([2, 3])], (a) => cond(constant(true), () => mul(a!, a!), () => neg(a!)), (a) => tf.mul(a!, a!)),
  c('cond, taken else-branch', [U([2, 3])], (a) => cond(constant(false), () => mul(a!, a!), () => neg(a!)), (a) => tf.neg(a!)),

  // Unknown (null) batch dimension: gradients unbroadcast and count elements from run-time shapes.
  c('add(matMul(x [null,3], W), b): bias gradient summed over the batch', [withStatic(U([4, 3]), [null, 3]), U([3, 2]), U([2])],
    (x, w, b) => add(matMul(x!, w!), b!), (x, w, b) => tf.add(tf.matMul(x!, w!), b!)),
  c('mul(x [null,3], v [3])', [withStatic(U([4, 3]), [null, 3]), U([3])], (x, v) => mul(x!, v!), (x, v) => tf.mul(x!, v!)),
  c('mean(x [null,3], axis 0)', [withStatic(U([4, 3]), [null, 3])], (x) => mean(x!, 0), (x) => tf.mean(x!, 0)),
  c('mean(x [null,3]) all', [withStatic(U([4, 3]), [null, 3])], (x) => mean(x!), (x) => tf.mean(x!)),
  c('softmax of [null,4]', [withStatic(U([3, 4], -2, 2), [null, 4])], (x) => softmax(x!), (x) => tf.softmax(x!)),
  c('reshape [null,3]→[-1]', [withStatic(U([4, 3]), [null, 3])], (x) => reshape(x!, [-1]), (x) => tf.reshape(x!, [-1])),
  c('sparseSoftmaxCrossEntropy [null,4] with labels [null]', [withStatic(U([3, 4], -2, 2), [null, 4]), I([3], [1, 3, 0], [null])],
    (a, l) => sparseSoftmaxCrossEntropy(a!, l!),
    (a, l) => tf.losses.softmaxCrossEntropy(tf.cast(tf.oneHot(l! as tf.Tensor1D, 4), 'float32'), a!, undefined, 0, tf.Reduction.NONE)),

  // --- activations and scans (issue 12) ---
  c('erf', [U([2, 3], -2, 2)], (a) => erf(a!), (a) => tf.erf(a!)),
  c('softplus', [U([2, 3], -4, 4)], (a) => softplus(a!), (a) => tf.softplus(a!)),
  c('gelu (exact)', [U([2, 3], -3, 3)], (a) => gelu(a!), (a) => tf.mul(tf.mul(0.5, a!), tf.add(1, tf.erf(tf.mul(a!, Math.SQRT1_2))))),
  c("gelu approximate 'tanh'", [U([2, 3], -3, 3)], (a) => gelu(a!, { approximate: 'tanh' }),
    (a) => tf.mul(tf.mul(0.5, a!), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(a!, tf.mul(0.044715, tf.pow(a!, 3)))))))),
  c('silu', [U([2, 3], -4, 4)], (a) => silu(a!), (a) => tf.mul(a!, tf.sigmoid(a!))),
  c('logSumExp axis 1', [U([3, 4], -2, 2)], (a) => logSumExp(a!, 1), (a) => tf.logSumExp(a!, 1)),
  c('logSumExp axes [0,2] keepDims rank 3', [U([2, 3, 2], -2, 2)], (a) => logSumExp(a!, [0, 2], { keepDims: true }), (a) => tf.logSumExp(a!, [0, 2], true)),
  c('logSumExp all, [null,4]', [withStatic(U([3, 4], -2, 2), [null, 4])], (a) => logSumExp(a!), (a) => tf.logSumExp(a!)),
  c('cumsum axis 1', [U([2, 4])], (a) => cumsum(a!, 1), (a) => tf.cumsum(a!, 1)),
  // TF.js's Cumsum gradient gets the shape wrong along an axis that is not the last (and refuses axis −1): the
  // references cumsum along the last axis between transposes.
  c('cumsum axis 0 exclusive', [U([3, 2])], (a) => cumsum(a!, 0, { exclusive: true }), (a) => tf.transpose(tf.cumsum(tf.transpose(a!), 1, true))),
  c('cumsum axis -1 reverse', [U([2, 3])], (a) => cumsum(a!, -1, { reverse: true }), (a) => tf.cumsum(a!, 1, false, true)),
  c('cumsum axis 1 exclusive reverse rank 3', [U([2, 3, 2])], (a) => cumsum(a!, 1, { exclusive: true, reverse: true }),
    (a) => tf.transpose(tf.cumsum(tf.transpose(a!, [0, 2, 1]), 2, true, true), [0, 2, 1])),
  // Values at least 0.05 from the bounds (finite differences step 0.01).
  c('clipByValue(x, −0.5, 0.5)', [{ shape: [2, 3], dtype: 'float32', data: [-1.2, -0.7, -0.3, 0.1, 0.45, 0.9] }], (a) => clipByValue(a!, -0.5, 0.5), (a) => tf.clipByValue(a!, -0.5, 0.5)),
  c('clipByValue w.r.t. x, lo and hi tensors', [{ shape: [2, 3], dtype: 'float32', data: [-1.2, -0.7, -0.3, 0.1, 0.45, 0.9] }, { shape: [3], dtype: 'float32', data: [-1, -0.2, 0] }, { shape: [3], dtype: 'float32', data: [-0.5, 0.8, 0.6] }],
    (a, lo, hi) => clipByValue(a!, lo!, hi!), (a, lo, hi) => tf.minimum(tf.maximum(a!, tf.broadcastTo(lo!, [2, 3])), tf.broadcastTo(hi!, [2, 3]))),
  // --- pooling (issue 12) ---
  // Distinct inputs (D): no ties, and no finite difference changes a window's maximum. TF.js's avgPool gradient
  // divides by the whole window where 'same' padding cuts it, so its avgPool rows have uncut windows only
  // (test/pool.test.ts checks cut windows against a JS reference and finite differences).
  // maxPool's reference is the max over the windows' strided views: TF.js wasm's MaxPoolGrad is wrong for windows
  // of non-positive values (docs/semantics.md).
  c('maxPool 2×2 valid [2,4,4,3]', [D([2, 4, 4, 3])], (x) => maxPool(x!, { size: 2 }), (x) => tfMaxPool(x!, [2, 2], [2, 2], 'valid')),
  c('maxPool 3×3 stride 2 same [1,5,5,2]', [D([1, 5, 5, 2])], (x) => maxPool(x!, { size: 3, strides: 2, padding: 'same' }), (x) => tfMaxPool(x!, [3, 3], [2, 2], 'same')),
  c('maxPool [2,3] stride [1,2] same, batch [null]', [withStatic(D([2, 4, 5, 1]), [null, 4, 5, 1])], (x) => maxPool(x!, { size: [2, 3], strides: [1, 2], padding: 'same' }),
    (x) => tfMaxPool(x!, [2, 3], [1, 2], 'same')),
  c('avgPool 2×2 valid [2,4,6,2]', [U([2, 4, 6, 2])], (x) => avgPool(x!, { size: 2 }), (x) => tf.avgPool(x! as tf.Tensor4D, 2, 2, 'valid')),
  c('avgPool 3×3 stride 1 valid [1,5,4,2]', [U([1, 5, 4, 2])], (x) => avgPool(x!, { size: 3, strides: 1 }), (x) => tf.avgPool(x! as tf.Tensor4D, 3, 1, 'valid')),
  c('avgPool 2×2 stride 2 same, uncut [1,4,4,3]', [U([1, 4, 4, 3])], (x) => avgPool(x!, { size: 2, padding: 'same' }), (x) => tf.avgPool(x! as tf.Tensor4D, 2, 2, 'same')),
  c('globalAveragePool [2,3,4,2]', [U([2, 3, 4, 2])], (x) => globalAveragePool(x!), (x) => tf.mean(x!, [1, 2])),
  // --- convolutions (issue 12) ---
  // (Dilations, more shapes and second derivatives: test/conv.test.ts; TF.js's gradients take no dilations.)
  c('conv2d same, strides 2 [2,5,4,2]⊛[3,2,2,3]', [U([2, 5, 4, 2]), U([3, 2, 2, 3])],
    (x, f) => conv2d(x!, f!, { strides: 2, padding: 'same' }), (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'same')),
  c('conv2d valid, strides [1,2] [1,5,6,2]⊛[2,3,2,2]', [U([1, 5, 6, 2]), U([2, 3, 2, 2])],
    (x, f) => conv2d(x!, f!, { strides: [1, 2] }), (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, [1, 2], 'valid')),
  c('conv2d same of [null,4,4,2]', [withStatic(U([2, 4, 4, 2]), [null, 4, 4, 2]), U([2, 2, 2, 2])],
    (x, f) => conv2d(x!, f!, { padding: 'same' }), (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same')),
  c('depthwiseConv2d same, multiplier 2 [2,4,4,2]⊛[2,2,2,2]', [U([2, 4, 4, 2]), U([2, 2, 2, 2])],
    (x, f) => depthwiseConv2d(x!, f!, { padding: 'same' }), (x, f) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same')),
  c('depthwiseConv2d valid, strides 2 [1,5,5,3]⊛[3,3,3,1]', [U([1, 5, 5, 3]), U([3, 3, 3, 1])],
    (x, f) => depthwiseConv2d(x!, f!, { strides: 2 }), (x, f) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'valid')),
  c('conv1d same, stride 2 [2,7,2]⊛[3,2,2]', [U([2, 7, 2]), U([3, 2, 2])],
    (x, f) => conv1d(x!, f!, { stride: 2, padding: 'same' }), (x, f) => tf.conv1d(x as tf.Tensor3D, f as tf.Tensor3D, 2, 'same')),
  c('conv2dBackpropInput same, strides 2 (w.r.t. dy and the filter)', [U([2, 3, 3, 3]), U([3, 3, 2, 3])],
    (dy, f) => conv2dBackpropInput(dy!, f!, [5, 5], { strides: 2, padding: 'same' }),
    (dy, f) => tf.conv2dTranspose(dy as tf.Tensor4D, f as tf.Tensor4D, [2, 5, 5, 2], 2, 'same')),
  // TF.js has no public filter backprop: the reference is the same gradient as a convolution of x with dy.
  c('conv2dBackpropFilter same (w.r.t. x and dy)', [U([2, 4, 5, 2]), U([2, 4, 5, 3])],
    (x, dy) => conv2dBackpropFilter(x!, dy!, [3, 3], { padding: 'same' }),
    (x, dy) => tf.transpose(tf.slice(tf.conv2d(tf.pad(tf.transpose(x!, [3, 1, 2, 0]), [[0, 0], [1, 1], [1, 1], [0, 0]]) as tf.Tensor4D,
      tf.transpose(dy!, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid'), [0, 0, 0, 0], [-1, 3, 3, -1]), [1, 2, 0, 3])),
];

// --- pooling (issue 12) ---
/** maxPool in TF.js as the max over each window offset's strided view (gathers) of x, padded with −Inf for 'same'. */
function tfMaxPool(x: tf.Tensor, size: [number, number], strides: [number, number], padding: 'same' | 'valid'): tf.Tensor {
  const [h, w] = [x.shape[1]!, x.shape[2]!];
  const ah = poolAxis(h, size[0], strides[0], padding), aw = poolAxis(w, size[1], strides[1], padding);
  const xp = tf.pad(x, [[0, 0], [ah.before, ah.after], [aw.before, aw.after], [0, 0]], -Infinity);
  const at = (o: number, s: number, k: number) => tf.tensor1d(Array.from({ length: k }, (_, q) => o + s * q), 'int32');
  const views: tf.Tensor[] = [];
  for (let i = 0; i < size[0]; i++) {
    const rows = tf.gather(xp, at(i, strides[0], ah.out), 1);
    for (let j = 0; j < size[1]; j++) views.push(tf.gather(rows, at(j, strides[1], aw.out), 2));
  }
  return tf.max(tf.stack(views), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// The checker.

const typed = (dtype: InDtype, data: readonly number[]) =>
  dtype === 'float32' ? Float32Array.from(data) : dtype === 'int32' ? Int32Array.from(data) : Uint8Array.from(data);
const feedOf = (inp: Input, data: readonly number[] = inp.data) => ({ shape: inp.shape, data: typed(inp.dtype, data) });

/** A fixed objective weight: |w| in [0.5, 1.5), either sign, seeded by the case name. */
function weightsFor(name: string, n: number): number[] {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  const r = seeded(h);
  return Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * (0.5 + r()));
}

/**
 * TF.js's forward value of ref(...xs) and autodiff of sum(ref(...xs) · w) on the current TF.js backend, as plain
 * arrays (one gradient per float input). TF.js tensors are made and freed inside one tidy.
 */
function tfReference(cs: Case, w: number[], wShape: number[]): { forward: number[]; grads: number[][] } {
  const before = tf.memory().numTensors;
  const result = tf.tidy(() => {
    const all = cs.inputs.map((inp) => tf.tensor(typed(inp.dtype, inp.data), inp.shape, inp.dtype));
    const diffIdx = cs.inputs.flatMap((inp, i) => (inp.dtype === 'float32' ? [i] : []));
    const wt = tf.tensor(w, wShape, 'float32');
    const f = (...xs: tf.Tensor[]) => {
      const args = [...all];
      diffIdx.forEach((i, k) => (args[i] = xs[k]!));
      return tf.sum(tf.mul(cs.ref(...args), wt));
    };
    return [cs.ref(...all), ...tf.grads(f)(diffIdx.map((i) => all[i]!))];
  });
  const [forward, ...grads] = result.map((g) => Array.from(g.dataSync()));
  tf.dispose(result);
  expect(tf.memory().numTensors, 'TF.js reference leaked tensors').toBe(before);
  return { forward: forward!, grads };
}

/** The TF.js reference on `backend`, or on cpu when `backend` lacks a kernel the TF.js gradient needs. */
async function tfReferenceOn(backend: string, cs: Case, w: number[], wShape: number[]): Promise<ReturnType<typeof tfReference>> {
  try {
    return tfReference(cs, w, wShape);
  } catch (e) {
    // tfjs-backend-wasm registers no UnsortedSegmentSum kernel: TF.js's gather gradient and its unsortedSegmentSum
    // need it, so those references run on cpu (symflow itself still runs on `backend`, with its ScatterNd lowering).
    if (!/not registered for backend/.test(String(e)) || backend === 'cpu') throw e;
    await tf.setBackend('cpu');
    try {
      return tfReference(cs, w, wShape);
    } finally {
      await tf.setBackend(backend);
    }
  }
}

async function checkCase(s: Session, backend: string, cs: Case): Promise<void> {
  const phs = cs.inputs.map((inp, i) => placeholder(inp.static ?? inp.shape, { dtype: inp.dtype, name: `in${i}` }));
  const feeds = (override?: { i: number; data: number[] }) =>
    cs.inputs.map((inp, i) => [phs[i]!, feedOf(inp, override?.i === i ? override.data : inp.data)] as const);
  const out = cs.sym(...phs);
  expect(out.dtype).toBe('float32');
  const outVal = await s.run(out, feeds());
  const w = weightsFor(cs.name, outVal.data.length);
  const y = sum(mul(out, constant({ shape: outVal.shape, data: w })));
  const diffIdx = cs.inputs.flatMap((inp, i) => (inp.dtype === 'float32' ? [i] : []));
  const grads = gradients(y, diffIdx.map((i) => phs[i]!));
  const got: HostTensor[] = await s.run(grads, feeds());

  // Shapes and dtypes: each gradient is shaped like its (fed) input.
  got.forEach((g, k) => {
    expect(g.shape, `gradient ${k} shape`).toEqual(cs.inputs[diffIdx[k]!]!.shape);
    expect(g.dtype).toBe('float32');
  });

  // Against TF.js: the forward value (a wrong forward would make every gradient comparison moot), then autodiff.
  const ref = await tfReferenceOn(backend, cs, w, outVal.shape);
  expectClose(values(outVal), ref.forward, TF_RTOL, TF_ATOL);
  got.forEach((g, k) => expectClose(values(g), ref.grads[k]!, TF_RTOL, TF_ATOL));

  // Against central finite differences of y through the same session.
  for (const [k, i] of diffIdx.entries()) {
    const base = cs.inputs[i]!.data;
    const fd: number[] = [];
    for (let j = 0; j < base.length; j++) {
      const xp = Math.fround(base[j]! + H), xm = Math.fround(base[j]! - H);
      const plus = [...base], minus = [...base];
      plus[j] = xp;
      minus[j] = xm;
      const yp = (await s.run(y, feeds({ i, data: plus }))).data[0]!;
      const ym = (await s.run(y, feeds({ i, data: minus }))).data[0]!;
      fd.push((yp - ym) / (xp - xm));
    }
    expectClose(values(got[k]!), fd, FD_RTOL, FD_ATOL);
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe.each(BACKENDS)('gradients on %s', (sessionBackend) => {
  // The TF.js reference runs on the same backend where TF.js has it; onnx is checked against TF.js on cpu.
  const backend = sessionBackend.startsWith('onnx') ? 'cpu' : sessionBackend;
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend: sessionBackend });
    expect(await tf.setBackend(backend)).toBe(true);
  });
  afterAll(() => s.dispose());

  it('runs TF.js and the session on the same backend', () => {
    expect(tf.getBackend()).toBe(backend);
    expect(s.backend).toBe(sessionBackend);
  });

  for (const cs of CASES) {
    it(cs.name, async () => {
      await checkCase(s, backend, cs);
    });
  }

  describe('higher order', () => {
    it('d²/dx² x³ = 6x (12 at x = 2)', async () => {
      const x = placeholder([]);
      const d1 = gradients(pow(x, 3), x);
      const d2 = gradients(d1, x);
      const [g1, g2] = await s.run([d1, d2], [[x, 2]]);
      expect(g1!.data[0]).toBeCloseTo(12, 4);
      expect(g2!.data[0]).toBeCloseTo(12, 4);
      const xv = placeholder([3]);
      const v2 = await s.run(gradients(gradients(pow(xv, 3), xv), xv), [[xv, [0.5, 1.5, 2]]]);
      expectClose(values(v2), [3, 9, 12], 1e-5, 1e-5);
    });

    const points = [-1.5, -0.3, 0.2, 0.9, 1.7];
    const second = {
      sigmoid: { f: sigmoid, d2: (v: number) => { const q = 1 / (1 + Math.exp(-v)); return q * (1 - q) * (1 - 2 * q); } },
      tanh: { f: tanh, d2: (v: number) => { const t = Math.tanh(v); return -2 * t * (1 - t * t); } },
      sin: { f: sin, d2: (v: number) => -Math.sin(v) },
      cos: { f: cos, d2: (v: number) => -Math.cos(v) },
      // --- activations and scans (issue 12) ---
      erf: { f: erf, d2: (v: number) => -2 * v * (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v) },
      softplus: { f: softplus, d2: (v: number) => { const q = 1 / (1 + Math.exp(-v)); return q * (1 - q); } },
      gelu: { f: (x: Tensor) => gelu(x), d2: (v: number) => (Math.exp(-v * v / 2) / Math.sqrt(2 * Math.PI)) * (2 - v * v) },
      silu: { f: silu, d2: (v: number) => { const q = 1 / (1 + Math.exp(-v)); return q * (1 - q) * (2 + v * (1 - 2 * q)); } },
    };
    it.each(Object.entries(second))('d²/dx² %s against finite differences of the first derivative', async (_name, { f, d2 }) => {
      const x = placeholder([points.length]);
      const g1 = gradients(f(x), x);
      const g2 = gradients(g1, x);
      const got = values(await s.run(g2, [[x, points]]));
      // Elementwise op: perturbing every element at once gives each element's own finite difference.
      const xp = points.map((p) => Math.fround(p + H)), xm = points.map((p) => Math.fround(p - H));
      const gp = values(await s.run(g1, [[x, xp]])), gm = values(await s.run(g1, [[x, xm]]));
      expectClose(got, gp.map((v, i) => (v - gm[i]!) / (xp[i]! - xm[i]!)), FD_RTOL, FD_ATOL);
      expectClose(got, points.map(d2), 1e-4, 1e-5);
    });
  });

  describe('graph structure', () => {
    it('unbroadcasts over run-time dims: [?,1]·[?,3], [1,3]·[?,3] and [?,?]·[3] against hand sums', async () => {
      const a = placeholder([null, 1]);
      const b = placeholder([null, 3]);
      const c = placeholder([1, 3]);
      const d = placeholder([null, null]);
      const e = placeholder([3]);
      const loss = add(add(sum(mul(a, b)), sum(mul(c, b))), sum(mul(d, e)));
      const [ga, gb, gc, gd, ge] = gradients(loss, [a, b, c, d, e]);
      const bs = [[1, 2, 3], [4, 5, 6]];
      const [va, vb, vc, vd, ve] = await s.run([ga!, gb!, gc!, gd!, ge!], [
        [a, [[0.5], [-1]]], [b, bs], [c, [[1, 0, -1]]], [d, [[1, 1, 1], [2, 2, 2]]], [e, [3, 2, 1]],
      ]);
      expect(va!.shape).toEqual([2, 1]);
      expect(values(va!)).toEqual([6, 15]);
      expect(values(vb!)).toEqual([1.5, 0.5, -0.5, 0, -1, -2]);
      expect(vc!.shape).toEqual([1, 3]);
      expect(values(vc!)).toEqual([5, 7, 9]);
      expect(values(vd!)).toEqual([3, 2, 1, 3, 2, 1]);
      expect(values(ve!)).toEqual([3, 3, 3]);
    });

    it('sums contributions over several paths: d/dx (x·x + 3x + x) = 2x + 4', async () => {
      const x = placeholder([4]);
      const y = add(add(mul(x, x), mul(3, x)), x);
      const xs = [-1.5, 0, 0.5, 2];
      const g = await s.run(gradients(y, x), [[x, xs]]);
      expectClose(values(g), xs.map((v) => 2 * v + 4));
    });

    it('stopGradient blocks its path: d/dx (x·x + stop(x·x)) = 2x', async () => {
      const x = placeholder([3]);
      const xs = [-1, 0.5, 3];
      const g = await s.run(gradients(add(mul(x, x), stopGradient(mul(x, x))), x), [[x, xs]]);
      expectClose(values(g), xs.map((v) => 2 * v));
    });

    it('gradients(stopGradient(x), x) is not connected: an error, or zeros on request', async () => {
      const x = placeholder([2, 2], { name: 'sx' });
      expect(() => gradients(stopGradient(x), x)).toThrow(SymflowError);
      expect(() => gradients(stopGradient(x), x)).toThrow(/not connected/);
      const g = await s.run(gradients(stopGradient(x), x, { unconnected: 'zero' }), [[x, [[1, 2], [3, 4]]]]);
      expect(g.shape).toEqual([2, 2]);
      expect(g.dtype).toBe('float32');
      expect(values(g)).toEqual([0, 0, 0, 0]);
    });

    it('an int32 input gets no gradient: an error, or int32 zeros on request', async () => {
      const xi = placeholder([3], { dtype: 'int32', name: 'xi' });
      const xf = placeholder([3], { name: 'xf' });
      const y = sum(mul(add(cast(xi, 'float32'), xf), constant([1, -2, 3])));
      expect(() => gradients(y, xi)).toThrow(SymflowError);
      expect(() => gradients(y, xi)).toThrow(/not connected.*float32/);
      expect(() => gradients(y, [xf, xi])).toThrow(/xs\[1\]/);
      const [gf, gi] = await s.run(gradients(y, [xf, xi], { unconnected: 'zero' }), [[xi, Int32Array.from([1, 2, 3])], [xf, [0.5, 0.5, 0.5]]]);
      expect(values(gf!)).toEqual([1, -2, 3]);
      expect(gi!.dtype).toBe('int32');
      expect(gi!.shape).toEqual([3]);
      expect(values(gi!)).toEqual([0, 0, 0]);
    });
  });
});
