import { add, div, mul } from '../graph/ops/binary.js';
import { square, sub } from '../graph/ops/math.js';
import { sqrt } from '../graph/ops/unary.js';
import { hyper, type LearningRate, type Optimizer } from './optimizer.js';
import { perParameter, type SlotState } from './perParameter.js';

/**
 * RMSprop with Keras 2.2.4 numerics: a ← ρ·a + (1 − ρ)·g²; p ← p − lr·g / (√a + ε).
 * @param opts lr (0.001), rho (0.9), epsilon (1e-7), decay (0)
 * @returns a single-run optimizer
 */
export function rmsprop(opts: { lr?: LearningRate; rho?: number; epsilon?: number; decay?: number } = {}): Optimizer<SlotState> {
  const rho = hyper('rmsprop', 'rho', opts.rho ?? 0.9, { min: 0, max: 1 });
  const epsilon = hyper('rmsprop', 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  return perParameter({
    name: 'rmsprop',
    slots: ['accumulator'],
    lr: opts.lr ?? 0.001,
    decay: opts.decay,
    rule: ({ g, p, slots, lr }) => {
      const a = add(mul(rho, slots['accumulator']!), mul(sub(1, rho), square(g)));
      return { p: sub(p, div(mul(lr, g), add(sqrt(a), epsilon))), slots: { accumulator: a } };
    },
  });
}

/**
 * Adagrad with Keras 2.2.4 numerics: a ← a + g²; p ← p − lr·g / (√a + ε), accumulators starting at 0.
 * @param opts lr (0.01), epsilon (1e-7), decay (0)
 * @returns a single-run optimizer
 */
export function adagrad(opts: { lr?: LearningRate; epsilon?: number; decay?: number } = {}): Optimizer<SlotState> {
  const epsilon = hyper('adagrad', 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  return perParameter({
    name: 'adagrad',
    slots: ['accumulator'],
    lr: opts.lr ?? 0.01,
    decay: opts.decay,
    rule: ({ g, p, slots, lr }) => {
      const a = add(slots['accumulator']!, square(g));
      return { p: sub(p, div(mul(lr, g), add(sqrt(a), epsilon))), slots: { accumulator: a } };
    },
  });
}
