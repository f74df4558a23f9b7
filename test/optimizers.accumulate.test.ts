import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accumulate, adam, compile, isHyperparameter, sam, matMul, mean, type Optimizer, placeholder, rmsprop, Session, sgd, square,
  sub, SymflowError, type TrainStep, type Variable, variable,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, rng, values } from './helpers.js';

const ROWS = 16;
const MINI = 4;
const r = rng(20240611);
const X: number[][] = Array.from({ length: ROWS }, () => [r() * 2 - 1, r() * 2 - 1, r() * 2 - 1]);
const Y: number[][] = X.map((x) => [x[0]! - 2 * x[1]! + 0.5 * x[2]! + 0.3 + 0.2 * (r() - 0.5)]);
const W0 = [[0.1], [0.2], [-0.1]];
const rows = (from: number, to: number): [number[][], number[][]] => [X.slice(from, to), Y.slice(from, to)];

/** Linear regression with a mean-reduced loss, so the gradient of a batch is the mean of its mini-batches'. */
function regression() {
  const w = variable(W0, { name: 'w' });
  const x = placeholder([null, 3], { name: 'x' });
  const y = placeholder([null, 1], { name: 'y' });
  const loss = mean(square(sub(matMul(x, w), y)));
  return { w, x, y, loss };
}

/** Vector-relative closeness: max|actual − expected| ≤ rtol·max|expected| (float32 sums in another order). */
function expectRelClose(actual: number[], expected: number[], rtol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  const scale = Math.max(...expected.map(Math.abs));
  const err = Math.max(...actual.map((a, i) => Math.abs(a - expected[i]!)));
  expect(err, `max |difference| ${err} vs ${rtol}·${scale}: got [${actual}], expected [${expected}]`).toBeLessThanOrEqual(rtol * scale);
}

async function readBits(s: Session, vars: readonly Variable[]): Promise<number[][]> {
  return Promise.all(vars.map(async (v) => bits(await s.getValue(v))));
}

/** The inner optimizer's state: everything but soft batch's own accumulators and counter. */
const innerState = (t: TrainStep) => t.stateVariables.filter((v) => !v.name.startsWith('accumulate/'));
const accumulators = (t: TrainStep) => t.stateVariables.filter((v) => v.name.startsWith('accumulate/acc/'));
const countOf = (t: TrainStep) => t.stateVariables.find((v) => /^accumulate\/count(_\d+)?$/.test(v.name))!;
const adamCounter = (t: TrainStep) => t.stateVariables.find((v) => /^adam\/iterations(_\d+)?$/.test(v.name))!;

const INNER: { name: string; make: () => Optimizer }[] = [
  { name: 'sgd', make: () => sgd({ lr: 0.1 }) },
  { name: 'sgd momentum', make: () => sgd({ lr: 0.1, momentum: 0.9 }) },
  { name: 'sgd nesterov', make: () => sgd({ lr: 0.1, momentum: 0.9, nesterov: true }) },
  { name: 'adam', make: () => adam({ lr: 0.05 }) },
  { name: 'rmsprop', make: () => rmsprop({ lr: 0.01 }) },
];

describe.each(BACKENDS)('soft batch (accumulate) on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(INNER)('$name: 4 mini-batches of 4 rows = one batch of 16 rows, over 3 outer steps (1e-5 relative, max-norm)', async ({ name, make }) => {
    const big = regression();
    const soft = regression();
    const bigStep = compile(make(), s, { loss: big.loss, inputs: [big.x, big.y] });
    const softStep = compile(accumulate(make(), { steps: MINI }), s, { loss: soft.loss, inputs: [soft.x, soft.y] });
    expect(softStep.runsPerStep).toBe(1);
    expect(softStep.params).toEqual([soft.w]);
    const inner = innerState(softStep);
    expect(inner.length).toBe(bigStep.stateVariables.length);
    for (let outer = 1; outer <= 3; outer++) {
      await bigStep.step(rows(0, ROWS));
      for (let j = 0; j < ROWS / MINI; j++) {
        const wBefore = await readBits(s, [soft.w]);
        const innerBefore = await readBits(s, inner);
        const res = await softStep.step(rows(j * MINI, (j + 1) * MINI));
        expect(res.runs).toBe(1);
        const wAfter = await readBits(s, [soft.w]);
        const innerAfter = await readBits(s, inner);
        const count = values(await s.getValue(countOf(softStep)));
        if (j < ROWS / MINI - 1) {
          // Accumulate only: parameters and the inner optimizer's state are bit-identical.
          expect(wAfter).toEqual(wBefore);
          expect(innerAfter).toEqual(innerBefore);
          expect(count).toEqual([j + 1]);
        } else {
          // The N-th mini-batch applies: the parameters and every inner state variable change, the accumulators reset.
          expect(wAfter).not.toEqual(wBefore);
          // (A hyperparameter, the lr, is state that only setHyperparameter changes.)
          inner.forEach((v, i) => isHyperparameter(v) || expect(innerAfter[i], `${v.name} changes on the apply step`).not.toEqual(innerBefore[i]));
          expect(count).toEqual([0]);
          for (const a of accumulators(softStep)) expect(values(await s.getValue(a))).toEqual([0, 0, 0]);
        }
      }
      expectRelClose(values(await s.getValue(soft.w)), values(await s.getValue(big.w)));
    }
    // The parameters really moved (the comparison is not vacuous).
    expect(values(await s.getValue(big.w))).not.toEqual(W0.flat());
    if (name === 'adam') expect(values(await s.getValue(adamCounter(softStep)))).toEqual([3]);
  });

  it("flush with remainder 'apply' applies the mean of the k < N held mini-batches", async () => {
    const big = regression();
    const soft = regression();
    const bigStep = compile(adam({ lr: 0.05 }), s, { loss: big.loss, inputs: [big.x, big.y] });
    const softStep = compile(accumulate(adam({ lr: 0.05 }), { steps: MINI }), s, { loss: soft.loss, inputs: [soft.x, soft.y] });
    // One full group, then a ragged group of 2 mini-batches (rows 0–7).
    await bigStep.step(rows(0, ROWS));
    for (let j = 0; j < MINI; j++) await softStep.step(rows(j * MINI, (j + 1) * MINI));
    await softStep.step(rows(0, 4));
    await softStep.step(rows(4, 8));
    const wHeld = await readBits(s, [soft.w]);
    expect(values(await s.getValue(countOf(softStep)))).toEqual([2]);
    expect(await softStep.flush()).toBe(true);
    expect(await readBits(s, [soft.w])).not.toEqual(wHeld);
    await bigStep.step(rows(0, 8));
    expectRelClose(values(await s.getValue(soft.w)), values(await s.getValue(big.w)));
    expect(values(await s.getValue(adamCounter(softStep)))).toEqual([2]);
    expect(values(await s.getValue(countOf(softStep)))).toEqual([0]);
    for (const a of accumulators(softStep)) expect(values(await s.getValue(a))).toEqual([0, 0, 0]);
    // Nothing pending now: flush resolves false and changes nothing.
    const everything = [...softStep.params, ...softStep.stateVariables];
    const before = await readBits(s, everything);
    expect(await softStep.flush()).toBe(false);
    expect(await readBits(s, everything)).toEqual(before);
  });

  it("flush with remainder 'drop' discards the held mini-batches", async () => {
    const soft = regression();
    const softStep = compile(accumulate(sgd({ lr: 0.1, momentum: 0.9 }), { steps: MINI, remainder: 'drop' }), s, {
      loss: soft.loss, inputs: [soft.x, soft.y],
    });
    await softStep.step(rows(0, 4));
    await softStep.step(rows(4, 8));
    await softStep.step(rows(8, 12));
    const paramsBefore = await readBits(s, softStep.params);
    const innerBefore = await readBits(s, innerState(softStep));
    expect(values(await s.getValue(countOf(softStep)))).toEqual([3]);
    expect(values(await s.getValue(accumulators(softStep)[0]!)).some((v) => v !== 0)).toBe(true);
    expect(await softStep.flush()).toBe(true);
    expect(await readBits(s, softStep.params)).toEqual(paramsBefore);
    expect(await readBits(s, innerState(softStep))).toEqual(innerBefore);
    expect(values(await s.getValue(countOf(softStep)))).toEqual([0]);
    for (const a of accumulators(softStep)) expect(values(await s.getValue(a))).toEqual([0, 0, 0]);
    expect(await softStep.flush()).toBe(false);
  });

  it('flush with nothing pending resolves false and changes nothing (fresh, and for an optimizer without flush)', async () => {
    const soft = regression();
    const softStep = compile(accumulate(adam({ lr: 0.05 }), { steps: MINI }), s, { loss: soft.loss, inputs: [soft.x, soft.y] });
    const everything = [...softStep.params, ...softStep.stateVariables];
    const before = await readBits(s, everything);
    expect(await softStep.flush()).toBe(false);
    expect(await readBits(s, everything)).toEqual(before);
    const plain = regression();
    const plainStep = compile(sgd({ lr: 0.1 }), s, { loss: plain.loss, inputs: [plain.x, plain.y] });
    expect(await plainStep.flush()).toBe(false);
    expect(values(await s.getValue(plain.w))).toEqual(values(await s.getValue(soft.w)));
  });

  it('sam over a soft batch: flush reports whether a group was pending, as without sam', async () => {
    const soft = regression();
    const step = compile(sam({ inner: accumulate(sgd({ lr: 0.1 }), { steps: MINI }), rho: 0.01 }), s, { loss: soft.loss, inputs: [soft.x, soft.y] });
    expect(await step.flush()).toBe(false);
    await step.step(rows(0, 4));
    const held = await readBits(s, step.params);
    expect(await step.flush()).toBe(true);
    expect(await readBits(s, step.params)).not.toEqual(held);
    const after = await readBits(s, [...step.params, ...step.stateVariables]);
    expect(await step.flush()).toBe(false);
    expect(await readBits(s, [...step.params, ...step.stateVariables])).toEqual(after);
  });

  it('steps = 1 applies on every mini-batch, like the inner optimizer alone', async () => {
    const a = regression();
    const b = regression();
    const plain = compile(sgd({ lr: 0.1, momentum: 0.9 }), s, { loss: a.loss, inputs: [a.x, a.y] });
    const one = compile(accumulate(sgd({ lr: 0.1, momentum: 0.9 }), { steps: 1 }), s, { loss: b.loss, inputs: [b.x, b.y] });
    for (let j = 0; j < 3; j++) {
      await plain.step(rows(j * MINI, (j + 1) * MINI));
      await one.step(rows(j * MINI, (j + 1) * MINI));
    }
    expectClose(values(await s.getValue(b.w)), values(await s.getValue(a.w)), 1e-6, 1e-7);
  });
});

describe('accumulate settings', () => {
  it.each([0, 1.5, -2, NaN, undefined])('steps = %s is refused', (steps) => {
    const make = () => accumulate(sgd(), { steps: steps as number });
    expect(make).toThrow(SymflowError);
    expect(make).toThrow(/steps must be an integer >= 1/);
  });

  it('refuses a bad remainder and a non-single-run inner optimizer', () => {
    expect(() => accumulate(sgd(), { steps: 2, remainder: 'keep' as 'apply' })).toThrow(/remainder/);
    expect(() => accumulate({} as Optimizer, { steps: 2 })).toThrow(/inner must be a single-run optimizer/);
  });
});
