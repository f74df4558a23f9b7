import { describe, expect, it } from 'vitest';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import {
  type EpochEvent, type HyperparameterTarget, type PlateauReduction, reduceOnPlateau, type ReduceOnPlateauOptions, type StepEvent,
  SymflowError, type TrainEvent,
} from '../src/index.js';

const step = (epoch: number, stepNo: number, loss: number): StepEvent => ({ type: 'step', epoch, step: stepNo, batch: 0, loss, runs: 1, ms: 1 });
const epochEv = (epoch: number, loss: number, val?: Record<string, number>): EpochEvent => ({ type: 'epoch', epoch, loss, steps: 1, ms: 1, ...(val ? { val } : {}) });

/** A target holding one value and recording every call, in order, in `log` (shared with the subscriber's entries). */
function fakeTarget(lr: number, log: string[] = [], delay = 0) {
  const target = {
    lr,
    log,
    async getHyperparameter(name: string) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      log.push(`get ${name}`);
      return target.lr;
    },
    async setHyperparameter(name: string, value: number) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      log.push(`set ${name} ${value}`);
      target.lr = value;
    },
  };
  return target;
}

/** Runs epochs with these training losses through the operator; returns the events out, the reductions and the target. */
async function run(losses: readonly number[], opts: ReduceOnPlateauOptions, lr = 1) {
  const target = fakeTarget(lr);
  const reductions: PlateauReduction[] = [];
  const events = losses.map((l, i) => epochEv(i, l));
  const out = await lastValueFrom(from(events).pipe(reduceOnPlateau(target, { monitor: 'loss', ...opts, onReduce: (r) => reductions.push(r) }), toArray()));
  expect(out).toEqual(events);
  out.forEach((e, i) => expect(e).toBe(events[i]));
  return { reductions, target, epochs: reductions.map((r) => r.epoch) };
}

describe('reduceOnPlateau', () => {
  it('reduces at the patience-th epoch in a row without improvement, and counts again from there', async () => {
    // best 1 → 0.9 (e1); e2, e3 bad → reduce at 3; 0.8 improves (e4); e5, e6 bad → reduce at 6; e7, e8 bad → at 8.
    const { epochs, reductions, target } = await run([1, 0.9, 0.95, 0.93, 0.8, 0.85, 0.86, 0.87, 0.88], { patience: 2, factor: 0.5 });
    expect(epochs).toEqual([3, 6, 8]);
    expect(reductions.map((r) => [r.from, r.to])).toEqual([[1, 0.5], [0.5, 0.25], [0.25, 0.125]]);
    expect(reductions.map((r) => r.value)).toEqual([0.93, 0.86, 0.88]);
    expect(target.lr).toBe(0.125);
    expect(target.log).toEqual(['get lr', 'set lr 0.5', 'get lr', 'set lr 0.25', 'get lr', 'set lr 0.125']);
  });

  it('an improvement smaller than minDelta is no improvement', async () => {
    // best 1: 0.95 and 0.92 are within 0.1 of it (bad, bad → reduce at 2); 0.85 < 0.9 improves; 0.8 is within 0.1 of 0.85.
    expect((await run([1, 0.95, 0.92, 0.85, 0.8, 0.79], { patience: 2, minDelta: 0.1 })).epochs).toEqual([2, 5]);
    // Exactly minDelta better is not better (Keras: value < best − minDelta).
    expect((await run([1, 0.5, 0.5], { patience: 1, minDelta: 0.5 })).epochs).toEqual([1, 2]);
    // The same losses with minDelta 0 all improve.
    expect((await run([1, 0.95, 0.92, 0.85, 0.8, 0.79], { patience: 2, minDelta: 0 })).epochs).toEqual([]);
  });

  it('defaults: factor 0.1, patience 10, and NaN is never an improvement', async () => {
    const { epochs, reductions } = await run([5, ...Array<number>(10).fill(NaN), 4], {});
    expect(epochs).toEqual([10]);
    expect(reductions[0]!.to).toBeCloseTo(0.1, 15);
  });

  it('cooldown: the epochs after a reduction are not counted', async () => {
    // patience 1, cooldown 2, flat loss: reduce at 1; 2, 3 cool down; reduce at 4; 5, 6 cool down; reduce at 7.
    expect((await run(Array<number>(8).fill(1), { patience: 1, cooldown: 2 })).epochs).toEqual([1, 4, 7]);
    // Without cooldown every epoch after the first is a reduction.
    expect((await run(Array<number>(5).fill(1), { patience: 1 })).epochs).toEqual([1, 2, 3, 4]);
  });

  it('an improvement during cooldown still becomes the best', async () => {
    // Reduce at 1, cool down at 2 where 0.5 becomes the best; 0.6 at 3 is then bad (it would improve on 1).
    expect((await run([1, 1, 0.5, 0.6], { patience: 1, cooldown: 1 })).epochs).toEqual([1, 3]);
  });

  it('minLr: a reduction stops at minLr and nothing is set once there', async () => {
    const { reductions, target } = await run(Array<number>(5).fill(1), { patience: 1, factor: 0.1, minLr: 0.05 });
    expect(reductions.map((r) => [r.epoch, r.from, r.to])).toEqual([[1, 1, 0.1], [2, 0.1, 0.05]]);
    expect(target.log).toEqual(['get lr', 'set lr 0.1', 'get lr', 'set lr 0.05', 'get lr', 'get lr']);
    expect(target.lr).toBe(0.05);
  });

  it("mode 'max' on a validation metric; the hyperparameter's name can be chosen", async () => {
    const target = fakeTarget(0.2);
    const reductions: PlateauReduction[] = [];
    const acc = [0.5, 0.6, 0.6, 0.55, 0.7, 0.7];
    const events = acc.map((a, i) => epochEv(i, 1 - i / 10, { loss: 1, accuracy: a }));
    await lastValueFrom(from(events).pipe(reduceOnPlateau(target, { monitor: 'val.accuracy', mode: 'max', patience: 2, factor: 0.5, minDelta: 0, hyperparameter: 'eta', onReduce: (r) => reductions.push(r) }), toArray()));
    // best 0.5 → 0.6 (e1); e2 (equal) and e3 bad → reduce at 3; 0.7 at 4 improves; e5 equal is bad once.
    expect(reductions).toEqual([{ epoch: 3, from: 0.2, to: 0.1, value: 0.55 }]);
    expect(target.log).toEqual(['get eta', 'set eta 0.1']);
  });

  it("monitor 'valLoss' (the default) watches the validation loss, 'loss' the training loss", async () => {
    // The training loss keeps improving while the validation loss does not.
    const events = [0, 1, 2, 3].map((i) => epochEv(i, 1 - i / 10, { loss: 2 }));
    const onVal: number[] = [];
    await lastValueFrom(from(events).pipe(reduceOnPlateau(fakeTarget(1), { patience: 2, onReduce: (r) => onVal.push(r.epoch) })));
    expect(onVal).toEqual([2]);
    const onLoss: number[] = [];
    await lastValueFrom(from(events).pipe(reduceOnPlateau(fakeTarget(1), { patience: 2, monitor: 'loss', onReduce: (r) => onLoss.push(r.epoch) })));
    expect(onLoss).toEqual([]);
  });

  it('a missing monitored value errors the stream, naming the monitor', async () => {
    const noVal = from([epochEv(0, 1)]).pipe(reduceOnPlateau(fakeTarget(1)));
    await expect(lastValueFrom(noVal)).rejects.toThrow(SymflowError);
    await expect(lastValueFrom(noVal)).rejects.toThrow(/reduceOnPlateau: monitor 'valLoss' needs validation in fit \(or use monitor: 'loss'\); epoch 0 has none/);
    const noMetric = from([epochEv(0, 1, { loss: 1 })]).pipe(reduceOnPlateau(fakeTarget(1), { monitor: 'val.accuracy' }));
    await expect(lastValueFrom(noMetric)).rejects.toThrow(/monitor 'val.accuracy': epoch 0 has no validation metric 'accuracy' \(it has loss\)/);
  });

  it('passes step and skipped events through untouched, and the triggering epoch only after the value is set', async () => {
    const log: string[] = [];
    const target = fakeTarget(1, log, 5);
    const events: TrainEvent[] = [
      step(0, 0, 1), epochEv(0, 1),
      step(1, 1, 1), epochEv(1, 1), // triggers: the events after it wait until the value is set
      step(2, 2, 0.5), { type: 'skipped', epoch: 2, step: 3, batch: 1, loss: NaN }, epochEv(2, 0.5),
    ];
    const out: TrainEvent[] = [];
    const piped = new Subject<TrainEvent>();
    const finished = new Promise<void>((resolve, reject) => {
      piped.pipe(reduceOnPlateau(target, { monitor: 'loss', patience: 1, factor: 0.5, onReduce: (r) => log.push(`reduced at ${r.epoch}`) })).subscribe({
        next: (e) => { out.push(e); log.push(`${e.type} ${e.epoch}`); },
        error: reject,
        complete: () => { log.push('complete'); resolve(); },
      });
    });
    for (const e of events) piped.next(e);
    piped.complete();
    // Everything up to the trigger went through synchronously; the rest waits for the target.
    expect(out).toEqual(events.slice(0, 3));
    await finished;
    expect(out).toEqual(events);
    out.forEach((e, i) => expect(e).toBe(events[i]));
    expect(log).toEqual([
      'step 0', 'epoch 0', 'step 1',
      'get lr', 'set lr 0.5', 'reduced at 1', 'epoch 1',
      'step 2', 'skipped 2', 'epoch 2', 'complete',
    ]);
  });

  it('a failing target errors the stream with its error', async () => {
    const failing: HyperparameterTarget = {
      getHyperparameter: async () => 1,
      setHyperparameter: async () => { throw new Error('session disposed'); },
    };
    await expect(lastValueFrom(from([epochEv(0, 1), epochEv(1, 1), epochEv(2, 1)]).pipe(reduceOnPlateau(failing, { monitor: 'loss', patience: 1 }))))
      .rejects.toThrow('session disposed');
    const notNumber: HyperparameterTarget = { getHyperparameter: async () => NaN, setHyperparameter: async () => {} };
    await expect(lastValueFrom(from([epochEv(0, 1), epochEv(1, 1)]).pipe(reduceOnPlateau(notNumber, { monitor: 'loss', patience: 1 }))))
      .rejects.toThrow(/reduceOnPlateau: the target's 'lr' is NaN, not a finite number/);
  });

  it('unsubscribing reaches the source, and a reduction queued meanwhile does not emit', async () => {
    const src = new Subject<TrainEvent>();
    const out: TrainEvent[] = [];
    const target = fakeTarget(1, [], 5);
    const sub = src.pipe(reduceOnPlateau(target, { monitor: 'loss', patience: 1 })).subscribe((e) => out.push(e));
    src.next(epochEv(0, 1));
    src.next(epochEv(1, 1));
    src.next(epochEv(2, 0.5));
    expect(src.observed).toBe(true);
    sub.unsubscribe();
    expect(src.observed).toBe(false);
    await new Promise((r) => setTimeout(r, 30));
    expect(out.map((e) => e.epoch)).toEqual([0]);
  });

  const REFUSALS: [string, () => unknown, RegExp][] = [
    ['factor 1', () => reduceOnPlateau(fakeTarget(1), { factor: 1 }), /reduceOnPlateau: factor must be a number in \(0, 1\), got 1/],
    ['factor 0', () => reduceOnPlateau(fakeTarget(1), { factor: 0 }), /factor must be a number in \(0, 1\), got 0/],
    ['patience 0', () => reduceOnPlateau(fakeTarget(1), { patience: 0 }), /reduceOnPlateau: patience must be an integer >= 1, got 0/],
    ['patience 1.5', () => reduceOnPlateau(fakeTarget(1), { patience: 1.5 }), /patience must be an integer >= 1, got 1\.5/],
    ['minDelta −1', () => reduceOnPlateau(fakeTarget(1), { minDelta: -1 }), /minDelta must be a finite number >= 0, got -1/],
    ['cooldown −1', () => reduceOnPlateau(fakeTarget(1), { cooldown: -1 }), /cooldown must be an integer >= 0, got -1/],
    ['minLr NaN', () => reduceOnPlateau(fakeTarget(1), { minLr: NaN }), /minLr must be a finite number >= 0, got NaN/],
    ['monitor', () => reduceOnPlateau(fakeTarget(1), { monitor: 'accuracy' as never }), /monitor must be 'valLoss', 'loss' or 'val.<metric>', got "accuracy"/],
    ['mode', () => reduceOnPlateau(fakeTarget(1), { mode: 'down' as never }), /mode must be 'min' or 'max', got "down"/],
    ['onReduce', () => reduceOnPlateau(fakeTarget(1), { onReduce: 3 as never }), /onReduce must be a function, got number/],
    ['target', () => reduceOnPlateau({} as never), /reduceOnPlateau: target must have getHyperparameter and setHyperparameter/],
  ];
  it.each(REFUSALS)('refuses %s with SymflowError', (_name, make, message) => {
    expect(make).toThrow(SymflowError);
    expect(make).toThrow(message);
  });
});
