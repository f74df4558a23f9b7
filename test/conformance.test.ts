// Conformance: every op × edge inputs (NaN, ±Inf, −0, empty tensors, int32 overflow, out-of-range indices) × every
// backend, bit for bit, against a reference implementation of docs/semantics.md written here in plain JS. The op
// list is read from that document's table: an op documented without rows here, or tested without a row there,
// fails the suite. Rows marked `fold` also run with constant inputs, so the constant folder is held to it too, and
// every op record with a host evaluator must be folded by some fold row.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as sf from '../src/index.js';
import { type HostTensor, Session, SymflowError, type Tensor } from '../src/index.js';
import { allOps } from '../src/graph/registry.js';
import { BACKENDS } from './helpers.js';

type DT = 'float32' | 'int32' | 'bool';
interface Arr { shape: number[]; dtype: DT; data: number[] }
interface Row {
  /** The op of docs/semantics.md this row holds to it. */
  op: string;
  what: string;
  inputs: Arr[];
  build: (xs: Tensor[]) => Tensor;
  /** The expected value by the rules of docs/semantics.md, or the error expected. */
  ref: (xs: Arr[]) => Arr | RegExp;
  /** The sign of a zero result is unspecified (maximum, minimum, relu). */
  anyZeroSign?: boolean;
  /** Also run with constant inputs (constant-folded on the host). */
  fold?: boolean;
  /** Placeholders keep their 0-size dimensions (by default those are unknown, so nothing is known at build time). */
  static?: boolean;
}

const N = NaN, INF = Infinity, I32_MIN = -(2 ** 31), I32_MAX = 2 ** 31 - 1;
const F = Math.fround;
const arr = (shape: number[], data: number[], dtype: DT = 'float32'): Arr => ({ shape, dtype, data });
const f = (...data: number[]) => arr([data.length], data);
const i32 = (...data: number[]) => arr([data.length], data, 'int32');
const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const rng = (n: number) => Array.from({ length: n }, (_, k) => k);

// ---------------------------------------------------------------------------------------------------------------
// The reference: docs/semantics.md in plain JS (doubles rounded to float32, or wrapped to int32, per op).

const round = (dtype: DT, v: number) => (dtype === 'float32' ? F(v) : dtype === 'int32' ? v | 0 : v ? 1 : 0);

/** Elementwise with NumPy broadcasting. */
function zip(xs: Arr[], dtype: DT, fn: (...v: number[]) => number): Arr {
  const rank = Math.max(...xs.map((x) => x.shape.length));
  const shape = rng(rank).map((d) => Math.max(...xs.map((x) => x.shape[x.shape.length - rank + d] ?? 1)));
  const at = (x: Arr, flat: number) => {
    let off = 0, stride = 1;
    for (let d = rank - 1, rest = flat; d >= 0; d--) {
      const k = rest % shape[d]!, dim = x.shape[x.shape.length - rank + d] ?? 1;
      rest = Math.floor(rest / shape[d]!);
      if (dim !== 1) off += k * stride;
      stride *= dim;
    }
    return x.data[off]!;
  };
  return arr(shape, rng(size(shape)).map((k) => round(dtype, fn(...xs.map((x) => at(x, k))))), dtype);
}
const un = (fn: (v: number) => number) => ([x]: Arr[]) => zip([x!], x!.dtype, fn);
const bi = (fn: (a: number, b: number) => number, out?: DT) => ([a, b]: Arr[]) => zip([a!, b!], out ?? a!.dtype, fn);

const cPow = (a: number, b: number) => (a === 1 || (a === -1 && Math.abs(b) === INF) ? 1 : Math.pow(a, b));
const signOf = (v: number) => (v > 0 ? 1 : v < 0 ? -1 : v === 0 ? 0 : NaN);
const nanMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
const nanMin = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));
const floorDiv = (a: number, b: number) => (b === 0 ? 0 : Math.floor(a / b));
const castTo = (to: DT) => (v: number) => {
  if (to === 'bool') return v !== 0 ? 1 : 0;
  if (to === 'int32') return Number.isNaN(v) ? 0 : Math.trunc(Math.min(Math.max(v, I32_MIN), I32_MAX));
  return v;
};

/** A reduction over `axes`, in index order, from `init`. */
function reduce(x: Arr, axes: number[], keepDims: boolean, init: number, step: (acc: number, v: number) => number): Arr {
  const outShape = keepDims ? x.shape.map((d, k) => (axes.includes(k) ? 1 : d)) : x.shape.filter((_, k) => !axes.includes(k));
  const kept = x.shape.map((d, k) => (axes.includes(k) ? 1 : d));
  const acc = new Array<number>(size(outShape)).fill(init);
  for (let flat = 0; flat < x.data.length; flat++) {
    let out = 0, stride = 1;
    for (let d = x.shape.length - 1, rest = flat; d >= 0; d--) {
      const k = rest % x.shape[d]!;
      rest = Math.floor(rest / x.shape[d]!);
      if (!axes.includes(d)) out += k * stride;
      stride *= kept[d]!;
    }
    acc[out] = step(acc[out]!, x.data[flat]!);
  }
  return arr(outShape, acc.map((v) => round(x.dtype, v)), x.dtype);
}
const rows2 = (x: Arr) => rng(x.shape[0]!).map((r) => x.data.slice(r * x.shape[1]!, (r + 1) * x.shape[1]!));
const argMaxRow = (row: number[]) => {
  const nan = row.findIndex((v) => Number.isNaN(v));
  return nan >= 0 ? nan : row.reduce((best, v, k) => (v > row[best]! ? k : best), 0);
};
function softmaxRows(x: Arr, log: boolean): Arr {
  const out = rows2(x).flatMap((row) => {
    const m = row.reduce(nanMax, -INF);
    const z = row.map((v) => F(v - m));
    const s = F(z.reduce((acc, v) => F(acc + F(Math.exp(v))), 0));
    return z.map((v) => (log ? F(v - F(Math.log(s))) : F(F(Math.exp(v)) / s)));
  });
  return arr(x.shape, out);
}

// ---------------------------------------------------------------------------------------------------------------
// The rows.

const EDGE = [N, INF, -INF, -0, 0, 1, -1, 0.5, -2.5, 3e9];
const EXACT = [N, INF, -INF, -0, 0];
const empty = (shape: number[], dtype: DT = 'float32') => arr(shape, [], dtype);
const nanGrid = arr([3, 3], [N, 1, 2, 1, N, 2, 1, 2, N]);

const unaryRow = (op: string, fn: (x: Tensor) => Tensor, ref: (v: number) => number, data: number[], dtype: DT = 'float32', out?: DT): Row =>
  ({ op, what: `${dtype} edge values${out ? ` to ${out}` : ''}`, inputs: [arr([data.length], data, dtype)], build: ([x]) => fn(x!), ref: ([x]) => zip([x!], out ?? dtype, ref), fold: true });
const castRow = (to: DT, data: number[], from: DT = 'float32') => unaryRow('cast', (x) => sf.cast(x, to), castTo(to), data, from, to);
const binaryRow = (op: string, fn: (a: Tensor, b: Tensor) => Tensor, ref: (a: number, b: number) => number, a: Arr, b: Arr, what: string, out?: DT): Row =>
  ({ op, what, inputs: [a, b], build: ([x, y]) => fn(x!, y!), ref: bi(ref, out), fold: true });
const emptyUnary = (op: string, fn: (x: Tensor) => Tensor, ref: (v: number) => number): Row =>
  ({ op, what: 'empty', inputs: [empty([0, 3])], build: ([x]) => fn(x!), ref: un(ref) });

// --- activations and scans (issue 12) ---
/** gelu at the values its formula gives exactly (both forms): NaN, −Inf → NaN, Inf, ±0, ±10 → 10 and −0. */
const geluEdge = (v: number) => (Number.isNaN(v) || v === -INF ? N : v === 0 ? v : v > 0 ? v : -0);
/** cumsum along `axis` of a 2-D array: float32 rounds after each add, int32 wraps; the first element is copied. */
function cumsumRef(x: Arr, axis: number, exclusive: boolean, reverse: boolean): Arr {
  const [r, c] = x.shape as [number, number];
  const out = new Array<number>(r * c).fill(0);
  const n = axis === 0 ? r : c, lines = axis === 0 ? c : r;
  const at = (line: number, k: number) => (axis === 0 ? k * c + line : line * c + k);
  for (let line = 0; line < lines; line++) {
    let acc = 0;
    for (let s = 0; s < n; s++) {
      const k = reverse ? n - 1 - s : s;
      const v = x.data[at(line, k)]!;
      if (exclusive) {
        out[at(line, k)] = acc;
        acc = round(x.dtype, acc + v);
      } else {
        acc = s === 0 ? v : round(x.dtype, acc + v);
        out[at(line, k)] = acc;
      }
    }
  }
  return arr(x.shape, out, x.dtype);
}
const cumsumRow = (what: string, x: Arr, axis: number, exclusive: boolean, reverse: boolean): Row =>
  ({ op: 'cumsum', what, inputs: [x], build: ([t]) => sf.cumsum(t!, axis, { exclusive, reverse }), ref: ([v]) => cumsumRef(v!, axis, exclusive, reverse), fold: true });

const ROWS: Row[] = [
  binaryRow('add', sf.add, (a, b) => a + b, f(N, INF, INF, -0, -0, 1), f(1, -INF, 1, -0, 0, N), 'IEEE: NaN, Inf − Inf, −0 + −0'),
  binaryRow('add', sf.add, (a, b) => a + b, i32(I32_MAX, I32_MIN), i32(1, -1), 'int32 wraps'),
  binaryRow('sub', sf.sub, (a, b) => a - b, f(INF, -0, 0, N), f(INF, 0, 0, 1), 'IEEE: Inf − Inf, −0 − 0'),
  binaryRow('sub', sf.sub, (a, b) => a - b, i32(I32_MIN), i32(1), 'int32 wraps'),
  binaryRow('mul', sf.mul, (a, b) => a * b, f(0, -0, INF, N, -1), f(INF, 1, -1, 0, 0), 'IEEE: 0 · Inf, signed zeros'),
  binaryRow('mul', sf.mul, Math.imul, i32(I32_MAX, 65537, I32_MIN, 123456789), i32(I32_MAX, 65537, -1, 987654321), 'int32 wraps (low 32 bits, past 2^53)'),
  binaryRow('div', sf.div, (a, b) => a / b, f(1, -1, 0, 1, INF, N, -0), f(-0, 0, 0, INF, INF, 1, 5), 'IEEE: 1 / −0, 0 / 0, Inf / Inf'),
  binaryRow('div', sf.div, floorDiv, i32(7, -7, 7, -7, 0, 5, -5), i32(2, 2, -2, -2, 0, 0, 0), 'int32 floors; x / 0 = 0 (issue 10)'),
  binaryRow('div', sf.div, floorDiv, i32(I32_MIN, I32_MAX, 16777217, -16777219), i32(-1, 1, 1, 3), 'int32 exact past 2^24; INT32_MIN / −1 wraps'),
  binaryRow('maximum', sf.maximum, nanMax, f(N, 1, N, INF, -INF, 2), f(1, N, N, N, 0, -0), 'NaN on either side propagates'),
  binaryRow('maximum', sf.maximum, nanMax, arr([2, 2], [1, 2, 3, 4]), f(N, 0), 'NaN broadcast along rows'),
  { ...binaryRow('maximum', sf.maximum, nanMax, f(-0, 0, -0), f(0, -0, -0), 'zeros (sign unspecified)'), anyZeroSign: true },
  binaryRow('minimum', sf.minimum, nanMin, f(N, 1, N, INF, -INF, 2), f(1, N, N, N, 0, -0), 'NaN on either side propagates'),
  { ...binaryRow('minimum', sf.minimum, nanMin, f(-0, 0, -0), f(0, -0, -0), 'zeros (sign unspecified)'), anyZeroSign: true },
  binaryRow('pow', sf.pow, cPow, f(1, N, -1, -1, 0, -0, -8, 2, INF, -INF, 0, 2, 2), f(N, 0, INF, -INF, -1, -1, 1 / 3, -INF, -1, 3, 0, 10, -2.0), 'C pow: pow(1, NaN) = 1, pow(−1, Inf) = 1, zeros'),
  binaryRow('pow', sf.pow, (a, b) => castTo('int32')(a ** b), i32(2, -2, 3, 0, 46341, -46341, 2, 0, -1), i32(3, 3, 0, 0, 2, 3, -1, -1, -1), 'int32 truncates and saturates as a cast'),
  unaryRow('neg', sf.neg, (v) => -v, EDGE),
  unaryRow('neg', sf.neg, (v) => -v, [I32_MIN, 0, 5], 'int32'),
  unaryRow('abs', sf.abs, Math.abs, EDGE),
  unaryRow('abs', sf.abs, Math.abs, [I32_MIN, -3], 'int32'),
  unaryRow('sign', sf.sign, signOf, EDGE),
  unaryRow('sign', sf.sign, signOf, [0, -5, 5, I32_MIN], 'int32'),
  unaryRow('exp', sf.exp, Math.exp, EXACT),
  unaryRow('log', sf.log, Math.log, [...EXACT, 1, -1]),
  unaryRow('sqrt', sf.sqrt, Math.sqrt, [...EXACT, 4, -1, 0.25]),
  unaryRow('sigmoid', sf.sigmoid, (v) => 1 / (1 + Math.exp(-v)), EXACT),
  unaryRow('tanh', sf.tanh, Math.tanh, EXACT),
  unaryRow('sin', sf.sin, Math.sin, EXACT),
  unaryRow('cos', sf.cos, Math.cos, EXACT),
  unaryRow('floor', sf.floor, Math.floor, [...EDGE, -0.5, 2.5]),
  unaryRow('square', sf.square, (v) => v * v, EDGE),
  unaryRow('square', sf.square, (v) => Math.imul(v, v), [65536, 46341], 'int32'),
  unaryRow('reciprocal', sf.reciprocal, (v) => 1 / v, [...EXACT, 4, -0.5]),
  { ...unaryRow('relu', sf.relu, (v) => nanMax(v, 0), EDGE), anyZeroSign: true },
  { ...castRow('bool', [0.5, -0.7, 2, 1]), what: 'float32 → bool: nonzero is true (issue 10)' },
  castRow('bool', [N, -0, 0, INF, -INF, 1e-45]),
  castRow('bool', [0, 1, -1, 7, I32_MIN], 'int32'),
  { ...castRow('int32', [N, INF, -INF, 3e9, -3e9]), what: 'NaN, ±Inf, 3e9 → int32 saturate, NaN → 0 (issue 10)' },
  castRow('int32', [2 ** 31, -(2 ** 31), 2147483520, -0, 2.5, -2.5, 0.99, -0.99]),
  castRow('float32', [I32_MAX, I32_MIN, 16777217, -16777219, 0], 'int32'),
  { ...unaryRow('cast', (x) => sf.add(sf.cast(x, 'float32'), 1), (v) => F(F(v) + 1), [16777217], 'int32', 'float32'), what: 'int32 → float32 rounds before the next op' },
  { op: 'cast', what: 'bool → float32, int32', inputs: [arr([3], [1, 0, 1], 'bool')], build: ([x]) => sf.concat([sf.cast(x!, 'float32'), sf.cast(sf.cast(x!, 'int32'), 'float32')]), ref: ([x]) => arr([6], [...x!.data, ...x!.data]) },
  ...(['greater', 'less', 'greaterEqual', 'lessEqual', 'equal', 'notEqual'] as const).map((op) => {
    const fns = { greater: (a: number, b: number) => a > b, less: (a: number, b: number) => a < b, greaterEqual: (a: number, b: number) => a >= b,
      lessEqual: (a: number, b: number) => a <= b, equal: (a: number, b: number) => a === b, notEqual: (a: number, b: number) => a !== b };
    return binaryRow(op, sf[op], (a, b) => +fns[op](a, b), f(N, N, 1, -0, INF, -INF, INF), f(N, 1, N, 0, INF, -INF, -INF), 'NaN, −0 == +0, infinities', 'bool');
  }),
  ...(['logicalAnd', 'logicalOr'] as const).map((op) => binaryRow(op, sf[op], op === 'logicalAnd' ? (a, b) => a & b : (a, b) => a | b,
    arr([4], [0, 0, 1, 1], 'bool'), arr([4], [0, 1, 0, 1], 'bool'), 'truth table')),
  { op: 'logicalNot', what: 'truth table and empty', inputs: [arr([2], [0, 1], 'bool'), empty([0], 'bool')], build: ([x, e]) => sf.concat([sf.logicalNot(x!), sf.logicalNot(e!)]), ref: () => arr([2], [1, 0], 'bool'), fold: true },
  { op: 'where', what: 'selects NaN and −0 as they are', inputs: [f(N, -0, 1, 2), f(5, 6, N, -0)], build: ([a, b]) => sf.where(sf.greater(sf.constant([1, 0, 0, 1]), 0), a!, b!),
    ref: ([a, b]) => arr([4], [a!.data[0]!, b!.data[1]!, b!.data[2]!, a!.data[3]!]), fold: true },
  { op: 'sum', what: 'over 0 rows is 0 (issue 10)', inputs: [empty([0, 3])], build: ([x]) => sf.sum(x!, 0), ref: ([x]) => reduce(x!, [0], false, 0, (a, v) => a + v) },
  { op: 'sum', what: 'all of an empty tensor, keepDims', inputs: [empty([2, 0])], build: ([x]) => sf.sum(x!, [0, 1], true), ref: ([x]) => reduce(x!, [0, 1], true, 0, (a, v) => a + v) },
  { op: 'sum', what: 'int32 wraps', inputs: [arr([2, 2], [I32_MAX, 1, 3, 4], 'int32')], build: ([x]) => sf.sum(x!, 1), ref: ([x]) => reduce(x!, [1], false, 0, (a, v) => a + v) },
  { op: 'sum', what: 'NaN and Inf', inputs: [arr([3, 2], [N, 1, INF, 1, INF, -INF])], build: ([x]) => sf.sum(x!, 1), ref: ([x]) => reduce(x!, [1], false, 0, (a, v) => a + v) },
  { op: 'mean', what: 'over 0 rows is NaN (issue 10)', inputs: [empty([0, 3])], build: ([x]) => sf.mean(x!, 0), ref: ([x]) => zip([reduce(x!, [0], false, 0, (a, v) => a + v)], 'float32', (s) => s / 0) },
  { op: 'mean', what: 'over 0 rows of a static shape', inputs: [empty([0, 2])], build: ([x]) => sf.mean(x!, 0), ref: () => f(N, N), static: true },
  { op: 'max', what: 'with NaN is NaN (issue 10)', inputs: [nanGrid], build: ([x]) => sf.max(x!, 1), ref: ([x]) => reduce(x!, [1], false, -INF, nanMax) },
  { op: 'max', what: 'over 0 rows is −Inf', inputs: [empty([0, 3])], build: ([x]) => sf.max(x!, 0), ref: ([x]) => reduce(x!, [0], false, -INF, nanMax) },
  { op: 'max', what: 'int32 over 0 rows is INT32_MIN', inputs: [empty([0, 2], 'int32')], build: ([x]) => sf.max(x!, 0, true), ref: ([x]) => reduce(x!, [0], true, I32_MIN, Math.max) },
  { op: 'min', what: 'with NaN is NaN', inputs: [nanGrid], build: ([x]) => sf.min(x!, 1), ref: ([x]) => reduce(x!, [1], false, INF, nanMin) },
  { op: 'min', what: 'over 0 rows is +Inf', inputs: [empty([0, 3])], build: ([x]) => sf.min(x!, 0), ref: ([x]) => reduce(x!, [0], false, INF, nanMin) },
  { op: 'min', what: 'int32 at INT32_MIN, and empty', inputs: [arr([2, 2], [I32_MIN, 5, I32_MAX, 3], 'int32'), empty([0], 'int32')], build: ([x, e]) => sf.concat([sf.min(x!, 1), sf.expandDims(sf.min(e!), 0)]),
    ref: () => i32(I32_MIN, 3, I32_MAX) },
  { op: 'argMax', what: 'the first NaN is the largest', inputs: [arr([5, 3], [N, 1, 2, 1, N, 2, 1, 2, N, INF, N, INF, -0, 0, -1])], build: ([x]) => sf.argMax(x!, 1),
    ref: ([x]) => arr([5], rows2(x!).map(argMaxRow), 'int32') },
  { op: 'argMax', what: 'an empty axis is an error', inputs: [empty([0, 3])], build: ([x]) => sf.argMax(x!, 0), ref: () => /argMax/ },
  { op: 'matMul', what: 'inner dimension 0 is zeros', inputs: [empty([2, 0]), empty([0, 3])], build: ([a, b]) => sf.matMul(a!, b!), ref: () => arr([2, 3], new Array(6).fill(0)) },
  { op: 'matMul', what: 'inner dimension 0 with bias (fused)', inputs: [empty([2, 0]), empty([0, 3]), f(1, -2, N)], build: ([a, b, c]) => sf.relu(sf.add(sf.matMul(a!, b!), c!)),
    ref: () => arr([2, 3], [1, 0, N, 1, 0, N]) },
  { op: 'matMul', what: 'Inf · 0, NaN, empty outer dims', inputs: [arr([2, 2], [INF, 1, N, 0]), arr([2, 1], [0, 1]), empty([0, 2])],
    build: ([a, b, e]) => sf.concat([sf.matMul(a!, b!), sf.matMul(e!, b!)]), ref: () => arr([2, 1], [N, N]) },
  { op: 'transpose', what: 'bits and empty', inputs: [arr([2, 2], [N, -0, INF, 1]), empty([0, 2])], build: ([x, e]) => sf.concat([sf.reshape(sf.transpose(x!), [4]), sf.reshape(sf.transpose(e!), [0])]),
    ref: () => f(N, INF, -0, 1) },
  { op: 'reshape', what: 'empty', inputs: [empty([0, 3])], build: ([x]) => sf.reshape(x!, [3, 0, 1]), ref: () => empty([3, 0, 1]) },
  { op: 'expandDims', what: 'empty', inputs: [empty([0])], build: ([x]) => sf.expandDims(x!, 1), ref: () => empty([0, 1]) },
  { op: 'squeeze', what: 'empty', inputs: [empty([0, 1])], build: ([x]) => sf.squeeze(x!, 1), ref: () => empty([0]) },
  { op: 'identity', what: 'keeps −0 and NaN', inputs: [f(-0, N)], build: ([x]) => sf.identity(x!), ref: ([x]) => x!, fold: true },
  { op: 'stopGradient', what: 'keeps −0 and NaN', inputs: [f(-0, N)], build: ([x]) => sf.stopGradient(x!), ref: ([x]) => x!, fold: true },
  {
    op: 'customGradient', what: "keeps f's −0 and NaN", inputs: [f(-0, N), f(1, 2)],
    build: ([x, w]) => sf.customGradient((a: Tensor, _b: Tensor) => a, (_xs, _y, dy) => [dy, undefined])(x!, w!), ref: ([x]) => x!,
  },
  { op: 'concat', what: 'empty parts', inputs: [empty([0, 2]), arr([1, 2], [-0, N]), empty([0, 2])], build: (xs) => sf.concat(xs, 0), ref: ([, x]) => x! },
  { op: 'slice', what: 'empty result, −0 kept', inputs: [f(-0, 1, 2)], build: ([x]) => sf.concat([sf.slice(x!, [1], [0]), sf.slice(x!, [0], [1])]), ref: () => f(-0) },
  { op: 'pad', what: 'empty input, NaN fill', inputs: [empty([0, 2])], build: ([x]) => sf.pad(x!, [[1, 0], [0, 1]], N), ref: () => arr([1, 3], [N, N, N]) },
  { op: 'gather', what: 'index −1 is an error (issue 10)', inputs: [f(1, 2, 3), i32(-1)], build: ([x, i]) => sf.gather(x!, i!), ref: () => /gather/ },
  { op: 'gather', what: 'index n is an error', inputs: [arr([3, 2], [1, 2, 3, 4, 5, 6]), i32(0, 3)], build: ([x, i]) => sf.gather(x!, i!), ref: () => /gather/ },
  { op: 'gather', what: 'empty indices, empty rows', inputs: [empty([0, 2]), empty([0], 'int32'), f(N, -0)], build: ([x, i, y]) => sf.concat([sf.reshape(sf.gather(x!, i!), [0]), sf.gather(y!, sf.constant(Int32Array.of(1, 0)))]),
    ref: () => f(-0, N) },
  { op: 'oneHot', what: 'out of range and negative give offValue rows', inputs: [i32(-1, 0, 2, 3, I32_MIN)], build: ([x]) => sf.oneHot(x!, 3, { onValue: 5, offValue: -0 }),
    ref: ([x]) => arr([5, 3], x!.data.flatMap((v) => rng(3).map((c) => (c === v ? 5 : -0)))) },
  { op: 'oneHot', what: 'empty', inputs: [empty([0], 'int32')], build: ([x]) => sf.oneHot(x!, 3), ref: () => empty([0, 3]) },
  { op: 'unsortedSegmentSum', what: 'ids out of range are dropped', inputs: [f(1, 2, 4, 8, N), i32(0, -1, 2, 1, I32_MAX)], build: ([x, i]) => sf.unsortedSegmentSum(x!, i!, 2), ref: () => f(1, 8) },
  { op: 'unsortedSegmentSum', what: 'empty data', inputs: [empty([0, 2]), empty([0], 'int32')], build: ([x, i]) => sf.unsortedSegmentSum(x!, i!, 2), ref: () => arr([2, 2], [0, 0, 0, 0]) },
  { op: 'addN', what: '−0 + −0 = −0, NaN', inputs: [f(-0, N, 1), f(-0, 1, INF), f(-0, 1, -INF)], build: (xs) => sf.addN(xs), ref: (xs) => zip(xs, 'float32', (a, b, c) => a + b + c) },
  { op: 'zerosLike', what: 'empty, int32', inputs: [empty([0, 2]), i32(3, 4)], build: ([e, x]) => sf.concat([sf.reshape(sf.zerosLike(e!), [0]), sf.cast(sf.zerosLike(x!), 'float32')]), ref: () => f(0, 0) },
  { op: 'onesLike', what: 'empty, bool', inputs: [empty([0]), arr([2], [0, 1], 'bool')], build: ([e, x]) => sf.concat([sf.onesLike(e!), sf.cast(sf.onesLike(x!), 'float32')]), ref: () => f(1, 1) },
  { op: 'softmax', what: 'rows with ±Inf, and empty', inputs: [arr([3, 2], [INF, 1, -INF, -INF, 0, 0]), empty([0, 2])], build: ([x, e]) => sf.concat([sf.softmax(x!), sf.softmax(e!)]),
    ref: ([x]) => softmaxRows(x!, false) },
  { op: 'logSoftmax', what: 'rows with ±Inf, and empty', inputs: [arr([3, 2], [INF, 1, -INF, -INF, 0, 0]), empty([0, 2])], build: ([x, e]) => sf.concat([sf.logSoftmax(x!), sf.logSoftmax(e!)]),
    ref: ([x]) => softmaxRows(x!, true) },
  { op: 'softmaxCrossEntropy', what: '0 classes is −0', inputs: [empty([2, 0]), empty([2, 0])], build: ([l, p]) => sf.softmaxCrossEntropy(l!, p!), ref: () => f(-0, -0) },
  { op: 'softmaxCrossEntropy', what: 'NaN and Inf logits', inputs: [arr([2, 2], [N, 0, INF, 0]), arr([2, 2], [0.5, 0.5, 1, 0])], build: ([l, p]) => sf.softmaxCrossEntropy(l!, p!), ref: () => f(N, N) },
  { op: 'sparseSoftmaxCrossEntropy', what: 'a label out of range is an error', inputs: [arr([2, 2], [0, 0, 1, 1]), i32(1, 2)], build: ([l, y]) => sf.sparseSoftmaxCrossEntropy(l!, y!), ref: () => /sparseSoftmaxCrossEntropy/ },
  { op: 'sparseSoftmaxCrossEntropy', what: 'NaN logits, empty batch', inputs: [arr([1, 2], [N, 0]), i32(1), empty([0, 2]), empty([0], 'int32')],
    build: ([l, y, le, ye]) => sf.concat([sf.sparseSoftmaxCrossEntropy(l!, y!), sf.sparseSoftmaxCrossEntropy(le!, ye!)]), ref: () => f(N) },
  { op: 'meanSquaredError', what: 'empty is NaN', inputs: [empty([0, 2]), empty([0, 2])], build: ([a, b]) => sf.meanSquaredError(a!, b!), ref: () => arr([], [N]) },
  { op: 'broadcastLike', what: 'to an empty batch', inputs: [f(1, 2), empty([0, 2])], build: ([x, like]) => sf.broadcastLike(x!, like!), ref: () => empty([0, 2]) },
  { op: 'sumToShape', what: 'of an empty batch is zeros', inputs: [empty([0, 3]), f(1, 2, 3)], build: ([x, like]) => sf.sumToShape(x!, like!), ref: () => f(0, 0, 0) },
  { op: 'reshapeLike', what: 'to an empty shape', inputs: [empty([0, 2]), empty([2, 0])], build: ([x, like]) => sf.reshapeLike(x!, like!), ref: () => empty([2, 0]) },
  { op: 'shapeSize', what: 'of an empty batch is 0', inputs: [empty([0, 3])], build: ([x]) => sf.shapeSize(x!, 0), ref: () => arr([], [0]) },
  emptyUnary('exp', sf.exp, Math.exp),
  emptyUnary('cos', sf.cos, Math.cos),
  // --- activations and scans (issue 12) ---
  // Transcendental ones on the values every backend gives exactly (the rest: test/activations.test.ts, to an ulp).
  unaryRow('erf', sf.erf, (v) => (v === 0 || Number.isNaN(v) ? v : Math.sign(v)), [...EXACT, 5, -5, 30]),
  emptyUnary('erf', sf.erf, (v) => v),
  unaryRow('softplus', sf.softplus, (v) => (Number.isNaN(v) ? v : v === -INF ? 0 : v === 0 ? Math.LN2 : v), [...EXACT, 20, 100, 1e30]),
  emptyUnary('softplus', sf.softplus, (v) => v),
  unaryRow('gelu', sf.gelu, geluEdge, [...EXACT, 10, -10, 1e30]),
  { ...unaryRow('gelu', (x) => sf.gelu(x, { approximate: 'tanh' }), geluEdge, [...EXACT, 10, -10, 1e30]), what: "approximate 'tanh': edge values" },
  unaryRow('silu', sf.silu, (v) => (v === -INF ? N : v), EXACT),
  {
    op: 'logSumExp', what: 'rows of −Inf, +Inf beside −Inf, NaN, ±1e30 (issue 12)', inputs: [arr([6, 3], [-INF, -INF, -INF, INF, 1, -INF, N, 1, 2, 1e30, -1e30, 0, -1e30, -1e30, -INF, 0, -INF, -INF])],
    build: ([x]) => sf.logSumExp(x!, 1), ref: () => f(-INF, INF, N, 1e30, -1e30, 0),
  },
  { op: 'logSumExp', what: 'over an empty axis is −Inf, keepDims', inputs: [empty([2, 0])], build: ([x]) => sf.logSumExp(x!, 1, { keepDims: true }), ref: () => arr([2, 1], [-INF, -INF]), static: true },
  { op: 'logSumExp', what: 'of an empty batch is empty', inputs: [empty([0, 3])], build: ([x]) => sf.logSumExp(x!, -1), ref: () => empty([0]) },
  cumsumRow('float32: −0 copied, order of rounding, NaN, ±Inf', arr([2, 4], [-0, -0, 1e8, 1, 1e8, -1e8, 1, 1]), 1, false, false),
  cumsumRow('float32 exclusive starts at +0', arr([2, 4], [-0, -0, N, 1, INF, -INF, 2, 3]), 1, true, false),
  cumsumRow('float32 reverse', arr([2, 4], [-0, 1, N, 1, INF, 1e8, 1, -1e8]), 1, false, true),
  cumsumRow('exclusive and reverse along axis 0', arr([3, 2], [1, N, -0, 2, 4, -0]), 0, true, true),
  cumsumRow('int32 wraps', arr([2, 3], [I32_MAX, 1, 5, I32_MIN, -1, 1], 'int32'), 1, false, false),
  cumsumRow('int32 exclusive reverse', arr([2, 3], [I32_MAX, 1, 5, I32_MIN, -1, 1], 'int32'), 1, true, true),
  { op: 'cumsum', what: 'empty', inputs: [empty([0, 3])], build: ([x]) => sf.cumsum(x!, 1, { reverse: true }), ref: () => empty([0, 3]) },
  { op: 'cumsum', what: 'along an empty axis', inputs: [empty([2, 0], 'int32')], build: ([x]) => sf.cumsum(x!, 1, { exclusive: true }), ref: () => empty([2, 0], 'int32'), static: true },
  binaryRow('clipByValue', (x, lo) => sf.clipByValue(x, lo, 1), (v, lo) => nanMin(nanMax(v, lo), 1), f(N, -INF, INF, -0, 0, -5, 5, 0.5, -1, 1), f(-1), 'NaN, ±Inf, ±0, the bounds'),
  binaryRow('clipByValue', (x, lo) => sf.clipByValue(x, lo, 5), (v, lo) => Math.min(Math.max(v, lo), 5), i32(I32_MIN, -3, -2, 0, 7, I32_MAX), i32(-2), 'int32'),
  { op: 'clipByValue', what: 'tensor bounds broadcast; lo > hi gives hi', inputs: [arr([2, 3], [-2, 0.5, 2, -0, N, 9]), f(-1, 0, 3), f(1, 1, 2)], build: ([x, lo, hi]) => sf.clipByValue(x!, lo!, hi!),
    ref: ([x, lo, hi]) => zip([x!, lo!, hi!], 'float32', (v, l, h) => nanMin(nanMax(v, l), h)), fold: true },
  // --- pooling (issue 12) ---
  ...poolRows(),
  // --- convolutions (issue 12) ---
  ...convRows(),
];

function poolRows(): Row[] {
  const nhwc = (shape: number[], data: number[]) => arr(shape, data);
  const maxGrad = (x: Tensor, dy: Tensor, opts: sf.PoolOptions) => sf.gradients(sf.sum(sf.mul(sf.maxPool(x, opts), dy)), x);
  const avgGrad = (x: Tensor, dy: Tensor, opts: sf.PoolOptions) => sf.gradients(sf.sum(sf.mul(sf.avgPool(x, opts), dy)), x);
  return [
    // 'same' 2×2 stride 2 on 3×3: windows [N 1; −I −I], [−0; −I], [−I −I], [−0] (padding never wins).
    { op: 'maxPool', what: 'a NaN window is NaN; −Inf and −0 kept; padding never wins', inputs: [nhwc([1, 3, 3, 1], [N, 1, -0, -INF, -INF, -INF, -INF, -INF, -0])],
      build: ([x]) => sf.maxPool(x!, { size: 2, padding: 'same' }), ref: () => nhwc([1, 2, 2, 1], [N, -0, -INF, -0]) },
    { op: 'maxPool', what: 'NaN after the maximum, +Inf', inputs: [nhwc([1, 2, 4, 1], [3, INF, 1, N, 5, 2, -1, 0])],
      build: ([x]) => sf.maxPool(x!, { size: 2 }), ref: () => nhwc([1, 1, 2, 1], [INF, N]) },
    { op: 'maxPool', what: 'empty batch, empty channels', inputs: [empty([0, 2, 2, 1]), empty([1, 2, 2, 0])],
      build: ([x, y]) => sf.concat([sf.reshape(sf.maxPool(x!, { size: 2 }), [0]), sf.reshape(sf.maxPool(y!, { size: 2, padding: 'same' }), [0])]), ref: () => empty([0]) },
    { op: 'avgPool', what: "NaN and Inf − Inf are NaN; 'same' divides by the valid count", inputs: [nhwc([1, 3, 3, 1], [N, 1, 2, INF, 3, 4, -INF, INF, 6])],
      build: ([x]) => sf.avgPool(x!, { size: 2, padding: 'same' }), ref: () => nhwc([1, 2, 2, 1], [N, 3, N, 6]) },
    { op: 'avgPool', what: 'a window of −0 is +0 (a sum from +0), Inf', inputs: [nhwc([1, 2, 4, 1], [-0, -0, INF, 1, -0, -0, 2, 3])],
      build: ([x]) => sf.avgPool(x!, { size: 2 }), ref: () => nhwc([1, 1, 2, 1], [0, INF]) },
    { op: 'avgPool', what: 'empty batch, empty channels', inputs: [empty([0, 2, 2, 1]), empty([1, 2, 2, 0])],
      build: ([x, y]) => sf.concat([sf.reshape(sf.avgPool(x!, { size: 2 }), [0]), sf.reshape(sf.avgPool(y!, { size: 2, padding: 'same' }), [0])]), ref: () => empty([0]) },
    // Windows [1 1; 2 2] → the first 2; [Inf NaN; −Inf −Inf] → Inf (NaN ranks as +Inf, the first wins).
    { op: 'maxPoolGrad', what: 'to the first maximum; NaN ranks as +Inf; a sum from +0 (−0 dy gives +0), NaN dy kept', inputs: [nhwc([1, 2, 4, 1], [1, 1, INF, N, 2, 2, -INF, -INF]), nhwc([1, 1, 2, 1], [-0, N])],
      build: ([x, dy]) => maxGrad(x!, dy!, { size: 2 }), ref: () => nhwc([1, 2, 4, 1], [0, 0, N, 0, 0, 0, 0, 0]) },
    // Windows [N 5; −I −I], [−I −F32_MAX; −I −I]: the NaN; the first −Inf (ranked as −F32_MAX, tied).
    { op: 'maxPoolGrad', what: 'a NaN window sends dy to its NaN; −Inf ties with −F32_MAX', inputs: [nhwc([1, 2, 4, 1], [N, 5, -INF, -F(3.4028234663852886e38), -INF, -INF, -INF, -INF]), nhwc([1, 1, 2, 1], [2, 3])],
      build: ([x, dy]) => maxGrad(x!, dy!, { size: 2 }), ref: () => nhwc([1, 2, 4, 1], [2, 0, 3, 0, 0, 0, 0, 0]) },
    { op: 'maxPoolGrad', what: 'finite dy: a −0 dy gives +0, negative dy kept; windows [0 −1; 2 −3], [−0 −0; −0 −0]', inputs: [nhwc([1, 2, 4, 1], [0, -1, -0, -0, 2, -3, -0, -0]), nhwc([1, 1, 2, 1], [-0.5, -0])],
      build: ([x, dy]) => maxGrad(x!, dy!, { size: 2 }), ref: () => nhwc([1, 2, 4, 1], [0, 0, 0, 0, -0.5, 0, 0, 0]) },
    { op: 'maxPoolGrad', what: 'empty batch', inputs: [empty([0, 2, 2, 1]), empty([0, 1, 1, 1])],
      build: ([x, dy]) => sf.reshape(maxGrad(x!, dy!, { size: 2 }), [0]), ref: () => empty([0]) },
    // 'same' 2×2 stride 2 on 3×3: windows of 4, 2, 2 and 1 valid elements.
    { op: 'avgPoolGrad', what: "'same': dy divided by the valid count; NaN and Inf spread", inputs: [nhwc([1, 3, 3, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0]), nhwc([1, 2, 2, 1], [4, N, 8, INF])],
      build: ([x, dy]) => avgGrad(x!, dy!, { size: 2, padding: 'same' }), ref: () => nhwc([1, 3, 3, 1], [1, 1, N, 1, 1, N, 4, 4, INF]) },
    { op: 'avgPoolGrad', what: 'empty batch', inputs: [empty([0, 2, 2, 1]), empty([0, 1, 1, 1])],
      build: ([x, dy]) => sf.reshape(avgGrad(x!, dy!, { size: 2 }), [0]), ref: () => empty([0]) },
    { op: 'globalAveragePool', what: 'mean over H and W: NaN, Inf − Inf; empty H×W is NaN', inputs: [nhwc([1, 2, 1, 2], [1, INF, 3, -INF]), empty([1, 0, 2, 1])],
      build: ([x, e]) => sf.concat([sf.reshape(sf.globalAveragePool(x!), [2]), sf.reshape(sf.globalAveragePool(e!, { keepDims: true }), [1])]), ref: () => f(2, N, N), static: true },

  ];
}
// --- convolutions (issue 12) ---
// The definitions, summed in doubles (integer data: exact in any order; ±Inf and NaN: order-free). Out-of-range taps
// (padding) contribute nothing; NaN and ±Inf in x or dy reach exactly the outputs whose windows read them.
interface ConvA { s: [number, number]; p: 'same' | 'valid'; d: [number, number] }
const pads1 = (n: number, k: number, s: number, d: number, p: string) => {
  const eff = (k - 1) * d + 1;
  const out = p === 'same' ? Math.ceil(n / s) : Math.floor((n - eff) / s) + 1;
  return { out, before: p === 'same' ? Math.floor(Math.max((out - 1) * s + eff - n, 0) / 2) : 0 };
};
/** Calls `visit(n, oh, ow, kh, kw, h, w)` for every in-range tap of a convolution of x's [N, H, W] with [fh, fw]. */
function taps(x: number[], k: [number, number], a: ConvA, visit: (n: number, oh: number, ow: number, kh: number, kw: number, h: number, w: number) => void) {
  const [N, Hh, W] = x as [number, number, number];
  const ph = pads1(Hh, k[0], a.s[0], a.d[0], a.p), pw = pads1(W, k[1], a.s[1], a.d[1], a.p);
  for (let n = 0; n < N; n++) for (let oh = 0; oh < ph.out; oh++) for (let ow = 0; ow < pw.out; ow++) for (let kh = 0; kh < k[0]; kh++) for (let kw = 0; kw < k[1]; kw++) {
    const h = oh * a.s[0] + kh * a.d[0] - ph.before, w = ow * a.s[1] + kw * a.d[1] - pw.before;
    if (h >= 0 && h < Hh && w >= 0 && w < W) visit(n, oh, ow, kh, kw, h, w);
  }
  return [ph.out, pw.out] as const;
}
const idx = (shape: number[], ...i: number[]) => i.reduce((acc, v, k) => acc * shape[k]! + v, 0);
function convRef(x: Arr, f: Arr, a: ConvA, depthwise = false): Arr {
  const [N, , , C] = x.shape as [number, number, number, number];
  const [fh, fw, , M] = f.shape as [number, number, number, number];
  const O = depthwise ? C * M : M;
  const [oh, ow] = taps(x.shape, [fh, fw], a, () => undefined);
  const y = new Array<number>(N * oh * ow * O).fill(0);
  taps(x.shape, [fh, fw], a, (n, i, j, kh, kw, h, w) => {
    for (let c = 0; c < C; c++) for (let m = 0; m < M; m++) {
      const o = depthwise ? c * M + m : m;
      y[idx([N, oh, ow, O], n, i, j, o)]! += x.data[idx(x.shape, n, h, w, c)]! * f.data[idx(f.shape, kh, kw, c, m)]!;
    }
  });
  return arr([N, oh, ow, O], y.map(F));
}
/** The input gradient; `depthwise`: the filter is [h, w, C, M] and dy's channel c·M + m reads x's channel c. */
function backpropInputRef(dy: Arr, f: Arr, size: [number, number], a: ConvA, depthwise = false): Arr {
  const N = dy.shape[0]!, [fh, fw, I, O] = f.shape as [number, number, number, number];
  const xs = [N, size[0], size[1], I];
  const dx = new Array<number>(N * size[0] * size[1] * I).fill(0);
  taps(xs, [fh, fw], a, (n, i, j, kh, kw, h, w) => {
    for (let c = 0; c < I; c++) for (let o = 0; o < O; o++) dx[idx(xs, n, h, w, c)]! += dy.data[idx(dy.shape, n, i, j, depthwise ? c * O + o : o)]! * f.data[idx(f.shape, kh, kw, c, o)]!;
  });
  return arr(xs, dx.map(F));
}
function backpropFilterRef(x: Arr, dy: Arr, size: [number, number], a: ConvA, depthwise = false): Arr {
  const I = x.shape[3]!, O = depthwise ? dy.shape[3]! / I : dy.shape[3]!;
  const fs = [size[0], size[1], I, O];
  const df = new Array<number>(size[0] * size[1] * I * O).fill(0);
  taps(x.shape, size, a, (n, i, j, kh, kw, h, w) => {
    for (let c = 0; c < I; c++) for (let o = 0; o < O; o++) df[idx(fs, kh, kw, c, o)]! += x.data[idx(x.shape, n, h, w, c)]! * dy.data[idx(dy.shape, n, i, j, depthwise ? c * O + o : o)]!;
  });
  return arr(fs, df.map(F));
}

function convRows(): Row[] {
  const ints = (shape: number[], seed: number, holes: [number, number][] = []) => {
    const d = rng(size(shape)).map((k) => ((k * 7 + seed) % 9) - 4 || 1);
    for (const [k, v] of holes) d[k] = v;
    return arr(shape, d);
  };
  const same: ConvA = { s: [1, 1], p: 'same', d: [1, 1] };
  const strided: ConvA = { s: [2, 2], p: 'same', d: [1, 1] };
  const dilated: ConvA = { s: [1, 1], p: 'valid', d: [2, 1] };
  const o = (a: ConvA) => ({ strides: a.s, padding: a.p, dilations: a.d });
  const x = ints([2, 5, 5, 2], 3, [[0, N], [17, INF], [40, -INF], [41, INF]]);
  const f = ints([3, 2, 2, 3], 5);
  return [
    { op: 'conv2d', what: "NaN and ±Inf in x reach the windows that read them ('same', odd sizes)", inputs: [x, f], build: ([a, b]) => sf.conv2d(a!, b!, o(same)), ref: ([a, b]) => convRef(a!, b!, same) },
    { op: 'conv2d', what: 'strided and dilated', inputs: [x, f], build: ([a, b]) => sf.concat([sf.reshape(sf.conv2d(a!, b!, o(strided)), [-1]), sf.reshape(sf.conv2d(a!, b!, o(dilated)), [-1])]),
      ref: ([a, b]) => { const p = convRef(a!, b!, strided), q = convRef(a!, b!, dilated); return arr([p.data.length + q.data.length], [...p.data, ...q.data]); } },
    { op: 'conv2d', what: 'empty batch', inputs: [empty([0, 5, 5, 2]), f], build: ([a, b]) => sf.conv2d(a!, b!, o(strided)), ref: () => empty([0, 3, 3, 3]) },
    { op: 'conv2dBackpropInput', what: 'NaN and ±Inf in dy, stride 2 (x rows the forward never read get 0)', inputs: [ints([2, 3, 3, 3], 1, [[4, N], [30, INF], [31, -INF]]), f],
      build: ([a, b]) => sf.conv2dBackpropInput(a!, b!, [6, 5], o(strided)), ref: ([a, b]) => backpropInputRef(a!, b!, [6, 5], strided) },
    { op: 'conv2dBackpropInput', what: 'empty batch', inputs: [empty([0, 3, 3, 3]), f], build: ([a, b]) => sf.conv2dBackpropInput(a!, b!, [5, 5], o(strided)), ref: () => empty([0, 5, 5, 2]) },
    { op: 'conv2dBackpropFilter', what: 'NaN and ±Inf in x, stride 2', inputs: [x, ints([2, 3, 3, 3], 2)],
      build: ([a, b]) => sf.conv2dBackpropFilter(a!, b!, [3, 2], o(strided)), ref: ([a, b]) => backpropFilterRef(a!, b!, [3, 2], strided) },
    { op: 'conv2dBackpropFilter', what: 'empty batch: zeros (a sum over nothing)', inputs: [empty([0, 5, 5, 2]), empty([0, 3, 3, 3])],
      build: ([a, b]) => sf.conv2dBackpropFilter(a!, b!, [3, 2], o(strided)), ref: () => arr([3, 2, 2, 3], new Array(36).fill(0)) },
    { op: 'depthwiseConv2d', what: 'NaN and ±Inf in x, multiplier 2', inputs: [x, ints([3, 2, 2, 2], 4)], build: ([a, b]) => sf.depthwiseConv2d(a!, b!, o(same)), ref: ([a, b]) => convRef(a!, b!, same, true) },
    { op: 'depthwiseConv2d', what: 'empty batch', inputs: [empty([0, 5, 5, 2]), ints([3, 2, 2, 2], 4)], build: ([a, b]) => sf.depthwiseConv2d(a!, b!, o(strided)), ref: () => empty([0, 3, 3, 4]) },
    { op: 'depthwiseConv2dBackpropInput', what: 'NaN and ±Inf in dy, stride 2', inputs: [ints([2, 3, 3, 4], 1, [[4, N], [30, INF], [31, -INF]]), ints([3, 2, 2, 2], 4)],
      build: ([a, b]) => sf.depthwiseConv2dBackpropInput(a!, b!, [6, 5], o(strided)), ref: ([a, b]) => backpropInputRef(a!, b!, [6, 5], strided, true) },
    { op: 'depthwiseConv2dBackpropInput', what: 'empty batch', inputs: [empty([0, 3, 3, 4]), ints([3, 2, 2, 2], 4)], build: ([a, b]) => sf.depthwiseConv2dBackpropInput(a!, b!, [5, 5], o(strided)), ref: () => empty([0, 5, 5, 2]) },
    { op: 'depthwiseConv2dBackpropFilter', what: 'NaN and ±Inf in x, stride 2', inputs: [x, ints([2, 3, 3, 4], 2)],
      build: ([a, b]) => sf.depthwiseConv2dBackpropFilter(a!, b!, [3, 2], o(strided)), ref: ([a, b]) => backpropFilterRef(a!, b!, [3, 2], strided, true) },
    { op: 'depthwiseConv2dBackpropFilter', what: 'empty batch: zeros', inputs: [empty([0, 5, 5, 2]), empty([0, 3, 3, 4])],
      build: ([a, b]) => sf.depthwiseConv2dBackpropFilter(a!, b!, [3, 2], o(strided)), ref: () => arr([3, 2, 2, 2], new Array(24).fill(0)) },
    { op: 'conv1d', what: 'NaN and ±Inf in x, stride 2', inputs: [ints([2, 7, 2], 6, [[3, N], [20, INF]]), ints([3, 2, 2], 7)], build: ([a, b]) => sf.conv1d(a!, b!, { stride: 2, padding: 'same' }),
      ref: ([a, b]) => { const y = convRef({ ...a!, shape: [2, 1, 7, 2] }, { ...b!, shape: [1, 3, 2, 2] }, { s: [1, 2], p: 'same', d: [1, 1] }); return { ...y, shape: [2, 4, 2] }; } },
  ];
}

describe('reshape', () => {
  it('refuses a −1 beside a 0-size dimension at build time (any size would fit)', () => {
    expect(() => sf.reshape(sf.placeholder([null, 3]), [3, 0, -1])).toThrow(/reshape: cannot infer the -1 of \[3,0,-1\]/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The link to docs/semantics.md.

/** The op names in the first column of the table of docs/semantics.md. */
function documentedOps(): Set<string> {
  const doc = readFileSync(new URL('../docs/semantics.md', import.meta.url), 'utf8');
  const table = doc.split('## The table')[1]!.split('\n## ')[0]!;
  const ops = new Set<string>();
  for (const line of table.split('\n')) {
    const first = /^\|([^|]*)\|/.exec(line)?.[1];
    for (const m of first?.matchAll(/`([A-Za-z][A-Za-z0-9]*)`/g) ?? []) ops.add(m[1]!); // digits too: `conv2d`
  }
  return ops;
}

/** Placeholders with unknown dimensions where a value is empty, so nothing is folded or known at build time. */
function placeholders(inputs: Arr[], keep: boolean): Tensor[] {
  return inputs.map((x) => sf.placeholder(x.shape.map((d) => (d === 0 && !keep ? null : d)), { dtype: x.dtype }));
}
const host = (x: Arr): HostTensor => ({
  shape: x.shape, dtype: x.dtype,
  data: x.dtype === 'float32' ? Float32Array.from(x.data) : x.dtype === 'int32' ? Int32Array.from(x.data) : Uint8Array.from(x.data),
});
const asConstant = (x: Arr): Tensor => sf.constant(host(x));

/** Compares bit for bit; NaN as "is NaN"; zeros of either sign equal only where `anyZeroSign`. */
function expectBits(got: HostTensor, want: Arr, anyZeroSign: boolean): void {
  expect({ shape: got.shape, dtype: got.dtype }).toEqual({ shape: want.shape, dtype: want.dtype });
  const w = host(want).data;
  expect(got.data.constructor).toBe(w.constructor);
  const bytes = (a: ArrayLike<number>, k: number) => (a instanceof Float32Array ? new Int32Array(a.buffer, a.byteOffset, a.length)[k] : a[k]);
  const show = (a: ArrayLike<number>) => Array.from(a, (v) => (Object.is(v, -0) ? '-0' : String(v))).join(', ');
  const ok = Array.from(w).every((e, k) => {
    const g = got.data[k]!;
    if (Number.isNaN(e)) return Number.isNaN(g);
    if (e === 0 && anyZeroSign) return g === 0;
    return bytes(got.data, k) === bytes(w, k);
  });
  expect(ok, `got [${show(got.data)}], expected [${show(w)}]`).toBe(true);
}

describe('docs/semantics.md', () => {
  it('every documented op has conformance rows, and every tested op is documented', () => {
    const documented = documentedOps();
    const tested = new Set([...ROWS.map((r) => r.op), 'cond']);
    expect([...documented].filter((op) => !tested.has(op)), 'documented, not tested').toEqual([]);
    expect([...tested].filter((op) => !documented.has(op)), 'tested, not documented').toEqual([]);
  });
});

describe('constant folding', () => {
  // The folder straight on each fold row's constant graph, before and after the kernel rewrites (fuseSub,
  // reluKernel), so the IR-only records' evaluators are held to the rows of the ops they stand for.
  const folded = new Set<string>();
  const foldRows = ROWS.filter((r) => r.fold);
  it.each(foldRows.map((r) => [`${r.op}: ${r.what}`, r] as const))('%s', (_name, row) => {
    const want = row.ref(row.inputs.map((x) => ({ ...x, data: x.data.map((v) => round(x.dtype, v)) })));
    if (want instanceof RegExp) return;
    const out = row.build(row.inputs.map(asConstant));
    const { ir } = sf.toIR([out], []);
    for (const lowered of [ir, sf.reluKernel(sf.fuseSub(ir))]) {
      const after = sf.constantFold(lowered);
      for (const n of Object.values(lowered.nodes)) if (n.op !== 'constant' && after.nodes[n.id]!.op === 'constant') folded.add(n.op);
      const node = after.nodes[out.id]!;
      if (node.op !== 'constant') continue;
      expectBits({ shape: node.shape as number[], dtype: node.dtype, data: node.attrs['value'] as Float32Array }, want, row.anyZeroSign ?? false);
    }
  });

  it('every op record with a host evaluator is folded by some fold row', () => {
    const evaluated = allOps().filter((d) => d.evaluate !== undefined).map((d) => d.name);
    expect(evaluated.length).toBeGreaterThan(20);
    expect(evaluated.filter((op) => !folded.has(op)), 'evaluators no fold row checks').toEqual([]);
  });
});

describe.each(BACKENDS)('conformance on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(ROWS.map((r) => [`${r.op}: ${r.what}`, r] as const))('%s', async (_name, row) => {
    // The reference sees the inputs as the backends do: rounded to float32.
    const want = row.ref(row.inputs.map((x) => ({ ...x, data: x.data.map((v) => round(x.dtype, v)) })));
    const phs = placeholders(row.inputs, row.static ?? false);
    const f = s.function({ inputs: phs, outputs: [row.build(phs)] });
    const feeds = row.inputs.map(host);
    if (want instanceof RegExp) {
      const before = s.numTensors();
      const err = await f(feeds).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SymflowError);
      expect((err as Error).message).toMatch(want);
      expect(s.numTensors(), 'tensors after a failed call').toBe(before);
      return;
    }
    expectBits((await f(feeds))[0]!, want, row.anyZeroSign ?? false);
    const live = s.numTensors();
    expectBits((await f(feeds))[0]!, want, row.anyZeroSign ?? false);
    expect(s.numTensors(), 'tensors after a second call').toBe(live);
    if (row.fold) {
      // The same op on constants: the constant folder computes it on the host, by the same rules.
      const [folded] = await s.run([row.build(row.inputs.map(asConstant))]);
      expectBits(folded!, want, row.anyZeroSign ?? false);
    }
  });

  it('cond: a zero-size variable the taken branch leaves alone stays as it was (issue 10)', async () => {
    const v = sf.variable({ shape: [0, 3], data: new Float32Array(0) });
    const w = sf.variable(1);
    const p = sf.placeholder([], { dtype: 'bool' });
    const step = s.function({ inputs: [p], outputs: [w], updates: [sf.cond(p, () => [[w, sf.add(w, 1)]], () => [[v, sf.mul(v, 2)], [w, sf.add(w, 2)]])] });
    expect(Array.from((await step([true]))[0]!.data)).toEqual([1]);
    expect(Array.from((await step([false]))[0]!.data)).toEqual([2]);
    expect(Array.from((await step([true]))[0]!.data)).toEqual([4]);
    const kept = await s.getValue(v);
    expect(kept.shape).toEqual([0, 3]);
    expect(Array.from((await s.getValue(w)).data)).toEqual([5]);
  });
});
