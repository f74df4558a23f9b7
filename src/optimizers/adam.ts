import { add, div, maximum, mul, pow } from '../graph/ops/binary.js';
import { square, sub } from '../graph/ops/math.js';
import { sqrt } from '../graph/ops/unary.js';
import type { Tensor } from '../graph/tensor.js';
import { hyper, type LearningRate, type Optimizer } from './optimizer.js';
import { perParameter, type RuleInput, type SlotState } from './perParameter.js';

export interface AdamOptions {
  lr?: LearningRate;
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

function adamLike(name: string, opts: AdamWOptions, weightDecay: number): Optimizer<SlotState> {
  const beta1 = hyper(name, 'beta1', opts.beta1 ?? 0.9, { min: 0, max: 1 });
  const beta2 = hyper(name, 'beta2', opts.beta2 ?? 0.999, { min: 0, max: 1 });
  const epsilon = hyper(name, 'epsilon', opts.epsilon ?? 1e-7, { min: 0 });
  const amsgrad = opts.amsgrad ?? false;
  return perParameter({
    name,
    slots: amsgrad ? ['m', 'v', 'vhat'] : ['m', 'v'],
    lr: opts.lr ?? 0.001,
    decay: opts.decay,
    // Keras 2.2.4: t = iterations + 1; lr_t = lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ).
    perStep: (lr, t) => ({ lrT: mul(lr, div(sqrt(sub(1, pow(beta2, t))), sub(1, pow(beta1, t)))) }),
    rule: ({ g, p, slots: old, lr, step }: RuleInput) => {
      const m = add(mul(beta1, old['m']!), mul(sub(1, beta1), g));
      const v = add(mul(beta2, old['v']!), mul(sub(1, beta2), square(g)));
      const vhat = amsgrad ? maximum(old['vhat']!, v) : v;
      const decayed: Tensor = weightDecay > 0 ? sub(p, mul(mul(p, weightDecay), lr)) : p;
      const next = sub(decayed, div(mul(step['lrT']!, m), add(sqrt(vhat), epsilon)));
      const slots: Record<string, Tensor> = { m, v };
      if (amsgrad) slots['vhat'] = vhat;
      return { p: next, slots };
    },
  });
}

/**
 * Adam with Keras 2.2.4 numerics (bias correction folded into the learning rate; optional AMSGrad).
 *
 * ```ts
 * const opt = adam({ lr: 1e-3 });
 * ```
 * @param opts lr (0.001), beta1 (0.9), beta2 (0.999), epsilon (1e-7), amsgrad (false), decay (0)
 * @returns a single-run optimizer
 */
export function adam(opts: AdamOptions = {}): Optimizer<SlotState> {
  return adamLike('adam', opts, 0);
}

/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), applied as in Keras 3:
 * p ← p − p·weightDecay·lr, then the Adam step.
 * @param opts the Adam options plus weightDecay (0.01)
 * @returns a single-run optimizer
 */
export function adamw(opts: AdamWOptions = {}): Optimizer<SlotState> {
  return adamLike('adamw', opts, hyper('adamw', 'weightDecay', opts.weightDecay ?? 0.01, { min: 0 }));
}
