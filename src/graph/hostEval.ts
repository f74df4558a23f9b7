import { type TypedArray, typedArrayFor } from './hostValue.js';
import type { HostEvaluator } from './registry.js';
import type { DType } from './tensor.js';

// Host evaluators for op records (constant folding). Edge values follow docs/semantics.md, as every backend does,
// so a folded graph gives the bits a run would. Float results are rounded to float32 after every op; for + − × ÷
// and √ that is exactly the float32 result.

type Fn = (...v: number[]) => number;

/** A value of `dtype` from a double: float32 rounds, int32 wraps, bool is 0 or 1. */
export function round(dtype: DType, v: number): number {
  if (dtype === 'float32') return Math.fround(v);
  if (dtype === 'int32') return Math.trunc(v) | 0;
  return v ? 1 : 0;
}

/** A cast: to bool is v ≠ 0 (NaN → true); float → int32 truncates and saturates, NaN → 0. */
export function castValue(dtype: DType, v: number): number {
  if (dtype === 'bool') return v !== 0 ? 1 : 0;
  if (dtype === 'int32') return Number.isNaN(v) ? 0 : Math.trunc(Math.min(Math.max(v, -(2 ** 31)), 2 ** 31 - 1));
  return Math.fround(v);
}

/** pow as C and NumPy: pow(1, y) = 1 and pow(−1, ±Inf) = 1, where Math.pow gives NaN. */
export const cPow = (a: number, b: number): number => (a === 1 || (a === -1 && !Number.isFinite(b) && !Number.isNaN(b)) ? 1 : Math.pow(a, b));

/** Strides of an input against the output shape (0 along broadcast axes). */
function stridesAgainst(shape: readonly number[], cs: readonly number[]): number[] {
  const lead = shape.length - cs.length;
  const strides = new Array<number>(shape.length).fill(0);
  let s = 1;
  for (let i = cs.length - 1; i >= 0; i--) {
    strides[i + lead] = cs[i] === 1 ? 0 : s;
    s *= cs[i]!;
  }
  return strides;
}

/**
 * An elementwise evaluator with NumPy broadcasting: `fn` on each element's inputs, its double result rounded to
 * the output dtype (`exact`: `fn` gives the output's value itself, as a cast or a select do). `int` replaces `fn`
 * where the first input is int32 and the double result would not wrap or floor as int32 does.
 *
 * ```ts
 * evaluate: elementwise((a, b) => a + b),
 * ```
 */
export function elementwise(fn: Fn, opts: { int?: Fn; exact?: boolean } = {}): HostEvaluator {
  return (ins, _attrs, out) => {
    const shape = out.shape;
    const size = shape.reduce((p, d) => p * d, 1);
    const strides = ins.map((x) => stridesAgainst(shape, x.shape));
    const f = ins[0]?.dtype === 'int32' && opts.int ? opts.int : fn;
    const exact = opts.exact ?? false;
    const result: TypedArray = typedArrayFor(out.dtype, size);
    const vals = new Array<number>(ins.length);
    for (let i = 0; i < size; i++) {
      for (let k = 0; k < ins.length; k++) {
        let off = 0;
        for (let d = shape.length - 1, rest = i; d >= 0; d--) {
          off += (rest % shape[d]!) * strides[k]![d]!;
          rest = Math.floor(rest / shape[d]!);
        }
        vals[k] = ins[k]!.data[off]!;
      }
      const v = f(...vals);
      result[i] = exact ? v : round(out.dtype, v);
    }
    return result;
  };
}
