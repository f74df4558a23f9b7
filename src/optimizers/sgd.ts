import { hyper } from './optimizer.js';
import { type ChainState, chainAs, type TransformOptimizer } from './transform.js';
import { type LearningRateLike, lrArg, scaleByLearningRate, trace } from './transforms.js';

/** Options of `sgd`. */
export interface SgdOptions {
  /**
   * Learning rate: a number ≥ 0 (made the hyperparameter `sgd/lr`, settable with `setHyperparameter('lr', v)`), a
   * float32 scalar tensor, or a schedule of the step counter. Default 0.01.
   */
  lr?: LearningRateLike;
  /** Momentum factor ≥ 0 (a plain number, fixed at construction); 0 uses no momentum slot. Default 0. */
  momentum?: number;
  /** Nesterov momentum: p ← p + momentum·v − lr·g. Only with momentum > 0. Default false. */
  nesterov?: boolean;
  /** Keras 2 time decay ≥ 0: the rate is lr / (1 + decay·t), t the steps applied before this one. Default 0. */
  decay?: number;
}

/**
 * Stochastic gradient descent with momentum and Nesterov momentum, with Keras 2.2.4 numerics:
 * v = momentum·m − lr·g; p ← p + v (Nesterov: p + momentum·v − lr·g); m ← v. As a chain:
 * `scaleByLearningRate(lr)` then `trace({decay: momentum})` — the rate inside the momentum, as Keras has it
 * (PyTorch's SGD is the other order: `trace` then `scaleByLearningRate`).
 *
 * ```ts
 * const opt = sgd({ lr: 0.01, momentum: 0.9, nesterov: true });
 * ```
 * @param opts lr (default 0.01), momentum (0), nesterov (false), decay (0)
 * @returns an optimizer (and a gradient transformation)
 */
export function sgd(opts: SgdOptions = {}): TransformOptimizer<ChainState> {
  const momentum = hyper('sgd', 'momentum', opts.momentum ?? 0, { min: 0 });
  const nesterov = opts.nesterov ?? false;
  const rate = scaleByLearningRate(lrArg('sgd', opts.lr ?? 0.01), { decay: hyper('sgd', 'decay', opts.decay ?? 0, { min: 0 }), name: 'sgd' });
  // Without momentum the Keras update p + (0·m − lr·g) is exactly p − lr·g: no slot and no work for it.
  return chainAs('sgd', momentum === 0 ? [rate] : [rate, trace({ decay: momentum, nesterov, name: 'sgd', slot: 'momentum' })]);
}
