import { describe, expect, it } from 'vitest';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import {
  earlyStopping, ema, type EpochEvent, everyN, initialTrainingState, reduceTrainingState, runningMean, type SkippedEvent,
  type StepEvent, SymflowError, type TrainEvent, type TrainingState, trainingState,
} from '../src/index.js';

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

const step = (epoch: number, stepNo: number, batch: number, loss: number): StepEvent => ({ type: 'step', epoch, step: stepNo, batch, loss, runs: 1, ms: 1 });
const skipped = (epoch: number, stepNo: number, batch: number): SkippedEvent => ({ type: 'skipped', epoch, step: stepNo, batch, loss: NaN });
const epochEv = (epoch: number, loss: number, val?: Record<string, number>): EpochEvent => ({ type: 'epoch', epoch, loss, steps: 1, ms: 1, ...(val ? { val } : {}) });

describe('runningMean', () => {
  it('averages the last `window` values (fewer at the start)', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-c-d-e-|', { a: 1, b: 2, c: 3, d: 4, e: 5 });
      expectObservable(src.pipe(runningMean(3))).toBe('-a-b-c-d-e-|', { a: 1, b: 1.5, c: 2, d: 3, e: 4 });
      expectSubscriptions(src.subscriptions).toBe('^----------!');
    });
  });

  it('window 1 is the identity; errors pass through; unsubscription reaches the source', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-#', { a: 7, b: -3 }, new Error('x'));
      expectObservable(src.pipe(runningMean(1))).toBe('-a-b-#', { a: 7, b: -3 }, new Error('x'));
      const long = cold('-a-b-c-d-|', { a: 1, b: 2, c: 3, d: 4 });
      expectObservable(long.pipe(runningMean(2)), '^----!').toBe('-a-b--', { a: 1, b: 1.5 });
      expectSubscriptions(long.subscriptions).toBe('^----!');
    });
  });

  it('does not drift over long runs (summed afresh)', async () => {
    const xs = Array.from({ length: 10_000 }, (_, i) => (i % 2 === 0 ? 1e8 : 0.1));
    const out = await lastValueFrom(from(xs).pipe(runningMean(2), toArray()));
    expect(out.at(-1)).toBe((1e8 + 0.1) / 2);
  });

  it.each([0, -1, 1.5, NaN])('refuses window %s with SymflowError', (w) => {
    expect(() => runningMean(w)).toThrow(SymflowError);
    expect(() => runningMean(w)).toThrow(/window must be a positive integer/);
  });
});

describe('everyN', () => {
  it('passes the n-th, 2n-th, … values', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold('-a-b-c-d-e-|', { a: 1, b: 2, c: 3, d: 4, e: 5 });
      expectObservable(src.pipe(everyN(2))).toBe('---b---d---|', { b: 2, d: 4 });
      expectObservable(src.pipe(everyN(1))).toBe('-a-b-c-d-e-|', { a: 1, b: 2, c: 3, d: 4, e: 5 });
      expectObservable(src.pipe(everyN(3))).toBe('-----c-----|', { c: 3 });
      expectObservable(src.pipe(everyN(6))).toBe('-----------|');
    });
  });

  it('errors pass through', () => {
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('-a-b-c-#', { a: 1, b: 2, c: 3 }).pipe(everyN(2))).toBe('---b---#', { b: 2 });
    });
  });

  it('each subscription counts from its own start', async () => {
    const src = from([1, 2, 3, 4]).pipe(everyN(2));
    expect(await lastValueFrom(src.pipe(toArray()))).toEqual([2, 4]);
    expect(await lastValueFrom(src.pipe(toArray()))).toEqual([2, 4]);
  });

  it.each([0, -2, 1.5, NaN])('refuses n %s with SymflowError', (n) => {
    expect(() => everyN(n)).toThrow(SymflowError);
    expect(() => everyN(n)).toThrow(/n must be a positive integer/);
  });
});

describe('ema', () => {
  it('ema(0.5) on 2, 4, 8 gives 2, 3, 5.5', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold('-a-b-c-|', { a: 2, b: 4, c: 8 });
      expectObservable(src.pipe(ema(0.5))).toBe('-a-b-c-|', { a: 2, b: 3, c: 5.5 });
    });
  });

  it('alpha 1 is the identity; errors pass through', () => {
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('-a-b-#', { a: 2, b: 9 }).pipe(ema(1))).toBe('-a-b-#', { a: 2, b: 9 });
    });
  });

  it('m_t = α·x_t + (1 − α)·m_{t−1}', async () => {
    const out = await lastValueFrom(from([10, 0, 0, 20]).pipe(ema(0.25), toArray()));
    const expected = [10];
    for (const x of [0, 0, 20]) expected.push(0.25 * x + 0.75 * expected.at(-1)!);
    expect(out).toEqual(expected);
  });

  it.each([0, -0.1, 1.5, NaN])('refuses alpha %s with SymflowError', (a) => {
    expect(() => ema(a)).toThrow(SymflowError);
    expect(() => ema(a)).toThrow(/alpha must be in \(0, 1\]/);
  });
});

describe('earlyStopping', () => {
  it("completes right after the (patience+1)-th epoch without improvement, passing every event before it (on: 'loss')", () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      // Epoch losses 5, 4, 4.5, 4.0, 3.99: with minDelta 0.05 only 4 improves on 5; 4.5, 4.0 and 3.99 do not.
      const values: Record<string, TrainEvent> = {
        s: step(0, 0, 0, 5), a: epochEv(0, 5), b: epochEv(1, 4), c: epochEv(2, 4.5), d: epochEv(3, 4.0), e: epochEv(4, 3.99), f: epochEv(5, 1),
      };
      const src = cold('-s-a-b-c-d-s-e-f-|', values);
      expectObservable(src.pipe(earlyStopping({ patience: 2, minDelta: 0.05, on: 'loss' }))).toBe('-s-a-b-c-d-s-(e|)', values);
      expectSubscriptions(src.subscriptions).toBe('^------------!');
    });
  });

  it('an improvement resets the wait', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values: Record<string, TrainEvent> = {
        a: epochEv(0, 5), b: epochEv(1, 5), c: epochEv(2, 5), d: epochEv(3, 4), e: epochEv(4, 4), f: epochEv(5, 4), g: epochEv(6, 4), h: epochEv(7, 4),
      };
      expectObservable(cold('abcdefgh|', values).pipe(earlyStopping({ patience: 2, on: 'loss' }))).toBe('abcdef(g|)', values);
    });
  });

  it('patience 0 stops at the first epoch that does not improve; a never-ending improvement never stops', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values: Record<string, TrainEvent> = { a: epochEv(0, 3), b: epochEv(1, 2), c: epochEv(2, 2), d: epochEv(3, 1) };
      expectObservable(cold('abcd|', values).pipe(earlyStopping({ patience: 0, on: 'loss' }))).toBe('ab(c|)', values);
      const better: Record<string, TrainEvent> = { a: epochEv(0, 3), b: epochEv(1, 2), c: epochEv(2, 1), d: epochEv(3, 0) };
      expectObservable(cold('abcd|', better).pipe(earlyStopping({ patience: 0, on: 'loss' }))).toBe('abcd|', better);
    });
  });

  it("on: 'val' (and by default) watches val.loss, not the training loss", () => {
    scheduler().run(({ cold, expectObservable }) => {
      // Training loss keeps falling; validation loss rises from epoch 1 on.
      const values: Record<string, TrainEvent> = {
        a: epochEv(0, 5, { loss: 1 }), b: epochEv(1, 4, { loss: 2 }), c: epochEv(2, 3, { loss: 3 }), d: epochEv(3, 2, { loss: 4 }),
      };
      expectObservable(cold('abcd|', values).pipe(earlyStopping({ patience: 1, on: 'val' }))).toBe('ab(c|)', values);
      expectObservable(cold('abcd|', values).pipe(earlyStopping({ patience: 1 }))).toBe('ab(c|)', values);
      expectObservable(cold('abcd|', values).pipe(earlyStopping({ patience: 1, on: 'loss' }))).toBe('abcd|', values);
    });
  });

  it('by default, an epoch without validation is judged by its training loss', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values: Record<string, TrainEvent> = { a: epochEv(0, 3), b: epochEv(1, 4), c: epochEv(2, 5), d: epochEv(3, 1) };
      expectObservable(cold('abcd|', values).pipe(earlyStopping({ patience: 1 }))).toBe('ab(c|)', values);
    });
  });

  it("on: 'val' without validation errors at the first epoch (after passing it)", () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values: Record<string, TrainEvent> = { s: step(0, 0, 0, 1), a: epochEv(0, 1), b: epochEv(1, 1) };
      const err = new SymflowError('earlyStopping', "on: 'val' needs validation in fit (or use on: 'loss')");
      expectObservable(cold('-s-a-b-|', values).pipe(earlyStopping({ patience: 3, on: 'val' }))).toBe('-s-(a#)', values, err);
    });
  });

  it('upstream errors and completion pass through', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values: Record<string, TrainEvent> = { s: step(0, 0, 0, 1), a: epochEv(0, 1) };
      expectObservable(cold('-s-a-#', values).pipe(earlyStopping({ patience: 3, on: 'loss' }))).toBe('-s-a-#', values);
      expectObservable(cold('-s-a-|', values).pipe(earlyStopping({ patience: 3, on: 'loss' }))).toBe('-s-a-|', values);
    });
  });

  it('each subscription keeps its own best and wait', async () => {
    const events = [epochEv(0, 2), epochEv(1, 3), epochEv(2, 3)];
    const op = earlyStopping({ patience: 1, on: 'loss' });
    const run = () => lastValueFrom(from(events).pipe(op, toArray()));
    expect((await run()).length).toBe(3);
    expect((await run()).length).toBe(3);
  });

  it('refuses bad arguments with SymflowError', () => {
    for (const bad of [{ patience: -1 }, { patience: 1.5 }, { patience: NaN }, {}, { patience: 2, minDelta: -1 }, { patience: 2, minDelta: NaN }]) {
      expect(() => earlyStopping(bad as never), JSON.stringify(bad)).toThrow(SymflowError);
    }
    expect(() => earlyStopping(undefined as never)).toThrow(SymflowError);
    expect(() => earlyStopping({ patience: -1 })).toThrow(/patience must be a non-negative integer/);
    expect(() => earlyStopping({ patience: 1, minDelta: -1 })).toThrow(/minDelta must be >= 0/);
  });
});

describe('trainingState', () => {
  const EVENTS: TrainEvent[] = [
    step(0, 0, 0, 3),
    step(0, 1, 1, 2),
    epochEv(0, 2.5, { loss: 2.4, mae: 1 }),
    skipped(1, 2, 0),
    step(1, 3, 1, 1.5),
    epochEv(1, 1.5, { loss: 2.6, mae: 1.1 }),
    step(2, 4, 0, 1),
    epochEv(2, 1, { loss: 2.0, mae: 0.9 }),
  ];
  const snapshots = () => lastValueFrom(from(EVENTS).pipe(trainingState(), toArray()));

  it('one snapshot per event with epoch, step, lastLoss, bestLoss, bestEpoch, skipped, history', async () => {
    const snaps = await snapshots();
    expect(snaps.length).toBe(EVENTS.length);
    const pick = (s: TrainingState) => [s.epoch, s.step, s.lastLoss, s.bestLoss, s.bestEpoch, s.skipped, s.history.length];
    expect(snaps.map(pick)).toEqual([
      [0, 1, 3, Infinity, -1, 0, 0],
      [0, 2, 2, Infinity, -1, 0, 0],
      [0, 2, 2, 2.4, 0, 0, 1], // the validation loss is the one watched
      [1, 3, 2, 2.4, 0, 1, 1], // skipped: the step advances, lastLoss stays
      [1, 4, 1.5, 2.4, 0, 1, 1],
      [1, 4, 1.5, 2.4, 0, 1, 2], // 2.6 is no better
      [2, 5, 1, 2.4, 0, 1, 2],
      [2, 5, 1, 2.0, 2, 1, 3],
    ]);
    expect(snaps.at(-1)!.history).toEqual([
      { epoch: 0, loss: 2.5, val: { loss: 2.4, mae: 1 } },
      { epoch: 1, loss: 1.5, val: { loss: 2.6, mae: 1.1 } },
      { epoch: 2, loss: 1, val: { loss: 2.0, mae: 0.9 } },
    ]);
  });

  it('without validation the training epoch loss is watched, and history has no val', () => {
    let s = initialTrainingState;
    for (const e of [epochEv(0, 3), epochEv(1, 1), epochEv(2, 2)]) s = reduceTrainingState(s, e);
    expect(s.bestLoss).toBe(1);
    expect(s.bestEpoch).toBe(1);
    expect(s.history).toEqual([{ epoch: 0, loss: 3 }, { epoch: 1, loss: 1 }, { epoch: 2, loss: 2 }]);
    expect('val' in s.history[0]!).toBe(false);
  });

  it('snapshots are deeply frozen and earlier ones never change', async () => {
    const snaps = await snapshots();
    const copies = snaps.map((s) => structuredClone(s));
    for (const s of snaps) {
      expect(Object.isFrozen(s)).toBe(true);
      expect(Object.isFrozen(s.history)).toBe(true);
      for (const h of s.history) {
        expect(Object.isFrozen(h)).toBe(true);
        expect(Object.isFrozen(h.val)).toBe(true);
      }
    }
    // Same values as a deep copy taken at the end: nothing later wrote into an earlier snapshot.
    snaps.forEach((s, i) => expect(s).toEqual(copies[i]));
    expect(() => { (snaps[2]!.history as EpochRecordLike[]).push({ epoch: 9, loss: 0 }); }).toThrow(TypeError);
    expect(() => { (snaps[2] as { step: number }).step = 99; }).toThrow(TypeError);
    expect(Object.isFrozen(initialTrainingState)).toBe(true);
  });

  it('an earlier snapshot is unchanged after later events (held while streaming)', () => {
    const subject = new Subject<TrainEvent>();
    const got: TrainingState[] = [];
    subject.pipe(trainingState()).subscribe((s) => got.push(s));
    subject.next(EVENTS[0]!);
    subject.next(EVENTS[1]!);
    subject.next(EVENTS[2]!);
    const held = got[2]!;
    const before = JSON.stringify(held);
    for (const e of EVENTS.slice(3)) subject.next(e);
    subject.complete();
    expect(JSON.stringify(held)).toBe(before);
    expect(held.history.length).toBe(1);
    expect(got.at(-1)!.history.length).toBe(3);
  });

  it('consecutive snapshots share structure', async () => {
    const snaps = await snapshots();
    for (let i = 1; i < snaps.length; i++) {
      const prev = snaps[i - 1]!;
      const next = snaps[i]!;
      expect(next).not.toBe(prev);
      if (EVENTS[i]!.type !== 'epoch') expect(next.history).toBe(prev.history);
      else expect(next.history).not.toBe(prev.history);
      // Existing history records are reused, never copied.
      prev.history.forEach((h, k) => expect(next.history[k]).toBe(h));
    }
    expect(snaps[2]!.history[0]).toBe(snaps.at(-1)!.history[0]);
  });

  it('starts from a given state; each subscription starts afresh', async () => {
    const start: TrainingState = reduceTrainingState(initialTrainingState, epochEv(0, 0.5));
    const [first] = await lastValueFrom(from([step(1, 7, 0, 0.4)]).pipe(trainingState(start), toArray()));
    expect(first!.bestLoss).toBe(0.5);
    expect(first!.history).toBe(start.history);
    expect(first!.step).toBe(8);
    const op = from(EVENTS.slice(0, 2)).pipe(trainingState());
    const a = await lastValueFrom(op);
    const b = await lastValueFrom(op);
    expect(a.step).toBe(2);
    expect(b.step).toBe(2);
  });

  it('errors pass through', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold<TrainEvent>('-a-#', { a: EVENTS[0]! });
      expectObservable(src.pipe(trainingState())).toBe('-a-#', { a: reduceTrainingState(initialTrainingState, EVENTS[0]!) });
    });
  });
});

type EpochRecordLike = { epoch: number; loss: number };
