// One SGD training step of a 784-256-256-10 MLP at batch 128, as one session.function call.
// Prints the median ms per step over repeated calls after warm-up, per backend.
import { Session, gradients, layers, mean, mul, placeholder, sparseSoftmaxCrossEntropy, sub, variablesOf, type BackendName } from '../src/index.js';

const BATCH = 128;
const STEPS = Number(process.env['STEPS'] ?? 100);

export async function mlpStepMs(backend: BackendName, steps = STEPS): Promise<{ median: number; kernels: number; compileMs: number }> {
  const session = await Session.create({ backend });
  const x = placeholder([null, 784], { name: 'x' });
  const labels = placeholder([null], { dtype: 'int32', name: 'labels' });
  const h1 = layers.dense(x, 256, { activation: 'relu', seed: 1, name: 'h1' });
  const h2 = layers.dense(h1, 256, { activation: 'relu', seed: 2, name: 'h2' });
  const logits = layers.dense(h2, 10, { seed: 3, name: 'logits' });
  const loss = mean(sparseSoftmaxCrossEntropy(logits, labels));
  const params = variablesOf(loss);
  const grads = gradients(loss, params);
  const t0 = performance.now();
  const step = session.function({ inputs: [x, labels], outputs: [loss], updates: params.map((p, i) => [p, sub(p, mul(0.01, grads[i]!))] as const) });
  const compileMs = performance.now() - t0;
  const xs = new Float32Array(BATCH * 784).map((_, i) => ((i * 7919) % 255) / 255);
  const ys = new Int32Array(BATCH).map((_, i) => i % 10);
  const xv = session.upload(x, xs);
  const yv = session.upload(labels, ys);
  for (let i = 0; i < 10; i++) await step([xv, yv]);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    await step([xv, yv]);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  xv.dispose();
  yv.dispose();
  session.dispose();
  return { median: times[Math.floor(times.length / 2)]!, kernels: step.kernelCount, compileMs };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const backend of ['wasm', 'cpu'] as const) {
    const r = await mlpStepMs(backend, backend === 'cpu' ? 20 : STEPS);
    console.log(`${backend.padEnd(5)} MLP 784-256-256-10, batch ${BATCH}, SGD step: ${r.median.toFixed(2)} ms median (${r.kernels} kernels, compiled in ${r.compileMs.toFixed(1)} ms)`);
  }
}
