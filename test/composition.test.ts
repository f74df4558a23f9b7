// Composition with soft batch and training: accumulate(chain(…)) clips and decays once per outer step on the
// accumulated gradient and equals one big batch; `weight` makes token-weighted mini-batches equal one big batch;
// reduceOnPlateau drives a real TrainStep's lr through fit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accumulate, add, addDecayedWeights, chain, clipByGlobalNorm, compile, constant, div, fit, kernelsOnly, matMul, mean, mul, placeholder,
  reduceOnPlateau, sam, scaleByAdam, scaleByLearningRate, Session, sgd, square, sub, sum, type TrainEvent, type TransformLike, variable,
} from '../src/index.js';
import { BACKENDS, expectClose, rng, values } from './helpers.js';

const ROWS = 16;
const MINI = 4;
const r = rng(99);
const X: number[][] = Array.from({ length: ROWS }, () => [r() * 2 - 1, r() * 2 - 1, r() * 2 - 1]);
const Y: number[][] = X.map((x) => [3 * x[0]! - 2 * x[1]! + x[2]! + 0.5]);
// Per-row weights (a padding mask): mini-batches hold 4, 1, 3 and 2 real rows.
const M: number[][] = [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1].map((m) => [m]);

function regression() {
  const w = variable([[0.1], [0.2], [-0.1]], { name: 'w' });
  const b = variable([0], { name: 'b' });
  const x = placeholder([null, 3], { name: 'x' });
  const y = placeholder([null, 1], { name: 'y' });
  const m = placeholder([null, 1], { name: 'm' });
  const err = square(sub(add(matMul(x, w), b), y));
  // Mean over real rows: Σ m·e / Σ m (a token-normalised loss).
  const weighted = div(sum(mul(m, err)), sum(m));
  return { w, b, x, y, m, loss: mean(err), weighted, count: sum(m) };
}
const slice = (from: number, to: number) => [X.slice(from, to), Y.slice(from, to), M.slice(from, to)];

describe.each(BACKENDS)('composition under accumulate, on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  const clippedAdamW = (): TransformLike => chain(clipByGlobalNorm(0.5), scaleByAdam(), addDecayedWeights({ rate: 0.1, mask: kernelsOnly }), scaleByLearningRate(0.05));

  it('accumulate(chain(clip, adam, decay, lr), 4) equals one batch of 16 rows: clipped once, on the accumulated gradient', async () => {
    const big = regression();
    const soft = regression();
    const plain = regression();
    const bigStep = compile(clippedAdamW(), s, { loss: big.loss, inputs: [big.x, big.y] });
    const softStep = compile(accumulate(clippedAdamW(), { steps: MINI }), s, { loss: soft.loss, inputs: [soft.x, soft.y] });
    const plainStep = compile(chain(scaleByAdam(), addDecayedWeights({ rate: 0.1, mask: kernelsOnly }), scaleByLearningRate(0.05)), s, { loss: plain.loss, inputs: [plain.x, plain.y] });
    for (let outer = 0; outer < 3; outer++) {
      await bigStep.step([X, Y]);
      await plainStep.step([X, Y]);
      for (let j = 0; j < ROWS / MINI; j++) await softStep.step([X.slice(j * MINI, (j + 1) * MINI), Y.slice(j * MINI, (j + 1) * MINI)]);
      expectClose(values(await s.getValue(soft.w)), values(await s.getValue(big.w)), 1e-5, 1e-7);
      expectClose(values(await s.getValue(soft.b)), values(await s.getValue(big.b)), 1e-5, 1e-7);
    }
    // The clip was active (the unclipped chain went elsewhere), and the inner counter counts outer steps.
    const unclipped = values(await s.getValue(plain.w));
    const clipped = values(await s.getValue(big.w));
    // (Adam is nearly scale-free, so the clip shows only through the moments: 2.7e-4, twenty times the tolerance.)
    expect(Math.max(...unclipped.map((v, i) => Math.abs(v - clipped[i]!)))).toBeGreaterThan(1e-4);
    const counter = softStep.stateVariables.find((v) => /^chain\/iterations/.test(v.name))!;
    expect(values(await s.getValue(counter))).toEqual([3]);
  });

  it("accumulate's weight: token-weighted mini-batches equal one big batch of Σ m·e / Σ m (and the plain mean does not)", async () => {
    const big = regression();
    const soft = regression();
    const naive = regression();
    const bigStep = compile(sgd({ lr: 0.1 }), s, { loss: big.weighted, inputs: [big.x, big.y, big.m] });
    const softStep = compile(accumulate(sgd({ lr: 0.1 }), { steps: MINI, weight: soft.count }), s, { loss: soft.weighted, inputs: [soft.x, soft.y, soft.m] });
    const naiveStep = compile(accumulate(sgd({ lr: 0.1 }), { steps: MINI }), s, { loss: naive.weighted, inputs: [naive.x, naive.y, naive.m] });
    for (let outer = 0; outer < 2; outer++) {
      await bigStep.step([X, Y, M]);
      for (let j = 0; j < ROWS / MINI; j++) {
        await softStep.step(slice(j * MINI, (j + 1) * MINI));
        await naiveStep.step(slice(j * MINI, (j + 1) * MINI));
      }
      expectClose(values(await s.getValue(soft.w)), values(await s.getValue(big.w)), 1e-5, 1e-7);
      expectClose(values(await s.getValue(soft.b)), values(await s.getValue(big.b)), 1e-5, 1e-7);
    }
    const a = values(await s.getValue(naive.w));
    const e = values(await s.getValue(big.w));
    expect(Math.max(...a.map((v, i) => Math.abs(v - e[i]!)))).toBeGreaterThan(1e-3);
    expect(() => accumulate(sgd(), { steps: 2, weight: soft.x })).toThrow(/accumulate: weight must be a float32 scalar tensor \(one weight per mini-batch\), got float32 \[\?,3\]|accumulate: weight must be a float32 scalar tensor/);
  });
});

describe.each(BACKENDS)('a chain inside multi-run optimizers, on %s', (backend) => {
  it('sam({inner: chain(clipByGlobalNorm, lr)}): the chain acts on the gradient at the perturbed point; lr reported', async () => {
    const s = await Session.create({ backend });
    try {
      // L = ½Σ a·p², a = [1, 4]: g = a·p.
      const a = [1, 4];
      const p = variable([1, -2], { name: 'p' });
      const loss = mul(0.5, sum(mul(constant(a), square(p))));
      const train = compile(sam({ inner: chain(clipByGlobalNorm(0.5), scaleByLearningRate(0.1)), rho: 0.05 }), s, { loss, inputs: [] });
      let q = [1, -2];
      for (let k = 0; k < 3; k++) {
        const r = await train.step([]);
        expect(r.runs).toBe(2);
        expect(r.lr).toBe(Math.fround(0.1));
        const g = q.map((v, i) => a[i]! * v);
        const n = Math.hypot(...g);
        const at = q.map((v, i) => v + (0.05 * g[i]!) / (n + 1e-12));
        const g2 = at.map((v, i) => a[i]! * v);
        const n2 = Math.hypot(...g2);
        const f = n2 < 0.5 ? 1 : 0.5 / n2;
        q = q.map((v, i) => v - 0.1 * f * g2[i]!);
        expectClose(values(await s.getValue(p)), q);
      }
    } finally {
      await s.dispose();
    }
  });
});

describe.each(BACKENDS)('reduceOnPlateau on a real TrainStep, on %s', (backend) => {
  it('reduces the injected lr at each plateau; the steps after a reduction use the new lr', async () => {
    const s = await Session.create({ backend });
    try {
      // At the optimum from the start: the loss never improves, so every epoch after the first is a plateau.
      const w = variable([[0]], { name: 'w' });
      const x = placeholder([null, 1]);
      const y = placeholder([null, 1]);
      const loss = mean(square(sub(matMul(x, w), y)));
      const train = compile(sgd({ lr: 0.1 }), s, { loss, inputs: [x, y] });
      const xs = Array.from({ length: 32 }, (_, i) => [i / 32]);
      const ys = xs.map(() => [0]);
      const reductions: number[] = [];
      const events: TrainEvent[] = [];
      await new Promise<void>((done, fail) => fit(train, [xs, ys], { epochs: 4, batchSize: 4, shuffle: false })
        .pipe(reduceOnPlateau(train, { monitor: 'loss', patience: 1, factor: 0.5, onReduce: (e) => reductions.push(e.epoch) }))
        .subscribe({ next: (e) => events.push(e), complete: done, error: fail }));
      expect(reductions).toEqual([1, 2, 3]);
      expect(await train.getHyperparameter('lr')).toBe(Math.fround(0.0125));
      const lrs = events.filter((e) => e.type === 'step').map((e) => (e as { lr?: number }).lr!);
      expect(lrs.length).toBe(32);
      // Non-increasing, from 0.1; the last step of epoch 3 ran at the rate set after epoch 2.
      lrs.forEach((v, i) => i === 0 || expect(v).toBeLessThanOrEqual(lrs[i - 1]!));
      expect(lrs[0]).toBe(Math.fround(0.1));
      expect(lrs.at(-1)).toBe(Math.fround(0.025));
    } finally {
      await s.dispose();
    }
  });
});
