import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compile, constant as constantTensor, mul, placeholder, type Schedule, schedules, Session, sgd, square, sum, SymflowError,
  type Tensor, variable,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

const { constant, defineSchedule, linear, polynomial, exponentialDecay, cosineDecay, warmupCosineDecay, piecewiseConstant, piecewiseValues, join } = schedules;

/** ½(1 + cos(π·x)): the cosine factor, written out here independently of the code under test. */
const half = (x: number) => 0.5 * (1 + Math.cos(Math.PI * x));

// [schedule, step, expected]: each expected value is the schedule's defining formula worked out at that step.
const HOST: [string, Schedule, number, number][] = [
  ['constant', constant(0.3), 0, 0.3],
  ['constant', constant(0.3), 1e6, 0.3],
  // linear 1 → 0.2 over 8 steps from step 4
  ...([[0, 1], [4, 1], [6, 1 - 0.8 * (2 / 8)], [11, 1 - 0.8 * (7 / 8)], [12, 0.2], [100, 0.2]] as const)
    .map(([n, v]) => ['linear', linear({ init: 1, end: 0.2, steps: 8, begin: 4 }), n, v] as [string, Schedule, number, number]),
  // optax's polynomial_schedule docstring example: 1 → 0.01, power 2, 100 steps from step 5
  ...([[0, 1], [5, 1], [6, 0.99 * 0.99 ** 2 + 0.01], [104, 0.99 * 0.01 ** 2 + 0.01], [105, 0.01], [110, 0.01]] as const)
    .map(([n, v]) => ['polynomial', polynomial({ init: 1, end: 0.01, power: 2, steps: 100, begin: 5 }), n, v] as [string, Schedule, number, number]),
  // exponential: 2·0.5^((n − 2)/4) from step 2
  ...([[0, 2], [2, 2], [4, Math.SQRT2], [10, 0.5], [14, 0.25]] as const)
    .map(([n, v]) => ['exponentialDecay', exponentialDecay({ init: 2, rate: 0.5, steps: 4, begin: 2 }), n, v] as [string, Schedule, number, number]),
  ...([[0, 2], [3, 2], [4, 1], [7, 1], [8, 0.5], [13, 0.25], [16, 0.125]] as const)
    .map(([n, v]) => ['exponentialDecay staircase', exponentialDecay({ init: 2, rate: 0.5, steps: 4, staircase: true }), n, v] as [string, Schedule, number, number]),
  // end is a floor when decaying…
  ...([[4, 1], [8, 0.6], [1000, 0.6]] as const)
    .map(([n, v]) => ['exponentialDecay end floor', exponentialDecay({ init: 2, rate: 0.5, steps: 4, end: 0.6 }), n, v] as [string, Schedule, number, number]),
  // …and a ceiling when growing
  ...([[0, 1], [4, 2], [8, 4], [12, 5], [1000, 5]] as const)
    .map(([n, v]) => ['exponentialDecay end ceiling', exponentialDecay({ init: 1, rate: 2, steps: 4, end: 5 }), n, v] as [string, Schedule, number, number]),
  // cosine: 0.1·(0.8·half(n/100) + 0.2), held at the end
  ...([[0, 0.1], [25, 0.1 * (0.8 * half(0.25) + 0.2)], [50, 0.1 * (0.8 * 0.5 + 0.2)], [100, 0.02], [101, 0.02], [1e5, 0.02]] as const)
    .map(([n, v]) => ['cosineDecay', cosineDecay({ init: 0.1, steps: 100, alpha: 0.2 }), n, v] as [string, Schedule, number, number]),
  ['cosineDecay exponent 2', cosineDecay({ init: 0.1, steps: 100, alpha: 0.2, exponent: 2 }), 50, 0.1 * (0.8 * 0.25 + 0.2)],
  ['cosineDecay alpha 0', cosineDecay({ init: 3, steps: 7 }), 7, 0],
  // warmup 0.01 → 0.1 over 10 steps, then cosine 0.1 → 0.001 over 30 − 10 steps, in optax's form peak·((1 − α)·c + α)
  ...([
    [0, 0.01], [5, 0.01 + 0.09 * 0.5], [9, 0.01 + 0.09 * 0.9], [10, 0.1], [15, 0.1 * ((1 - 0.01) * half(0.25) + 0.01)],
    [20, 0.1 * ((1 - 0.01) * 0.5 + 0.01)], [30, 0.001], [31, 0.001], [1000, 0.001],
  ] as const).map(([n, v]) => ['warmupCosineDecay', warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 10, decaySteps: 30, end: 0.001 }), n, v] as [string, Schedule, number, number]),
  ['warmupCosineDecay no warmup', warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 0, decaySteps: 4 }), 0, 0.1],
  ['warmupCosineDecay no warmup', warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 0, decaySteps: 4 }), 1, 0.1 * half(0.25)],
  // optax's piecewise_constant_schedule docstring: scales multiply, from the boundary's own step on
  ...([[0, 1], [50, 1], [99, 1], [100, 0.1], [150, 0.1], [199, 0.1], [200, 0.001], [250, 0.001]] as const)
    .map(([n, v]) => ['piecewiseConstant', piecewiseConstant({ init: 1, boundaries: { 200: 0.01, 100: 0.1 } }), n, v] as [string, Schedule, number, number]),
  ...([[0, 1], [2, 1], [3, 0.5], [6, 0.5], [7, 0.25], [1e4, 0.25]] as const)
    .map(([n, v]) => ['piecewiseValues', piecewiseValues({ boundaries: [3, 7], values: [1, 0.5, 0.25] }), n, v] as [string, Schedule, number, number]),
  // join: each later schedule sees step − boundary (the linear one starts from its own 0 at step 5)
  ...([[0, 1], [4, 1], [5, 0], [10, 0.5], [14, 0.9], [15, 3], [99, 3]] as const)
    .map(([n, v]) => ['join', join([constant(1), linear({ init: 0, end: 1, steps: 10 }), constant(3)], [5, 15]), n, v] as [string, Schedule, number, number]),
];

describe('schedules on the host (at, float64)', () => {
  it.each(HOST.map(([name, s, n, v]) => ({ name, s, n, v })))('$name at step $n is $v', ({ s, n, v: expected }) => {
    expect(Math.abs(s.at(n) - expected)).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(expected)));
  });

  it('a schedule is a function object with at; defineSchedule makes custom ones', () => {
    const s = cosineDecay({ init: 1, steps: 10 });
    expect(typeof s).toBe('function');
    expect(s.name).toBe('cosineDecay');
    expect(Object.isFrozen(s)).toBe(true);
    const shifted = join([constant(1), defineSchedule('identity', (t) => t, (n) => n)], [5]);
    expect(shifted.at(7)).toBe(2);
    expect(() => s.at('3' as unknown as number)).toThrow(/cosineDecay\.at: step must be a number, got string/);
  });
});

// Bad arguments: the error names the schedule, the argument and the value.
const REFUSALS: [string, () => unknown, RegExp][] = [
  ['cosineDecay steps 0', () => cosineDecay({ init: 0.1, steps: 0 }), /^cosineDecay: steps must be an integer >= 1, got 0$/],
  ['cosineDecay steps 1.5', () => cosineDecay({ init: 0.1, steps: 1.5 }), /cosineDecay: steps must be an integer >= 1, got 1\.5/],
  ['cosineDecay alpha 2', () => cosineDecay({ init: 0.1, steps: 5, alpha: 2 }), /cosineDecay: alpha must be a finite number >= 0 and <= 1, got 2/],
  ['cosineDecay exponent 0', () => cosineDecay({ init: 0.1, steps: 5, exponent: 0 }), /cosineDecay: exponent must be a finite number > 0, got 0/],
  ['cosineDecay no options', () => cosineDecay(undefined as never), /cosineDecay: expects an options object, got undefined/],
  ['constant Infinity', () => constant(Infinity), /constant: value must be a finite number, got Infinity/],
  ['linear begin −1', () => linear({ init: 1, end: 0, steps: 10, begin: -1 }), /linear: begin must be an integer >= 0, got -1/],
  ['linear init NaN', () => linear({ init: NaN, end: 0, steps: 10 }), /linear: init must be a finite number, got NaN/],
  ['linear end missing', () => linear({ init: 1, steps: 10 } as never), /linear: end must be a finite number, got undefined/],
  ['linear steps 0', () => linear({ init: 1, end: 0, steps: 0 }), /linear: steps must be an integer >= 1, got 0/],
  ['polynomial power 0', () => polynomial({ init: 1, end: 0, steps: 10, power: 0 }), /polynomial: power must be a finite number > 0, got 0/],
  ['exponentialDecay rate 0', () => exponentialDecay({ init: 1, rate: 0, steps: 10 }), /exponentialDecay: rate must be a finite number > 0, got 0/],
  ['exponentialDecay staircase', () => exponentialDecay({ init: 1, rate: 0.5, steps: 10, staircase: 'yes' as never }), /exponentialDecay: staircase must be a boolean, got "yes"/],
  ['exponentialDecay end', () => exponentialDecay({ init: 1, rate: 0.5, steps: 10, end: -Infinity }), /exponentialDecay: end must be a finite number, got -Infinity/],
  ['warmupCosineDecay decay = warmup', () => warmupCosineDecay({ init: 0, peak: 1, warmupSteps: 10, decaySteps: 10 }), /warmupCosineDecay: decaySteps must be greater than warmupSteps \(it includes the warmup\), got decaySteps 10 and warmupSteps 10/],
  ['warmupCosineDecay warmup −1', () => warmupCosineDecay({ init: 0, peak: 1, warmupSteps: -1, decaySteps: 10 }), /warmupCosineDecay: warmupSteps must be an integer >= 0, got -1/],
  ['piecewiseConstant negative step', () => piecewiseConstant({ init: 1, boundaries: { [-5]: 0.1 } }), /piecewiseConstant: boundaries: step must be an integer >= 0, got "-5"/],
  ['piecewiseConstant fractional step', () => piecewiseConstant({ init: 1, boundaries: { 2.5: 0.1 } }), /piecewiseConstant: boundaries: step must be an integer >= 0, got "2\.5"/],
  ['piecewiseConstant negative scale', () => piecewiseConstant({ init: 1, boundaries: { 100: -1 } }), /piecewiseConstant: boundaries\[100\] must be a finite number >= 0, got -1/],
  ['piecewiseConstant array', () => piecewiseConstant({ init: 1, boundaries: [0.1] as never }), /piecewiseConstant: boundaries must be an object \{ step: scale \}, got \[0\.1\]/],
  ['piecewiseValues count', () => piecewiseValues({ boundaries: [3, 7], values: [1, 0.5] }), /piecewiseValues: values must be an array of boundaries\.length \+ 1 = 3 numbers, got 2 values/],
  ['piecewiseValues order', () => piecewiseValues({ boundaries: [5, 5], values: [1, 2, 3] }), /piecewiseValues: boundaries must be strictly increasing, got 5 then 5 at boundaries\[1\]/],
  ['piecewiseValues value', () => piecewiseValues({ boundaries: [5], values: [1, NaN] }), /piecewiseValues: values\[1\] must be a finite number, got NaN/],
  ['join empty', () => join([], []), /join: schedules must be a non-empty array, got \[\]/],
  ['join plain function', () => join([constant(1), ((t: Tensor) => t) as never], [3]), /join: schedules\[1\] is not a Schedule/],
  ['join boundaries count', () => join([constant(1), constant(2)], [3, 4]), /join: boundaries must have schedules\.length − 1 = 1 entries, got 2/],
  ['join boundary −1', () => join([constant(1), constant(2)], [-1]), /join: boundaries\[0\] must be an integer >= 0, got -1/],
];

describe('schedule arguments', () => {
  it.each(REFUSALS)('%s is refused with SymflowError', (_name, make, message) => {
    expect(make).toThrow(SymflowError);
    expect(make).toThrow(message);
  });

  it('a bool step is refused', () => {
    expect(() => linear({ init: 1, end: 0, steps: 4 })(placeholder([], { dtype: 'bool' }))).toThrow(/linear: step must be float32 or int32, got bool/);
  });
});

// Every schedule of the host table, with steps around all of its boundaries.
const GRAPH: [string, Schedule][] = [
  ['constant', constant(0.3)],
  ['linear', linear({ init: 1, end: 0.2, steps: 8, begin: 4 })],
  ['polynomial', polynomial({ init: 1, end: 0.01, power: 2, steps: 100, begin: 5 })],
  ['polynomial power 0.5', polynomial({ init: 0.5, end: 0.1, power: 0.5, steps: 30 })],
  ['exponentialDecay', exponentialDecay({ init: 2, rate: 0.5, steps: 4, begin: 2 })],
  ['exponentialDecay staircase end', exponentialDecay({ init: 2, rate: 0.5, steps: 4, staircase: true, end: 0.3 })],
  ['exponentialDecay growth', exponentialDecay({ init: 1, rate: 2, steps: 4, end: 5 })],
  ['cosineDecay', cosineDecay({ init: 0.1, steps: 100, alpha: 0.2 })],
  ['cosineDecay exponent 1.5', cosineDecay({ init: 0.1, steps: 37, exponent: 1.5 })],
  ['warmupCosineDecay', warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 10, decaySteps: 30, end: 0.001 })],
  ['piecewiseConstant', piecewiseConstant({ init: 1, boundaries: { 100: 0.1, 200: 0.01 } })],
  ['piecewiseValues', piecewiseValues({ boundaries: [3, 7], values: [1, 0.5, 0.25] })],
  ['join', join([constant(1), linear({ init: 0, end: 1, steps: 10 }), cosineDecay({ init: 3, steps: 20 })], [5, 15])],
];
const STEPS = [
  ...Array.from({ length: 41 }, (_, i) => i),
  49, 50, 51, 99, 100, 101, 104, 105, 106, 110, 150, 199, 200, 201, 250, 1000, 12_345, 1e6,
];

describe.each(BACKENDS)('graph schedules agree with at on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  // float32 steps and arithmetic against the float64 host: within 4 float32 ulps of the schedule's scale (the worst
  // seen is about 1 ulp, in the cosine schedules).
  const ULPS4 = 2 ** -21;
  it.each(GRAPH)(`%s at ${STEPS.length} steps (float32 vector step, |graph − at| ≤ 4 ulp·max|at|)`, async (_name, sched) => {
    const t = placeholder([null]);
    const f = s.function({ inputs: [t], outputs: [sched(t)] });
    const [out] = await f([{ shape: [STEPS.length], data: Float32Array.from(STEPS) }]);
    const expected = STEPS.map((n) => sched.at(n));
    const scale = Math.max(...expected.map(Math.abs));
    expectClose(values(out!), expected, 0, ULPS4 * scale);
  });

  it.each(GRAPH)('%s from an int32 scalar step, as an optimizer reads its counter', async (_name, sched) => {
    const t = placeholder([], { dtype: 'int32' });
    const y = sched(t);
    expect(y.dtype).toBe('float32');
    expect(y.rank).toBe(0);
    const f = s.function({ inputs: [t], outputs: [y] });
    const scale = Math.max(...STEPS.map((n) => Math.abs(sched.at(n))));
    for (const n of [0, 4, 5, 10, 15, 100, 200, 201]) {
      const [out] = await f([{ shape: [], data: Int32Array.of(n) }]);
      expectClose(values(out!), [sched.at(n)], 0, ULPS4 * scale);
    }
  });

  it('the end values are exact in the graph (c/steps is 1 there)', async () => {
    const t = placeholder([]);
    const cases: [Schedule, number, number][] = [
      [linear({ init: 1, end: 0.2, steps: 8, begin: 4 }), 12, 0.2],
      [cosineDecay({ init: 0.1, steps: 100, alpha: 0.2 }), 100, 0.1 * 0.2],
      [warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 10, decaySteps: 30, end: 0.001 }), 30, 0.001],
      [piecewiseConstant({ init: 1, boundaries: { 100: 0.1, 200: 0.01 } }), 200, 0.001],
    ];
    for (const [sched, n, v] of cases) {
      const [out] = await s.function({ inputs: [t], outputs: [sched(t)] })([n]);
      expect(values(out!)[0]).toBe(Math.fround(v));
    }
  });

  describe('sgd with a schedule follows at(t) step by step', () => {
    // lr 0.01 → 0.1 over 2 steps, then cosine down to 0.02 by step 6, held after.
    const lr = () => warmupCosineDecay({ init: 0.01, peak: 0.1, warmupSteps: 2, decaySteps: 6, end: 0.02 });
    const STEPS_RUN = 9;

    it('linear loss c·p: p after T steps is p0 − Σ at(t)·c', async () => {
      const sched = lr();
      const p = variable([1, -2], { name: 'p' });
      const c = [3, -0.5];
      const train = compile(sgd({ lr: sched }), s, { loss: sum(mul(constantTensor(c), p)), inputs: [] });
      for (let k = 1; k <= STEPS_RUN; k++) {
        await train.step([]);
        let lrSum = 0;
        for (let t = 0; t < k; t++) lrSum += sched.at(t);
        expectClose(values(await s.getValue(p)), [1 - lrSum * c[0]!, -2 - lrSum * c[1]!]);
      }
    });

    it('quadratic loss ½Σ a·p²: p ← p − at(t)·a·p', async () => {
      const sched = lr();
      const a = [1, 4];
      const p = variable([1, -2], { name: 'p' });
      const train = compile(sgd({ lr: sched }), s, { loss: mul(0.5, sum(mul(constantTensor(a), square(p)))), inputs: [] });
      let expected = [1, -2];
      for (let t = 0; t < STEPS_RUN; t++) {
        await train.step([]);
        expected = expected.map((x, i) => x - sched.at(t) * a[i]! * x);
        expectClose(values(await s.getValue(p)), expected);
      }
      // The schedule moved: a constant lr of any one of its values would not give this trajectory.
      const rates = Array.from({ length: STEPS_RUN }, (_, t) => sched.at(t));
      expect(new Set(rates.map((r) => r.toFixed(6))).size).toBeGreaterThan(4);
    });

    it('a schedule composes with Keras decay: lr·1/(1 + decay·t)', async () => {
      const sched = piecewiseValues({ boundaries: [2], values: [0.1, 0.05] });
      const p = variable([1], { name: 'p' });
      const train = compile(sgd({ lr: sched, decay: 0.5 }), s, { loss: sum(mul(constantTensor([2]), p)), inputs: [] });
      let expected = 1;
      for (let t = 0; t < 4; t++) {
        await train.step([]);
        expected -= (sched.at(t) / (1 + 0.5 * t)) * 2;
        expectClose(values(await s.getValue(p)), [expected]);
      }
    });
  });
});
