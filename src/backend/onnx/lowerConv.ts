// ONNX lowerings of the convolution ops (issue 12 §1), entries of the table in lower.ts. ONNX convolves NCHW with
// OIHW weights: transposes around each Conv. onnxruntime's standard build has no gradient ops: the input backprop
// is a ConvTranspose, the filter backprop a Conv of x (batch and channels swapped) with dy as its weight.
import { SymflowError } from '../../graph/errors.js';
import type { NodeIR } from '../../graph/ir.js';
import { shapeString } from '../../graph/tensor.js';
import { convOutSize, convPads } from '../../graph/ops/conv.js';
import { ELEM, type GraphBuilder, INT_MAX, valueInfo } from './builder.js';

type Attrs = { strides: [number, number]; padding: 'same' | 'valid'; dilations: [number, number]; inputSize: [number, number]; filterSize: [number, number] };
const attrsOf = (n: NodeIR) => n.attrs as unknown as Attrs;
const NCHW = [0, 3, 1, 2], NHWC = [0, 2, 3, 1], OIHW = [3, 2, 0, 1];

/**
 * Conv's padding attributes: explicit pads from static sizes (with stride 1 'same' pads eff − 1 whatever the size),
 * else SAME_UPPER (TF's 'same': the odd one at the end; onnxruntime refuses it with dilations, which then have
 * stride 1).
 */
function padAttrs(inHW: readonly (number | null)[], k: readonly number[], a: Attrs): Record<string, number[] | string> {
  if (a.padding === 'valid') return { pads: [0, 0, 0, 0] };
  const known = typeof inHW[0] === 'number' && typeof inHW[1] === 'number';
  if (!known && !(a.strides[0] === 1 && a.strides[1] === 1)) return { auto_pad: 'SAME_UPPER' };
  const [ph, pw] = [0, 1].map((i) => convPads(inHW[i] ?? 1, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  return { pads: [ph![0], pw![0], ph![1], pw![1]] };
}

type Lowering = (b: GraphBuilder, xs: readonly string[], node: NodeIR, ins: readonly NodeIR[], out: string) => void;

/** The static dims of an input the lowering needs (a filter's, mostly: variables have them). */
function staticDims(n: NodeIR, input: NodeIR, what: string, axes: readonly number[]): number[] {
  const dims = axes.map((i) => input.shape[i]);
  if (!dims.every((d): d is number => typeof d === 'number')) {
    throw new SymflowError(n.op, `the onnx lowering needs the static ${what} (node '${n.name}'), got ${shapeString(input.shape)}`);
  }
  return dims;
}

export const conv2d: Lowering = (b, [x, f], n, ins, out) => {
  const a = attrsOf(n);
  const k = staticDims(n, ins[1]!, "filter's spatial size", [0, 1]);
  const y = b.node('Conv', [b.node('Transpose', [x!], { perm: NCHW }), b.node('Transpose', [f!], { perm: OIHW })],
    { strides: a.strides, dilations: a.dilations, ...padAttrs(ins[0]!.shape.slice(1, 3), k, a) });
  b.node('Transpose', [y], { perm: NHWC }, out);
};

export const depthwiseConv2d: Lowering = (b, [x, f], n, ins, out) => {
  const a = attrsOf(n);
  const [fh, fw, c, m] = staticDims(n, ins[1]!, "filter's shape", [0, 1, 2, 3]);
  // [h, w, C, M] → [C·M, 1, h, w]: output channel c·M + m of group c, as TF orders them.
  const w = b.node('Transpose', [b.node('Reshape', [f!, b.ints([fh!, fw!, 1, c! * m!])])], { perm: OIHW });
  const y = b.node('Conv', [b.node('Transpose', [x!], { perm: NCHW }), w],
    { group: c!, strides: a.strides, dilations: a.dilations, ...padAttrs(ins[0]!.shape.slice(1, 3), [fh!, fw!], a) });
  b.node('Transpose', [y], { perm: NHWC }, out);
};

export const conv2dBackpropInput: Lowering = (b, [dy, f], n, ins, out) => {
  const a = attrsOf(n);
  const k = staticDims(n, ins[1]!, "filter's spatial size", [0, 1]);
  const pads = [0, 1].map((i) => convPads(a.inputSize[i]!, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  // ConvTranspose gives s·(o − 1) + eff − pads; the rest of x's size (the rows a strided forward never read) is
  // output_padding, < stride.
  const extra = [0, 1].map((i) => {
    const o = convOutSize(a.inputSize[i]!, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding);
    return a.inputSize[i]! - (a.strides[i]! * (o - 1) + (k[i]! - 1) * a.dilations[i]! + 1 - pads[i]![0] - pads[i]![1]);
  });
  // NOTE: not with dy's channels unknown or 0: onnxruntime's Conv with 0 input channels never returns.
  const co = ins[0]!.shape[3];
  if (a.strides[0] === 1 && a.strides[1] === 1 && typeof co === 'number' && co > 0) { flippedConv(b, dy!, f!, k, pads, a, out); return; }
  // HWIO is ConvTranspose's [C_in = O, C_out = I, h, w] after the same transpose as Conv's.
  const y = b.node('ConvTranspose', [b.node('Transpose', [dy!], { perm: NCHW }), b.node('Transpose', [f!], { perm: OIHW })], {
    strides: a.strides, dilations: a.dilations, pads: [pads[0]![0], pads[1]![0], pads[0]![1], pads[1]![1]], output_padding: extra,
  });
  b.node('Transpose', [y], { perm: NHWC }, out);
};

/**
 * The input gradient of a stride-1 conv as a forward Conv of dy with the filter flipped in space and its channels
 * swapped ([h, w, I, O] → [I, O, h, w] as OIHW), dy padded by eff − 1 − the forward's pads: onnxruntime's
 * ConvTranspose (a Gemm, then a scalar col2im) took 1.4× its Conv of the same size.
 */
function flippedConv(b: GraphBuilder, dy: string, f: string, k: readonly number[], pads: readonly (readonly [number, number])[], a: Attrs, out: string): void {
  const eff = [0, 1].map((i) => (k[i]! - 1) * a.dilations[i]! + 1);
  const flipped = b.node('Slice', [f, b.ints([-1, -1]), b.ints([-INT_MAX, -INT_MAX]), b.ints([0, 1]), b.ints([-1, -1])]);
  const w = b.node('Transpose', [flipped], { perm: [2, 3, 0, 1] });
  const p = [0, 1].map((i) => [eff[i]! - 1 - pads[i]![0], eff[i]! - 1 - pads[i]![1]]);
  const y = b.node('Conv', [b.node('Transpose', [dy], { perm: NCHW }), w], { dilations: a.dilations, pads: [p[0]![0]!, p[1]![0]!, p[0]![1]!, p[1]![1]!] });
  b.node('Transpose', [y], { perm: NHWC }, out);
}

export const conv2dBackpropFilter: Lowering = (b, [x, dy], n, ins, out) => {
  const a = attrsOf(n);
  const [fh, fw] = a.filterSize;
  const hw = staticDims(n, ins[0]!, "spatial size of x", [1, 2]);
  const pads = [0, 1].map((i) => convPads(hw[i]!, a.filterSize[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  const direct = (g: GraphBuilder, o?: string) => {
    // x as NCHW [I, N, H, W], dy as the weight [O, N, oh, ow]; strides and dilations swap. Gives [I, O, ≥fh, ≥fw].
    const xt = g.node('Transpose', [x!], { perm: [3, 0, 1, 2] });
    const w = g.node('Transpose', [dy!], { perm: [3, 0, 1, 2] });
    const r = g.node('Conv', [xt, w], { strides: a.dilations, dilations: a.strides, pads: [pads[0]![0], pads[1]![0], pads[0]![1], pads[1]![1]] });
    const cut = g.node('Slice', [r, g.ints([0, 0]), g.ints([fh, fw]), g.ints([2, 3])]);
    return g.node('Transpose', [cut], { perm: [2, 3, 0, 1] }, o);
  };
  const [ci, co] = [ins[0]!.shape[3], ins[1]!.shape[3]];
  // NOTE: the patches' Gather moves ci floats per index: below 8 channels (a first layer's 1 or 3) the batch-swapped
  // Conv, whose im2col copies whole rows, was faster (2.5 against 5.5 ms for mnist_cnn's first layer).
  if (typeof ci === 'number' && typeof co === 'number' && ci >= 8 && co > 0) { patchGemm(b, x!, dy!, a, hw, [ci, co], out); return; }
  const batch = ins[0]!.shape[0];
  if (typeof batch === 'number' && batch > 0) { direct(b, out); return; }
  // NOTE: onnxruntime's Conv with 0 input channels (an empty batch here) never returns: zeros, chosen at run time.
  const zeros = (g: GraphBuilder, o?: string) => {
    const dim = (v: string) => g.node('Gather', [g.node('Shape', [v]), g.ints([3])], { axis: 0 });
    return g.node('ConstantOfShape', [g.node('Concat', [g.ints([fh, fw]), dim(x!), dim(dy!)], { axis: 0 })],
      { value: { tensor: { dataType: ELEM.float32, dims: [1], rawData: new Uint8Array(4) } } }, o);
  };
  if (batch === 0) { zeros(b, out); return; }
  const empty = b.node('Equal', [b.node('Gather', [b.node('Shape', [x!]), b.scalar('int64', 0)], { axis: 0 }), b.scalar('int64', 0)]);
  const branch = (name: string, emit: (g: GraphBuilder) => string) => {
    const g = b.child();
    const o = g.node('Identity', [emit(g)], {}, g.fresh(name));
    return { graph: g.graph(name, [], [valueInfo(o, 'float32')]) };
  };
  b.node('If', [empty], { then_branch: branch('emptyBatch', (g) => zeros(g)), else_branch: branch('filterGrad', (g) => direct(g)) }, out);
};

/**
 * The filter gradient as one Gemm over x's patches: dW = patchesᵀ · dy, patches [N·OH·OW, KH·KW·CI] the rows of
 * im2col, gathered from NHWC x (padded for 'same') in one Gather over its flattened positions; the result is HWIO
 * as it stands. The batch-swapped Conv gave a Gemm of 9 columns (for a 3×3 filter) at a third of the forward Conv's
 * speed, and one Gemm per tap ([ci, rows] × [rows, co]) ran on one thread. An empty batch is a Gemm over 0 rows:
 * zeros.
 */
function patchGemm(b: GraphBuilder, x: string, dy: string, a: Attrs, hw: readonly number[], [ci, co]: readonly number[], out: string): void {
  const [fh, fw] = a.filterSize;
  const pads = [0, 1].map((i) => convPads(hw[i]!, a.filterSize[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  const [oh, ow] = [0, 1].map((i) => convOutSize(hw[i]!, a.filterSize[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  if (oh! <= 0 || ow! <= 0) {
    b.node('ConstantOfShape', [b.ints([fh, fw, ci!, co!])], { value: { tensor: { dataType: ELEM.float32, dims: [1], rawData: new Uint8Array(4) } } }, out);
    return;
  }
  const padded = pads.some(([p, q]) => p > 0 || q > 0)
    ? b.node('Pad', [x, b.ints([0, pads[0]![0], pads[1]![0], 0, 0, pads[0]![1], pads[1]![1], 0])], { mode: 'constant' }) : x;
  const wp = hw[1]! + pads[1]![0] + pads[1]![1];
  // Row (oh, ow), column (kh, kw) of a sample's patches reads padded position (oh·sh + kh·dh, ow·sw + kw·dw).
  const at = new Int32Array(oh! * ow! * fh * fw);
  let k = 0;
  for (let i = 0; i < oh!; i++) for (let j = 0; j < ow!; j++) for (let p = 0; p < fh; p++) for (let q = 0; q < fw; q++) {
    at[k++] = (i * a.strides[0] + p * a.dilations[0]) * wp + j * a.strides[1] + q * a.dilations[1];
  }
  const flat = b.node('Reshape', [padded, b.ints([-1, (hw[0]! + pads[0]![0] + pads[0]![1]) * wp, ci!])]);
  const patches = b.node('Reshape', [b.node('Gather', [flat, b.constant('int32', [at.length], at)], { axis: 1 }), b.ints([-1, fh * fw * ci!])]);
  const g = b.node('Gemm', [patches, b.node('Reshape', [dy, b.ints([-1, co!])])], { transA: 1 });
  b.node('Reshape', [g, b.ints([fh, fw, ci!, co!])], {}, out);
}

export const depthwiseConv2dBackpropInput: Lowering = (b, [dy, f], n, ins, out) => {
  const a = attrsOf(n);
  const [fh, fw, c, m] = staticDims(n, ins[1]!, "filter's shape", [0, 1, 2, 3]);
  const k = [fh!, fw!];
  const pads = [0, 1].map((i) => convPads(a.inputSize[i]!, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding));
  const extra = [0, 1].map((i) => {
    const o = convOutSize(a.inputSize[i]!, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding);
    return a.inputSize[i]! - (a.strides[i]! * (o - 1) + (k[i]! - 1) * a.dilations[i]! + 1 - pads[i]![0] - pads[i]![1]);
  });
  // The forward's grouped weight [C·M, 1, h, w] is ConvTranspose's [C_in = C·M, C_out / group = 1, h, w].
  const w = b.node('Transpose', [b.node('Reshape', [f!, b.ints([fh!, fw!, 1, c! * m!])])], { perm: OIHW });
  const y = b.node('ConvTranspose', [b.node('Transpose', [dy!], { perm: NCHW }), w], {
    group: c!, strides: a.strides, dilations: a.dilations, pads: [pads[0]![0], pads[1]![0], pads[0]![1], pads[1]![1]], output_padding: extra,
  });
  b.node('Transpose', [y], { perm: NHWC }, out);
};
