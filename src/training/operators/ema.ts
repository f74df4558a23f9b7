import { Observable, type OperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';

/**
 * Exponential moving average: m₁ = x₁, mₜ = α·xₜ + (1 − α)·mₜ₋₁.
 * ```ts
 * losses.pipe(ema(0.1));
 * ```
 * @param alpha the weight of the newest value, in (0, 1] @returns the operator
 */
export function ema(alpha: number): OperatorFunction<number, number> {
  if (!(alpha > 0 && alpha <= 1)) throw new SymflowError('ema', `alpha must be in (0, 1], got ${alpha}`);
  return (source) => new Observable<number>((subscriber) => {
    let m: number | undefined;
    return source.subscribe({
      next: (v) => {
        m = m === undefined ? v : alpha * v + (1 - alpha) * m;
        subscriber.next(m);
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    });
  });
}
