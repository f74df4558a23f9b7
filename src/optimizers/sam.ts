import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { add, div, mul } from '../graph/ops/binary.js';
import { addN } from '../graph/ops/identity.js';
import { square } from '../graph/ops/math.js';
import { sum } from '../graph/ops/reduce.js';
import { sqrt } from '../graph/ops/unary.js';
import { defineMultiRun, type MultiRunOptimizer } from './compile.js';
import { hyper, type Optimizer, type OptimizerState } from './optimizer.js';
import { fromTransform, type GradientTransformation } from './transform.js';

/**
 * Sharpness-aware minimization (Foret et al.), written as two session runs with `defineMultiRun`:
 * run 1 computes g at p and moves to p + ρ·g/‖g‖ (‖·‖ the global norm over all parameters);
 * run 2 computes the gradient there, returns to p, and applies the inner optimizer with it.
 *
 * ```ts
 * const opt = sam({ inner: sgd({ lr: 0.1 }), rho: 0.05 });
 * ```
 * @param opts inner (a single-run optimizer), rho (the neighbourhood radius, default 0.05)
 * @returns a multi-run optimizer
 */
export function sam<S extends OptimizerState>(opts: { inner: Optimizer<S> | GradientTransformation<S>; rho?: number }): MultiRunOptimizer {
  const inner = (opts?.inner?.kind === 'transform' ? fromTransform(opts.inner) : opts?.inner) as Optimizer<S> | undefined;
  if (inner?.kind !== 'single') throw new SymflowError('sam', 'inner must be a single-run optimizer (sgd, adam, …)');
  const rho = hyper('sam', 'rho', opts.rho ?? 0.05, { min: 0 });
  return defineMultiRun(`sam(${inner.name})`, (ctx) => {
    const { params, grads } = ctx;
    const p0 = ctx.slots('sam', 'p0');
    const state = inner.init(params);
    // A tiny floor keeps a zero gradient from dividing by zero (the step is then zero).
    const norm = add(sqrt(addN(grads.map((g) => sum(square(g))))), 1e-12);
    const ascend = ctx.run({
      outputs: { loss: ctx.loss, outputs: ctx.outputs },
      updates: params.flatMap((p, i): Update[] => [[p0[i]!, p], [p, add(p, mul(rho, div(grads[i]!, norm)))]]),
    });
    const lr = inner.learningRate?.(state);
    const descend = ctx.run({ outputs: { lr: lr === undefined ? [] : [lr] }, updates: inner.update(grads, state, params, p0) });
    const finish = inner.flush?.(state, params);
    const flushRun = finish ? ctx.session.function({ outputs: [finish.pending], updates: finish.updates }) : undefined;
    return {
      runsPerStep: 2,
      variables: [...p0, ...state.variables],
      async step(batch) {
        const { loss, outputs } = await ascend(batch);
        const { lr: rate } = await descend(batch);
        return { loss: loss.data[0]!, outputs, runs: 2, ...(rate.length > 0 ? { lr: rate[0]!.data[0]! } : {}) };
      },
      // A soft-batch inner optimizer's ragged last group is finished as it would be without sam.
      ...(flushRun ? { flush: async () => (await flushRun())[0]!.data[0] === 1 } : {}),
    };
  });
}
