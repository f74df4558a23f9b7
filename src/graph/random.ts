/**
 * Stateless, counter-based randomness, and the learning phase.
 *
 * A random node draws its values from a hash of (key, element index), where the key is made of its seed and the
 * session's step counter — with an explicit `seed`, the seed and the step alone (so the same graph built again
 * draws the same values); without, the session's seed, the node's own salt (a hash of its name) and the step. The
 * step counter moves once per `TrainStep.step`, so every run of ONE step draws the same values: Heun's two
 * gradient evaluations, all stages of a Runge–Kutta step (a rejected and retried adaptive step included) and both
 * runs of SAM see the same dropout mask, and integrate one function. The values are drawn on the host by this
 * module's code, the same for every backend, so they are bit-identical on cpu, wasm and onnx, across processes, and
 * after a checkpoint restore (checkpoints carry the counter).
 *
 * The hash is Chris Wellons' `lowbias32` integer hash of i·k0 + k1 for element i and the key's two words (k0 odd)
 * (JAX uses threefry; this is far cheaper and passes the statistics tests in test/random.test.ts). It is not a
 * cryptographic generator.
 */
import { asTensor, type TensorLike } from './convert.js';
import { cond } from './cond.js';
import { SymflowError } from './errors.js';
import { maskSimd } from './maskSimd.js';
import { less } from './ops/compare.js';
import { mul } from './ops/binary.js';
import { defineOp, makeNode } from './registry.js';
import { uniqueName } from './names.js';
import { BUILD_SHAPES } from './shapeRule.js';
import { type Dim, isTensor, type Shape, shapeString, Tensor } from './tensor.js';

/** The attributes of a random node: its distribution and its parameters, its key parts and static shape. */
interface RandomAttrs {
  dist: string;
  seed: number;
  salt: number;
  a: number;
  b: number;
  shape: Shape;
  [key: string]: string | number | Shape;
}

const DISTRIBUTIONS = new Set(['uniform', 'normal', 'mask']);

/**
 * A random source: float32 values of `shape` (or, with one input, of that input's run-time shape — only its shape
 * is read). `dist` is 'uniform' on [a, b), 'normal' with mean a and standard deviation b, or 'mask': b with
 * probability a, else 0 (dropout's scaled keep mask, one source instead of a compare, a cast and a product).
 * `seed` is −1 for none.
 * The session binds its value before each run, like a feed.
 */
export const randomOp = defineOp({
  name: 'random',
  attrs: { dist: 'string', seed: 'int', salt: 'int', a: 'number', b: 'number', shape: 'shape' },
  infer: (inputs, attrs: RandomAttrs) => {
    if (!DISTRIBUTIONS.has(attrs.dist)) throw new SymflowError('random', `dist must be 'uniform', 'normal' or 'mask', got ${JSON.stringify(attrs.dist)}`);
    if (inputs.length > 1) throw new SymflowError('random', `takes at most one input (a tensor whose shape it has), got ${inputs.length}`);
    const like = inputs[0];
    if (like !== undefined && (like.rank !== attrs.shape.length || !like.shape.every((d, i) => attrs.shape[i] === null || attrs.shape[i] === d))) {
      throw new SymflowError('random', `shape ${shapeString(attrs.shape)} does not match its input's ${shapeString(like.shape)}`);
    }
    return { shape: like === undefined ? attrs.shape : like.shape, dtype: 'float32' };
  },
});

/**
 * The learning phase (Keras' `K.learning_phase()`): a bool scalar, true in the runs of `TrainStep.step`, false in
 * `session.run`, validation and other session functions unless they ask for `{training: true}`. Bound when a
 * function is compiled, so what depends on it is folded away.
 */
export const learningPhaseOp = defineOp({
  name: 'learningPhase',
  infer: () => ({ shape: [], dtype: 'bool' }),
});

/** The learning phase tensor: true while training. ```ts const y = cond(learningPhase(), () => noisy(x), () => x); ``` */
export function learningPhase(): Tensor {
  return makeNode(learningPhaseOp, [], {});
}

/** Options of the random ops (`randomUniform`, `randomNormal`, `bernoulli`, `dropout`). */
export interface RandomOptions {
  /**
   * An explicit seed (an integer): the values then depend on it and the step counter only, so the same graph built
   * again draws the same values. Default: the session's seed and the node's name.
   */
  seed?: number;
  /** The node's name (in the current name scope; without a seed, the draws depend on it). */
  name?: string;
}

/** FNV-1a of a string, as a non-negative int32: a node's salt, from its (deterministic) name. */
function saltOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x7fffffff;
}

function checkSeed(who: string, seed: unknown): number {
  if (seed === undefined) return -1;
  if (!Number.isSafeInteger(seed) || (seed as number) < 0 || (seed as number) > 0x7fffffff) {
    throw new SymflowError(who, `seed must be an integer from 0 to 2147483647, got ${String(seed)}`);
  }
  return seed as number;
}

/** A static shape, or a tensor whose run-time shape the values take. */
export type ShapeOrLike = readonly Dim[] | Tensor;

function randomNode(who: string, shapeOrLike: ShapeOrLike, dist: string, a: number, b: number, opts: RandomOptions): Tensor {
  const seed = checkSeed(who, opts.seed);
  for (const [k, v] of [['a', a], ['b', b]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SymflowError(who, `${k === 'a' ? (dist === 'normal' ? 'mean' : 'min') : dist === 'normal' ? 'stddev' : 'max'} must be a finite number, got ${String(v)}`);
  }
  if (dist === 'mask' && !(a > 0 && a <= 1)) throw new SymflowError(who, `keep probability must be in (0, 1], got ${a}`);
  if (dist === 'uniform' && !(a < b)) throw new SymflowError(who, `min must be below max, got [${a}, ${b})`);
  if (dist === 'normal' && !(b >= 0)) throw new SymflowError(who, `stddev must be ≥ 0, got ${b}`);
  let inputs: Tensor[] = [];
  let shape: Shape;
  if (isTensor(shapeOrLike)) {
    inputs = [shapeOrLike];
    shape = shapeOrLike.shape;
  } else {
    if (!Array.isArray(shapeOrLike) || !shapeOrLike.every((d) => d === null || (Number.isSafeInteger(d) && d >= 0))) {
      throw new SymflowError(who, `shape must be a list of sizes (or null for one the run decides), or a tensor to take it from, got ${JSON.stringify(shapeOrLike)}`);
    }
    if (shapeOrLike.includes(null)) throw new SymflowError(who, `shape ${shapeString(shapeOrLike)} has unknown dimensions; pass a tensor whose run-time shape it should take`);
    shape = [...shapeOrLike];
  }
  // The salt is the hash of the node's name (names are deterministic inside graph(…)), so the node is named first.
  const name = uniqueName(opts.name ?? who);
  const attrs = { dist, seed, salt: saltOf(name), a, b, shape };
  const { shape: out, dtype } = randomOp.infer(inputs, attrs, BUILD_SHAPES);
  return Object.freeze(new Tensor({ op: randomOp.name, inputs, attrs, shape: out, dtype, name }));
}

/**
 * Uniform float32 values on [min, max), counter-based (see the module's doc).
 * ```ts
 * const u = randomUniform([3, 4]);            // a new draw each training step, the same within one
 * const v = randomUniform(h, { seed: 7 });    // h's run-time shape
 * ```
 */
export function randomUniform(shapeOrLike: ShapeOrLike, opts: RandomOptions & { min?: number; max?: number } = {}): Tensor {
  return randomNode('randomUniform', shapeOrLike, 'uniform', opts.min ?? 0, opts.max ?? 1, opts);
}

/** Normal float32 values (Box–Muller), counter-based. @param shapeOrLike a static shape or a tensor to take it from */
export function randomNormal(shapeOrLike: ShapeOrLike, opts: RandomOptions & { mean?: number; stddev?: number } = {}): Tensor {
  return randomNode('randomNormal', shapeOrLike, 'normal', opts.mean ?? 0, opts.stddev ?? 1, opts);
}

/**
 * Bools that are true with probability `p` (a number or a float32 tensor broadcast against the shape).
 * @param p the probability @param shapeOrLike the shape, or a tensor to take it from (default: p's, if a tensor)
 */
export function bernoulli(p: TensorLike, shapeOrLike?: ShapeOrLike, opts: RandomOptions = {}): Tensor {
  const prob = asTensor('bernoulli', 'p', p, 'float32');
  if (prob.dtype !== 'float32') throw new SymflowError('bernoulli', `p must be float32, got ${prob.dtype} (${prob.name})`);
  const where = shapeOrLike ?? (prob.rank > 0 ? prob : []);
  return less(randomUniform(where, { ...opts, name: opts.name ?? 'bernoulli' }), prob);
}

/**
 * Dropout: while training (the learning phase), each element is kept with probability 1 − rate and scaled by
 * 1 / (1 − rate), else zeroed; otherwise x itself. Every run of one training step uses the same mask.
 * ```ts
 * const h = dropout(relu(matMul(x, w)), 0.5);
 * ```
 * @param x a float32 tensor @param rate the fraction dropped, in [0, 1)
 */
export function dropout(x: Tensor, rate: number, opts: RandomOptions = {}): Tensor {
  if (!isTensor(x) || x.dtype !== 'float32') throw new SymflowError('dropout', `x must be a float32 Tensor, got ${isTensor(x) ? `${x.dtype} (${x.name})` : typeof x}`);
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new SymflowError('dropout', `rate must be in [0, 1), got ${String(rate)}`);
  if (rate === 0) return x;
  // The mask is 1/(1 − rate) where u < 1 − rate for a uniform u, else 0: what bernoulli(1 − rate) gives, scaled.
  return cond(learningPhase(), () => mul(x, randomNode('dropout', x, 'mask', 1 - rate, 1 / (1 - rate), opts)), () => x);
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing (host side, the same code for every backend).

/** Wellons' lowbias32: a 32-bit integer hash with good avalanche (int32 in, int32 out: no boxed doubles). */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b | 0);
  return x ^ (x >>> 16);
}

/**
 * Element i's 24 hash bits under the key (k0 odd, k1): one lowbias32 of i·k0 + k1. The key multiplies, so the
 * streams of two keys are not shifts of one another (as i ⊕ k would make them), and one round suffices.
 */
function bits24(i: number, k0: number, k1: number): number {
  return mix((Math.imul(i, k0) + k1) | 0) >>> 8;
}

/** Element i's hash as a float in [0, 1). */
function unit(i: number, k0: number, k1: number): number {
  return bits24(i, k0, k1) * 5.9604644775390625e-8; // 2⁻²⁴
}

/** The key of one node at one step: two 32-bit words. */
export function randomKey(attrs: { seed: number; salt: number }, sessionSeed: number, step: number): [number, number] {
  const lo = step | 0, hi = Math.floor(step / 2 ** 32) | 0;
  const base = attrs.seed >= 0 ? mix(attrs.seed ^ 0x9e3779b9) : mix(mix(sessionSeed ^ 0x632be59b) ^ attrs.salt);
  const k = mix((base + mix(lo ^ 0x85ebca6b) + Math.imul(hi, 0x27d4eb2f)) | 0);
  return [k | 1, mix(k ^ 0xc2b2ae35)];
}

const TWO_PI = 2 * Math.PI;

// Arrays nobody writes after they are made: the ones drawRandom made (the session keeps a draw for the step's
// runs and only uploads it) and the stacked batches of `TrainStep.steps`. A backend may wrap one instead of
// copying it: for the onnx backend the copy of two dropout masks (and the garbage it made) was a third of what
// dropout still cost an MLP step.
const sealed = new WeakSet<ArrayBufferView>();

/** @internal Marks `data` as never written again (see `sealed`); returns it. */
export function seal<T extends ArrayBufferView>(data: T): T {
  sealed.add(data);
  return data;
}

/** @internal Whether `data` is never written after it was made (a random draw, a stacked batch). */
export function isSealed(data: ArrayBufferView): boolean {
  return sealed.has(data);
}

/**
 * The values of a random node of `shape` under `key`: element i (row-major) depends on (key, i) only, so a larger
 * leading dimension draws the same leading rows.
 */
export function drawRandom(attrs: { dist: string; a: number; b: number }, key: readonly [number, number], shape: readonly number[]): Float32Array {
  let n = 1;
  for (const d of shape) n *= d;
  const out = seal(new Float32Array(n));
  // One small function per distribution: each loop compiles on its own (one function holding all three ran the
  // mask loop 2.5× slower).
  if (attrs.dist === 'mask') drawMask(out, key[0], key[1], attrs.a, attrs.b);
  else if (attrs.dist === 'uniform') drawUniform(out, key[0], key[1], attrs.a, attrs.b);
  else drawNormal(out, key[0], key[1], attrs.a, attrs.b);
  return out;
}

/**
 * b where unit(i) < a, else 0: the same uniform draw bernoulli compares, so dropout(x, r) keeps where
 * bernoulli(1 − r, x) is true. h·2⁻²⁴ < keep for the 24-bit h is h < ceil(keep·2²⁴). Drawn four at a time by
 * WebAssembly SIMD (maskSimd.ts), else by the scalar loop; both give the same bits.
 */
function drawMask(out: Float32Array, k0: number, k1: number, keep: number, value: number): void {
  const threshold = Math.ceil(Math.fround(keep) * 16777216) | 0;
  const valueBits = new Int32Array(Float32Array.of(value).buffer)[0]!;
  if (!maskSimd(new Int32Array(out.buffer, out.byteOffset, out.length), k0, k1, threshold, valueBits)) drawMaskScalar(out, k0, k1, threshold, value);
}

/**
 * @internal The scalar mask loop (the reference the SIMD one is tested against): the sign of h − threshold picks
 * 0 or b, without a branch (a 50 % branch, mispredicted half the time, cost 3× the hashing).
 */
export function drawMaskScalar(out: Float32Array, k0: number, k1: number, threshold: number, value: number): void {
  // NOTE: a lookup of the sign bit, not `value * bit`: V8 ran the product of a double and the bit 3× slower.
  const table = Float32Array.of(0, value);
  for (let i = 0; i < out.length; i++) out[i] = table[(bits24(i, k0, k1) - threshold) >>> 31]!;
}

function drawUniform(out: Float32Array, k0: number, k1: number, a: number, b: number): void {
  const span = b - a;
  const top = prevFloat(b);
  for (let i = 0; i < out.length; i++) {
    const v = Math.fround(a + span * unit(i, k0, k1));
    // Rounded to float32, a + span·u can reach b: the interval stays half-open.
    out[i] = v >= b ? top : v;
  }
}

function drawNormal(out: Float32Array, k0: number, k1: number, mean: number, stddev: number): void {
  for (let i = 0; i < out.length; i++) {
    const u1 = unit(2 * i, k0, k1) + 5.9604644775390625e-8; // (0, 1]
    const u2 = unit(2 * i + 1, k0, k1);
    out[i] = mean + stddev * Math.sqrt(-2 * Math.log(u1)) * Math.cos(TWO_PI * u2);
  }
}

/** The largest float32 below b. */
function prevFloat(b: number): number {
  const f = new Float32Array([b]);
  if (f[0]! < b) return f[0]!;
  const i = new Int32Array(f.buffer);
  if (f[0] === 0) return -(2 ** -149);
  i[0] = f[0]! > 0 ? i[0]! - 1 : i[0]! + 1;
  return f[0]!;
}
