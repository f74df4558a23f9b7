// Resumable fit (issue 15 §4): a checkpoint written by checkpointEvery carries where the fit stands (epoch, batch,
// step, the epoch's running loss, the settings the shuffled batches depend on); fit(…, {resumeFrom}) continues
// so that train → crash → restore → finish is bit for bit the run that never stopped — with shuffling, dropout
// and Adam — on every backend.
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  adam, checkpointEvery, compile, dropout, fit, graph, layers, mean, placeholder, Session, sparseSoftmaxCrossEntropy,
  type TrainEvent,
} from '../src/index.js';
import { decodeCheckpointFile } from '../src/session/checkpoint.js';
import { readFile } from 'node:fs/promises';
import { BACKENDS, bits, rng } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'symflow-resume-'));
const r = rng(5);
const X = Array.from({ length: 40 }, () => Array.from({ length: 4 }, () => r() * 2 - 1));
const Y = X.map((x) => (x[0]! + x[1]! > 0 ? 1 : 0) + (x[2]! > 0.3 ? 1 : 0));
const OPTS = { epochs: 3, batchSize: 8, seed: 11 } as const;

async function build(backend: (typeof BACKENDS)[number]) {
  const s = await Session.create({ backend, seed: 3 });
  const m = graph(() => {
    const x = placeholder([null, 4], { name: 'x' });
    const y = placeholder([null], { dtype: 'int32', name: 'y' });
    const h = dropout(layers.dense(x, 16, { activation: 'relu', seed: 1, name: 'h' }), 0.25, { seed: 9 });
    return { x, y, loss: mean(sparseSoftmaxCrossEntropy(layers.dense(h, 3, { seed: 2, name: 'out' }), y)) };
  });
  const train = compile(adam({ lr: 0.02 }), s, { loss: m.loss, inputs: [m.x, m.y] });
  return { s, train };
}

const record = (stream: ReturnType<typeof fit>, stopAfterSteps = Infinity) => new Promise<TrainEvent[]>((done, fail) => {
  const events: TrainEvent[] = [];
  let steps = 0;
  const sub = stream.subscribe({
    next: (e) => {
      events.push(e);
      if (e.type === 'step' && ++steps >= stopAfterSteps) {
        sub.unsubscribe();
        done(events);
      }
    },
    complete: () => done(events),
    error: fail,
  });
});
const everything = async (s: Session, t: Awaited<ReturnType<typeof build>>['train']) => Promise.all([...t.params, ...t.stateVariables].map(async (v) => bits(await s.getValue(v))));

describe.each(BACKENDS)('resumable fit on %s', (backend) => {
  it('3 epochs with a crash after step 9 and a resume from the step-8 checkpoint = the uninterrupted run, bit for bit', async () => {
    const straight = await build(backend);
    const reference = await record(fit(straight.train, [X, Y], { ...OPTS, validation: { data: [X, Y] } }));
    const path = join(dir, `fit_${backend}.ckpt`);
    const crashed = await build(backend);
    await record(fit(crashed.train, [X, Y], { ...OPTS, validation: { data: [X, Y] } }).pipe(checkpointEvery(4, path)), 9);
    // The crash: the session is abandoned mid-epoch; wait for the last save to land.
    for (let i = 0; i < 200; i++) {
      if (existsSync(path) && (decodeCheckpointFile(new Uint8Array(await readFile(path))).meta?.['fit'] as { step?: number } | undefined)?.step === 8) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    const { meta } = decodeCheckpointFile(new Uint8Array(await readFile(path)));
    expect(meta?.['fit']).toMatchObject({ epoch: 1, batch: 3, step: 8, lossCount: 3, rows: 40, batchSize: 8, shuffle: true, seed: 11, dropRemainder: false });
    await crashed.s.dispose();

    const resumed = await build(backend);
    const rest = await record(fit(resumed.train, [X, Y], { ...OPTS, validation: { data: [X, Y] }, resumeFrom: path }));
    expect(await everything(resumed.s, resumed.train)).toEqual(await everything(straight.s, straight.train));
    // The resumed events are the reference's from step 8 on: same steps, same losses, same epoch means.
    const tail = reference.filter((e) => e.type !== 'step' || e.step >= 8).filter((e) => e.type !== 'epoch' || e.epoch >= 1);
    const strip = (e: TrainEvent) => ({ ...e, ms: 0 });
    expect(rest.map(strip)).toEqual(tail.map(strip));
    expect(rest.filter((e) => e.type === 'step').length).toBe(7);
    await straight.s.dispose();
    await resumed.s.dispose();
  });

  it('refuses a resume whose batches would differ, and data it cannot position', async () => {
    const path = join(dir, `settings_${backend}.ckpt`);
    const a = await build(backend);
    await record(fit(a.train, [X, Y], OPTS).pipe(checkpointEvery(2, path)), 2);
    for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((res) => setTimeout(res, 10));
    await new Promise((res) => setTimeout(res, 50));
    const b = await build(backend);
    await expect(record(fit(b.train, [X, Y], { ...OPTS, batchSize: 4, resumeFrom: path }))).rejects.toThrow(/cannot resume: the saved fit had batchSize 8, this one has batchSize 4/);
    await expect(record(fit(b.train, [X, Y], { ...OPTS, seed: 12, resumeFrom: path }))).rejects.toThrow(/seed 11.*seed 12/);
    const { from } = await import('rxjs');
    expect(() => fit(b.train, from([]), { resumeFrom: path })).toThrow(/resumeFrom needs in-memory data/);
    await a.s.dispose();
    await b.s.dispose();
  });
});

describe.each(BACKENDS)('fit with stepsPerCall on %s', (backend) => {
  const strip = (e: TrainEvent) => ({ ...e, ms: 0 });
  it('gives the events and the state of one step per call, bit for bit; a save due inside a call is made at its end, and resumes exactly', async () => {
    const one = await build(backend);
    const reference = await record(fit(one.train, [X, Y], { ...OPTS, validation: { data: [X, Y] } }));
    const four = await build(backend);
    const path = join(dir, `perCall_${backend}.ckpt`);
    // 5 batches an epoch: calls of 4 + 1 steps; the save due at step 3 waits for the end of its call (step 4).
    const grouped = await record(fit(four.train, [X, Y], { ...OPTS, validation: { data: [X, Y] }, stepsPerCall: 4 }).pipe(checkpointEvery(3, path)));
    expect(grouped.map(strip)).toEqual(reference.map(strip));
    expect(await everything(four.s, four.train)).toEqual(await everything(one.s, one.train));
    // The last save: due at step 15, the last step of the last call (5 batches an epoch: calls of steps 11–14 and 15).
    const { meta } = decodeCheckpointFile(new Uint8Array(await readFile(path)));
    const saved = meta?.['fit'] as { step: number; epoch: number; batch: number };
    expect([saved.epoch, saved.batch, saved.step]).toEqual([2, 5, 15]);
    // Resume from a save inside the run: the one due at step 3, made at step 4.
    const early = join(dir, `perCallEarly_${backend}.ckpt`);
    const crashed = await build(backend);
    await record(fit(crashed.train, [X, Y], { ...OPTS, stepsPerCall: 4 }).pipe(checkpointEvery(3, early)), 4);
    for (let i = 0; i < 200; i++) {
      if (existsSync(early)) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    await new Promise((res) => setTimeout(res, 50));
    expect((decodeCheckpointFile(new Uint8Array(await readFile(early))).meta?.['fit'] as { step: number }).step).toBe(4);
    await crashed.s.dispose();
    const resumed = await build(backend);
    await record(fit(resumed.train, [X, Y], { ...OPTS, validation: { data: [X, Y] }, resumeFrom: early, stepsPerCall: 4 }));
    expect(await everything(resumed.s, resumed.train)).toEqual(await everything(one.s, one.train));
    for (const x of [one, four, resumed]) await x.s.dispose();
  });

  it("under onNonFinite 'error' stops at the same batch with the same state as one step per call", async () => {
    const bad = X.map((row, i) => (i === 21 ? [NaN, ...row.slice(1)] : row));
    const runs = await Promise.all([1, 4].map(async (k) => {
      const m = await build(backend);
      const err = await record(fit(m.train, [bad, Y], { ...OPTS, shuffle: false, stepsPerCall: k })).catch((e: unknown) => e);
      return { err: (err as Error).message, state: await everything(m.s, m.train), step: m.s.step, s: m.s };
    }));
    expect(runs[0]!.err).toMatch(/^fit: non-finite .* at epoch 0, batch 2/);
    expect(runs[1]!.err).toBe(runs[0]!.err);
    expect(runs[1]!.state).toEqual(runs[0]!.state);
    expect(runs[1]!.step).toBe(runs[0]!.step);
    for (const r of runs) await r.s.dispose();
  });
});

describe('restoring before compile', () => {
  it('says what to do when the session does not know the optimizer’s variables yet', async () => {
    const path = join(dir, 'early.ckpt');
    const a = await build('cpu');
    await a.train.step([X.slice(0, 8), Y.slice(0, 8)]);
    await a.s.save(path);
    // A fresh process: the graph may be built, but nothing compiled yet.
    const s = await Session.create({ backend: 'cpu' });
    await expect(s.restore(path)).rejects.toThrow(/the file has 14 variable\(s\) this session does not: .*\(restore after compile, so the session knows the optimizer's variables too, or pass `variables` to restore only some\)/);
    await s.dispose();
    await a.s.dispose();
  });
});
