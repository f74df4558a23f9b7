import { produce, type Draft } from 'immer';
import { Observable, type OperatorFunction } from 'rxjs';
import type { TrainEvent } from '../fit.js';

/** One epoch in the history. */
export interface EpochRecord {
  /** 0-based epoch. */
  readonly epoch: number;
  /** Its mean training loss (`EpochEvent.loss`). */
  readonly loss: number;
  /** Its validation loss and metrics, when the fit validates (a copy of `EpochEvent.val`). */
  readonly val?: Readonly<Record<string, number>>;
}

/** An immutable snapshot of training progress. Safe to keep: later snapshots share unchanged parts with it. */
export interface TrainingState {
  /** The epoch of the latest event (0 before any). */
  readonly epoch: number;
  /** Steps taken so far, skipped ones included (0 before any). */
  readonly step: number;
  /** The loss of the latest step that was not skipped (NaN before any). */
  readonly lastLoss: number;
  /** Lowest epoch loss so far (validation loss when present). */
  readonly bestLoss: number;
  /** The epoch of `bestLoss` (−1 before the first epoch ends). */
  readonly bestEpoch: number;
  /** Steps skipped for non-finite values so far. */
  readonly skipped: number;
  /** One record per finished epoch, in order. */
  readonly history: readonly EpochRecord[];
}

/** The state before any event: epoch 0, step 0, lastLoss NaN, bestLoss Infinity, bestEpoch −1, nothing skipped, no history. */
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
