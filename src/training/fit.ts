import { atAverages } from '../optimizers/averages.js';
import { Observable } from 'rxjs';
import { SymflowError } from '../graph/errors.js';
import type { Tensor } from '../graph/tensor.js';
import type { StepResult, TrainStep } from '../optimizers/compile.js';
import type { Session, SessionFunction } from '../session/session.js';
import {
  type Batch, batchReader, type Column, type DataSource, epochOrder, inMemoryBatches, type PreparedColumn, prepareColumns,
} from './data.js';

/** One finished training step. Plain numbers only. */
export interface StepEvent {
  readonly type: 'step';
  /** 0-based epoch. */
  readonly epoch: number;
  /** 0-based step count over the whole run. */
  readonly step: number;
  /** 0-based batch index within the epoch. */
  readonly batch: number;
  /** Loss at the parameters the step started from. */
  readonly loss: number;
  /** Session runs the step took. */
  readonly runs: number;
  /** Wall-clock milliseconds of the step. */
  readonly ms: number;
  readonly lr?: number;
  readonly accepted?: boolean;
  readonly rejections?: number;
  readonly errorNorm?: number;
}

/** The end of an epoch: the mean step loss, and validation loss and metrics when asked for. */
export interface EpochEvent {
  readonly type: 'epoch';
  readonly epoch: number;
  readonly loss: number;
  /** Steps taken in this epoch (skipped ones excluded). */
  readonly steps: number;
  readonly val?: Readonly<Record<string, number>>;
  readonly ms: number;
}

/** A step refused because its loss, a gradient or a new value was not finite (with `onNonFinite: 'skip'`). */
export interface SkippedEvent {
  readonly type: 'skipped';
  readonly epoch: number;
  readonly step: number;
  readonly batch: number;
  readonly loss: number;
  /** What was not finite: the loss, a parameter's gradient, or a new value (see `NonFiniteReport`). */
  readonly reason?: 'loss' | 'gradient' | 'value';
  readonly variable?: string;
}

export type TrainEvent = StepEvent | EpochEvent | SkippedEvent;

/** Hidden (symbol-keyed, non-enumerable) back-reference from an event to the session that trained it. */
export const EVENT_SESSION: unique symbol = Symbol('symflow.session');

/** The session a `fit` event came from (used by operators such as `checkpointEvery`). */
export function sessionOf(e: TrainEvent): Session | undefined {
  return (e as unknown as Record<symbol, Session | undefined>)[EVENT_SESSION];
}

export interface ValidationOptions {
  /** In-memory columns, one per input of the train step. */
  data: readonly Column[];
  /** Scalar metrics evaluated on the validation data, e.g. `{ accuracy }`; `loss` is always included. */
  metrics?: Readonly<Record<string, Tensor>>;
  /** Rows per evaluation run (default: all at once). Results are weighted by rows. */
  batchSize?: number;
  /**
   * Which weights to evaluate at: the parameters (default), or the averages an `emaParams` keeps ('averages':
   * the graph is evaluated reading them, nothing is swapped).
   */
  weights?: 'params' | 'averages';
}

export interface FitOptions {
  /** Passes over the data (default 1). */
  epochs?: number;
  /** Rows per step for in-memory data (default 32). */
  batchSize?: number;
  /** Shuffle in-memory rows each epoch (default true), reproducibly from `seed` (default 0). */
  shuffle?: boolean;
  seed?: number;
  /** Drop a last batch smaller than `batchSize` (default false). */
  dropRemainder?: boolean;
  validation?: ValidationOptions;
  /**
   * A step whose loss, a gradient or a new value is not finite errors the stream (default) or, with 'skip', is
   * refused and emits `skipped`; either way it applies nothing. (A TrainStep compiled with `onNonFinite: 'apply'`
   * has no compiled check: then only the loss is checked, and the step undone.)
   */
  onNonFinite?: 'error' | 'skip';
  /** At the end of training, finish a pending soft batch with `flush()` (default true). */
  flush?: boolean;
}

/**
 * Trains as a cold Observable: subscribing starts a run, each subscription its own. Events carry plain numbers.
 * Unsubscribing stops at the next step boundary: a step in progress completes (steps are atomic), nothing is
 * half-applied. The loop yields to the event loop between steps, and takes the next batch only when the current
 * step is done.
 *
 * ```ts
 * fit(train, [xs, ys], { epochs: 5, batchSize: 64 })
 *   .pipe(filter((e) => e.type === 'epoch'))
 *   .subscribe((e) => console.log(e.epoch, e.loss));
 * ```
 * @param trainStep from `compile` @param data the data source @param opts epochs, batching, validation, policies
 * @returns the stream of training events
 */
export function fit(trainStep: TrainStep, data: DataSource, opts: FitOptions = {}): Observable<TrainEvent> {
  const epochs = positiveInt('epochs', opts.epochs ?? 1);
  const batchSize = positiveInt('batchSize', opts.batchSize ?? 32);
  const onNonFinite = opts.onNonFinite ?? 'error';
  if (onNonFinite !== 'error' && onNonFinite !== 'skip') throw new SymflowError('fit', `onNonFinite must be 'error' or 'skip', got ${String(onNonFinite)}`);
  const columns = Array.isArray(data) ? prepareColumns('fit', trainStep.inputs, data as readonly Column[]) : undefined;
  const validate = opts.validation ? validator(trainStep, opts.validation) : undefined;

  return new Observable<TrainEvent>((subscriber) => {
    let stopped = false;
    let reading: AsyncIterator<Batch> | undefined;
    const emit = (e: TrainEvent) => {
      if (stopped) return;
      Object.defineProperty(e, EVENT_SESSION, { value: trainStep.session, enumerable: false });
      subscriber.next(e);
    };
    const loop = async () => {
      let step = 0;
      for (let epoch = 0; epoch < epochs && !stopped; epoch++) {
        const started = performance.now();
        const reader = columns
          ? syncReader(inMemoryBatches(columns, epochOrder(columns[0]!.rows, opts.shuffle ?? true, opts.seed ?? 0, epoch), batchSize, opts.dropRemainder ?? false))
          : batchReader(data as Exclude<DataSource, readonly Column[]>);
        reading = reader;
        let total = 0;
        let count = 0;
        let batch = 0;
        try {
          for (;;) {
            if (stopped) return;
            const next = await reader.next();
            if (next.done || stopped) break;
            const result = await guardedStep(trainStep, next.value);
            const why = result.skipped;
            if (why !== undefined || !Number.isFinite(result.loss)) {
              if (onNonFinite === 'error') {
                const what = why === undefined || why.what === 'loss' ? `loss ${result.loss}` : why.what === 'gradient' ? `gradient of '${why.variable}'` : `new value of ${why.variable === undefined ? 'a variable' : `'${why.variable}'`}`;
                throw new SymflowError('fit', `non-finite ${what} at epoch ${epoch}, batch ${batch}; the step was undone, nothing of it applied (pass onNonFinite: 'skip' to skip such steps)`);
              }
              emit({ type: 'skipped', epoch, step, batch, loss: result.loss, ...(why ? { reason: why.what, ...(why.variable === undefined ? {} : { variable: why.variable }) } : { reason: 'loss' as const }) });
            } else {
              total += result.loss;
              count++;
              emit(stepEvent(epoch, step, batch, result));
            }
            step++;
            batch++;
            await yieldToEventLoop();
          }
        } finally {
          await reader.return?.();
        }
        if (stopped) return;
        if (batch === 0) throw new SymflowError('fit', `the data source gave no batches in epoch ${epoch}`);
        const val = validate ? await validate() : undefined;
        emit({ type: 'epoch', epoch, loss: count > 0 ? total / count : NaN, steps: count, ...(val ? { val } : {}), ms: performance.now() - started });
      }
      if (!stopped && (opts.flush ?? true)) await trainStep.flush();
    };
    loop().then(
      () => { if (!stopped) subscriber.complete(); },
      (e) => { if (!stopped) subscriber.error(e); },
    );
    return () => {
      stopped = true;
      // A loop waiting for a batch that may never come is released: the source is unsubscribed now.
      void reading?.return?.();
    };
  });
}

type Timed = StepResult & { ms: number };

/** Runs a step; a non-finite one is refused by the step itself ('skip' here, so fit decides what follows). */
async function guardedStep(trainStep: TrainStep, batch: Batch): Promise<Timed> {
  const t = performance.now();
  const result = await trainStep.step(batch, { onNonFinite: 'skip' });
  return { ...result, ms: performance.now() - t };
}

function stepEvent(epoch: number, step: number, batch: number, r: Timed): StepEvent {
  const e: { -readonly [K in keyof StepEvent]: StepEvent[K] } = { type: 'step', epoch, step, batch, loss: r.loss, runs: r.runs, ms: r.ms };
  if (r.lr !== undefined) e.lr = r.lr;
  if (r.accepted !== undefined) e.accepted = r.accepted;
  if (r.rejections !== undefined) e.rejections = r.rejections;
  if (r.errorNorm !== undefined) e.errorNorm = r.errorNorm;
  return e;
}

/** Validation through one session function: the loss and each metric, weighted by rows over batches. */
function validator(trainStep: TrainStep, v: ValidationOptions): () => Promise<Record<string, number>> {
  if (v.metrics && Object.hasOwn(v.metrics, 'loss')) throw new SymflowError('fit', "validation metric name 'loss' is taken by the validation loss; rename it");
  const names = ['loss', ...Object.keys(v.metrics ?? {})];
  const weights = v.weights ?? 'params';
  if (weights !== 'params' && weights !== 'averages') throw new SymflowError('fit', `validation.weights must be 'params' or 'averages', got ${String(weights)}`);
  const measured = [trainStep.loss, ...Object.values(v.metrics ?? {})];
  const f: SessionFunction = trainStep.session.function({ inputs: trainStep.inputs, outputs: weights === 'averages' ? atAverages(trainStep, measured) : measured });
  for (const [name, t] of Object.entries(v.metrics ?? {})) {
    if (t.rank !== 0) throw new SymflowError('fit', `validation metric '${name}' must be a scalar, got rank ${t.rank}`);
  }
  const columns: PreparedColumn[] = prepareColumns('fit: validation', trainStep.inputs, v.data);
  const size = positiveInt('validation.batchSize', v.batchSize ?? columns[0]!.rows);
  return async () => {
    const sums = names.map(() => 0);
    let rows = 0;
    for (const batch of inMemoryBatches(columns, epochOrder(columns[0]!.rows, false, 0, 0), size, false)) {
      const n = (batch[0] as unknown as { shape: number[] }).shape[0]!;
      const out = await f(batch);
      out.forEach((o, i) => (sums[i]! += o.data[0]! * n));
      rows += n;
    }
    return Object.fromEntries(names.map((name, i) => [name, sums[i]! / rows]));
  };
}

function syncReader(gen: Generator<Batch>): AsyncIterator<Batch> {
  return { next: async () => gen.next() as IteratorResult<Batch>, return: async () => gen.return(undefined) as IteratorResult<Batch> };
}

/** Lets timers, I/O and subscribers run between steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new SymflowError('fit', `${name} must be a positive integer, got ${String(v)}`);
  return v;
}
