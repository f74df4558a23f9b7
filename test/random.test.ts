// Stateless, counter-based randomness (issue 12 §1): bit-identical on every backend, one draw per training step
// shared by all of that step's runs (Heun, RK4, SAM integrate one function), new draws each step, explicit seeds
// reproducible across builds and sessions, the counter carried by checkpoints; the learning phase; statistics.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, bernoulli, compile, dropout, fromJSON, graph, heun, matMul, mean, mul, placeholder, randomNormal, randomUniform,
  reshape, rungeKutta, sam, sgd, square, sub, sum, tableaux, toJSON, variable, type Tensor,
} from '../src/index.js';
import { BACKENDS, bits, values } from './helpers.js';

const build = () => graph(() => {
  const x = placeholder([null, 8], { name: 'x' });
  return { x, u: randomUniform([64, 33]), n: randomNormal([50, 20], { mean: 1, stddev: 2 }), d: dropout(x, 0.3), b: bernoulli(0.25, [40]) };
});
const xs = Array.from({ length: 5 }, (_, i) => Array.from({ length: 8 }, (_, j) => i * 8 + j + 1));

describe('draws', () => {
  it('are bit-identical on cpu, wasm and onnx, and in a second build of the same graph', async () => {
    const outs: number[][][] = [];
    for (const backend of BACKENDS) {
      const s = await Session.create({ backend });
      const g = build();
      outs.push((await s.run([g.u, g.n, g.d, g.b], [[g.x, xs]], { training: true })).map(bits));
      await s.dispose();
    }
    expect(outs[1]).toEqual(outs[0]);
    expect(outs[2]).toEqual(outs[0]);
  });

  it('have the statistics of their distribution (mean, variance, 20-bin χ², neighbours uncorrelated)', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const [u, n, b] = (await s.run([randomUniform([200_000], { min: -1, max: 3 }), randomNormal([200_000], { mean: 2, stddev: 0.5 }), bernoulli(0.3, [100_000])])).map(values);
    const stats = (v: number[]) => {
      const m = v.reduce((p, q) => p + q, 0) / v.length;
      const variance = v.reduce((p, q) => p + (q - m) ** 2, 0) / v.length;
      return { m, variance, kurt: v.reduce((p, q) => p + (q - m) ** 4, 0) / v.length / variance ** 2 };
    };
    const su = stats(u!);
    expect(u!.reduce((p, q) => Math.min(p, q), Infinity)).toBeGreaterThanOrEqual(-1);
    expect(u!.reduce((p, q) => Math.max(p, q), -Infinity)).toBeLessThan(3);
    expect(Math.abs(su.m - 1)).toBeLessThan(0.01);
    expect(Math.abs(su.variance - 16 / 12)).toBeLessThan(0.01);
    const bins = new Array(20).fill(0);
    for (const v of u!) bins[Math.floor((v + 1) * 5)]++;
    const chi2 = bins.reduce((p, c) => p + (c - 10_000) ** 2 / 10_000, 0);
    expect(chi2).toBeLessThan(43.8); // df 19, p = 0.001
    let cov = 0;
    for (let i = 1; i < u!.length; i++) cov += (u![i]! - 1) * (u![i - 1]! - 1);
    expect(Math.abs(cov / (u!.length - 1) / su.variance)).toBeLessThan(0.01);
    const sn = stats(n!);
    expect(Math.abs(sn.m - 2)).toBeLessThan(0.005);
    expect(Math.abs(Math.sqrt(sn.variance) - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sn.kurt - 3)).toBeLessThan(0.1);
    expect(Math.abs(b!.reduce((p, q) => p + q, 0) / b!.length - 0.3)).toBeLessThan(0.006);
    await s.dispose();
  });

  it('with an explicit seed depend on the seed and the step only: two graphs, two sessions, the same values', async () => {
    const a = await Session.create({ backend: 'cpu' }), c = await Session.create({ backend: 'cpu', seed: 99 });
    const one = values(await a.run(randomUniform([10], { seed: 5 })));
    expect(values(await c.run(randomUniform([10], { seed: 5, name: 'other' })))).toEqual(one);
    expect(values(await a.run(randomUniform([10], { seed: 6 })))).not.toEqual(one);
    // Without one: the session's seed and the node count.
    const free = () => graph(() => randomUniform([10]));
    expect(values(await a.run(free()))).toEqual(values(await a.run(free())));
    expect(values(await c.run(free()))).not.toEqual(values(await a.run(free())));
    await a.dispose();
    await c.dispose();
  });
});

describe.each(BACKENDS)('the step counter on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(async () => {
    await s.dispose();
  });

  it('keeps one draw for every run of a step and moves once per TrainStep.step', async () => {
    const x = placeholder([null, 3], { name: 'x' });
    const w = variable([[0.5], [-1], [2]], { name: 'w' });
    const train = compile(sgd({ lr: 0.1 }), s, { loss: mean(square(matMul(dropout(x, 0.5, { seed: 1 }), w))), inputs: [x] });
    const u = randomUniform(x, { seed: 2 });
    const draw = async () => bits(await s.run(u, [[x, [[1, 2, 3], [4, 5, 6]]]]));
    const before = s.step;
    const first = await draw();
    expect(await draw()).toEqual(first); // no step taken: the same values
    await train.step([[[1, 2, 3]]]);
    expect(s.step).toBe(before + 1);
    const second = await draw();
    expect(second).not.toEqual(first);
    // A leading dimension of 2 or of 1 draws the same first row.
    expect(bits(await s.run(u, [[x, [[1, 2, 3]]]]))).toEqual(second.slice(0, 12));
  });

  it("gives Heun's two evaluations, RK4's four stages and SAM's two runs the same dropout mask", async () => {
    // loss = sum(dropout(x) · w): its gradient is the masked, scaled x whatever w is, so a method that integrates
    // one function moves w by exactly −lr · (that gradient); stages with different masks would average them.
    for (const make of [() => heun({ lr: 0.5 }), () => rungeKutta({ lr: 0.5, tableau: tableaux.rk4 }), () => sam({ inner: sgd({ lr: 0.5 }), rho: 0.05 })]) {
      const x = placeholder([1, 64], { name: 'x' });
      const w = variable(new Float32Array(64), { shape: [64], name: 'w' });
      const d = dropout(x, 0.5, { seed: 11 });
      const train = compile(make(), s, { loss: sum(mul(d, w)), inputs: [x], params: [w] });
      const feed = [Array.from({ length: 64 }, (_, i) => 1 + i / 64)];
      const w0 = values(await s.getValue(w));
      const grad = values(await s.run(d, [[x, feed]], { training: true })); // the mask this step will use
      expect(grad.filter((v) => v === 0).length).toBeGreaterThan(10);
      expect(grad.filter((v) => v !== 0).length).toBeGreaterThan(10);
      await train.step([feed]);
      const w1 = values(await s.getValue(w));
      w1.forEach((v, i) => expect(v).toBeCloseTo(w0[i]! - 0.5 * grad[i]!, 5));
    }
  });

  it('moves once for an adaptive RK45 step that rejects and retries (all its runs draw at one counter value)', async () => {
    const x = placeholder([1, 16], { name: 'x' });
    const w = variable(new Float32Array(16).fill(1), { shape: [16], name: 'w' });
    const train = compile(rungeKutta({ lr: 50, tableau: tableaux.dormandPrince, adaptive: { tol: 1e-6 } }), s,
      { loss: sum(square(mul(dropout(x, 0.5, { seed: 5 }), w))), inputs: [x], params: [w] });
    const before = s.step;
    const r = await train.step([[Array.from({ length: 16 }, (_, i) => 1 + i / 8)]]);
    expect(r.runs).toBeGreaterThan(7); // one accepted attempt takes 7 runs (measured at lr 1e-4): this one was rejected
    expect(s.step).toBe(before + 1);
  });

  it('is saved and restored with the variables: a restored session draws what the saved one drew next', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'symflow-random-'));
    const w = variable([1, 2], { name: 'wr' });
    const train = compile(sgd({ lr: 0.1 }), s, { loss: sum(square(mul(w, randomUniform([2], { seed: 4 })))), params: [w], inputs: [] });
    for (let i = 0; i < 3; i++) await train.step([]);
    await s.save(join(dir, 'c.bin'), { variables: [w] });
    const next = values(await s.run(randomUniform([5], { seed: 8 })));
    const fresh = await Session.create({ backend });
    await fresh.restore(join(dir, 'c.bin'), { variables: [w] });
    expect(fresh.step).toBe(s.step);
    expect(values(await fresh.run(randomUniform([5], { seed: 8 })))).toEqual(next);
    await fresh.dispose();
  });

  it('dropout is x outside training, masked and scaled inside; the TF.js tensor count stays flat', async () => {
    const x = placeholder([null, 6], { name: 'x' });
    const d = dropout(x, 0.25, { seed: 3 });
    const feed = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]];
    expect(values(await s.run(d, [[x, feed]]))).toEqual(feed.flat());
    const t = values(await s.run(d, [[x, feed]], { training: true }));
    t.forEach((v, i) => expect([0, Math.fround(feed.flat()[i]! * Math.fround(1 / 0.75))]).toContain(v));
    const count = s.numTensors();
    for (let i = 0; i < 20; i++) await s.run(d, [[x, feed]], { training: true });
    expect(s.numTensors()).toBe(count);
  });

  it('dropout keeps exactly where bernoulli(1 − rate) with the same seed is true', async () => {
    const x = placeholder([null, 50], { name: 'x' });
    const feed = [Array.from({ length: 50 }, (_, i) => i + 1), Array.from({ length: 50 }, (_, i) => -i - 1)];
    const [d, b] = await s.run([dropout(x, 0.3, { seed: 5 }), bernoulli(0.7, x, { seed: 5 })], [[x, feed]], { training: true });
    expect(values(d!).map((v) => v !== 0)).toEqual(values(b!).map((v) => v === 1));
  });

  it('an empty batch gives an empty result; NaN and ±Inf are kept (scaled) where the mask keeps, NaN where it drops (x · 0, as TF)', async () => {
    const x = placeholder([null, 4], { name: 'x' });
    const d = dropout(x, 0.5, { seed: 9 });
    const empty = await s.run(d, [[x, { shape: [0, 4], data: new Float32Array(0) }]], { training: true });
    expect(empty.shape).toEqual([0, 4]);
    const feed = [Array.from({ length: 4 }, () => NaN), [Infinity, -Infinity, Infinity, -Infinity]];
    const mask = values(await s.run(d, [[x, [[1, 1, 1, 1], [1, 1, 1, 1]]]], { training: true })); // 0 or 2
    expect(new Set(mask)).toEqual(new Set([0, 2]));
    const got = values(await s.run(d, [[x, feed]], { training: true }));
    got.forEach((v, i) => {
      const expected = mask[i]! * feed.flat()[i]!;
      expect(Object.is(v, expected) || (Number.isNaN(v) && Number.isNaN(expected))).toBe(true);
    });
  });

  it('round-trips through JSON: the same draws', async () => {
    const x = placeholder([null, 4], { name: 'x' });
    const y = mul(dropout(x, 0.5), randomNormal(x));
    const read = fromJSON(JSON.stringify(toJSON([y])));
    const feed = [[1, 2, 3, 4], [5, 6, 7, 8]];
    expect(bits(await s.run(read.outputs[0]!, [[read.nodes.get(x.name)!, feed]], { training: true }))).toEqual(bits(await s.run(y, [[x, feed]], { training: true })));
  });
});

describe('concurrent steps', () => {
  it.each(BACKENDS)('two models stepping at once on one session (%s): the counter moves once per step, and the result is the serial replay', async (backend) => {
    const build = () => graph(() => [1, 2].map((k) => {
      const x = placeholder([null, 8], { name: `x${k}` });
      const w = variable(new Float32Array(8).fill(0.5 * k), { shape: [8], name: `w${k}` });
      return { x, w, loss: sum(square(mul(dropout(x, 0.5, { seed: k }), w))) };
    }));
    const feed = [Array.from({ length: 8 }, (_, i) => 1 + i / 4)];
    const run = async (concurrent: boolean) => {
      const s = await Session.create({ backend });
      const models = build();
      const steps = models.map((m) => compile(heun({ lr: 0.01 }), s, { loss: m.loss, inputs: [m.x], params: [m.w] }));
      // Issued a, b, a, b, …: the session runs each whole step as one transaction, in issue order.
      const calls = Array.from({ length: 10 }, (_, i) => () => steps[i % 2]!.step([feed]));
      if (concurrent) await Promise.all(calls.map((c) => c()));
      else for (const c of calls) await c();
      const out = { step: s.step, w: await Promise.all(models.map(async (m) => bits(await s.getValue(m.w)))) };
      await s.dispose();
      return out;
    };
    const [together, serial] = [await run(true), await run(false)];
    expect(together.step).toBe(10);
    expect(together).toEqual(serial);
  });
});

describe('refusals', () => {
  it('name the op and the argument', async () => {
    const x = placeholder([null, 4], { name: 'x' });
    expect(() => dropout(x, 1)).toThrow(new SymflowError('dropout', 'rate must be in [0, 1), got 1'));
    expect(() => randomUniform([null, 3] as never)).toThrow(/randomUniform: shape \[\?,3\] has unknown dimensions; pass a tensor/);
    expect(() => randomUniform([3], { seed: -1 })).toThrow(/randomUniform: seed must be an integer from 0 to 2147483647, got -1/);
    expect(() => randomUniform([3], { min: 2, max: 1 })).toThrow(/randomUniform: min must be below max/);
    expect(() => randomNormal([3], { stddev: -1 })).toThrow(/randomNormal: stddev must be ≥ 0/);
    // A run-time dimension no feed gives: refused when compiled, naming the node.
    const s = await Session.create({ backend: 'cpu' });
    const flat = reshape(x, [-1]);
    const r: Tensor = randomUniform(flat, { name: 'noise' });
    await expect(s.run(sub(flat, r), [[x, [[1, 2, 3, 4]]]])).rejects.toThrow(/random node 'noise[^']*' \[\?\]: dimension 0 is not known before the run/);
    await s.dispose();
  });
});
