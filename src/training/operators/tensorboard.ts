import { mkdirSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';
import type { Variable } from '../../graph/tensor.js';
import type { TrainStep } from '../../optimizers/compile.js';
import type { Session } from '../../session/session.js';
import { type EpochEvent, sessionOf, type StepEvent, type TrainEvent } from '../fit.js';
import { encodeEvent, histogram, type SummaryValue } from '../summaryProto.js';
import { tfRecord } from '../tfrecord.js';

/** Histograms of parameter values, read between steps. */
export interface TensorBoardHistograms {
  /** The variables to show (tags `params/<name>`): a TrainStep's `params`, or a list (read from the events' session). */
  params: TrainStep | readonly Variable[];
  /** Every n-th step (steps whose index is a multiple of n); without it, at the end of each epoch. */
  every?: number;
  /** Equal-width buckets from each variable's min to its max (default 30). */
  buckets?: number;
}

/** Options of `tensorboard(logdir, opts)`. */
export interface TensorBoardOptions {
  /** Write the step scalars of every n-th step (those whose index is a multiple of n; default 1). Epoch scalars are always written. */
  every?: number;
  /** Histograms of parameters (`params/<name>`), read between steps; none by default. */
  histograms?: TensorBoardHistograms;
  /** Appends what is buffered at least this often, in milliseconds, while steps arrive (default 2000); also at each epoch's end. */
  flushMs?: number;
  /** Called once when the file is closed (complete, error or unsubscribe) and every record is on disk. */
  onClose?: (file: TensorBoardFile) => void;
}

/** The event file an operator wrote. */
export interface TensorBoardFile {
  /** The file's path (`<logdir>/events.out.tfevents.<seconds>.<host>.<pid>.<n>`). */
  readonly path: string;
  /** Records written, the file-version header included. */
  readonly records: number;
  /** Why writing stopped early (a failed append or parameter read). */
  readonly error?: unknown;
}

/**
 * Writes the training stream as TensorBoard event files (and passes every event through): one new file
 * `events.out.tfevents.<seconds>.<host>.<pid>.<n>` in `logdir` per subscription. Step scalars `train/loss`,
 * `train/lr`, `train/ms` and, for adaptive Runge–Kutta, `train/rejections` and `train/errorNorm`, at the event's
 * step; at each epoch's end `epoch/loss` and `val/<metric>` at the epoch's last step. Histograms (optional) read the
 * parameters with `session.getValue`, queued at the step boundary before the next step, so training is unchanged.
 * Records are appended in order, whole; the stream completes (or errors) after they are on disk, and an
 * unsubscribed stream's file is still valid once the last append ends (see `onClose`).
 * ```ts
 * fit(train, [xs, ys], { epochs: 5 }).pipe(tensorboard('logs/adam', { histograms: { params: train, every: 100 } }));
 * // then: tensorboard --logdir logs
 * ```
 * @param logdir the run's directory (created if missing) @param opts step interval, histograms, flushing
 * @returns the operator
 */
export function tensorboard(logdir: string, opts: TensorBoardOptions = {}): MonoTypeOperatorFunction<TrainEvent> {
  if (typeof logdir !== 'string' || logdir.length === 0) throw new SymflowError('tensorboard', 'logdir must be a non-empty string');
  const every = positiveInt('every', opts.every ?? 1);
  const flushMs = opts.flushMs ?? 2000;
  if (typeof flushMs !== 'number' || !(flushMs >= 0)) throw new SymflowError('tensorboard', `flushMs must be a number >= 0, got ${String(flushMs)}`);
  const hist = opts.histograms === undefined ? undefined : histogramPlan(opts.histograms);
  return (source) => new Observable<TrainEvent>((subscriber) => {
    let file: EventFile;
    try {
      file = new EventFile(logdir, flushMs);
    } catch (e) {
      subscriber.error(e);
      return;
    }
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      subscriber.error(e);
    };
    let lastStep = 0;
    const histograms = (e: TrainEvent, step: number) => {
      const s = hist!.session ?? sessionOf(e);
      if (s === undefined) throw new SymflowError('tensorboard', 'events do not come from fit; pass histograms.params a TrainStep');
      file.add(histogramRecord(s, hist!, step));
    };
    const sub = source.subscribe({
      next: (e) => {
        // Recorded before it is passed on: reads queue ahead of anything a later subscriber does to the session.
        try {
          if (e.type === 'step') {
            lastStep = e.step;
            if (e.step % every === 0) file.add(record(e.step, stepScalars(e)));
            if (hist?.every !== undefined && e.step % hist.every === 0) histograms(e, e.step);
          } else if (e.type === 'skipped') {
            lastStep = e.step;
          } else {
            file.add(record(lastStep, epochScalars(e)));
            if (hist !== undefined && hist.every === undefined) histograms(e, lastStep);
            file.flush().catch(fail);
          }
        } catch (err) {
          fail(err);
          return;
        }
        subscriber.next(e);
      },
      error: (err) => { void file.flush().finally(() => subscriber.error(err)).catch(() => {}); },
      complete: () => { file.flush().then(() => subscriber.complete(), fail); },
    });
    return () => {
      sub.unsubscribe();
      file.close().then(
        () => opts.onClose?.({ path: file.path, records: file.records }),
        (error: unknown) => opts.onClose?.({ path: file.path, records: file.records, error }),
      );
    };
  });
}

interface HistogramPlan {
  variables: readonly Variable[];
  session: Session | undefined;
  every: number | undefined;
  buckets: number;
}

function histogramPlan(h: TensorBoardHistograms): HistogramPlan {
  const p = h.params as Partial<TrainStep> | readonly Variable[];
  const fromStep = !Array.isArray(p) && typeof p === 'object' && p !== null && Array.isArray((p as Partial<TrainStep>).params);
  const variables = fromStep ? (p as TrainStep).params : (p as readonly Variable[]);
  if (!Array.isArray(variables)) throw new SymflowError('tensorboard', 'histograms.params must be a TrainStep or an array of variables');
  return {
    variables,
    session: fromStep ? (p as TrainStep).session : undefined,
    every: h.every === undefined ? undefined : positiveInt('histograms.every', h.every),
    buckets: positiveInt('histograms.buckets', h.buckets ?? 30),
  };
}

function stepScalars(e: StepEvent): SummaryValue[] {
  const out: SummaryValue[] = [{ tag: 'train/loss', simpleValue: e.loss }];
  if (e.lr !== undefined) out.push({ tag: 'train/lr', simpleValue: e.lr });
  out.push({ tag: 'train/ms', simpleValue: e.ms });
  if (e.rejections !== undefined) out.push({ tag: 'train/rejections', simpleValue: e.rejections });
  if (e.errorNorm !== undefined) out.push({ tag: 'train/errorNorm', simpleValue: e.errorNorm });
  return out;
}

function epochScalars(e: EpochEvent): SummaryValue[] {
  const out: SummaryValue[] = [{ tag: 'epoch/loss', simpleValue: e.loss }];
  for (const [name, v] of Object.entries(e.val ?? {})) out.push({ tag: `val/${name}`, simpleValue: v });
  return out;
}

function record(step: number, summary: readonly SummaryValue[]): Uint8Array {
  return tfRecord(encodeEvent({ wallTime: Date.now() / 1000, step, summary }));
}

/** The values are requested now (all before the next step); the record is built when they arrive. */
async function histogramRecord(s: Session, h: HistogramPlan, step: number): Promise<Uint8Array> {
  const wallTime = Date.now() / 1000;
  const values = await Promise.all(h.variables.map((v) => s.getValue(v)));
  const summary = values.map((t, i) => ({ tag: `params/${h.variables[i]!.name}`, histo: histogram(t.data, h.buckets) }));
  return tfRecord(encodeEvent({ wallTime, step, summary }));
}

/** Distinguishes files one process opens within the same second (as TensorBoard's own writers do). */
let fileCounter = 0;

/** One event file: created with its header at once, then appended to in order, whole records at a time. */
class EventFile {
  readonly path: string;
  records = 1;
  private pending: (Uint8Array | Promise<Uint8Array>)[] = [];
  private pendingBytes = 0;
  private lastFlush = Date.now();
  private written: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(logdir: string, private readonly flushMs: number) {
    mkdirSync(logdir, { recursive: true });
    const header = tfRecord(encodeEvent({ wallTime: Date.now() / 1000, step: 0, fileVersion: 'brain.Event:2' }));
    for (;;) {
      const seconds = String(Math.floor(Date.now() / 1000)).padStart(10, '0');
      const path = join(logdir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}.${fileCounter++}`);
      try {
        writeFileSync(path, header, { flag: 'wx' });
        this.path = path;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  add(r: Uint8Array | Promise<Uint8Array>): void {
    if (this.closed) return;
    if (r instanceof Promise) r.catch(() => {}); // a failed read surfaces at the flush that awaits it
    else this.pendingBytes += r.length;
    this.pending.push(r);
    this.records++;
    if (this.pendingBytes >= 1 << 20 || Date.now() - this.lastFlush >= this.flushMs) this.flush().catch(() => {});
  }

  /** Appends everything added so far, after the appends before it; resolves when it is on disk. */
  flush(): Promise<void> {
    const parts = this.pending.splice(0);
    this.pendingBytes = 0;
    this.lastFlush = Date.now();
    if (parts.length === 0) return this.written;
    this.written = this.written.then(async () => {
      const records = await Promise.all(parts);
      const all = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
      let at = 0;
      for (const r of records) {
        all.set(r, at);
        at += r.length;
      }
      await appendFile(this.path, all);
    });
    return this.written;
  }

  close(): Promise<void> {
    const done = this.flush();
    this.closed = true;
    return done;
  }
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new SymflowError('tensorboard', `${name} must be a positive integer, got ${String(v)}`);
  return v;
}
