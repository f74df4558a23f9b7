// `npm run bench`: one run, side by side, on this machine. Median ms per step over STEPS steps after warm-up.
// Not part of `npm test`. Set STEPS (default 100), CNN_STEPS (default 20) or QUICK=1 for a short smoke run; name
// sections to run only those: `npm run bench -- cnn dropout` (mlp, ratios, dropout, composition, ode, overhead, cnn, memory, peak, jax,
// busy, large, steps, profile: where the onnx MLP step's time goes, see bench/profile.ts; PROFILE_STEPS, default 300).
import { availableParallelism, cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  Session, accumulate, adam, adamw, add, chain, clipByGlobalNorm, compile, dropout, heun, nn, layers, mean, placeholder, rungeKutta, sgd,
  sparseSoftmaxCrossEntropy, tableaux, variablesOf,
  type AnyOptimizer, type BackendName, type NonFinitePolicy, type Tensor, type TrainStep,
} from '../src/index.js';
import { withNeighbours } from './busy.js';
import { startJax } from './jaxPeer.js';
import type { OnnxBackend } from '../src/backend/onnx/backend.js';
import { profileSection } from './profile.js';
import { type PytorchPeer, startPytorch } from './pytorchPeer.js';

const QUICK = process.env['QUICK'] === '1';
const STEPS = Number(process.env['STEPS'] ?? (QUICK ? 20 : 100));
const BATCH = 128;
const SIZES = [784, 256, 256, 10];
// Forward 2·B·Σ(in·out); backward: dW for every layer, dX for all but the first.
const MFLOP = (2 * BATCH * (784 * 256 + 256 * 256 + 256 * 10) * 3 - 2 * BATCH * 784 * 256) / 1e6;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(steps: number, warm: number, f: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < warm; i++) await f();
  const t: number[] = [];
  for (let i = 0; i < steps; i++) {
    const s = performance.now();
    await f();
    t.push(performance.now() - s);
  }
  return median(t);
}

/** An MLP's layer widths and the batch it is stepped with. */
interface MlpShape { readonly sizes: readonly number[]; readonly rows: number }
const SMALL: MlpShape = { sizes: SIZES, rows: BATCH };
/** Its SGD step's MFLOP: forward 2·B·Σ(in·out); backward dW for every layer, dX for all but the first. */
const mflopOf = ({ sizes, rows }: MlpShape) => {
  const macs = sizes.slice(1).reduce((n, out, i) => n + sizes[i]! * out, 0);
  return (2 * rows * macs * 3 - 2 * rows * sizes[0]! * sizes[1]!) / 1e6;
};

function batch(shape: MlpShape = SMALL): { xs: Float32Array; ys: Int32Array } {
  const [inputs, classes] = [shape.sizes[0]!, shape.sizes.at(-1)!];
  return {
    xs: new Float32Array(shape.rows * inputs).map((_, i) => ((i * 7919) % 255) / 255),
    ys: new Int32Array(shape.rows).map((_, i) => i % classes),
  };
}

/** The MLP; with `drop`, dropout of that rate after each hidden layer. */
function mlp(seedBase = 1, drop = 0, sizes: readonly number[] = SIZES): { x: Tensor; y: Tensor; loss: Tensor } {
  const x = placeholder([null, sizes[0]!]);
  const y = placeholder([null], { dtype: 'int32' });
  let h: Tensor = x;
  sizes.slice(1).forEach((units, i) => {
    const hidden = i < sizes.length - 2;
    h = layers.dense(h, units, { activation: hidden ? 'relu' : 'linear', seed: seedBase + i });
    if (hidden && drop > 0) h = dropout(h, drop);
  });
  return { x, y, loss: mean(sparseSoftmaxCrossEntropy(h, y)) };
}

interface StepBench { ms: number; compileMs: number; firstCallMs: number; session: Session; step: () => Promise<unknown>; train: TrainStep; inputs: readonly Tensor[] }

async function symflowStep(
  backend: BackendName, make: () => AnyOptimizer = () => sgd({ lr: 0.01 }), threads?: number | 'auto', onNonFinite?: NonFinitePolicy, drop = 0,
  shape = SMALL, onSession?: (s: Session) => void,
): Promise<StepBench> {
  const session = await Session.create(threads === undefined ? { backend } : { backend, threads });
  onSession?.(session);
  const { x, y, loss } = mlp(1, drop, shape.sizes);
  const t0 = performance.now();
  const train = compile(make(), session, { loss, params: variablesOf(loss), inputs: [x, y], ...(onNonFinite ? { onNonFinite } : {}) });
  const compileMs = performance.now() - t0;
  const { xs, ys } = batch(shape);
  const xv = session.upload(x, xs);
  const yv = session.upload(y, ys);
  const t1 = performance.now();
  await train.step([xv, yv]);
  const firstCallMs = performance.now() - t1;
  const step = () => train.step([xv, yv]);
  return { ms: 0, compileMs, firstCallMs, session, step, train, inputs: [x, y] };
}

async function measure(backend: BackendName, make?: () => AnyOptimizer, steps = STEPS): Promise<StepBench> {
  const b = await symflowStep(backend, make);
  b.ms = await time(steps, 10, b.step);
  b.session.dispose();
  return b;
}

/** Eager TF.js: the same MLP with `optimizer.minimize`, the peer a TypeScript user would pick. */
async function eagerTfjs(backend: string, steps: number): Promise<number> {
  await tf.setBackend(backend);
  const ws = SIZES.slice(1).map((units, i) => [
    tf.variable(tf.randomNormal([SIZES[i]!, units], 0, 0.05, 'float32', i + 1)),
    tf.variable(tf.zeros([units])),
  ] as const);
  const { xs, ys } = batch();
  const x = tf.tensor2d(xs, [BATCH, 784]);
  const labels = tf.oneHot(tf.tensor1d(ys, 'int32'), 10);
  const opt = tf.train.sgd(0.01);
  const loss = () => tf.tidy(() => {
    let h: tf.Tensor2D = x;
    ws.forEach(([w, b], i) => { h = tf.add(tf.matMul(h, w), b); if (i < ws.length - 1) h = tf.relu(h); });
    return tf.losses.softmaxCrossEntropy(labels, h) as unknown as tf.Scalar;
  });
  const ms = await time(steps, 5, () => { const l = opt.minimize(loss, true); l!.dataSync(); l!.dispose(); });
  tf.dispose([x, labels, ...ws.flat()]);
  opt.dispose();
  return ms;
}

/**
 * symflow onnx (all cores and 1 thread) and the PyTorch peer (1 thread and all cores) in alternating blocks of
 * steps, ten rounds, so that a slow spell of a shared VM hits all four alike; each block warmed up alike; medians
 * over all timed steps of each.
 */
async function onnxAgainstPytorch(steps: number, shape = SMALL) {
  const onnx = await symflowStep('onnx', undefined, undefined, undefined, 0, shape);
  const onnx1 = await symflowStep('onnx', undefined, 1, undefined, 0, shape);
  const peers: PytorchPeer[] = [];
  let why: string | undefined;
  for (const threads of new Set([1, CORES])) {
    const peer = await startPytorch(threads, shape.rows, 'mlp', shape.sizes);
    if ('why' in peer) { why = peer.why; break; }
    peers.push(peer);
  }
  for (let i = 0; i < 10; i++) { await onnx.step(); await onnx1.step(); }
  const [ts, ts1, torchTs] = [[] as number[], [] as number[], peers.map(() => [] as number[])];
  const rounds = 10;
  // NOTE: every block starts with WARM untimed steps. After the pause below a VM's cores come back cold (the
  // first steps of a block measured up to 2× slower, worst for the 2-thread session): timing them penalised
  // whichever contender ran right after a pause (onnx at 2 threads measured 2.7 ms that way, 1.6 ms warm).
  const WARM = 3;
  for (let r = 0; r < rounds; r++) {
    for (const [b, into] of [[onnx, ts], [onnx1, ts1]] as const) {
      for (let i = 0; i < WARM; i++) await b.step();
      for (let i = 0; i < Math.ceil(steps / rounds); i++) {
        const t = performance.now();
        await b.step();
        into.push(performance.now() - t);
      }
    }
    for (const [k, peer] of peers.entries()) {
      await peer.steps(WARM);
      torchTs[k]!.push(...(await peer.steps(Math.ceil(steps / rounds))));
      // NOTE: OpenBLAS's idle worker threads spin for a while (2^28 cycles by default) before they sleep; without
      // this pause they would take the cores from the next block.
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  peers.forEach((p) => p.close());
  onnx.session.dispose();
  onnx1.session.dispose();
  onnx.ms = median(ts);
  const torch = peers.map((p, k) => ({ threads: p.threads, ms: median(torchTs[k]!), about: p.about }));
  return { onnx, onnx1Ms: median(ts1), torch, why };
}

/**
 * Per-node executor overhead: a chain of 1,000 tiny adds through a session against the same adds called eagerly,
 * the two timed alternately (call for call) so that drift and noise hit both alike.
 */
async function executorOverhead(backend: 'wasm' | 'cpu'): Promise<{ perNodeUs: number }> {
  const session = await Session.create({ backend });
  const x = placeholder([]);
  let h: Tensor = x;
  for (let i = 0; i < 1000; i++) h = add(h, 1);
  const f = session.function({ inputs: [x], outputs: [h] });
  const xv = session.upload(x, 0);
  const one = tf.scalar(1);
  const eager = () => {
    let t: tf.Tensor = tf.scalar(0);
    for (let i = 0; i < 1000; i++) { const n = tf.add(t, one); t.dispose(); t = n; }
    t.dataSync();
    t.dispose();
  };
  const graphMs: number[] = [];
  const eagerMs: number[] = [];
  const calls = QUICK ? 10 : 60;
  for (let i = 0; i < calls + 5; i++) {
    let t = performance.now();
    await f([xv]);
    if (i >= 5) graphMs.push(performance.now() - t);
    t = performance.now();
    eager();
    if (i >= 5) eagerMs.push(performance.now() - t);
  }
  one.dispose();
  xv.dispose();
  session.dispose();
  // The median of per-call differences, for the same reason as in sideBySide.
  return { perNodeUs: median(graphMs.map((g, i) => g - eagerMs[i]!)) };
}

/** The machine's matmul peak as onnxruntime reaches it: the best of square products (summed, so no copy-out). */
async function matmulPeakGflops(): Promise<number> {
  const session = await Session.create({ backend: 'onnx' });
  const { matMul, sum } = await import('../src/index.js');
  let best = 0;
  for (const n of [256, 512, 1024]) {
    const a = placeholder([n, n]);
    const b = placeholder([n, n]);
    const f = session.function({ inputs: [a, b], outputs: [sum(matMul(a, b))] });
    const data = new Float32Array(n * n).map((_, i) => (i % 13) / 13);
    const av = session.upload(a, data);
    const bv = session.upload(b, data);
    const ms = await time(QUICK ? 5 : 20, 3, () => f([av, bv]));
    const gflops = (2 * n ** 3) / (ms / 1000) / 1e9;
    if (process.env['PEAK_DEBUG']) console.error(`  matmul ${n}³: ${ms.toFixed(3)} ms, ${gflops.toFixed(0)} GFLOP/s`);
    best = Math.max(best, gflops);
  }
  session.dispose();
  return best;
}

async function leakAndRss(): Promise<string> {
  const b = await symflowStep('wasm');
  for (let i = 0; i < 20; i++) await b.step();
  global.gc?.();
  const before = { tensors: b.session.numTensors(), rss: process.memoryUsage().rss };
  for (let i = 0; i < (QUICK ? 100 : 1000); i++) await b.step();
  global.gc?.();
  const after = { tensors: b.session.numTensors(), rss: process.memoryUsage().rss };
  b.session.dispose();
  const mb = (v: number) => (v / 2 ** 20).toFixed(1);
  return `TF.js tensors ${before.tensors} → ${after.tensors}; RSS ${mb(before.rss)} → ${mb(after.rss)} MiB over ${QUICK ? 100 : 1000} wasm steps`;
}

/**
 * Two train steps timed alternately, step for step, so drift and noise hit both alike. Returns both medians and the
 * median of the per-pair ratios: on a shared VM a slow spell lasts several steps, and a pair taken inside one is
 * slowed on both sides, so its ratio still holds where a ratio of medians would not.
 */
async function sideBySide(
  backend: BackendName, a: () => AnyOptimizer, b: () => AnyOptimizer, steps: number, policies: [NonFinitePolicy?, NonFinitePolicy?] = [], drops: [number, number] = [0, 0],
): Promise<{ a: number; b: number; ratio: number }> {
  const [x, y] = [await symflowStep(backend, a, undefined, policies[0], drops[0]), await symflowStep(backend, b, undefined, policies[1], drops[1])];
  for (let i = 0; i < 10; i++) { await x.step(); await y.step(); }
  const tx: number[] = [];
  const ty: number[] = [];
  for (let i = 0; i < steps; i++) {
    let t = performance.now();
    await x.step();
    tx.push(performance.now() - t);
    t = performance.now();
    await y.step();
    ty.push(performance.now() - t);
  }
  x.session.dispose();
  y.session.dispose();
  return { a: median(tx), b: median(ty), ratio: median(tx.map((v, i) => v / ty[i]!)) };
}

/** Keras' mnist_cnn as `nn` layers, an sgd step over one uploaded batch of 128. */
async function cnnStep(backend: BackendName, threads?: number): Promise<{ step: () => Promise<unknown>; session: Session }> {
  const session = await Session.create(threads === undefined ? { backend } : { backend, threads });
  const x = placeholder([null, 28, 28, 1]);
  const y = placeholder([null], { dtype: 'int32' });
  const net = nn.sequential([
    nn.conv2d(32, 3, { activation: 'relu', seed: 1 }), nn.conv2d(64, 3, { activation: 'relu', seed: 2 }), nn.maxPool2d({ size: 2 }),
    nn.dropout(0.25), nn.flatten(), nn.dense(128, { activation: 'relu', seed: 3 }), nn.dropout(0.5), nn.dense(10, { seed: 4 }),
  ]);
  const train = compile(sgd({ lr: 0.01 }), session, { loss: mean(sparseSoftmaxCrossEntropy(net.apply(x), y)), inputs: [x, y] });
  const { xs, ys } = batch();
  const xv = session.upload(x, { shape: [BATCH, 28, 28, 1], data: xs });
  const yv = session.upload(y, ys);
  await train.step([xv, yv]);
  return { session, step: () => train.step([xv, yv]) };
}

/** The same model in eager TF.js (`optimizer.minimize` over tf.conv2d / tf.maxPool / dropout). */
async function eagerCnn(backend: string, steps: number, rows: number): Promise<number> {
  await tf.setBackend(backend);
  const v = (shape: number[], seed: number) => tf.variable(tf.randomNormal(shape, 0, 0.05, 'float32', seed));
  const [k1, b1, k2, b2, w3, b3, w4, b4] = [v([3, 3, 1, 32], 1), tf.variable(tf.zeros([32])), v([3, 3, 32, 64], 2), tf.variable(tf.zeros([64])),
    v([9216, 128], 3), tf.variable(tf.zeros([128])), v([128, 10], 4), tf.variable(tf.zeros([10]))];
  const { xs, ys } = batch();
  const x = tf.tensor4d(xs.subarray(0, rows * 784), [rows, 28, 28, 1]);
  const labels = tf.oneHot(tf.tensor1d(ys.subarray(0, rows), 'int32'), 10);
  const opt = tf.train.sgd(0.01);
  const loss = () => tf.tidy(() => {
    let h = tf.relu(tf.add(tf.conv2d(x, k1 as tf.Tensor4D, 1, 'valid'), b1!)) as tf.Tensor4D;
    h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, k2 as tf.Tensor4D, 1, 'valid'), b2!)) as tf.Tensor4D, 2, 2, 'valid');
    let f = tf.reshape(tf.dropout(h, 0.25), [rows, 9216]) as tf.Tensor2D;
    f = tf.dropout(tf.relu(tf.add(tf.matMul(f, w3!), b3!)), 0.5) as tf.Tensor2D;
    return tf.losses.softmaxCrossEntropy(labels, tf.add(tf.matMul(f, w4!), b4!)) as unknown as tf.Scalar;
  });
  const ms = await time(steps, 1, () => { const l = opt.minimize(loss, true); l!.dataSync(); l!.dispose(); });
  tf.dispose([x, labels, k1!, b1!, k2!, b2!, w3!, b3!, w4!, b4!]);
  opt.dispose();
  return ms;
}

/**
 * The mnist_cnn step on onnx against the PyTorch peer at 1 thread and all cores, in alternating blocks (one step is
 * ~100× the MLP's, so fewer, longer blocks); medians of each.
 */
async function cnnAgainstPytorch(steps: number): Promise<{ onnxMs: number; onnx1Ms: number; torch: { threads: number; ms: number }[]; why?: string }> {
  const onnx = await cnnStep('onnx');
  const onnx1 = await cnnStep('onnx', 1);
  const peers: PytorchPeer[] = [];
  let why: string | undefined;
  for (const threads of new Set([1, CORES])) {
    const peer = await startPytorch(threads, BATCH, 'cnn');
    if ('why' in peer) { why = peer.why; break; }
    peers.push(peer);
  }
  const [ts, ts1] = [[] as number[], [] as number[]];
  const torchTs = peers.map(() => [] as number[]);
  const rounds = 4;
  for (let r = 0; r < rounds; r++) {
    for (const [b, into] of [[onnx, ts], [onnx1, ts1]] as const) {
      await b.step();
      for (let i = 0; i < Math.ceil(steps / rounds); i++) {
        const t = performance.now();
        await b.step();
        into.push(performance.now() - t);
      }
    }
    for (const [k, peer] of peers.entries()) {
      await peer.steps(1);
      torchTs[k]!.push(...(await peer.steps(Math.ceil(steps / rounds))));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  peers.forEach((p) => p.close());
  onnx.session.dispose();
  onnx1.session.dispose();
  return { onnxMs: median(ts), onnx1Ms: median(ts1), torch: peers.map((p, k) => ({ threads: p.threads, ms: median(torchTs[k]!) })), ...(why ? { why } : {}) };
}

/**
 * Steps timed in alternating blocks (ten rounds, each block warmed up by 3 untimed steps), so that a slow spell
 * of a shared VM hits every contender alike; the median over all timed steps of each, and each block's median.
 */
async function alternating(steps: number, contenders: (() => Promise<unknown>)[], rounds = 10): Promise<{ ms: number[]; byRound: number[][] }> {
  const ts = contenders.map(() => [] as number[]);
  const byRound = contenders.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [k, f] of contenders.entries()) {
      for (let i = 0; i < 3; i++) await f();
      const block: number[] = [];
      for (let i = 0; i < Math.ceil(steps / rounds); i++) {
        const t = performance.now();
        await f();
        block.push(performance.now() - t);
      }
      ts[k]!.push(...block);
      byRound[k]!.push(median(block));
    }
  }
  return { ms: ts.map(median), byRound };
}

const rows: [string, string, string][] = [];
const row = (what: string, value: string, note = '') => { rows.push([what, value, note]); console.error(`  ${what}: ${value} ${note}`); };
const cpu = cpus()[0]?.model ?? 'unknown cpu';
const CORES = availableParallelism();
// `npm run bench -- cnn dropout` runs only those sections (all without arguments).
const SECTIONS = ['mlp', 'ratios', 'dropout', 'composition', 'ode', 'overhead', 'cnn', 'memory', 'peak', 'jax', 'busy', 'large', 'steps', 'profile'] as const;
const only = process.argv.slice(2);
const unknown = only.filter((a) => !(SECTIONS as readonly string[]).includes(a));
if (unknown.length > 0) throw new Error(`bench: unknown section(s) ${unknown.join(', ')}; the sections are ${SECTIONS.join(', ')}`);
const want = (section: (typeof SECTIONS)[number]) => only.length === 0 || only.includes(section);
console.error(`symflow bench on ${cpus().length}× ${cpu}, Node ${process.version}; ${STEPS} steps after warm-up; sections: ${SECTIONS.filter(want).join(', ')}`);
const targets: [string, boolean][] = [];
const target = (what: string, ok: boolean) => targets.push([what, ok]);

let mlpOnnxMs: number | undefined;
let mlpOnnxBestMs: number | undefined;
if (want('mlp')) {
  const { onnx, onnx1Ms, torch: torchRuns, why: torchWhy } = await onnxAgainstPytorch(STEPS);
  const wasm = await measure('wasm');
  const cpuBackend = await measure('cpu', undefined, QUICK ? 5 : Math.min(STEPS, 100));
  const eager = await eagerTfjs('wasm', STEPS);
  mlpOnnxMs = onnx.ms;
  // PyTorch at 1 thread and at all cores: on a small shared VM more threads can be slower, so compare with the faster.
  const torchBest = [...torchRuns].sort((a, b) => a.ms - b.ms)[0];
  row('MLP 784-256-256-10 SGD step, batch 128: symflow onnx', `${onnx.ms.toFixed(2)} ms`, `${(MFLOP / onnx.ms).toFixed(1)} GFLOP/s, ${CORES} threads`);
  row('  symflow onnx, threads: 1', `${onnx1Ms.toFixed(2)} ms`, `${(MFLOP / onnx1Ms).toFixed(1)} GFLOP/s`);
  row('  symflow wasm', `${wasm.ms.toFixed(2)} ms`, `${(MFLOP / wasm.ms).toFixed(1)} GFLOP/s`);
  row('  symflow cpu', `${cpuBackend.ms.toFixed(1)} ms`);
  row('  eager TF.js 4.22 wasm, optimizer.minimize', `${eager.toFixed(1)} ms`, `symflow wasm is ${(eager / wasm.ms).toFixed(1)}× faster`);
  if (torchWhy !== undefined) row('  PyTorch', '—', torchWhy);
  for (const r of torchRuns) row(`  PyTorch, ${r.threads === 1 ? '1 thread' : `${r.threads} threads (all cores)`}`, `${r.ms.toFixed(2)} ms`, r.about);
  if (torchBest !== undefined) {
    const vs = torchBest.ms / onnx.ms;
    row('  symflow onnx against the faster PyTorch', vs >= 1 ? `${vs.toFixed(1)}× faster` : `${(1 / vs).toFixed(1)}× slower`,
      `PyTorch at ${torchBest.threads === 1 ? '1 thread' : `${torchBest.threads} threads`}: ${torchBest.ms.toFixed(2)} ms; at 1 thread each: onnx ${onnx1Ms.toFixed(2)} ms, PyTorch ${torchRuns[0]!.ms.toFixed(2)} ms`);
  }
  row('compile of the training function (onnx)', `${onnx.compileMs.toFixed(1)} ms`, `first call (model load) ${onnx.firstCallMs.toFixed(0)} ms`);
  row('compile of the training function (wasm)', `${wasm.compileMs.toFixed(1)} ms`);
  target('onnx MLP step ≤ 2.0 ms', onnx.ms <= 2.0);
  target('onnx faster than PyTorch (the faster of 1 thread and all cores)', torchBest === undefined ? true : onnx.ms < torchBest.ms);
  // Issue 16: the better onnx thread setting against the better PyTorch one.
  mlpOnnxBestMs = Math.min(onnx.ms, onnx1Ms);
  if (torchBest !== undefined) {
    row('  symflow onnx (better thread setting) / PyTorch (better thread setting)', `${(mlpOnnxBestMs / torchBest.ms).toFixed(2)}×`, `${mlpOnnxBestMs.toFixed(2)} / ${torchBest.ms.toFixed(2)} ms`);
    target('onnx MLP step ≤ 0.75× PyTorch-best', mlpOnnxBestMs <= 0.75 * torchBest.ms);
  }
  target('wasm ≥ 7× faster than eager TF.js minimize', eager / wasm.ms >= 7);
  target('compile ≤ 50 ms', onnx.compileMs <= 50 && wasm.compileMs <= 50);
}

const plain = () => sgd({ lr: 0.01 });
const accumulateOnly = () => accumulate(sgd({ lr: 0.01 }), { steps: 1_000_000_000 });
const note = (r: { a: number; b: number }) => `medians ${r.a.toFixed(2)} / ${r.b.toFixed(2)} ms`;
if (want('ratios')) {
  const ratios: Record<string, number> = {};
  for (const backend of ['onnx', 'wasm'] as const) {
    const n = STEPS;
    const heunVsSgd = await sideBySide(backend, () => heun({ lr: 0.01 }), plain, n);
    const fusedVsSgd = await sideBySide(backend, () => heun({ lr: 0.01, fused: true }), plain, n);
    const accVsPlain = await sideBySide(backend, accumulateOnly, plain, n);
    const adamVsSgd = await sideBySide(backend, () => adam({ lr: 0.001 }), plain, n);
    ratios[`fused ${backend}`] = fusedVsSgd.ratio;
    ratios[`adam ${backend}`] = adamVsSgd.ratio;
    // The non-finite check (compile's default) against the same step compiled with onNonFinite: 'apply'.
    const checkVsNone = await sideBySide(backend, plain, plain, n, ['error', 'apply']);
    ratios[`heun ${backend}`] = heunVsSgd.ratio;
    ratios[`acc ${backend}`] = accVsPlain.ratio;
    ratios[`check ${backend}`] = checkVsNone.ratio;
    row(`heun step / sgd step (${backend})`, `${heunVsSgd.ratio.toFixed(2)}×`, note(heunVsSgd));
    row(`  heun fused into one run / sgd step (${backend})`, `${fusedVsSgd.ratio.toFixed(2)}×`, note(fusedVsSgd));
    row(`accumulate-only step / plain step (${backend})`, `${accVsPlain.ratio.toFixed(2)}×`, note(accVsPlain));
    row(`adam step / sgd step (${backend})`, `${adamVsSgd.ratio.toFixed(2)}×`, note(adamVsSgd));
    row(`sgd step with the non-finite check / without (${backend})`, `${checkVsNone.ratio.toFixed(3)}×`, note(checkVsNone));
  }
  target('heun / sgd ≤ 2.05× (onnx and wasm)', ratios['heun onnx']! <= 2.05 && ratios['heun wasm']! <= 2.05);
  target('accumulate-only / plain ≤ 1.05× (onnx and wasm)', ratios['acc onnx']! <= 1.05 && ratios['acc wasm']! <= 1.05);
  // Issue 16's tighter ratios, on onnx.
  target('heun fused / sgd ≤ 1.9× (onnx)', ratios['fused onnx']! <= 1.9);
  target('heun / sgd ≤ 2.05× (onnx)', ratios['heun onnx']! <= 2.05);
  target('accumulate-only / plain ≤ 1.02× (onnx)', ratios['acc onnx']! <= 1.02);
  target('adam / sgd ≤ 1.1× (onnx)', ratios['adam onnx']! <= 1.1);
  target('non-finite check ≤ 3 % of the MLP step (onnx and wasm)', ratios['check onnx']! <= 1.03 && ratios['check wasm']! <= 1.03);
}

// Issue 13: a composed optimizer costs what its parts cost — clip by global norm plus AdamW against plain Adam.
if (want('composition')) {
  const ratios: Record<string, number> = {};
  for (const backend of ['onnx', 'wasm'] as const) {
    const r = await sideBySide(backend, () => chain(clipByGlobalNorm(1), adamw({ lr: 1e-3 })), () => adam({ lr: 1e-3 }), STEPS);
    ratios[backend] = r.ratio;
    row(`chain(clipByGlobalNorm, adamw) step / adam step (${backend})`, `${r.ratio.toFixed(3)}×`, note(r));
  }
  target('chain of clip + adamw ≤ 1.1× plain adam (onnx and wasm)', ratios['onnx']! <= 1.1 && ratios['wasm']! <= 1.1);
}

// Issue 14: Dormand–Prince skips its 7th stage (weight 0) without error control, and with it reuses the last
// stage when the batch is the same (FSAL): gradient evaluations per step, and the cost against an sgd step.
if (want('ode')) {
  for (const backend of ['onnx', 'wasm'] as const) {
    const fixed = await sideBySide(backend, () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.01 }), plain, Math.max(10, Math.round(STEPS / 4)));
    row(`rk45 step without error control / sgd step (${backend})`, `${fixed.ratio.toFixed(2)}×`, `6 gradient evaluations (its 7th stage has weight 0), ${note(fixed)}`);
    const adaptiveStep = await symflowStep(backend, () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 1e-3, adaptive: { rtol: 1e-2, atol: 1e-4 } }));
    const evals: number[] = [];
    for (let i = 0; i < 6; i++) evals.push(((await adaptiveStep.step()) as { gradientEvaluations?: number }).gradientEvaluations ?? NaN);
    adaptiveStep.session.dispose();
    row(`adaptive rk45 gradient evaluations per step after the first, same uploaded batch (${backend})`, evals.join(', '), 'FSAL: 6 (7 with a new batch)');
  }
}

if (want('dropout')) {
  const ratios: Record<string, number> = {};
  for (const backend of ['onnx', 'wasm'] as const) {
    // Dropout 0.5 after both hidden layers (masks drawn on the host each step) against the same MLP without.
    const dropVsNone = await sideBySide(backend, plain, plain, STEPS, [], [0.5, 0]);
    ratios[backend] = dropVsNone.ratio;
    row(`sgd step with dropout 0.5 on both hidden layers / without (${backend})`, `${dropVsNone.ratio.toFixed(3)}×`, note(dropVsNone));
  }
  target('dropout on the hidden layers ≤ 10 % of the MLP step (onnx and wasm)', ratios['onnx']! <= 1.1 && ratios['wasm']! <= 1.1);
}

if (want('overhead')) {
  const overhead: Record<string, number> = {};
  for (const b of ['wasm', 'cpu'] as const) {
    overhead[b] = (await executorOverhead(b)).perNodeUs;
    row(`executor overhead per node (${b}, chain of 1,000 adds)`, `${overhead[b]!.toFixed(2)} µs`);
  }
  target('executor overhead ≤ 2 µs per node', Math.max(...Object.values(overhead)) <= 2);
}

// --- The mnist_cnn training step (issue 12 §5): symflow onnx and wasm, PyTorch at 1 thread and all cores, eager
// TF.js.
if (want('cnn')) {
  const CNN_STEPS = Number(process.env['CNN_STEPS'] ?? (QUICK ? 4 : 20));
  const { onnxMs: cnnOnnxMs, onnx1Ms: cnnOnnx1Ms, torch: cnnTorchMs, why: cnnWhy } = await cnnAgainstPytorch(CNN_STEPS);
  const cnnWasm = await cnnStep('wasm');
  const cnnWasmMs = await time(QUICK ? 2 : 5, 1, cnnWasm.step);
  cnnWasm.session.dispose();
  // NOTE: eager TF.js cannot train it on wasm (tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel; symflow
  // runs its declared composition there): the eager peer runs on TF.js cpu, at batch 8 (at 128 one step took 306 s).
  const EAGER_ROWS = 8;
  const cnnEagerMs = await eagerCnn('cpu', 1, EAGER_ROWS);
  row('mnist_cnn SGD step, batch 128: symflow onnx', `${cnnOnnxMs.toFixed(1)} ms`, `${CORES} threads`);
  row('  symflow onnx, threads: 1', `${cnnOnnx1Ms.toFixed(1)} ms`);
  row('  symflow wasm', `${cnnWasmMs.toFixed(0)} ms`);
  row(`  eager TF.js 4.22 cpu, optimizer.minimize, batch ${EAGER_ROWS}`, `${cnnEagerMs.toFixed(0)} ms`, `eager TF.js wasm cannot train it (no Conv2DBackpropFilter kernel); per row, symflow wasm is ${((cnnEagerMs / EAGER_ROWS) / (cnnWasmMs / BATCH)).toFixed(0)}× faster than eager cpu`);
  if (cnnWhy !== undefined) row('  PyTorch', '—', cnnWhy);
  for (const r of cnnTorchMs) row(`  PyTorch, ${r.threads === 1 ? '1 thread' : `${r.threads} threads (all cores)`}`, `${r.ms.toFixed(1)} ms`);
  const cnnBest = [...cnnTorchMs].sort((a, b) => a.ms - b.ms)[0];
  const torch1 = cnnTorchMs.find((r) => r.threads === 1);
  if (cnnBest !== undefined) {
    row('  symflow onnx / the faster PyTorch', `${(cnnOnnxMs / cnnBest.ms).toFixed(2)}×`,
      `PyTorch at ${cnnBest.threads === 1 ? '1 thread' : `${cnnBest.threads} threads`}${torch1 ? `; at 1 thread each: ${(cnnOnnx1Ms / torch1.ms).toFixed(2)}×` : ''}`);
  }
  target('onnx mnist_cnn step ≤ 1.0× PyTorch (the faster thread count)', cnnBest === undefined ? true : cnnOnnxMs <= cnnBest.ms);
  target('onnx mnist_cnn step ≤ 0.8× PyTorch-best (issue 16)', cnnBest === undefined ? true : Math.min(cnnOnnxMs, cnnOnnx1Ms) <= 0.8 * cnnBest.ms);
}

// Issue 16 §1: jax-js (JAX in JavaScript, jit to Wasm kernels) on the same MLP step, beside symflow wasm and onnx.
if (want('jax')) {
  const { xs, ys } = batch();
  const jax = await startJax(SIZES, xs, ys, 0.01);
  const wasm = await symflowStep('wasm');
  const onnx = await symflowStep('onnx');
  // onnxruntime-web: the same ONNX models in WebAssembly (its threads: worker_threads, all cores).
  const onnxWasm = await symflowStep('onnx-wasm');
  const contenders = [wasm.step, onnx.step, onnxWasm.step, ...('why' in jax ? [] : [jax.step])];
  for (let i = 0; i < 10; i++) for (const f of contenders) await f();
  const { ms: [wasmMs, onnxMs, onnxWasmMs, jaxMs], byRound } = await alternating(STEPS, contenders);
  // A slow spell of the VM (other load) slows the blocks of one round alike: the median over rounds of the ratio
  // of neighbouring blocks holds where the ratio of the medians may not.
  const overJax = (k: number) => (jaxMs === undefined ? undefined : median(byRound[k]!.map((w, r) => w / byRound[3]![r]!)));
  const wasmOverJax = overJax(0);
  const onnxWasmOverJax = overJax(2);
  wasm.session.dispose();
  onnx.session.dispose();
  onnxWasm.session.dispose();
  row('MLP SGD step, batch 128: symflow wasm', `${wasmMs!.toFixed(2)} ms`, `${(MFLOP / wasmMs!).toFixed(1)} GFLOP/s`);
  row('  symflow onnx', `${onnxMs!.toFixed(2)} ms`, `${(MFLOP / onnxMs!).toFixed(1)} GFLOP/s, ${CORES} threads`);
  if ('why' in jax) row('  jax-js', '—', `jax-js: ${jax.why}`);
  else {
    jax.dispose();
    row('  jax-js 0.1.25 wasm, jit(valueAndGrad)', `${jaxMs!.toFixed(2)} ms`,
      `${(MFLOP / jaxMs!).toFixed(1)} GFLOP/s; ${jax.about}; onnx ${(jaxMs! / onnxMs!).toFixed(1)}× faster`);
    row('  symflow wasm step / jax-js wasm step', `${wasmOverJax!.toFixed(2)}×`, `median over 10 rounds of the ratio of neighbouring blocks; ratio of the medians ${(wasmMs! / jaxMs!).toFixed(2)}×`);
  }
  row('  symflow onnx-wasm (onnxruntime-web)', `${onnxWasmMs!.toFixed(2)} ms`, `${(MFLOP / onnxWasmMs!).toFixed(1)} GFLOP/s, ${CORES} threads`);
  if (onnxWasmOverJax !== undefined) row('  symflow onnx-wasm step / jax-js wasm step', `${onnxWasmOverJax.toFixed(2)}×`, `ratio of the medians ${(onnxWasmMs! / jaxMs!).toFixed(2)}×`);
  target('wasm (TF.js) ≥ jax-js speed on the MLP', wasmOverJax === undefined ? true : wasmOverJax <= 1);
  target('onnx-wasm (the backend README recommends without a native addon) ≥ jax-js speed on the MLP', onnxWasmOverJax === undefined ? true : onnxWasmOverJax <= 1);
}

// Issue 16 §1: the onnx MLP step with 0, 1 and 2 busy neighbours (processes spinning a core each), at threads
// all cores, 1 and 'auto'. Rounds of quiet / one / two neighbours, the thread settings in alternating blocks within
// each (BUSY_ROUNDS rounds, default 4).
if (want('busy')) {
  const settings: (number | 'auto')[] = [...new Set([CORES, 1]), 'auto'];
  // Which session each of 'auto''s runs took (the backend's internal probe).
  let autoRuns: number[] = [];
  const watch = (s: Session) => { (s.backendImpl as unknown as OnnxBackend).probe = { ran: (r) => autoRuns.push(r.threads) }; };
  const steppers = await Promise.all(settings.map((threads) => symflowStep('onnx', undefined, threads, undefined, 0, SMALL, threads === 'auto' ? watch : undefined)));
  const oneThreadShare = [0, 1, 2].map(() => [] as number[]);
  const rounds = Number(process.env['BUSY_ROUNDS'] ?? (QUICK ? 2 : 4));
  const steps = (QUICK ? 10 : 30) * rounds;
  const ts = [0, 1, 2].map(() => settings.map(() => [] as number[]));
  for (let r = 0; r < rounds; r++) {
    for (const n of [0, 1, 2]) {
      await withNeighbours(n, async () => {
        for (const [k, b] of steppers.entries()) {
          // Warm-up steps: the cores come back cold, and 'auto' meets the new load (it probes within ~8 runs of a change).
          for (let i = 0; i < 5; i++) await b.step();
          autoRuns = [];
          for (let i = 0; i < Math.ceil(steps / rounds); i++) {
            const t = performance.now();
            await b.step();
            ts[n]![k]!.push(performance.now() - t);
          }
          if (settings[k] === 'auto') oneThreadShare[n]!.push(autoRuns.filter((t) => t === 1).length / autoRuns.length);
        }
      });
    }
  }
  steppers.forEach((b) => b.session.dispose());
  const ms = ts.map((bySetting) => bySetting.map(median));
  const ratios = settings.map((_, k) => ms[1]![k]! / ms[0]![k]!);
  // Fair share with two neighbours: three processes on CORES cores, each gets CORES/3 cores. The step's least CPU
  // work quietly (core-ms: quiet ms × the cores a setting keeps busy) spread over that share is its fair time.
  const share = CORES / 3;
  const coresOf = (t: number | 'auto') => Math.min(t === 'auto' ? 1 : t, CORES);
  const leastWork = Math.min(...settings.map((t, k) => (t === 'auto' ? Infinity : ms[0]![k]! * coresOf(t))));
  const fair = leastWork / Math.min(1, share);
  for (const [k, threads] of settings.entries()) {
    const [quiet, one, two] = [ms[0]![k]!, ms[1]![k]!, ms[2]![k]!];
    row(`onnx MLP step, threads ${threads}: quiet`, `${quiet.toFixed(2)} ms`);
    row(`  with one busy neighbour (threads ${threads})`, `${one.toFixed(2)} ms`, `${ratios[k]!.toFixed(2)}× quiet`);
    if (threads === 'auto') row('  threads auto: runs on its 1-thread session with 0 / 1 / 2 neighbours', oneThreadShare.map((xs) => `${(100 * median(xs)).toFixed(0)} %`).join(' / '), 'median over rounds');
    row(`  with two busy neighbours (threads ${threads})`, `${two.toFixed(2)} ms`,
      `${(two / quiet).toFixed(2)}× quiet; fair share (a third of ${CORES} cores = ${share.toFixed(2)} cores for the least quiet work, ${leastWork.toFixed(2)} core-ms) ${fair.toFixed(2)} ms; measured / fair ${(two / fair).toFixed(2)}×`);
  }
  const auto = settings.indexOf('auto');
  row("onnx step with one busy neighbour / quiet, threads 'auto'", `${ratios[auto]!.toFixed(2)}×`,
    `per setting: ${settings.map((t, k) => `threads ${t} ${ratios[k]!.toFixed(2)}×`).join(', ')}; one neighbour / the fastest quiet setting: ${(ms[1]![auto]! / Math.min(...ms[0]!)).toFixed(2)}×`);
  row("onnx step with two busy neighbours / fair share, threads 'auto'", `${(ms[2]![auto]! / fair).toFixed(2)}×`, `${ms[2]![auto]!.toFixed(2)} / ${fair.toFixed(2)} ms`);
  target("onnx step with one busy neighbour ≤ 1.3× quiet (threads 'auto')", ratios[auto]! <= 1.3);
}

// Issue 16 §1: larger MLPs, onnx against PyTorch (each at its better thread setting), alternating blocks.
if (want('large')) {
  for (const shape of [{ sizes: [784, 1024, 1024, 10], rows: 256 }, { sizes: [784, 2048, 2048, 10], rows: 512 }]) {
    const n = QUICK ? 10 : Math.max(20, Math.round(STEPS / 3));
    const { onnx, onnx1Ms, torch: torchRuns, why } = await onnxAgainstPytorch(n, shape);
    const name = `MLP ${shape.sizes.join('-')} SGD step, batch ${shape.rows}`;
    const best = Math.min(onnx.ms, onnx1Ms);
    const flop = mflopOf(shape);
    row(`${name}: symflow onnx`, `${onnx.ms.toFixed(2)} ms`, `${(flop / onnx.ms).toFixed(1)} GFLOP/s at ${CORES} threads; ${onnx1Ms.toFixed(2)} ms at 1 thread`);
    if (why !== undefined) row('  PyTorch', '—', why);
    for (const r of torchRuns) row(`  PyTorch, ${r.threads === 1 ? '1 thread' : `${r.threads} threads`}`, `${r.ms.toFixed(2)} ms`);
    const torchBest = [...torchRuns].sort((a, b) => a.ms - b.ms)[0];
    if (torchBest !== undefined) {
      row('  symflow onnx / PyTorch (each at its better thread setting)', `${(best / torchBest.ms).toFixed(2)}×`, `${best.toFixed(2)} / ${torchBest.ms.toFixed(2)} ms`);
      target(`onnx ${shape.sizes.join('-')} b${shape.rows} ≤ 0.9× PyTorch-best`, best <= 0.9 * torchBest.ms);
    }
  }
}

// Issue 16 §3: k steps per call (`TrainStep.steps`: one onnxruntime run of an ONNX Loop over the stacked batches)
// against one step per call, per step, on the MLP; alternating blocks, each the same 64 steps' work (32 with QUICK).
let stepsPerStepMs: number | undefined;
if (want('steps')) {
  const ks = [1, 8, 32];
  const b = await symflowStep('onnx');
  const { xs, ys } = batch();
  const x = b.session.upload(b.inputs[0]!, xs), y = b.session.upload(b.inputs[1]!, ys);
  const work = QUICK ? 32 : 64;
  const calls = ks.map((k) => async () => {
    for (let i = 0; i < work; i += k) {
      if (k === 1) await b.train.step([x, y]);
      else await b.train.steps(Array.from({ length: k }, () => [x, y]));
    }
  });
  const { ms } = await alternating(QUICK ? 2 : 10, calls, QUICK ? 2 : 5);
  const per = ms.map((t) => t / work);
  stepsPerStepMs = per[per.length - 1];
  ks.forEach((k, i) => row(`MLP SGD step, ${k} step${k === 1 ? '' : 's'} per call (onnx)`, `${per[i]!.toFixed(3)} ms per step`,
    i === 0 ? `${(MFLOP / per[i]!).toFixed(1)} GFLOP/s` : `${(per[0]! / per[i]!).toFixed(2)}× faster than one per call; ${(MFLOP / per[i]!).toFixed(1)} GFLOP/s`));
  b.session.dispose();
}

if (want('profile')) await profileSection(row, { cores: CORES, batch: BATCH, quick: QUICK });

if (want('memory')) row('memory', await leakAndRss());
if (want('peak')) {
  const peak = await matmulPeakGflops();
  row('matmul peak (onnxruntime, 1024³, all cores)', `${peak.toFixed(0)} GFLOP/s`, mlpOnnxMs === undefined ? '' : `the onnx MLP step reaches ${((100 * MFLOP) / mlpOnnxMs / peak).toFixed(0)} % of it`);
  // The physical limit of the MLP step: its FLOPs at that peak.
  const limitMs = MFLOP / peak;
  if (mlpOnnxBestMs !== undefined) {
    row('  MLP step (one per call, better thread setting) / the physical limit', `${(mlpOnnxBestMs / limitMs).toFixed(2)}×`, `${mlpOnnxBestMs.toFixed(3)} ms against ${limitMs.toFixed(3)} ms`);
    target('onnx MLP step ≤ 1.3× the physical limit', mlpOnnxBestMs <= 1.3 * limitMs);
  }
  if (stepsPerStepMs !== undefined) {
    row('  MLP step at 32 steps per call / the physical limit', `${(stepsPerStepMs / limitMs).toFixed(2)}×`, `${stepsPerStepMs.toFixed(3)} ms against ${MFLOP.toFixed(0)} MFLOP at ${peak.toFixed(0)} GFLOP/s = ${limitMs.toFixed(3)} ms`);
  }
}

console.log(`\n| measure | value | notes |\n|---|---|---|`);
for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
console.log(`\ntargets: ${targets.map(([t, ok]) => `${ok ? 'met' : 'MISSED'}: ${t}`).join('; ')}`);
