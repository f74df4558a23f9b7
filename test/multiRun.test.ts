import { describe, expect, it } from 'vitest';
import { Session, compile, defineMultiRun, mean, mul, placeholder, square, sub, sum, variable } from '../src/index.js';
import { BACKENDS } from './helpers.js';

/** Multi-run optimizers read their runs' results by name (`ctx.run({outputs: {loss, …}})`), not by position. */
describe.each(BACKENDS)('named run outputs on %s', (backend) => {
  it('a run with named outputs resolves to a record: tensors to host values, lists to lists', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null], { name: 'x' });
    const w = variable([1, -2], { name: 'w' });
    // L = mean((w·x − 1)²) over a batch of one-element rows: here w has two entries, x is broadcast.
    const loss = mean(square(sub(mul(w, x), 1)));
    const seen: Record<string, number[]> = {};
    const probe = defineMultiRun('probe', (ctx) => {
      const look = ctx.run({ outputs: { loss: ctx.loss, gradSquares: sum(square(ctx.grads[0]!)), extra: ctx.outputs } });
      const apply = ctx.run({ updates: [[w, sub(w, mul(0.5, ctx.grads[0]!))]] });
      return {
        runsPerStep: 2,
        variables: [],
        async step(batch) {
          const r = await look(batch);
          seen['loss'] = Array.from(r.loss.data);
          seen['gradSquares'] = Array.from(r.gradSquares.data);
          seen['extra'] = r.extra.flatMap((t) => Array.from(t.data));
          await apply(batch);
          return { loss: r.loss.data[0]!, outputs: r.extra, runs: 2 };
        },
      };
    });
    const train = compile(probe, s, { loss, inputs: [x], outputs: [mul(w, 10)] });
    const result = await train.step([[2]]);
    // w·x = [2, −4]: loss = ((2−1)² + (−4−1)²)/2 = 13; ∂L/∂w = (w·x − 1)·x = [2, −10], squares 104.
    expect(seen['loss']).toEqual([13]);
    expect(seen['gradSquares']).toEqual([104]);
    expect(seen['extra']).toEqual([10, -20]);
    expect(result.outputs.map((t) => Array.from(t.data))).toEqual([[10, -20]]);
    expect(Array.from((await s.getValue(w)).data)).toEqual([0, 3]);
    await s.dispose();
  });
});
