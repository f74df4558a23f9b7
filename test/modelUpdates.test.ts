// compile(…, {updates}) (issue 12 §2): the model's own state (a batch norm's moving averages) changes exactly once
// per step, from the variables as they were when the step started — in multi-run steps too — and not at all in a
// refused step.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, add, compile, heun, matMul, mean, mul, placeholder, rungeKutta, sam, sgd, square, sub, sum, tableaux, variable,
  type AnyOptimizer,
} from '../src/index.js';
import { BACKENDS, values } from './helpers.js';

const F = Math.fround;

describe.each(BACKENDS)('model updates on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(async () => {
    await s.dispose();
  });

  const model = () => {
    const x = placeholder([null, 2], { name: 'x' });
    const w = variable([[1], [-2]], { name: 'w' });
    const moving = variable(5, { name: 'moving' });
    const h = matMul(x, w);
    // A moving average of a statistic that depends on the parameters (as a batch norm's does).
    const stat = mean(h);
    const updates = [[moving, add(mul(0.9, moving), mul(0.1, stat))] as const];
    return { x, w, moving, loss: mean(square(sub(h, 1))), updates };
  };
  const batch = [[1, 2], [3, -1], [0.5, 0.5]];
  const statAt = (w: number[]) => batch.reduce((p, r) => p + r[0]! * w[0]! + r[1]! * w[1]!, 0) / batch.length;

  const cases: [string, () => AnyOptimizer, number][] = [
    ['sgd', () => sgd({ lr: 0.05 }), 1],
    ['heun', () => heun({ lr: 0.05 }), 2],
    ['rk4', () => rungeKutta({ lr: 0.05, tableau: tableaux.rk4 }), 4],
    ['sam', () => sam({ inner: sgd({ lr: 0.05 }) }), 2],
    ['adaptive rk45 (rejecting)', () => rungeKutta({ lr: 5, tableau: tableaux.dormandPrince, adaptive: { tol: 1e-6 } }), 0],
  ];
  it.each(cases)('%s: once per step, from the step\'s starting parameters', async (_name, make, runs) => {
    const m = model();
    const train = compile(make(), s, { loss: m.loss, inputs: [m.x], updates: m.updates });
    let expected = 5;
    for (let k = 0; k < 3; k++) {
      const w0 = values(await s.getValue(m.w));
      const r = await train.step([batch]);
      if (runs > 0) expect(r.runs).toBe(runs);
      expected = F(F(0.9 * expected) + F(0.1 * F(statAt(w0))));
      expect(values(await s.getValue(m.moving))[0]).toBeCloseTo(expected, 5);
      // The parameters did move (the statistic of the next step differs).
      expect(values(await s.getValue(m.w))).not.toEqual(w0);
    }
  });

  it('a refused step changes no model state', async () => {
    const m = model();
    const train = compile(heun({ lr: 0.05 }), s, { loss: m.loss, inputs: [m.x], updates: m.updates, onNonFinite: 'skip' });
    const r = await train.step([[[NaN, 1]]]);
    expect(r.skipped).toBeDefined();
    expect(values(await s.getValue(m.moving))).toEqual([5]);
  });

  it('refuses updates of a parameter or of optimizer state, naming it', () => {
    const m = model();
    expect(() => compile(sgd({ lr: 0.1 }), s, { loss: m.loss, inputs: [m.x], updates: [[m.w, mul(m.w, 2)]] }))
      .toThrow(/^compile: updates assign 'w[^']*', which the optimizer trains or owns; a model update may assign only the model's own state$/);
  });
});

describe('model state in checkpoints', () => {
  it('is saved and restored with the parameters', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const s = await Session.create({ backend: 'cpu' });
    const x = placeholder([null], { name: 'x' });
    const w = variable(1, { name: 'w' });
    const moving = variable(0, { name: 'moving' });
    const train = compile(heun({ lr: 0.1 }), s, { loss: sum(square(mul(x, w))), inputs: [x], updates: [[moving, add(moving, sum(x))]] });
    await train.step([[1, 2]]);
    const path = join(mkdtempSync(join(tmpdir(), 'symflow-mu-')), 'c.bin');
    await s.save(path);
    await train.step([[1, 2]]);
    expect(values(await s.getValue(moving))).toEqual([6]);
    await s.restore(path);
    expect(values(await s.getValue(moving))).toEqual([3]);
    await s.dispose();
  });
});
