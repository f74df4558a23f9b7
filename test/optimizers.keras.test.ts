import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adagrad, adam, adamw, add, compile, constant, div, mul, type Optimizer, rmsprop, rungeKutta, Session, sgd, square,
  sum, SymflowError, tableaux, variable,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

/** L = 0.5·Σ a·p² with a = [1, 4], so g = a·p; L(p0) = 0.5·(1·1 + 4·4) = 8.5 at p0 = [1, −2]. */
function quadratic(init: number[] = [1, -2]) {
  const p = variable(init, { name: 'p' });
  const a = constant([1, 4]);
  const loss = mul(0.5, sum(mul(a, square(p))));
  return { p, a, loss };
}

/** Matches a step counter whatever suffix the process-wide unique naming added (`adam/iterations_3`). */
const isCounterOf = (owner: string) => (name: string) => new RegExp(`^${owner}/iterations(_\\d+)?$`).test(name);

interface KerasCase {
  name: string;
  make: () => Optimizer;
  step1?: number[];
  step3: number[];
}

// Expected values computed by hand in float64 from the Keras 2.2.4 formulas (p0 = [1, −2], a = [1, 4]).
const CASES: KerasCase[] = [
  { name: 'sgd lr 0.1', make: () => sgd({ lr: 0.1 }), step1: [0.9, -1.2], step3: [0.729, -0.432] },
  { name: 'sgd momentum 0.9', make: () => sgd({ lr: 0.1, momentum: 0.9 }), step1: [0.9, -1.2], step3: [0.486, 1.08] },
  { name: 'sgd nesterov', make: () => sgd({ lr: 0.1, momentum: 0.9, nesterov: true }), step1: [0.81, -0.48], step3: [0.327321, 0.866592] },
  { name: 'sgd momentum 0.5 decay 0.5', make: () => sgd({ lr: 0.1, momentum: 0.5, decay: 0.5 }), step1: [0.9, -1.2], step3: [0.6955, -0.024] },
  { name: 'adam lr 0.1', make: () => adam({ lr: 0.1 }), step1: [0.900000316, -1.90000004], step3: [0.701587015, -1.70062348] },
  { name: 'adam decay 0.25', make: () => adam({ lr: 0.1, decay: 0.25 }), step3: [0.754337999, -1.75373396] },
  { name: 'adam lr 1', make: () => adam({ lr: 1.0 }), step1: [3.16226766e-6, -1.0000004], step3: [-0.744375665, 0.671808555] },
  // Differs from plain adam at step 3: vhat = max(vhat, v) keeps the larger second moment.
  { name: 'adam amsgrad lr 1', make: () => adam({ lr: 1.0, amsgrad: true }), step3: [-0.744230078, 0.671779219] },
  { name: 'adamw', make: () => adamw({ lr: 0.1, weightDecay: 0.01 }), step1: [0.899000316, -1.89800004], step3: [0.698911924, -1.69494461] },
  { name: 'rmsprop', make: () => rmsprop({ lr: 0.1 }), step1: [0.683772334, -1.68377225], step3: [0.369180696, -1.30871789] },
  { name: 'rmsprop decay 0.5', make: () => rmsprop({ lr: 0.1, decay: 0.5 }), step3: [0.489204349, -1.4584665] },
  { name: 'adagrad', make: () => adagrad({ lr: 0.1 }), step1: [0.90000001, -1.9], step3: [0.780456199, -1.77582152] },
  { name: 'adagrad decay 0.5', make: () => adagrad({ lr: 0.1, decay: 0.5 }), step3: [0.828575053, -1.82619233] },
];

describe.each(BACKENDS)('Keras 2.2.4 optimizer numerics on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it.each(CASES)('$name: p after steps 1 and 3 (rtol 1e-5, atol 1e-6)', async ({ make, step1, step3 }) => {
    const { p, loss } = quadratic();
    const train = compile(make(), s, { loss, inputs: [] });
    expect(train.runsPerStep).toBe(1);
    expect(train.params).toEqual([p]);
    const r1 = await train.step([]);
    expect(r1.loss).toBe(8.5);
    expect(r1.runs).toBe(1);
    expect(r1.outputs).toEqual([]);
    if (step1) expectClose(values(await s.getValue(p)), step1);
    await train.step([]);
    await train.step([]);
    expectClose(values(await s.getValue(p)), step3);
  });

  it("Adam's iterations counter counts steps (int32) and the loss is measured before the step", async () => {
    const { p, loss } = quadratic();
    const train = compile(adam({ lr: 0.1 }), s, { loss, inputs: [] });
    const counters = train.stateVariables.filter((v) => isCounterOf('adam')(v.name));
    expect(counters).toHaveLength(1);
    const it0 = counters[0]!;
    expect(it0.dtype).toBe('int32');
    // Slots m and v for p, the counter and the lr hyperparameter.
    expect(train.stateVariables.map((v) => v.name.replace(/_\d+$/, '').replace(/\/p(_\d+)?$/, '/p')).sort()).toEqual(['adam/iterations', 'adam/lr', 'adam/m/p', 'adam/v/p']);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push((await train.step([])).loss);
    expect(losses[0]).toBe(8.5);
    // Step 2 reports the loss at p after step 1: 0.5·(0.900000316² + 4·1.90000004²).
    expectClose([losses[1]!], [0.5 * (0.900000316 ** 2 + 4 * 1.90000004 ** 2)]);
    const counter = await s.getValue(it0);
    expect(counter.dtype).toBe('int32');
    expect(values(counter)).toEqual([3]);
    expectClose(values(await s.getValue(p)), [0.701587015, -1.70062348]);
  });

  it('a schedule lr(t) = 0.1 / (1 + t) reads the step counter (0 on the first step)', async () => {
    const { p, loss } = quadratic();
    const train = compile(sgd({ lr: (t) => div(0.1, add(1, t)) }), s, { loss, inputs: [] });
    await train.step([]);
    const p1 = values(await s.getValue(p));
    expectClose(p1, [0.9, -1.2]);
    await train.step([]);
    // Second step uses lr = 0.1 / 2: p2 = p1 − 0.05·a·p1.
    expectClose(values(await s.getValue(p)), [p1[0]! - 0.05 * 1 * p1[0]!, p1[1]! - 0.05 * 4 * p1[1]!]);
    expectClose(values(await s.getValue(p)), [0.855, -0.96]);
  });

  it('getUpdates in session.function does what compile does', async () => {
    for (const { make, step3 } of [CASES[0]!, CASES[2]!, CASES[4]!]) {
      const { p, loss } = quadratic();
      const f = s.function({ outputs: [loss], updates: make().getUpdates(loss, [p]) });
      const [l1] = await f();
      expect(values(l1!)).toEqual([8.5]);
      await f();
      await f();
      expectClose(values(await s.getValue(p)), step3);
    }
  });

  it('getUpdates validates its arguments', () => {
    const { p, loss } = quadratic();
    expect(() => sgd().getUpdates(loss, [])).toThrow(SymflowError);
    expect(() => sgd().getUpdates(loss, [p, p])).toThrow(/twice/);
    expect(() => sgd().getUpdates(mul(p, 2), [p])).toThrow(/float32 scalar/);
  });
});

describe('learning-rate validation', () => {
  const bad = [-0.1, NaN, Infinity];
  it.each(bad)('lr = %s is refused by sgd, adam, adamw, rmsprop, adagrad and rungeKutta', (lr) => {
    const makers: (() => unknown)[] = [
      () => sgd({ lr }), () => adam({ lr }), () => adamw({ lr }), () => rmsprop({ lr }), () => adagrad({ lr }),
      () => rungeKutta({ tableau: tableaux.rk4, lr }),
    ];
    for (const make of makers) {
      expect(make).toThrow(SymflowError);
      expect(make).toThrow(/lr must be a finite number/);
    }
  });

  it('other hyper-parameters are checked too', () => {
    expect(() => sgd({ momentum: -1 })).toThrow(/momentum/);
    expect(() => adam({ beta1: 1.5 })).toThrow(/beta1/);
    expect(() => rmsprop({ rho: NaN })).toThrow(/rho/);
    expect(() => sgd({ decay: -1 })).toThrow(/decay/);
    expect(() => adamw({ weightDecay: -0.01 })).toThrow(/weightDecay/);
  });
});
