// A seeded generator of random, well-typed symflow graphs for differential fuzzing.
//
// A graph is a *recipe*: 1–3 float32 inputs and a list of steps, each one op applied to earlier values, JS numbers
// or constants. The same recipe is interpreted twice: with symflow ops (a static graph, run by a Session) and with
// eager TF.js ops (the reference, differentiated with `tf.grads`). Every value carries a static shape and an
// interval [lo, hi] that bounds it for ALL inputs in [-2, 2]; the generator uses the intervals to keep values tame
// (|v| ≤ BOUND) and domains valid (log, sqrt, reciprocal, div and pow bases only see values ≥ POS_MIN), so no input
// can produce NaN, ±Inf or a blow-up. Kinks (ties of max/min/maximum/minimum, relu, abs, sign and floor at their
// breakpoints, the comparison of a `where`) are checked on the actual inputs by `inputGaps`: a sample closer than
// MARGIN to a kink is resampled (see fuzz/check.ts).
import { seededRandom } from '../src/graph/initializers.js';
import * as tf from '@tensorflow/tfjs';
import * as sf from '../src/index.js';

// ---------------------------------------------------------------------------------------------------------------
// Limits.

/** Every intermediate value stays within [-BOUND, BOUND] for all inputs in [-INPUT_RANGE, INPUT_RANGE]. */
export const BOUND = 50;
/** Inputs are uniform in [-INPUT_RANGE, INPUT_RANGE]. */
export const INPUT_RANGE = 2;
/** log, sqrt, reciprocal, divisors and pow bases only see values ≥ POS_MIN. */
export const POS_MIN = 0.1;
/** Distance a sample must keep from any kink (ties, 0 for relu/abs/sign, integers for floor, where's comparison). */
export const MARGIN = 2e-3;
const MAX_SIZE = 64;
const MAX_RANK = 4;
/** The edge values an edge sample draws into its inputs (docs/semantics.md says what every op does with them). */
export const EDGE_VALUES: readonly number[] = [NaN, Infinity, -Infinity, -0];
/** In an edge graph: the chance that the first input gets a 0-size dimension, and that an input element is an edge value. */
export const EDGE_EMPTY_DIM = 0.3;
export const EDGE_ELEMENT = 0.2;

// ---------------------------------------------------------------------------------------------------------------
// Seeded randomness.

const mulberry32 = seededRandom;

/** Mixes integers into one 32-bit seed (so seed, graph index, attempt and purpose give independent streams). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  weighted<T>(xs: readonly (readonly [T, number])[]): T {
    const total = xs.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [x, w] of xs) {
      r -= w;
      if (r < 0) return x;
    }
    return xs[xs.length - 1]![0];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Recipes.

export type Cmp = 'greater' | 'less' | 'greaterEqual' | 'lessEqual';

export const OP_NAMES = [
  'constant', 'neg', 'square', 'exp', 'tanh', 'sigmoid', 'relu', 'abs', 'sign', 'floor', 'identity', 'sqrt', 'log',
  'reciprocal', 'add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'matMul', 'transpose', 'reshape',
  'expandDims', 'squeeze', 'concat', 'slice', 'pad', 'gather', 'unsortedSegmentSum', 'sum', 'mean', 'max', 'min',
  'softmax', 'logSoftmax', 'softmaxCrossEntropy', 'where', 'addN', 'sin', 'cos', 'erf', 'softplus', 'silu', 'gelu',
] as const;
/** The ops of the first fuzzer: recipes drawn from them alone are the recipes it drew (test/walk.test.ts's fingerprints). */
export const FIRST_OPS: readonly OpName[] = OP_NAMES.slice(0, OP_NAMES.indexOf('sin'));
export type OpName = (typeof OP_NAMES)[number];

/** An argument of a step: an earlier value, a JS number (mixed into the op), or a constant tensor. */
export type Arg =
  | { kind: 'value'; id: number }
  | { kind: 'number'; value: number }
  | { kind: 'const'; shape: number[]; data: number[] }
  | { kind: 'int'; shape: number[]; data: number[] };

export interface Attrs {
  axis?: number;
  axes?: number[];
  keepDims?: boolean;
  perm?: number[];
  shape?: number[];
  begin?: number[];
  size?: number[];
  paddings?: [number, number][];
  value?: number;
  transposeA?: boolean;
  transposeB?: boolean;
  cmp?: Cmp;
  numSegments?: number;
}

export interface Step {
  /** The id of the value this step makes (inputs are 0 … k−1). */
  id: number;
  op: OpName;
  args: Arg[];
  attrs: Attrs;
  shape: number[];
  /** Bounds of the value over every input in range (interval arithmetic; sound, not tight). */
  lo: number;
  hi: number;
}

export interface Recipe {
  seed: number;
  index: number;
  /** Regeneration attempt (a recipe whose samples keep hitting a kink is replaced by the next attempt). */
  attempt: number;
  inputs: { id: number; shape: number[] }[];
  steps: Step[];
  /** The values no step consumes; y = Σ sum(output · weight). */
  outputs: number[];
  /** One fixed weight tensor per output, shaped like it, entries ±[0.5, 1.5). */
  weights: number[][];
}

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** NumPy broadcasting of two static shapes, or undefined when they do not broadcast. */
export function broadcast(a: readonly number[], b: readonly number[]): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1, db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da); // not max(da, db): 1 against 0 is 0
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Interval helpers.

type Interval = [number, number];
const corners = (f: (a: number, b: number) => number, [al, ah]: Interval, [bl, bh]: Interval): Interval => {
  const v = [f(al, bl), f(al, bh), f(ah, bl), f(ah, bh)];
  return [Math.min(...v), Math.max(...v)];
};
const maxAbs = ([l, h]: Interval) => Math.max(Math.abs(l), Math.abs(h));
const sqInt = ([l, h]: Interval): Interval => (l >= 0 ? [l * l, h * h] : h <= 0 ? [h * h, l * l] : [0, Math.max(l * l, h * h)]);
const absInt = ([l, h]: Interval): Interval => (l >= 0 ? [l, h] : h <= 0 ? [-h, -l] : [0, Math.max(-l, h)]);
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const tame = ([l, h]: Interval) => Number.isFinite(l) && Number.isFinite(h) && l >= -BOUND && h <= BOUND;

// ---------------------------------------------------------------------------------------------------------------
// The generator.

interface Info {
  shape: number[];
  lo: number;
  hi: number;
  uses: number;
  /** Depends on no input (a constant source and ops on constants only: constant-folded by symflow). */
  isConst: boolean;
}

interface Operand {
  arg: Arg;
  shape: number[];
  lo: number;
  hi: number;
}

class Gen {
  readonly info: Info[] = [];
  readonly steps: Step[] = [];
  readonly inputs: { id: number; shape: number[] }[] = [];
  constructor(readonly rng: Rng) {}

  input(shape: number[]): number {
    const id = this.info.length;
    this.info.push({ shape, lo: -INPUT_RANGE, hi: INPUT_RANGE, uses: 0, isConst: false });
    this.inputs.push({ id, shape });
    return id;
  }

  emit(op: OpName, args: Arg[], attrs: Attrs, shape: number[], [lo, hi]: Interval): number {
    const id = this.info.length;
    let isConst = true;
    for (const a of args) {
      if (a.kind !== 'value') continue;
      this.info[a.id]!.uses++;
      if (!this.info[a.id]!.isConst) isConst = false;
    }
    this.info.push({ shape, lo, hi, uses: 0, isConst });
    this.steps.push({ id, op, args, attrs, shape, lo, hi });
    return id;
  }

  v(id: number): Info {
    return this.info[id]!;
  }

  operand(id: number): Operand {
    const i = this.v(id);
    return { arg: { kind: 'value', id }, shape: i.shape, lo: i.lo, hi: i.hi };
  }

  /** A constant tensor operand with entries uniform in [lo, hi) (or ±[minAbs, hi) when minAbs is given). */
  constant(shape: number[], lo = -1.5, hi = 1.5, minAbs?: number): Operand {
    const data = range(size(shape)).map(() =>
      minAbs === undefined ? this.rng.uniform(lo, hi) : (this.rng.bool() ? 1 : -1) * this.rng.uniform(minAbs, hi));
    const f32 = Float32Array.from(data);
    const vals = Array.from(f32);
    return { arg: { kind: 'const', shape, data: vals }, shape, lo: Math.min(...vals), hi: Math.max(...vals) };
  }

  number(lo: number, hi: number): Operand {
    const value = Math.round(this.rng.uniform(lo, hi) * 1000) / 1000;
    return { arg: { kind: 'number', value }, shape: [], lo: value, hi: value };
  }

  /** A primary operand: usually the newest value, else an unused one, else any (rarely an input-free one). */
  pick(): number {
    const ids = range(this.info.length);
    const r = this.rng.float();
    if (r < 0.5) return ids[ids.length - 1]!;
    const unused = ids.filter((id) => this.v(id).uses === 0);
    if (r < 0.8 && unused.length > 0) return this.rng.pick(unused);
    const live = ids.filter((id) => !this.v(id).isConst);
    return this.rng.pick(live.length > 0 && this.rng.bool(0.9) ? live : ids);
  }

  /** A shape that broadcasts with `shape` (same, a suffix, some axes set to 1, or one that widens it). */
  compatShape(shape: readonly number[]): number[] {
    const r = shape.length;
    const kind = this.rng.weighted<string>([['same', 3], ['suffix', 2.5], ['ones', 2.5], ['widen', 2]]);
    if (kind === 'suffix' && r > 0) return shape.slice(this.rng.int(1, r));
    if (kind === 'ones' && r > 0) return shape.map((d) => (this.rng.bool(0.5) ? 1 : d));
    if (kind === 'widen') {
      const ones = range(r).filter((i) => shape[i] === 1);
      if (ones.length > 0 && this.rng.bool(0.6)) {
        const i = this.rng.pick(ones);
        return shape.map((d, j) => (j === i ? this.rng.int(2, 3) : d));
      }
      if (r < MAX_RANK) return [this.rng.int(2, 3), ...shape];
    }
    return [...shape];
  }

  /** A second operand that broadcasts with value v: an existing value, a JS number or a constant tensor. */
  partner(v: number, opts: { self?: boolean } = {}): Operand {
    const shape = this.v(v).shape;
    const fits = (s: readonly number[]) => {
      const b = broadcast(shape, s);
      return b !== undefined && size(b) <= MAX_SIZE && b.length <= MAX_RANK;
    };
    const r = this.rng.float();
    if (r < 0.5) {
      const ids = range(this.info.length).filter((id) => (id !== v || opts.self) && fits(this.v(id).shape));
      if (ids.length > 0) return this.operand(this.rng.pick(ids));
    }
    if (r < 0.72) return this.number(-1.5, 1.5);
    for (let k = 0; k < 5; k++) {
      const s = this.compatShape(shape);
      if (fits(s)) return this.constant(s);
    }
    return this.constant([...shape]);
  }

  /** A value ≥ POS_MIN made from v: v itself, or add(square(v), c), exp(v), add(sigmoid(v), c), add(abs(v), c). */
  positive(v: number): number | undefined {
    const i = this.v(v);
    if (i.lo >= POS_MIN) return v;
    const iv: Interval = [i.lo, i.hi];
    const ways: [string, number][] = [['sigmoid', 1], ['abs', 0.7]];
    if (maxAbs(iv) ** 2 + 1 <= BOUND) ways.push(['square', 2]);
    if (i.lo >= Math.log(POS_MIN) && i.hi <= Math.log(BOUND)) ways.push(['exp', 2]);
    const way = this.rng.weighted(ways);
    if (way === 'exp') return this.emit('exp', [{ kind: 'value', id: v }], {}, i.shape, [Math.exp(i.lo), Math.exp(i.hi)]);
    const c = this.rng.pick([0.25, 0.5, 1]);
    let inner: number;
    if (way === 'square') inner = this.emit('square', [{ kind: 'value', id: v }], {}, i.shape, sqInt(iv));
    else if (way === 'abs') {
      if (maxAbs(iv) + c > BOUND) return undefined;
      inner = this.emit('abs', [{ kind: 'value', id: v }], {}, i.shape, absInt(iv));
    } else inner = this.emit('sigmoid', [{ kind: 'value', id: v }], {}, i.shape, [sig(i.lo), sig(i.hi)]);
    const j = this.v(inner);
    return this.emit('add', [{ kind: 'value', id: inner }, { kind: 'number', value: c }], {}, j.shape, [j.lo + c, j.hi + c]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Op makers: each tries to apply its op to value v; false when it does not apply (shape, rank, bounds).

type Maker = (g: Gen, v: number) => boolean;

const val = (id: number): Arg => ({ kind: 'value', id });

const unaryBounds: Partial<Record<OpName, (iv: Interval) => Interval | undefined>> = {
  neg: ([l, h]) => [-h, -l],
  square: (iv) => sqInt(iv),
  exp: ([l, h]) => (h <= Math.log(BOUND) ? [Math.exp(l), Math.exp(h)] : undefined),
  tanh: ([l, h]) => [Math.tanh(l), Math.tanh(h)],
  sigmoid: ([l, h]) => [sig(l), sig(h)],
  relu: ([l, h]) => [Math.max(l, 0), Math.max(h, 0)],
  abs: (iv) => absInt(iv),
  sign: ([l, h]) => [Math.sign(l), Math.sign(h)],
  floor: ([l, h]) => [Math.floor(l), Math.floor(h)],
  identity: (iv) => iv,
  // sin and cos: the whole range unless the interval is short (conservative bounds are enough).
  sin: () => [-1, 1],
  cos: () => [-1, 1],
  erf: ([l, h]) => [erfApprox(l) - 1e-3, erfApprox(h) + 1e-3],
  softplus: ([l, h]) => (h <= Math.log(BOUND) ? [Math.log1p(Math.exp(l)), Math.log1p(Math.exp(h)) + h * 1e-6] : undefined),
  // x·σ(x) has its minimum −0.2785 at x ≈ −1.278; gelu its minimum −0.17 at x ≈ −0.75.
  silu: ([l, h]) => [-0.28, Math.max(0, l * sig(l), h * sig(h))],
  gelu: ([l, h]) => [-0.18, Math.max(0, l, h)],
};

/** erf to ~1e-7 (Abramowitz–Stegun 7.1.26), for interval bounds only. */
function erfApprox(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return Math.sign(x) * y;
}

function unary(op: OpName): Maker {
  return (g, v) => {
    const i = g.v(v);
    const out = unaryBounds[op]!([i.lo, i.hi]);
    if (out === undefined || !tame(out)) return false;
    g.emit(op, [val(v)], {}, i.shape, out);
    return true;
  };
}

/** sqrt, log, reciprocal: applied to a positive version of v. */
function positiveUnary(op: 'sqrt' | 'log' | 'reciprocal'): Maker {
  return (g, v) => {
    const p = g.positive(v);
    if (p === undefined) return false;
    const i = g.v(p);
    const out: Interval = op === 'sqrt' ? [Math.sqrt(i.lo), Math.sqrt(i.hi)] : op === 'log' ? [Math.log(i.lo), Math.log(i.hi)] : [1 / i.hi, 1 / i.lo];
    if (!tame(out)) return false;
    g.emit(op, [val(p)], {}, i.shape, out);
    return true;
  };
}

function binary(op: 'add' | 'sub' | 'mul' | 'maximum' | 'minimum'): Maker {
  return (g, v) => {
    const a = g.operand(v);
    // maximum(x, x) would be a tie everywhere.
    const b = g.partner(v, { self: op !== 'maximum' && op !== 'minimum' });
    const shape = broadcast(a.shape, b.shape)!;
    const [x, y] = g.rng.bool() ? [a, b] : [b, a];
    const f = { add: (p: number, q: number) => p + q, sub: (p: number, q: number) => p - q, mul: (p: number, q: number) => p * q,
      maximum: Math.max, minimum: Math.min }[op];
    const out = corners(f, [x.lo, x.hi], [y.lo, y.hi]);
    if (!tame(out)) return false;
    g.emit(op, [x.arg, y.arg], {}, shape, out);
    return true;
  };
}

const makeDiv: Maker = (g, v) => {
  let num: Operand, den: Operand;
  if (g.rng.bool()) {
    // v is the divisor (made positive); the numerator is a partner.
    const p = g.positive(v);
    if (p === undefined) return false;
    den = g.operand(p);
    num = g.partner(p, { self: true });
  } else {
    num = g.operand(v);
    const r = g.rng.float();
    if (r < 0.3) {
      const k = (g.rng.bool() ? 1 : -1) * Math.round(g.rng.uniform(0.5, 2) * 100) / 100;
      den = { arg: { kind: 'number', value: k }, shape: [], lo: k, hi: k };
    } else if (r < 0.6) den = g.constant(g.compatShape(num.shape), -1.5, 1.5, 0.5);
    else {
      const ids = range(g.info.length).filter((id) => broadcast(num.shape, g.v(id).shape) !== undefined);
      const p = g.positive(g.rng.pick(ids));
      if (p === undefined) return false;
      den = g.operand(p);
    }
  }
  const shape = broadcast(num.shape, den.shape);
  if (shape === undefined || size(shape) > MAX_SIZE || shape.length > MAX_RANK) return false;
  // A divisor interval that spans 0 (a constant with entries of both signs, all |d| ≥ 0.5): bound by |num| / 0.5.
  const out: Interval = den.lo > 0 || den.hi < 0 ? corners((p, q) => p / q, [num.lo, num.hi], [den.lo, den.hi])
    : [-maxAbs([num.lo, num.hi]) / 0.5, maxAbs([num.lo, num.hi]) / 0.5];
  if (!tame(out)) return false;
  g.emit('div', [num.arg, den.arg], {}, shape, out);
  return true;
};

const makePow: Maker = (g, v) => {
  const i = g.v(v);
  const kind = g.rng.weighted<string>([['int', 1], ['base', 1.5], ['exponent', 0.8]]);
  if (kind === 'int') {
    // Any sign of base with an integer exponent.
    const k = g.rng.pick([2, 3]);
    const out: Interval = k === 2 ? sqInt([i.lo, i.hi]) : [i.lo ** 3, i.hi ** 3];
    if (!tame(out)) return false;
    g.emit('pow', [val(v), { kind: 'number', value: k }], {}, i.shape, out);
    return true;
  }
  if (kind === 'exponent') {
    // A positive number raised to v.
    const b = g.rng.pick([0.5, 2, 1.5, 3]);
    const out = corners((p, q) => p ** q, [b, b], [i.lo, i.hi]);
    if (!tame(out)) return false;
    g.emit('pow', [{ kind: 'number', value: b }, val(v)], {}, i.shape, out);
    return true;
  }
  // A positive base (made from v) raised to a number, a constant or a bounded value.
  const p = g.positive(v);
  if (p === undefined) return false;
  const base = g.operand(p);
  let e: Operand;
  const r = g.rng.float();
  if (r < 0.4) {
    const k = g.rng.pick([0.5, 1.5, -0.5, -1, 2.5, 0.3]);
    e = { arg: { kind: 'number', value: k }, shape: [], lo: k, hi: k };
  } else if (r < 0.7) e = g.constant(g.compatShape(base.shape), -2, 2);
  else {
    const ids = range(g.info.length).filter((id) => {
      const j = g.v(id);
      const b = broadcast(base.shape, j.shape);
      return j.lo >= -3 && j.hi <= 3 && b !== undefined && size(b) <= MAX_SIZE && b.length <= MAX_RANK;
    });
    if (ids.length === 0) return false;
    e = g.operand(g.rng.pick(ids));
  }
  const shape = broadcast(base.shape, e.shape);
  if (shape === undefined || size(shape) > MAX_SIZE || shape.length > MAX_RANK) return false;
  const out = corners((p, q) => p ** q, [base.lo, base.hi], [e.lo, e.hi]);
  if (!tame(out)) return false;
  g.emit('pow', [base.arg, e.arg], {}, shape, out);
  return true;
};

const makeMatMul: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r !== 2 && r !== 3) return false;
  const batch = i.shape.slice(0, -2);
  const [d0, d1] = i.shape.slice(-2) as [number, number];
  const vLeft = g.rng.bool(0.65);
  const ta = g.rng.bool(0.3), tb = g.rng.bool(0.3);
  // v is op(A) (left) or op(B) (right); k is the inner dimension.
  const vt = vLeft ? ta : tb;
  const [vOuter, k] = vLeft ? (vt ? [d1, d0] : [d0, d1]) : (vt ? [d0, d1] : [d1, d0]);
  const n = g.rng.int(1, 4);
  // The other operand's stored shape.
  const other = vLeft ? (tb ? [n, k] : [k, n]) : (ta ? [k, n] : [n, k]);
  const want = [...batch, ...other];
  const same = range(g.info.length).filter((id) => id !== v && g.v(id).shape.length === want.length && g.v(id).shape.every((d, j) => d === want[j]));
  const o = same.length > 0 && g.rng.bool(0.6) ? g.operand(g.rng.pick(same)) : g.constant(want, -1, 1);
  const bound = k * maxAbs([i.lo, i.hi]) * maxAbs([o.lo, o.hi]);
  if (bound > BOUND) return false;
  const shape = [...batch, ...(vLeft ? [vOuter, n] : [n, vOuter])];
  if (size(shape) > MAX_SIZE) return false;
  const args = vLeft ? [val(v), o.arg] : [o.arg, val(v)];
  g.emit('matMul', args, { transposeA: ta, transposeB: tb }, shape, [-bound, bound]);
  return true;
};

const makeTranspose: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r < 2) return false;
  let perm: number[] | undefined;
  if (g.rng.bool(0.2)) perm = undefined;
  else {
    do perm = g.rng.shuffle(range(r));
    while (perm.every((p, j) => p === j));
  }
  const p = perm ?? range(r).reverse();
  g.emit('transpose', [val(v)], perm === undefined ? {} : { perm }, p.map((a) => i.shape[a]!), [i.lo, i.hi]);
  return true;
};

function factorize(g: Gen, n: number, rank: number): number[] {
  const dims: number[] = [];
  let rest = n;
  for (let k = 0; k < rank - 1; k++) {
    const divisors = range(rest).map((d) => d + 1).filter((d) => rest % d === 0);
    const d = g.rng.pick(divisors);
    dims.push(d);
    rest /= d;
  }
  if (rank > 0) dims.push(rest);
  return g.rng.shuffle(dims);
}

const makeReshape: Maker = (g, v) => {
  const i = g.v(v);
  const n = size(i.shape);
  if (n === 0) return false;
  const rank = n === 1 ? g.rng.int(0, 3) : g.rng.int(1, MAX_RANK);
  const shape = factorize(g, n, rank);
  const target = shape.length > 0 && g.rng.bool(0.3) ? (() => { const t = [...shape]; t[g.rng.int(0, t.length - 1)] = -1; return t; })() : shape;
  g.emit('reshape', [val(v)], { shape: target }, shape, [i.lo, i.hi]);
  return true;
};

const makeExpandDims: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r >= MAX_RANK) return false;
  const axis = g.rng.int(-(r + 1), r);
  const shape = [...i.shape];
  shape.splice(normAxis(axis, r + 1), 0, 1);
  g.emit('expandDims', [val(v)], { axis }, shape, [i.lo, i.hi]);
  return true;
};

const makeSqueeze: Maker = (g, v) => {
  const i = g.v(v);
  const ones = range(i.shape.length).filter((a) => i.shape[a] === 1);
  if (ones.length === 0) return false;
  const axes = g.rng.bool(0.3) ? undefined : (() => {
    const pickd = ones.filter(() => g.rng.bool());
    return (pickd.length > 0 ? pickd : [g.rng.pick(ones)]).map((a) => (g.rng.bool(0.3) ? a - i.shape.length : a));
  })();
  const drop = axes === undefined ? ones : axes.map((a) => normAxis(a, i.shape.length));
  g.emit('squeeze', [val(v)], axes === undefined ? {} : { axes }, i.shape.filter((_, a) => !drop.includes(a)), [i.lo, i.hi]);
  return true;
};

const makeConcat: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r === 0) return false;
  const axis = g.rng.int(-r, r - 1);
  const ax = normAxis(axis, r);
  const parts: Operand[] = [g.operand(v)];
  const count = g.rng.bool(0.25) ? 3 : 2;
  for (let k = 1; k < count; k++) {
    const ids = range(g.info.length).filter((id) => {
      const s = g.v(id).shape;
      return id !== v && s.length === r && s.every((d, j) => j === ax || d === i.shape[j]);
    });
    const q = g.rng.float();
    if (q < 0.45 && ids.length > 0) parts.push(g.operand(g.rng.pick(ids)));
    else if (q < 0.6) parts.push(g.operand(v));
    else parts.push(g.constant(i.shape.map((d, j) => (j === ax ? g.rng.int(1, 3) : d))));
  }
  const ordered = g.rng.shuffle(parts);
  const shape = i.shape.map((d, j) => (j === ax ? ordered.reduce((s, p) => s + p.shape[j]!, 0) : d));
  if (size(shape) > MAX_SIZE) return false;
  g.emit('concat', ordered.map((p) => p.arg), { axis }, shape, [Math.min(...ordered.map((p) => p.lo)), Math.max(...ordered.map((p) => p.hi))]);
  return true;
};

const makeSlice: Maker = (g, v) => {
  const i = g.v(v);
  if (i.shape.length === 0 || i.shape.includes(0)) return false;
  const begin = i.shape.map((d) => g.rng.int(0, d - 1));
  const sizeArg = i.shape.map((d, j) => (g.rng.bool(0.25) ? -1 : g.rng.int(1, d - begin[j]!)));
  const shape = sizeArg.map((s, j) => (s === -1 ? i.shape[j]! - begin[j]! : s));
  g.emit('slice', [val(v)], { begin, size: sizeArg }, shape, [i.lo, i.hi]);
  return true;
};

const makePad: Maker = (g, v) => {
  const i = g.v(v);
  if (i.shape.length === 0) return false;
  const paddings = i.shape.map((): [number, number] => [g.rng.int(0, 2), g.rng.int(0, 1)]);
  const shape = i.shape.map((d, j) => d + paddings[j]![0] + paddings[j]![1]);
  if (size(shape) > MAX_SIZE) return false;
  const value = g.rng.pick([0, 0, 0.5, -1]);
  g.emit('pad', [val(v)], { paddings, value }, shape, [Math.min(i.lo, value), Math.max(i.hi, value)]);
  return true;
};

const makeGather: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r === 0) return false;
  const axis = g.rng.int(-r, r - 1);
  const d = i.shape[normAxis(axis, r)]!;
  if (d === 0) return false; // every index would be out of range (an error, by docs/semantics.md)
  const q = g.rng.float();
  const idxShape = q < 0.1 ? [] : q < 0.3 ? [2, g.rng.int(1, 2)] : [g.rng.int(1, 5)];
  const data = range(size(idxShape)).map(() => g.rng.int(0, d - 1));
  const shape = [...i.shape.slice(0, normAxis(axis, r)), ...idxShape, ...i.shape.slice(normAxis(axis, r) + 1)];
  if (size(shape) > MAX_SIZE || shape.length > MAX_RANK) return false;
  g.emit('gather', [val(v), { kind: 'int', shape: idxShape, data }], { axis }, shape, [i.lo, i.hi]);
  return true;
};

const makeSegmentSum: Maker = (g, v) => {
  const i = g.v(v);
  if (i.shape.length === 0) return false;
  const n = i.shape[0]!;
  const k = g.rng.int(1, 4);
  // Sometimes an id of -1: symflow documents that rows with ids out of range are dropped. (Only negative ones: TF.js,
  // the reference, drops those in its gradient too, but its gradient of an id ≥ k is an index error.)
  const outOfRange = g.rng.bool(0.15);
  const data = range(n).map(() => (outOfRange && g.rng.bool(0.3) ? -1 : g.rng.int(0, k - 1)));
  const shape = [k, ...i.shape.slice(1)];
  if (size(shape) > MAX_SIZE) return false;
  const out: Interval = [Math.min(0, n * i.lo), Math.max(0, n * i.hi)];
  if (!tame(out)) return false;
  g.emit('unsortedSegmentSum', [val(v), { kind: 'int', shape: [n], data }], { numSegments: k }, shape, out);
  return true;
};

function reduction(op: 'sum' | 'mean' | 'max' | 'min'): Maker {
  return (g, v) => {
    const i = g.v(v);
    const r = i.shape.length;
    let axes: number[] | undefined;
    if (r === 0 || g.rng.bool(0.3)) axes = undefined;
    else {
      const chosen = range(r).filter(() => g.rng.bool(0.5));
      axes = g.rng.shuffle(chosen.length > 0 ? chosen : [g.rng.int(0, r - 1)]).map((a) => (g.rng.bool(0.3) ? a - r : a));
    }
    const red = axes === undefined ? range(r) : axes.map((a) => normAxis(a, r));
    const keepDims = g.rng.bool();
    const shape = keepDims ? i.shape.map((d, j) => (red.includes(j) ? 1 : d)) : i.shape.filter((_, j) => !red.includes(j));
    const n = size(red.map((a) => i.shape[a]!));
    const out: Interval = op === 'sum' ? [n * i.lo, n * i.hi] : [i.lo, i.hi];
    if (!tame(out)) return false;
    const attrs: Attrs = { keepDims };
    if (axes !== undefined) attrs.axes = axes;
    g.emit(op, [val(v)], attrs, shape, out);
    return true;
  };
}

function softmaxLike(op: 'softmax' | 'logSoftmax'): Maker {
  return (g, v) => {
    const i = g.v(v);
    const r = i.shape.length;
    if (r === 0) return false;
    const axis = g.rng.bool(0.6) ? undefined : g.rng.int(-r, r - 1);
    const n = i.shape[normAxis(axis ?? -1, r)]!;
    const out: Interval = op === 'softmax' ? [0, 1] : [i.lo - i.hi - Math.log(n), 0];
    if (!tame(out)) return false;
    g.emit(op, [val(v)], axis === undefined ? {} : { axis }, i.shape, out);
    return true;
  };
}

const makeSoftmaxCrossEntropy: Maker = (g, v) => {
  const i = g.v(v);
  const r = i.shape.length;
  if (r === 0) return false;
  const c = i.shape[r - 1]!;
  let labels: Arg;
  if (g.rng.bool(0.4)) {
    // A constant distribution per row.
    const data: number[] = [];
    for (let row = 0; row < size(i.shape) / c; row++) {
      const u = range(c).map(() => g.rng.uniform(0.05, 1));
      const total = u.reduce((s, x) => s + x, 0);
      data.push(...u.map((x) => x / total));
    }
    labels = { kind: 'const', shape: [...i.shape], data };
  } else {
    // softmax of a value (or a constant) of the same shape: labels that depend on the inputs.
    const ids = range(g.info.length).filter((id) => g.v(id).shape.length === r && g.v(id).shape.every((d, j) => d === i.shape[j]));
    const src = g.rng.bool(0.8) ? g.operand(g.rng.pick(ids)) : g.constant([...i.shape], -2, 2);
    labels = val(g.emit('softmax', [src.arg], {}, [...i.shape], [0, 1]));
  }
  const out: Interval = [0, i.hi - i.lo + Math.log(c)];
  if (!tame(out)) return false;
  g.emit('softmaxCrossEntropy', [val(v), labels], {}, i.shape.slice(0, -1), out);
  return true;
};

const makeWhere: Maker = (g, v) => {
  const i = g.v(v);
  const cmp = g.rng.pick<Cmp>(['greater', 'less', 'greaterEqual', 'lessEqual']);
  // The comparison: v against a partner (never v itself: that would be a tie everywhere).
  const c2 = g.partner(v);
  // The selected values: v, a partner, or a number.
  const other = g.partner(v, { self: true });
  const [a, b] = g.rng.bool() ? [g.operand(v), other] : [other, g.operand(v)];
  let shape = broadcast(i.shape, c2.shape);
  shape = shape && broadcast(shape, a.shape);
  shape = shape && broadcast(shape, b.shape);
  if (shape === undefined || size(shape) > MAX_SIZE || shape.length > MAX_RANK) return false;
  if (a.arg.kind === 'number' && b.arg.kind === 'number') return false;
  g.emit('where', [val(v), c2.arg, a.arg, b.arg], { cmp }, shape, [Math.min(a.lo, b.lo), Math.max(a.hi, b.hi)]);
  return true;
};

const makeAddN: Maker = (g, v) => {
  const i = g.v(v);
  const parts: Operand[] = [g.operand(v)];
  const count = g.rng.int(2, 3);
  for (let k = 1; k < count; k++) {
    const ids = range(g.info.length).filter((id) => g.v(id).shape.length === i.shape.length && g.v(id).shape.every((d, j) => d === i.shape[j]));
    parts.push(g.rng.bool(0.75) ? g.operand(g.rng.pick(ids)) : g.constant([...i.shape]));
  }
  const out: Interval = [parts.reduce((s, p) => s + p.lo, 0), parts.reduce((s, p) => s + p.hi, 0)];
  if (!tame(out)) return false;
  g.emit('addN', g.rng.shuffle(parts).map((p) => p.arg), {}, [...i.shape], out);
  return true;
};

/** A constant source in the pool (ops on it are constant-folded by symflow). */
const makeConstant: Maker = (g, v) => {
  const c = g.constant(g.compatShape(g.v(v).shape));
  if (size(c.shape) > MAX_SIZE) return false;
  g.emit('constant', [c.arg], {}, c.shape, [c.lo, c.hi]);
  return true;
};

const MAKERS: Record<OpName, [Maker, number]> = {
  constant: [makeConstant, 0.4],
  neg: [unary('neg'), 1.5],
  square: [unary('square'), 2],
  exp: [unary('exp'), 2],
  tanh: [unary('tanh'), 2],
  sigmoid: [unary('sigmoid'), 2],
  relu: [unary('relu'), 2.5],
  sin: [unary('sin'), 0.8],
  cos: [unary('cos'), 0.8],
  erf: [unary('erf'), 0.8],
  softplus: [unary('softplus'), 0.8],
  silu: [unary('silu'), 0.8],
  gelu: [unary('gelu'), 0.8],
  abs: [unary('abs'), 1.5],
  sign: [unary('sign'), 0.4],
  floor: [unary('floor'), 0.4],
  identity: [unary('identity'), 0.5],
  sqrt: [positiveUnary('sqrt'), 1.5],
  log: [positiveUnary('log'), 1.5],
  reciprocal: [positiveUnary('reciprocal'), 1],
  add: [binary('add'), 3],
  sub: [binary('sub'), 2.5],
  mul: [binary('mul'), 3],
  div: [makeDiv, 2],
  maximum: [binary('maximum'), 2],
  minimum: [binary('minimum'), 2],
  pow: [makePow, 2],
  matMul: [makeMatMul, 4],
  transpose: [makeTranspose, 2],
  reshape: [makeReshape, 2],
  expandDims: [makeExpandDims, 1.5],
  squeeze: [makeSqueeze, 1.5],
  concat: [makeConcat, 2],
  slice: [makeSlice, 2],
  pad: [makePad, 1],
  gather: [makeGather, 1],
  unsortedSegmentSum: [makeSegmentSum, 0.7],
  sum: [reduction('sum'), 2],
  mean: [reduction('mean'), 2],
  max: [reduction('max'), 2],
  min: [reduction('min'), 2],
  softmax: [softmaxLike('softmax'), 1.5],
  logSoftmax: [softmaxLike('logSoftmax'), 1.5],
  softmaxCrossEntropy: [makeSoftmaxCrossEntropy, 1],
  where: [makeWhere, 2],
  addN: [makeAddN, 1],
};
const makerList = (ops: readonly OpName[]) => ops.map((op) => [op, MAKERS[op][1]] as const);
const MAKER_LIST = makerList(OP_NAMES);
const FIRST_LIST = makerList(FIRST_OPS);

function randomShape(rng: Rng): number[] {
  return range(rng.int(0, 3)).map(() => rng.int(1, 4));
}

/**
 * The recipe of graph `index` from `seed` (deterministic). `attempt` > 0 gives a replacement recipe, used when
 * no sample of the inputs keeps clear of the recipe's kinks.
 */
export function generateRecipe(seed: number, index: number, attempt = 0, emptyDim = 0, ops: 'all' | 'first' = 'all'): Recipe {
  const rng = new Rng(mixSeed(seed, index, attempt, 1));
  const g = new Gen(rng);
  const base = randomShape(rng);
  // An edge graph may give its first input a 0-size dimension (drawn from a stream of its own, so graphs without
  // edge values are the same as ever); the inputs that broadcast with it inherit it.
  const edgeRng = new Rng(mixSeed(seed, index, attempt, 3));
  if (emptyDim > 0 && base.length > 0 && edgeRng.bool(emptyDim)) base[edgeRng.int(0, base.length - 1)] = 0;
  g.input(base);
  const nInputs = rng.int(1, 3);
  for (let k = 1; k < nInputs; k++) {
    // Often a shape that broadcasts with the first input's.
    g.input(rng.bool(0.6) ? g.compatShape(base).filter((_, j, s) => s.length <= 3 || j > 0) : randomShape(rng));
  }
  const nOps = rng.int(3, 12);
  let applied = 0;
  for (let tries = 0; applied < nOps && tries < 500; tries++) {
    const op = rng.weighted(ops === 'all' ? MAKER_LIST : FIRST_LIST);
    const v = g.pick();
    const mark = g.steps.length;
    const ok = MAKERS[op][0](g, v);
    if (ok) applied++;
    else if (g.steps.length !== mark) applied++; // helper steps (a positive version of v) were emitted: keep them
  }
  const outputs = range(g.info.length).filter((id) => g.v(id).uses === 0);
  const weights = outputs.map((id) => range(size(g.v(id).shape)).map(() => Math.fround((rng.bool() ? 1 : -1) * rng.uniform(0.5, 1.5))));
  return { seed, index, attempt, inputs: g.inputs, steps: g.steps, outputs, weights };
}

/** The distinct ops a recipe uses. */
export function opsOf(recipe: Recipe): Set<OpName> {
  return new Set(recipe.steps.map((s) => s.op));
}

/**
 * Uniform inputs in [-INPUT_RANGE, INPUT_RANGE) for a recipe, from a seeded stream; with `edge` > 0 each element is
 * an edge value (NaN, ±Inf, −0) with that probability.
 */
export function sampleInputs(recipe: Recipe, rng: Rng, edge = 0): Float32Array[] {
  return recipe.inputs.map((inp) => Float32Array.from(range(size(inp.shape)), () => {
    const v = rng.uniform(-INPUT_RANGE, INPUT_RANGE);
    return edge > 0 && rng.bool(edge) ? rng.pick(EDGE_VALUES) : v;
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Printing.

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));
const name = (recipe: Recipe, id: number) => (id < recipe.inputs.length ? `x${id}` : `v${id}`);

function fmtArg(recipe: Recipe, a: Arg): string {
  if (a.kind === 'value') return name(recipe, a.id);
  if (a.kind === 'number') return fmt(a.value);
  const d = a.data.length <= 12 ? a.data.map(fmt).join(', ') : `${a.data.slice(0, 12).map(fmt).join(', ')}, …`;
  return `${a.kind === 'int' ? 'int32' : 'const'}[${a.shape.join(',')}]{${d}}`;
}

/** The recipe as readable lines (symflow calls with their static shapes and value bounds). */
export function formatRecipe(recipe: Recipe): string {
  const lines = [`recipe seed=${recipe.seed} index=${recipe.index} attempt=${recipe.attempt}`];
  for (const inp of recipe.inputs) lines.push(`  x${inp.id} = placeholder([${inp.shape.join(',')}])`);
  for (const s of recipe.steps) {
    const args = s.args.map((a) => fmtArg(recipe, a));
    const attrs = Object.entries(s.attrs).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    const call = s.op === 'where'
      ? `where(${s.attrs.cmp}(${args[0]}, ${args[1]}), ${args[2]}, ${args[3]})`
      : s.op === 'concat' || s.op === 'addN' ? `${s.op}([${args.join(', ')}]${attrs.length ? `, ${attrs.join(', ')}` : ''})`
        : `${s.op}(${[...args, ...attrs.filter((a) => !a.startsWith('cmp='))].join(', ')})`;
    lines.push(`  ${name(recipe, s.id)} = ${call}`.padEnd(72) + `  // [${s.shape.join(',')}] in [${fmt(s.lo)}, ${fmt(s.hi)}]`);
  }
  lines.push(`  y = ${recipe.outputs.map((id, k) => `sum(mul(${name(recipe, id)}, w${k}))`).join(' + ')}`);
  recipe.weights.forEach((w, k) => lines.push(`  w${k} = [${w.map(fmt).join(', ')}]`));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Interpreters: the same recipe as a symflow graph and as eager TF.js.

export interface Impl<T> {
  /** A number or constant argument. */
  arg(a: Exclude<Arg, { kind: 'value' }>): T | number;
  ops: Record<OpName, (xs: (T | number)[], at: Attrs, step: Step) => T>;
}

/** All values of the recipe (inputs first), computed with `impl`. */
export function evaluate<T>(recipe: Recipe, impl: Impl<T>, inputs: readonly T[]): T[] {
  const vals: T[] = [...inputs];
  for (const s of recipe.steps) {
    const xs = s.args.map((a) => (a.kind === 'value' ? vals[a.id]! : impl.arg(a)));
    vals[s.id] = impl.ops[s.op](xs, s.attrs, s);
  }
  return vals;
}

type SX = sf.Tensor | number;
const st = (x: SX | undefined): sf.Tensor => {
  if (x === undefined || typeof x === 'number') throw new Error('fuzz: expected a tensor argument');
  return x;
};

/** The recipe in symflow. */
export const SYMFLOW: Impl<sf.Tensor> = {
  arg: (a) => (a.kind === 'number' ? a.value
    : sf.constant({ shape: a.shape, data: a.kind === 'int' ? Int32Array.from(a.data) : Float32Array.from(a.data) })),
  ops: {
    constant: ([c]) => st(c),
    neg: ([x]) => sf.neg(st(x)),
    square: ([x]) => sf.square(st(x)),
    exp: ([x]) => sf.exp(st(x)),
    tanh: ([x]) => sf.tanh(st(x)),
    sigmoid: ([x]) => sf.sigmoid(st(x)),
    relu: ([x]) => sf.relu(st(x)),
    sin: ([x]) => sf.sin(st(x)),
    cos: ([x]) => sf.cos(st(x)),
    erf: ([x]) => sf.erf(st(x)),
    softplus: ([x]) => sf.softplus(st(x)),
    silu: ([x]) => sf.silu(st(x)),
    gelu: ([x]) => sf.gelu(st(x)),
    abs: ([x]) => sf.abs(st(x)),
    sign: ([x]) => sf.sign(st(x)),
    floor: ([x]) => sf.floor(st(x)),
    identity: ([x]) => sf.identity(st(x)),
    sqrt: ([x]) => sf.sqrt(st(x)),
    log: ([x]) => sf.log(st(x)),
    reciprocal: ([x]) => sf.reciprocal(st(x)),
    add: ([a, b]) => sf.add(a!, b!),
    sub: ([a, b]) => sf.sub(a!, b!),
    mul: ([a, b]) => sf.mul(a!, b!),
    div: ([a, b]) => sf.div(a!, b!),
    maximum: ([a, b]) => sf.maximum(a!, b!),
    minimum: ([a, b]) => sf.minimum(a!, b!),
    pow: ([a, b]) => sf.pow(a!, b!),
    matMul: ([a, b], at) => sf.matMul(st(a), st(b), { transposeA: at.transposeA!, transposeB: at.transposeB! }),
    transpose: ([x], at) => sf.transpose(st(x), at.perm),
    reshape: ([x], at) => sf.reshape(st(x), at.shape!),
    expandDims: ([x], at) => sf.expandDims(st(x), at.axis),
    squeeze: ([x], at) => sf.squeeze(st(x), at.axes),
    concat: (xs, at) => sf.concat(xs.map(st), at.axis),
    slice: ([x], at) => sf.slice(st(x), at.begin!, at.size),
    pad: ([x], at) => sf.pad(st(x), at.paddings!, at.value),
    gather: ([x, i], at) => sf.gather(st(x), st(i), at.axis),
    unsortedSegmentSum: ([x, i], at) => sf.unsortedSegmentSum(st(x), st(i), at.numSegments!),
    sum: ([x], at) => sf.sum(st(x), at.axes, at.keepDims),
    mean: ([x], at) => sf.mean(st(x), at.axes, at.keepDims),
    max: ([x], at) => sf.max(st(x), at.axes, at.keepDims),
    min: ([x], at) => sf.min(st(x), at.axes, at.keepDims),
    softmax: ([x], at) => sf.softmax(st(x), at.axis),
    logSoftmax: ([x], at) => sf.logSoftmax(st(x), at.axis),
    softmaxCrossEntropy: ([l, p]) => sf.softmaxCrossEntropy(st(l), st(p)),
    where: ([c1, c2, a, b], at) => sf.where(sf[at.cmp!](c1!, c2!), a!, b!),
    addN: (xs) => sf.addN(xs.map(st)),
  },
};

type TX = tf.Tensor | number;
const tt = (x: TX | undefined): tf.Tensor => {
  if (x === undefined) throw new Error('fuzz: missing argument');
  return typeof x === 'number' ? tf.scalar(x) : x;
};

/** broadcastTo, also to a 0-size shape (TF.js's gives [1] for [0]). */
const bcast = (x: tf.Tensor, shape: number[]): tf.Tensor => (size(shape) === 0 ? tf.zeros(shape, x.dtype) : tf.broadcastTo(x, shape));

/** A bool tensor with no history: TF.js's tape refuses a comparison (no gradient) on the path from x to y. */
const offTape = (c: tf.Tensor): tf.Tensor => tf.tensor(c.dataSync(), c.shape, 'bool');

/** f along `axis` by moving it last (TF.js's softmax and logSoftmax only take the last axis). */
function alongAxis(x: tf.Tensor, axis: number | undefined, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  const r = x.rank;
  const a = normAxis(axis ?? -1, r);
  if (a === r - 1) return f(x);
  const perm = range(r);
  [perm[a], perm[r - 1]] = [perm[r - 1]!, perm[a]!];
  return tf.transpose(f(tf.transpose(x, perm)), perm);
}

/**
 * The recipe in eager TF.js: the reference. TF.js's maximum / minimum gradients do not unbroadcast, so those
 * operands are broadcast explicitly (as in test/gradients.test.ts); `where` too, for the same reason.
 */
export const TFJS: Impl<tf.Tensor> = {
  arg: (a) => (a.kind === 'number' ? a.value : tf.tensor(a.data, a.shape, a.kind === 'int' ? 'int32' : 'float32')),
  ops: {
    constant: ([c]) => tt(c),
    neg: ([x]) => tf.neg(tt(x)),
    square: ([x]) => tf.square(tt(x)),
    exp: ([x]) => tf.exp(tt(x)),
    tanh: ([x]) => tf.tanh(tt(x)),
    sigmoid: ([x]) => tf.sigmoid(tt(x)),
    relu: ([x]) => tf.relu(tt(x)),
    sin: ([x]) => tf.sin(tt(x)),
    cos: ([x]) => tf.cos(tt(x)),
    erf: ([x]) => tf.erf(tt(x)),
    softplus: ([x]) => tf.softplus(tt(x)),
    silu: ([x]) => tf.mul(tt(x), tf.sigmoid(tt(x))),
    // gelu, exact: 0.5·x·(1 + erf(x/√2)).
    gelu: ([x]) => tf.mul(tf.mul(0.5, tt(x)), tf.add(1, tf.erf(tf.mul(tt(x), Math.SQRT1_2)))),
    abs: ([x]) => tf.abs(tt(x)),
    // sign(NaN) = NaN (docs/semantics.md; TF.js gives 0); the condition is taken off the tape, as in `where`.
    sign: ([x]) => tf.where(offTape(tf.isNaN(tt(x))), tt(x), tf.sign(tt(x))),
    floor: ([x]) => tf.floor(tt(x)),
    identity: ([x]) => tf.clone(tt(x)),
    sqrt: ([x]) => tf.sqrt(tt(x)),
    log: ([x]) => tf.log(tt(x)),
    reciprocal: ([x]) => tf.reciprocal(tt(x)),
    add: ([a, b]) => tf.add(tt(a), tt(b)),
    sub: ([a, b]) => tf.sub(tt(a), tt(b)),
    mul: ([a, b]) => tf.mul(tt(a), tt(b)),
    div: ([a, b]) => tf.div(tt(a), tt(b)),
    maximum: ([a, b], _at, s) => tf.maximum(bcast(tt(a), s.shape), bcast(tt(b), s.shape)),
    minimum: ([a, b], _at, s) => tf.minimum(bcast(tt(a), s.shape), bcast(tt(b), s.shape)),
    // pow(1, y) = 1 for every y, NaN too (C and NumPy; TF.js cpu uses Math.pow).
    pow: ([a, b]) => {
      const p = tf.pow(tt(a), tt(b));
      return tf.where(offTape(tf.broadcastTo(tf.equal(tt(a), 1), p.shape)), tf.onesLike(p), p);
    },
    matMul: ([a, b], at) => tf.matMul(tt(a), tt(b), at.transposeA, at.transposeB),
    transpose: ([x], at) => tf.transpose(tt(x), at.perm),
    reshape: ([x], at) => tf.reshape(tt(x), at.shape!),
    expandDims: ([x], at) => tf.expandDims(tt(x), at.axis),
    squeeze: ([x], at) => tf.squeeze(tt(x), at.axes),
    concat: (xs, at) => tf.concat(xs.map(tt), at.axis),
    slice: ([x], at) => tf.slice(tt(x), at.begin!, at.size),
    pad: ([x], at) => tf.pad(tt(x), at.paddings!, at.value),
    gather: ([x, i], at) => tf.gather(tt(x), tt(i), normAxis(at.axis!, tt(x).rank)),
    // Per segment, the sum of its rows (TF.js cpu's masked sums let one NaN row make every segment NaN).
    unsortedSegmentSum: ([x, i], at) => {
      const ids = Array.from(tt(i).dataSync());
      const rows = tt(x);
      return tf.stack(range(at.numSegments!).map((s) => {
        const mine = ids.flatMap((id, r) => (id === s ? [r] : []));
        return mine.length === 0 ? tf.zeros(rows.shape.slice(1)) : tf.sum(tf.gather(rows, tf.tensor1d(mine, 'int32')), 0);
      }));
    },
    sum: ([x], at) => tf.sum(tt(x), at.axes, at.keepDims),
    // Over an empty axis: NaN (0 / 0, docs/semantics.md; TF.js cpu gives 0).
    mean: ([x], at, s) => (size(s.shape) > 0 && tt(x).size === 0 ? tf.fill(s.shape, NaN) : tf.mean(tt(x), at.axes, at.keepDims)),
    // Over an empty axis: −Inf / +Inf (docs/semantics.md; TF.js cpu gives NaN).
    max: ([x], at, s) => (size(s.shape) > 0 && tt(x).size === 0 ? tf.fill(s.shape, -Infinity) : tf.max(tt(x), at.axes, at.keepDims)),
    min: ([x], at, s) => (size(s.shape) > 0 && tt(x).size === 0 ? tf.fill(s.shape, Infinity) : tf.min(tt(x), at.axes, at.keepDims)),
    softmax: ([x], at) => alongAxis(tt(x), at.axis, (z) => tf.softmax(z)),
    logSoftmax: ([x], at) => alongAxis(tt(x), at.axis, (z) => tf.logSoftmax(z)),
    // The defining formula (TF.js's fused loss has its own convention for the labels gradient).
    softmaxCrossEntropy: ([l, p]) => tf.neg(tf.sum(tf.mul(tt(p), tf.logSoftmax(tt(l))), -1)),
    where: ([c1, c2, a, b], at, s) => {
      // TF.js registers no gradient for comparisons, and its tape refuses one on the path from x to y: take the
      // (piecewise constant) condition off the tape.
      const c = bcast(tf[at.cmp!](tt(c1), tt(c2)), s.shape);
      return tf.where(tf.tensor(c.dataSync(), c.shape, 'bool'), bcast(tt(a), s.shape), bcast(tt(b), s.shape));
    },
    addN: (xs) => tf.addN(xs.map(tt)),
  },
};

/** y = Σₖ sum(outputₖ · wₖ) in symflow. */
export function symflowObjective(recipe: Recipe, vals: readonly sf.Tensor[]): sf.Tensor {
  const terms = recipe.outputs.map((id, k) => {
    const v = vals[id]!;
    // The recipe's static shape (v's may hold an unknown dimension where the input is fed a 0-size one).
    const shape = id < recipe.inputs.length ? recipe.inputs[id]!.shape : recipe.steps.find((s) => s.id === id)!.shape;
    return sf.sum(sf.mul(v, sf.constant({ shape, data: Float32Array.from(recipe.weights[k]!) })));
  });
  return terms.reduce((acc, t) => sf.add(acc, t));
}

/** y = Σₖ sum(outputₖ · wₖ) in TF.js. */
export function tfjsObjective(recipe: Recipe, vals: readonly tf.Tensor[]): tf.Tensor {
  const terms = recipe.outputs.map((id, k) => tf.sum(tf.mul(vals[id]!, tf.tensor(recipe.weights[k]!, vals[id]!.shape, 'float32'))));
  return terms.reduce((acc, t) => tf.add(acc, t));
}

// ---------------------------------------------------------------------------------------------------------------
// Kinks: how far a sample is from each point where an op's value or gradient is not smooth.

/** Gap between the two largest entries along the reduced axes (undefined when at most one entry is reduced). */
function topGap(x: tf.Tensor, axes: number[] | undefined, negate: boolean): tf.Tensor | undefined {
  const r = x.rank;
  if (r === 0) return undefined;
  const red = axes === undefined ? range(r) : axes.map((a) => normAxis(a, r));
  const keep = range(r).filter((a) => !red.includes(a));
  const n = size(red.map((a) => x.shape[a]!));
  if (n < 2) return undefined;
  const y = tf.reshape(tf.transpose(x, [...keep, ...red]), [-1, n]);
  const top = tf.topk(negate ? tf.neg(y) : y, 2).values;
  return tf.sub(tf.slice(top, [0, 0], [-1, 1]), tf.slice(top, [0, 1], [-1, 1]));
}

const KINKS: Partial<Record<OpName, (xs: TX[], at: Attrs) => tf.Tensor | undefined>> = {
  relu: ([x]) => tf.abs(tt(x)),
  abs: ([x]) => tf.abs(tt(x)),
  sign: ([x]) => tf.abs(tt(x)),
  floor: ([x]) => tf.abs(tf.sub(tt(x), tf.round(tt(x)))),
  maximum: ([a, b]) => tf.abs(tf.sub(tt(a), tt(b))),
  minimum: ([a, b]) => tf.abs(tf.sub(tt(a), tt(b))),
  where: ([c1, c2]) => tf.abs(tf.sub(tt(c1), tt(c2))),
  max: ([x], at) => topGap(tt(x), at.axes, false),
  min: ([x], at) => topGap(tt(x), at.axes, true),
};

export interface SampleCheck {
  ok: boolean;
  /** Why the sample was refused (the nearest kink), when it was. */
  why?: string;
}

/**
 * Evaluates the recipe eagerly (TF.js, current backend) at `inputs` and checks the sample: every value finite and
 * inside its static bounds (a generator self-check: a violation throws), and every kink at least MARGIN away.
 */
export function checkSample(recipe: Recipe, inputs: readonly Float32Array[], edge = false): SampleCheck {
  return tf.tidy(() => {
    const xs = recipe.inputs.map((inp, k) => tf.tensor(inputs[k]!, inp.shape, 'float32'));
    const vals = evaluate(recipe, TFJS, xs);
    for (const s of recipe.steps) {
      const v = vals[s.id]!;
      if (!s.shape.every((d, j) => d === v.shape[j]) || s.shape.length !== v.rank) {
        throw new Error(`fuzz generator: v${s.id} = ${s.op} has shape [${v.shape.join(',')}], the generator said [${s.shape.join(',')}]`);
      }
      const data = v.dataSync();
      const kink = KINKS[s.op];
      // An edge sample's values are NaN, infinite or empty wherever an edge value reaches: no bounds to hold.
      if (edge) {
        if (kink === undefined) continue;
        const xsEdge = s.args.map((a) => (a.kind === 'value' ? vals[a.id]! : TFJS.arg(a)));
        const gapEdge = kink(xsEdge, s.attrs);
        if (gapEdge === undefined || gapEdge.size === 0) continue;
        // A NaN gap (NaN or Inf on both sides) is no near-tie that rounding could flip.
        const m = tf.min(tf.where(tf.isNaN(gapEdge), tf.fill(gapEdge.shape, Infinity), gapEdge)).dataSync()[0]!;
        if (!(m >= MARGIN)) return { ok: false, why: `v${s.id} = ${s.op}: an input is ${m.toExponential(2)} from a kink` };
        continue;
      }
      const slack = 1e-4 * (1 + Math.max(Math.abs(s.lo), Math.abs(s.hi)));
      for (const e of data) {
        if (!(e >= s.lo - slack && e <= s.hi + slack)) {
          throw new Error(`fuzz generator: v${s.id} = ${s.op} has a value ${e} outside its bounds [${s.lo}, ${s.hi}]`);
        }
      }
      if (kink === undefined) continue;
      const xsArgs = s.args.map((a) => (a.kind === 'value' ? vals[a.id]! : TFJS.arg(a)));
      const gap = kink(xsArgs, s.attrs);
      if (gap === undefined || gap.size === 0) continue;
      const m = tf.min(gap).dataSync()[0]!;
      if (!(m >= MARGIN)) return { ok: false, why: `v${s.id} = ${s.op}: an input is ${m.toExponential(2)} from a kink` };
    }
    return { ok: true };
  });
}
