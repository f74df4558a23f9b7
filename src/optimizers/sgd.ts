import { add, mul } from '../graph/ops/binary.js';
import { sub } from '../graph/ops/math.js';
import { hyper, type LearningRate, type Optimizer } from './optimizer.js';
import { perParameter, type SlotState } from './perParameter.js';

export interface SgdOptions {
  lr?: LearningRate;
  momentum?: number;
  nesterov?: boolean;
  decay?: number;
}

/**
 * Stochastic gradient descent with momentum and Nesterov momentum, with Keras 2.2.4 numerics:
 * v = momentum·m − lr·g; p ← p + v (Nesterov: p + momentum·v − lr·g); m ← v.
 *
 * ```ts
 * const opt = sgd({ lr: 0.01, momentum: 0.9, nesterov: true });
 * ```
 * @param opts lr (default 0.01), momentum (0), nesterov (false), decay (0)
 * @returns a single-run optimizer
 */
export function sgd(opts: SgdOptions = {}): Optimizer<SlotState> {
  const momentum = hyper('sgd', 'momentum', opts.momentum ?? 0, { min: 0 });
  const nesterov = opts.nesterov ?? false;
  // Without momentum the Keras update p + (0·m − lr·g) is exactly p − lr·g: skip the slot and its work.
  if (momentum === 0) {
    return perParameter({ name: 'sgd', slots: [], lr: opts.lr ?? 0.01, decay: opts.decay, rule: ({ g, p, lr }) => ({ p: sub(p, mul(lr, g)) }) });
  }
  return perParameter({
    name: 'sgd',
    slots: ['momentum'],
    lr: opts.lr ?? 0.01,
    decay: opts.decay,
    rule: ({ g, p, slots, lr }) => {
      const v = sub(mul(momentum, slots['momentum']!), mul(lr, g));
      const next = nesterov ? sub(add(p, mul(momentum, v)), mul(lr, g)) : add(p, v);
      return { p: next, slots: { momentum: v } };
    },
  });
}
