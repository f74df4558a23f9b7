import { hyper } from './optimizer.js';
import { type ChainState, chainAs, type TransformOptimizer } from './transform.js';
import { type LearningRateLike, lrArg, scaleByAdagrad, scaleByLearningRate, scaleByRms } from './transforms.js';

/**
 * RMSprop with Keras 2.2.4 numerics: a ← ρ·a + (1 − ρ)·g²; p ← p − lr·g / (√a + ε) — the chain
 * `scaleByRms({epsInSqrt: false})`, `scaleByLearningRate(lr)`.
 * @param opts lr (0.001), rho (0.9), epsilon (1e-7), decay (0)
 * @returns an optimizer (and a gradient transformation)
 */
export function rmsprop(opts: { lr?: LearningRateLike; rho?: number; epsilon?: number; decay?: number } = {}): TransformOptimizer<ChainState> {
  const rho = hyper('rmsprop', 'rho', opts.rho ?? 0.9, { min: 0, max: 1 });
  const epsilon = hyper('rmsprop', 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  const decay = hyper('rmsprop', 'decay', opts.decay ?? 0, { min: 0 });
  return chainAs('rmsprop', [scaleByRms({ decay: rho, eps: epsilon, epsInSqrt: false, name: 'rmsprop' }), scaleByLearningRate(lrArg('rmsprop', opts.lr ?? 0.001), { decay, name: 'rmsprop' })]);
}

/**
 * Adagrad with Keras 2.2.4 numerics: a ← a + g²; p ← p − lr·g / (√a + ε), accumulators starting at 0 — the chain
 * `scaleByAdagrad`, `scaleByLearningRate(lr)`.
 * @param opts lr (0.01), epsilon (1e-7), decay (0)
 * @returns an optimizer (and a gradient transformation)
 */
export function adagrad(opts: { lr?: LearningRateLike; epsilon?: number; decay?: number } = {}): TransformOptimizer<ChainState> {
  const epsilon = hyper('adagrad', 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  const decay = hyper('adagrad', 'decay', opts.decay ?? 0, { min: 0 });
  return chainAs('adagrad', [scaleByAdagrad({ eps: epsilon, name: 'adagrad' }), scaleByLearningRate(lrArg('adagrad', opts.lr ?? 0.01), { decay, name: 'adagrad' })]);
}
