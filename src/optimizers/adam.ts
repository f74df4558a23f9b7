import { hyper } from './optimizer.js';
import { type ChainState, chainAs, type TransformOptimizer } from './transform.js';
import { addDecayedWeights, type LearningRateLike, lrArg, scaleByAdam, scaleByLearningRate } from './transforms.js';

export interface AdamOptions {
  lr?: LearningRateLike;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  amsgrad?: boolean;
  decay?: number;
}

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
