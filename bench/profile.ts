// The bench's `profile` section (issue 16 §2): where the onnx MLP step's time goes. For the MLP 784-256-256-10 SGD
// step at batch 128, at all cores and at 1 thread:
//  (a) wall times, unprofiled, medians over PROFILE_STEPS steps (default 300) in alternating blocks: the whole
//      `train.step`, `session.run` of onnxruntime's JS API around the one model run, and the native binding's run
//      (no JS wrapper) of the same model and feeds; the JS copy of the outputs' bytes (what the binding's copy into
//      new ArrayBuffers costs); and the native run of a twin session whose pool threads keep spinning after a run
//      (force_spinning_stop off): what waking the pool costs.
//  (b) onnxruntime's own profiler (`enableProfiling`) on another twin session: its trace's model_run and
//      SequentialExecutor::Execute per run, and kernel time per op type.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import type { OnnxBackend } from '../src/backend/onnx/backend.js';
import { nativeSession } from '../src/backend/onnx/profileTools.js';
import { Session, compile, layers, mean, placeholder, sgd, sparseSoftmaxCrossEntropy, variablesOf, type Tensor } from '../src/index.js';

type Row = (what: string, value: string, note?: string) => void;

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Captured {
  bytes: Uint8Array;
  options: ort.InferenceSession.SessionOptions;
  run?: { session: ort.InferenceSession; feeds: Record<string, ort.Tensor>; outputNames: readonly string[]; ms: number };
}

/** The MLP SGD step on onnx at `threads`, its backend's probe recording the model and each run. */
async function mlpStep(threads: number, batch: number) {
  const session = await Session.create({ backend: 'onnx', threads });
  const captured: Partial<Captured> = {};
  const runs: number[] = [];
  (session.backendImpl as unknown as OnnxBackend).probe = {
    compiled: (m) => Object.assign(captured, { bytes: m.bytes, options: m.options }),
    ran: (r) => { captured.run = r; runs.push(r.ms); },
  };
  const x = placeholder([null, 784]);
  const y = placeholder([null], { dtype: 'int32' });
  let h: Tensor = x;
  [256, 256, 10].forEach((units, i) => { h = layers.dense(h, units, { activation: i < 2 ? 'relu' : 'linear', seed: 1 + i }); });
  const loss = mean(sparseSoftmaxCrossEntropy(h, y));
  const train = compile(sgd({ lr: 0.01 }), session, { loss, params: variablesOf(loss), inputs: [x, y] });
  const xv = session.upload(x, new Float32Array(batch * 784).map((_, i) => ((i * 7919) % 255) / 255));
  const yv = session.upload(y, new Int32Array(batch).map((_, i) => i % 10));
  await train.step([xv, yv]);
  return { session, captured: captured as Captured, runs, step: () => train.step([xv, yv]) };
}

/** The contenders one after the other, round after round (a slow spell hits a whole round): each one's times. */
async function interleaved(n: number, contenders: (() => unknown)[]): Promise<number[][]> {
  const all = contenders.map(() => [] as number[]);
  for (let i = 0; i < n + 10; i++) {
    for (const [k, f] of contenders.entries()) {
      const s = performance.now();
      await f();
      if (i >= 10) all[k]!.push(performance.now() - s);
    }
  }
  return all;
}

/** Alternating blocks of each contender (warm-up runs first in every block); all timed runs and each block's median. */
async function blocks(rounds: number, perBlock: number, contenders: (() => unknown)[]): Promise<{ all: number[][]; byBlock: number[][] }> {
  const all = contenders.map(() => [] as number[]);
  const byBlock = contenders.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [k, f] of contenders.entries()) {
      for (let i = 0; i < 5; i++) await f();
      const t: number[] = [];
      for (let i = 0; i < perBlock; i++) {
        const s = performance.now();
        await f();
        t.push(performance.now() - s);
      }
      all[k]!.push(...t);
      byBlock[k]!.push(median(t));
    }
  }
  return { all, byBlock };
}

interface TraceEvent { cat: string; name: string; dur: number; args?: { op_name?: string } }

/** onnxruntime's trace: per run medians of model_run and the executor, kernel ms per run by op type. */
function readTrace(file: string, skipRuns: number) {
  const ev = JSON.parse(readFileSync(file, 'utf8')) as TraceEvent[];
  const per = (name: string) => ev.filter((e) => e.cat === 'Session' && e.name === name).map((e) => e.dur / 1000).slice(skipRuns);
  const runs = per('model_run');
  const kernels = ev.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const perRun = kernels.length / (runs.length + skipRuns);
  const counted = kernels.slice(Math.round(skipRuns * perRun));
  const byOp = new Map<string, number>();
  for (const k of counted) byOp.set(k.args?.op_name ?? '?', (byOp.get(k.args?.op_name ?? '?') ?? 0) + k.dur / 1000 / runs.length);
  return { modelRun: median(runs), execute: median(per('SequentialExecutor::Execute')), kernelsPerRun: perRun, byOp: [...byOp].sort((a, b) => b[1] - a[1]) };
}

export async function profileSection(row: Row, opts: { cores: number; batch: number; quick: boolean }): Promise<void> {
  const steps = Number(process.env['PROFILE_STEPS'] ?? (opts.quick ? 40 : 300));
  const rounds = opts.quick ? 2 : 6;
  const perBlock = Math.ceil(steps / rounds);
  for (const threads of [...new Set([opts.cores, 1])]) {
    const m = await mlpStep(threads, opts.batch);
    for (let i = 0; i < 10; i++) await m.step();
    const { session: ortSession, feeds, outputNames } = m.captured.run!;
    const native = nativeSession(m.captured.bytes, m.captured.options);
    const outputs = await ortSession.run(feeds, [...outputNames]);
    const outBytes = outputNames.reduce((n, k) => n + (outputs[k]!.data as Float32Array).byteLength, 0);
    const inBytes = Object.values(feeds).reduce((n, t) => n + (t.data as Float32Array).byteLength, 0);
    // (a) the step, its session.run (recorded by the probe inside the step), the JS API's run alone, the native run
    // alone, and the JS copy of the outputs.
    m.runs.length = 0;
    const all = await interleaved(steps, [
      m.step,
      () => ortSession.run(feeds, [...outputNames]),
      () => native.run(feeds, outputNames),
      () => { for (const k of outputNames) new Float32Array(outputs[k]!.data as Float32Array); },
    ]);
    const [stepMs, jsRunMs, nativeMs, copyMs] = all.map(median) as [number, number, number, number];
    const inStep = m.runs.slice(-steps);
    // Differences within a round, then their median: a slow spell of the VM slows both sides of one.
    const paired = (a: readonly number[], b: readonly number[]) => median(a.map((v, i) => v - b[i]!));
    const symflowJs = paired(all[0]!, inStep);
    const wrapper = paired(all[1]!, all[2]!);
    const spread = (k: number) => `p10–p90 ${[0.1, 0.9].map((q) => [...all[k]!].sort((a, b) => a - b)[Math.floor(q * all[k]!.length)]!.toFixed(3)).join('–')} ms`;
    // Thread wake-ups: the same model with the pool spinning on between runs, timed in blocks of its own (a spinning
    // pool would take the cores from anything run beside it), then released.
    let wakeMs: number | undefined;
    if (threads > 1) {
      const spin = nativeSession(m.captured.bytes, { ...m.captured.options, extra: { session: { force_spinning_stop: '0' } } });
      const twin = nativeSession(m.captured.bytes, m.captured.options);
      const r = await blocks(rounds * 2, Math.ceil(perBlock / 2), [() => twin.run(feeds, outputNames), () => spin.run(feeds, outputNames)]);
      spin.release();
      twin.release();
      // The median over rounds of neighbouring blocks' difference.
      wakeMs = median(r.byBlock[0]!.map((v, i) => v - r.byBlock[1]![i]!));
    }
    // (b) onnxruntime's profiler on a twin native session.
    const prefix = join(tmpdir(), `symflow-profile-${process.pid}-t${threads}`);
    const profiled = nativeSession(m.captured.bytes, { ...m.captured.options, enableProfiling: true, profileFilePrefix: prefix });
    const WARM = 10;
    const profiledWall: number[] = [];
    for (let i = 0; i < WARM + perBlock * 2; i++) {
      const s = performance.now();
      profiled.run(feeds, outputNames);
      if (i >= WARM) profiledWall.push(performance.now() - s);
    }
    const file = profiled.endProfiling();
    profiled.release();
    native.release();
    const trace = readTrace(file, WARM);
    for (const f of readdirSync(tmpdir())) if (f.startsWith(`symflow-profile-${process.pid}-`)) rmSync(join(tmpdir(), f), { force: true });
    m.session.dispose();
    const kernelMs = trace.byOp.reduce((n, [, v]) => n + v, 0);
    const t = `threads ${threads}`;
    const run = nativeMs - copyMs - (wakeMs ?? 0);
    row(`profile (${t}): MLP SGD step, batch ${opts.batch}, the whole train.step`, `${stepMs.toFixed(3)} ms`, spread(0));
    row(`  symflow's JS around the run (train.step − its session.run)`, `${symflowJs.toFixed(3)} ms`, `session.run inside the step ${median(inStep).toFixed(3)} ms`);
    row(`  onnxruntime-node's JS wrapper (session.run − native run: a setImmediate hop, checks, a Tensor per output)`, `${wrapper.toFixed(3)} ms`, `session.run alone ${jsRunMs.toFixed(3)} ms, ${spread(1)}`);
    row(`  native run (feeds wrapped in place, model run, outputs copied out)`, `${nativeMs.toFixed(3)} ms`, spread(2));
    row(`    copy of the ${outputNames.length} outputs into new ArrayBuffers (${(outBytes / 2 ** 20).toFixed(2)} MiB; the same copy in JS)`, `${copyMs.toFixed(3)} ms`,
      `the ${Object.keys(feeds).length} feeds (${(inBytes / 2 ** 20).toFixed(2)} MiB, batch and variables) are not copied: onnxruntime reads their ArrayBuffers`);
    if (wakeMs !== undefined) row(`    waking the pool threads at the start of a run (native run − the same with the pool spinning between runs)`, `${wakeMs.toFixed(3)} ms`, 'median over rounds of neighbouring blocks');
    row(`    model run and kernels (native run − the copy-out${wakeMs === undefined ? '' : ' − the wake-up'})`, `${run.toFixed(3)} ms`);
    row(`  onnxruntime profiler (${t}): model_run / SequentialExecutor::Execute per run`, `${trace.modelRun.toFixed(3)} / ${trace.execute.toFixed(3)} ms`,
      `the profiled native run ${median(profiledWall).toFixed(3)} ms (profiling itself costs ${(median(profiledWall) - nativeMs).toFixed(3)} ms a run, so only its shares are used); ${trace.kernelsPerRun} kernels a run, their sum ${kernelMs.toFixed(3)} ms`);
    const share = (v: number) => `${((100 * v) / kernelMs).toFixed(0)} % ≈ ${((run * v) / kernelMs).toFixed(3)} ms`;
    row(`    kernel time by op type (profiled share, × the unprofiled model run)`, trace.byOp.slice(0, 5).map(([op, v]) => `${op} ${share(v)}`).join(', '),
      `rest ${share(trace.byOp.slice(5).reduce((n, [, v]) => n + v, 0))} (${trace.byOp.slice(5).map(([op]) => op).join(', ')})`);
  }
}
