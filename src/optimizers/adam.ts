import { hyper } from './optimizer.js';
import { type ChainState, chainAs, type TransformOptimizer } from './transform.js';
import { addDecayedWeights, type LearningRateLike, lrArg, scaleByAdam, scaleByLearningRate } from './transforms.js';

/** Options of `adam` (and, with `weightDecay`, `adamw`). */
export interface AdamOptions {
  /**
   * Learning rate: a number ≥ 0 (made the hyperparameter `adam/lr` or `adamw/lr`, settable with
   * `setHyperparameter('lr', v)`), a float32 scalar tensor, or a schedule of the step counter. Default 0.001.
   */
  lr?: LearningRateLike;
  /** Decay of the first-moment (mean) average m, in [0, 1]. Default 0.9. */
  beta1?: number;
  /** Decay of the second-moment average v, in [0, 1]. Default 0.999. */
  beta2?: number;
  /** ε ≥ 0 added to the uncorrected √v (Keras 2's ε̂ form: the bias correction is folded into the rate). Default 1e-7. */
  epsilon?: number;
  /** AMSGrad: divide by the largest v seen so far (the max of the raw moments, as Keras and PyTorch). Default false. */
  amsgrad?: boolean;
  /** Keras 2 time decay ≥ 0: the rate is lr / (1 + decay·t), t the steps applied before this one. Default 0. */
  decay?: number;
}

/** Options of `adamw`. */
export interface AdamWOptions extends AdamOptions {
  /** Decoupled weight decay: p ← p − lr·weightDecay·p each step, apart from the gradient (default 0.01). */
  weightDecay?: number;
}

function adamLike(name: string, opts: AdamWOptions, weightDecay: number): TransformOptimizer<ChainState> {
  const beta1 = hyper(name, 'beta1', opts.beta1 ?? 0.9, { min: 0, max: 1 });
  const beta2 = hyper(name, 'beta2', opts.beta2 ?? 0.999, { min: 0, max: 1 });
  const epsilon = hyper(name, 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  const decay = hyper(name, 'decay', opts.decay ?? 0, { min: 0 });
  // Keras 2.2.4: t = iterations + 1; p ← p − lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m / (√v + ε): the ε̂ form.
  const adamStep = scaleByAdam({ b1: beta1, b2: beta2, eps: epsilon, amsgrad: opts.amsgrad ?? false, epsilonHat: true, name });
  const rate = scaleByLearningRate(lrArg(name, opts.lr ?? 0.001), { decay, name });
  return chainAs(name, weightDecay > 0 ? [adamStep, addDecayedWeights({ rate: weightDecay }), rate] : [adamStep, rate]);
}

/**
 * Adam with Keras 2.2.4 numerics (bias correction folded into the learning rate; optional AMSGrad): the chain
 * `scaleByAdam({epsilonHat: true})`, `scaleByLearningRate(lr)`.
 *
 * ```ts
 * const opt = adam({ lr: 1e-3 });
 * ```
 * @param opts lr (0.001), beta1 (0.9), beta2 (0.999), epsilon (1e-7), amsgrad (false), decay (0)
 * @returns an optimizer (and a gradient transformation)
 */
export function adam(opts: AdamOptions = {}): TransformOptimizer<ChainState> {
  return adamLike('adam', opts, 0);
}

/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), applied as in Keras 3:
 * p ← p − p·weightDecay·lr, then the Adam step — the chain `scaleByAdam`, `addDecayedWeights`, `scaleByLearningRate`.
 * @param opts the Adam options plus weightDecay (0.01)
 * @returns an optimizer (and a gradient transformation)
 */
export function adamw(opts: AdamWOptions = {}): TransformOptimizer<ChainState> {
  return adamLike('adamw', opts, hyper('adamw', 'weightDecay', opts.weightDecay ?? 0.01, { min: 0 }));
}
