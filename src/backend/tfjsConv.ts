// TF.js kernels of the convolution ops (issue 12 §1), entries of the table in tfjsKernels.ts.
import * as tf from '@tensorflow/tfjs-core';
import { convOutSize, effectiveSize } from '../graph/ops/conv.js';
import type { KernelNode } from './types.js';

type Kernel = (xs: tf.Tensor[]) => tf.Tensor;
type Attrs = { strides: [number, number]; padding: 'same' | 'valid'; dilations: [number, number]; inputSize: [number, number]; filterSize: [number, number] };
const attrsOf = (n: KernelNode) => n.attrs as unknown as Attrs;
const isOne = (p: readonly number[]) => p[0] === 1 && p[1] === 1;

/** Output [oh, ow] of a convolution of x's spatial dims (TF's rule). */
const outHW = (x: tf.Tensor, k: readonly number[], a: Attrs) => [0, 1].map((i) => convOutSize(x.shape[1 + i]!, k[i]!, a.strides[i]!, a.dilations[i]!, a.padding));

/**
 * The filter with its taps spread apart by the dilations (zeros between): a dilated convolution is an undilated
 * one with it. TF.js's backprop kernels take no dilations. Only 3-D pads (every TF.js backend has them).
 */
function dilateFilter(f: tf.Tensor, [dh, dw]: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    const [fh, fw, i, o] = f.shape as [number, number, number, number];
    const eh = effectiveSize(fh, dh!), ew = effectiveSize(fw, dw!);
    const rows = tf.reshape(tf.pad(tf.reshape(f, [fh, 1, fw * i * o]), [[0, 0], [0, dh! - 1], [0, 0]]), [fh * dh!, fw, i, o]);
    const tall = tf.slice(rows, [0, 0, 0, 0], [eh, fw, i, o]);
    const cols = tf.reshape(tf.pad(tf.reshape(tall, [eh * fw, 1, i * o]), [[0, 0], [0, dw! - 1], [0, 0]]), [eh, fw * dw!, i, o]);
    return tf.slice(cols, [0, 0, 0, 0], [eh, ew, i, o]);
  });
}

// An empty input (a 0-size batch, spatial axis or channel axis) gives zeros of the output's shape: TF.js's kernels
// (wasm's XNNPACK above all) are not safe on them, and a sum over nothing is 0.

export const conv2d = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([x, f]) => {
    if (x!.size === 0 || f!.size === 0) return tf.zeros([x!.shape[0]!, ...outHW(x!, f!.shape, a), f!.shape[3]!]);
    return tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, a.strides, a.padding, 'NHWC', a.dilations);
  };
};

export const depthwiseConv2d = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([x, f]) => {
    if (x!.size === 0 || f!.size === 0) return tf.zeros([x!.shape[0]!, ...outHW(x!, f!.shape, a), x!.shape[3]! * f!.shape[3]!]);
    return tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, a.strides, a.padding, 'NHWC', a.dilations);
  };
};

export const conv2dBackpropInput = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([dy, f]) => {
    const xShape: [number, number, number, number] = [dy!.shape[0]!, a.inputSize[0], a.inputSize[1], f!.shape[2]!];
    if (dy!.size === 0 || f!.size === 0) return tf.zeros(xShape);
    if (isOne(a.dilations)) return tf.conv2dTranspose(dy as tf.Tensor4D, f as tf.Tensor4D, xShape, a.strides, a.padding);
    // Dilated (so the strides are 1): the same transposed convolution with the taps spread apart.
    return tf.tidy(() => tf.conv2dTranspose(dy as tf.Tensor4D, dilateFilter(f!, a.dilations) as tf.Tensor4D, xShape, 1, a.padding));
  };
};

/** TF.js cpu's own Conv2DBackpropFilter (tfjs-backend-wasm 4.22 registers none: wasm runs the composition). */
export const conv2dBackpropFilter = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([x, dy]) => {
    const fShape = [a.filterSize[0], a.filterSize[1], x!.shape[3]!, dy!.shape[3]!];
    if (x!.size === 0 || dy!.size === 0) return tf.zeros(fShape);
    if (isOne(a.dilations)) {
      return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: a.strides, pad: a.padding, dataFormat: 'NHWC', filterShape: fShape });
    }
    // Dilated (strides 1): the gradient of the spread-out filter, read back at its taps.
    const eh = effectiveSize(fShape[0]!, a.dilations[0]), ew = effectiveSize(fShape[1]!, a.dilations[1]);
    return tf.tidy(() => {
      const full = tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x, dy }, { strides: [1, 1], pad: a.padding, dataFormat: 'NHWC', filterShape: [eh, ew, fShape[2]!, fShape[3]!] });
      return tf.stridedSlice(full, [0, 0, 0, 0], [eh, ew, fShape[2]!, fShape[3]!], [a.dilations[0], a.dilations[1], 1, 1]);
    });
  };
};

export const depthwiseConv2dBackpropInput = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([dy, f]) => {
    const xShape = [dy!.shape[0]!, a.inputSize[0], a.inputSize[1], f!.shape[2]!];
    if (dy!.size === 0 || f!.size === 0) return tf.zeros(xShape);
    // NOTE: TF.js cpu's depthwise backprops get dilations wrong (they read undilated taps): spread the filter instead.
    if (isOne(a.dilations)) return tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f! }, { strides: a.strides, dilations: 1, pad: a.padding, inputShape: xShape });
    return tf.tidy(() => tf.engine().runKernel<tf.Tensor>('DepthwiseConv2dNativeBackpropInput', { dy, filter: dilateFilter(f!, a.dilations) }, { strides: 1, dilations: 1, pad: a.padding, inputShape: xShape }));
  };
};

export const depthwiseConv2dBackpropFilter = (n: KernelNode): Kernel => {
  const a = attrsOf(n);
  return ([x, dy]) => {
    const c = x!.shape[3]!;
    const fShape = [a.filterSize[0], a.filterSize[1], c, c === 0 ? 0 : dy!.shape[3]! / c];
    if (x!.size === 0 || dy!.size === 0) return tf.zeros(fShape);
    if (isOne(a.dilations)) return tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: a.strides, dilations: 1, pad: a.padding, filterShape: fShape });
    const eh = effectiveSize(fShape[0]!, a.dilations[0]), ew = effectiveSize(fShape[1]!, a.dilations[1]);
    return tf.tidy(() => {
      const full = tf.engine().runKernel<tf.Tensor>('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: 1, dilations: 1, pad: a.padding, filterShape: [eh, ew, fShape[2]!, fShape[3]!] });
      return tf.stridedSlice(full, [0, 0, 0, 0], [eh, ew, fShape[2]!, fShape[3]!], [a.dilations[0], a.dilations[1], 1, 1]);
    });
  };
};
