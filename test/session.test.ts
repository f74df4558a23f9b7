import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import {
  add, cond, constant, div, gradients, greater, initializers, log, matMul, mean, mul, placeholder, reshape, Session,
  square, sub, sum, SymflowError, type Tensor, variable,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

describe.each(BACKENDS)('session on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('reports its backend', () => {
    expect(s.backend).toBe(backend);
  });

  it('runs one fetch or a list, with feeds as a Map or pairs', async () => {
    const x = placeholder([2]);
    const y = mul(x, 3);
    const one = await s.run(y, new Map([[x, [1, 2]]]));
    expect(one.shape).toEqual([2]);
    expect(one.dtype).toBe('float32');
    expect(values(one)).toEqual([3, 6]);
    const [a, b] = await s.run([y, sum(y)], [[x, new Float32Array([2, 5])]]);
    expect(values(a!)).toEqual([6, 15]);
    expect(b!.shape).toEqual([]);
    expect(values(b!)).toEqual([21]);
  });

  it('solves one unknown dimension of a typed array, and takes {shape, data}', async () => {
    const x = placeholder([null, 3]);
    const r = await s.run(sum(x, 1), [[x, new Float32Array([1, 2, 3, 4, 5, 6])]]);
    expect(r.shape).toEqual([2]);
    expect(values(r)).toEqual([6, 15]);
    const r2 = await s.run(sum(x, 0), [[x, { shape: [1, 3], data: [1, 1, 2] }]]);
    expect(values(r2)).toEqual([1, 1, 2]);
  });

  it('feeding any tensor cuts off what lies upstream', async () => {
    const x = placeholder([], { name: 'upstream' });
    const h = mul(x, 2);
    const y = add(h, 1);
    // x is never fed: h is, so x is not needed.
    expect(values(await s.run(y, [[h, 10]]))).toEqual([11]);
    expect(values(await s.run(y, [[x, 10]]))).toEqual([21]);
  });

  it('runs only what the fetches need (pruning)', async () => {
    const x = placeholder([], { name: 'unneeded' });
    const c = variable(4);
    const both = add(c, x);
    const f = s.function({ outputs: [mul(c, c)] });
    expect(values((await f())[0]!)).toEqual([16]);
    expect(f.kernelCount).toBe(1);
    await expect(s.run(both)).rejects.toThrow(`missing feed for placeholder '${x.name}' [] float32`);
  });

  it('names the placeholder on bad feeds', async () => {
    const x = placeholder([null, 3], { name: 'features' });
    const y = sum(x);
    await expect(s.run(y, [[x, [1, 2, 3]]])).rejects.toThrow(`feed '${x.name}': rank mismatch: expected [?,3], got [3]`);
    await expect(s.run(y, [[x, [[1, 2]]]])).rejects.toThrow(`feed '${x.name}': shape mismatch: expected [?,3], got [1,2]`);
    await expect(s.run(y, [[x, new Int32Array(3)]])).rejects.toThrow(`feed '${x.name}': dtype mismatch: expected float32, got an Int32Array (int32)`);
    const f = s.function({ inputs: [x], outputs: [y] });
    await expect(f([])).rejects.toThrow(`expected 1 input value(s) ('${x.name}'), got 0`);
  });

  it('updates read the state before the call, then apply together', async () => {
    const a = variable(1, { name: 'a' });
    const b = variable(10, { name: 'b' });
    const f = s.function({ outputs: [add(a, b)], updates: [[a, add(a, b)], [b, mul(a, 2)]] });
    const [out] = await f();
    expect(values(out!)).toEqual([11]);
    // a ← 1 + 10 and b ← 2·1: both from the old a.
    expect(values(await s.getValue(a))).toEqual([11]);
    expect(values(await s.getValue(b))).toEqual([2]);
  });

  it('[[a, b], [b, a]] swaps, every time', async () => {
    const a = variable([1, 2], { name: 'swapA' });
    const b = variable([3, 4], { name: 'swapB' });
    const swap = s.function({ updates: [[a, b], [b, a]] });
    for (let i = 1; i <= 5; i++) {
      await swap();
      expect(values(await s.getValue(a))).toEqual(i % 2 ? [3, 4] : [1, 2]);
      expect(values(await s.getValue(b))).toEqual(i % 2 ? [1, 2] : [3, 4]);
    }
  });

  it('refuses two updates of one variable at compile time', () => {
    const a = variable(0, { name: 'twice' });
    expect(() => s.function({ updates: [[a, 1], [a, 2]] })).toThrow(`variable '${a.name}' is updated twice`);
    expect(() => s.function({ updates: [[a, 1], cond(constant(true), () => [[a, 2]], () => [])] })).toThrow(SymflowError);
  });

  it('a call that fails applies no update and frees what it made', async () => {
    const v = variable([1, 2, 3], { name: 'kept' });
    const w = variable([5], { name: 'kept2' });
    const x = placeholder([null]);
    const bad = reshape(x, [4]); // fails at run time unless 4 values are fed
    const f = s.function({ inputs: [x], outputs: [sum(bad)], updates: [[v, mul(v, 2)], [w, add(w, sum(bad))]] });
    const before = [values(await s.getValue(v)), values(await s.getValue(w))];
    const count = s.numTensors();
    await expect(f([[1, 2, 3]])).rejects.toThrow(/reshape: failed at node/);
    expect(s.numTensors()).toBe(count);
    expect([values(await s.getValue(v)), values(await s.getValue(w))]).toEqual(before);
    await f([[1, 1, 1, 1]]);
    expect(values(await s.getValue(v))).toEqual([2, 4, 6]);
    expect(values(await s.getValue(w))).toEqual([9]);
  });

  it('a new value with the wrong run-time shape is refused before anything is applied', async () => {
    const v = variable([0, 0], { name: 'shapeChecked' });
    const x = placeholder([null]);
    const f = s.function({ inputs: [x], updates: [[v, x]] });
    await expect(f([[1, 2, 3]])).rejects.toThrow(`new value of variable '${v.name}' has shape [3], the variable [2]`);
    expect(values(await s.getValue(v))).toEqual([0, 0]);
  });

  it('cond is lazy: an untaken branch neither runs nor applies its updates', async () => {
    const p = placeholder([], { dtype: 'bool' });
    const x = placeholder([null]);
    const hits = variable(0, { name: 'hits' });
    const misses = variable(0, { name: 'misses' });
    // The then-branch fails at run time unless x has 2 elements; it must not run when p is false.
    const value = cond(p, () => sum(reshape(x, [2])), () => mul(sum(x), -1));
    const f = s.function({
      inputs: [p, x], outputs: [value],
      updates: [cond(p, () => [[hits, add(hits, 1)]], () => [[misses, add(misses, 1)]])],
    });
    expect(values((await f([false, [1, 2, 3]]))[0]!)).toEqual([-6]);
    expect(values((await f([true, [1, 2]]))[0]!)).toEqual([3]);
    expect(values((await f([false, [4]]))[0]!)).toEqual([-4]);
    expect(values(await s.getValue(hits))).toEqual([1]);
    expect(values(await s.getValue(misses))).toEqual([2]);
  });

  it('cond keeps NaN from an untaken branch out of values and gradients', async () => {
    const x = placeholder([]);
    const y = cond(greater(x, 0), () => log(x), () => mul(x, x));
    const [dy] = [gradients(y, x)];
    const run = async (v: number) => (await s.run([y, dy], [[x, v]])).map((r) => values(r)[0]!);
    expectClose(await run(2), [Math.log(2), 0.5]);
    expectClose(await run(-3), [9, -6]);
    const r0 = await run(0);
    expect(r0).toEqual([0, 0]);
  });

  it('nested cond and a cond inside a gradient', async () => {
    const x = placeholder([]);
    const y = cond(greater(x, 0), () => cond(greater(x, 10), () => mul(x, 100), () => mul(x, x)), () => sub(0, x));
    const g = gradients(y, x);
    const at = async (v: number) => (await s.run([y, g], [[x, v]])).map((r) => values(r)[0]!);
    expect(await at(20)).toEqual([2000, 100]);
    expect(await at(3)).toEqual([9, 6]);
    expect(await at(-2)).toEqual([2, -1]);
  });

  it('getValue and setValue check shapes and dtypes, and setValue changes nothing on error', async () => {
    const v = variable([[1, 2], [3, 4]], { name: 'settable' });
    await s.setValue(v, [[5, 6], [7, 8]]);
    expect(values(await s.getValue(v))).toEqual([5, 6, 7, 8]);
    await expect(s.setValue(v, [1, 2, 3, 4])).rejects.toThrow(`Session.setValue: variable '${v.name}': rank mismatch: expected [2,2], got [4]`);
    await expect(s.setValue(v, new Int32Array(4))).rejects.toThrow(/dtype mismatch/);
    expect(values(await s.getValue(v))).toEqual([5, 6, 7, 8]);
  });

  it('initialises variables on first use, deterministically from a seed', async () => {
    const a = variable(initializers.glorotUniform([4, 3], { seed: 7 }));
    const b = variable(initializers.glorotUniform([4, 3], { seed: 7 }));
    const va = values(await s.getValue(a));
    expect(va).toEqual(values(await s.getValue(b)));
    const limit = Math.sqrt(6 / 7);
    expect(va.every((x) => Math.abs(x) <= limit)).toBe(true);
    expect(new Set(va).size).toBe(12);
    expect(values(await s.getValue(variable(initializers.ones([3]))))).toEqual([1, 1, 1]);
  });

  it('uploaded values are reused across calls', async () => {
    const x = placeholder([null, 2]);
    const f = s.function({ inputs: [x], outputs: [sum(x)] });
    const up = s.upload(x, [[1, 2], [3, 4]]);
    const count = s.numTensors();
    for (let i = 0; i < 3; i++) expect(values((await f([up]))[0]!)).toEqual([10]);
    expect(s.numTensors()).toBe(count);
    up.dispose();
    await expect(f([up])).rejects.toThrow(/disposed/);
  });

  it('keeps the tensor count flat over 1,000 training calls', async () => {
    const x = placeholder([null, 3]);
    const y = placeholder([null, 1]);
    const w = variable(initializers.randomNormal([3, 1], { seed: 1 }));
    const b = variable(0);
    const loss = mean(square(sub(add(matMul(x, w), b), y)));
    const [gw, gb] = gradients(loss, [w, b]) as [Tensor, Tensor];
    const lr = 0.05;
    const step = s.function({
      inputs: [x, y], outputs: [loss],
      updates: [[w, sub(w, mul(lr, gw))], [b, sub(b, mul(lr, gb))], cond(greater(loss, 1e9), () => [], () => [])],
    });
    const xs = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]];
    const ys = xs.map((r) => [r[0]! - 2 * r[1]! + 0.5 * r[2]! + 1]);
    await step([xs, ys]);
    const count = s.numTensors();
    let last = Infinity;
    for (let i = 0; i < 1000; i++) last = values((await step([xs, ys]))[0]!)[0]!;
    expect(s.numTensors()).toBe(count);
    expect(last).toBeLessThan(1e-6);
    expectClose(values(await s.getValue(w)), [1, -2, 0.5], 1e-3, 1e-3);
  });

  it('a disposed session refuses further calls', async () => {
    const other = await Session.create({ backend });
    const v = variable(1);
    const f = other.function({ outputs: [add(v, 1)] });
    other.dispose();
    await expect(f()).rejects.toThrow('session.function: the session is disposed');
    await expect(other.run(v)).rejects.toThrow('Session.run: the session is disposed');
    await expect(other.getValue(v)).rejects.toThrow(/disposed/);
  });

  it('evaluates int and bool results and division by a feed', async () => {
    const x = placeholder([3], { dtype: 'int32' });
    const r = await s.run([mul(x, 2), greater(x, 1)], [[x, [1, 2, 3]]]);
    expect(r[0]!.dtype).toBe('int32');
    expect(values(r[0]!)).toEqual([2, 4, 6]);
    expect(r[1]!.dtype).toBe('bool');
    expect(values(r[1]!)).toEqual([0, 1, 1]);
    const f = placeholder([]);
    expectClose(values(await s.run(div(1, f), [[f, 4]])), [0.25]);
  });
});

describe('Session.run keeps a bounded cache of compiled graphs', () => {
  it('evicts the least recently used and still runs everything right', async () => {
    const s = await Session.create({ backend: 'onnx' });
    const x = placeholder([]);
    const fetches = Array.from({ length: 80 }, (_, i) => add(x, i));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < fetches.length; i++) expect(values(await s.run(fetches[i]!, [[x, 1]]))).toEqual([i + 1]);
    }
    expect((s as unknown as { runCache: Map<string, unknown> }).runCache.size).toBe(64);
    expect((s as unknown as { programs: unknown[] }).programs.length).toBe(64);
    s.dispose();
  });
});

describe('Session.create options', () => {
  it('threads sets the onnx intra-op thread count; training gives the same values with 1 thread as with the default', async () => {
    const results: number[][] = [];
    for (const threads of [undefined, 1]) {
      const s = await Session.create({ backend: 'onnx', ...(threads === undefined ? {} : { threads }) });
      expect((s as unknown as { backendImpl: { threads: number } }).backendImpl.threads).toBe(threads ?? availableParallelism());
      const x = placeholder([null, 4]);
      const w = variable(initializers.randomNormal([4, 3], { seed: 3 }));
      const loss = mean(square(matMul(x, w)));
      const [g] = gradients(loss, [w]);
      const step = s.function({ inputs: [x], outputs: [loss], updates: [[w, sub(w, mul(0.1, g!))]] });
      const xs = Array.from({ length: 64 }, (_, i) => [Math.sin(i), Math.cos(i), i / 64, 1]);
      for (let i = 0; i < 5; i++) await step([xs]);
      results.push(values(await s.getValue(w)));
      s.dispose();
    }
    expectClose(results[1]!, results[0]!, 1e-6, 1e-7);
  });

  it('refuses a thread count that is not a positive integer, naming the option', async () => {
    for (const threads of [0, 1.5, -2, Number.NaN]) {
      await expect(Session.create({ backend: 'onnx', threads })).rejects.toThrow(`Session.create: threads must be an integer from 1 to 1024, got ${threads}`);
    }
  });
});
