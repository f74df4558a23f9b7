import * as tf from '@tensorflow/tfjs-core';
import { SymflowError } from '../graph/errors.js';
import type { KernelOpName } from '../graph/opList.js';
import { getOp, isBuiltinOp } from '../graph/registry.js';
import { composition } from './compose.js';
import { COMPOSE, type Compose, type OpKernels } from './opKernels.js';
import * as edge from './tfjsSemantics.js';
// --- convolutions (issue 12) ---
import * as conv from './tfjsConv.js';
import type { KernelNode } from './types.js';
// --- pooling (issue 12) ---
import * as pool from './tfjsPool.js';
import type { PoolAttrs } from '../graph/ops/pool.js';

/** A kernel over TF.js tensors. Kernels that make intermediates wrap them in `tf.tidy`. */
export type TfKernel = (xs: tf.Tensor[]) => tf.Tensor;

export interface KernelOptions {
  /** The TF.js backend, for the edge-value wrappers one backend needs (see tfjsSemantics.ts). */
  backend?: edge.TfBackendName;
}

type Factory = (node: KernelNode, opts: KernelOptions) => TfKernel;

const a = (node: KernelNode) => node.attrs as Record<string, never>;
const un = (f: (x: tf.Tensor) => tf.Tensor): Factory => () => ([x]) => f(x!);
const bin = (f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor): Factory => () => ([x, y]) => f(x!, y!);
/** A binary kernel chosen per backend (edge-value wrappers). */
const binOn = (f: (backend: edge.TfBackendName) => (x: tf.Tensor, y: tf.Tensor) => tf.Tensor): Factory => (_n, opts) => {
  const k = f(opts.backend ?? 'cpu');
  return ([x, y]) => k(x!, y!);
};
/** A second handle on the same data: TF.js reshape shares the buffer (identity would copy on wasm). */
export const alias = (x: tf.Tensor): tf.Tensor => tf.reshape(x, x.shape);

/** Axes along which `from` was broadcast to reach `to` (run-time shapes). */
function reductionAxes(from: readonly number[], to: readonly number[]): number[] {
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
  }
  return axes;
}

/** An entry that differs between TF.js backends: `otherwise` where `perBackend` names none. */
interface PerBackend {
  readonly perBackend: Readonly<Partial<Record<edge.TfBackendName, Factory | Compose>>>;
  readonly otherwise: Factory | Compose;
}
type Entry = Factory | Compose | PerBackend;

/**
 * A kernel factory for every op a backend runs (TypeScript refuses a table without one), or `COMPOSE`: the op's
 * composition from other ops (its record's `compose`) runs in its place; or both, per backend (`PerBackend`).
 */
const factories: Readonly<Record<KernelOpName, Entry>> = {
  add: bin(tf.add), subtract: bin(tf.sub), mul: binOn(edge.mul), div: binOn(edge.div), pow: binOn(edge.pow),
  maximum: binOn((b) => edge.extremum(tf.maximum, b)), minimum: binOn((b) => edge.extremum(tf.minimum, b)),
  greater: bin(tf.greater), less: bin(tf.less), equal: bin(tf.equal), notEqual: bin(tf.notEqual),
  greaterEqual: bin(tf.greaterEqual), lessEqual: bin(tf.lessEqual), logicalAnd: bin(tf.logicalAnd), logicalOr: bin(tf.logicalOr),
  logicalNot: un(tf.logicalNot), neg: un(tf.neg), exp: un(tf.exp), log: un(tf.log), sqrt: un(tf.sqrt), abs: un(tf.abs),
  sign: un(edge.sign), relu: (_n, opts) => { const f = edge.relu(opts.backend ?? 'cpu'); return ([x]) => f(x!); }, sigmoid: un(tf.sigmoid), tanh: un(tf.tanh), sin: (_n, opts) => { const f = edge.sin(opts.backend ?? 'cpu'); return ([x]) => f(x!); }, cos: un(tf.cos), floor: un(tf.floor),
  identity: un(alias), stopGradient: un(alias),
  // The value of f's output (input 0); the other inputs are there for the gradient rule only.
  customGradient: () => ([y]) => alias(y!),
  cast: (n, opts) => ([x]) => edge.cast(x!, a(n).dtype, opts.backend ?? 'cpu'),
  where: () => ([c, x, y]) => edge.where(c!, x!, y!),
  // On wasm, transposed matMuls never reach a kernel: the explicitTranspose pass lowers them first.
  matMul: (n) => {
    const { transposeA: ta, transposeB: tb } = n.attrs as { transposeA: boolean; transposeB: boolean };
    return ([x, y]) => edge.emptyMatMul(x!, y!, ta, tb) ?? tf.matMul(x!, y!, ta, tb);
  },
  fusedMatMul: (n) => {
    const { transposeA: ta, transposeB: tb, activation } = n.attrs as { transposeA: boolean; transposeB: boolean; activation: 'linear' | 'relu' };
    return ([x, y, bias]) => {
      const k = ta ? x!.shape[x!.rank - 2] : x!.shape[x!.rank - 1];
      if (k !== 0) return tf.fused.matMul({ a: x!, b: y!, transposeA: ta, transposeB: tb, bias: bias!, activation });
      return tf.tidy(() => {
        const biased = tf.add(edge.emptyMatMul(x!, y!, ta, tb)!, bias!);
        return activation === 'relu' ? tf.relu(biased) : biased;
      });
    };
  },
  // TF.js wasm's transpose of an empty tensor fails ("divide by zero").
  transpose: (n) => ([x]) => (x!.size === 0 ? tf.zeros((a(n).perm as number[]).map((p) => x!.shape[p]!), x!.dtype) : tf.transpose(x!, a(n).perm)),
  reshape: (n) => ([x]) => tf.reshape(x!, a(n).shape),
  reshapeLike: () => ([x, like]) => tf.reshape(x!, like!.shape),
  expandDims: (n) => ([x]) => tf.expandDims(x!, a(n).axis),
  squeeze: (n) => ([x]) => tf.reshape(x!, x!.shape.filter((_, i) => !(a(n).axes as number[]).includes(i))),
  concat: (n) => (xs) => tf.concat(xs, a(n).axis),
  slice: (n) => ([x]) => tf.slice(x!, a(n).begin, a(n).size),
  pad: (n) => ([x]) => tf.pad(x!, a(n).paddings, a(n).value),
  gather: (n) => ([x, i]) => edge.gather(x!, i!, a(n).axis),
  // ScatterNd sums duplicate indices; rows with ids outside [0, k) are zeroed with a where (a mask product would
  // turn their NaN or Inf into NaN) and sent to 0. TF.js cpu's own UnsortedSegmentSum is a masked sum per segment,
  // so one NaN row made every segment NaN: it is not used.
  unsortedSegmentSum: (n) => {
    const k = a(n).numSegments as number;
    return ([d, ids]) => tf.tidy(() => {
      if (d!.size === 0) return tf.zeros([k, ...d!.shape.slice(1)], d!.dtype);
      const inRange = tf.logicalAnd(tf.greaterEqual(ids!, 0), tf.less(ids!, k));
      const keep = tf.reshape(inRange, [-1, ...d!.shape.slice(1).map(() => 1)]);
      const safe = tf.where(inRange, ids!, tf.zerosLike(ids!));
      return tf.scatterND(tf.expandDims(safe, 1), tf.where(keep, d!, tf.scalar(0, d!.dtype)), [k, ...d!.shape.slice(1)]);
    });
  },
  sum: (n) => ([x]) => edge.sum(x!, a(n).axes, a(n).keepDims),
  max: (n) => ([x]) => edge.max(x!, a(n).axes, a(n).keepDims),
  argMax: (n) => ([x]) => edge.argMax(x!, a(n).axis),
  // NOTE: tfjs-backend-wasm's OneHot writes int32 bits into a float32 output when asked for float32 (1 reads as
  // 1.4e-45), so build it as int32 everywhere, cast, and apply on/off values arithmetically.
  oneHot: (n) => ([i]) => tf.tidy(() => {
    const { depth, onValue: on, offValue: off } = n.attrs as { depth: number; onValue: number; offValue: number };
    const hot = tf.oneHot(i as tf.Tensor1D, depth, 1, 0, 'int32');
    // A where, not hot · (on − off) + off: that turns an offValue of −0 into +0.
    return on === 1 && off === 0 ? tf.cast(hot, 'float32') : tf.where(tf.equal(hot, 1), tf.scalar(on), tf.scalar(off));
  }),
  fillLike: (n) => ([x]) => tf.fill(x!.shape, a(n).value, a(n).dtype),
  shapeSize: (n) => ([x]) => tf.scalar((a(n).axes as number[]).reduce((p, ax) => p * x!.shape[ax]!, 1), 'float32'),
  // A left fold of adds, the order AddN sums in: TF.js wasm's Add (XNNPACK) is about 2× its AddN on a 784×256 update.
  addN: () => (xs) => (xs.length === 1 ? alias(xs[0]!) : tf.tidy(() => xs.slice(1).reduce((acc, x) => tf.add(acc, x), xs[0]!))),
  broadcastLike: () => ([x, like]) => {
    const shape = tf.backend_util.assertAndGetBroadcastShape(x!.shape, like!.shape);
    if (shape.length === x!.rank && shape.every((d, i) => d === x!.shape[i])) return alias(x!);
    // TF.js broadcastTo gives [1, 2] for [2] → [0, 2].
    return shape.includes(0) ? tf.zeros(shape, x!.dtype) : tf.broadcastTo(x!, shape);
  },
  sumToShape: () => ([x, like]) => {
    const axes = reductionAxes(x!.shape, like!.shape);
    if (axes.length === 0) return alias(x!);
    return tf.tidy(() => tf.reshape(edge.sum(x!, axes, false), like!.shape));
  },
  softmaxCrossEntropy: () => ([logits, labels]) => tf.tidy(() => {
    const last = logits!.rank - 1;
    const z = tf.sub(logits!, edge.max(logits!, [last], true));
    const logp = tf.sub(z, tf.log(edge.sum(tf.exp(z), [last], true)));
    return tf.neg(edge.sum(tf.mul(labels!, logp), [last], false));
  }),
  // --- activations and scans (issue 12) ---
  erf: (_n, opts) => { const f = edge.erf(opts.backend ?? 'cpu'); return ([x]) => f(x!); },
  softplus: un(tf.softplus),
  cumsum: (n) => {
    const { axis, exclusive, reverse } = n.attrs as { axis: number; exclusive: boolean; reverse: boolean };
    return ([x]) => edge.cumsum(x!, axis, exclusive, reverse);
  },
  // --- pooling (issue 12) ---
  maxPool: (n, opts) => pool.maxPool(n.attrs as PoolAttrs, opts.backend ?? 'cpu'),
  avgPool: (n, opts) => pool.avgPool(n.attrs as PoolAttrs, opts.backend ?? 'cpu'),
  maxPoolGrad: (n, opts) => pool.maxPoolGrad(n.attrs as PoolAttrs, opts.backend ?? 'cpu'),
  avgPoolGrad: (n) => pool.avgPoolGrad(n.attrs as PoolAttrs),
  // --- convolutions (issue 12) ---
  conv2d: conv.conv2d,
  conv2dBackpropInput: conv.conv2dBackpropInput,
  // tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel: the record's composition (a conv2d) runs there.
  conv2dBackpropFilter: { perBackend: { wasm: COMPOSE }, otherwise: conv.conv2dBackpropFilter },
  depthwiseConv2d: conv.depthwiseConv2d,
  // Nor depthwise backprops: the records' compositions (through conv2d's backprops, block-diagonal filter) run there.
  depthwiseConv2dBackpropInput: { perBackend: { wasm: COMPOSE }, otherwise: conv.depthwiseConv2dBackpropInput },
  depthwiseConv2dBackpropFilter: { perBackend: { wasm: COMPOSE }, otherwise: conv.depthwiseConv2dBackpropFilter },
};

/** The table's entry for an op on one TF.js backend (`undefined`: not a built-in of the table). */
function entryFor(op: string, backend: string): Factory | Compose | undefined {
  const e = (factories as Readonly<Record<string, Entry | undefined>>)[op];
  if (e !== undefined && typeof e !== 'function' && 'perBackend' in e) return e.perBackend[backend as edge.TfBackendName] ?? e.otherwise;
  return e;
}

/** How a TF.js backend runs an op: its own kernel, a declared composition, or not at all. */
export function tfjsCoverage(op: string, backend: edge.TfBackendName): 'kernel' | 'compose' | undefined {
  const entry = entryFor(op, backend);
  if (entry !== undefined) return typeof entry === 'function' ? 'kernel' : 'compose';
  const def = getOp(op);
  const user = def?.kernels as OpKernels | undefined;
  if (user?.[backend] ?? user?.tfjs) return 'kernel';
  return def?.compose !== undefined ? 'compose' : undefined;
}

/**
 * Builds the TF.js kernel for a node: the table's, a user op's own (its `kernels.<backend>` or `kernels.tfjs`), or
 * the op's composition; an op with none is an error naming the op and the backend.
 */
export function tfKernelFor(node: KernelNode, opts: KernelOptions, backend: string): TfKernel {
  const entry = entryFor(node.op, backend);
  if (typeof entry === 'function') return entry(node, opts);
  const user = getOp(node.op)?.kernels as OpKernels | undefined;
  const own = entry === undefined ? user?.[backend as edge.TfBackendName] ?? user?.tfjs : undefined;
  if (own !== undefined) return userKernel(own, node);
  const composed = composedKernel(node, opts, backend);
  if (composed !== undefined) return composed;
  const hint = getOp(node.op) !== undefined && !isBuiltinOp(node.op) ? `: give it kernels.${backend} (or kernels.tfjs), or a compose fallback` : '';
  throw new SymflowError(node.op, `no kernel for op '${node.op}' (node '${node.name}') on backend ${backend}${hint}`);
}

/** A user's kernel, in a tidy; an input returned as it is becomes a second handle (the caller owns the result). */
function userKernel(k: (xs: tf.Tensor[], attrs: KernelNode['attrs']) => tf.Tensor, node: KernelNode): TfKernel {
  return (xs) => {
    const y = tf.tidy(() => {
      const out: unknown = k(xs, node.attrs);
      if (!(out instanceof tf.Tensor)) throw new SymflowError(node.op, `its TF.js kernel must return a tf.Tensor, got ${out === null ? 'null' : typeof out}`);
      return out;
    });
    return xs.includes(y) ? alias(y) : y;
  };
}

/** Runs the op's `compose` fallback node by node with this backend's kernels, in one tidy (`undefined`: none). */
export function composedKernel(node: KernelNode, opts: KernelOptions, backend: string): TfKernel | undefined {
  const c = composition(node);
  if (c === undefined) return undefined;
  const steps = c.steps.map((n) => {
    if (n.op === 'constant') {
      const { shape, dtype, value } = n.attrs as { shape: number[]; dtype: tf.DataType; value: Float32Array | Int32Array | Uint8Array };
      return { n, make: () => tf.tensor(value, shape, dtype) };
    }
    const k = tfKernelFor({ ...n, inputs: n.inputs.map((i) => c.ir.nodes[i]!) }, opts, backend);
    return { n, make: (vals: Map<number, tf.Tensor>) => k(n.inputs.map((i) => vals.get(i)!)) };
  });
  return (xs) => {
    const y = tf.tidy(() => {
      const vals = new Map(c.inputs.map((id, k) => [id, xs[k]!]));
      for (const { n, make } of steps) vals.set(n.id, make(vals));
      return vals.get(c.output)!;
    });
    return xs.includes(y) ? alias(y) : y;
  };
}
