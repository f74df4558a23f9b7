import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';
import type { TrainEvent } from '../fit.js';

/** Options of `earlyStopping`. */
export interface EarlyStoppingOptions {
  /** Epochs without improvement before stopping. */
  patience: number;
  /** How much lower than the best a value must be to count as an improvement (default 0). */
  minDelta?: number;
  /**
   * Watch the validation loss (`'val'`) or the epoch's training loss (`'loss'`). Default: the validation loss when
   * the epoch has one, else the training loss.
   */
  on?: 'val' | 'loss';
}

/**
 * Passes training events through and completes the stream — which stops training at the next step boundary —
 * once the watched epoch loss has not improved by more than `minDelta` for `patience` epochs.
 * ```ts
 * fit(train, data, { epochs: 100, validation }).pipe(earlyStopping({ patience: 3 }));
 * ```
 * @param opts patience, minDelta, on @returns the operator
 */
export function earlyStopping(opts: EarlyStoppingOptions): MonoTypeOperatorFunction<TrainEvent> {
  const patience = opts?.patience;
  if (!Number.isInteger(patience) || patience < 0) throw new SymflowError('earlyStopping', `patience must be a non-negative integer, got ${patience}`);
  const minDelta = opts.minDelta ?? 0;
  if (!(minDelta >= 0)) throw new SymflowError('earlyStopping', `minDelta must be >= 0, got ${minDelta}`);
  const on = opts.on;
  return (source) => new Observable<TrainEvent>((subscriber) => {
    let best = Infinity;
    let waited = 0;
    return source.subscribe({
      next: (e) => {
        subscriber.next(e);
        if (e.type !== 'epoch') return;
        const value = on === 'val' ? e.val?.['loss'] : on === 'loss' ? e.loss : e.val?.['loss'] ?? e.loss;
        if (value === undefined) {
          subscriber.error(new SymflowError('earlyStopping', "on: 'val' needs validation in fit (or use on: 'loss')"));
          return;
        }
        if (value < best - minDelta) {
          best = value;
          waited = 0;
        } else if (++waited > patience) {
          subscriber.complete();
        }
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    });
  });
}
