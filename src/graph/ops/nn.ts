// Neural-network composites. None has a gradient rule of its own.
import { SymflowError } from '../errors.js';
import { requireRange } from '../feedChecks.js';
import type { Tensor } from '../tensor.js';
import { div, maximum } from './binary.js';

import { stopGradient } from './identity.js';
import { oneHot } from './indexing.js';
import { mean, square, sub } from './math.js';
import { max, sum } from './reduce.js';
import { softmaxCrossEntropy } from './softmaxCrossEntropy.js';
import { exp, log } from './unary.js';

/** max(x, 0). @param x the tensor @returns the rectified tensor */
export function relu(x: Tensor): Tensor {
  return maximum(x, 0);
}

// The shift by the (gradient-stopped) max keeps exp finite; it cancels exactly in the result and the gradient.
function shifted(x: Tensor, axis: number): Tensor {
  return sub(x, stopGradient(max(x, axis, true)));
}

/**
 * Softmax along `axis` (default last), computed from max-shifted logits.
 * @param x logits @param axis the axis @returns probabilities summing to 1 along `axis`
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  const e = exp(shifted(x, axis));
  return div(e, sum(e, axis, true));
}

/**
 * log(softmax(x)) as x − max − log Σ exp(x − max): finite where log(softmax(x)) would underflow.
 * @param x logits @param axis the axis @returns log-probabilities
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const z = shifted(x, axis);
  return sub(z, log(sum(exp(z), axis, true)));
}

/**
 * Softmax cross-entropy against integer class labels, per example. A label outside [0, classes) is an error, never
 * a silent loss of 0: fed labels are checked before the run (the error names the feed, the value and its index);
 * labels computed in the graph make that example's loss NaN, which the non-finite checks catch.
 * @param logits [...batch, classes] @param labels int32 [...batch] @returns [...batch] losses
 */
export function sparseSoftmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const classes = logits.shape[logits.rank - 1];
  if (classes === null || classes === undefined) {
    throw new SymflowError('sparseSoftmaxCrossEntropy', `logits need a static class dimension, got rank ${logits.rank}`);
  }
  if (labels.dtype !== 'int32') throw new SymflowError('sparseSoftmaxCrossEntropy', `labels must be int32, got ${labels.dtype}`);
  requireRange(labels, { op: 'sparseSoftmaxCrossEntropy', arg: 'label', min: 0, max: classes, why: `of the ${classes} classes of logits '${logits.name}'` });
  const hot = oneHot(labels, classes);
  // oneHot gives an out-of-range label an all-zero row on every backend, so its row sum is 1 for a valid label and 0
  // otherwise: dividing by it leaves valid examples bit-identical (x / 1 = x) and makes the others 0 / 0 = NaN.
  return div(softmaxCrossEntropy(logits, hot), sum(hot, -1));
}

/**
 * Mean of (a − b)² over all elements: a scalar.
 * @param a predictions @param b targets @returns the scalar mean squared error
 */
export function meanSquaredError(a: Tensor, b: Tensor): Tensor {
  return mean(square(sub(a, b)));
}


