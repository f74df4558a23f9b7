import { produce, type Draft } from 'immer';
import { Observable, type OperatorFunction } from 'rxjs';
import type { TrainEvent } from '../fit.js';

/** One epoch in the history. */
export interface EpochRecord {
  readonly epoch: number;
  readonly loss: number;
  readonly val?: Readonly<Record<string, number>>;
}

/** An immutable snapshot of training progress. Safe to keep: later snapshots share unchanged parts with it. */
export interface TrainingState {
  readonly epoch: number;
  readonly step: number;
  readonly lastLoss: number;
  /** Lowest epoch loss so far (validation loss when present). */
  readonly bestLoss: number;
  readonly bestEpoch: number;
  readonly skipped: number;
  readonly history: readonly EpochRecord[];
}

export const initialTrainingState: TrainingState = Object.freeze({
  epoch: 0, step: 0, lastLoss: NaN, bestLoss: Infinity, bestEpoch: -1, skipped: 0, history: Object.freeze([]) as readonly EpochRecord[],
});

/** The next state after one event (a pure reducer; immer freezes the result and shares what did not change). */
export function reduceTrainingState(state: TrainingState, e: TrainEvent): TrainingState {
  return produce(state, (d: Draft<TrainingState>) => {
    d.epoch = e.epoch;
    if (e.type === 'step') {
      d.step = e.step + 1;
      d.lastLoss = e.loss;
    } else if (e.type === 'skipped') {
      d.step = e.step + 1;
      d.skipped++;
    } else {
      const watched = e.val?.['loss'] ?? e.loss;
      if (watched < d.bestLoss) {
        d.bestLoss = watched;
        d.bestEpoch = e.epoch;
      }
      d.history.push(e.val ? { epoch: e.epoch, loss: e.loss, val: { ...e.val } } : { epoch: e.epoch, loss: e.loss });
    }
  });
}

/**
 * Turns training events into immutable progress snapshots, one per event.
 * ```ts
 * fit(train, data).pipe(trainingState()).subscribe((s) => render(s.history));
 * ```
 * @returns the operator
 */
export function trainingState(initial: TrainingState = initialTrainingState): OperatorFunction<TrainEvent, TrainingState> {
  return (source) => new Observable<TrainingState>((subscriber) => {
    let state = initial;
    return source.subscribe({
      next: (e) => {
        state = reduceTrainingState(state, e);
        subscriber.next(state);
      },
      error: (err) => subscriber.error(err),
      complete: () => subscriber.complete(),
    });
  });
}
