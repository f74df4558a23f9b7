import ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import {
  accumulate, add, adam, compile, dropout, heun, rungeKutta, tableaux, matMul, mean, nn, NonFiniteError, placeholder, relu, Session, sgd, softmaxCrossEntropy, SymflowError,
  variable, type FeedValue, type StepResult, type TrainStep, type Variable,
} from '../src/index.js';
import { BACKENDS, bits, rng } from './helpers.js';

// A small MLP with dropout: the draws of each step are keyed by the step counter, so k steps in one call must draw
// what k single steps draw.
function mlp(seed: number) {
  const r = rng(seed);
  const x = placeholder([null, 6], { name: 'x' });
  const y = placeholder([null, 3], { name: 'y' });
  const w1 = variable({ shape: [6, 8], data: Float32Array.from({ length: 48 }, () => r() - 0.5) }, { name: 'w1' });
  const b1 = variable({ shape: [8], data: new Float32Array(8) }, { name: 'b1' });
  const w2 = variable({ shape: [8, 3], data: Float32Array.from({ length: 24 }, () => r() - 0.5) }, { name: 'w2' });
  const h = dropout(relu(add(matMul(x, w1), b1)), 0.25);
  const loss = mean(softmaxCrossEntropy(y, matMul(h, w2)));
  return { x, y, loss, params: [w1, b1, w2] };
}

function batches(k: number, rows: number, seed: number) {
  const r = rng(seed);
  return Array.from({ length: k }, () => {
    const xs = { shape: [rows, 6], data: Float32Array.from({ length: rows * 6 }, () => r() * 2 - 1) };
    const ys = { shape: [rows, 3], data: new Float32Array(rows * 3) };
    for (let i = 0; i < rows; i++) ys.data[i * 3 + Math.floor(r() * 3)] = 1;
    return [xs, ys];
  });
}

/** Steps one by one, as a user without `steps` would. */
async function oneByOne(train: TrainStep, data: readonly (readonly FeedValue[])[], opts?: Parameters<TrainStep['step']>[1]) {
  const out = [];
  for (const b of data) out.push(await train.step(b, opts));
  return out;
}

const valuesOf = async (s: Session, vs: readonly Variable[]) => (await Promise.all(vs.map((v) => s.getValue(v)))).map(bits);

const ortWeb = (await import('onnxruntime-web')) as unknown as typeof ort;

/** Counts the runs of the backend's onnxruntime (native or web) while `f` runs. */
async function countRuns<T>(backend: string, f: () => Promise<T>): Promise<{ result: T; runs: number }> {
  // The runtime's class (its type is declared as a factory): every run of every onnxruntime session goes through it.
  const runtime = backend === 'onnx-wasm' ? ortWeb : ort;
  const spy = vi.spyOn((runtime.InferenceSession as unknown as { prototype: { run(...a: unknown[]): unknown } }).prototype, 'run');
  try {
    const result = await f();
    return { result, runs: spy.mock.calls.length };
  } finally {
    spy.mockRestore();
  }
}

describe.each(BACKENDS)('TrainStep.steps on %s', (backend) => {
  const m = mlp(1);
  const compiled = async (make: () => Parameters<typeof compile>[0], opts: Partial<Parameters<typeof compile>[2]> = {}) => {
    const s = await Session.create({ backend, seed: 3 });
    const train = compile(make(), s, { loss: m.loss, inputs: [m.x, m.y], ...opts });
    return { s, train, all: [...m.params, ...train.stateVariables] };
  };

  it('k steps in one call equal k single steps bit for bit (adam, dropout): one onnxruntime run on onnx and onnx-wasm', async () => {
    const data = batches(8, 5, 7);
    const a = await compiled(() => adam({ lr: 0.01 })), b = await compiled(() => adam({ lr: 0.01 }));
    const one = await countRuns(backend, () => oneByOne(a.train, data));
    const many = await countRuns(backend, () => b.train.steps(data));
    if (backend.startsWith('onnx')) {
      expect(one.runs).toBe(8);
      expect(many.runs).toBe(1);
    }
    expect(b.s.step).toBe(8);
    expect(many.result.map((r) => r.loss)).toEqual(one.result.map((r) => r.loss));
    expect(many.result.map((r) => r.lr)).toEqual(one.result.map((r) => r.lr));
    expect(many.result.every((r) => r.runs === 1 && r.outputs.length === 0)).toBe(true);
    // The losses move: the steps really trained.
    expect(new Set(many.result.map((r) => r.loss)).size).toBe(8);
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    // And the next single step after them draws what it would have drawn.
    const next = batches(1, 5, 99)[0]!;
    expect((await b.train.step(next)).loss).toBe((await a.train.step(next)).loss);
    await a.s.dispose();
    await b.s.dispose();
  });

  it('accumulate (a cond in every step), a ragged last batch, extra outputs and model updates: the same as one by one', async () => {
    const data = [...batches(5, 6, 11), ...batches(2, 3, 12)];
    const bn = nn.batchNorm({ momentum: 0.8, name: 'bnSteps' });
    const bnLoss = add(m.loss, mean(bn.apply(m.x)));
    const make = async () => {
      const s = await Session.create({ backend, seed: 5 });
      const train = compile(accumulate(sgd({ lr: 0.1, momentum: 0.9 }), { steps: 3 }), s, {
        loss: bnLoss, inputs: [m.x, m.y], outputs: [mean(m.x)], updates: bn.updates,
      });
      return { s, train, all: [...train.params, ...train.stateVariables, bn.movingMean!, bn.movingVariance!] };
    };
    const a = await make(), b = await make();
    const one = await countRuns(backend, () => oneByOne(a.train, data));
    const many = await countRuns(backend, () => b.train.steps(data));
    // Five batches of 6 rows in one run, then the two of 3 rows in another.
    if (backend.startsWith('onnx')) expect(many.runs).toBe(2);
    expect(many.result.map((r) => [r.loss, r.lr, ...r.outputs.map((o) => o.data[0])])).toEqual(one.result.map((r) => [r.loss, r.lr, ...r.outputs.map((o) => o.data[0])]));
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    expect(Array.from((await b.s.getValue(bn.movingMean!)).data).some((v) => v !== 0)).toBe(true);
    // The partial group the 7 steps left (7 = 2·3 + 1) flushes alike.
    expect(await b.train.flush()).toBe(true);
    expect(await a.train.flush()).toBe(true);
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    await a.s.dispose();
    await b.s.dispose();
  });

  it('a conv net (conv + bias fused into the Conv on onnx, max-pool, dropout) takes k steps in one call bit for bit', async () => {
    const r = rng(71);
    const x = placeholder([null, 6, 6, 1], { name: 'img' });
    const y = placeholder([null, 3], { name: 'lab' });
    const net = nn.sequential([nn.conv2d(4, 3, { activation: 'relu', seed: 1 }), nn.maxPool2d({ size: 2 }), nn.flatten(), nn.dropout(0.25), nn.dense(3, { seed: 2 })]);
    const loss = mean(softmaxCrossEntropy(y, net.apply(x)));
    const data = Array.from({ length: 4 }, () => [
      { shape: [2, 6, 6, 1], data: Float32Array.from({ length: 72 }, () => r() - 0.5) },
      { shape: [2, 3], data: Float32Array.of(1, 0, 0, 0, 0, 1) },
    ]);
    const make = async () => {
      const s = await Session.create({ backend, seed: 9 });
      const train = compile(adam({ lr: 0.01 }), s, { loss, inputs: [x, y] });
      return { s, train, all: [...train.params, ...train.stateVariables] };
    };
    const a = await make(), b = await make();
    const one = await oneByOne(a.train, data);
    const many = await countRuns(backend, () => b.train.steps(data));
    if (backend.startsWith('onnx')) expect(many.runs).toBe(1);
    expect(many.result.map((q) => q.loss)).toEqual(one.map((q) => q.loss));
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    await a.s.dispose();
    await b.s.dispose();
  });

  it('a variable the step writes but never reads (a model update of the batch mean) is carried too', async () => {
    const last = variable(0, { name: 'lastMean', trainable: false });
    const data = batches(5, 4, 81);
    const make = async () => {
      const s = await Session.create({ backend, seed: 2 });
      const train = compile(sgd({ lr: 0.1 }), s, { loss: m.loss, inputs: [m.x, m.y], updates: [[last, mean(m.x)]] });
      return { s, train };
    };
    const a = await make(), b = await make();
    await oneByOne(a.train, data);
    await b.train.steps(data);
    const want = Array.from(data[4]![0]!.data as Float32Array).reduce((p, v) => p + v, 0) / 24;
    expect((await b.s.getValue(last)).data[0]).toBeCloseTo(want, 5);
    expect(bits(await b.s.getValue(last))).toEqual(bits(await a.s.getValue(last)));
    expect(await valuesOf(b.s, m.params)).toEqual(await valuesOf(a.s, m.params));
    await a.s.dispose();
    await b.s.dispose();
  });

  it('heun fused (one run a step, its result from that run) and rk4 fused take k steps in one call, bit for bit', async () => {
    const data = batches(5, 5, 91);
    for (const make of [() => heun({ lr: 0.05, fused: true }), () => rungeKutta({ lr: 0.05, tableau: tableaux.rk4, fused: true })]) {
      const a = await compiled(make), b = await compiled(make);
      const one = await oneByOne(a.train, data);
      const many = await countRuns(backend, () => b.train.steps(data));
      if (backend.startsWith('onnx')) expect(many.runs).toBe(1);
      const view = (r: StepResult) => [r.loss, r.lr, r.runs, r.gradientEvaluations];
      expect(many.result.map(view)).toEqual(one.map(view));
      expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
      await a.s.dispose();
      await b.s.dispose();
    }
  });

  it('a multi-run step (heun) takes the steps one by one, with the same results', async () => {
    const data = batches(4, 5, 21);
    const a = await compiled(() => heun({ lr: 0.05 })), b = await compiled(() => heun({ lr: 0.05 }));
    const one = await oneByOne(a.train, data);
    const many = await b.train.steps(data);
    expect(many.map((r) => [r.loss, r.runs])).toEqual(one.map((r) => [r.loss, r.runs]));
    expect(many[0]!.runs).toBe(2);
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    await a.s.dispose();
    await b.s.dispose();
  });

  it('atomic as a whole: a non-finite batch refuses all of them (onNonFinite error), naming the batch; skip skips only it', async () => {
    const data = batches(5, 5, 31);
    const bad = data.map((b) => [...b]);
    bad[2]![0] = { shape: [5, 6], data: Float32Array.from({ length: 30 }, (_, i) => (i === 7 ? NaN : 0.5)) };
    const a = await compiled(() => adam({ lr: 0.01 }));
    await a.train.step(data[0]!); // not at the initial state
    const before = await valuesOf(a.s, a.all);
    const err = await a.train.steps(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as Error).message).toMatch(/^TrainStep\.steps: batches\[2\]: .*none of the 5 steps was applied/);
    expect(await valuesOf(a.s, a.all)).toEqual(before);
    expect(a.s.step).toBe(1);
    // Under 'skip' the refused step is reported and the others apply, as five single steps would.
    const c = await compiled(() => adam({ lr: 0.01 }), { onNonFinite: 'skip' }), d = await compiled(() => adam({ lr: 0.01 }), { onNonFinite: 'skip' });
    const one = await oneByOne(c.train, bad);
    const many = await d.train.steps(bad);
    expect(many.map((r) => r.skipped?.what)).toEqual([undefined, undefined, 'loss', undefined, undefined]);
    expect(many.map((r) => r.loss)).toEqual(one.map((r) => r.loss));
    expect(await valuesOf(d.s, d.all)).toEqual(await valuesOf(c.s, c.all));
    expect(d.s.step).toBe(5);
    for (const x of [a, c, d]) await x.s.dispose();
  });

  it('empty batches (0 rows) and ±Inf in a batch: the same as one by one, under skip', async () => {
    const data = batches(4, 3, 101);
    const empty = [{ shape: [0, 6], data: new Float32Array(0) }, { shape: [0, 3], data: new Float32Array(0) }];
    const inf = data.map((b) => [...b]);
    inf[1]![0] = { shape: [3, 6], data: Float32Array.from({ length: 18 }, (_, i) => (i === 4 ? Infinity : i === 5 ? -Infinity : 0.25)) };
    const all = [empty, empty, ...inf];
    const a = await compiled(() => adam({ lr: 0.01 }), { onNonFinite: 'skip' }), b = await compiled(() => adam({ lr: 0.01 }), { onNonFinite: 'skip' });
    const one = await oneByOne(a.train, all);
    const many = await b.train.steps(all);
    const view = (r: StepResult) => [r.loss, r.skipped?.what];
    expect(many.map(view)).toEqual(one.map(view));
    // The empty batches' mean loss is NaN (refused), the ±Inf one is refused, the rest trained.
    expect(many.map((r) => r.skipped !== undefined)).toEqual([true, true, false, true, false, false]);
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    expect(b.s.step).toBe(6);
    await a.s.dispose();
    await b.s.dispose();
  });

  it('is one transaction: calls issued meanwhile land before or after all of its steps', async () => {
    const data = batches(6, 5, 41);
    const a = await compiled(() => sgd({ lr: 0.1 }));
    const w = m.params[0]!;
    const start = bits(await a.s.getValue(w));
    const during = a.train.steps(data);
    const read = a.s.getValue(w); // issued after steps: sees all six steps
    const other = a.train.steps(data.slice(0, 2)); // a second caller: after the first
    const [many, seen, more] = await Promise.all([during, read, other]);
    expect(many).toHaveLength(6);
    expect(more).toHaveLength(2);
    const b = await compiled(() => sgd({ lr: 0.1 }));
    await oneByOne(b.train, data);
    expect(bits(seen)).toEqual(bits(await b.s.getValue(w)));
    expect(bits(seen)).not.toEqual(start);
    await oneByOne(b.train, data.slice(0, 2));
    expect(await valuesOf(a.s, a.all)).toEqual(await valuesOf(b.s, b.all));
    await a.s.dispose();
    await b.s.dispose();
  });

  it('refuses bad input naming the batch, before any step runs; no batches is no step', async () => {
    const a = await compiled(() => sgd({ lr: 0.1 }));
    const data = batches(3, 5, 51);
    const before = await valuesOf(a.s, a.all);
    await expect(a.train.steps('x' as never)).rejects.toThrow(/^TrainStep\.steps: batches must be an array of batches/);
    await expect(a.train.steps([data[0]!, [data[1]![0]!]])).rejects.toThrow(/^TrainStep\.steps: batches\[1\]: expected 2 value\(s\) \('x(_\d+)?', 'y(_\d+)?'\), got 1/);
    await expect(a.train.steps([data[0]!, [{ shape: [5, 7], data: new Float32Array(35) }, data[1]![1]!]])).rejects.toThrow(/batches\[1\] feed 'x(_\d+)?'.*\[5,7\]/);
    await expect(a.train.steps([data[0]!, [data[1]![0]!, { shape: [4, 3], data: new Float32Array(12) }]])).rejects.toThrow(SymflowError);
    expect(await a.train.steps([])).toEqual([]);
    expect(await valuesOf(a.s, a.all)).toEqual(before);
    expect(a.s.step).toBe(0);
    await a.s.dispose();
  });

  it('takes uploaded batches (DeviceValue) too', async () => {
    const data = batches(4, 5, 61);
    const a = await compiled(() => sgd({ lr: 0.1 })), b = await compiled(() => sgd({ lr: 0.1 }));
    const up = data.map(([xs, ys]) => [b.s.upload(m.x, xs!), b.s.upload(m.y, ys!)]);
    await oneByOne(a.train, data);
    await b.train.steps(up);
    expect(await valuesOf(b.s, b.all)).toEqual(await valuesOf(a.s, a.all));
    for (const u of up.flat()) u.dispose();
    await a.s.dispose();
    await b.s.dispose();
  });
});
