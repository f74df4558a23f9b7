// 2-D pooling in NHWC (issue 12): maxPool and avgPool with TF's window and padding rules, their gradients as ops of
// their own (maxPoolGrad, avgPoolGrad, so second derivatives work), and globalAveragePool as a composite.
import { SymflowError } from '../errors.js';
import { defineOp, makeNode, type ShapeCtx } from '../registry.js';
import { constant } from '../sources.js';
import { type Dim, shapeString, type Tensor } from '../tensor.js';
import { addN } from './identity.js';
import { equal, logicalAnd, logicalNot, logicalOr, notEqual } from './compare.js';
import { gather } from './gather.js';
import { maximum } from './binary.js';
import { mean } from './math.js';
import { pad } from './slice.js';
import { where } from './where.js';

/** 'same': windows centred as TF does (an odd total padding puts the extra row / column at the bottom / right). */
export type PoolPadding = 'same' | 'valid';

/** The attributes every pooling record carries: window `[h, w]`, strides `[h, w]`, padding. */
export type PoolAttrs = { readonly size: readonly number[]; readonly strides: readonly number[]; readonly padding: string };

/** Options of `maxPool`, `avgPool` and the `nn.maxPool2d` / `nn.avgPool2d` layers (NHWC). */
export interface PoolOptions {
  /** The window: a number or `[h, w]`. */
  size: number | readonly [number, number];
  /** The step between windows: a number or `[h, w]` (default: the window size, as Keras). */
  strides?: number | readonly [number, number];
  /** 'valid' (default): windows inside the input; 'same': output size ceil(in / stride), padded as TF. */
  padding?: PoolPadding;
}

/** The largest finite float32: the gradient's rank of −Inf (see `gradKey`). */
export const F32_MAX = 3.4028234663852886e38;

/** One spatial axis of a pooling window: output size and the padding before and after (TF's rule). */
export interface PoolAxis {
  readonly out: number;
  readonly before: number;
  readonly after: number;
}

/** Output size and padding along one axis of size `n` (known), window `k`, stride `s`. */
export function poolAxis(n: number, k: number, s: number, padding: string): PoolAxis {
  if (padding === 'valid') return { out: Math.floor((n - k) / s) + 1, before: 0, after: 0 };
  const out = Math.ceil(n / s);
  const total = Math.max((out - 1) * s + k - n, 0);
  return { out, before: Math.floor(total / 2), after: total - Math.floor(total / 2) };
}

const pairOf = (v: number | readonly number[]): number[] => (typeof v === 'number' ? [v, v] : [...v]);

function checkAttrs(op: string, x: Tensor, { size, strides, padding }: PoolAttrs): void {
  const bad = (why: string) => new SymflowError(op, `${why}: x is ${shapeString(x.shape)}, size [${size.join(',')}], strides [${strides.join(',')}], padding ${JSON.stringify(padding)}`);
  if (x.rank !== 4) throw bad('x must be rank 4 (NHWC: batch, height, width, channels)');
  if (x.dtype !== 'float32') throw new SymflowError(op, `x must be float32, got ${x.dtype} (${x.name})`);
  const positive = (v: readonly number[]) => v.length === 2 && v.every((d) => Number.isSafeInteger(d) && d >= 1);
  if (!positive(size)) throw bad('size must be a positive integer or a pair [h, w] of them');
  if (!positive(strides)) throw bad('strides must be a positive integer or a pair [h, w] of them');
  if (padding !== 'same' && padding !== 'valid') throw bad(`padding must be 'same' or 'valid'`);
  for (const [axis, name] of [[1, 'height'], [2, 'width']] as const) {
    const n = x.shape[axis]!;
    if (padding === 'valid' && n !== null && typeof n === 'number' && n < size[axis - 1]!) {
      throw bad(`with padding 'valid' the window ${name} ${size[axis - 1]} must not exceed the input ${name} ${n}`);
    }
  }
}

/** The output shape of a pooling over x ([N, H, W, C] → [N, OH, OW, C]). */
function pooledShape(x: Tensor, a: PoolAttrs, ctx: ShapeCtx): Dim[] {
  const s = x.shape;
  const out = (axis: 1 | 2): Dim => {
    const n = s[axis]!;
    return ctx.known(n) ? poolAxis(n, a.size[axis - 1]!, a.strides[axis - 1]!, a.padding).out : null;
  };
  return [s[0]!, out(1), out(2), s[3]!];
}

const poolInfer = (op: string) => ([x]: readonly Tensor[], a: PoolAttrs, ctx: ShapeCtx) => {
  checkAttrs(op, x!, a);
  return { shape: pooledShape(x!, a, ctx), dtype: x!.dtype };
};

/** A gradient op's rule: dx is shaped like x; dy must be shaped like the pooling's output. */
const gradInfer = (op: string, xAt: number, dyAt: number) => (inputs: readonly Tensor[], a: PoolAttrs, ctx: ShapeCtx) => {
  const x = inputs[xAt]!, dy = inputs[dyAt]!;
  checkAttrs(op, x, a);
  if (dy.dtype !== 'float32') throw new SymflowError(op, `dy must be float32, got ${dy.dtype} (${dy.name})`);
  const want = pooledShape(x, a, ctx);
  if (!ctx.sameShape(want, dy.shape)) throw new SymflowError(op, `dy must be shaped like the pooling's output ${shapeString(want)}, got ${shapeString(dy.shape)} (x is ${shapeString(x.shape)})`);
  return { shape: x.shape, dtype: x.dtype };
};

const attrsSchema = { size: 'ints', strides: 'ints', padding: 'string' } as const;

export const maxPoolOp = defineOp({
  name: 'maxPool',
  attrs: attrsSchema,
  infer: poolInfer('maxPool'),
  grad: (dy, _y, [x], a) => [(): Tensor => makeNode(maxPoolGradOp, [x!, dy], a)],
});

export const avgPoolOp = defineOp({
  name: 'avgPool',
  attrs: attrsSchema,
  infer: poolInfer('avgPool'),
  grad: (dy, _y, [x], a) => [(): Tensor => makeNode(avgPoolGradOp, [dy, x!], a)],
});

/**
 * maxPool's gradient: dy of each window goes to ONE position, the first (row-major) holding the window's largest
 * `gradKey` (x with NaN ranked as +Inf and −Inf as −F32_MAX): the first maximum as TF, the first NaN or +Inf in a
 * window with NaN, the first element of an all −Inf window. Linear in dy; piecewise constant in x (no gradient).
 */
export const maxPoolGradOp = defineOp({
  name: 'maxPoolGrad',
  attrs: attrsSchema,
  infer: gradInfer('maxPoolGrad', 0, 1),
  grad: (g, _y, [x], a) => [undefined, (): Tensor => selectFirstMax(x!, g, a)],
});

/** avgPool's gradient: each dy spread over its window's valid (non-padded) elements. Its adjoint is avgPool. */
export const avgPoolGradOp = defineOp({
  name: 'avgPoolGrad',
  attrs: attrsSchema,
  infer: gradInfer('avgPoolGrad', 1, 0),
  grad: (g, _y, _ins, a) => [(): Tensor => makeNode(avgPoolOp, [g], a), undefined],
});

/** The rank maxPool's gradient picks by: NaN as +Inf, −Inf as −F32_MAX, every other value itself. */
export function gradKey(x: Tensor): Tensor {
  return where(notEqual(x, x), Infinity, where(equal(x, -Infinity), -F32_MAX, x));
}

/**
 * The views of a padded input under each window offset: for offset (i, j), the [N, OH, OW, C] tensor of the
 * elements at (i + sh·oh, j + sw·ow). Needs static height and width.
 */
function windowViews(x: Tensor, a: PoolAttrs, fill: number, who: string): Tensor[] {
  const [h, w] = [x.shape[1]!, x.shape[2]!];
  if (typeof h !== 'number' || typeof w !== 'number') {
    throw new SymflowError('gradients', `${who}: the second derivative of maxPool needs a static height and width, x is ${shapeString(x.shape)}`);
  }
  const ah = poolAxis(h, a.size[0]!, a.strides[0]!, a.padding), aw = poolAxis(w, a.size[1]!, a.strides[1]!, a.padding);
  const xp = ah.before + ah.after + aw.before + aw.after > 0 ? pad(x, [[0, 0], [ah.before, ah.after], [aw.before, aw.after], [0, 0]], fill) : x;
  const idx = (o: number, s: number, n: number) => constant(Int32Array.from({ length: n }, (_, k) => o + s * k));
  const views: Tensor[] = [];
  for (let i = 0; i < a.size[0]!; i++) {
    const rows = gather(xp, idx(i, a.strides[0]!, ah.out), 1);
    for (let j = 0; j < a.size[1]!; j++) views.push(gather(rows, idx(j, a.strides[1]!, aw.out), 2));
  }
  return views;
}

/**
 * For each window of x, the value of g (shaped like x) at the position maxPoolGrad sends the window's gradient to:
 * the derivative of maxPoolGrad with respect to dy (TF's MaxPoolGradGrad), from public ops.
 */
export function selectFirstMax(x: Tensor, g: Tensor, a: PoolAttrs): Tensor {
  const keys = windowViews(gradKey(x), a, -Infinity, 'maxPoolGrad');
  const gs = windowViews(g, a, 0, 'maxPoolGrad');
  const top = keys.reduce((m, k) => maximum(m, k));
  let taken: Tensor | undefined;
  const parts = keys.map((k, t) => {
    const hit = equal(k, top);
    const first = taken === undefined ? hit : logicalAnd(hit, logicalNot(taken));
    taken = taken === undefined ? hit : logicalOr(taken, hit);
    return where(first, gs[t]!, 0);
  });
  return parts.length === 1 ? parts[0]! : addN(parts);
}

function poolAttrs(op: string, opts: PoolOptions): PoolAttrs {
  if (typeof opts !== 'object' || opts === null) throw new SymflowError(op, `options {size, strides, padding} are required, got ${String(opts)}`);
  const size = pairOf(opts.size);
  return { size, strides: opts.strides === undefined ? size : pairOf(opts.strides), padding: opts.padding ?? 'valid' };
}

/**
 * Max pooling over 2-D windows of an NHWC tensor, as TF's `max_pool2d`. A window holding a NaN gives NaN; padding
 * ('same') never wins. The gradient goes to the first maximum of each window (see maxPoolGrad).
 * ```ts
 * const y = maxPool(x, { size: 2 });                                  // [n, 28, 28, c] → [n, 14, 14, c]
 * const z = maxPool(x, { size: [3, 3], strides: 2, padding: 'same' });
 * ```
 * @param x [batch, height, width, channels] float32 @param opts size, strides (default: size), padding (default 'valid') @returns the pooled tensor
 */
export function maxPool(x: Tensor, opts: PoolOptions): Tensor {
  return makeNode(maxPoolOp, [x], poolAttrs('maxPool', opts));
}

/**
 * Average pooling over 2-D windows of an NHWC tensor, as TF's `avg_pool2d`: with 'same' padding a window is divided
 * by its number of valid (non-padded) elements.
 * @param x [batch, height, width, channels] float32 @param opts size, strides (default: size), padding (default 'valid') @returns the pooled tensor
 */
export function avgPool(x: Tensor, opts: PoolOptions): Tensor {
  return makeNode(avgPoolOp, [x], poolAttrs('avgPool', opts));
}

/**
 * The mean over height and width of an NHWC tensor (a composite: `mean(x, [1, 2])`).
 * @param x [batch, height, width, channels] @param opts keepDims: keep H and W as size 1 (default false) @returns [batch, channels] or [batch, 1, 1, channels]
 */
export function globalAveragePool(x: Tensor, opts: { keepDims?: boolean } = {}): Tensor {
  if (x.rank !== 4) throw new SymflowError('globalAveragePool', `x must be rank 4 (NHWC), got ${shapeString(x.shape)} (${x.name})`);
  if (x.dtype !== 'float32') throw new SymflowError('globalAveragePool', `x must be float32, got ${x.dtype} (${x.name})`);
  return mean(x, [1, 2], opts.keepDims ?? false);
}
