import { produce } from 'immer';
import type { TypedArray } from '../hostValue.js';
import { typedArrayFor } from '../hostValue.js';
import type { GraphIR, NodeIR } from '../ir.js';
import { type DType, isFullyKnown, sizeOf } from '../tensor.js';

type Fn = (a: number, b: number) => number;

// Float results are rounded to float32 after every op; for + − × ÷ and √ that is exactly the float32 result.
// Edge values follow docs/semantics.md, as every backend does (a folded graph gives the bits a run would).
/** pow as C and NumPy: pow(1, y) = 1 and pow(−1, ±Inf) = 1, where Math.pow gives NaN. */
const cPow: Fn = (a, b) => (a === 1 || (a === -1 && !Number.isFinite(b) && !Number.isNaN(b)) ? 1 : Math.pow(a, b));
const BINARY: Record<string, Fn> = {
  add: (a, b) => a + b, subtract: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b, maximum: Math.max, minimum: Math.min, pow: cPow,
  greater: (a, b) => +(a > b), less: (a, b) => +(a < b), equal: (a, b) => +(a === b), notEqual: (a, b) => +(a !== b),
  greaterEqual: (a, b) => +(a >= b), lessEqual: (a, b) => +(a <= b),
};
/** int32 ops whose double result would not wrap or floor as int32 does: × wraps, ÷ floors and x / 0 = 0, a power saturates. */
const INT_BINARY: Record<string, Fn> = {
  mul: Math.imul, div: (a, b) => (b === 0 ? 0 : Math.floor(a / b)), pow: (a, b) => castValue('int32', Math.pow(a, b)),
};
const UNARY: Record<string, (a: number) => number> = {
  // sign(±0) = +0 and sign(NaN) = NaN, as NumPy (Math.sign(−0) is −0).
  neg: (a) => -a, sqrt: Math.sqrt, abs: Math.abs, floor: Math.floor, sign: (a) => (a > 0 ? 1 : a < 0 ? -1 : a === 0 ? 0 : NaN), exp: Math.exp, log: Math.log,
  identity: (a) => a, logicalNot: (a) => +!a,
};
const MAX_ELEMENTS = 4096;

function round(dtype: DType, v: number): number {
  if (dtype === 'float32') return Math.fround(v);
  if (dtype === 'int32') return Math.trunc(v) | 0;
  return v ? 1 : 0;
}

/** A cast: to bool is v ≠ 0 (NaN → true); float → int32 truncates and saturates, NaN → 0. */
function castValue(dtype: DType, v: number): number {
  if (dtype === 'bool') return v !== 0 ? 1 : 0;
  if (dtype === 'int32') return Number.isNaN(v) ? 0 : Math.trunc(Math.min(Math.max(v, -(2 ** 31)), 2 ** 31 - 1));
  return Math.fround(v);
}

/** Elementwise evaluation with NumPy broadcasting, on the host. */
function evaluate(n: NodeIR, ins: readonly NodeIR[]): TypedArray | undefined {
  const shape = n.shape as number[];
  const size = sizeOf(shape);
  if (size > MAX_ELEMENTS) return undefined;
  const datas = ins.map((c) => c.attrs['value'] as TypedArray);
  const index = ins.map((c) => {
    // Strides of each input against the output shape (0 along broadcast axes).
    const cs = c.shape as number[];
    const lead = shape.length - cs.length;
    const strides = new Array<number>(shape.length).fill(0);
    let s = 1;
    for (let i = cs.length - 1; i >= 0; i--) {
      strides[i + lead] = cs[i] === 1 ? 0 : s;
      s *= cs[i]!;
    }
    return strides;
  });
  const out = typedArrayFor(n.dtype, size);
  const at = (k: number, flat: number) => {
    let off = 0;
    for (let d = shape.length - 1, rest = flat; d >= 0; d--) {
      off += (rest % shape[d]!) * index[k]![d]!;
      rest = Math.floor(rest / shape[d]!);
    }
    return datas[k]![off]!;
  };
  const bin = (ins[0]!.dtype === 'int32' ? INT_BINARY[n.op] : undefined) ?? BINARY[n.op];
  const un = UNARY[n.op];
  for (let i = 0; i < size; i++) {
    if (n.op === 'cast') out[i] = castValue(n.dtype, at(0, i));
    else if (n.op === 'where') out[i] = at(0, i) ? at(1, i) : at(2, i);
    else if (bin) out[i] = round(n.dtype, bin(at(0, i), at(1, i)));
    else out[i] = round(n.dtype, un!(at(0, i)));
  }
  return out;
}

const FOLDABLE = new Set([...Object.keys(BINARY), ...Object.keys(UNARY), 'cast', 'where']);

/**
 * Constant folding: an elementwise node whose inputs are all constants (and whose result is small) becomes a
 * constant, computed once at compile time: `sub(1, beta1)`, `mul(-1, lr)` and the like stop costing a kernel per
 * step. The node keeps its id, so nothing else changes.
 *
 * ```ts
 * const folded = constantFold(ir);
 * ```
 * @param ir the graph @returns the graph with foldable nodes replaced by constants
 */
export function constantFold(ir: GraphIR): GraphIR {
  const fed = new Set(ir.feeds);
  const ids = Object.keys(ir.nodes).map(Number).sort((a, b) => a - b);
  const folded = new Map<number, NodeIR>();
  const nodeOf = (id: number) => folded.get(id) ?? ir.nodes[id]!;
  for (const id of ids) {
    const n = ir.nodes[id]!;
    if (!FOLDABLE.has(n.op) || fed.has(id) || !isFullyKnown(n.shape)) continue;
    const ins = n.inputs.map(nodeOf);
    if (!ins.every((c) => c.op === 'constant' && !fed.has(c.id))) continue;
    const value = evaluate(n, ins);
    if (value === undefined) continue;
    folded.set(id, { id, op: 'constant', name: n.name, inputs: [], attrs: { shape: [...n.shape], dtype: n.dtype, value }, shape: n.shape, dtype: n.dtype });
  }
  if (folded.size === 0) return ir;
  return produce(ir, (draft) => {
    for (const [id, node] of folded) draft.nodes[id] = node as typeof draft.nodes[number];
  });
}
