// ONNX lowerings of the pooling ops (issue 12): MaxPool / AveragePool in NCHW between two transposes, 'same' as
// explicit pads (SAME_UPPER where height or width is unknown: the same rule, TF's). onnxruntime has no gradient
// ops: maxPoolGrad is MaxPool's Indices output and a ScatterElements add, avgPoolGrad a ConvTranspose with a
// window of ones over dy divided by each window's valid count.
import { SymflowError } from '../../graph/errors.js';
import type { NodeIR } from '../../graph/ir.js';
import { F32_MAX, type PoolAttrs, poolAxis } from '../../graph/ops/pool.js';
import { shapeString } from '../../graph/tensor.js';
import { ELEM, type GraphBuilder, valueInfo } from './builder.js';

type Lowering = (b: GraphBuilder, xs: readonly string[], node: NodeIR, ins: readonly NodeIR[], out: string) => void;

const toNCHW = (b: GraphBuilder, x: string) => b.node('Transpose', [x], { perm: [0, 3, 1, 2] });
const toNHWC = (b: GraphBuilder, x: string, out?: string) => b.node('Transpose', [x], { perm: [0, 2, 3, 1] }, out);

/** The window attributes of MaxPool / AveragePool for an NHWC input of static shape `shape`. */
function windowAttrs(a: PoolAttrs, shape: readonly (number | null)[]) {
  const [h, w] = [shape[1], shape[2]];
  const base = { kernel_shape: [...a.size], strides: [...a.strides] };
  if (a.padding === 'valid') return { ...base, pads: [0, 0, 0, 0] };
  if (typeof h !== 'number' || typeof w !== 'number') return { ...base, auto_pad: 'SAME_UPPER' };
  const ah = poolAxis(h, a.size[0]!, a.strides[0]!, 'same'), aw = poolAxis(w, a.size[1]!, a.strides[1]!, 'same');
  return { ...base, pads: [ah.before, aw.before, ah.after, aw.after] };
}

const attrsOf = (n: NodeIR) => n.attrs as unknown as PoolAttrs;

/**
 * Whether x holds a NaN or an infinity, as a bool scalar: its sum times 0 is NaN exactly then (or where the sum
 * overflows, which only takes the exact path needlessly). One ReduceSum instead of elementwise fixes over the whole
 * tensor: those (IsNaN, Cast, Where over x) cost more than the MaxPool itself.
 */
const nonFinite = (b: GraphBuilder, xN: string) => b.node('IsNaN', [b.node('Mul', [b.node('ReduceSum', [xN], { keepdims: 0 }), b.scalar('float32', 0)])]);

/** MaxPool with its Indices output: [values, indices] (peephole.ts drops Indices where nothing reads them). */
function maxPoolIndexed(b: GraphBuilder, xN: string, w: ReturnType<typeof windowAttrs>): [string, string] {
  const y = b.node('MaxPool', [xN], w);
  // NOTE: GraphBuilder.node names one output; MaxPool's second, Indices, is appended to the node just made.
  const indices = b.fresh('indices');
  b.nodes[b.nodes.length - 1]!.output!.push(indices);
  return [y, indices];
}

/**
 * `If(pred)` of two branches, each emitted by its function into a child builder and returning its values (of
 * `elems`); returns the If's outputs. A branch's own values are its outputs as they stand (no copy).
 */
function choose(b: GraphBuilder, pred: string, elems: readonly ('float32' | 'int64')[], then: (g: GraphBuilder) => string[], otherwise: (g: GraphBuilder) => string[]): string[] {
  const branch = (name: string, emit: (g: GraphBuilder) => string[]) => {
    const g = b.child();
    g.owner = b.owner;
    const made = emit(g);
    const own = new Set(g.nodes.flatMap((nd) => nd.output ?? []));
    const outs = made.map((v) => (own.has(v) ? v : g.node('Identity', [v], {}, g.fresh(name))));
    return { graph: g.graph(name, [], outs.map((o, k) => valueInfo(o, elems[k]!))) };
  };
  const outs = elems.map(() => b.fresh('chosen'));
  b.nodes.push({ opType: 'If', input: [pred], output: outs, attribute: [] });
  const node = b.nodes[b.nodes.length - 1]!;
  // Built after the If is placed, as the node() helper would not take several outputs; its attributes added now.
  const [t, e] = [branch('nonFinite', then), branch('finite', otherwise)];
  node.attribute = [{ name: 'then_branch', type: 5, g: t.graph }, { name: 'else_branch', type: 5, g: e.graph }];
  return outs;
}

const indicesKey = (x: string, w: ReturnType<typeof windowAttrs>) => `maxPool indices|${x}|${JSON.stringify(w)}`;

/**
 * maxPool: NaN where the window holds one (onnxruntime skips NaN), else the max; padding never wins. Finite x (the
 * usual case) is MaxPool alone; the per-window NaN test runs only where x holds a NaN or an infinity. The same If
 * gives the gradient's indices (maxPoolGrad finds them by x and the window), so a training step pools once.
 */
const maxPool: Lowering = (b, [x], n, ins, out) => {
  const w = windowAttrs(attrsOf(n), ins[0]!.shape);
  const xN = toNCHW(b, x!);
  const [y, indices] = choose(b, nonFinite(b, xN), ['float32', 'int64'], (g) => {
    const hasNaN = g.node('Greater', [g.node('MaxPool', [g.node('Cast', [g.node('IsNaN', [xN])], { to: ELEM.float32 })], w), g.scalar('float32', 0)]);
    return [g.node('Where', [hasNaN, g.scalar('float32', NaN), g.node('MaxPool', [xN], w)]), exactIndices(g, xN, w)];
  }, (g) => maxPoolIndexed(g, xN, w));
  b.remember(indicesKey(x!, w), indices!);
  toNHWC(b, y!, out);
};

/** The gradient's indices where x may hold NaN or −Inf: of the key (NaN as +Inf, −Inf as −F32_MAX). */
function exactIndices(g: GraphBuilder, xN: string, w: ReturnType<typeof windowAttrs>): string {
  const key = g.node('Where', [g.node('IsNaN', [xN]), g.scalar('float32', Infinity),
    g.node('Where', [g.node('Equal', [xN, g.scalar('float32', -Infinity)]), g.scalar('float32', -F32_MAX), xN])]);
  return maxPoolIndexed(g, key, w)[1];
}

/** avgPool: AveragePool dividing by the valid elements (count_include_pad 0), as TF. */
const avgPool: Lowering = (b, [x], n, ins, out) => {
  const w = windowAttrs(attrsOf(n), ins[0]!.shape);
  const y = b.node('AveragePool', [toNCHW(b, x!)], { ...w, count_include_pad: 0 });
  // A window of −0 averages to +0, a sum from +0 as on TF.js (onnxruntime gave −0; it drops an Add of 0).
  const zero = b.scalar('float32', 0);
  toNHWC(b, b.node('Where', [b.node('Equal', [y, zero]), zero, y]), out);
};

/**
 * maxPoolGrad: MaxPool's Indices (flat NCHW positions of the first maximum, row-major) of the gradient's key (NaN
 * as +Inf, −Inf as −F32_MAX: onnxruntime's MaxPool skips NaN); dy is added at those positions.
 */
const maxPoolGrad: Lowering = (b, [x, dy], n, ins, out) => {
  const w = windowAttrs(attrsOf(n), ins[0]!.shape);
  const xN = toNCHW(b, x!);
  // Finite x is its own key: MaxPool's own indices.
  const indices = b.recall(indicesKey(x!, w))
    ?? choose(b, nonFinite(b, xN), ['int64'], (g) => [exactIndices(g, xN, w)], (g) => [maxPoolIndexed(g, xN, w)[1]])[0]!;
  const shapeN = b.node('Shape', [xN]);
  const zeros = b.node('ConstantOfShape', [b.node('ReduceProd', [shapeN], { keepdims: 1 })], { value: { tensor: { dataType: ELEM.float32, dims: [1], rawData: new Uint8Array(4) } } });
  const flat = (v: string) => b.node('Reshape', [v, b.ints([-1])]);
  const dx = b.node('ScatterElements', [zeros, flat(indices), flat(toNCHW(b, dy!))], { axis: 0, reduction: 'add' });
  toNHWC(b, b.node('Reshape', [dx, shapeN]), out);
};

/**
 * avgPoolGrad: dy divided by each window's valid count, then ConvTranspose with a window of ones over [N·C, 1, OH,
 * OW] (channels as batch), pads and output_padding chosen to give exactly [H, W]. Needs a static height and width.
 */
const avgPoolGrad: Lowering = (b, [dy, x], n, ins, out) => {
  const a = attrsOf(n);
  const xs = ins[1]!.shape;
  const [h, w] = [xs[1], xs[2]];
  if (typeof h !== 'number' || typeof w !== 'number') {
    throw new SymflowError('avgPoolGrad', `on onnx the gradient of avgPool needs a static height and width, x is ${shapeString(xs)}`);
  }
  const [kh, kw] = a.size as [number, number], [sh, sw] = a.strides as [number, number];
  const ah = poolAxis(h, kh, sh, a.padding), aw = poolAxis(w, kw, sw, a.padding);
  const count = (o: number, before: number, s: number, k: number, len: number) => Math.min(o * s - before + k, len) - Math.max(o * s - before, 0);
  const inv = new Float32Array(ah.out * aw.out);
  for (let i = 0; i < ah.out; i++) for (let j = 0; j < aw.out; j++) inv[i * aw.out + j] = count(i, ah.before, sh, kh, h) * count(j, aw.before, sw, kw, w);
  const dyN = toNCHW(b, dy!);
  const scaled = b.node('Div', [dyN, b.constant('float32', [1, 1, ah.out, aw.out], inv)]);
  const planes = b.node('Reshape', [scaled, b.ints([-1, 1, ah.out, aw.out])]);
  const ones = b.constant('float32', [1, 1, kh, kw], new Float32Array(kh * kw).fill(1));
  const full = (o: number, s: number, k: number, ax: { before: number; after: number }) => (o - 1) * s + k - ax.before - ax.after;
  const dx = b.node('ConvTranspose', [planes, ones], {
    kernel_shape: [kh, kw], strides: [sh, sw], pads: [ah.before, aw.before, ah.after, aw.after],
    output_padding: [h - full(ah.out, sh, kh, ah), w - full(aw.out, sw, kw, aw)],
  });
  toNHWC(b, b.node('Reshape', [dx, b.node('Shape', [toNCHW(b, x!)])]), out);
};

/**
 * Wraps a lowering for the shapes onnxruntime's pooling refuses or gets wrong: 0 channels ("Only N can be zero":
 * where the channel count is not known to be positive, one zero channel is added to the inputs `padded` and cut
 * from the result), and a 'valid' window larger than a run-time height or width (onnxruntime returned a row of
 * garbage: a Gather out of range then fails the run, naming the node).
 */
function guarded(lower: Lowering, xAt: number, padded: readonly number[]): Lowering {
  return (b, xs, n, ins, out) => {
    const a = attrsOf(n);
    const shape = ins[xAt]!.shape;
    let inputs = [...xs];
    if (a.padding === 'valid' && (typeof shape[1] !== 'number' || typeof shape[2] !== 'number')) {
      const hw = b.node('Slice', [b.node('Shape', [xs[xAt]!]), b.ints([1]), b.ints([3])]);
      const small = b.node('Cast', [b.node('ReduceMax', [b.node('Cast', [b.node('Less', [hw, b.ints([...a.size])])], { to: ELEM.int32 })], { keepdims: 1 })], { to: ELEM.int64 });
      const check = b.node('Gather', [b.ints([0]), b.node('Mul', [small, b.ints([-(2 ** 31)])])], { axis: 0 });
      inputs[xAt] = b.node('Reshape', [xs[xAt]!, b.node('Add', [b.node('Shape', [xs[xAt]!]), check])]);
    }
    const c = shape[3];
    if (typeof c === 'number' && c > 0) { lower(b, inputs, n, ins, out); return; }
    inputs = inputs.map((v, i) => (padded.includes(i) ? b.node('Pad', [v, b.ints([0, 0, 0, 0, 0, 0, 0, 1])]) : v));
    const wide = b.fresh('pooled');
    lower(b, inputs, n, ins, wide);
    b.node('Slice', [wide, b.ints([0]), b.ints([-1]), b.ints([3])], {}, out);
  };
}

export const poolLowerings = {
  maxPool: guarded(maxPool, 0, [0]),
  avgPool: guarded(avgPool, 0, [0]),
  maxPoolGrad: guarded(maxPoolGrad, 0, [0, 1]),
  avgPoolGrad: guarded(avgPoolGrad, 1, [0, 1]),
} as const;
