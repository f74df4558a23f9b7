// compile(…, {updates}) (issue 12 §2): the model's own state (a batch norm's moving averages) changes exactly once
// per step, from the variables as they were when the step started — in multi-run steps too — and not at all in a
// refused step.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, accumulate, add, compile, heun, movingMoments, nn, matMul, mean, mul, placeholder, rungeKutta, sam, sgd, square, sub, sum, tableaux, variable,
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

describe.each(BACKENDS)('moving moments on %s', (backend) => {
  it('alone: Keras moving averages of the batch mean and biased variance, once per step (heun too)', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null, 3], { name: 'x' });
    const w = variable([[1, 0.5, -1], [2, 0, 1], [0, 1, 1]], { name: 'w' });
    const h = matMul(x, w);
    const mm = variable([0, 0, 0], { name: 'mm' }), mv = variable([1, 1, 1], { name: 'mv' });
    const train = compile(heun({ lr: 0.01 }), s, { loss: mean(square(h)), inputs: [x], updates: [movingMoments(mm, mv, h, 0, { momentum: 0.9 })] });
    const xs = [[1, 2, 3], [-1, 0, 2], [0.5, 0.5, -2], [3, 1, 0]];
    const w0 = values(await s.getValue(w));
    await train.step([xs]);
    const hv = xs.map((r) => [0, 1, 2].map((j) => r.reduce((p, v, k) => p + v * w0[k * 3 + j]!, 0)));
    const bm = [0, 1, 2].map((j) => hv.reduce((p, r) => p + r[j]!, 0) / 4);
    const bv = [0, 1, 2].map((j) => hv.reduce((p, r) => p + (r[j]! - bm[j]!) ** 2, 0) / 4);
    values(await s.getValue(mm)).forEach((v, j) => expect(v).toBeCloseTo(0.1 * bm[j]!, 5));
    values(await s.getValue(mv)).forEach((v, j) => expect(v).toBeCloseTo(0.9 + 0.1 * bv[j]!, 5));
    await s.dispose();
  });

  it('under accumulate(N): pooled over the N mini-batches, as one batch of all their rows (≤ 1e-5), once per outer step', async () => {
    const s = await Session.create({ backend });
    const rows = Array.from({ length: 24 }, (_, i) => [Math.sin(i) * 3 + 10, Math.cos(i * 0.7) * 2 - 5]);
    const build = (name: string) => {
      const x = placeholder([null, 2], { name: `x${name}` });
      const w = variable([[1, 0.5], [-0.5, 2]], { name: `w${name}` });
      const h = matMul(x, w);
      const mm = variable([0, 0], { name: `mm${name}` }), mv = variable([1, 1], { name: `mv${name}` });
      return { x, h, mm, mv, loss: mean(square(h)), update: movingMoments(mm, mv, h, 0, { momentum: 0.8 }) };
    };
    const a = build('a'), b = build('b');
    const pooled = compile(accumulate(sgd({ lr: 0.01 }), { steps: 4 }), s, { loss: a.loss, inputs: [a.x], updates: [a.update] });
    const whole = compile(sgd({ lr: 0.01 }), s, { loss: b.loss, inputs: [b.x], updates: [b.update] });
    for (let outer = 0; outer < 2; outer++) {
      const part = rows.slice(outer * 12, outer * 12 + 12);
      const before = values(await s.getValue(a.mm));
      for (let k = 0; k < 4; k++) {
        await pooled.step([part.slice(k * 3, k * 3 + 3)]);
        // Unchanged until the 4th mini-batch of the outer step.
        if (k < 3) expect(values(await s.getValue(a.mm))).toEqual(before);
      }
      expect(values(await s.getValue(a.mm))).not.toEqual(before);
      await whole.step([part]);
      for (const [p, q] of [[a.mm, b.mm], [a.mv, b.mv]] as const) {
        const [pv, qv] = [values(await s.getValue(p)), values(await s.getValue(q))];
        pv.forEach((v, i) => expect(Math.abs(v - qv[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(qv[i]!))));
      }
    }
    await s.dispose();
  });
});

describe('a batch norm layer under accumulate', () => {
  it('moves its moving statistics once per outer step, as one batch of all the mini-batches (≤ 1e-5)', async () => {
    const s = await Session.create({ backend: 'onnx' });
    const rows = Array.from({ length: 16 }, (_, i) => [Math.sin(i) * 2 + 3, Math.cos(i * 1.3) - 7, i / 4]);
    const build = (name: string) => {
      const x = placeholder([null, 3], { name: `bx${name}` });
      const bn = nn.batchNorm({ momentum: 0.7, name: `bn${name}` });
      const loss = mean(square(bn.apply(x)));
      return { x, bn, loss };
    };
    const a = build('a'), b = build('b');
    const pooled = compile(accumulate(sgd({ lr: 0.1 }), { steps: 4 }), s, { loss: a.loss, inputs: [a.x], updates: a.bn.updates });
    const whole = compile(sgd({ lr: 0.1 }), s, { loss: b.loss, inputs: [b.x], updates: b.bn.updates });
    for (let k = 0; k < 4; k++) await pooled.step([rows.slice(k * 4, k * 4 + 4)]);
    await whole.step([rows]);
    for (const [p, q] of [[a.bn.movingMean!, b.bn.movingMean!], [a.bn.movingVariance!, b.bn.movingVariance!]] as const) {
      const [pv, qv] = [values(await s.getValue(p)), values(await s.getValue(q))];
      expect(pv).not.toEqual([0, 0, 0]);
      pv.forEach((v, i) => expect(Math.abs(v - qv[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(qv[i]!))));
    }
    await s.dispose();
  });
});
