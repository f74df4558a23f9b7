// Protocol-buffer encoding of the few TensorBoard messages the event writer needs, by hand (field numbers from
// tensorboard/compat/proto/event.proto, summary.proto and histogram.proto):
//   Event          { double wall_time = 1; int64 step = 2; oneof { string file_version = 3; Summary summary = 5; } }
//   Summary        { repeated Value value = 1; }
//   Summary.Value  { string tag = 1; oneof { float simple_value = 2; HistogramProto histo = 5; } }
//   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
//                    repeated double bucket_limit = 6 [packed]; repeated double bucket = 7 [packed]; }

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const FIXED32 = 5;

/** An append-only protobuf writer: fields are written in the order called. */
class ProtoWriter {
  private buf = new Uint8Array(64);
  private len = 0;
  private readonly view = () => new DataView(this.buf.buffer, this.buf.byteOffset);

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(2 * this.buf.length, this.len + n));
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
  }

  /** A non-negative integer up to 2⁵³ as a base-128 varint (arithmetic, not bit ops, beyond 32 bits). */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint: expected a non-negative safe integer, got ${v}`);
    this.reserve(8);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
    return this;
  }

  private key(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  uint(field: number, v: number): this {
    return this.key(field, VARINT).varint(v);
  }

  double(field: number, v: number): this {
    this.key(field, FIXED64).reserve(8);
    this.view().setFloat64(this.len, v, true);
    this.len += 8;
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, FIXED32).reserve(4);
    this.view().setFloat32(this.len, v, true);
    this.len += 4;
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, LENGTH).varint(b.length).reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  packedDoubles(field: number, vs: readonly number[]): this {
    const body = new ProtoWriter();
    for (const v of vs) {
      body.reserve(8);
      body.view().setFloat64(body.len, v, true);
      body.len += 8;
    }
    return this.bytes(field, body.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** A `HistogramProto`: bucket i counts the values in (bucketLimit[i−1], bucketLimit[i]] (the first from −∞). */
export interface Histogram {
  readonly min: number;
  readonly max: number;
  readonly num: number;
  readonly sum: number;
  readonly sumSquares: number;
  readonly bucketLimit: readonly number[];
  readonly bucket: readonly number[];
}

/** One `Summary.Value`: a scalar (written as float32) or a histogram. */
export type SummaryValue =
  | { readonly tag: string; readonly simpleValue: number }
  | { readonly tag: string; readonly histo: Histogram };

/** One `Event`: the file-version header, or a summary at a step. */
export interface TfEvent {
  /** Seconds since the Unix epoch. */
  readonly wallTime: number;
  readonly step: number;
  readonly fileVersion?: string;
  readonly summary?: readonly SummaryValue[];
}

/**
 * Serializes an `Event` proto.
 * ```ts
 * encodeEvent({ wallTime: Date.now() / 1000, step: 3, summary: [{ tag: 'train/loss', simpleValue: 0.25 }] });
 * ```
 * @param e the event @returns its protobuf bytes
 */
export function encodeEvent(e: TfEvent): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime).uint(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.summary !== undefined) {
    const summary = new ProtoWriter();
    for (const v of e.summary) summary.bytes(1, encodeValue(v));
    w.bytes(5, summary.finish());
  }
  return w.finish();
}

function encodeValue(v: SummaryValue): Uint8Array {
  // A oneof member is written even when it is 0: that is how a reader knows which one is set.
  const w = new ProtoWriter().string(1, v.tag);
  if ('simpleValue' in v) return w.float(2, v.simpleValue).finish();
  const h = v.histo;
  const histo = new ProtoWriter()
    .double(1, h.min).double(2, h.max).double(3, h.num).double(4, h.sum).double(5, h.sumSquares)
    .packedDoubles(6, h.bucketLimit).packedDoubles(7, h.bucket);
  return w.bytes(5, histo.finish()).finish();
}

/**
 * A histogram of `values` in `buckets` equal-width buckets from their min to their max (the last limit is the
 * max itself; one bucket when all values are equal). Non-finite values are left out.
 * ```ts
 * histogram([0, 1, 1, 2, 4], 4); // bucketLimit [1, 2, 3, 4], bucket [3, 1, 0, 1]: a value on a limit counts left
 * ```
 * @param values the values @param buckets how many buckets (default 30) @returns the histogram
 */
export function histogram(values: ArrayLike<number>, buckets = 30): Histogram {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`histogram: buckets must be a positive integer, got ${buckets}`);
  let min = Infinity;
  let max = -Infinity;
  let num = 0;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    num++;
    sum += v;
    sumSquares += v * v;
  }
  if (num === 0) return { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [], bucket: [] };
  if (min === max) return { min, max, num, sum, sumSquares, bucketLimit: [max], bucket: [num] };
  const width = (max - min) / buckets;
  const bucketLimit = Array.from({ length: buckets }, (_, i) => (i === buckets - 1 ? max : min + (i + 1) * width));
  const bucket = new Array<number>(buckets).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    // The first bucket whose limit is >= v (limits are increasing; the last is max, so one always is).
    let b = Math.min(buckets - 1, Math.max(0, Math.ceil((v - min) / width) - 1));
    while (b > 0 && v <= bucketLimit[b - 1]!) b--;
    while (v > bucketLimit[b]!) b++;
    bucket[b]!++;
  }
  return { min, max, num, sum, sumSquares, bucketLimit, bucket };
}
