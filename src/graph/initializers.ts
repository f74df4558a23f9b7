import { SymflowError } from './errors.js';
import { type DType, type InitSpec, sizeOf } from './tensor.js';
import { dtypeOfArray, type TypedArray, typedArrayFor } from './hostValue.js';

function checkShape(fn: string, shape: readonly number[]): readonly number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new SymflowError(`initializers.${fn}`, `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return Object.freeze([...shape]);
}

function seedOrRandom(seed: number | undefined): number {
  return seed ?? Math.floor(Math.random() * 2 ** 31);
}

/**
 * Variable initializers: plain data describing how a variable's first value is made, so graphs serialise them.
 *
 * ```ts
 * const w = variable(initializers.glorotUniform([784, 256], { seed: 1 }));
 * ```
 */
export const initializers = {
  /** All zeros. @param shape the variable's shape @returns an initializer */
  zeros: (shape: readonly number[], dtype: DType = 'float32'): InitSpec => ({ kind: 'zeros', shape: checkShape('zeros', shape), dtype }),
  /** All ones. @param shape the variable's shape @returns an initializer */
  ones: (shape: readonly number[], dtype: DType = 'float32'): InitSpec => ({ kind: 'ones', shape: checkShape('ones', shape), dtype }),
  /** Every element `value`. @param shape the variable's shape @returns an initializer */
  fill: (shape: readonly number[], value: number, dtype: DType = 'float32'): InitSpec => ({ kind: 'fill', shape: checkShape('fill', shape), value, dtype }),
  /** Normal samples (Box–Muller on a seeded generator). @param shape the variable's shape @returns an initializer */
  randomNormal: (shape: readonly number[], opts: { mean?: number; stddev?: number; seed?: number } = {}): InitSpec => ({
    kind: 'randomNormal', shape: checkShape('randomNormal', shape), mean: opts.mean ?? 0, stddev: opts.stddev ?? 0.05, seed: seedOrRandom(opts.seed),
  }),
  /** Uniform samples in [min, max). @param shape the variable's shape @returns an initializer */
  randomUniform: (shape: readonly number[], opts: { min?: number; max?: number; seed?: number } = {}): InitSpec => ({
    kind: 'randomUniform', shape: checkShape('randomUniform', shape), min: opts.min ?? -0.05, max: opts.max ?? 0.05, seed: seedOrRandom(opts.seed),
  }),
  /** Glorot (Xavier) uniform, as Keras: U(±sqrt(6 / (fanIn + fanOut))). @param shape the variable's shape @returns an initializer */
  glorotUniform: (shape: readonly number[], opts: { seed?: number } = {}): InitSpec => ({
    kind: 'glorotUniform', shape: checkShape('glorotUniform', shape), seed: seedOrRandom(opts.seed),
  }),
  /**
   * Orthogonal, as Keras' `Orthogonal` (its default for recurrent kernels): the shape read as a matrix of
   * prod(shape[:-1]) rows and shape[-1] columns, with orthonormal columns (or rows, when wider than tall), times
   * `gain`: the Q of a seeded normal matrix's QR, signs fixed so R's diagonal is positive.
   * @param shape the variable's shape (rank ≥ 2) @returns an initializer
   */
  orthogonal: (shape: readonly number[], opts: { gain?: number; seed?: number } = {}): InitSpec => {
    const s = checkShape('orthogonal', shape);
    if (s.length < 2) throw new SymflowError('orthogonal', `needs a shape of rank >= 2, got [${s.join(',')}]`);
    const gain = opts.gain ?? 1;
    if (typeof gain !== 'number' || !Number.isFinite(gain)) throw new SymflowError('orthogonal', `gain must be a finite number, got ${String(gain)}`);
    return { kind: 'orthogonal', shape: s, gain, seed: seedOrRandom(opts.seed) };
  },
};

/** mulberry32: a small, fast, seeded 32-bit generator; returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fans(shape: readonly number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [shape[0]!, shape[0]!];
  if (shape.length === 2) return [shape[0]!, shape[1]!];
  const receptive = sizeOf(shape.slice(0, -2));
  return [shape[shape.length - 2]! * receptive, shape[shape.length - 1]! * receptive];
}

export function initDtype(spec: InitSpec): DType {
  if (spec.kind === 'zeros' || spec.kind === 'ones' || spec.kind === 'fill') return spec.dtype ?? 'float32';
  if (spec.kind === 'value') return spec.data instanceof Int32Array || spec.data instanceof Uint8Array ? dtypeOfArray(spec.data) as DType : 'float32';
  return 'float32';
}

/** Materialises an initializer on the host. Deterministic for a given seed. */
export function initialValue(spec: InitSpec): TypedArray {
  const n = sizeOf(spec.shape);
  const out = typedArrayFor(initDtype(spec), n);
  switch (spec.kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'fill':
      return out.fill(spec.value);
    case 'value':
      return spec.data.slice();
    case 'randomUniform':
    case 'glorotUniform': {
      const rand = seededRandom(spec.seed);
      const [lo, hi] = spec.kind === 'randomUniform' ? [spec.min, spec.max] : glorotRange(spec.shape);
      for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
      return out;
    }
    case 'orthogonal':
      out.set(orthogonal(spec.shape, spec.gain, spec.seed));
      return out;
    case 'randomNormal': {
      const rand = seededRandom(spec.seed);
      for (let i = 0; i < n; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - rand()));
        const th = 2 * Math.PI * rand();
        out[i] = spec.mean + spec.stddev * r * Math.cos(th);
        if (i + 1 < n) out[i + 1] = spec.mean + spec.stddev * r * Math.sin(th);
      }
      return out;
    }
  }
}

/**
 * Keras' Orthogonal: a normal (m × k) matrix, m = max(rows, cols), k = min(…), orthonormalised column by column
 * (modified Gram–Schmidt in doubles, which leaves R's diagonal positive); transposed when rows < cols.
 */
function orthogonal(shape: readonly number[], gain: number, seed: number): Float64Array {
  const cols = shape[shape.length - 1]!, rows = sizeOf(shape) / cols;
  const m = Math.max(rows, cols), k = Math.min(rows, cols);
  const rand = seededRandom(seed);
  const a = new Float64Array(m * k); // column-major: column j is a[j·m … j·m + m)
  for (let i = 0; i < a.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand())), th = 2 * Math.PI * rand();
    a[i] = r * Math.cos(th);
    if (i + 1 < a.length) a[i + 1] = r * Math.sin(th);
  }
  for (let j = 0; j < k; j++) {
    const cj = a.subarray(j * m, j * m + m);
    for (let p = 0; p < j; p++) {
      const cp = a.subarray(p * m, p * m + m);
      let dot = 0;
      for (let i = 0; i < m; i++) dot += cp[i]! * cj[i]!;
      for (let i = 0; i < m; i++) cj[i] = cj[i]! - dot * cp[i]!;
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += cj[i]! * cj[i]!;
    norm = Math.sqrt(norm);
    for (let i = 0; i < m; i++) cj[i] = cj[i]! / norm;
  }
  // Q is m × k (column-major); the variable is rows × cols, row-major: Q itself when rows ≥ cols, else Qᵀ.
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = gain * (rows >= cols ? a[c * m + r]! : a[r * m + c]!);
  return out;
}

function glorotRange(shape: readonly number[]): [number, number] {
  const [fanIn, fanOut] = fans(shape);
  const limit = Math.sqrt(6 / Math.max(1, fanIn + fanOut));
  return [-limit, limit];
}
