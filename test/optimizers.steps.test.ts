import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accumulate, adam, add, compile, cond, constant, greater, heun, less, logicalAnd, matMul, mul, placeholder,
  reshape, rungeKutta, sam, Session, type SessionFunction, sgd, square, sub, sum, SymflowError, tableaux, type TrainStep,
  type Variable, variable,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, values } from './helpers.js';

/** L = 0.5·Σ a·p² with a = [1, 4]. */
function quadratic(init: number[]) {
  const p = variable(init, { name: 'p' });
  const loss = mul(0.5, sum(mul(constant([1, 4]), square(p))));
  return { p, loss };
}

/** Every parameter and state variable of a train step, bit-for-bit (reading also initialises them). */
async function stateBits(s: Session, train: TrainStep): Promise<number[][]> {
  const all: Variable[] = [...train.params, ...train.stateVariables];
  return Promise.all(all.map(async (v) => bits(await s.getValue(v))));
}

/**
 * Compiles with `s.function` wrapped, so every session run of the resulting train step is logged as 'ok' or
 * 'fail' (to show which run of a multi-run step failed, and that earlier ones had already applied their updates).
 */
function compileLogged(s: Session, make: () => TrainStep): { train: TrainStep; log: string[] } {
  const log: string[] = [];
  const original = s.function;
  s.function = ((spec) => {
    const f = original.call(s, spec);
    const logged = async (v?: Parameters<SessionFunction>[0]) => {
      try {
        const out = await f(v);
        log.push('ok');
        return out;
      } catch (e) {
        log.push('fail');
        throw e;
      }
    };
    return Object.assign(logged, { inputs: f.inputs, outputs: f.outputs, kernelCount: f.kernelCount });
  }) as Session['function'];
  try {
    return { train: make(), log };
  } finally {
    Reflect.deleteProperty(s, 'function');
  }
}

/**
 * L = 0.5·p² plus a term that fails at run time only while p lies in (lo, hi): its branch reshapes the 4 fed
 * values to [5]. cond is lazy (and so is its gradient), so outside the band the term costs nothing. Feeding 5
 * zeros instead makes the term (and its gradient) zero everywhere.
 */
function banded(lo: number, hi: number) {
  const p = variable(1, { name: 'scalarP' });
  const x = placeholder([null], { name: 'trap' });
  const trap = cond(logicalAnd(greater(p, lo), less(p, hi)), () => mul(p, sum(reshape(x, [5]))), () => 0);
  const loss = add(mul(0.5, square(p)), trap);
  return { p, x, loss };
}

const FOUR = [1, 2, 3, 4];
const FIVE_ZEROS = [0, 0, 0, 0, 0];

describe.each(BACKENDS)('multi-run steps on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('sam(sgd): one step by hand (ascent to p + ρ·g/‖g‖, descent from p with the gradient there)', async () => {
    const { p, loss } = quadratic([1, 2]);
    const train = compile(sam({ inner: sgd({ lr: 0.1 }), rho: 0.5 }), s, { loss, inputs: [] });
    expect(train.runsPerStep).toBe(2);
    const r = await train.step([]);
    expect(r.runs).toBe(2);
    expect(r.loss).toBe(8.5);
    // g = [1, 8], ‖g‖ = √65, p + e = [1.0620174, 2.4961389], g' = [1.0620174, 9.9845556], p − 0.1·g'.
    const n = Math.sqrt(65);
    const e = [1 + 0.5 / n, 2 + 0.5 * 8 / n];
    const expected = [1 - 0.1 * e[0]!, 2 - 0.1 * 4 * e[1]!];
    expectClose(expected, [0.89379826, 1.00154444], 1e-7, 0);
    expectClose(values(await s.getValue(p)), expected);
  });

  it('sam(adam) runs and reduces the loss over 20 steps', async () => {
    const { p, loss } = quadratic([1, 2]);
    const train = compile(sam({ inner: adam({ lr: 0.1 }), rho: 0.05 }), s, { loss, inputs: [] });
    const losses: number[] = [];
    for (let i = 0; i < 20; i++) losses.push((await train.step([])).loss);
    expect(losses[0]).toBe(8.5);
    const pv = values(await s.getValue(p));
    const final = 0.5 * (pv[0]! ** 2 + 4 * pv[1]! ** 2);
    expect(final).toBeLessThan(0.1 * losses[0]!);
    expect(losses[19]!).toBeLessThan(losses[10]!);
    expect(losses[10]!).toBeLessThan(losses[0]!);
    // adam's counter counts SAM steps.
    const counter = train.stateVariables.find((v) => /^adam\/iterations(_\d+)?$/.test(v.name))!;
    expect(values(await s.getValue(counter))).toEqual([20]);
  });

  // sam relies on the inner update to move every parameter back from p + e to p, also on accumulate-only steps.
  it('sam(accumulate(sgd)) leaves the parameters at p on accumulate-only steps', async () => {
    const { p, loss } = quadratic([1, 2]);
    const train = compile(sam({ inner: accumulate(sgd({ lr: 0.1 }), { steps: 2 }), rho: 0.5 }), s, { loss, inputs: [] });
    expect((await train.step([])).loss).toBe(8.5);
    expect(values(await s.getValue(p))).toEqual([1, 2]);
    // Both mini-batches see the same g' at p + e, so the apply step is the plain sam(sgd) step.
    expect((await train.step([])).loss).toBe(8.5);
    expectClose(values(await s.getValue(p)), [0.89379826, 1.00154444]);
  });

  it('StepResult.outputs are measured at the parameters the step started from', async () => {
    const cases = [
      () => sgd({ lr: 0.1 }),
      () => heun({ lr: 0.1 }),
      () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-4 } }),
      () => sam({ inner: adam({ lr: 0.1 }) }),
    ];
    for (const make of cases) {
      const { p, loss } = quadratic([1, 2]);
      const train = compile(make(), s, { loss, inputs: [], outputs: [p, mul(p, 10)] });
      const r1 = await train.step([]);
      expect(r1.outputs.map(values)).toEqual([[1, 2], [10, 20]]);
      const after = values(await s.getValue(p));
      expect(after).not.toEqual([1, 2]);
      const r2 = await train.step([]);
      expect(r2.outputs.map(values)[0]).toEqual(after);
      expect(r2.loss).toBeCloseTo(0.5 * (after[0]! ** 2 + 4 * after[1]! ** 2), 5);
    }
  });

  it('sam refuses a multi-run inner optimizer and a negative rho', () => {
    expect(() => sam({ inner: heun({ lr: 0.1 }) as never })).toThrow(/single-run/);
    expect(() => sam({ inner: sgd(), rho: -1 })).toThrow(/rho/);
  });

  it('heun: a failure in run 2 leaves parameters and state bit-identical, and leaks nothing', async () => {
    // lr = 1, p0 = 1: run 1 is at p = 1, run 2 at p = 1 − 1·1 = 0, inside the band (−0.5, 0.5).
    const { p, x, loss } = banded(-0.5, 0.5);
    const { train, log } = compileLogged(s, () => compile(heun({ lr: 1 }), s, { loss, inputs: [x] }));
    const before = await stateBits(s, train);
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(log).toEqual(['ok', 'fail']);
    expect(await stateBits(s, train)).toEqual(before);
    // The first failure cached the failing branch's constants; a second one must leave the tensor count flat.
    const count = s.numTensors();
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(s.numTensors()).toBe(count);
    expect(await stateBits(s, train)).toEqual(before);
    // Data that makes the trap harmless: the step works, p = 1 + 1·(−1 + 0)/2.
    const r = await train.step([FIVE_ZEROS]);
    expect(r.loss).toBe(0.5);
    expect(values(await s.getValue(p))).toEqual([0.5]);
    expect(s.numTensors()).toBe(count);
  });

  it('rk4 fused: a failing stage fails the one run; nothing changes, and a harmless batch gives the 4-run result', async () => {
    const { p, x, loss } = banded(0.6, 0.9);
    const { train, log } = compileLogged(s, () => compile(rungeKutta({ tableau: tableaux.rk4, lr: 1, fused: true }), s, { loss, inputs: [x] }));
    expect(train.runsPerStep).toBe(1);
    const before = await stateBits(s, train);
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(log).toEqual(['fail']);
    expect(await stateBits(s, train)).toEqual(before);
    const r = await train.step([FIVE_ZEROS]);
    expect(r.runs).toBe(1);
    expect(r.loss).toBe(0.5);
    expectClose(values(await s.getValue(p)), [0.375], 1e-6, 0);
  });

  it('rk4: a failure in run 3 leaves parameters and all state bit-identical, and leaks nothing', async () => {
    // L = 0.5·p², k = −p, lr = 1, p0 = 1: stage points 1, 0.5, 0.75, 0.25; only 0.75 lies in (0.6, 0.9).
    const { p, x, loss } = banded(0.6, 0.9);
    const { train, log } = compileLogged(s, () => compile(rungeKutta({ tableau: tableaux.rk4, lr: 1 }), s, { loss, inputs: [x] }));
    expect(train.runsPerStep).toBe(4);
    // k1..k3 and the iterations counter (the parameters hold p0 until the last run).
    expect(train.stateVariables).toHaveLength(4);
    const before = await stateBits(s, train);
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(log).toEqual(['ok', 'ok', 'fail']);
    expect(await stateBits(s, train)).toEqual(before);
    const count = s.numTensors();
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(s.numTensors()).toBe(count);
    expect(await stateBits(s, train)).toEqual(before);
    // A step the trap does not catch: p = 1 + (k1 + 2k2 + 2k3 + k4)/6 = 1 − 3.75/6 = 0.375.
    const r = await train.step([FIVE_ZEROS]);
    expect(r.runs).toBe(4);
    expect(r.loss).toBe(0.5);
    expectClose(values(await s.getValue(p)), [0.375], 1e-6, 0);
    // A second train step on the same parameter, without the trap, still works from there.
    const plain = compile(rungeKutta({ tableau: tableaux.rk4, lr: 1 }), s, { loss: mul(0.5, square(p)), inputs: [] });
    await plain.step([]);
    expectClose(values(await s.getValue(p)), [0.375 * 0.375], 1e-6, 0);
  });

  it('a failing single-run step (sgd with momentum) applies nothing', async () => {
    const { p, x, loss } = banded(0.5, 1.5);
    const train = compile(sgd({ lr: 0.5, momentum: 0.9 }), s, { loss, inputs: [x] });
    const before = await stateBits(s, train);
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(await stateBits(s, train)).toEqual(before);
    const count = s.numTensors();
    await expect(train.step([FOUR])).rejects.toThrow(/reshape: failed at node/);
    expect(s.numTensors()).toBe(count);
    expect(await stateBits(s, train)).toEqual(before);
    await train.step([FIVE_ZEROS]);
    expect(values(await s.getValue(p))).toEqual([0.5]);
  });
});

describe.each(BACKENDS)('compile refuses bad input on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('a loss that is not a float32 scalar', () => {
    const w = variable([1, 2, 3], { name: 'w' });
    const x = placeholder([null, 3], { name: 'x' });
    const perRow = sum(mul(x, w), 1); // [?]
    expect(() => compile(sgd(), s, { loss: perRow, inputs: [x] })).toThrow(SymflowError);
    expect(() => compile(sgd(), s, { loss: perRow, inputs: [x] })).toThrow(/float32 scalar/);
    expect(() => compile(heun({ lr: 0.1 }), s, { loss: perRow, inputs: [x] })).toThrow(/float32 scalar/);
    const counter = variable(1, { name: 'count', dtype: 'int32' });
    expect(() => compile(sgd(), s, { loss: mul(counter, 2), params: [w], inputs: [] })).toThrow(/float32 scalar/);
  });

  it('params with an int32 variable, a repeated variable, or none', () => {
    const { p, loss } = quadratic([1, 2]);
    const n = variable(3, { name: 'n', dtype: 'int32' });
    expect(() => compile(sgd(), s, { loss, params: [p, n], inputs: [] })).toThrow(SymflowError);
    expect(() => compile(sgd(), s, { loss, params: [p, n], inputs: [] })).toThrow(`params[1] '${n.name}' is int32`);
    expect(() => compile(sgd(), s, { loss, params: [p, p], inputs: [] })).toThrow(/twice/);
    expect(() => compile(sgd(), s, { loss, params: [], inputs: [] })).toThrow(/non-empty/);
    expect(() => compile({} as never, s, { loss, inputs: [] })).toThrow(/optimizer must be/);
  });

  it('the wrong number of step values names the inputs', async () => {
    const w = variable([[0.5], [0.5]], { name: 'w' });
    const x = placeholder([null, 2], { name: 'x' });
    const y = placeholder([null, 1], { name: 'y' });
    const loss = sum(square(sub(matMul(x, w), y)));
    const train = compile(sgd({ lr: 0.1 }), s, { loss, inputs: [x, y] });
    await expect(train.step([[[1, 2]]])).rejects.toThrow(SymflowError);
    await expect(train.step([[[1, 2]]])).rejects.toThrow(`expected 2 value(s) ('${x.name}', '${y.name}'), got 1`);
    const r = await train.step([[[1, 2]], [[1]]]);
    expectClose([r.loss], [0.25]);
  });

  it.each(['sgd', 'heun'] as const)('%s: a feed of the wrong shape names the placeholder and changes no state', async (which) => {
    const w = variable([1, -1, 2], { name: 'w' });
    const x = placeholder([null, 3], { name: 'features' });
    const loss = mul(0.5, sum(square(sum(mul(x, w), 1))));
    const opt = which === 'sgd' ? sgd({ lr: 0.1, momentum: 0.9 }) : heun({ lr: 0.1 });
    const train = compile(opt, s, { loss, inputs: [x] });
    const before = await stateBits(s, train);
    const count = s.numTensors();
    await expect(train.step([[[1, 2]]])).rejects.toThrow(`feed '${x.name}': shape mismatch: expected [?,3], got [1,2]`);
    await expect(train.step([[1, 2, 3]])).rejects.toThrow(`feed '${x.name}': rank mismatch`);
    expect(await stateBits(s, train)).toEqual(before);
    expect(s.numTensors()).toBe(count);
    await train.step([[[1, 0, 0]]]);
    expect(values(await s.getValue(w))).not.toEqual([1, -1, 2]);
  });
});
