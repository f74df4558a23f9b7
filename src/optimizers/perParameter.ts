import type { Update } from '../graph/cond.js';
import { add } from '../graph/ops/binary.js';
import { cast } from '../graph/ops/cast.js';
import type { Tensor, Variable } from '../graph/tensor.js';
import {
  checkGrads, checkLearningRate, counter, hyper, type LearningRate, learningRate, makeOptimizer, type Optimizer,
  type OptimizerState, slotLike,
} from './optimizer.js';

/** State of a per-parameter rule: named slots per parameter and the step counter. */
export interface SlotState extends OptimizerState {
  /** The slots by name, each a list with one zero-initialised variable per parameter (`name/slot/param`). */
  readonly slots: Readonly<Record<string, readonly Variable[]>>;
  /** The int32 step counter `name/iterations`: steps applied so far. */
  readonly iterations: Variable;
}

/** What a `perParameter` rule gets for one parameter at one step. */
export interface RuleInput {
  /** The gradient. */
  g: Tensor;
  /** The parameter's current value. */
  p: Tensor;
  /** The parameter's slots, read before the step. */
  slots: Readonly<Record<string, Tensor>>;
  /** This step's learning rate (schedule and decay applied). */
  lr: Tensor;
  /** Step-wide quantities from `perStep`. */
  step: Readonly<Record<string, Tensor>>;
}

/**
 * Builds an optimizer from a rule applied to each parameter: the shape most optimizers share (Keras'
 * `get_updates` loop). `perStep` computes what all parameters share once, e.g. Adam's bias-corrected lr.
 */
export function perParameter(def: {
  name: string;
  slots: readonly string[];
  lr: LearningRate;
  decay?: number;
  perStep?: (lr: Tensor, t: Tensor) => Record<string, Tensor>;
  rule: (x: RuleInput) => { p: Tensor; slots?: Record<string, Tensor> };
}): Optimizer<SlotState> {
  const lr = checkLearningRate(def.name, def.lr);
  const decay = hyper(def.name, 'decay', def.decay ?? 0, { min: 0 });
  return makeOptimizer<SlotState>({
    name: def.name,
    init(params) {
      const slots = Object.fromEntries(def.slots.map((s) => [s, params.map((p) => slotLike(def.name, s, p))]));
      const iterations = counter(def.name);
      return { slots, iterations, variables: [...Object.values(slots).flat(), iterations] };
    },
    update(grads, state, params, values = params) {
      checkGrads(def.name, grads, params);
      const rate = learningRate(lr, decay, state.iterations);
      const step = def.perStep?.(rate, add(cast(state.iterations, 'float32'), 1)) ?? {};
      const updates: Update[] = [[state.iterations, add(state.iterations, 1)]];
      params.forEach((param, i) => {
        const slots = Object.fromEntries(def.slots.map((s) => [s, state.slots[s]![i]!]));
        const out = def.rule({ g: grads[i]!, p: values[i]!, slots, lr: rate, step });
        updates.push([param, out.p]);
        for (const s of def.slots) updates.push([state.slots[s]![i]!, out.slots![s]!]);
      });
      return updates;
    },
    learningRate: (state) => learningRate(lr, decay, state.iterations),
  });
}
