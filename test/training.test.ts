import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  concat, defer, from, lastValueFrom, map, Observable, type Subscription, take, tap, throwError, timer, toArray, concatMap,
} from 'rxjs';
import {
  abs, accumulate, adam, add, type AnyOptimizer, type Batch, compile, earlyStopping, epochOrder, type EpochEvent, fit,
  heun, matMul, mean, placeholder, type PullSource, rungeKutta, Session, sgd, type SkippedEvent, square,
  type StepEvent, sub, SymflowError, tableaux, type TrainEvent, type TrainStep, type Variable, variable,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, rng } from './helpers.js';

// ---------------------------------------------------------------------------------------------------------------
// Data: 10 training rows and 7 validation rows of a noisy linear function, the same on every backend and run.

const r = rng(987654321);
const makeRows = (n: number): [number[][], number[][]] => {
  const xs = Array.from({ length: n }, () => [r() * 2 - 1, r() * 2 - 1]);
  return [xs, xs.map(([a, b]) => [1.5 * a! - 0.7 * b! + 0.2 + 0.1 * (r() - 0.5)])];
};
const [X, Y] = makeRows(10);
const [VX, VY] = makeRows(7);
/** Rows [from, to) of the training data as one batch. */
const rows = (from: number, to: number): Batch => [X.slice(from, to), Y.slice(from, to)];
/** The rows `idx` (in that order) as one batch. */
const gather = (idx: ArrayLike<number>, xs = X, ys = Y): Batch => [Array.from(idx, (i) => xs[i]!), Array.from(idx, (i) => ys[i]!)];

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

const isStep = (e: TrainEvent): e is StepEvent => e.type === 'step';
const isEpoch = (e: TrainEvent): e is EpochEvent => e.type === 'epoch';
const isSkipped = (e: TrainEvent): e is SkippedEvent => e.type === 'skipped';

function collect(obs: Observable<TrainEvent>): Promise<TrainEvent[]> {
  return lastValueFrom(obs.pipe(toArray()));
}

/** Every event, and how the stream ended. */
function record(obs: Observable<TrainEvent>): Promise<{ events: TrainEvent[]; error?: unknown; completed: boolean }> {
  return new Promise((resolve) => {
    const events: TrainEvent[] = [];
    obs.subscribe({
      next: (e) => events.push(e),
      error: (error) => resolve({ events, error, completed: false }),
      complete: () => resolve({ events, completed: true }),
    });
  });
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** [type, epoch, batch, step] of each event (null where the event has no such field). */
function shape(events: readonly TrainEvent[]): unknown[] {
  return events.map((e) => [e.type, e.epoch, 'batch' in e ? e.batch : null, 'step' in e ? e.step : null]);
}

/**
 * A TrainStep that calls `stop` while its `call`-th step is still in flight (then lets the step finish); `settled`
 * resolves once that step has finished.
 */
function stoppingDuring(train: TrainStep, call: number, stop: () => void): { train: TrainStep; settled: Promise<unknown> } {
  let calls = 0;
  let done: (v: unknown) => void = () => {};
  const settled = new Promise((resolve) => { done = resolve; });
  return {
    settled,
    train: {
      ...train,
      step: (values) => {
        const p = train.step(values);
        if (++calls === call) {
          stop();
          p.then(done, done);
        }
        return p;
      },
    },
  };
}

/** Resolves once `cond()` holds (polled on timers), or rejects after `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(2);
  }
}

describe.each(BACKENDS)('fit on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  /** Linear regression y ≈ x·w + b, with a fixed start, compiled with `opt`. */
  function model(opt: AnyOptimizer) {
    const w = variable([[0.3], [-0.2]], { name: 'w' });
    const b = variable(0.1, { name: 'b' });
    const x = placeholder([null, 2], { name: 'x' });
    const y = placeholder([null, 1], { name: 'y' });
    const err = sub(add(matMul(x, w), b), y);
    const loss = mean(square(err));
    const mae = mean(abs(err));
    const train = compile(opt, s, { loss, inputs: [x, y] });
    const vars: Variable[] = [...train.params, ...train.stateVariables];
    const counter = (re: RegExp) => {
      const v = train.stateVariables.find((t) => re.test(t.name));
      if (v === undefined) throw new Error(`no state variable matches ${re}`);
      return v;
    };
    return { w, b, x, y, loss, mae, train, vars, counter };
  }
  type Model = ReturnType<typeof model>;

  const state = async (m: Model) => Promise.all(m.vars.map(async (v) => bits(await s.getValue(v))));
  const scalar = async (v: Variable) => (await s.getValue(v)).data[0]!;
  /** Steps `m` manually on `batches`; returns the losses. */
  async function replay(m: Model, batches: readonly Batch[]): Promise<number[]> {
    const losses: number[] = [];
    for (const b of batches) losses.push((await m.train.step(b)).loss);
    return losses;
  }
  const EPOCH4 = [rows(0, 4), rows(4, 8), rows(8, 10)];

  // -------------------------------------------------------------------------------------------------------------
  describe('event sequences', () => {
    it('10 rows, batchSize 4, 2 epochs, no shuffle: step ×3, epoch, step ×3, epoch, complete', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const { events, completed, error } = await record(fit(m.train, [X, Y], { epochs: 2, batchSize: 4, shuffle: false }));
      expect(error).toBeUndefined();
      expect(completed).toBe(true);
      expect(shape(events)).toEqual([
        ['step', 0, 0, 0], ['step', 0, 1, 1], ['step', 0, 2, 2], ['epoch', 0, null, null],
        ['step', 1, 0, 3], ['step', 1, 1, 4], ['step', 1, 2, 5], ['epoch', 1, null, null],
      ]);
      for (const e of events) {
        expect(typeof e.loss).toBe('number');
        expect(Number.isFinite(e.loss)).toBe(true);
        if (isStep(e)) {
          expect(e.runs).toBe(1);
          expect(e.ms).toBeGreaterThanOrEqual(0);
          // A single-run optimizer reports the lr it used (float32 0.1), and no adaptive fields.
          expect(Object.keys(e).sort()).toEqual(['batch', 'epoch', 'loss', 'lr', 'ms', 'runs', 'step', 'type']);
          expect(e.lr).toBe(Math.fround(0.1));
        }
      }
      const steps = events.filter(isStep);
      const epochs = events.filter(isEpoch);
      for (const ep of epochs) {
        const mine = steps.filter((e) => e.epoch === ep.epoch).map((e) => e.loss);
        expect(ep.steps).toBe(3);
        expect(ep.loss).toBe((mine[0]! + mine[1]! + mine[2]!) / 3);
        expect(ep.ms).toBeGreaterThanOrEqual(0);
        expect('val' in ep).toBe(false);
      }
      // The batches were rows 0–3, 4–7 and 8–9 (a batch of 2): a manual replay gives the same losses and state.
      const ref = model(sgd({ lr: 0.1 }));
      expect(steps.map((e) => e.loss)).toEqual(await replay(ref, [...EPOCH4, ...EPOCH4]));
      expect(await state(m)).toEqual(await state(ref));
    });

    it('dropRemainder: 2 steps per epoch, the 2-row batch is never trained', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const events = await collect(fit(m.train, [X, Y], { epochs: 2, batchSize: 4, shuffle: false, dropRemainder: true }));
      expect(shape(events)).toEqual([
        ['step', 0, 0, 0], ['step', 0, 1, 1], ['epoch', 0, null, null],
        ['step', 1, 0, 2], ['step', 1, 1, 3], ['epoch', 1, null, null],
      ]);
      expect(events.filter(isEpoch).map((e) => e.steps)).toEqual([2, 2]);
      const ref = model(sgd({ lr: 0.1 }));
      expect(events.filter(isStep).map((e) => e.loss)).toEqual(await replay(ref, [rows(0, 4), rows(4, 8), rows(0, 4), rows(4, 8)]));
      expect(await state(m)).toEqual(await state(ref));
    });

    it('typed-array columns and {shape, data} columns train exactly like nested arrays', async () => {
      const nested = model(sgd({ lr: 0.1 }));
      const typed = model(sgd({ lr: 0.1 }));
      const a = await collect(fit(nested.train, [X, Y], { epochs: 1, batchSize: 3, seed: 5 }));
      const b = await collect(fit(typed.train, [
        new Float32Array(X.flat()), { shape: [10, 1], data: Y.flat() },
      ], { epochs: 1, batchSize: 3, seed: 5 }));
      expect(b.map((e) => e.loss)).toEqual(a.map((e) => e.loss));
      expect(await state(typed)).toEqual(await state(nested));
    });

    it('multi-run and adaptive optimizers report runs, lr, accepted, rejections and errorNorm', async () => {
      const h = model(heun({ lr: 0.1 }));
      const he = (await collect(fit(h.train, [X, Y], { epochs: 1, batchSize: 5, shuffle: false }))).filter(isStep);
      expect(he.map((e) => e.runs)).toEqual([2, 2]);
      for (const e of he) expect(e.lr).toBeCloseTo(0.1, 6);
      const a = model(rungeKutta({ tableau: tableaux.bogackiShampine, lr: 0.1, adaptive: { tol: 1e-2 } }));
      const ae = (await collect(fit(a.train, [X, Y], { epochs: 1, batchSize: 5, shuffle: false }))).filter(isStep);
      expect(ae.length).toBe(2);
      for (const e of ae) {
        expect(e.accepted).toBe(true);
        expect(Number.isInteger(e.rejections)).toBe(true);
        expect(e.runs).toBe(4 + 3 * e.rejections!); // a new batch each step: no FSAL reuse; a retry skips the stored first stage
        expect(Number.isFinite(e.errorNorm)).toBe(true);
        expect(e.errorNorm!).toBeLessThanOrEqual(1); // scaled by tol: accepted at ≤ 1
        expect(e.lr!).toBeGreaterThan(0);
      }
    });

    it('validation: val.loss and val.mae equal a direct session.run on the validation data', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const events = await collect(fit(m.train, [X, Y], { epochs: 2, batchSize: 4, shuffle: false, validation: { data: [VX, VY], metrics: { mae: m.mae } } }));
      expect(shape(events).map((e) => (e as unknown[])[0])).toEqual(['step', 'step', 'step', 'epoch', 'step', 'step', 'step', 'epoch']);
      const [e0, e1] = events.filter(isEpoch);
      expect(Object.keys(e1!.val!).sort()).toEqual(['loss', 'mae']);
      // After the last epoch nothing changes any more (sgd has nothing to flush): evaluate directly.
      const [l, mae] = await s.run([m.loss, m.mae], [[m.x, VX], [m.y, VY]]);
      expectClose([e1!.val!['loss']!, e1!.val!['mae']!], [l!.data[0]!, mae!.data[0]!], 1e-6, 0);
      // The first epoch's validation saw other parameters.
      expect(e0!.val!['loss']).not.toBe(e1!.val!['loss']);
      expect(e0!.val!['loss']!).toBeGreaterThan(e1!.val!['loss']!);
    });

    it('validation.batchSize splits the data; results are weighted by rows', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const events = await collect(fit(m.train, [X, Y], { epochs: 1, batchSize: 4, shuffle: false, validation: { data: [VX, VY], metrics: { mae: m.mae }, batchSize: 3 } }));
      const val = events.filter(isEpoch)[0]!.val!;
      // Batches of 3, 3 and 1 rows.
      const sums = [0, 0];
      for (const [a, b] of [[0, 3], [3, 6], [6, 7]] as const) {
        const out = await s.run([m.loss, m.mae], [[m.x, VX.slice(a, b)], [m.y, VY.slice(a, b)]]);
        out.forEach((o, i) => (sums[i]! += o.data[0]! * (b - a)));
      }
      expectClose([val['loss']!, val['mae']!], [sums[0]! / 7, sums[1]! / 7], 1e-6, 0);
      // …which is the mean over all rows, up to float32 rounding.
      const [l, mae] = await s.run([m.loss, m.mae], [[m.x, VX], [m.y, VY]]);
      expectClose([val['loss']!, val['mae']!], [l!.data[0]!, mae!.data[0]!], 1e-5, 1e-7);
    });

    it('each subscription is its own run: subscribing twice trains twice, step numbers restart at 0', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const run = fit(m.train, [X, Y], { epochs: 1, batchSize: 4, shuffle: false });
      const w0 = await state(m);
      const first = await collect(run);
      const w1 = await state(m);
      const second = await collect(run);
      expect(shape(first)).toEqual(shape(second));
      expect(first.filter(isStep).map((e) => e.step)).toEqual([0, 1, 2]);
      expect(second.filter(isStep).map((e) => e.step)).toEqual([0, 1, 2]);
      expect(w1).not.toEqual(w0);
      const ref = model(sgd({ lr: 0.1 }));
      const losses = await replay(ref, [...EPOCH4, ...EPOCH4]);
      expect([...first, ...second].filter(isStep).map((e) => e.loss)).toEqual(losses);
      expect(await state(m)).toEqual(await state(ref));
      // The second run started from where the first ended: its losses are lower.
      expect(second[3]!.loss).toBeLessThan(first[3]!.loss);
    });

    it('refuses bad options and mismatched data up front with SymflowError', () => {
      const m = model(sgd({ lr: 0.1 }));
      const bad: [unknown, RegExp][] = [
        [{ epochs: 0 }, /epochs must be a positive integer/],
        [{ batchSize: 1.5 }, /batchSize must be a positive integer/],
        [{ onNonFinite: 'ignore' }, /onNonFinite/],
        [{ validation: { data: [VX, VY], batchSize: 0 } }, /validation.batchSize/],
        [{ validation: { data: [VX, VY], metrics: { vec: matMul(m.x, m.w) } } }, /must be a scalar/],
      ];
      for (const [opts, re] of bad) {
        expect(() => fit(m.train, [X, Y], opts as never)).toThrow(SymflowError);
        expect(() => fit(m.train, [X, Y], opts as never)).toThrow(re);
      }
      expect(() => fit(m.train, [X], {})).toThrow(/1 column\(s\) for 2 input\(s\)/);
      expect(() => fit(m.train, [X, Y.slice(0, 9)], {})).toThrow(/columns differ in length/);
      expect(() => fit(m.train, [new Float32Array(7), Y], {})).toThrow(/not a whole number of rows/);
      expect(() => fit(m.train, [[], []], {})).toThrow(SymflowError);
    });

    it('an unusable data source errors the stream', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const { events, error } = await record(fit(m.train, 42 as never, {}));
      expect(events).toEqual([]);
      expect(error).toBeInstanceOf(SymflowError);
      expect((error as Error).message).toMatch(/data must be in-memory columns/);
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('cancellation', () => {
    /** How many mini-batches the optimizer has applied, read from its counters. */
    interface Case { name: string; make: () => AnyOptimizer; applied: (m: Model) => Promise<number> }
    const CASES: Case[] = [
      { name: 'sgd momentum', make: () => sgd({ lr: 0.1, momentum: 0.9 }), applied: (m) => scalar(m.counter(/^sgd\/iterations/)) },
      { name: 'heun (2 runs per step)', make: () => heun({ lr: 0.1 }), applied: (m) => scalar(m.counter(/^heun\/iterations/)) },
      {
        name: 'accumulate(sgd, {steps: 3})',
        make: () => accumulate(sgd({ lr: 0.1 }), { steps: 3 }),
        applied: async (m) => 3 * (await scalar(m.counter(/^sgd\/iterations/))) + (await scalar(m.counter(/^accumulate\/count/))),
      },
    ];
    /** batchSize 2: 5 batches per epoch. */
    const batchesOf = (n: number) => Array.from({ length: n }, (_, k) => rows((2 * (k % 5)), 2 * (k % 5) + 2));

    describe.each(CASES)('$name', ({ make, applied }) => {
      it('take(3): unsubscribes after the 3rd step event; no more events; state = 3 replayed steps', async () => {
        const m = model(make());
        const upstream: TrainEvent[] = [];
        const events = await collect(fit(m.train, [X, Y], { epochs: 3, batchSize: 2, shuffle: false }).pipe(tap((e) => upstream.push(e)), take(3)));
        expect(shape(events)).toEqual([['step', 0, 0, 0], ['step', 0, 1, 1], ['step', 0, 2, 2]]);
        const after = await state(m);
        await sleep(50);
        expect(upstream.length).toBe(3);
        expect(await state(m)).toEqual(after);
        expect(await applied(m)).toBe(3);
        const ref = model(make());
        expect(events.map((e) => e.loss)).toEqual(await replay(ref, batchesOf(3)));
        expect(after).toEqual(await state(ref));
      });

      it('unsubscribing inside next (mid-epoch, 2nd epoch) stops right there', async () => {
        const m = model(make());
        const seen: TrainEvent[] = [];
        await new Promise<void>((resolve, reject) => {
          const sub: Subscription = fit(m.train, [X, Y], { epochs: 3, batchSize: 2, shuffle: false }).subscribe({
            next: (e) => {
              seen.push(e);
              if (e.type === 'step' && e.step === 6) {
                sub.unsubscribe();
                resolve();
              }
            },
            error: reject,
            complete: () => reject(new Error('completed although unsubscribed')),
          });
        });
        await sleep(50);
        expect(seen.length).toBe(8); // 5 steps, the epoch, 2 steps
        expect(seen.filter(isStep).length).toBe(7);
        expect(await applied(m)).toBe(7);
        const ref = model(make());
        await replay(ref, batchesOf(7));
        expect(await state(m)).toEqual(await state(ref));
      });

      it('unsubscribing while a step is in flight: that step completes whole, without an event', async () => {
        const m = model(make());
        const seen: TrainEvent[] = [];
        let sub: Subscription | undefined;
        const { train, settled } = stoppingDuring(m.train, 4, () => sub!.unsubscribe());
        sub = fit(train, [X, Y], { epochs: 3, batchSize: 2, shuffle: false }).subscribe((e) => seen.push(e));
        await settled;
        await sleep(30);
        const stepsSeen = seen.filter(isStep).length;
        expect(stepsSeen).toBe(3);
        const done = await applied(m);
        // Either the step in flight finished (one more than the events) or it was not started; never half of it.
        expect([stepsSeen, stepsSeen + 1]).toContain(done);
        expect(done).toBe(4);
        const ref = model(make());
        await replay(ref, batchesOf(done));
        expect(await state(m)).toEqual(await state(ref));
        await sleep(20);
        expect(await applied(m)).toBe(done);
      });
    });

    it('accumulate: completing a run flushes the ragged group (flush: true), flush: false keeps it pending', async () => {
      const opt = () => accumulate(sgd({ lr: 0.1 }), { steps: 2 });
      const flushed = model(opt());
      const kept = model(opt());
      await collect(fit(flushed.train, [X, Y], { epochs: 1, batchSize: 4, shuffle: false }));
      await collect(fit(kept.train, [X, Y], { epochs: 1, batchSize: 4, shuffle: false, flush: false }));
      expect(await scalar(flushed.counter(/^accumulate\/count/))).toBe(0);
      expect(await scalar(kept.counter(/^accumulate\/count/))).toBe(1);
      const ref = model(opt());
      await replay(ref, EPOCH4);
      expect(await state(kept)).toEqual(await state(ref));
      expect(await ref.train.flush()).toBe(true);
      expect(await state(flushed)).toEqual(await state(ref));
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('non-finite losses', () => {
    // Row 5 (in the 2nd batch of 4) has a NaN feature.
    const XN = X.map((row, i) => (i === 5 ? [NaN, row[1]!] : row));
    const bad = (from: number, to: number): Batch => [XN.slice(from, to), Y.slice(from, to)];

    it("default policy: the stream errors with 'non-finite loss'; the bad step is undone", async () => {
      const m = model(adam({ lr: 0.05 }));
      const { events, error, completed } = await record(fit(m.train, [XN, Y], { epochs: 2, batchSize: 4, shuffle: false }));
      expect(completed).toBe(false);
      expect(error).toBeInstanceOf(SymflowError);
      expect((error as Error).message).toMatch(/non-finite loss NaN at epoch 0, batch 1/);
      expect(shape(events)).toEqual([['step', 0, 0, 0]]);
      const ref = model(adam({ lr: 0.05 }));
      await replay(ref, [bad(0, 4)]);
      expect(await state(m)).toEqual(await state(ref));
      expect(await scalar(m.counter(/^adam\/iterations/))).toBe(1);
    });

    it('default policy leaks no backend tensors', async () => {
      const m = model(adam({ lr: 0.05 }));
      await record(fit(m.train, [XN, Y], { epochs: 1, batchSize: 4, shuffle: false }));
      const before = s.numTensors();
      await record(fit(m.train, [XN, Y], { epochs: 1, batchSize: 4, shuffle: false }));
      expect(s.numTensors()).toBe(before);
    });

    it("onNonFinite 'skip': a skipped event, training goes on, state = a run without the bad batch", async () => {
      const m = model(adam({ lr: 0.05 }));
      const { events, completed } = await record(fit(m.train, [XN, Y], { epochs: 2, batchSize: 4, shuffle: false, onNonFinite: 'skip' }));
      expect(completed).toBe(true);
      expect(shape(events)).toEqual([
        ['step', 0, 0, 0], ['skipped', 0, 1, 1], ['step', 0, 2, 2], ['epoch', 0, null, null],
        ['step', 1, 0, 3], ['skipped', 1, 1, 4], ['step', 1, 2, 5], ['epoch', 1, null, null],
      ]);
      const skipped = events.filter(isSkipped);
      for (const e of skipped) expect(Number.isNaN(e.loss)).toBe(true);
      const steps = events.filter(isStep);
      for (const ep of events.filter(isEpoch)) {
        const mine = steps.filter((e) => e.epoch === ep.epoch).map((e) => e.loss);
        expect(ep.steps).toBe(2);
        expect(ep.loss).toBe((mine[0]! + mine[1]!) / 2);
      }
      const ref = model(adam({ lr: 0.05 }));
      const losses = await replay(ref, [bad(0, 4), bad(8, 10), bad(0, 4), bad(8, 10)]);
      expect(steps.map((e) => e.loss)).toEqual(losses);
      expect(await state(m)).toEqual(await state(ref));
      expect(await scalar(m.counter(/^adam\/iterations/))).toBe(4);
    });

    it("'skip' with a multi-run optimizer (heun) undoes the whole step", async () => {
      const m = model(heun({ lr: 0.1 }));
      const events = await collect(fit(m.train, [XN, Y], { epochs: 1, batchSize: 4, shuffle: false, onNonFinite: 'skip' }));
      expect(events.map((e) => e.type)).toEqual(['step', 'skipped', 'step', 'epoch']);
      const ref = model(heun({ lr: 0.1 }));
      await replay(ref, [bad(0, 4), bad(8, 10)]);
      expect(await state(m)).toEqual(await state(ref));
    });

    it("'skip' when every batch is bad: epoch with 0 steps and a NaN loss; nothing changed", async () => {
      const m = model(sgd({ lr: 0.1, momentum: 0.5 }));
      const before = await state(m);
      const allBad = X.map(() => [NaN, 0]);
      const events = await collect(fit(m.train, [allBad, Y], { epochs: 1, batchSize: 4, shuffle: false, onNonFinite: 'skip' }));
      expect(events.map((e) => e.type)).toEqual(['skipped', 'skipped', 'skipped', 'epoch']);
      const ep = events.filter(isEpoch)[0]!;
      expect(ep.steps).toBe(0);
      expect(Number.isNaN(ep.loss)).toBe(true);
      expect(await state(m)).toEqual(before);
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('seeded shuffle', () => {
    const opts = { epochs: 2, batchSize: 3 } as const;

    it('the same seed gives the same losses and parameters; another seed another order', async () => {
      const a = model(sgd({ lr: 0.05 }));
      const b = model(sgd({ lr: 0.05 }));
      const c = model(sgd({ lr: 0.05 }));
      const ea = await collect(fit(a.train, [X, Y], { ...opts, seed: 7 }));
      const eb = await collect(fit(b.train, [X, Y], { ...opts, seed: 7 }));
      const ec = await collect(fit(c.train, [X, Y], { ...opts, seed: 8 }));
      const la = ea.filter(isStep).map((e) => e.loss);
      expect(eb.filter(isStep).map((e) => e.loss)).toEqual(la);
      expect(await state(b)).toEqual(await state(a));
      expect(ec.filter(isStep).map((e) => e.loss)).not.toEqual(la);
      expect(await state(c)).not.toEqual(await state(a));
    });

    it('batches follow epochOrder(rows, true, seed, epoch): each epoch reshuffles', async () => {
      // lr 0: the step loss depends only on which rows the batch holds.
      const m = model(sgd({ lr: 0 }));
      const events = await collect(fit(m.train, [X, Y], { ...opts, seed: 11 }));
      const ref = model(sgd({ lr: 0 }));
      const expected: number[][] = [];
      for (let epoch = 0; epoch < 2; epoch++) {
        const order = epochOrder(10, true, 11, epoch);
        const batches = [0, 3, 6, 9].map((a) => gather(order.subarray(a, Math.min(a + 3, 10))));
        expected.push(await replay(ref, batches));
      }
      const steps = events.filter(isStep);
      expect([0, 1].map((ep) => steps.filter((e) => e.epoch === ep).map((e) => e.loss))).toEqual(expected);
      expect(expected[0]).not.toEqual(expected[1]);
      expect(Array.from(epochOrder(10, true, 11, 0))).not.toEqual(Array.from(epochOrder(10, true, 11, 1)));
    });

    it('shuffles by default with seed 0', async () => {
      const a = model(sgd({ lr: 0.05 }));
      const b = model(sgd({ lr: 0.05 }));
      const c = model(sgd({ lr: 0.05 }));
      const ea = await collect(fit(a.train, [X, Y], { epochs: 1, batchSize: 3 }));
      const eb = await collect(fit(b.train, [X, Y], { epochs: 1, batchSize: 3, shuffle: true, seed: 0 }));
      const ec = await collect(fit(c.train, [X, Y], { epochs: 1, batchSize: 3, shuffle: false }));
      expect(eb.map((e) => e.loss)).toEqual(ea.map((e) => e.loss));
      expect(ec.map((e) => e.loss)).not.toEqual(ea.map((e) => e.loss));
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('streamed data sources', () => {
    const BATCHES = [rows(0, 2), rows(2, 4), rows(4, 6), rows(6, 8), rows(8, 10)];

    it('pull source: at most one batch requested ahead of the finished steps; every batch trained', async () => {
      const m = model(sgd({ lr: 0.1 }));
      const requests: number[] = [];
      let stepsDone = 0;
      const violations: string[] = [];
      const source: PullSource = (req) => req.pipe(
        tap((i) => {
          requests.push(i);
          if (requests.length > stepsDone + 1) violations.push(`request ${requests.length} after ${stepsDone} steps`);
        }),
        map((i) => BATCHES[i]!),
        take(BATCHES.length),
      );
      const events = await collect(fit(m.train, source, { epochs: 2 }).pipe(tap((e) => {
        if (e.type !== 'step') return;
        stepsDone++;
        if (requests.length > stepsDone + 1) violations.push(`${requests.length} requests at step ${stepsDone}`);
      })));
      expect(violations).toEqual([]);
      // The source is asked again, from 0, for every epoch.
      expect(requests).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
      expect(shape(events.filter(isStep))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => ['step', k < 5 ? 0 : 1, k % 5, k]));
      const ref = model(sgd({ lr: 0.1 }));
      expect(events.filter(isStep).map((e) => e.loss)).toEqual(await replay(ref, [...BATCHES, ...BATCHES]));
      expect(await state(m)).toEqual(await state(ref));
    });

    it('pull source answering asynchronously (timer) is still asked one batch at a time', async () => {
      const m = model(sgd({ lr: 0.1 }));
      let requested = 0;
      let stepsDone = 0;
      let maxAhead = 0;
      const source: PullSource = (req) => req.pipe(
        tap(() => { requested++; maxAhead = Math.max(maxAhead, requested - stepsDone); }),
        concatMap((i) => timer(1).pipe(map(() => BATCHES[i]!))),
        take(BATCHES.length),
      );
      const events = await collect(fit(m.train, source).pipe(tap((e) => { if (e.type === 'step') stepsDone++; })));
      expect(maxAhead).toBe(1);
      expect(requested).toBe(5);
      const ref = model(sgd({ lr: 0.1 }));
      expect(events.filter(isStep).map((e) => e.loss)).toEqual(await replay(ref, BATCHES));
    });

    it('plain Observable: one step per batch, in order, subscribed once per epoch', async () => {
      const m = model(sgd({ lr: 0.1 }));
      let subscriptions = 0;
      const source = defer(() => {
        subscriptions++;
        return from(BATCHES);
      });
      const events = await collect(fit(m.train, source, { epochs: 2 }));
      expect(subscriptions).toBe(2);
      expect(shape(events)).toEqual([
        ...[0, 1, 2, 3, 4].map((k) => ['step', 0, k, k]), ['epoch', 0, null, null],
        ...[0, 1, 2, 3, 4].map((k) => ['step', 1, k, k + 5]), ['epoch', 1, null, null],
      ]);
      const ref = model(sgd({ lr: 0.1 }));
      expect(events.filter(isStep).map((e) => e.loss)).toEqual(await replay(ref, [...BATCHES, ...BATCHES]));
      expect(await state(m)).toEqual(await state(ref));
    });

    it('async iterable: next() is called only after the previous step finished', async () => {
      const m = model(sgd({ lr: 0.1 }));
      let stepsDone = 0;
      let stepEndedAt = 0;
      const pulls: { stepsDone: number; afterStep: boolean }[] = [];
      let closed = 0;
      async function* gen() {
        try {
          for (const b of BATCHES) {
            pulls.push({ stepsDone, afterStep: performance.now() >= stepEndedAt });
            yield b;
          }
        } finally {
          closed++;
        }
      }
      const iterable: AsyncIterable<Batch> = { [Symbol.asyncIterator]: () => gen() };
      const events = await collect(fit(m.train, iterable, { epochs: 2 }).pipe(tap((e) => {
        if (e.type !== 'step') return;
        stepsDone++;
        stepEndedAt = performance.now();
      })));
      expect(pulls.map((p) => p.stepsDone)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(pulls.every((p) => p.afterStep)).toBe(true);
      expect(closed).toBe(2);
      const ref = model(sgd({ lr: 0.1 }));
      expect(events.filter(isStep).map((e) => e.loss)).toEqual(await replay(ref, [...BATCHES, ...BATCHES]));
    });

    it('a one-shot async generator serves one epoch; the next epoch errors (no batches)', async () => {
      const m = model(sgd({ lr: 0.1 }));
      async function* gen() { yield* BATCHES; }
      const { events, error } = await record(fit(m.train, gen(), { epochs: 2 }));
      expect(events.map((e) => e.type)).toEqual(['step', 'step', 'step', 'step', 'step', 'epoch']);
      expect(error).toBeInstanceOf(SymflowError);
      expect((error as Error).message).toMatch(/no batches in epoch 1/);
    });

    it('a source that errors makes the stream error, after the batches before it were trained', async () => {
      const boom = new Error('boom');
      const sources: [string, () => Parameters<typeof fit>[1]][] = [
        ['observable', () => concat(from(BATCHES.slice(0, 2)), throwError(() => boom))],
        ['pull source', () => ((req: Observable<number>) => req.pipe(map((i) => {
          if (i === 2) throw boom;
          return BATCHES[i]!;
        }))) as PullSource],
        ['async iterable', () => (async function* () {
          yield BATCHES[0]!;
          yield BATCHES[1]!;
          throw boom;
        })()],
      ];
      for (const [name, make] of sources) {
        const m = model(sgd({ lr: 0.1 }));
        const { events, error, completed } = await record(fit(m.train, make(), { epochs: 2 }));
        expect(completed, name).toBe(false);
        expect(error, name).toBe(boom);
        expect(events.map((e) => e.type), name).toEqual(['step', 'step']);
        const ref = model(sgd({ lr: 0.1 }));
        await replay(ref, BATCHES.slice(0, 2));
        expect(await state(m), name).toEqual(await state(ref));
      }
    });

    it('unsubscribing at a step boundary releases the source subscription', async () => {
      const m = model(sgd({ lr: 0.1 }));
      let torn = 0;
      // Never completes: a live feed.
      const source = new Observable<Batch>((sub) => {
        for (const b of BATCHES) sub.next(b);
        return () => { torn++; };
      });
      const events = await collect(fit(m.train, source).pipe(take(2)));
      expect(events.length).toBe(2);
      await until(() => torn > 0, 2000);
      await sleep(10);
      expect(torn).toBe(1);
    });

    it('unsubscribing while waiting for a batch releases the source subscription', async () => {
      const m = model(sgd({ lr: 0.1 }));
      let torn = 0;
      const source = new Observable<Batch>((sub) => {
        sub.next(BATCHES[0]!);
        sub.next(BATCHES[1]!);
        // …then waits for more data that never comes.
        return () => { torn++; };
      });
      let steps = 0;
      const sub = fit(m.train, source).subscribe((e) => { if (e.type === 'step') steps++; });
      await until(() => steps === 2);
      await sleep(20); // the loop now waits for a third batch
      sub.unsubscribe();
      await sleep(30);
      expect(torn).toBe(1);
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('event loop', () => {
    it('yields between steps: setImmediate and setTimeout(0) callbacks run before training completes', async () => {
      const m = model(sgd({ lr: 0.01 }));
      const n = 60;
      const xs = Array.from({ length: n }, (_, i) => X[i % 10]!);
      const ys = Array.from({ length: n }, (_, i) => Y[i % 10]!);
      let steps = 0;
      let immediateAt = -1;
      let timeoutAt = -1;
      setImmediate(() => { immediateAt = steps; });
      setTimeout(() => { timeoutAt = steps; }, 0);
      const events = await collect(fit(m.train, [xs, ys], { epochs: 1, batchSize: 1 }).pipe(tap((e) => { if (e.type === 'step') steps++; })));
      expect(events.filter(isStep).length).toBe(n);
      expect(immediateAt).toBeGreaterThanOrEqual(0);
      expect(immediateAt).toBeLessThan(3);
      expect(timeoutAt).toBeGreaterThanOrEqual(0);
      expect(timeoutAt).toBeLessThan(n);
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe('earlyStopping on a real run', () => {
    it("completing the stream stops training: params stop changing (on: 'loss')", async () => {
      const m = model(sgd({ lr: 0.05 }));
      // minDelta so large that no epoch counts as an improvement after the first: stops after epoch 0 + 2 + 1.
      const events = await collect(fit(m.train, [X, Y], { epochs: 50, batchSize: 5, shuffle: false }).pipe(earlyStopping({ patience: 2, minDelta: 1e9, on: 'loss' })));
      expect(events.filter(isEpoch).map((e) => e.epoch)).toEqual([0, 1, 2, 3]);
      expect(events.length).toBe(4 * 3);
      const after = await state(m);
      await sleep(50);
      expect(await state(m)).toEqual(after);
      expect(await scalar(m.counter(/^sgd\/iterations/))).toBe(8);
      const ref = model(sgd({ lr: 0.05 }));
      await replay(ref, Array.from({ length: 8 }, (_, k) => rows(5 * (k % 2), 5 * (k % 2) + 5)));
      expect(after).toEqual(await state(ref));
    });

    it("on: 'val' (default) watches the validation loss; without validation it errors", async () => {
      const m = model(sgd({ lr: 0.05 }));
      const events = await collect(fit(m.train, [X, Y], { epochs: 6, batchSize: 5, shuffle: false, validation: { data: [VX, VY] } }).pipe(earlyStopping({ patience: 0, minDelta: 1e9 })));
      expect(events.filter(isEpoch).map((e) => e.epoch)).toEqual([0, 1]);
      const n = model(sgd({ lr: 0.05 }));
      const { events: ev, error } = await record(fit(n.train, [X, Y], { epochs: 6, batchSize: 5 }).pipe(earlyStopping({ patience: 1, on: 'val' })));
      expect(error).toBeInstanceOf(SymflowError);
      expect((error as Error).message).toMatch(/needs validation/);
      expect(ev.map((e) => e.type)).toEqual(['step', 'step', 'epoch']);
      await sleep(30);
      expect(await scalar(n.counter(/^sgd\/iterations/))).toBe(2);
    });
  });
});
