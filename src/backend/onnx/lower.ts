import { SymflowError } from '../../graph/errors.js';
import type { NodeIR } from '../../graph/ir.js';
import type { KernelOpName } from '../../graph/opList.js';
import { getOp, isBuiltinOp } from '../../graph/registry.js';
import { isFullyKnown } from '../../graph/tensor.js';
import { composition } from '../compose.js';
import { COMPOSE, type Compose, type OnnxBuilder, type OpKernels } from '../opKernels.js';
import { type Elem, ELEM, type GraphBuilder, INT_MAX } from './builder.js';
// --- pooling (issue 12) ---
import { poolLowerings } from './pool.js';
// --- convolutions (issue 12) ---
import * as conv from './lowerConv.js';

/** One op's lowering: emit nodes that compute `out` from the input value names. */
type Lowering = (b: GraphBuilder, xs: readonly string[], node: NodeIR, ins: readonly NodeIR[], out: string) => void;

const attrs = (n: NodeIR) => n.attrs as Record<string, never>;
const simple = (opType: string): Lowering => (b, xs, _n, _i, out) => { b.node(opType, xs, {}, out); };

/**
 * Sums `x` down to the shape of `like` over the axes along which it was broadcast. Which axes is known at compile
 * time whenever `like`'s shape is, except where `like` has 1 and `x` an unknown dim: a bias gradient
 * ([null, n] → [n]) is one static ReduceSum; the rest is found at run time from the real shapes.
 */
function sumToShape(b: GraphBuilder, x: string, like: string, xn: NodeIR, ln: NodeIR, out: string): void {
  const lead = xn.shape.length - ln.shape.length;
  const known = isFullyKnown(ln.shape) && ln.shape.every((l, i) => l !== 1 || xn.shape[i + lead] !== null);
  if (known) {
    const axes = xn.shape.flatMap((d, i) => (i < lead || (ln.shape[i - lead] === 1 && d !== 1) ? [i] : []));
    if (axes.length === 0) b.node('Identity', [x], {}, out);
    else if (axes.length === 1 && axes[0] === 0 && xn.shape.length === 2 && xn.dtype === 'float32') {
      // A bias gradient ([B, n] → [n]) as ones[1, B] · x: onnxruntime's ReduceSum down the rows measured 37 µs on
      // [128, 256], the Gemm (with the ones made from x's shape) 14 µs; the MLP step at 1 thread 1.6–2.3 % faster.
      b.node('Reshape', [b.node('Gemm', [onesRow(b, x, xn.shape[0]!), x], {}), b.ints(ln.shape as number[])], { allowzero: 1 }, out);
    } else b.node('Reshape', [b.node('ReduceSum', [x, b.ints(axes)], { keepdims: 0 }), b.ints(ln.shape as number[])], { allowzero: 1 }, out);
    return;
  }
  const x1 = lead > 0 ? b.node('ReduceSum', [x, b.ints(Array.from({ length: lead }, (_, i) => i))], { keepdims: 0 }) : x;
  const xs = b.node('Shape', [x1]);
  const ls = b.node('Shape', [like]);
  const one = b.ints([1]);
  const reduce = b.node('And', [b.node('Equal', [ls, one]), b.node('Not', [b.node('Equal', [xs, one])])]);
  const axes = b.node('Reshape', [b.node('NonZero', [reduce]), b.ints([-1])]);
  b.node('ReduceSum', [x1, axes], { keepdims: 1, noop_with_empty_axes: 1 }, out);
}

/** A float32 row of ones as long as `x`'s first dimension (`rows`, or read from x's shape when unknown). */
function onesRow(b: GraphBuilder, x: string, rows: number | null): string {
  if (rows !== null && rows <= 4096) return b.constant('float32', [1, rows], new Float32Array(rows).fill(1));
  const shape = b.node('Concat', [b.ints([1]), b.node('Slice', [b.node('Shape', [x]), b.ints([0]), b.ints([1])])], { axis: 0 });
  return b.node('ConstantOfShape', [shape], { value: { tensor: { dataType: ELEM.float32, dims: [1], ...valueOf('float32', 1) } } });
}

/**
 * A lowering for every op a backend runs (TypeScript refuses a table without one), or `COMPOSE`: the op's
 * composition from other ops (its record's `compose`) is lowered in its place.
 */
const lowerings: Readonly<Record<KernelOpName, Lowering | Compose>> = {
  add: simple('Add'), subtract: simple('Sub'), mul: simple('Mul'), maximum: simple('Max'), minimum: simple('Min'),
  pow: (b, [x, y], n, _i, out) => {
    if (n.dtype === 'float32') { b.node('Pow', [x!, y!], {}, out); return; }
    // int32: the double power, saturated as a cast (onnxruntime's int32 Pow overflows to INT32_MIN).
    const p = b.node('Pow', [b.node('Cast', [x!], { to: ELEM.float64 }), b.node('Cast', [y!], { to: ELEM.float64 })]);
    b.node('Cast', [b.node('Clip', [p, b.scalar('float64', -(2 ** 31)), b.scalar('float64', 2 ** 31 - 1)])], { to: ELEM.int32 }, out);
  },
  div: (b, [x, y], n, _i, out) => {
    if (n.dtype === 'float32') { b.node('Div', [x!, y!], {}, out); return; }
    // int32 floors (ONNX truncates, and traps on x / 0): the double quotient of two int32s floors exactly; x / 0 is
    // 0 and INT32_MIN / −1 wraps to INT32_MIN, see docs/semantics.md. The one quotient out of int32's range (2³¹)
    // is picked out explicitly: a Cast of it saturates on onnxruntime-web and happened to wrap natively.
    const f = (v: string) => b.node('Cast', [v], { to: ELEM.float64 });
    const qd = b.node('Floor', [b.node('Div', [f(x!), f(y!)])]);
    const q = b.node('Where', [b.node('Equal', [qd, b.scalar('float64', 2 ** 31)]), b.scalar('int32', -(2 ** 31)), b.node('Cast', [qd], { to: ELEM.int32 })]);
    b.node('Where', [b.node('Equal', [y!, b.scalar('int32', 0)]), b.scalar('int32', 0), q], {}, out);
  },
  neg: simple('Neg'), exp: simple('Exp'), log: simple('Log'), sqrt: simple('Sqrt'), abs: simple('Abs'), sign: simple('Sign'), relu: simple('Relu'),
  sigmoid: simple('Sigmoid'), tanh: simple('Tanh'), sin: simple('Sin'), cos: simple('Cos'), floor: simple('Floor'),
  greater: simple('Greater'), less: simple('Less'), equal: simple('Equal'), greaterEqual: simple('GreaterOrEqual'),
  lessEqual: simple('LessOrEqual'), logicalAnd: simple('And'), logicalOr: simple('Or'), logicalNot: simple('Not'),
  notEqual: (b, xs, _n, _i, out) => { b.node('Not', [b.node('Equal', xs)], {}, out); },
  identity: simple('Identity'), stopGradient: simple('Identity'), where: simple('Where'),
  customGradient: (b, [y], _n, _i, out) => { b.node('Identity', [y!], {}, out); },
  // A left fold of Adds, the order Sum adds in: onnxruntime's Add is about 1.5× faster than its Sum (784×256).
  addN: (b, xs, _n, _i, out) => {
    if (xs.length === 1) {
      b.node('Identity', [xs[0]!], {}, out);
      return;
    }
    xs.slice(1).reduce((acc, x, i) => b.node('Add', [acc, x], {}, i === xs.length - 2 ? out : undefined), xs[0]!);
  },
  cast: (b, [x], n, ins, out) => {
    if (n.dtype !== 'int32' || ins[0]!.dtype !== 'float32') { b.node('Cast', [x!], { to: ELEM[n.dtype] }, out); return; }
    // Saturating, NaN → 0 (onnxruntime gives INT32_MIN for NaN, ±Inf and anything out of range).
    const finite = b.node('Where', [b.node('IsNaN', [x!]), b.scalar('float32', 0), x!]);
    const clipped = b.node('Clip', [finite, b.scalar('float32', -(2 ** 31)), b.scalar('float32', 2147483520)]);
    b.node('Where', [b.node('GreaterOrEqual', [x!, b.scalar('float32', 2 ** 31)]), b.scalar('int32', 2147483647), b.node('Cast', [clipped], { to: ELEM.int32 })], {}, out);
  },
  matMul: (b, [x, y], n, ins, out) => {
    const { transposeA: ta, transposeB: tb } = n.attrs as { transposeA: boolean; transposeB: boolean };
    if (ins[0]!.shape.length === 2 && ins[1]!.shape.length === 2 && (ta || tb)) {
      b.node('Gemm', [x!, y!], { transA: ta ? 1 : 0, transB: tb ? 1 : 0 }, out);
      return;
    }
    const swap = (v: string, rank: number) => b.node('Transpose', [v], { perm: [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2] });
    const ra = ins[0]!.shape.length;
    const k = ins[0]!.shape[ta ? ra - 2 : ra - 1];
    // NOTE: onnxruntime's batched MatMul with an inner dimension of 0 returns uninitialised memory; it is zeros
    // (checked at run time where k is unknown; 2-D MatMul and Gemm get it right).
    const guard = k === 0 || (k === null && (ra > 2 || ins[1]!.shape.length > 2));
    const mm = b.node('MatMul', [ta ? swap(x!, ra) : x!, tb ? swap(y!, ins[1]!.shape.length) : y!], {}, guard ? undefined : out);
    if (!guard) return;
    const zeros = b.node('ConstantOfShape', [b.node('Shape', [mm])], { value: { tensor: { dataType: ELEM[n.dtype as Elem], dims: [1], ...valueOf(n.dtype as Elem, 0) } } });
    const empty = b.node('Equal', [b.node('Gather', [b.node('Shape', [x!]), b.ints([ta ? ra - 2 : ra - 1])], { axis: 0 }), b.ints([0])]);
    b.node('Where', [empty, zeros, mm], {}, out);
  },
  fusedMatMul: (b, [x, y, bias], n, _i, out) => {
    const { transposeA: ta, transposeB: tb, activation } = n.attrs as { transposeA: boolean; transposeB: boolean; activation: string };
    const gemm = b.node('Gemm', [x!, y!, bias!], { transA: ta ? 1 : 0, transB: tb ? 1 : 0 }, activation === 'relu' ? undefined : out);
    if (activation === 'relu') b.node('Relu', [gemm], {}, out);
  },
  transpose: (b, [x], n, _i, out) => { b.node('Transpose', [x!], { perm: attrs(n).perm }, out); },
  // NOTE: allowzero 1 where a 0 may be in the shape: with 0 ONNX copies that dimension from the input instead.
  reshape: (b, [x], n, _i, out) => { b.node('Reshape', [x!, b.ints(attrs(n).shape)], { allowzero: (attrs(n).shape as number[]).includes(0) ? 1 : 0 }, out); },
  reshapeLike: (b, [x, like], _n, _i, out) => { b.node('Reshape', [x!, b.node('Shape', [like!])], { allowzero: 1 }, out); },
  expandDims: (b, [x], n, _i, out) => { b.node('Unsqueeze', [x!, b.ints([attrs(n).axis])], {}, out); },
  squeeze: (b, [x], n, _i, out) => { b.node('Squeeze', [x!, b.ints(attrs(n).axes)], {}, out); },
  concat: (b, xs, n, _i, out) => { b.node('Concat', xs, { axis: attrs(n).axis }, out); },
  slice: (b, [x], n, _i, out) => {
    const { begin, size } = n.attrs as { begin: number[]; size: number[] };
    const ends = begin.map((s, i) => (size[i] === -1 ? INT_MAX : s + size[i]!));
    b.node('Slice', [x!, b.ints(begin), b.ints(ends), b.ints(begin.map((_, i) => i))], {}, out);
  },
  pad: (b, [x], n, ins, out) => {
    const { paddings, value } = n.attrs as { paddings: [number, number][]; value: number };
    const pads = [...paddings.map((p) => p[0]), ...paddings.map((p) => p[1])];
    b.node('Pad', [x!, b.ints(pads), b.scalar(ins[0]!.dtype as Elem, value)], { mode: 'constant' }, out);
  },
  gather: (b, [x, i], n, _i, out) => {
    // ONNX wraps negative indices; symflow refuses every index outside [0, n): move negative ones out of range too,
    // so onnxruntime's range check fails (runError names the gather).
    const safe = b.node('Where', [b.node('Less', [i!, b.scalar('int32', 0)]), b.scalar('int32', -(2 ** 31)), i!]);
    b.node('Gather', [x!, safe], { axis: attrs(n).axis }, out);
  },
  unsortedSegmentSum: (b, [d, ids], n, ins, out) => {
    // ScatterND adds duplicate indices; ids outside [0, k) are dropped first, as unsortedSegmentSum does.
    const k = attrs(n).numSegments as number;
    const rank = ins[0]!.shape.length;
    const inRange = b.node('And', [b.node('GreaterOrEqual', [ids!, b.scalar('int32', 0)]), b.node('Less', [ids!, b.scalar('int32', k)])]);
    const safe = b.node('Cast', [b.node('Unsqueeze', [b.node('Where', [inRange, ids!, b.scalar('int32', 0)]), b.ints([1])])], { to: ELEM.int64 });
    // A where, not a mask product: a dropped row's NaN or Inf must not reach segment 0.
    const keep = b.node('Reshape', [inRange, b.ints([-1, ...Array.from({ length: rank - 1 }, () => 1)])]);
    const rest = b.node('Slice', [b.node('Shape', [d!]), b.ints([1]), b.ints([INT_MAX])]);
    const zeros = b.node('ConstantOfShape', [b.node('Concat', [b.ints([k]), rest], { axis: 0 })], { value: { tensor: { dataType: ELEM[ins[0]!.dtype], dims: [1], ...valueOf(ins[0]!.dtype, 0) } } });
    b.node('ScatterND', [zeros, safe, b.node('Where', [keep, d!, b.scalar(ins[0]!.dtype as Elem, 0)])], { reduction: 'add' }, out);
  },
  sum: (b, [x], n, ins, out) => {
    const opts = { keepdims: attrs(n).keepDims ? 1 : 0 };
    if (ins[0]!.dtype !== 'int32') { b.node('ReduceSum', [x!, b.ints(attrs(n).axes)], opts, out); return; }
    // int32 sums wrap: add in int64 and keep the low 32 bits (onnxruntime's int32 ReduceSum saturated).
    const wide = b.node('ReduceSum', [b.node('Cast', [x!], { to: ELEM.int64 }), b.ints(attrs(n).axes)], opts);
    b.node('Cast', [wide], { to: ELEM.int32 }, out);
  },
  max: (b, [x], n, ins, out) => {
    const opts = { axes: attrs(n).axes, keepdims: attrs(n).keepDims ? 1 : 0 };
    if (ins[0]!.dtype !== 'float32') { b.node('ReduceMax', [x!], opts, out); return; }
    // onnxruntime's ReduceMax skips NaN; symflow's max propagates it (as NumPy and TF.js).
    const hasNaN = b.node('Greater', [b.node('ReduceMax', [b.node('Cast', [b.node('IsNaN', [x!])], { to: ELEM.float32 })], opts), b.scalar('float32', 0)]);
    b.node('Where', [hasNaN, b.scalar('float32', NaN), b.node('ReduceMax', [x!], opts)], {}, out);
  },
  argMax: (b, [x], n, ins, out) => {
    const axis = attrs(n).axis as number;
    if (ins[0]!.dtype !== 'float32') { b.node('Cast', [b.node('ArgMax', [x!], { axis, keepdims: 0 })], { to: ELEM.int32 }, out); return; }
    // The first NaN is the largest value (as NumPy); onnxruntime skips NaN.
    const nan = b.node('Cast', [b.node('IsNaN', [x!])], { to: ELEM.float32 });
    const hasNaN = b.node('Greater', [b.node('ReduceMax', [nan], { axes: [axis], keepdims: 0 }), b.scalar('float32', 0)]);
    const idx = b.node('Where', [hasNaN, b.node('ArgMax', [nan], { axis, keepdims: 0 }), b.node('ArgMax', [x!], { axis, keepdims: 0 })]);
    b.node('Cast', [idx], { to: ELEM.int32 }, out);
  },
  oneHot: (b, [i], n, _i, out) => {
    const { depth, onValue, offValue } = n.attrs as { depth: number; onValue: number; offValue: number };
    // Negative indices wrap in ONNX but give an all-off row in TF.js: map them out of range first.
    const safe = b.node('Where', [b.node('Less', [i!, b.scalar('int32', 0)]), b.scalar('int32', depth), i!]);
    b.node('OneHot', [safe, b.scalar('int32', depth), b.constant('float32', [2], [offValue, onValue])], { axis: -1 }, out);
  },
  fillLike: (b, [x], n, _i, out) => {
    const { value, dtype } = n.attrs as { value: number; dtype: Elem };
    b.node('ConstantOfShape', [b.node('Shape', [x!])], { value: { tensor: { dataType: ELEM[dtype], dims: [1], ...valueOf(dtype, value) } } }, out);
  },
  shapeSize: (b, [x], n, _i, out) => {
    const dims = b.node('Gather', [b.node('Shape', [x!]), b.ints(attrs(n).axes)], { axis: 0 });
    b.node('Cast', [b.node('ReduceProd', [dims], { keepdims: 0 })], { to: ELEM.float32 }, out);
  },
  broadcastLike: (b, [x, like], _n, _i, out) => { b.node('Expand', [x!, b.node('Shape', [like!])], {}, out); },
  sumToShape: (b, [x, like], _n, ins, out) => sumToShape(b, x!, like!, ins[0]!, ins[1]!, out),
  softmaxCrossEntropy: (b, [logits, labels], _n, ins, out) => {
    // NOTE: a positive axis: onnxruntime's ReduceSum over an empty axis given as -1 keeps the axis ([2,0] → [2,0]).
    const last = ins[0]!.shape.length - 1;
    const z = b.node('Sub', [logits!, b.node('ReduceMax', [logits!], { axes: [last], keepdims: 1 })]);
    const lse = b.node('Log', [b.node('ReduceSum', [b.node('Exp', [z]), b.ints([last])], { keepdims: 1 })]);
    b.node('Neg', [b.node('ReduceSum', [b.node('Mul', [labels!, b.node('Sub', [z, lse])]), b.ints([last])], { keepdims: 0 })], {}, out);
  },
  // --- activations and scans (issue 12) ---
  erf: simple('Erf'),
  softplus: (b, [x], _n, _i, out) => {
    // TF's stable form, in float64 as TF.js cpu computes it, so the backends agree to an ulp (onnxruntime's own
    // Softplus is log(1 + eˣ) itself: up to ~4e-7 relative from TF's eˣ just below the threshold): eˣ below
    // log(ε) + 2, x above −(log(ε) + 2).
    const t = Math.log(1.1920928955078125e-7) + 2;
    const d = b.node('Cast', [x!], { to: ELEM.float64 });
    const e = b.node('Exp', [d]);
    const mid = b.node('Log', [b.node('Add', [b.scalar('float64', 1), e])]);
    const hi = b.node('Where', [b.node('Greater', [d, b.scalar('float64', -t)]), d, mid]);
    b.node('Cast', [b.node('Where', [b.node('Less', [d, b.scalar('float64', t)]), e, hi])], { to: ELEM.float32 }, out);
  },
  cumsum: (b, [x], n, _i, out) => {
    const { axis, exclusive, reverse } = n.attrs as { axis: number; exclusive: boolean; reverse: boolean };
    b.node('CumSum', [x!, b.scalar('int64', axis)], { exclusive: exclusive ? 1 : 0, reverse: reverse ? 1 : 0 }, out);
  },
  // --- pooling (issue 12) ---
  maxPool: poolLowerings.maxPool, avgPool: poolLowerings.avgPool, maxPoolGrad: poolLowerings.maxPoolGrad, avgPoolGrad: poolLowerings.avgPoolGrad,
  // --- convolutions (issue 12) ---
  conv2d: conv.conv2d,
  conv2dBackpropInput: conv.conv2dBackpropInput,
  conv2dBackpropFilter: conv.conv2dBackpropFilter,
  depthwiseConv2d: conv.depthwiseConv2d,
  depthwiseConv2dBackpropInput: conv.depthwiseConv2dBackpropInput,
  // A grouped Conv cannot swap batch and channels as conv2dBackpropFilter's does: the record's composition.
  depthwiseConv2dBackpropFilter: COMPOSE,
};

function valueOf(dtype: Elem, v: number): { rawData: Uint8Array } {
  if (dtype === 'float32') return { rawData: new Uint8Array(Float32Array.of(v).buffer) };
  if (dtype === 'int32') return { rawData: new Uint8Array(Int32Array.of(v).buffer) };
  if (dtype === 'int64') return { rawData: new Uint8Array(BigInt64Array.of(BigInt(v)).buffer) };
  return { rawData: Uint8Array.of(v) };
}

const tableEntry = (op: string) => (lowerings as Readonly<Record<string, Lowering | Compose | undefined>>)[op];
const userLowering = (op: string) => (tableEntry(op) === undefined ? (getOp(op)?.kernels as OpKernels | undefined)?.onnx : undefined);

/** How the onnx backend runs an op: its own lowering, a declared composition, or not at all. */
export function onnxCoverage(op: string): 'kernel' | 'compose' | undefined {
  const entry = tableEntry(op);
  if (entry !== undefined) return typeof entry === 'function' ? 'kernel' : 'compose';
  if (userLowering(op) !== undefined) return 'kernel';
  return getOp(op)?.compose !== undefined ? 'compose' : undefined;
}

export function hasLowering(op: string): boolean {
  return onnxCoverage(op) !== undefined;
}

/**
 * Emits the ONNX nodes of one symflow node: the table's lowering, a user op's own (`kernels.onnx`), or the op's
 * composition lowered node by node.
 */
export function lowerNode(b: GraphBuilder, node: NodeIR, inputs: readonly string[], ins: readonly NodeIR[], out: string): void {
  const entry = tableEntry(node.op);
  const user = userLowering(node.op);
  const lower: Lowering | undefined = typeof entry === 'function' ? entry
    : user !== undefined ? (g, xs, n, is, o) => {
      const y: unknown = user(g as OnnxBuilder, xs, n.attrs, { shape: n.shape, dtype: n.dtype, inputs: is });
      if (typeof y !== 'string') throw new SymflowError(n.op, `kernels.onnx must return the name of its result, got ${typeof y}`);
      g.node('Identity', [y], {}, o);
    }
    : getOp(node.op)?.compose !== undefined ? lowerComposed
    : undefined;
  if (lower === undefined) {
    const hint = getOp(node.op) !== undefined && !isBuiltinOp(node.op) ? ': give it kernels.onnx, or a compose fallback' : '';
    throw new SymflowError(node.op, `no ONNX lowering for op '${node.op}' (node '${node.name}') on backend onnx${hint}`);
  }
  // A composition's nodes are the outer node's: errors name it.
  const outer = b.owner;
  b.owner = outer ?? node.name;
  try {
    lower(b, inputs, node, ins, out);
  } finally {
    b.owner = outer;
  }
}

/** Lowers the op's `compose` fallback node by node into the same graph. */
const lowerComposed: Lowering = (b, xs, node, ins, out) => {
  const c = composition({ ...node, inputs: ins })!;
  const names = new Map(c.inputs.map((id, k) => [id, xs[k]!]));
  for (const n of c.steps) {
    if (n.op === 'constant') {
      names.set(n.id, b.constant(n.dtype, n.shape as number[], n.attrs['value'] as Float32Array));
      continue;
    }
    const o = b.fresh(n.op);
    lowerNode(b, n, n.inputs.map((i) => names.get(i)!), n.inputs.map((i) => c.ir.nodes[i]!), o);
    names.set(n.id, o);
  }
  b.node('Identity', [names.get(c.output)!], {}, out);
};
