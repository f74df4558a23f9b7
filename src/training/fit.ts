import { atAverages } from '../optimizers/averages.js';
import { Observable } from 'rxjs';
import { SymflowError } from '../graph/errors.js';
import type { Tensor } from '../graph/tensor.js';
import type { StepResult, TrainStep } from '../optimizers/compile.js';
import { NonFiniteError } from '../optimizers/nonFinite.js';
import type { Session, SessionFunction } from '../session/session.js';
import {
  type Batch, batchReader, type Column, type DataSource, epochOrder, inMemoryBatches, type PreparedColumn, prepareColumns,
} from './data.js';

/** One finished training step. Plain numbers only. */
export interface StepEvent {
  /** Discriminates the event union: `'step'`. */
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
  /** The learning rate (step size) the step used, when the optimizer reports one (`StepResult.lr`). */
  readonly lr?: number;
  /** Adaptive methods: whether the step was accepted (always true: a step retries until it is). */
  readonly accepted?: boolean;
  /** Adaptive methods: attempts rejected before the accepted one. */
  readonly rejections?: number;
  /** Adaptive methods: the error norm of the accepted step (≤ 1; see `StepResult.errorNorm`). */
  readonly errorNorm?: number;
}

/** The end of an epoch: the mean step loss, and validation loss and metrics when asked for. */
export interface EpochEvent {
  /** Discriminates the event union: `'epoch'`. */
  readonly type: 'epoch';
  /** 0-based epoch that ended. */
  readonly epoch: number;
  /** Mean loss of the epoch's steps (skipped ones excluded; NaN when every step was skipped). */
  readonly loss: number;
  /** Steps taken in this epoch (skipped ones excluded). */
  readonly steps: number;
  /** With `validation`: the validation `loss` and each metric, row-weighted means over the validation data. */
  readonly val?: Readonly<Record<string, number>>;
  /** Wall-clock milliseconds of the epoch (its steps and validation). */
  readonly ms: number;
}

/** A step refused because its loss, a gradient or a new value was not finite (with `onNonFinite: 'skip'`). */
export interface SkippedEvent {
  /** Discriminates the event union: `'skipped'`. */
  readonly type: 'skipped';
  /** 0-based epoch. */
  readonly epoch: number;
  /** 0-based step count over the whole run (a skipped step counts). */
  readonly step: number;
  /** 0-based batch index within the epoch. */
  readonly batch: number;
  /** The loss at the parameters the step started from (NaN or ±Inf when the loss was the reason). */
  readonly loss: number;
  /** What was not finite: the loss, a parameter's gradient, or a new value (see `NonFiniteReport`). */
  readonly reason?: 'loss' | 'gradient' | 'value';
  /** The parameter whose gradient, or the variable whose new value, was not finite (when known). */
  readonly variable?: string;
}

/** What `fit` emits: a step, a skipped step, or the end of an epoch; narrow on `type`. */
export type TrainEvent = StepEvent | EpochEvent | SkippedEvent;

/** Hidden (symbol-keyed, non-enumerable) back-reference from an event to the session that trained it. */
export const EVENT_SESSION: unique symbol = Symbol('symflow.session');

/** The session a `fit` event came from (used by operators such as `checkpointEvery`). */
export function sessionOf(e: TrainEvent): Session | undefined {
  return (e as unknown as Record<symbol, Session | undefined>)[EVENT_SESSION];
}

/**
 * Where a fit over in-memory data stands after an event: the next epoch and batch, the step count, the running
 * loss sum of the epoch in progress, and the settings the batches depend on. `checkpointEvery` stores it in the
 * checkpoint (`meta.fit`); `fit(…, {resumeFrom})` continues from it.
 */
export interface FitProgress {
  /** The 0-based epoch to continue in. */
  readonly epoch: number;
  /** The 0-based batch of that epoch to take next. */
  readonly batch: number;
  /** Steps taken so far over the whole run (skipped ones included): the next step's number. */
  readonly step: number;
  /** Sum of the losses of the epoch's steps so far (for its mean loss). */
  readonly lossSum: number;
  /** Number of those steps (skipped ones excluded). */
  readonly lossCount: number;
  /** Rows in the training data; a resumed fit must have as many. */
  readonly rows: number;
  /** The fit's `batchSize`; a resumed fit must use the same. */
  readonly batchSize: number;
  /** The fit's `shuffle`; a resumed fit must use the same. */
  readonly shuffle: boolean;
  /** The fit's `seed`; a resumed fit must use the same. */
  readonly seed: number;
  /** The fit's `dropRemainder`; a resumed fit must use the same. */
  readonly dropRemainder: boolean;
}

export const EVENT_PROGRESS: unique symbol = Symbol('symflow.progress');

/**
 * Marks a step event that is not the last of its call under `stepsPerCall`: the session already holds the state
 * after later steps, so nothing must be saved as the state after it (`checkpointEvery` waits for the call's end).
 */
export const EVENT_AHEAD: unique symbol = Symbol('symflow.ahead');

/** Whether the session is past this event (an event inside a call of several steps, not its last). */
export function isAhead(e: TrainEvent): boolean {
  return (e as unknown as Record<symbol, boolean | undefined>)[EVENT_AHEAD] === true;
}

/** The fit's progress after an event (in-memory data only), or undefined. */
export function progressOf(e: TrainEvent): FitProgress | undefined {
  return (e as unknown as Record<symbol, FitProgress | undefined>)[EVENT_PROGRESS];
}

/** `FitOptions.validation`: data and metrics evaluated at the end of each epoch (no updates, learning phase off). */
export interface ValidationOptions {
  /** In-memory columns, one per input of the train step. */
  data: readonly Column[];
  /** Scalar metrics evaluated on the validation data, e.g. `{ accuracy }`; `loss` is always included (and a metric may not take its name). Default none. */
  metrics?: Readonly<Record<string, Tensor>>;
  /** Rows per evaluation run (default: all at once). Results are weighted by rows. */
  batchSize?: number;
  /**
   * Which weights to evaluate at: the parameters (default), or the averages an `emaParams` keeps ('averages':
   * the graph is evaluated reading them, nothing is swapped).
   */
  weights?: 'params' | 'averages';
}

/** Options of `fit`. */
export interface FitOptions {
  /** Passes over the data (default 1). */
  epochs?: number;
  /** Rows per step for in-memory data (default 32). */
  batchSize?: number;
  /** Shuffle in-memory rows each epoch (default true), reproducibly from `seed` (default 0). */
  shuffle?: boolean;
  /** Seed of the shuffled order; each epoch's order depends on it and the epoch number. Default 0. */
  seed?: number;
  /** Drop a last batch smaller than `batchSize` (default false). */
  dropRemainder?: boolean;
  /** Evaluate the loss and metrics on held-out data after each epoch (`EpochEvent.val`). Default: none. */
  validation?: ValidationOptions;
  /**
   * A step whose loss, a gradient or a new value is not finite errors the stream (default) or, with 'skip', is
   * refused and emits `skipped`; either way it applies nothing. (A TrainStep compiled with `onNonFinite: 'apply'`
   * has no compiled check: then only the loss is checked, and the step undone.)
   */
  onNonFinite?: 'error' | 'skip';
  /** At the end of training, finish a pending soft batch with `flush()` (default true). */
  flush?: boolean;
  /**
   * Continue an interrupted fit: a checkpoint written during it by `checkpointEvery` (restored into the train step's
   * session first: parameters, optimizer state, the random step counter), or the `FitProgress` of one you
   * restored yourself (`(await session.restore(path)).meta.fit`). The fit goes on at the saved epoch and batch, in
   * the same shuffled order, so crash + resume gives bit for bit the run that never stopped. In-memory data only;
   * batchSize, shuffle, seed, dropRemainder and the row count must be the saved ones.
   */
  resumeFrom?: string | FitProgress;
  /**
   * Steps per call of the train step (default 1): up to this many batches go to `TrainStep.steps` at once — on onnx
   * one onnxruntime run for all of them. The same steps, values and events as one at a time; the step events of a
   * call are emitted when the call is done, and `checkpointEvery` saves at the end of a call (where the state is
   * the state after an event). Unsubscribing stops after the call in progress.
   */
  stepsPerCall?: number;
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
  const shuffle = opts.shuffle ?? true;
  const seed = opts.seed ?? 0;
  const dropRemainder = opts.dropRemainder ?? false;
  const stepsPerCall = positiveInt('stepsPerCall', opts.stepsPerCall ?? 1);
  if (opts.resumeFrom !== undefined && columns === undefined) throw new SymflowError('fit', 'resumeFrom needs in-memory data (columns): a data source is positioned by whoever owns it');
  // The settings the batches depend on, checked against a saved progress before resuming.
  const settings = { rows: columns?.[0]!.rows ?? 0, batchSize, shuffle, seed, dropRemainder };

  return new Observable<TrainEvent>((subscriber) => {
    let stopped = false;
    let reading: AsyncIterator<Batch> | undefined;
    const emit = (e: TrainEvent) => {
      if (stopped) return;
      Object.defineProperty(e, EVENT_SESSION, { value: trainStep.session, enumerable: false });
      subscriber.next(e);
    };
    const progress = (epoch: number, batch: number, step: number, lossSum: number, lossCount: number): FitProgress => ({ epoch, batch, step, lossSum, lossCount, ...settings });
    const emitAt = (e: TrainEvent, p: FitProgress | undefined, ahead = false) => {
      if (ahead) Object.defineProperty(e, EVENT_AHEAD, { value: true, enumerable: false });
      else if (p !== undefined) Object.defineProperty(e, EVENT_PROGRESS, { value: p, enumerable: false });
      emit(e);
    };
    const loop = async () => {
      const from = opts.resumeFrom === undefined ? undefined : await resumePoint(trainStep, opts.resumeFrom, settings);
      let step = from?.step ?? 0;
      for (let epoch = from?.epoch ?? 0; epoch < epochs && !stopped; epoch++) {
        const started = performance.now();
        const resumed = from !== undefined && epoch === from.epoch;
        const first = resumed ? from.batch : 0;
        const reader = columns
          ? syncReader(inMemoryBatches(columns, epochOrder(columns[0]!.rows, shuffle, seed, epoch), batchSize, dropRemainder, first))
          : batchReader(data as Exclude<DataSource, readonly Column[]>);
        reading = reader;
        let total = resumed ? from.lossSum : 0;
        let count = resumed ? from.lossCount : 0;
        let batch = first;
        try {
          for (let ended = false; !ended;) {
            if (stopped) return;
            // Up to stepsPerCall batches, as the reader gives them.
            const group: Batch[] = [];
            while (group.length < stepsPerCall) {
              const next = await reader.next();
              if (next.done) { ended = true; break; }
              if (stopped) return;
              group.push(next.value);
            }
            if (stopped) return;
            const results = await guardedSteps(trainStep, group, onNonFinite);
            for (const [i, result] of results.entries()) {
              const ahead = i < results.length - 1;
              const why = result.skipped;
              if (why !== undefined || !Number.isFinite(result.loss)) {
                if (onNonFinite === 'error') {
                  const what = why === undefined || why.what === 'loss' ? `loss ${result.loss}` : why.what === 'gradient' ? `gradient of '${why.variable}'` : `new value of ${why.variable === undefined ? 'a variable' : `'${why.variable}'`}`;
                  throw new SymflowError('fit', `non-finite ${what} at epoch ${epoch}, batch ${batch}; the step was undone, nothing of it applied (pass onNonFinite: 'skip' to skip such steps)`);
                }
                emitAt({ type: 'skipped', epoch, step, batch, loss: result.loss, ...(why ? { reason: why.what, ...(why.variable === undefined ? {} : { variable: why.variable }) } : { reason: 'loss' as const }) }, columns && progress(epoch, batch + 1, step + 1, total, count), ahead);
              } else {
                total += result.loss;
                count++;
                emitAt(stepEvent(epoch, step, batch, result), columns && progress(epoch, batch + 1, step + 1, total, count), ahead);
              }
              step++;
              batch++;
            }
            await yieldToEventLoop();
          }
        } finally {
          await reader.return?.();
        }
        if (stopped) return;
        if (batch === 0) throw new SymflowError('fit', `the data source gave no batches in epoch ${epoch}`);
        const val = validate ? await validate() : undefined;
        emitAt({ type: 'epoch', epoch, loss: count > 0 ? total / count : NaN, steps: count, ...(val ? { val } : {}), ms: performance.now() - started }, columns && progress(epoch + 1, 0, step, 0, 0));
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

/** Restores a checkpoint (or takes a progress) and checks it was written by a fit with these settings. */
async function resumePoint(trainStep: TrainStep, from: string | FitProgress, settings: Omit<FitProgress, 'epoch' | 'batch' | 'step' | 'lossSum' | 'lossCount'>): Promise<FitProgress> {
  let p: unknown = from;
  if (typeof from === 'string') {
    const { meta } = await trainStep.session.restore(from);
    p = meta?.['fit'];
    if (p === undefined) throw new SymflowError('fit', `${from} holds no fit progress (it was not written by checkpointEvery during a fit over in-memory data); restore it yourself and start a new fit`);
  }
  const x = p as FitProgress;
  const ints = ['epoch', 'batch', 'step', 'lossCount', 'rows', 'batchSize', 'seed'] as const;
  if (x === null || typeof x !== 'object' || ints.some((k) => !Number.isSafeInteger(x[k]) || x[k] < 0) || typeof x.lossSum !== 'number') {
    throw new SymflowError('fit', `resumeFrom is not a fit progress (epoch, batch, step, lossSum, lossCount, rows, batchSize, shuffle, seed, dropRemainder), got ${JSON.stringify(p)}`);
  }
  const differ = (Object.keys(settings) as (keyof typeof settings)[]).filter((k) => x[k] !== settings[k]);
  if (differ.length > 0) {
    throw new SymflowError('fit', `cannot resume: the saved fit had ${differ.map((k) => `${k} ${String(x[k])}`).join(', ')}, this one has ${differ.map((k) => `${k} ${String(settings[k])}`).join(', ')} (the batches would differ)`);
  }
  return x;
}

type Timed = StepResult & { ms: number };

/** Runs a step; a non-finite one is refused by the step itself ('skip' here, so fit decides what follows). */
async function guardedStep(trainStep: TrainStep, batch: Batch): Promise<Timed> {
  const t = performance.now();
  const result = await trainStep.step(batch, { onNonFinite: 'skip' });
  return { ...result, ms: performance.now() - t };
}

/**
 * Runs a group of steps in one call; each step event gets an equal share of its time. Under fit's 'error' a
 * refused step must stop the fit there, with the steps before it applied and none after: a call that refuses one
 * (and so applied nothing) is taken again one step at a time, up to the refused one.
 */
async function guardedSteps(trainStep: TrainStep, group: readonly Batch[], onNonFinite: 'error' | 'skip'): Promise<Timed[]> {
  if (group.length === 0) return [];
  if (group.length === 1) return [await guardedStep(trainStep, group[0]!)];
  const t = performance.now();
  try {
    const results = await trainStep.steps(group, { onNonFinite });
    const ms = (performance.now() - t) / group.length;
    return results.map((r) => ({ ...r, ms }));
  } catch (e) {
    if (!(e instanceof NonFiniteError) || onNonFinite !== 'error') throw e;
    const out: Timed[] = [];
    for (const batch of group) {
      const r = await guardedStep(trainStep, batch);
      out.push(r);
      if (r.skipped !== undefined || !Number.isFinite(r.loss)) break;
    }
    return out;
  }
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
