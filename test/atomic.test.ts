import { describe, expect, it } from 'vitest';
import {
  Session, accumulate, adam, compile, heun, layers, mean, mul, placeholder, reshape, rungeKutta, sam, sgd,
  sparseSoftmaxCrossEntropy, tableaux, variable, type AnyOptimizer,
} from '../src/index.js';
import { BACKENDS, failingSession } from './helpers.js';

/**
 * Every run of every multi-run step can fail; whichever does, the step leaves parameters and optimizer state as
 * they were before it. The failure is injected by making the n-th session call of a step throw.
 */
const cases: [string, () => AnyOptimizer][] = [
  ['heun', () => heun({ lr: 0.1 })],
  ['rk4', () => rungeKutta({ tableau: tableaux.rk4, lr: 0.1 })],
  ['adaptive dormandPrince', () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-3 } })],
  ['heun fused', () => heun({ lr: 0.1, fused: true })],
  ['adaptive dormandPrince fused', () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-3 }, fused: true })],
  ['sam(adam)', () => sam({ inner: adam({ lr: 0.01 }), rho: 0.05 })],
  ['soft batch accumulate(adam, 2)', () => accumulate(adam({ lr: 0.01 }), { steps: 2 })],
];


async function bits(s: Session): Promise<string[]> {
  const out: string[] = [];
  for (const v of s.variables) out.push(`${v.name}=${Buffer.from((await s.getValue(v)).data.buffer).toString('hex')}`);
  return out;
}

describe.each(BACKENDS)('atomic steps on %s', (backend) => {
  it.each(cases)('%s: a failure in any run of a step restores the state from before the step', async (_name, make) => {
    const { s, calls, failAt } = await failingSession(backend);
    const x = placeholder([null, 3]);
    const y = placeholder([null], { dtype: 'int32' });
    const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(layers.dense(x, 4, { activation: 'tanh', seed: 5 }), 2, { seed: 6 }), y));
    const train = compile(make(), s, { loss, inputs: [x, y] });
    const batch = [[[0.1, 0.2, 0.3], [1, -1, 0.5], [0, 0.3, -0.2]], [0, 1, 1]];
    await train.step(batch); // warm up: every function compiled, every variable initialised
    // How many calls one step makes now (adaptive steps may differ, so count the next one).
    const start = calls();
    await train.step(batch);
    const perStep = calls() - start;
    expect(perStep).toBeGreaterThanOrEqual(train.runsPerStep);
    for (let k = 0; k < perStep; k++) {
      const before = await bits(s);
      const tensors = s.numTensors();
      const n = calls() + k;
      failAt(n);
      await expect(train.step(batch)).rejects.toThrow(`injected failure in call ${n}`);
      failAt(-1);
      expect(await bits(s), `after a failure in run ${k + 1} of ${perStep}`).toEqual(before);
      expect(s.numTensors()).toBe(tensors);
    }
    // And the step still works afterwards.
    const after = await train.step(batch);
    expect(Number.isFinite(after.loss)).toBe(true);
    s.dispose();
  });
});

describe.each(BACKENDS)('a failing retry of an adaptive step on %s', (backend) => {
  it.each([false, true])('fused %s: rejected tries shrank lr, the failure puts lr and everything else back', async (fused) => {
    const { s, calls, failAt } = await failingSession(backend);
    const p = variable([1, -2]);
    const loss = mean(mul(mul(p, p), variable([1, 4], { trainable: false })));
    // lr 5 is far too long: the first step is rejected several times before one is accepted.
    const stages = tableaux.dormandPrince.b.length;
    const train = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 5, adaptive: { tol: 1e-4 }, fused }), s, { loss, params: [p], inputs: [] });
    const everything = [...train.params, ...train.stateVariables];
    const read = async () => Promise.all(everything.map(async (v) => Buffer.from((await s.getValue(v)).data.buffer).toString('hex')));
    const before = await read();
    // Fail in the first run of the second try (non-fused, its second stage: the first is not re-run).
    failAt(calls() + (fused ? 1 : stages));
    await expect(train.step([])).rejects.toThrow('injected failure');
    expect(await read()).toEqual(before);
    failAt(-1);
    const r = await train.step([]);
    expect(r.rejections).toBeGreaterThanOrEqual(2);
    // Non-fused, a retry skips the first stage (stored, the parameters unmoved).
    expect(r.runs).toBe(fused ? r.rejections! + 1 : stages + (stages - 1) * r.rejections!);
    s.dispose();
  });
});

describe('atomic steps also hold when the failing run is a real kernel error', () => {
  it('a soft-batch step whose run fails (here on its apply step) applies nothing', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const x = placeholder([null]);
    const p = variable([1, 2]);
    // reshape fails at run time unless x has exactly 2 values.
    const loss = mean(mul(p, reshape(x, [2])));
    const train = compile(accumulate(sgd({ lr: 0.1 }), { steps: 2 }), s, { loss, params: [p], inputs: [x] });
    await train.step([[1, 1]]);
    const before = await bits(s);
    await expect(train.step([[1, 1, 1]])).rejects.toThrow(/reshape: failed at node/);
    expect(await bits(s)).toEqual(before);
    await train.step([[1, 1]]);
    // Mean of the two gradients [0.5, 0.5], applied once: p − 0.1·0.5.
    expect(Array.from((await s.getValue(p)).data)).toEqual([0.95, 1.95].map(Math.fround));
    s.dispose();
  });
});
