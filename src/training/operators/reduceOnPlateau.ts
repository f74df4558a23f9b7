import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';
import type { EpochEvent, TrainEvent } from '../fit.js';

/**
 * What `reduceOnPlateau` drives: a named hyperparameter read and written on the host (a `TrainStep` with an injected
 * learning rate has this shape).
 */
export interface HyperparameterTarget {
  /** Resolves to the named hyperparameter's current value. */
  getHyperparameter(name: string): Promise<number>;
  /** Sets the named hyperparameter; resolves once it is set. */
  setHyperparameter(name: string, value: number): Promise<void>;
}

/** One reduction, as `onReduce` reports it. */
export interface PlateauReduction {
  /** The epoch whose end triggered it. */
  readonly epoch: number;
  /** The hyperparameter's value before. */
  readonly from: number;
  /** Its value after: max(from·factor, minLr). */
  readonly to: number;
  /** The monitored value at that epoch. */
  readonly value: number;
}

/** What `reduceOnPlateau` watches: `'valLoss'` (`val.loss`), `'loss'` (the epoch's mean training loss), or `val.<metric>`. */
export type PlateauMonitor = 'valLoss' | 'loss' | `val.${string}`;

/** Options of `reduceOnPlateau`. */
export interface ReduceOnPlateauOptions {
  /** Multiplies the hyperparameter at each reduction, in (0, 1) (default 0.1). */
  factor?: number;
  /** Epochs in a row without improvement that trigger a reduction, an integer ≥ 1 (default 10). */
  patience?: number;
  /** How much better than the best a value must be to count as an improvement, ≥ 0 (default 1e-4). */
  minDelta?: number;
  /** Epochs after a reduction that are not counted towards `patience`, an integer ≥ 0 (default 0). */
  cooldown?: number;
  /** The value is never reduced below this, ≥ 0 (default 0). */
  minLr?: number;
  /**
   * What to watch at each epoch's end: the validation loss (`'valLoss'`, default), the mean training loss (`'loss'`)
   * or a validation metric (`'val.accuracy'`).
   */
  monitor?: PlateauMonitor;
  /** Whether lower (`'min'`, default) or higher (`'max'`) values are better. */
  mode?: 'min' | 'max';
  /** The hyperparameter to drive (default `'lr'`). */
  hyperparameter?: string;
  /** Called after each reduction has been set, before the epoch event that triggered it passes on. */
  onReduce?: (r: PlateauReduction) => void;
}

/**
 * Passes training events through and, when the monitored epoch value has not improved by more than `minDelta` for
 * `patience` epochs in a row, multiplies the target's `'lr'` by `factor` (not below `minLr`); then `cooldown` epochs
 * are not counted. As optax's `contrib.reduce_on_plateau` (and PyTorch's cooldown); Keras' `ReduceLROnPlateau`
 * reduces at the same epoch but its cooldown ignores one epoch fewer.
 *
 * The epoch event that triggers a reduction passes on only once the new value is set and `onReduce` has been
 * called; events arriving meanwhile wait behind it, so the order is kept and a subscriber that sees the event sees
 * the reduced rate. A target that fails errors the stream. At `minLr` nothing more is set.
 * ```ts
 * fit(train, data, { epochs: 100, validation })
 *   .pipe(reduceOnPlateau(train, { patience: 5, factor: 0.5, onReduce: (r) => console.log(r.epoch, r.to) }));
 * ```
 * @param target what holds the hyperparameter @param opts factor, patience, minDelta, cooldown, minLr, monitor,
 * mode, hyperparameter, onReduce @returns the operator
 */
export function reduceOnPlateau(target: HyperparameterTarget, opts: ReduceOnPlateauOptions = {}): MonoTypeOperatorFunction<TrainEvent> {
  const o = checkOptions(target, opts);
  return (source) => new Observable<TrainEvent>((subscriber) => {
    let best = o.mode === 'min' ? Infinity : -Infinity;
    let bad = 0;
    let cooling = 0;
    // Work still to do before the next event may pass: a reduction in flight and the events queued behind it.
    let tail: Promise<void> | undefined;
    const enqueue = (work: () => void | Promise<void>) => {
      const p: Promise<void> = (tail ?? Promise.resolve()).then(() => (subscriber.closed ? undefined : work()));
      tail = p;
      p.then(() => { if (tail === p) tail = undefined; }, (err: unknown) => subscriber.error(err));
    };
    const pass = (work: () => void) => (tail ? enqueue(work) : work());

    const reduce = async (e: EpochEvent, value: number) => {
      const from = await target.getHyperparameter(o.name);
      if (typeof from !== 'number' || !Number.isFinite(from)) throw new SymflowError('reduceOnPlateau', `the target's '${o.name}' is ${String(from)}, not a finite number`);
      if (from > o.minLr) {
        const to = Math.max(from * o.factor, o.minLr);
        await target.setHyperparameter(o.name, to);
        o.onReduce?.({ epoch: e.epoch, from, to, value });
      }
      subscriber.next(e);
    };

    return source.subscribe({
      next: (e) => {
        if (e.type !== 'epoch') return pass(() => subscriber.next(e));
        const value = monitored(o.monitor, e);
        if (typeof value === 'string') return pass(() => subscriber.error(new SymflowError('reduceOnPlateau', value)));
        if (o.mode === 'min' ? value < best - o.minDelta : value > best + o.minDelta) {
          best = value;
          bad = 0;
        } else {
          bad++;
        }
        // As optax: the epochs of a cooldown count no bad epochs, but an improvement still sets the best.
        if (cooling > 0) {
          cooling--;
          bad = 0;
        } else if (bad >= o.patience) {
          bad = 0;
          cooling = o.cooldown;
          return enqueue(() => reduce(e, value));
        }
        pass(() => subscriber.next(e));
      },
      error: (err) => pass(() => subscriber.error(err)),
      complete: () => pass(() => subscriber.complete()),
    });
  });
}

/** The monitored value of an epoch event, or why there is none. */
function monitored(monitor: PlateauMonitor, e: EpochEvent): number | string {
  if (monitor === 'loss') return e.loss;
  const metric = monitor === 'valLoss' ? 'loss' : monitor.slice('val.'.length);
  if (e.val === undefined) return `monitor '${monitor}' needs validation in fit (or use monitor: 'loss'); epoch ${e.epoch} has none`;
  const v = e.val[metric];
  if (v === undefined) return `monitor '${monitor}': epoch ${e.epoch} has no validation metric '${metric}' (it has ${Object.keys(e.val).join(', ')})`;
  return v;
}

function checkOptions(target: HyperparameterTarget, opts: ReduceOnPlateauOptions) {
  const who = 'reduceOnPlateau';
  const t = target as Partial<HyperparameterTarget> | null | undefined;
  if (typeof t?.getHyperparameter !== 'function' || typeof t.setHyperparameter !== 'function') {
    throw new SymflowError(who, 'target must have getHyperparameter and setHyperparameter (a TrainStep with an injected learning rate)');
  }
  if (typeof opts !== 'object' || opts === null) throw new SymflowError(who, `opts must be an options object, got ${String(opts)}`);
  const num = (arg: string, v: unknown, ok: (v: number) => boolean, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new SymflowError(who, `${arg} must be ${what}, got ${String(v)}`);
    return v;
  };
  const factor = num('factor', opts.factor ?? 0.1, (v) => v > 0 && v < 1, 'a number in (0, 1)');
  const patience = num('patience', opts.patience ?? 10, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  const minDelta = num('minDelta', opts.minDelta ?? 1e-4, (v) => v >= 0, 'a finite number >= 0');
  const cooldown = num('cooldown', opts.cooldown ?? 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  const minLr = num('minLr', opts.minLr ?? 0, (v) => v >= 0, 'a finite number >= 0');
  const monitor = opts.monitor ?? 'valLoss';
  if (monitor !== 'valLoss' && monitor !== 'loss' && !(typeof monitor === 'string' && /^val\..+/.test(monitor))) {
    throw new SymflowError(who, `monitor must be 'valLoss', 'loss' or 'val.<metric>', got ${JSON.stringify(monitor)}`);
  }
  const mode = opts.mode ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new SymflowError(who, `mode must be 'min' or 'max', got ${JSON.stringify(mode)}`);
  const name = opts.hyperparameter ?? 'lr';
  if (typeof name !== 'string' || name === '') throw new SymflowError(who, `hyperparameter must be a non-empty string, got ${JSON.stringify(name)}`);
  if (opts.onReduce !== undefined && typeof opts.onReduce !== 'function') throw new SymflowError(who, `onReduce must be a function, got ${typeof opts.onReduce}`);
  return { factor, patience, minDelta, cooldown, minLr, monitor, mode, name, onReduce: opts.onReduce };
}
