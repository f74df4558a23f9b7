import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { lastValueFrom, type Observable, take, tap, toArray } from 'rxjs';
import {
  abs, add, type AnyOptimizer, type Batch, compile, type EpochEvent, fit, type HostTensor, matMul, mean, placeholder,
  rungeKutta, Session, sgd, square, type StepEvent, sub, tableaux, type TensorBoardFile, tensorboard,
  type TrainEvent, variable,
} from '../src/index.js';
import { BACKENDS, bits, rng } from './helpers.js';

// ---------------------------------------------------------------------------------------------------------------
// An independent reader of what the writer wrote: the framing walked by @roboflow/tfrecords (its own CRC-32C) and
// by a bitwise CRC here, and the protos decoded by protobufjs from the field numbers of TensorBoard's .proto files.

const require = createRequire(import.meta.url);
const helpers = require('@roboflow/tfrecords/src/tensorFlowHelpers.js') as {
  crc32c(b: Buffer): number; maskCrc(c: number): number; readInt64(b: Buffer): number;
};
const pb = require('@roboflow/tfrecords/src/tensorFlowRecordsProtoBuf_pb.js') as {
  TFRecordsImageMessage: { deserializeBinary(b: Uint8Array): unknown };
};
const { TFRecordsReader } = require('@roboflow/tfrecords/src/tensorFlowReader.js') as {
  TFRecordsReader: new (b: Buffer) => { length: number };
};

/** The payloads @roboflow/tfrecords' reader accepts (it checks both CRCs and stops at the first bad one). */
function roboflowPayloads(buf: Buffer): { payloads: Buffer[]; complaints: string[] } {
  const payloads: Buffer[] = [];
  const complaints: string[] = [];
  const original = pb.TFRecordsImageMessage.deserializeBinary;
  // Its reader decodes every payload as a tf.Example; here it hands them over instead.
  pb.TFRecordsImageMessage.deserializeBinary = (b) => { payloads.push(Buffer.from(b)); return {}; };
  const log = vi.spyOn(console, 'log').mockImplementation((m: unknown) => { complaints.push(String(m)); });
  try {
    expect(new TFRecordsReader(buf).length).toBe(payloads.length);
  } finally {
    pb.TFRecordsImageMessage.deserializeBinary = original;
    log.mockRestore();
  }
  return { payloads, complaints };
}

/** CRC-32C bit by bit (reflected Castagnoli polynomial), no table. */
function crcBitwise(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
const mask = (c: number) => (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;

/** Walks the records, checking every CRC two ways; throws on the first bad one. */
function frames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new Error(`truncated header at ${at}`);
    const lenBytes = buf.subarray(at, at + 8);
    const len = Number(buf.readBigUInt64LE(at));
    expect(helpers.readInt64(Buffer.from(lenBytes))).toBe(len);
    const lenCrc = buf.readUInt32LE(at + 8);
    expect(helpers.maskCrc(helpers.crc32c(Buffer.from(lenBytes)))).toBe(mask(crcBitwise(lenBytes)));
    if (mask(crcBitwise(lenBytes)) !== lenCrc) throw new Error(`length CRC mismatch at ${at}`);
    if (at + 16 + len > buf.length) throw new Error(`truncated record at ${at}`);
    const data = buf.subarray(at + 12, at + 12 + len);
    expect(helpers.maskCrc(helpers.crc32c(Buffer.from(data)))).toBe(mask(crcBitwise(data)));
    if (mask(crcBitwise(data)) !== buf.readUInt32LE(at + 12 + len)) throw new Error(`data CRC mismatch at ${at}`);
    out.push(Buffer.from(data));
    at += 16 + len;
  }
  return out;
}

// Field numbers as in tensorboard/compat/proto/event.proto, summary.proto and histogram.proto (the fields used).
const root = protobuf.parse(`syntax = "proto3";
message Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; bytes graph_def = 4; Summary summary = 5; } }
message Summary {
  message Value { string node_name = 7; string tag = 1; oneof value { float simple_value = 2; bytes obsolete_old_style_histogram = 3; HistogramProto histo = 5; } }
  repeated Value value = 1;
}
message HistogramProto {
  double min = 1; double max = 2; double num = 3; double sum = 4; double sum_squares = 5;
  repeated double bucket_limit = 6 [packed = true]; repeated double bucket = 7 [packed = true];
}`).root;
const EventType = root.lookupType('Event');

interface Histo { min: number; max: number; num: number; sum: number; sumSquares: number; bucketLimit: number[]; bucket: number[] }
interface DecodedValue { tag: string; value?: 'simpleValue' | 'histo'; simpleValue?: number; histo?: Histo }
interface Decoded { wallTime: number; step: number; what?: string; fileVersion?: string; summary?: { value: DecodedValue[] } }

/** Reads one event file: both readers must agree on every record and the whole file must be records. */
function readEvents(path: string): Decoded[] {
  const buf = readFileSync(path);
  const mine = frames(buf);
  const { payloads, complaints } = roboflowPayloads(buf);
  expect(complaints).toEqual([]);
  expect(payloads).toEqual(mine);
  return mine.map((p) => EventType.toObject(EventType.decode(p), { longs: Number, oneofs: true, arrays: true }) as Decoded);
}

/** [step, tag, value] of every scalar, in file order. */
function scalars(events: readonly Decoded[]): [number, string, number][] {
  return events.flatMap((e) => (e.summary?.value ?? []).filter((v) => v.value === 'simpleValue').map((v) => [e.step, v.tag, v.simpleValue!] as [number, string, number]));
}

/** The scalars the writer should have written for these stream events (values as float32). */
function expectedScalars(events: readonly TrainEvent[], every = 1): [number, string, number][] {
  const out: [number, string, number][] = [];
  let last = 0;
  for (const e of events) {
    if (e.type === 'step') {
      last = e.step;
      if (e.step % every !== 0) continue;
      out.push([e.step, 'train/loss', Math.fround(e.loss)]);
      if (e.lr !== undefined) out.push([e.step, 'train/lr', Math.fround(e.lr)]);
      out.push([e.step, 'train/ms', Math.fround(e.ms)]);
      if (e.rejections !== undefined) out.push([e.step, 'train/rejections', e.rejections]);
      if (e.errorNorm !== undefined) out.push([e.step, 'train/errorNorm', Math.fround(e.errorNorm)]);
    } else if (e.type === 'skipped') {
      last = e.step;
    } else {
      out.push([last, 'epoch/loss', Math.fround(e.loss)]);
      for (const [k, v] of Object.entries(e.val ?? {})) out.push([last, `val/${k}`, Math.fround(v)]);
    }
  }
  return out;
}

const files = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.')).map((f) => join(dir, f));
const closed = () => {
  let resolve: (f: TensorBoardFile) => void = () => {};
  const p = new Promise<TensorBoardFile>((r) => { resolve = r; });
  return { p, onClose: (f: TensorBoardFile) => resolve(f) };
};

// ---------------------------------------------------------------------------------------------------------------
// Data and model: a two-layer linear regression with 19 parameters, the same start on every backend.

const r = rng(24680);
const makeRows = (n: number): [number[][], number[][]] => {
  const xs = Array.from({ length: n }, () => [r() * 2 - 1, r() * 2 - 1]);
  return [xs, xs.map(([a, b]) => [1.5 * a! - 0.7 * b! + 0.2 + 0.1 * (r() - 0.5)])];
};
const [X, Y] = makeRows(10);
const [VX, VY] = makeRows(7);
const W1 = Array.from({ length: 2 }, () => Array.from({ length: 6 }, () => r() - 0.5));
const W2 = Array.from({ length: 6 }, () => [r() - 0.5]);

let tmp = '';
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'symflow-tb-')); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(tmp, `run${dirs++}`, 'nested');

describe('the event file format', () => {
  it('CRC-32C and the mask match the reference value and the independent implementations', async () => {
    const { crc32c, maskedCrc32c, tfRecord } = await import('../src/training/tfrecord.js');
    const digits = new TextEncoder().encode('123456789');
    expect(crc32c(digits)).toBe(0xe3069283);
    expect(crcBitwise(digits)).toBe(0xe3069283);
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);
    expect(crc32c(bytes)).toBe(helpers.crc32c(Buffer.from(bytes)));
    expect(maskedCrc32c(bytes)).toBe(helpers.maskCrc(helpers.crc32c(Buffer.from(bytes))));
    const framed = Buffer.from(tfRecord(bytes));
    expect(framed.length).toBe(316);
    expect(frames(framed)).toEqual([Buffer.from(bytes)]);
  });
});

describe.each(BACKENDS)('tensorboard on %s', (backend) => {
  let s: Session;
  beforeAll(async () => { s = await Session.create({ backend }); });
  afterAll(() => s.dispose());

  function model(opt: AnyOptimizer) {
    const w1 = variable(W1, { name: 'w1' });
    const w2 = variable(W2, { name: 'w2' });
    const b = variable(0.1, { name: 'b' });
    const x = placeholder([null, 2], { name: 'x' });
    const y = placeholder([null, 1], { name: 'y' });
    const err = sub(add(matMul(matMul(x, w1), w2), b), y);
    const train = compile(opt, s, { loss: mean(square(err)), inputs: [x, y] });
    return { train, mae: mean(abs(err)) };
  }
  const run = (obs: Observable<TrainEvent>) => lastValueFrom(obs.pipe(toArray()));

  it('scalars, validation metrics and histograms equal the stream; the file is framed, named and timed right', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    const refs = new Map<number, Promise<HostTensor[]>>();
    const t0 = Date.now() / 1000;
    const events = await run(fit(m.train, [X, Y], { epochs: 2, batchSize: 4, shuffle: false, validation: { data: [VX, VY], metrics: { mae: m.mae } } }).pipe(
      tensorboard(dir, { histograms: { params: m.train, every: 2, buckets: 5 } }),
      // Read after the writer's reads and before the next step: the same values it saw.
      tap((e) => { if (e.type === 'step' && e.step % 2 === 0) refs.set(e.step, Promise.all(m.train.params.map((v) => s.getValue(v)))); }),
    ));
    const t1 = Date.now() / 1000;
    expect(events.map((e) => e.type)).toEqual(['step', 'step', 'step', 'epoch', 'step', 'step', 'step', 'epoch']);

    const [path, ...others] = files(dir);
    expect(others).toEqual([]);
    const name = new RegExp(`^events\\.out\\.tfevents\\.(\\d{10})\\.${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.${process.pid}\\.\\d+$`);
    const seconds = Number(name.exec(path!.slice(dir.length + 1))![1]);
    expect(seconds).toBeGreaterThanOrEqual(Math.floor(t0));
    expect(seconds).toBeLessThanOrEqual(t1);

    const decoded = readEvents(path!);
    expect(decoded[0]).toMatchObject({ what: 'fileVersion', fileVersion: 'brain.Event:2' });
    for (const [i, e] of decoded.entries()) {
      expect(e.wallTime).toBeGreaterThanOrEqual(Math.floor(t0 * 1000) / 1000);
      expect(e.wallTime).toBeLessThanOrEqual(t1 + 1e-3);
      if (i > 0) {
        expect(e.what).toBe('summary');
        expect(e.wallTime).toBeGreaterThanOrEqual(decoded[i - 1]!.wallTime);
      }
    }
    const got = scalars(decoded);
    expect(got).toEqual(expectedScalars(events));
    // Spelled out for the first step and epoch: loss, lr 0.1 as float32, validation loss and mae at step 2.
    const first = events[0] as StepEvent;
    expect(got.slice(0, 3)).toEqual([[0, 'train/loss', Math.fround(first.loss)], [0, 'train/lr', Math.fround(0.1)], [0, 'train/ms', Math.fround(first.ms)]]);
    const epoch0 = events[3] as EpochEvent;
    expect(got.filter(([step, tag]) => step === 2 && !tag.startsWith('train/'))).toEqual([
      [2, 'epoch/loss', Math.fround(epoch0.loss)], [2, 'val/loss', Math.fround(epoch0.val!['loss']!)], [2, 'val/mae', Math.fround(epoch0.val!['mae']!)],
    ]);

    const hists = decoded.filter((e) => e.summary?.value.some((v) => v.value === 'histo'));
    expect(hists.map((e) => e.step)).toEqual([0, 2, 4]);
    for (const e of hists) {
      const values = await refs.get(e.step)!;
      expect(e.summary!.value.map((v) => v.tag)).toEqual(m.train.params.map((p) => `params/${p.name}`));
      e.summary!.value.forEach((v, i) => {
        const data = Array.from(values[i]!.data);
        const h = v.histo!;
        expect(h.num).toBe(data.length);
        expect(h.bucket.reduce((a, c) => a + c, 0)).toBe(data.length);
        expect(h.min).toBe(Math.min(...data));
        expect(h.max).toBe(Math.max(...data));
        expect(h.sum).toBe(data.reduce((a, c) => a + c, 0));
        expect(h.sumSquares).toBe(data.reduce((a, c) => a + c * c, 0));
        expect(h.bucketLimit.length).toBe(h.bucket.length);
        expect(h.bucketLimit.at(-1)).toBe(h.max);
        if (data.length > 1) expect(h.bucket.length).toBe(5);
        // Bucket j holds the values in (limit[j−1], limit[j]].
        h.bucket.forEach((count, j) => {
          const lo = j === 0 ? -Infinity : h.bucketLimit[j - 1]!;
          expect(count).toBe(data.filter((x) => x > lo && x <= h.bucketLimit[j]!).length);
        });
      });
    }
    // The parameters moved between the histograms (so they were read at different steps).
    expect((await refs.get(0)!)[0]!.data).not.toEqual((await refs.get(4)!)[0]!.data);

    // A changed byte anywhere in a record is caught by both readers: length, its CRC, the data, the data's CRC.
    const buf = readFileSync(path!);
    const second = 16 + Number(buf.readBigUInt64LE(0));
    const len = Number(buf.readBigUInt64LE(second));
    for (const [offset, why] of [[0, 'length CRC'], [9, 'length CRC'], [14, 'data CRC'], [12 + len + 2, 'data CRC']] as const) {
      const bad = Buffer.from(buf);
      bad[second + offset] ^= 0x10;
      expect(() => frames(bad)).toThrow(why);
      const { payloads, complaints } = roboflowPayloads(bad);
      expect(payloads.length).toBe(1);
      expect(complaints).toEqual([why === 'length CRC' ? 'Wrong Length CRC' : 'Wrong Data CRC']);
    }
  });

  it('histogram reads change nothing: losses and parameters bit-identical to training without the writer', async () => {
    const plain = model(sgd({ lr: 0.1 }));
    const logged = model(sgd({ lr: 0.1 }));
    const opts = { epochs: 2, batchSize: 3, seed: 3 };
    const a = await run(fit(plain.train, [X, Y], opts));
    const b = await run(fit(logged.train, [X, Y], opts).pipe(tensorboard(freshDir(), { histograms: { params: logged.train, every: 1 } })));
    expect(b.map((e) => e.loss)).toEqual(a.map((e) => e.loss));
    const state = async (t: typeof plain.train) => Promise.all(t.params.map(async (v) => bits(await s.getValue(v))));
    expect(await state(logged.train)).toEqual(await state(plain.train));
  });

  it('skipped steps write nothing; the epoch scalars go at the last step index, a skipped one included', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    const bad = Y.map((row, i) => (i === 9 ? [NaN] : row)); // the last batch (rows 8–9) is skipped
    const events = await run(fit(m.train, [X, bad], { epochs: 1, batchSize: 4, shuffle: false, onNonFinite: 'skip' }).pipe(tensorboard(dir)));
    expect(events.map((e) => e.type)).toEqual(['step', 'step', 'skipped', 'epoch']);
    const got = scalars(readEvents(files(dir)[0]!));
    expect(got).toEqual(expectedScalars(events));
    expect(got.filter(([, tag]) => tag === 'train/loss').map(([step]) => step)).toEqual([0, 1]);
    expect(got.filter(([, tag]) => tag === 'epoch/loss')).toEqual([[2, 'epoch/loss', Math.fround((events[0]!.loss + events[1]!.loss) / 2)]]);
  });

  it('the records reach the disk at the end of each epoch, while training goes on', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    let release = () => {};
    const gate = new Promise<void>((res) => { release = res; });
    let epochs = 0;
    // Epoch 1 waits for the gate before its first batch: training is held after epoch 0 ended.
    const source: AsyncIterable<Batch> = {
      async *[Symbol.asyncIterator]() {
        if (epochs++ === 1) await gate;
        yield [X.slice(0, 4), Y.slice(0, 4)];
        yield [X.slice(4, 8), Y.slice(4, 8)];
      },
    };
    const seen: TrainEvent[] = [];
    const done = run(fit(m.train, source, { epochs: 2 }).pipe(tensorboard(dir, { flushMs: 1e9 }), tap((e) => seen.push(e))));
    const end = Date.now() + 10_000;
    const count = () => { const f = files(dir)[0]; return f === undefined ? 0 : frames(readFileSync(f)).length; };
    while (count() < 4 && Date.now() < end) await new Promise((res) => setTimeout(res, 5));
    expect(seen.map((e) => e.type)).toEqual(['step', 'step', 'epoch']);
    expect(count()).toBe(4); // header, two steps, the epoch
    expect(scalars(readEvents(files(dir)[0]!))).toEqual(expectedScalars(seen));
    release();
    const events = await done;
    expect(scalars(readEvents(files(dir)[0]!))).toEqual(expectedScalars(events));
    expect(count()).toBe(7);
  });

  it('every: 3 writes the step scalars of steps 0 and 3 only, the epoch scalars always', async () => {
    const m = model(sgd({ lr: 0.05 }));
    const dir = freshDir();
    const events = await run(fit(m.train, [X, Y], { epochs: 2, batchSize: 4, shuffle: false }).pipe(tensorboard(dir, { every: 3 })));
    const got = scalars(readEvents(files(dir)[0]!));
    expect(got).toEqual(expectedScalars(events, 3));
    expect(got.filter(([, tag]) => tag === 'train/loss').map(([step]) => step)).toEqual([0, 3]);
    expect(got.filter(([, tag]) => tag === 'epoch/loss').map(([step]) => step)).toEqual([2, 5]);
  });

  it('adaptive Runge–Kutta: train/rejections and train/errorNorm at every step', async () => {
    const m = model(rungeKutta({ tableau: tableaux.bogackiShampine, lr: 0.5, adaptive: { tol: 1e-3 } }));
    const dir = freshDir();
    const events = await run(fit(m.train, [X, Y], { epochs: 1, batchSize: 4, shuffle: false }).pipe(tensorboard(dir)));
    const steps = events.filter((e): e is StepEvent => e.type === 'step');
    expect(steps.length).toBe(3);
    const got = scalars(readEvents(files(dir)[0]!));
    expect(got).toEqual(expectedScalars(events));
    for (const e of steps) {
      expect(got).toContainEqual([e.step, 'train/rejections', e.rejections!]);
      expect(got).toContainEqual([e.step, 'train/errorNorm', Math.fround(e.errorNorm!)]);
      expect(Number.isFinite(e.errorNorm)).toBe(true);
    }
  });

  it('unsubscribing mid-training leaves a valid file with every record, the pending histogram read included', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    const c = closed();
    const upstream: TrainEvent[] = [];
    const events = await run(fit(m.train, [X, Y], { epochs: 3, batchSize: 4, shuffle: false }).pipe(
      tap((e) => upstream.push(e)),
      tensorboard(dir, { histograms: { params: m.train, every: 1 }, onClose: c.onClose }),
      take(5), // step 0, 1, 2, epoch 0, step 3: unsubscribes with step 3's histogram read still queued
    ));
    const file = await c.p;
    expect(file.error).toBeUndefined();
    expect(files(dir)).toEqual([file.path]);
    const decoded = readEvents(file.path);
    expect(decoded.length).toBe(file.records);
    expect(decoded.length).toBe(1 + 4 + 4 + 1);
    expect(scalars(decoded)).toEqual(expectedScalars(events));
    expect(decoded.filter((e) => e.summary?.value[0]?.value === 'histo').map((e) => e.step)).toEqual([0, 1, 2, 3]);
    // Training stopped at the step boundary.
    expect(upstream.length).toBe(5);
    await new Promise((res) => setTimeout(res, 30));
    expect(upstream.length).toBe(5);
  });

  it('an error in the stream is delivered after the records before it are on disk', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    const bad = Y.map((row, i) => (i === 5 ? [NaN] : row)); // the second batch (rows 4–7) has a non-finite loss
    const c = closed();
    const seen: TrainEvent[] = [];
    const { error, atError } = await new Promise<{ error: unknown; atError: Decoded[] }>((resolve, reject) => {
      fit(m.train, [X, bad], { epochs: 1, batchSize: 4, shuffle: false }).pipe(tensorboard(dir, { onClose: c.onClose })).subscribe({
        next: (e) => seen.push(e),
        error: (e) => resolve({ error: e, atError: readEvents(files(dir)[0]!) }),
        complete: () => reject(new Error('expected an error')),
      });
    });
    expect(String(error)).toMatch(/non-finite loss NaN at epoch 0, batch 1/);
    expect(seen.map((e) => e.type)).toEqual(['step']);
    expect(atError.length).toBe(2);
    expect(scalars(atError)).toEqual(expectedScalars(seen));
    const file = await c.p;
    expect(file.records).toBe(2);
    expect(readEvents(file.path).length).toBe(2);
  });

  it('a failed append errors the stream (the logdir removed under it)', async () => {
    const m = model(sgd({ lr: 0.1 }));
    const dir = freshDir();
    const c = closed();
    const result = run(fit(m.train, [X, Y], { epochs: 3, batchSize: 4 }).pipe(tensorboard(dir, { onClose: c.onClose })));
    expect(files(dir).length).toBe(1); // created with its header at subscription
    rmSync(dir, { recursive: true });
    await expect(result).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await c.p).error).toMatchObject({ code: 'ENOENT' });
  });

  it('two writers on two fits into the same logdir write two files, each with its own stream', async () => {
    const a = model(sgd({ lr: 0.1 }));
    const b = model(sgd({ lr: 0.02 }));
    const dir = freshDir();
    const ca = closed();
    const cb = closed();
    const [ea, eb] = await Promise.all([
      run(fit(a.train, [X, Y], { epochs: 2, batchSize: 4 }).pipe(tensorboard(dir, { onClose: ca.onClose }))),
      run(fit(b.train, [X, Y], { epochs: 2, batchSize: 3 }).pipe(tensorboard(dir, { onClose: cb.onClose }))),
    ]);
    const [fa, fb] = await Promise.all([ca.p, cb.p]);
    expect(fa.path).not.toBe(fb.path);
    expect(files(dir).sort()).toEqual([fa.path, fb.path].sort());
    expect(scalars(readEvents(fa.path))).toEqual(expectedScalars(ea));
    expect(scalars(readEvents(fb.path))).toEqual(expectedScalars(eb));
    expect(expectedScalars(ea)).not.toEqual(expectedScalars(eb));
  });
});

describe('tensorboard arguments', () => {
  it('refuses a bad logdir, every and histogram options by name', () => {
    expect(() => tensorboard('')).toThrow(/tensorboard: logdir must be a non-empty string/);
    expect(() => tensorboard('x', { every: 0 })).toThrow(/tensorboard: every must be a positive integer, got 0/);
    expect(() => tensorboard('x', { histograms: { params: [], every: 1.5 } })).toThrow(/histograms\.every must be a positive integer, got 1\.5/);
    expect(() => tensorboard('x', { histograms: { params: 3 as never } })).toThrow(/histograms\.params must be a TrainStep or an array of variables/);
  });
});
