import { Observable, type OperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';

/**
 * The mean of the last `window` values (fewer at the start).
 * ```ts
 * losses.pipe(runningMean(3)); // 1, 2, 3, 4 → 1, 1.5, 2, 3
 * ```
 * @param window how many values to average (a positive integer) @returns the operator
 */
export function runningMean(window: number): OperatorFunction<number, number> {
  if (!Number.isInteger(window) || window < 1) throw new SymflowError('runningMean', `window must be a positive integer, got ${window}`);
  return (source) => new Observable<number>((subscriber) => {
    const buffer: number[] = [];
    return source.subscribe({
      next: (v) => {
        buffer.push(v);
        if (buffer.length > window) buffer.shift();
        // Summed afresh each time: a running add/subtract would let rounding drift build up over long runs.
        subscriber.next(buffer.reduce((p, q) => p + q, 0) / buffer.length);
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    });
  });
}
