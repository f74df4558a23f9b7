// The MNIST MLP trained three ways side by side — plain SGD, Heun (two gradient evaluations per step) and a soft
// batch (SGD on the mean gradient of 4 mini-batches of 16) — each run logged to out/tensorboard/<name>/ as
// TensorBoard event files: step and epoch losses, the learning rate, step times, test loss and accuracy, and
// histograms of the weights. Then: tensorboard --logdir out/tensorboard
// The soft batch sees the same rows in the same order as SGD on batches of 64, so its curve lies on SGD's (up to
// rounding) at 4 steps per update: set TensorBoard's horizontal axis to "Relative" or "Wall" to compare them in time.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom } from 'rxjs';
import {
  Session, accumulate, argMax, cast, compile, equal, fit, graph, heun, layers, mean, placeholder, sgd,
  sparseSoftmaxCrossEntropy, type AnyOptimizer, type TrainEvent, tensorboard,
} from '../src/index.js';
import { loadMnist } from './data/mnist.js';

const EPOCHS = Number(process.env['EPOCHS'] ?? 2);
const LOGDIR = join('out', 'tensorboard');

const data = loadMnist();

/** One MLP 784-128-10 per run, all from the same initial weights (same seeds), trained with `optimizer`. */
async function run(name: string, optimizer: AnyOptimizer, batchSize: number) {
  // Each run in its own graph and session: the same variable names (hidden/kernel, …), so TensorBoard shows the
  // runs' histograms under the same tags.
  const session = await Session.create();
  const { train, accuracy } = graph(() => {
    const x = placeholder([null, 784], { name: 'pixels' });
    const y = placeholder([null], { dtype: 'int32', name: 'digit' });
    const hidden = layers.dense(x, 128, { activation: 'relu', seed: 1, name: 'hidden' });
    const logits = layers.dense(hidden, 10, { seed: 2, name: 'logits' });
    const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
    return {
      train: compile(optimizer, session, { loss, inputs: [x, y] }),
      accuracy: mean(cast(equal(argMax(logits), y), 'float32')),
    };
  });
  const logdir = join(LOGDIR, name);
  rmSync(logdir, { recursive: true, force: true }); // one event file per run directory, not one per invocation
  const done: Promise<TrainEvent | undefined> = lastValueFrom(fit(train, [data.trainX, data.trainY], {
    epochs: EPOCHS, batchSize, seed: 7,
    validation: { data: [data.testX, data.testY], metrics: { accuracy } },
  }).pipe(tensorboard(logdir, { every: 5, histograms: { params: train, every: 100 } })), { defaultValue: undefined });
  return { name, logdir, session, done };
}

const runs = await Promise.all([
  run('sgd', sgd({ lr: 0.1 }), 64),
  run('heun', heun({ lr: 0.1 }), 64),
  run('softBatch', accumulate(sgd({ lr: 0.1 }), { steps: 4 }), 16),
]);
console.log(`MNIST: ${data.trainY.length} training and ${data.testY.length} test digits, MLP 784-128-10, ${EPOCHS} epochs, backend ${runs[0]!.session.backend}`);
console.log(`training ${runs.map((r) => r.name).join(', ')} side by side, logging to ${LOGDIR}/<name>/ …`);

for (const r of runs) {
  const e = await r.done;
  const acc = e?.type === 'epoch' ? e.val!['accuracy']! : NaN;
  await r.session.dispose();
  console.log(`  ${r.name.padEnd(10)} test loss ${e?.type === 'epoch' ? e.val!['loss']!.toFixed(4) : '?'}, test accuracy ${(100 * acc).toFixed(2)} %  → ${r.logdir}`);
}
console.log(`\nto see the runs:\n  tensorboard --logdir ${LOGDIR}`);
