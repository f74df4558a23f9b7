import { checkFloat } from '../convert.js';
import { SymflowError, argShape } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { mul } from './binary.js';
import { sub } from './math.js';
import { logSoftmax, softmax } from './nn.js';
import { expandDims } from './reshape.js';
import { neg } from './unary.js';

/**
 * Fused softmax cross-entropy. Why fused: the forward pass is computed as a log-sum-exp shifted by the row max
 * (finite for any finite logits, where log(softmax(x)) underflows to -Inf), and the gradient is the closed form
 * softmax(x) − labels instead of the chain through exp, sum, log and div that a composite would build: fewer
 * nodes, one less cancellation.
 */
export const softmaxCrossEntropyOp = defineOp({
  name: 'softmaxCrossEntropy',
  infer: ([logits, labels], _attrs, ctx) => {
    checkFloat('softmaxCrossEntropy', 'logits', logits!);
    checkFloat('softmaxCrossEntropy', 'labels', labels!);
    if (logits!.rank < 1 || !ctx.sameShape(logits!.shape, labels!.shape)) {
      throw new SymflowError('softmaxCrossEntropy', `logits and labels need the same shape: ${argShape('logits', logits!)}, ${argShape('labels', labels!)}`);
    }
    return { shape: logits!.shape.slice(0, -1), dtype: 'float32' };
  },
  grad: (dy, _y, [logits, labels]) => {
    const d = () => expandDims(dy, -1);
    return [() => mul(d(), sub(softmax(logits!), labels!)), () => mul(d(), neg(logSoftmax(logits!)))];
  },
});

/**
 * Cross-entropy of `softmax(logits)` against one-hot (or soft) labels along the last axis, per example.
 * ```ts
 * const loss = mean(softmaxCrossEntropy(logits, labels)); // logits, labels: [batch, classes]
 * ```
 * The gradient with respect to the logits is softmax(logits) − labels, which assumes each row of labels sums to 1
 * (as in TF).
 * @param logits unnormalised scores @param labels probabilities of the same shape @returns [...batch] losses
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  return makeNode(softmaxCrossEntropyOp, [logits, labels], {});
}
