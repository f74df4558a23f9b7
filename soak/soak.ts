// `npm run soak`: 10,000 training steps each of adam, soft batch (accumulate(adam)) and heun on an MLP, per
// backend. Checks that the TF.js tensor count stays flat and that RSS grows less than 5 % after warm-up, and
// prints the figures. Set STEPS to change the count, BACKENDS (comma-separated) to pick backends.
import {
  Session, accumulate, adam, compile, heun, layers, mean, placeholder, sparseSoftmaxCrossEntropy,
  type AnyOptimizer, type BackendName,
} from '../src/index.js';

const STEPS = Number(process.env['STEPS'] ?? 10_000);
// onnxruntime grows its arenas for the first few thousand steps (then RSS stays flat: 40,000 steps measured).
const WARMUP = Math.floor(STEPS / 5);
const BACKENDS = (process.env['BACKENDS'] ?? 'wasm,onnx,cpu').split(',') as BackendName[];
const BATCH = 32;

const optimizers: [string, () => AnyOptimizer][] = [
  ['adam', () => adam({ lr: 1e-3 })],
  ['soft batch (accumulate(adam), 4)', () => accumulate(adam({ lr: 1e-3 }), { steps: 4 })],
  ['heun', () => heun({ lr: 0.01 })],
];

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
let failed = false;
for (const backend of BACKENDS) {
  for (const [name, make] of optimizers) {
    const session = await Session.create({ backend });
    const x = placeholder([null, 64]);
    const y = placeholder([null], { dtype: 'int32' });
    const h = layers.dense(x, 128, { activation: 'relu', seed: 1 });
    const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(h, 10, { seed: 2 }), y));
    const train = compile(make(), session, { loss, inputs: [x, y] });
    const batches = Array.from({ length: 16 }, (_, b) => [
      { shape: [BATCH, 64], data: new Float32Array(BATCH * 64).map((_, i) => Math.sin(b * 977 + i)) },
      { shape: [BATCH], data: new Int32Array(BATCH).map((_, i) => (b + i) % 10) },
    ]);
    const started = performance.now();
    let before = { tensors: 0, rss: 0 };
    let lossValue = NaN;
    for (let i = 0; i < STEPS; i++) {
      lossValue = (await train.step(batches[i % batches.length]!)).loss;
      if (i === WARMUP) {
        global.gc?.();
        before = { tensors: session.numTensors(), rss: process.memoryUsage().rss };
      }
    }
    global.gc?.();
    const after = { tensors: session.numTensors(), rss: process.memoryUsage().rss };
    const growth = (after.rss - before.rss) / before.rss;
    const ok = after.tensors === before.tensors && growth < 0.05 && Number.isFinite(lossValue);
    failed ||= !ok;
    console.log(
      `${ok ? 'ok  ' : 'FAIL'} ${backend.padEnd(4)} ${name.padEnd(34)} ${STEPS} steps in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `tensors ${before.tensors} → ${after.tensors}; RSS ${mib(before.rss)} → ${mib(after.rss)} MiB (${(100 * growth).toFixed(2)} %); last loss ${lossValue.toFixed(4)}`,
    );
    session.dispose();
  }
}
if (failed) process.exitCode = 1;
