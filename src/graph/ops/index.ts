// The public op builders. The op records themselves are listed in ../opList.ts (registration is that list).
export { add, div, maximum, minimum, mul, pow } from './binary.js';
export { abs, cos, exp, floor, log, neg, reciprocal, sigmoid, sign, sin, sqrt, tanh, toFloat } from './unary.js';
export { equal, greater, greaterEqual, less, lessEqual, logicalAnd, logicalNot, logicalOr, notEqual } from './compare.js';
export { cast } from './cast.js';
export { where } from './where.js';
export { matMul, type MatMulOptions } from './matMul.js';
export { transpose } from './transpose.js';
export { expandDims, reshape, reshapeLike, squeeze } from './reshape.js';
export { concat } from './concat.js';
export { pad, slice } from './slice.js';
export { gather, unsortedSegmentSum } from './gather.js';
export { max, sum } from './reduce.js';
export { onesLike, shapeSize, zerosLike } from './fill.js';
export { addN, identity, stopGradient } from './identity.js';
export { argMax, oneHot } from './indexing.js';
export { softmaxCrossEntropy } from './softmaxCrossEntropy.js';
export { broadcastLike, sumToShape, unbroadcast } from './broadcast.js';
export { mean, min, square, sub } from './math.js';
export { logSoftmax, meanSquaredError, relu, softmax, sparseSoftmaxCrossEntropy } from './nn.js';
// --- activations and scans (issue 12) ---
export { clipByValue, erf, gelu, type GeluOptions, logSumExp, type LogSumExpOptions, silu, softplus } from './activations.js';
export { cumsum, type CumsumOptions } from './scan.js';
// --- pooling (issue 12) ---
export { avgPool, globalAveragePool, maxPool, type PoolOptions, type PoolPadding } from './pool.js';
// --- convolutions (issue 12) ---
export {
  conv1d, conv2d, conv2dBackpropFilter, conv2dBackpropInput, depthwiseConv2d, depthwiseConv2dBackpropFilter, depthwiseConv2dBackpropInput,
  type Conv1DOptions, type Conv2DOptions, type Padding,
} from './conv.js';
