// Cost of multi-run and soft-batch steps relative to a plain SGD step, on the 784-256-256-10 MLP at batch 128.
// Measured side by side in one process: median ms per step after warm-up.
import {
  Session, accumulate, compile, heun, layers, mean, placeholder, sgd, sparseSoftmaxCrossEntropy, variablesOf,
  type AnyOptimizer, type BackendName,
} from '../src/index.js';

const BATCH = 128;

export async function stepMs(backend: BackendName, make: () => AnyOptimizer, steps: number): Promise<number> {
  const session = await Session.create({ backend });
  const x = placeholder([null, 784]);
  const labels = placeholder([null], { dtype: 'int32' });
  const h1 = layers.dense(x, 256, { activation: 'relu', seed: 1 });
  const h2 = layers.dense(h1, 256, { activation: 'relu', seed: 2 });
  const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(h2, 10, { seed: 3 }), labels));
  const train = compile(make(), session, { loss, params: variablesOf(loss), inputs: [x, labels] });
  const xv = session.upload(x, new Float32Array(BATCH * 784).map((_, i) => ((i * 7919) % 255) / 255));
  const yv = session.upload(labels, new Int32Array(BATCH).map((_, i) => i % 10));
  for (let i = 0; i < 8; i++) await train.step([xv, yv]);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    await train.step([xv, yv]);
    times.push(performance.now() - t);
  }
  session.dispose();
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const steps = Number(process.env['STEPS'] ?? 60);
  const backend = (process.env['BACKEND'] ?? 'wasm') as BackendName;
  // Accumulate-only steps: with steps = 1e9 the apply branch never runs.
  const cases: [string, () => AnyOptimizer][] = [
    ['sgd', () => sgd({ lr: 0.01 })],
    ['heun', () => heun({ lr: 0.01 })],
    ['accumulate-only', () => accumulate(sgd({ lr: 0.01 }), { steps: 1_000_000_000 })],
  ];
  const ms: Record<string, number> = {};
  for (const [name, make] of cases) ms[name] = await stepMs(backend, make, steps);
  for (const [name] of cases) console.log(`${name.padEnd(16)} ${ms[name]!.toFixed(2)} ms  (${(ms[name]! / ms['sgd']!).toFixed(2)}× sgd)`);
}
