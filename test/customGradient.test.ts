import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  abs, add, compile, cond, constant, cse, customGradient, div, exp, fromJSON, gradients, log, maximum, mean, mul, neg, placeholder,
  Session, sgd, sigmoid, sqrt, sub, substitute, SymflowError, type Tensor, toIR, toJSON, variable,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

/** log(1 + eˣ), written so it never overflows; its naive gradient would be Inf / Inf for large x, sigmoid(x) is exact. */
const softplus = customGradient(
  (x: Tensor) => add(maximum(x, 0), log(add(1, exp(neg(abs(x)))))),
  ([x], _y, dy) => [mul(dy, sigmoid(x!))],
  'softplus',
);
const naiveSoftplus = (x: Tensor) => log(add(1, exp(x)));

/** √(a² + b²) with a rule that uses its own output: d/da = a / y, d/db = b / y. */
const hypot = customGradient(
  (a: Tensor, b: Tensor) => sqrt(add(mul(a, a), mul(b, b))),
  ([a, b], y, dy) => [mul(dy, div(a!, y)), mul(dy, div(b!, y))],
  'hypot',
);

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const refSoftplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

describe.each(BACKENDS)('customGradient on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('a numerically stable softplus: value and gradient as the reference, finite where the naive gradient is NaN', async () => {
    const xs = [-120, -3, -0.5, 0, 0.5, 3, 20, 100];
    const x = placeholder([xs.length]);
    const [dx] = gradients(softplus(x), [x]);
    const [dNaive] = gradients(naiveSoftplus(x), [x]);
    const [y, g, gn] = await s.run([softplus(x), dx!, dNaive!], [[x, xs]]);
    expectClose(values(y!), xs.map(refSoftplus), 1e-5, 1e-6);
    expectClose(values(g!), xs.map(sig), 1e-5, 1e-6);
    expect(Number.isNaN(values(gn!)[xs.length - 1]!), 'the naive gradient at x = 100').toBe(true);
    expect(values(g!).every(Number.isFinite)).toBe(true);
  });

  it('gradients agree with central finite differences (two inputs, a rule that reads the output)', async () => {
    const a0 = [0.3, -1.2, 2.0], b0 = [0.8, 0.5, -1.5], eps = 1e-2;
    const a = placeholder([3]), b = placeholder([3]);
    const weights = constant([1, -2, 0.5]);
    const loss = mean(mul(hypot(a, b), weights));
    const [da, db] = gradients(loss, [a, b]);
    const [ga, gb] = await s.run([da!, db!], [[a, a0], [b, b0]]);
    const f = s.function({ inputs: [a, b], outputs: [loss] });
    const at = async (av: number[], bv: number[]) => values((await f([av, bv]))[0]!)[0]!;
    const fd = async (which: 0 | 1, i: number) => {
      const bump = (v: number[], d: number) => v.map((e, k) => (k === i ? e + d : e));
      const [p, m] = which === 0
        ? [await at(bump(a0, eps), b0), await at(bump(a0, -eps), b0)]
        : [await at(a0, bump(b0, eps)), await at(a0, bump(b0, -eps))];
      return (p - m) / (2 * eps);
    };
    const fdA = [await fd(0, 0), await fd(0, 1), await fd(0, 2)];
    const fdB = [await fd(1, 0), await fd(1, 1), await fd(1, 2)];
    expectClose(values(ga!), fdA, 1e-2, 1e-3);
    expectClose(values(gb!), fdB, 1e-2, 1e-3);
    // And the exact values: w·a / (3·y).
    const exact = (p: number[], k: number) => ([1, -2, 0.5][k]! * p[k]!) / (3 * Math.hypot(a0[k]!, b0[k]!));
    expectClose(values(ga!), a0.map((_, k) => exact(a0, k)), 1e-5, 1e-6);
  });

  it('second derivatives go through the rule: d²/dx² softplus = σ(x)(1 − σ(x)), and d²/dx² hypot via its output', async () => {
    const xs = [-4, -1, 0, 0.7, 3, 100];
    const x = placeholder([xs.length]);
    const d1 = gradients(softplus(x), x);
    const d2 = gradients(d1, x);
    expectClose(values(await s.run(d2, [[x, xs]])), xs.map((v) => sig(v) * (1 - sig(v))), 1e-5, 1e-6);
    // ∂²/∂a² √(a² + b²) = b² / y³: the rule's `output` is differentiated by the rule itself.
    const a = placeholder([2]), b = placeholder([2]);
    const [da] = gradients(hypot(a, b), [a]);
    const [daa] = gradients(da!, [a]);
    const [av, bv] = [[0.6, -2], [0.8, 1.5]];
    expectClose(values(await s.run(daa!, [[a, av], [b, bv]])), av.map((p, k) => bv[k]! ** 2 / Math.hypot(p, bv[k]!) ** 3), 1e-4, 1e-6);
  });

  it('an undefined entry gives that input no gradient', async () => {
    const scaled = customGradient((x: Tensor, w: Tensor) => mul(x, w), ([, w], _y, dy) => [mul(dy, w!), undefined], 'scaled');
    const x = placeholder([2]);
    const w = constant([3, -1]);
    const y = scaled(x, w);
    expect(() => gradients(y, [w])).toThrow(/xs\[0\] '.*' is not connected/);
    const [dx, dw] = gradients(y, [x, w], { unconnected: 'zero' });
    const [gx, gw] = await s.run([dx!, dw!], [[x, [5, 7]]]);
    expect(values(gx!)).toEqual([3, -1]);
    expect(values(gw!)).toEqual([0, 0]);
  });

  it('works inside a cond branch: the taken branch differentiates by the rule', async () => {
    const x = placeholder([2]);
    const p = placeholder([], { dtype: 'bool' });
    const [y] = cond(p, () => [softplus(mul(x, 2))], () => [mul(x, 3)]);
    const g = gradients(y!, x);
    expect(values(await s.run(g, [[x, [0, 100]], [p, true]]))).toEqual([1, 2]); // 2σ(2x), finite at 2x = 200
    expect(values(await s.run(g, [[x, [0, 100]], [p, false]]))).toEqual([3, 3]);
  });

  it('trains through compile(sgd): the step is the hand-computed one and the tensor count stays flat', async () => {
    const x = placeholder([null, 2]);
    const w2 = variable([0.5, -1]);
    const l2 = mean(softplus(mul(x, w2)));
    const train = compile(sgd({ lr: 0.5 }), s, { loss: l2, params: [w2], inputs: [x] });
    const batch = [[[1, 2], [-1, 0.5]]];
    await train.step(batch);
    // One step by hand: ∂/∂w_j = mean over the batch and j of σ(x·w)·x, i.e. Σ_b σ(x_bj w_j) x_bj / 4.
    const xv = [[1, 2], [-1, 0.5]], w0 = [0.5, -1];
    const expected = w0.map((wj, j) => wj - (0.5 * xv.reduce((acc, row) => acc + sig(row[j]! * wj) * row[j]!, 0)) / 4);
    expectClose(values(await s.getValue(w2)), expected, 1e-5, 1e-6);
    const tensors = s.numTensors();
    for (let k = 0; k < 5; k++) await train.step(batch);
    expect(s.numTensors()).toBe(tensors);
  });
});

describe('customGradient refusals', () => {
  const x = placeholder([3]);

  it('a grad with the wrong number of entries is refused when the gradient is built, naming the op', () => {
    const bad = customGradient((a: Tensor, b: Tensor) => add(a, b), (_xs, _y, dy) => [dy], 'pair');
    expect(() => gradients(bad(x, x), [x])).toThrow(SymflowError);
    expect(() => gradients(bad(x, x), [x])).toThrow("customGradient: 'pair': grad returned 1 entries for 2 inputs");
  });

  it('a grad entry of the wrong shape or dtype is refused, naming the input and both shapes', () => {
    const wrongShape = customGradient((a: Tensor) => a, () => [constant([1, 2])], 'wrongShape');
    expect(() => gradients(wrongShape(x), [x])).toThrow("customGradient: 'wrongShape': grad entry 0 is float32 [2], input 0 is float32 [3]");
    const notTensor = customGradient((a: Tensor) => a, () => [3 as unknown as Tensor], 'notTensor');
    expect(() => gradients(notTensor(x), [x])).toThrow(/grad entry 0 must be a Tensor or undefined, got number/);
    const notArray = customGradient((a: Tensor) => a, (() => neg(x)) as never, 'notArray');
    expect(() => gradients(notArray(x), [x])).toThrow(/grad must return an array/);
    const idx = placeholder([3], { dtype: 'int32' });
    const intIn = customGradient((a: Tensor, _i: Tensor) => a, (_xs, _y, dy) => [dy, dy], 'intIn');
    expect(() => gradients(intIn(x, idx), [x])).toThrow(/input 1 is int32, which has no gradient; its entry must be undefined/);
  });

  it('f must return one tensor', () => {
    const two = customGradient(((a: Tensor) => [a, a]) as never, () => [], 'two');
    expect(() => two(x)).toThrow("customGradient: 'two': f must return one Tensor, got an array");
  });

  it('toJSON refuses a graph with a customGradient node, naming it; fromJSON refuses the op', () => {
    const y = softplus(x);
    expect(() => toJSON([mean(y)])).toThrow(`toJSON: node '${y.name}' is a customGradient`);
    // A graph without one serialises as before.
    const json = toJSON([naiveSoftplus(x)]);
    json.nodes.push({ name: 'forged', op: 'customGradient', inputs: [json.nodes.length - 1], attrs: { rule: 1 }, shape: [3], dtype: 'float32' });
    json.outputs = [json.nodes.length - 1];
    expect(() => fromJSON(json)).toThrow(/fromJSON: node \d+ 'forged' is a customGradient, whose gradient rule is a JavaScript function/);
  });

  it('CSE keeps two customGradient nodes with different rules apart, and merges two uses of one', () => {
    const other = customGradient((a: Tensor) => add(maximum(a, 0), log(add(1, exp(neg(abs(a)))))), ([a], _y, dy) => [mul(dy, 2)]);
    const outs = [softplus(x), other(x), softplus(x)];
    const merged = cse(toIR(outs, []).ir);
    const [first, second, third] = merged.outputs;
    expect(second, 'different rules').not.toBe(first);
    expect(third, 'the same rule on the same input').toBe(first);
  });

  it('the rule survives substitute (rebuilt nodes find it by its id)', () => {
    const z = placeholder([3]);
    const [y] = substitute([softplus(x)], new Map([[x, sub(z, 1)]]));
    expect(y!.op).toBe('customGradient');
    expect(() => gradients(y!, [z])).not.toThrow();
  });
});
