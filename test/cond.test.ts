// `cond` as one node (issue 11 §3): one node whose inputs are the predicate, the captures and each branch's
// outputs; captures found by what the branch functions built; laziness by need; gradients that are conds of
// fresh copies of the branches (NaN-safe at every order); substitute and JSON that keep the captures right.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, add, cond, constant, equal, exp, fromJSON, gather, gradients, greater, log, mul, placeholder, sqrt, square, substitute, sum,
  toJSON, variable, type Tensor,
} from '../src/index.js';
import { BACKENDS, values } from './helpers.js';

const partsOf = (c: Tensor) => {
  const { captures: k, outputs: m } = c.attrs as { captures: number; outputs: number };
  return { pred: c.inputs[0]!, captures: c.inputs.slice(1, 1 + k), then: c.inputs.slice(1 + k, 1 + k + m), else: c.inputs.slice(1 + k + m) };
};

describe('the cond node', () => {
  it('is one node for all outputs; its captures are exactly the outer tensors the branches use', () => {
    const x = placeholder([3], { name: 'x' });
    const w = variable([1, 2, 3], { name: 'w' });
    const h = mul(x, w); // outer
    const p = greater(sum(x), 0);
    const [a, b] = cond(p, () => [exp(h), add(w, 1)], () => [square(h), h]);
    expect(a!.op).toBe('condOutput');
    expect(b!.inputs[0]).toBe(a!.inputs[0]);
    const node = a!.inputs[0]!;
    expect(node.op).toBe('cond');
    const parts = partsOf(node);
    expect(parts.pred).toBe(p);
    // h and w from outside, nothing the branches built; the else branch's second output is the capture h itself.
    expect(new Set(parts.captures)).toEqual(new Set([h, w]));
    expect(parts.else[1]).toBe(h);
    expect(parts.then.map((t) => t.op)).toEqual(['exp', 'add']);
    expect([a!.attrs['index'], b!.attrs['index']]).toEqual([0, 1]);
  });

  it('refuses a cond node whose branch reads a placeholder that is not a capture (a forged JSON file)', () => {
    const x = placeholder([], { name: 'x' });
    const y = cond(greater(x, 0), () => exp(x), () => 0);
    const json = toJSON([y]);
    const c = json.nodes.find((n) => n.op === 'cond')!;
    const k = c.attrs['captures'] as number;
    // Drop the capture x from the inputs: the branch still reads it.
    c.inputs = [c.inputs[0]!, ...c.inputs.slice(1 + k)];
    c.attrs['captures'] = 0;
    expect(() => fromJSON(json)).toThrow(/fromJSON: node \d+ '[^']+': cond: a branch reads placeholder 'x[^']*', which is not among its captures/);
  });

  it('refuses inputs that do not match its counts, naming the op', () => {
    const x = placeholder([], { name: 'x' });
    const y = cond(greater(x, 0), () => exp(x), () => 0);
    const json = toJSON([y]);
    json.nodes.find((n) => n.op === 'cond')!.attrs['outputs'] = 2;
    expect(() => fromJSON(json)).toThrow(/fromJSON: node \d+ 'if[^']*': cond: needs \[pred, \d captures, 2 then outputs, 2 else outputs\] as inputs, got \d/);
  });
});

describe('substitute', () => {
  it('rebuilds a cond over a replaced capture with the new capture, and one over a replaced branch node with the replacement captured', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const x = placeholder([], { name: 'x' });
    const w = variable(3, { name: 'w' });
    let inside: Tensor | undefined;
    const y = cond(greater(x, 0), () => (inside = mul(w, x)), () => add(w, 10));
    const w2 = add(w, 1);
    const [y2] = substitute([y], new Map([[w, w2]]));
    const c2 = y2!.inputs[0]!;
    expect(partsOf(c2).captures).toContain(w2);
    expect(partsOf(c2).captures).not.toContain(w);
    const z = constant(100);
    const [y3] = substitute([y], new Map([[inside!, z]]));
    expect(partsOf(y3!.inputs[0]!).captures).toContain(z);
    const at = async (t: Tensor, v: number) => values((await s.run([t], [[x, v]]))[0]!)[0];
    expect([await at(y2!, 2), await at(y2!, -1), await at(y3!, 2), await at(y3!, -1)]).toEqual([8, 14, 100, 13]);
    // The gradient of the rebuilt cond reaches w through the new capture.
    expect(values((await s.run(gradients(y2!, [w]), [[x, 2]]))[0]!)).toEqual([2]);
    await s.dispose();
  });
});

describe.each(BACKENDS)('cond on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(async () => {
    await s.dispose();
  });

  it('runs an outer node only one branch needs only when that branch is taken (laziness by need)', async () => {
    const table = constant([1, 2, 3]);
    const i = placeholder([], { dtype: 'int32', name: 'i' });
    const p = placeholder([], { dtype: 'bool', name: 'p' });
    const looked = gather(table, i); // fails with an index out of range, when it runs
    const y = cond(p, () => looked, () => 0);
    expect(values((await s.run([y], [[p, false], [i, 7]]))[0]!)).toEqual([0]);
    await expect(s.run([y], [[p, true], [i, 7]])).rejects.toThrow(SymflowError);
    expect(values((await s.run([y], [[p, true], [i, 1]]))[0]!)).toEqual([2]);
  });

  it('computes only the outputs that are used', () => {
    const x = placeholder([4], { name: 'x' });
    const [a, b] = cond(greater(sum(x), 0), () => [exp(x), log(exp(square(x)))], () => [x, square(x)]);
    const one = s.function({ inputs: [x], outputs: [a!] });
    const both = s.function({ inputs: [x], outputs: [a!, b!] });
    expect(both.kernelCount).toBeGreaterThan(one.kernelCount + 2);
  });

  it('gives first and second derivatives of the taken branch, and no NaN from the untaken one (sqrt at x < 0)', async () => {
    const x = placeholder([], { name: 'x' });
    const y = cond(greater(x, 0), () => sqrt(x), () => mul(x, 0.5));
    const [g] = gradients(y, [x]);
    const [g2] = gradients(g!, [x]);
    const [g3] = gradients(g2!, [x]);
    const at = async (v: number) => (await s.run([y, g!, g2!, g3!], [[x, v]])).map((t) => values(t)[0]!);
    const pos = await at(4);
    expect(pos[0]).toBeCloseTo(2, 6);
    expect(pos[1]).toBeCloseTo(0.25, 6); // 1/(2√x)
    expect(pos[2]).toBeCloseTo(-1 / 32, 6); // −x^(−3/2)/4
    expect(pos[3]).toBeCloseTo(3 / 256, 6); // 3x^(−5/2)/8
    expect(await at(-4)).toEqual([-2, 0.5, 0, 0]);
  });

  it('round-trips nested conds and their gradients through JSON, bit for bit', async () => {
    const x = placeholder([2], { name: 'x' });
    const v = variable([2, -1], { name: 'v' });
    const inner = (t: Tensor) => cond(greater(sum(t), 1), () => square(t), () => mul(v, t));
    const y = cond(greater(sum(x), 0), () => inner(mul(v, x)), () => exp(v));
    const [g] = gradients(sum(y), [v]);
    const read = fromJSON(JSON.stringify(toJSON([y, g!])), { variables: [v] });
    const xr = read.nodes.get(x.name)!;
    for (const feed of [[1, 2], [0.25, 0.5], [-1, -2]]) {
      const a = await s.run([y, g!], [[x, feed]]);
      const b = await s.run(read.outputs, [[xr, feed]]);
      expect(b.map(values)).toEqual(a.map(values));
    }
  });
});

describe.each(BACKENDS)('a branch result used twice on %s', (backend) => {
  it('a value a taken branch makes and hands out twice (two updates of one new value) reaches both', async () => {
    const s = await Session.create({ backend });
    try {
      const p = variable([1, 2], { name: 'p' });
      const slow = variable([5, 6], { name: 'slow' });
      const q = placeholder([], { dtype: 'int32', name: 'q' });
      // The outer branch's results are [t, t]: one register, moved out once and aliased once.
      const f = s.function({
        inputs: [q],
        updates: [cond(equal(q, 1), () => {
          const [sp] = cond(equal(q, 0), () => [p], () => [slow]);
          const t = add(sp!, 1);
          return [[slow, t], [p, t]];
        }, () => [])],
      });
      await f([1]);
      expect([values(await s.getValue(p)), values(await s.getValue(slow))]).toEqual([[6, 7], [6, 7]]);
      await f([2]);
      expect([values(await s.getValue(p)), values(await s.getValue(slow))]).toEqual([[6, 7], [6, 7]]);
    } finally {
      await s.dispose();
    }
  });
});
