import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { OnnxBackend } from '../src/backend/onnx/backend.js';
import { ThreadChooser } from '../src/backend/onnx/threads.js';
import {
  Session, adam, add, compile, constant, heun, layers, mean, mul, nn, placeholder, sgd, sparseSoftmaxCrossEntropy, sum, variablesOf,
  type AnyOptimizer, type Tensor, type Variable,
} from '../src/index.js';

const CORES = availableParallelism();
const ROWS = 16;

/** A small MLP step on onnx at `threads`; `seen` gets the intra-op threads of each run (the backend's probe). */
async function mlp(threads: number | 'auto', make: () => AnyOptimizer, seen?: number[]) {
  const s = await Session.create({ backend: 'onnx', threads });
  if (seen) (s.backendImpl as unknown as OnnxBackend).probe = { ran: (r) => seen.push(r.threads) };
  const x = placeholder([null, 20]);
  const y = placeholder([null], { dtype: 'int32' });
  let h: Tensor = x;
  [32, 32, 5].forEach((units, i) => { h = layers.dense(h, units, { activation: i < 2 ? 'relu' : 'linear', seed: 7 + i }); });
  const loss = mean(sparseSoftmaxCrossEntropy(h, y));
  const train = compile(make(), s, { loss, params: variablesOf(loss), inputs: [x, y] });
  const batch = (k: number) => [
    Float32Array.from({ length: ROWS * 20 }, (_, i) => Math.sin(i * 0.37 + k)),
    Int32Array.from({ length: ROWS }, (_, i) => (i + k) % 5),
  ];
  return { s, train, loss, x, y, batch, params: variablesOf(loss) };
}

// By the model's structure (session.variables is in name order, and names differ between the sessions' graphs).
const valuesOf = async (s: Session, vars: readonly Variable[]) => Promise.all(vars.map(async (v) => Array.from((await s.getValue(v)).data as Float32Array)));

describe("Session.create threads: 'auto'", () => {
  it("accepts 'auto' and refuses other strings and 0, naming Session.create, the option and the value", async () => {
    const s = await Session.create({ backend: 'onnx', threads: 'auto' });
    expect(s.backend).toBe('onnx');
    await s.dispose();
    await expect(Session.create({ backend: 'onnx', threads: 'fast' as unknown as number })).rejects.toThrow(
      `Session.create: threads must be an integer from 1 to 1024, got "fast" (or 'auto'`);
    await expect(Session.create({ backend: 'onnx', threads: 0 })).rejects.toThrow('Session.create: threads must be an integer from 1 to 1024, got 0');
    await expect(Session.create({ backend: 'onnx', threads: 'AUTO' as unknown as number })).rejects.toThrow('got "AUTO"');
  });

  it.each([['sgd', () => sgd({ lr: 0.1, momentum: 0.9 })], ['adam', () => adam({ lr: 0.01 })]] as const)(
    "%s: 'auto' trains bit for bit like threads 1 and all cores, while it runs on both sessions", async (_name, make) => {
      const seen: number[] = [];
      const runs = [await mlp(1, make), await mlp(CORES, make), await mlp('auto', make, seen)];
      const losses = runs.map(() => [] as number[]);
      // 30 steps: the chooser's warm-up (4 runs on each session) and then probes of the other one.
      for (let k = 0; k < 30; k++) {
        for (const [i, r] of runs.entries()) losses[i]!.push((await r.train.step(r.batch(k % 3))).loss);
      }
      const [one, all, auto] = await Promise.all(runs.map((r) => valuesOf(r.s, r.params)));
      expect(auto).toEqual(one);
      expect(auto).toEqual(all);
      expect(losses[2]).toEqual(losses[0]);
      // It trained: the loss fell, from about ln 5.
      expect(losses[2]![0]!).toBeGreaterThan(1.3);
      expect(losses[2]![29]!).toBeLessThan(0.8 * losses[2]![0]!);
      if (CORES > 1) {
        expect(seen.filter((t) => t === 1).length).toBeGreaterThanOrEqual(4);
        expect(seen.filter((t) => t === CORES).length).toBeGreaterThanOrEqual(4);
      }
      await Promise.all(runs.map((r) => r.s.dispose()));
    });

  it('a conv net trains bit for bit alike at 1 thread and at all cores (what lets auto switch mid-training)', async () => {
    const results: number[][][] = [];
    const losses: number[][] = [];
    for (const threads of [1, CORES]) {
      const s = await Session.create({ backend: 'onnx', threads });
      const x = placeholder([null, 12, 12, 1]);
      const y = placeholder([null], { dtype: 'int32' });
      const net = nn.sequential([
        nn.conv2d(8, 3, { activation: 'relu', seed: 1 }), nn.conv2d(16, 3, { activation: 'relu', seed: 2 }), nn.maxPool2d({ size: 2 }),
        nn.flatten(), nn.dense(32, { activation: 'relu', seed: 3 }), nn.dense(4, { seed: 4 }),
      ]);
      const loss = mean(sparseSoftmaxCrossEntropy(net.apply(x), y));
      const train = compile(adam({ lr: 0.01 }), s, { loss, params: variablesOf(loss), inputs: [x, y] });
      const xs = { shape: [ROWS, 12, 12, 1], data: Float32Array.from({ length: ROWS * 144 }, (_, i) => Math.cos(i * 0.11)) };
      const ys = Int32Array.from({ length: ROWS }, (_, i) => i % 4);
      const l: number[] = [];
      for (let k = 0; k < 5; k++) l.push((await train.step([xs, ys])).loss);
      results.push(await valuesOf(s, variablesOf(loss)));
      losses.push(l);
      await s.dispose();
    }
    expect(results[1]).toEqual(results[0]);
    expect(losses[1]).toEqual(losses[0]);
    expect(losses[0]![4]!).toBeLessThan(losses[0]![0]!);
  });

  it("heun (two runs a step) with 'auto': snapshot restore and calls issued during training give threads 1's values", async () => {
    const make = () => heun({ lr: 0.05 });
    const [ref, auto] = [await mlp(1, make), await mlp('auto', make, [])];
    const evals: number[][] = [[], []];
    for (const [i, r] of [ref, auto].entries()) {
      const f = r.s.function({ inputs: [r.x, r.y], outputs: [r.loss] });
      for (let k = 0; k < 8; k++) await r.train.step(r.batch(k));
      const snap = r.s.snapshot(r.s.variables);
      const before = await valuesOf(r.s, r.params);
      // Steps and evaluations issued together: the session orders them; then back to the snapshot.
      const pending = [r.train.step(r.batch(1)), f(r.batch(2)), r.train.step(r.batch(2)), f(r.batch(2))];
      const done = await Promise.all(pending);
      evals[i]!.push((done[1] as { data: Float32Array }[])[0]!.data[0]!, (done[3] as { data: Float32Array }[])[0]!.data[0]!);
      expect(await valuesOf(r.s, r.params)).not.toEqual(before);
      snap.restore();
      snap.dispose();
      expect(await valuesOf(r.s, r.params)).toEqual(before);
      for (let k = 0; k < 8; k++) await r.train.step(r.batch(k + 3));
    }
    expect(evals[1]).toEqual(evals[0]);
    // The evaluation after the second step saw that step's update.
    expect(evals[0]![1]).not.toBe(evals[0]![0]);
    expect(await valuesOf(auto.s, auto.params)).toEqual(await valuesOf(ref.s, ref.params));
    await Promise.all([ref.s.dispose(), auto.s.dispose()]);
  });
});

describe('ThreadChooser', () => {
  /** Drives the chooser with run times from `ms(choice, run)`; returns the choices made. */
  function drive(c: ThreadChooser, n: number, ms: (choice: 0 | 1, run: number) => number): (0 | 1)[] {
    const out: (0 | 1)[] = [];
    for (let i = 0; i < n; i++) {
      const choice = c.next();
      out.push(choice);
      c.record(choice, ms(choice, i));
    }
    return out;
  }

  it('warms up on all cores then on 1 thread, and keeps the faster one', () => {
    const quiet = new ThreadChooser();
    const seq = drive(quiet, 40, (c) => (c === 1 ? 1.7 : 2.5));
    expect(seq.slice(0, 8)).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    expect(seq.slice(8, 16)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(quiet.state().current).toBe(1);
    const busy = new ThreadChooser();
    drive(busy, 40, (c) => (c === 1 ? 7.5 : 2.6));
    expect(busy.state().current).toBe(0);
    expect(busy.state().estimates[0]).toBeCloseTo(2.6, 5);
  });

  it('the first (slow) run of each session and of each probe is not counted', () => {
    const c = new ThreadChooser();
    // The warm-up's first runs are 50 ms (buffers allocated); then all cores takes 1.7 ms, 1 thread 2.5 ms.
    drive(c, 8, (choice, i) => (i === 0 || i === 4 ? 50 : choice === 1 ? 1.7 : 2.5));
    expect(c.state().current).toBe(1);
    expect(c.state().estimates[1]).toBeCloseTo(1.7, 5);
    // Load comes: all cores now 8 ms. A probe of 1 thread whose first two runs are cold (6 ms) then 2.6 ms: it switches.
    let probeRun = 0;
    const seq = drive(c, 30, (choice) => (choice === 1 ? 8 : probeRun++ < 2 ? 6 : 2.6));
    expect(c.state().current).toBe(0);
    expect(c.state().estimates[0]).toBeCloseTo(2.6, 5);
    // Within a window of runs of the load's arrival (the drift check probes once the median of the last 8 moved).
    expect(seq.indexOf(0)).toBeGreaterThan(0);
    expect(seq.indexOf(0)).toBeLessThanOrEqual(10);
  });

  it('one slow run (descheduled) moves no choice', () => {
    const c = new ThreadChooser();
    const seq = drive(c, 200, (choice, i) => (choice === 1 ? (i % 37 === 0 ? 25 : 1.7) : 2.6));
    expect(c.state().current).toBe(1);
    expect(seq.slice(8).filter((v) => v === 0).length).toBeLessThanOrEqual(4 * 6);
  });

  it('probes less often while the choice holds, and goes back when the load leaves', () => {
    const c = new ThreadChooser();
    let load = true;
    const seq = drive(c, 600, (choice, i) => {
      if (i === 300) load = false;
      return choice === 1 ? (load ? 8 : 1.7) : 2.6;
    });
    const probesIn = (a: number, b: number) => seq.slice(a, b).filter((v, k, all) => v === 1 && (k === 0 || all[k - 1] !== 1)).length;
    // 1 thread held through the load: probes (bursts of 6 all-cores runs) thin out (8, 16, … up to 128 runs apart).
    expect(seq.slice(150, 300).filter((v) => v === 1).length).toBeLessThanOrEqual(3 * 6);
    expect(probesIn(150, 300)).toBeGreaterThanOrEqual(1);
    // The load left at run 300: all cores again by the next probe, 1 thread only in rare probes after.
    expect(c.state().current).toBe(1);
    expect(seq.slice(450).filter((v) => v === 0).length).toBeLessThanOrEqual(3 * 6);
  });
});

describe('onnx model outputs', () => {
  it('a value returned twice, a fed value, a constant and a computed value come back right', async () => {
    const s = await Session.create({ backend: 'onnx' });
    const x = placeholder([3]);
    const h = add(mul(x, 2), 1);
    const f = s.function({ inputs: [x], outputs: [h, h, x, constant([4, 5]), sum(h)] });
    const out = await f([[1, 2, 3]]);
    expect(out.map((t) => Array.from(t.data))).toEqual([[3, 5, 7], [3, 5, 7], [1, 2, 3], [4, 5], [15]]);
    await s.dispose();
  });
});
