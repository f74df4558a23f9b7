import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, Observable, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  Session, add, compile, defineMultiRun, exp, fit, heun, matMul, mean, mul, placeholder, rungeKutta, sam, sgd, square, sub,
  tableaux, tanh, variable, type AnyOptimizer, type HostTensor, type TrainEvent,
} from '../src/index.js';
import { BACKENDS, bits, rng } from './helpers.js';

/**
 * Every call on a session is one transaction in its queue: calls take effect in the order they were issued, as if
 * each ran alone — also a whole multi-run training step, its snapshot and its rollback. Each test issues calls
 * without waiting (as concurrent callers do) and compares with the serial result.
 */

function model(seed = 1) {
  const r = rng(seed);
  const x = placeholder([null, 3], { name: 'x' });
  const y = placeholder([null, 1], { name: 'y' });
  const w = variable({ shape: [3, 1], data: Float32Array.from({ length: 3 }, () => r() - 0.5) }, { name: 'w' });
  const b = variable(0.1, { name: 'b' });
  const loss = mean(square(sub(add(matMul(tanh(x), w), b), y)));
  return { x, y, w, b, loss };
}

function data(seed: number, rows = 8): [number[][], number[][]] {
  const r = rng(seed);
  const xs = Array.from({ length: rows }, () => [r() * 2 - 1, r() * 2 - 1, r() * 2 - 1]);
  return [xs, xs.map(([a, b2, c]) => [a! - 2 * b2! + 0.5 * c!])];
}

async function state(s: Session): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  // Names carry a unique suffix per build (w_12); the same model built again is compared by its plain names.
  for (const v of s.variables) out[v.name.replace(/_\d+/g, '')] = bits(await s.getValue(v)).join(',');
  return out;
}

async function fresh(backend: (typeof BACKENDS)[number], make: () => AnyOptimizer, seed = 1) {
  const s = await Session.create({ backend });
  const m = model(seed);
  const train = compile(make(), s, { loss: m.loss, inputs: [m.x, m.y] });
  return { s, m, train };
}

describe.each(BACKENDS)('steps are transactions on %s', (backend) => {
  it('a failing adaptive RK45 step issued before a setValue does not undo the setValue', async () => {
    const make = () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 1, adaptive: { tol: 1e-12, maxRejections: 1 } });
    const { s, m, train } = await fresh(backend, make);
    const before = await state(s);
    const stepping = train.step(data(2));
    const setting = s.setValue(m.w, [[7], [8], [9]]);
    await expect(stepping).rejects.toThrow(/rejected 2 times/);
    await setting;
    // Serial: the failed step changes nothing, then w is set.
    const after = await state(s);
    expect(Array.from((await s.getValue(m.w)).data)).toEqual([7, 8, 9]);
    for (const name of Object.keys(before)) if (name !== 'w') expect(after[name], name).toBe(before[name]);
    await s.dispose();
  });

  it('setValue during a heun step gives "step, then set" (the order they were issued)', async () => {
    const { s, m, train } = await fresh(backend, () => heun({ lr: 0.1 }));
    const batch = data(3);
    const stepping = train.step(batch);
    const setting = s.setValue(m.b, 5);
    await Promise.all([stepping, setting]);
    const got = await state(s);
    // Serial replay on a fresh session.
    const r = await fresh(backend, () => heun({ lr: 0.1 }));
    await r.train.step(batch);
    await r.s.setValue(r.m.b, 5);
    expect(got).toEqual(await state(r.s));
    expect(Array.from((await s.getValue(m.b)).data)).toEqual([5]);
    await s.dispose();
    await r.s.dispose();
  });

  it('two fits subscribed at once on one heun TrainStep interleave whole steps, never runs', async () => {
    const A = data(4), B = data(5);
    const opts = { epochs: 4, batchSize: 8, shuffle: false } as const;
    const run = await fresh(backend, () => heun({ lr: 0.05 }));
    const order: string[] = [];
    const losses = (name: string, o: Observable<TrainEvent>) => lastValueFrom(o.pipe(toArray())).then((es) =>
      es.flatMap((e) => (e.type === 'step' ? [e.loss] : [])));
    const tagged = (name: string) => fit(run.train, name === 'A' ? A : B, opts);
    const [la, lb] = await Promise.all(['A', 'B'].map((name) => {
      const o = tagged(name);
      return losses(name, new Observable<TrainEvent>((sub) => o.subscribe({
        next: (e) => { if (e.type === 'step') order.push(name); sub.next(e); }, error: (e) => sub.error(e), complete: () => sub.complete(),
      })));
    }));
    // The steps did interleave (A and B alternate at least once), so the check below means something.
    expect(order.join('')).toMatch(/AB|BA/);
    expect(order.join('').replace(/A/g, '')).toHaveLength(4);
    // Replay serially in the order the steps finished: every loss and the final state must be the same.
    const replay = await fresh(backend, () => heun({ lr: 0.05 }));
    const queue = { A: [...la!], B: [...lb!] };
    for (const who of order) {
      const r = await replay.train.step(who === 'A' ? A : B);
      expect(bitsOf(r.loss), `${who}'s step`).toBe(bitsOf(queue[who as 'A' | 'B'].shift()!));
    }
    expect(await state(run.s)).toEqual(await state(replay.s));
    await run.s.dispose();
    await replay.s.dispose();
  });

  it('a save issued while a sam step is in flight writes the state after the step, never the ascent point', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'symflow-txn-'));
    const { s, m, train } = await fresh(backend, () => sam({ inner: sgd({ lr: 0.1 }), rho: 0.5 }));
    const before = await state(s);
    const stepping = train.step(data(6));
    const saving = s.save(join(dir, 'c.bin'));
    await Promise.all([stepping, saving]);
    const after = await state(s);
    expect(after['w']).not.toBe(before['w']);
    await s.setValue(m.w, [[0], [0], [0]]);
    await s.restore(join(dir, 'c.bin'));
    expect(await state(s)).toEqual(after);
    await s.dispose();
  });

  it('periodic saves beside a running sam fit each hold the state of a step boundary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'symflow-txn-'));
    const make = () => sam({ inner: sgd({ lr: 0.05, momentum: 0.5 }), rho: 0.5 });
    const { s, train } = await fresh(backend, make);
    const batch = data(7);
    const steps = 150;
    let saves = 0;
    let done = false;
    const saving = (async () => {
      while (!done) {
        await s.save(join(dir, `c${saves++}.bin`));
        await new Promise((r) => setImmediate(r));
      }
    })();
    await lastValueFrom(fit(train, batch, { epochs: steps, batchSize: 8, shuffle: false }).pipe(toArray()));
    done = true;
    await saving;
    expect(saves).toBeGreaterThanOrEqual(2);
    // Every state between steps, from a serial replay.
    const replay = await fresh(backend, make);
    const boundaries = new Set([JSON.stringify(await state(replay.s))]);
    for (let k = 0; k < steps; k++) {
      await replay.train.step(batch);
      boundaries.add(JSON.stringify(await state(replay.s)));
    }
    for (let i = 0; i < saves; i++) {
      await s.restore(join(dir, `c${i}.bin`));
      expect(boundaries.has(JSON.stringify(await state(s))), `checkpoint ${i} is the state after some step`).toBe(true);
    }
    await s.dispose();
    await replay.s.dispose();
  });

  it("onNonFinite: 'skip' in one fit never undoes the good steps another fit makes meanwhile", async () => {
    const { s, train } = await fresh(backend, () => heun({ lr: 0.05 }));
    const good = data(8);
    const bad: [number[][], number[][]] = [good[0], good[1].map(() => [NaN])];
    const [ea, eb] = await Promise.all([
      lastValueFrom(fit(train, bad, { epochs: 5, batchSize: 8, shuffle: false, onNonFinite: 'skip' }).pipe(toArray())),
      lastValueFrom(fit(train, good, { epochs: 5, batchSize: 8, shuffle: false }).pipe(toArray())),
    ]);
    expect(ea.filter((e) => e.type === 'skipped')).toHaveLength(5);
    expect(eb.filter((e) => e.type === 'step')).toHaveLength(5);
    const replay = await fresh(backend, () => heun({ lr: 0.05 }));
    for (let k = 0; k < 5; k++) await replay.train.step(good);
    expect(await state(s)).toEqual(await state(replay.s));
    await s.dispose();
    await replay.s.dispose();
  });

  it('dispose() during a step fails that step with a clear error and frees everything', async () => {
    const probe = await Session.create({ backend });
    const base = probe.numTensors();
    const s = await Session.create({ backend });
    const m = model();
    let release!: () => void;
    const between = new Promise<void>((r) => { release = r; });
    let reached!: () => void;
    const midway = new Promise<void>((r) => { reached = r; });
    let gated = false;
    // Two runs with the test in control of the gap between them.
    const twoRuns = defineMultiRun('twoRuns', (ctx) => {
      const p0 = ctx.slots('twoRuns', 'p0');
      const first = ctx.run({ outputs: [ctx.loss], updates: ctx.params.map((p, i) => [p0[i]!, p] as const) });
      const second = ctx.run({ updates: ctx.params.map((p, i) => [p, sub(p, mul(0.1, ctx.grads[i]!))] as const) });
      return {
        runsPerStep: 2,
        variables: p0,
        async step(batch) {
          const [loss] = await first(batch);
          if (gated) {
            reached();
            await between;
          }
          await second(batch);
          return { loss: loss!.data[0]!, outputs: [], runs: 2 };
        },
      };
    });
    const train = compile(twoRuns, s, { loss: m.loss, inputs: [m.x, m.y] });
    await train.step(data(9));
    gated = true;
    const stepping = train.step(data(9));
    const queued = s.getValue(m.w);
    await midway;
    const disposing = s.dispose();
    release();
    const failed = await stepping.then(() => undefined, (e: Error) => e);
    const refused = await queued.then(() => undefined, (e: Error) => e);
    await disposing;
    expect(probe.numTensors(), 'tensors after dispose').toBe(base);
    expect(failed?.message).toMatch(/TrainStep\.step: the session was disposed during the step/);
    expect(refused?.message).toMatch(/Session\.getValue: the session is disposed/);
    await probe.dispose();
  });

  it('dispose() during a heun step frees everything (the snapshot is not restored into the disposed session)', async () => {
    const probe = await Session.create({ backend });
    const base = probe.numTensors();
    const { s, train } = await fresh(backend, () => heun({ lr: 0.1 }));
    await train.step(data(10));
    const stepping = train.step(data(10));
    // Lands between the two runs (or, on onnx, during the first).
    await new Promise((r) => setImmediate(r));
    const disposing = s.dispose();
    const outcome = await stepping.then(() => 'done', (e: Error) => e.message);
    await disposing;
    if (outcome !== 'done') expect(outcome).toMatch(/disposed/);
    expect(probe.numTensors()).toBe(base);
    await probe.dispose();
  });

  it('a random mix of concurrent calls gives exactly the serial result, every read included', async () => {
    const make = () => heun({ lr: 0.05 });
    const dir = mkdtempSync(join(tmpdir(), 'symflow-txn-'));
    const ops = Array.from({ length: 40 }, (_, i) => {
      const r = (i * 7919) % 10;
      return r < 5 ? 'step' : r < 7 ? 'get' : r < 9 ? 'set' : 'save';
    });
    const play = async (concurrent: boolean) => {
      const { s, m, train } = await fresh(backend, make);
      const reads: Promise<string>[] = [];
      const pending: Promise<unknown>[] = [];
      for (const [i, op] of ops.entries()) {
        const p: Promise<unknown> = op === 'step' ? train.step(data(20 + i)).then((res) => reads.push(Promise.resolve(`loss ${bitsOf(res.loss)}`)))
          : op === 'get' ? s.getValue(m.w).then((v: HostTensor) => reads.push(Promise.resolve(bits(v).join(','))))
          : op === 'set' ? s.setValue(m.b, i / 10)
          : s.save(join(dir, `${concurrent ? 'c' : 's'}${i}.bin`));
        if (concurrent) pending.push(p);
        else await p;
      }
      await Promise.all(pending);
      const final = await state(s);
      await s.dispose();
      return { reads: await Promise.all(reads), final };
    };
    const serial = await play(false);
    const together = await play(true);
    expect(together.reads).toEqual(serial.reads);
    expect(together.final).toEqual(serial.final);
  });
});

describe('sessions of different TF.js backends do not mix', () => {
  it('cpu, wasm, onnx and onnx-wasm sessions used at the same time each give bit-identical results to running alone', async () => {
    const make = async (backend: 'cpu' | 'wasm') => {
      const s = await Session.create({ backend });
      const x = placeholder([null, 64], { name: 'x' });
      const r = rng(3);
      const w = variable({ shape: [64, 64], data: Float32Array.from({ length: 64 * 64 }, () => r() - 0.5) }, { name: 'w' });
      const f = s.function({ inputs: [x], outputs: [exp(tanh(matMul(x, w)))] });
      return { s, f };
    };
    const inputs = Array.from({ length: 100 }, (_, i) => {
      const r = rng(100 + i);
      return Array.from({ length: 16 }, () => Array.from({ length: 64 }, () => r() * 4 - 2));
    });
    const cpu = await make('cpu'), wasm = await make('wasm');
    const alone = { cpu: [] as string[], wasm: [] as string[] };
    for (const v of inputs) alone.cpu.push(bits((await cpu.f([v]))[0]!).join(','));
    for (const v of inputs) alone.wasm.push(bits((await wasm.f([v]))[0]!).join(','));
    // The two backends round differently here, so a kernel run on the wrong one would show.
    expect(alone.cpu.filter((c, i) => c !== alone.wasm[i]).length).toBeGreaterThan(50);
    const together = await Promise.all(inputs.flatMap((v) => [cpu.f([v]), wasm.f([v])]));
    const mixed = together.map((t) => bits(t[0]!).join(','));
    let wrong = 0;
    inputs.forEach((_, i) => {
      if (mixed[2 * i] !== alone.cpu[i]) wrong++;
      if (mixed[2 * i + 1] !== alone.wasm[i]) wrong++;
    });
    expect(wrong).toBe(0);
    // Training steps too: an sgd step on each, interleaved, equals each alone.
    const trainOn = async (backend: 'cpu' | 'wasm' | 'onnx' | 'onnx-wasm') => {
      const s = await Session.create({ backend });
      const m = model(4);
      return { s, train: compile(sgd({ lr: 0.1, momentum: 0.9 }), s, { loss: m.loss, inputs: [m.x, m.y] }) };
    };
    // Two onnx-wasm sessions among them: onnxruntime-web's sessions share one WebAssembly instance.
    const [c1, w1, o1, ow1, ow2] = await Promise.all([trainOn('cpu'), trainOn('wasm'), trainOn('onnx'), trainOn('onnx-wasm'), trainOn('onnx-wasm')]);
    // The second takes its 20 steps in calls of 5 (onnxruntime Loop runs) while the others step one at a time.
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => [c1, w1, o1, ow1].map((t) => t.train.step(data(i)))).flat(),
      ...Array.from({ length: 4 }, (_, j) => ow2.train.steps(Array.from({ length: 5 }, (_, i) => data(5 * j + i)))),
    ]);
    for (const [backend, got] of [['cpu', c1], ['wasm', w1], ['onnx', o1], ['onnx-wasm', ow1], ['onnx-wasm', ow2]] as const) {
      const ref = await trainOn(backend);
      for (let i = 0; i < 20; i++) await ref.train.step(data(i));
      expect(await state(got.s), backend).toEqual(await state(ref.s));
      await ref.s.dispose();
    }
    for (const x of [cpu, wasm, c1, w1, o1, ow1, ow2]) await x.s.dispose();
  });
});

function bitsOf(n: number): string {
  return Buffer.from(Float64Array.of(n).buffer).toString('hex');
}
