import { Observable, Subject, type Subscription } from 'rxjs';
import { SymflowError } from '../graph/errors.js';
import { dtypeOfArray, type NestedArray, toHostTensor, type TypedArray, typedArrayFor } from '../graph/hostValue.js';
import { seededRandom } from '../graph/initializers.js';
import { type DType, isFullyKnown, shapeString, sizeOf, type Tensor } from '../graph/tensor.js';
import type { FeedValue } from '../session/session.js';

/** One column of an in-memory dataset: a row per example (nested arrays), or flat data whose row shape comes from the input. */
export type Column =
  | readonly NestedArray[]
  | TypedArray
  | Float64Array
  | {
    /** The whole column's shape: [rows, …the input's row shape]. */
    shape: readonly number[];
    /** Row-major elements, as many as the product of `shape`. */
    data: TypedArray | Float64Array | readonly number[];
  };

/** One batch: a value per input of the train step, in order. */
export type Batch = readonly FeedValue[];

/** A pull-based source: it gets a stream of requests (the index of the batch wanted) and answers each with one batch. */
export type PullSource = (requests: Observable<number>) => Observable<Batch>;

/**
 * Where training data comes from: in-memory columns (one per input, batched and shuffled by `fit`), an Observable of
 * batches, a pull-based source, or an async iterable of batches. Observable and iterable sources are read again
 * for every epoch.
 */
export type DataSource = readonly Column[] | Observable<Batch> | PullSource | AsyncIterable<Batch>;

/** An in-memory column made contiguous: `rows` rows of `rowShape`. */
export interface PreparedColumn {
  readonly rows: number;
  readonly rowShape: readonly number[];
  readonly rowSize: number;
  readonly data: TypedArray;
}

/** Validates and flattens in-memory columns against the inputs they feed; errors name the input. */
export function prepareColumns(who: string, inputs: readonly Tensor[], columns: readonly Column[]): PreparedColumn[] {
  if (columns.length !== inputs.length) {
    throw new SymflowError(who, `data has ${columns.length} column(s) for ${inputs.length} input(s) (${inputs.map((t) => `'${t.name}'`).join(', ')})`);
  }
  const prepared = columns.map((col, i) => {
    const t = inputs[i]!;
    if (t.rank < 1) throw new SymflowError(who, `input '${t.name}' is a scalar; in-memory data needs a leading batch dimension`);
    const rowShape = t.shape.slice(1);
    let host;
    if (ArrayBuffer.isView(col)) {
      if (!isFullyKnown(rowShape)) throw new SymflowError(who, `input '${t.name}' ${shapeString(t.shape)}: a flat typed array needs known row dimensions; pass {shape, data}`);
      const rowSize = sizeOf(rowShape);
      const n = (col as TypedArray).length;
      if (rowSize === 0 || n % rowSize !== 0) throw new SymflowError(who, `column ${i} has ${n} values, not a whole number of rows of ${shapeString(rowShape)}`);
      host = toHostTensor(`data for '${t.name}'`, { shape: [n / rowSize, ...rowShape], data: col as TypedArray }, t.dtype, [null, ...rowShape]);
    } else {
      host = toHostTensor(`data for '${t.name}'`, col as never, t.dtype, [null, ...rowShape]);
    }
    const rows = host.shape[0]!;
    return { rows, rowShape: host.shape.slice(1), rowSize: sizeOf(host.shape.slice(1)), data: host.data };
  });
  const rows = prepared[0]?.rows ?? 0;
  const odd = prepared.findIndex((c) => c.rows !== rows);
  if (odd >= 0) {
    throw new SymflowError(who, `columns differ in length: column 0 ('${inputs[0]!.name}') has ${rows} rows, column ${odd} ('${inputs[odd]!.name}') has ${prepared[odd]!.rows}`);
  }
  if (rows === 0) throw new SymflowError(who, 'data has no rows');
  return prepared;
}

/** The row order of one epoch: seeded Fisher–Yates, reproducible for (seed, epoch). */
export function epochOrder(rows: number, shuffle: boolean, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  if (!shuffle) return order;
  const rand = seededRandom((seed * 0x9e3779b1 + epoch * 0x85ebca6b) >>> 0);
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}

/** Batches of one epoch of in-memory data, gathered row by row into contiguous arrays. */
export function* inMemoryBatches(
  columns: readonly PreparedColumn[], order: Int32Array, batchSize: number, dropRemainder: boolean, firstBatch = 0,
): Generator<Batch> {
  for (let start = firstBatch * batchSize; start < order.length; start += batchSize) {
    const end = Math.min(start + batchSize, order.length);
    if (end - start < batchSize && dropRemainder) return;
    yield columns.map((c) => {
      const out = typedArrayFor(dtypeOf(c.data), (end - start) * c.rowSize);
      for (let r = start; r < end; r++) out.set(c.data.subarray(order[r]! * c.rowSize, (order[r]! + 1) * c.rowSize), (r - start) * c.rowSize);
      return { shape: [end - start, ...c.rowShape], data: out };
    });
  }
}

function dtypeOf(data: TypedArray): DType {
  return dtypeOfArray(data) as DType;
}

/**
 * Reads batches one at a time: `next()` asks for the next batch only when the caller is ready for it. Observable
 * sources are subscribed once per epoch and queued; pull sources are asked for exactly one batch per `next()`.
 */
export function batchReader(source: Exclude<DataSource, readonly Column[]>): AsyncIterator<Batch> {
  if (typeof source === 'function') return observableReader(source as PullSource, true);
  if (source instanceof Observable) return observableReader(() => source, false);
  if (source !== null && typeof source === 'object' && Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  throw new SymflowError('fit', 'data must be in-memory columns, an Observable of batches, a pull source or an async iterable');
}

function observableReader(make: PullSource, pull: boolean): AsyncIterator<Batch> {
  const queue: Batch[] = [];
  const waiting: { resolve: (r: IteratorResult<Batch>) => void; reject: (e: unknown) => void }[] = [];
  let done = false;
  let failure: { error: unknown } | undefined;
  let requested = 0;
  const requests = new Subject<number>();
  let sub: Subscription | undefined;
  const settle = () => {
    while (waiting.length > 0 && (queue.length > 0 || done || failure)) {
      const w = waiting.shift()!;
      if (queue.length > 0) w.resolve({ value: queue.shift()!, done: false });
      else if (failure) w.reject(failure.error);
      else w.resolve({ value: undefined, done: true });
    }
  };
  const start = () => {
    sub = make(requests).subscribe({
      next: (b) => { queue.push(b); settle(); },
      error: (e) => { failure = { error: e }; settle(); },
      complete: () => { done = true; settle(); },
    });
  };
  return {
    next() {
      if (sub === undefined) start();
      return new Promise<IteratorResult<Batch>>((resolve, reject) => {
        waiting.push({ resolve, reject });
        if (pull && queue.length === 0 && !done && !failure) requests.next(requested++);
        settle();
      });
    },
    async return() {
      sub?.unsubscribe();
      requests.complete();
      done = true;
      settle();
      return { value: undefined, done: true };
    },
  };
}
