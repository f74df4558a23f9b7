// Convolutions (issue 12 §1): conv2d in NHWC with HWIO filters (TF's layout), its two backprops as ops of their
// own (so second derivatives are gradients of ops with gradients), depthwiseConv2d, and conv1d over conv2d.
import { SymflowError, argShape } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import type { ShapeCtx } from '../shapeRule.js';
import { type Dim, shapeString, type Tensor } from '../tensor.js';
import { concat } from './concat.js';
import { pad, slice } from './slice.js';
import { expandDims, squeeze } from './reshape.js';
import { transpose } from './transpose.js';

/** 'valid': no padding, windows inside the input; 'same': output size ceil(in / stride), padded as TF (an odd total puts the extra row / column at the bottom / right). */
export type Padding = 'same' | 'valid';
/** A stride or dilation: one number for both spatial axes, or `[h, w]`. */
export type Pair = number | readonly [number, number];

/** Options of `conv2d` and `depthwiseConv2d` (NHWC). */
export interface Conv2DOptions {
  /** The step between windows, in pixels: one number for both spatial axes or `[h, w]`. Default 1. */
  strides?: Pair;
  /** 'valid' (no padding, the default) or 'same' (output size ceil(in / stride); an odd total pads one more at the bottom / right, as TF). */
  padding?: Padding;
  /** The spacing between kernel taps (atrous convolution), one number or `[h, w]`. Default 1. Strides and dilations may not both exceed 1 (as TF's `tf.nn.convolution`). */
  dilations?: Pair;
}

/** Options of `conv1d` (NWC; it runs as `conv2d` on [batch, 1, width, channels]). */
export interface Conv1DOptions {
  /** The step between windows, in elements. Default 1. */
  stride?: number;
  /** 'valid' (default) or 'same' (output width ceil(in / stride)). */
  padding?: Padding;
  /** The spacing between kernel taps. Default 1; stride and dilation may not both exceed 1. */
  dilation?: number;
}

type ConvAttrs = { readonly strides: readonly number[]; readonly padding: string; readonly dilations: readonly number[] };
const CONV_SCHEMA = { strides: 'ints', padding: 'string', dilations: 'ints' } as const;

/** Checks strides, padding and dilations; `op` names the op in errors. */
function checkConvAttrs(op: string, { strides, padding, dilations }: ConvAttrs): void {
  if (padding !== 'same' && padding !== 'valid') throw new SymflowError(op, `padding must be 'same' or 'valid', got ${JSON.stringify(padding)}`);
  for (const [name, v] of [['strides', strides], ['dilations', dilations]] as const) {
    if (v.length !== 2 || !v.every((k) => Number.isSafeInteger(k) && k >= 1)) {
      throw new SymflowError(op, `${name} must be a positive integer or a pair [h, w] of positive integers, got ${JSON.stringify(v)}`);
    }
  }
  if (strides.some((s) => s > 1) && dilations.some((d) => d > 1)) {
    throw new SymflowError(op, `strides ${JSON.stringify(strides)} and dilations ${JSON.stringify(dilations)} may not both exceed 1 (as TF)`);
  }
}

/** The size of a window of `k` taps dilated by `d`. */
export const effectiveSize = (k: number, d: number): number => (k - 1) * d + 1;

/** The output size of one spatial axis (TF's rule). */
export function convOutSize(inSize: number, k: number, s: number, d: number, padding: string): number {
  return padding === 'same' ? Math.ceil(inSize / s) : Math.floor((inSize - effectiveSize(k, d)) / s) + 1;
}

/** [before, after] padding of one axis: 'same' pads the odd one at the end, as TF. */
export function convPads(inSize: number, k: number, s: number, d: number, padding: string): [number, number] {
  if (padding !== 'same') return [0, 0];
  const total = Math.max((Math.ceil(inSize / s) - 1) * s + effectiveSize(k, d) - inSize, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** The output's spatial dims from the input's, checking that a 'valid' window fits. */
function spatialOut(op: string, ctx: ShapeCtx, xDims: readonly Dim[], kDims: readonly Dim[], a: ConvAttrs, what: () => string): Dim[] {
  return [0, 1].map((i) => {
    const n = xDims[i]!, k = kDims[i]!;
    if (ctx.known(k) && k < 1) throw new SymflowError(op, `the filter's spatial size must be at least 1 on axis ${i}, got ${k}: ${what()}`);
    if (!ctx.known(n) || !ctx.known(k)) return null;
    const out = convOutSize(n, k, a.strides[i]!, a.dilations[i]!, a.padding);
    if (out < 1 && !(a.padding === 'same' && n === 0)) {
      throw new SymflowError(op, `output size ${out} < 1 on spatial axis ${i}: input ${n}, filter ${k} dilated by ${a.dilations[i]} (${effectiveSize(k, a.dilations[i]!)}), stride ${a.strides[i]}, padding '${a.padding}': ${what()}`);
    }
    return out;
  });
}

function checkRank4Float(op: string, args: readonly [string, Tensor][]): void {
  for (const [name, t] of args) {
    if (t.rank !== 4) throw new SymflowError(op, `${name} must have rank 4, got ${argShape(name, t)}`);
    if (t.dtype !== 'float32') throw new SymflowError(op, `${name} must be float32, got ${t.dtype} (${argShape(name, t)})`);
  }
}

function checkEqual(op: string, ctx: ShapeCtx, a: Dim, b: Dim, why: () => string): void {
  if (ctx.known(a) && ctx.known(b) && a !== b) throw new SymflowError(op, why());
  ctx.equal(a, b);
}

function checkSize(op: string, name: string, v: readonly number[]): void {
  if (v.length !== 2 || !v.every((k) => Number.isSafeInteger(k) && k >= 0)) throw new SymflowError(op, `${name} must be [h, w] of non-negative integers, got ${JSON.stringify(v)}`);
}

const both = (op: string, names: [string, string], a: Tensor, b: Tensor) => () => `${argShape(names[0], a)}, ${argShape(names[1], b)}`;

/** Static [h, w] of an input a gradient needs as an attribute. */
function staticHW(op: string, t: Tensor, axes: [number, number], what: string): [number, number] {
  const h = t.shape[axes[0]], w = t.shape[axes[1]];
  if (typeof h !== 'number' || typeof w !== 'number') {
    throw new SymflowError('gradients', `${op}: the gradient needs the static spatial size of ${what}, got ${shapeString(t.shape)}`);
  }
  return [h, w];
}
const convAttrs = (a: ConvAttrs): Conv2DOptions => ({ strides: [a.strides[0]!, a.strides[1]!], padding: a.padding as Padding, dilations: [a.dilations[0]!, a.dilations[1]!] });

export const conv2dOp = defineOp({
  name: 'conv2d',
  attrs: CONV_SCHEMA,
  infer: ([x, f], a, ctx) => {
    checkConvAttrs('conv2d', a);
    checkRank4Float('conv2d', [['x', x!], ['filter', f!]]);
    const what = both('conv2d', ['x', 'filter'], x!, f!);
    checkEqual('conv2d', ctx, x!.shape[3]!, f!.shape[2]!, () => `x's channels (axis 3) must equal the filter's input channels (axis 2): ${what()} (NHWC x, HWIO filter)`);
    const [oh, ow] = spatialOut('conv2d', ctx, x!.shape.slice(1, 3), f!.shape.slice(0, 2), a, what);
    return { shape: [x!.shape[0]!, oh!, ow!, f!.shape[3]!], dtype: 'float32' };
  },
  grad: (dy, _y, [x, f], a) => [
    () => conv2dBackpropInput(dy, f!, staticHW('conv2d', x!, [1, 2], 'x'), convAttrs(a)),
    () => conv2dBackpropFilter(x!, dy, staticHW('conv2d', f!, [0, 1], 'the filter'), convAttrs(a)),
  ],
});

export const conv2dBackpropInputOp = defineOp({
  name: 'conv2dBackpropInput',
  attrs: { inputSize: 'ints', ...CONV_SCHEMA },
  infer: ([dy, f], a, ctx) => {
    const op = 'conv2dBackpropInput';
    checkConvAttrs(op, a);
    checkSize(op, 'inputSize', a.inputSize);
    checkRank4Float(op, [['dy', dy!], ['filter', f!]]);
    const what = both(op, ['dy', 'filter'], dy!, f!);
    checkEqual(op, ctx, dy!.shape[3]!, f!.shape[3]!, () => `dy's channels (axis 3) must equal the filter's output channels (axis 3): ${what()}`);
    const out = spatialOut(op, ctx, a.inputSize, f!.shape.slice(0, 2), a, () => `inputSize ${JSON.stringify(a.inputSize)}, ${what()}`);
    out.forEach((o, i) => checkEqual(op, ctx, dy!.shape[1 + i]!, o, () => `dy's spatial axis ${1 + i} must be ${o} for inputSize ${JSON.stringify(a.inputSize)}: ${what()}`));
    return { shape: [dy!.shape[0]!, a.inputSize[0]!, a.inputSize[1]!, f!.shape[2]!], dtype: 'float32' };
  },
  // Linear in dy and in the filter: the adjoint of dy ↦ x is the convolution, that of f ↦ x the filter backprop.
  grad: (g, _y, [dy, f], a) => [
    () => conv2d(g, f!, convAttrs(a)),
    () => conv2dBackpropFilter(g, dy!, staticHW('conv2dBackpropInput', f!, [0, 1], 'the filter'), convAttrs(a)),
  ],
});

export const conv2dBackpropFilterOp = defineOp({
  name: 'conv2dBackpropFilter',
  attrs: { filterSize: 'ints', ...CONV_SCHEMA },
  infer: ([x, dy], a, ctx) => {
    const op = 'conv2dBackpropFilter';
    checkConvAttrs(op, a);
    checkSize(op, 'filterSize', a.filterSize);
    checkRank4Float(op, [['x', x!], ['dy', dy!]]);
    const what = both(op, ['x', 'dy'], x!, dy!);
    checkEqual(op, ctx, x!.shape[0]!, dy!.shape[0]!, () => `x and dy must have the same batch size: ${what()}`);
    const out = spatialOut(op, ctx, x!.shape.slice(1, 3), a.filterSize, a, () => `filterSize ${JSON.stringify(a.filterSize)}, ${what()}`);
    out.forEach((o, i) => checkEqual(op, ctx, dy!.shape[1 + i]!, o, () => `dy's spatial axis ${1 + i} must be ${o} for filterSize ${JSON.stringify(a.filterSize)}: ${what()}`));
    return { shape: [a.filterSize[0]!, a.filterSize[1]!, x!.shape[3]!, dy!.shape[3]!], dtype: 'float32' };
  },
  grad: (g, _y, [x, dy], a) => [
    () => conv2dBackpropInput(dy!, g, staticHW('conv2dBackpropFilter', x!, [1, 2], 'x'), convAttrs(a)),
    () => conv2d(x!, g, convAttrs(a)),
  ],
  // The declared fallback where a backend has no kernel (TF.js wasm): the filter gradient is itself a convolution
  // of x (batch and channels swapped) with dy as the filter, strides and dilations swapped, cut to the filter size.
  compose: ([x, dy], a) => {
    const [h, w] = [x!.shape[1], x!.shape[2]];
    if (typeof h !== 'number' || typeof w !== 'number') throw new SymflowError('conv2dBackpropFilter', `its composition needs x's static spatial size, got ${shapeString(x!.shape)}`);
    const [fh, fw] = a.filterSize as [number, number];
    const ph = convPads(h, fh, a.strides[0]!, a.dilations[0]!, a.padding);
    const pw = convPads(w, fw, a.strides[1]!, a.dilations[1]!, a.padding);
    const xt = pad(transpose(x!, [3, 1, 2, 0]), [[0, 0], ph, pw, [0, 0]]);
    const r = conv2d(xt, transpose(dy!, [1, 2, 0, 3]), { strides: [a.dilations[0]!, a.dilations[1]!], dilations: [a.strides[0]!, a.strides[1]!] });
    return transpose(slice(r, [0, 0, 0, 0], [-1, fh, fw, -1]), [1, 2, 0, 3]);
  },
});

export const depthwiseConv2dOp = defineOp({
  name: 'depthwiseConv2d',
  attrs: CONV_SCHEMA,
  infer: ([x, f], a, ctx) => {
    const op = 'depthwiseConv2d';
    checkConvAttrs(op, a);
    checkRank4Float(op, [['x', x!], ['filter', f!]]);
    const what = both(op, ['x', 'filter'], x!, f!);
    checkEqual(op, ctx, x!.shape[3]!, f!.shape[2]!, () => `x's channels (axis 3) must equal the filter's input channels (axis 2): ${what()} (filter [h, w, inChannels, multiplier])`);
    const [oh, ow] = spatialOut(op, ctx, x!.shape.slice(1, 3), f!.shape.slice(0, 2), a, what);
    const c = ctx.known(x!.shape[3]!) ? x!.shape[3] : f!.shape[2]!;
    const m = f!.shape[3]!;
    return { shape: [x!.shape[0]!, oh!, ow!, ctx.known(c!) && ctx.known(m) ? c * m : null], dtype: 'float32' };
  },
  grad: (dy, _y, [x, f], a) => [
    () => depthwiseConv2dBackpropInput(dy, f!, staticHW('depthwiseConv2d', x!, [1, 2], 'x'), convAttrs(a)),
    () => depthwiseConv2dBackpropFilter(x!, dy, staticHW('depthwiseConv2d', f!, [0, 1], 'the filter'), convAttrs(a)),
  ],
});

export const depthwiseConv2dBackpropInputOp = defineOp({
  name: 'depthwiseConv2dBackpropInput',
  attrs: { inputSize: 'ints', ...CONV_SCHEMA },
  infer: ([dy, f], a, ctx) => {
    const op = 'depthwiseConv2dBackpropInput';
    checkConvAttrs(op, a);
    checkSize(op, 'inputSize', a.inputSize);
    checkRank4Float(op, [['dy', dy!], ['filter', f!]]);
    const what = both(op, ['dy', 'filter'], dy!, f!);
    const [c, m] = [f!.shape[2]!, f!.shape[3]!];
    if (ctx.known(c) && ctx.known(m)) checkEqual(op, ctx, dy!.shape[3]!, c * m, () => `dy's channels (axis 3) must be the filter's channels × multiplier (${c * m}): ${what()}`);
    const out = spatialOut(op, ctx, a.inputSize, f!.shape.slice(0, 2), a, () => `inputSize ${JSON.stringify(a.inputSize)}, ${what()}`);
    out.forEach((o, i) => checkEqual(op, ctx, dy!.shape[1 + i]!, o, () => `dy's spatial axis ${1 + i} must be ${o} for inputSize ${JSON.stringify(a.inputSize)}: ${what()}`));
    return { shape: [dy!.shape[0]!, a.inputSize[0]!, a.inputSize[1]!, c], dtype: 'float32' };
  },
  grad: (g, _y, [dy, f], a) => [
    () => depthwiseConv2d(g, f!, convAttrs(a)),
    () => depthwiseConv2dBackpropFilter(g, dy!, staticHW('depthwiseConv2dBackpropInput', f!, [0, 1], 'the filter'), convAttrs(a)),
  ],
  // The declared fallback (TF.js wasm): conv2d's input backprop, one channel at a time (a block-diagonal filter
  // would multiply a NaN of one channel's dy by the zeros of the others).
  compose: ([dy, f], a) => {
    const [c, m] = channels(f!, 'depthwiseConv2dBackpropInput');
    return concat(range(c).map((k) => conv2dBackpropInput(slice(dy!, [0, 0, 0, k * m], [-1, -1, -1, m]), slice(f!, [0, 0, k, 0], [-1, -1, 1, -1]),
      [a.inputSize[0]!, a.inputSize[1]!], convAttrs(a))), 3);
  },
});

export const depthwiseConv2dBackpropFilterOp = defineOp({
  name: 'depthwiseConv2dBackpropFilter',
  attrs: { filterSize: 'ints', ...CONV_SCHEMA },
  infer: ([x, dy], a, ctx) => {
    const op = 'depthwiseConv2dBackpropFilter';
    checkConvAttrs(op, a);
    checkSize(op, 'filterSize', a.filterSize);
    checkRank4Float(op, [['x', x!], ['dy', dy!]]);
    const what = both(op, ['x', 'dy'], x!, dy!);
    checkEqual(op, ctx, x!.shape[0]!, dy!.shape[0]!, () => `x and dy must have the same batch size: ${what()}`);
    const [c, cm] = [x!.shape[3]!, dy!.shape[3]!];
    if (ctx.known(c) && ctx.known(cm) && (c === 0 ? cm !== 0 : cm % c !== 0)) throw new SymflowError(op, `dy's channels must be a multiple of x's: ${what()}`);
    const out = spatialOut(op, ctx, x!.shape.slice(1, 3), a.filterSize, a, () => `filterSize ${JSON.stringify(a.filterSize)}, ${what()}`);
    out.forEach((o, i) => checkEqual(op, ctx, dy!.shape[1 + i]!, o, () => `dy's spatial axis ${1 + i} must be ${o} for filterSize ${JSON.stringify(a.filterSize)}: ${what()}`));
    return { shape: [a.filterSize[0]!, a.filterSize[1]!, c, ctx.known(c) && ctx.known(cm) && c > 0 ? cm / c : null], dtype: 'float32' };
  },
  grad: (g, _y, [x, dy], a) => [
    () => depthwiseConv2dBackpropInput(dy!, g, staticHW('depthwiseConv2dBackpropFilter', x!, [1, 2], 'x'), convAttrs(a)),
    () => depthwiseConv2d(x!, g, convAttrs(a)),
  ],
  // The declared fallback (TF.js wasm, onnx): conv2d's filter backprop, one channel at a time.
  compose: ([x, dy], a) => {
    const [c, cm] = [x!.shape[3], dy!.shape[3]];
    if (typeof c !== 'number' || typeof cm !== 'number' || c === 0) throw new SymflowError('depthwiseConv2dBackpropFilter', `its composition needs static channels, ${both('', ['x', 'dy'], x!, dy!)()}`);
    const m = cm / c;
    return concat(range(c).map((k) => conv2dBackpropFilter(slice(x!, [0, 0, 0, k], [-1, -1, -1, 1]), slice(dy!, [0, 0, 0, k * m], [-1, -1, -1, m]),
      [a.filterSize[0]!, a.filterSize[1]!], convAttrs(a))), 2);
  },
});

function channels(f: Tensor, op: string): [number, number] {
  const [c, m] = [f.shape[2], f.shape[3]];
  if (typeof c !== 'number' || typeof m !== 'number') throw new SymflowError(op, `its composition needs the filter's static channels, got ${shapeString(f.shape)}`);
  return [c, m];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

const pair = (op: string, name: string, v: Pair | undefined): [number, number] => {
  if (v === undefined) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (!Array.isArray(v) || v.length !== 2) throw new SymflowError(op, `${name} must be a number or a pair [h, w], got ${JSON.stringify(v)}`);
  return [v[0], v[1]];
};
const attrsOf = (op: string, o: Conv2DOptions): ConvAttrs => ({ strides: pair(op, 'strides', o.strides), padding: o.padding ?? 'valid', dilations: pair(op, 'dilations', o.dilations) });

/**
 * 2-D convolution (TF's `tf.nn.conv2d`, a cross-correlation) in NHWC with an HWIO filter.
 * ```ts
 * const y = conv2d(x, w, { strides: 2, padding: 'same' }); // [n, 28, 28, 1] · [3, 3, 1, 32] → [n, 14, 14, 32]
 * ```
 * @param x [batch, height, width, inChannels] @param filter [h, w, inChannels, outChannels] @returns [batch, oh, ow, outChannels]
 */
export function conv2d(x: Tensor, filter: Tensor, opts: Conv2DOptions = {}): Tensor {
  return makeNode(conv2dOp, [x, filter], attrsOf('conv2d', opts));
}

/**
 * The gradient of conv2d with respect to its input (TF's `Conv2DBackpropInput`, a transposed convolution).
 * @param dy [batch, oh, ow, outChannels] @param filter [h, w, inChannels, outChannels] @param inputSize x's [height, width]
 * @returns [batch, height, width, inChannels]
 */
export function conv2dBackpropInput(dy: Tensor, filter: Tensor, inputSize: readonly [number, number], opts: Conv2DOptions = {}): Tensor {
  return makeNode(conv2dBackpropInputOp, [dy, filter], { inputSize: [...inputSize], ...attrsOf('conv2dBackpropInput', opts) });
}

/**
 * The gradient of conv2d with respect to its filter (TF's `Conv2DBackpropFilter`).
 * @param x [batch, height, width, inChannels] @param dy [batch, oh, ow, outChannels] @param filterSize the filter's [h, w]
 * @returns [h, w, inChannels, outChannels]
 */
export function conv2dBackpropFilter(x: Tensor, dy: Tensor, filterSize: readonly [number, number], opts: Conv2DOptions = {}): Tensor {
  return makeNode(conv2dBackpropFilterOp, [x, dy], { filterSize: [...filterSize], ...attrsOf('conv2dBackpropFilter', opts) });
}

/**
 * Depthwise 2-D convolution (TF's `tf.nn.depthwise_conv2d`): each input channel c convolved with its own
 * `multiplier` filters; output channel c·multiplier + m.
 * @param x [batch, height, width, C] @param filter [h, w, C, multiplier] @returns [batch, oh, ow, C·multiplier]
 */
export function depthwiseConv2d(x: Tensor, filter: Tensor, opts: Conv2DOptions = {}): Tensor {
  return makeNode(depthwiseConv2dOp, [x, filter], attrsOf('depthwiseConv2d', opts));
}

/**
 * The gradient of depthwiseConv2d with respect to its input (TF's `DepthwiseConv2dNativeBackpropInput`).
 * @param dy [batch, oh, ow, C·multiplier] @param filter [h, w, C, multiplier] @param inputSize x's [height, width]
 * @returns [batch, height, width, C]
 */
export function depthwiseConv2dBackpropInput(dy: Tensor, filter: Tensor, inputSize: readonly [number, number], opts: Conv2DOptions = {}): Tensor {
  return makeNode(depthwiseConv2dBackpropInputOp, [dy, filter], { inputSize: [...inputSize], ...attrsOf('depthwiseConv2dBackpropInput', opts) });
}

/**
 * The gradient of depthwiseConv2d with respect to its filter (TF's `DepthwiseConv2dNativeBackpropFilter`).
 * @param x [batch, height, width, C] @param dy [batch, oh, ow, C·multiplier] @param filterSize the filter's [h, w]
 * @returns [h, w, C, multiplier]
 */
export function depthwiseConv2dBackpropFilter(x: Tensor, dy: Tensor, filterSize: readonly [number, number], opts: Conv2DOptions = {}): Tensor {
  return makeNode(depthwiseConv2dBackpropFilterOp, [x, dy], { filterSize: [...filterSize], ...attrsOf('depthwiseConv2dBackpropFilter', opts) });
}

/**
 * 1-D convolution in NWC with a WIO filter (TF's `tf.nn.conv1d`), as a conv2d over a height of 1.
 * @param x [batch, width, inChannels] @param filter [w, inChannels, outChannels] @returns [batch, ow, outChannels]
 */
export function conv1d(x: Tensor, filter: Tensor, opts: Conv1DOptions = {}): Tensor {
  if (x.rank !== 3) throw new SymflowError('conv1d', `x must have rank 3 (NWC), got ${argShape('x', x)}`);
  if (filter.rank !== 3) throw new SymflowError('conv1d', `filter must have rank 3 (WIO), got ${argShape('filter', filter)}`);
  for (const [name, v] of [['stride', opts.stride], ['dilation', opts.dilation]] as const) {
    if (v !== undefined && typeof v !== 'number') throw new SymflowError('conv1d', `${name} must be a number, got ${JSON.stringify(v)}`);
  }
  let y: Tensor;
  try {
    y = conv2d(expandDims(x, 1), expandDims(filter, 0), {
      strides: [1, opts.stride ?? 1], padding: opts.padding ?? 'valid', dilations: [1, opts.dilation ?? 1],
    });
  } catch (e) {
    if (!(e instanceof SymflowError)) throw e;
    throw new SymflowError('conv1d', `${e.message.replace(/^conv2d: /, '')} (conv1d runs as conv2d on [batch, 1, width, channels]; ${argShape('x', x)}, ${argShape('filter', filter)})`);
  }
  return squeeze(y, 1);
}
