import type { Update } from '../graph/cond.js';
import { mul } from '../graph/ops/binary.js';
import { sub } from '../graph/ops/math.js';
import { defineMultiRun, type MultiRunOptimizer } from './compile.js';
import { hyper } from './optimizer.js';

/**
 * The extragradient method (Korpelevich), two session runs on the same batch: run 1 looks ahead,
 * p½ = p − lr·∇L(p) (remembering p); run 2 steps from p with the gradient there, p ← p − lr·∇L(p½).
 * On a min-max (bilinear) game, where gradient descent–ascent spirals out, it converges.
 *
 * ```ts
 * const train = compile(extragradient({ lr: 0.1 }), session, { loss, inputs: [x] }); // runsPerStep === 2
 * ```
 * @param opts lr (the step size of both half-steps)
 * @returns a multi-run optimizer
 */
export function extragradient(opts: { lr: number }): MultiRunOptimizer {
  const lr = hyper('extragradient', 'lr', opts?.lr, { min: 0 });
  return defineMultiRun('extragradient', (ctx) => {
    const { params, grads } = ctx;
    const p0 = ctx.slots('extragradient', 'p0');
    const look = ctx.run({
      outputs: { loss: ctx.loss, outputs: ctx.outputs },
      updates: params.flatMap((p, i): Update[] => [[p0[i]!, p], [p, sub(p, mul(lr, grads[i]!))]]),
    });
    // Run 2 reads the gradient at p½ (the parameters now hold it) and steps from the remembered p.
    const step = ctx.run({ updates: params.map((p, i): Update => [p, sub(p0[i]!, mul(lr, grads[i]!))]) });
    return {
      runsPerStep: 2,
      variables: p0,
      async step(batch) {
        const { loss, outputs } = await look(batch);
        await step(batch);
        return { loss: loss.data[0]!, outputs, runs: 2, lr };
      },
    };
  });
}
