import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';

/**
 * Passes every n-th value (the n-th, 2n-th, …).
 * ```ts
 * steps.pipe(everyN(100)); // log every 100th step
 * ```
 * @param n a positive integer @returns the operator
 */
export function everyN<T>(n: number): MonoTypeOperatorFunction<T> {
  if (!Number.isInteger(n) || n < 1) throw new SymflowError('everyN', `n must be a positive integer, got ${n}`);
  return (source) => new Observable<T>((subscriber) => {
    let i = 0;
    return source.subscribe({
      next: (v) => { if (++i % n === 0) subscriber.next(v); },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    });
  });
}
