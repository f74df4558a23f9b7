// Keras' `mnist_cnn` on the real MNIST digits of the `mnist` package (8,000 to train, 2,000 to test): conv 32 →
// conv 64 → max-pool → dropout 0.25 → dense 128 → dropout 0.5 → dense 10, trained with adam through the metric
// stream with a progress bar. With COMPARE=1 it then trains the same model with sgd, heun and soft batch too and
// prints accuracy against gradient evaluations. `npm run example:cnn`.
import cliProgress from 'cli-progress';
import {
  Session, accumulate, adam, argMax, cosineDecay, cast, compile, equal, fit, graph, heun, mean, nn, placeholder, reshape, sgd, sparseSoftmaxCrossEntropy,
  type AnyOptimizer, type TrainEvent,
} from '../src/index.js';
import { loadMnist } from './data/mnist.js';

// 12 epochs, as Keras' mnist_cnn.py trains it.
const EPOCHS = Number(process.env['EPOCHS'] ?? 12);
const BATCH = 128;
const data = loadMnist();

function model() {
  return graph(() => {
    const x = placeholder([null, 784], { name: 'pixels' });
    const y = placeholder([null], { dtype: 'int32', name: 'digit' });
    const net = nn.sequential([
      nn.conv2d(32, 3, { activation: 'relu', seed: 1 }),
      nn.conv2d(64, 3, { activation: 'relu', seed: 2 }),
      nn.maxPool2d({ size: 2 }),
      nn.dropout(0.25),
      nn.flatten(),
      nn.dense(128, { activation: 'relu', seed: 3 }),
      nn.dropout(0.5),
      nn.dense(10, { seed: 4 }),
    ]);
    const logits = net.apply(reshape(x, [-1, 28, 28, 1]));
    return { x, y, net, loss: mean(sparseSoftmaxCrossEntropy(logits, y)), accuracy: mean(cast(equal(argMax(logits), y), 'float32')) };
  });
}

async function train(name: string, optimizer: AnyOptimizer, epochs: number, quiet = false): Promise<{ accuracy: number; evaluations: number; seconds: number; backend: string }> {
  // A session per model: each build has its own variables, under the same names.
  const session = await Session.create();
  const m = model();
  const step = compile(optimizer, session, { loss: m.loss, inputs: [m.x, m.y], updates: m.net.updates });
  const stepsPerEpoch = Math.ceil(data.trainY.length / BATCH);
  const bar = new cliProgress.SingleBar(
    { format: `${name} epoch {epoch} [{bar}] {value}/{total} steps | loss {loss} | {ms} ms/step`, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  let last: TrainEvent | undefined;
  let evaluations = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    fit(step, [data.trainX, data.trainY], { epochs, batchSize: BATCH, seed: 7, validation: { data: [data.testX, data.testY], metrics: { accuracy: m.accuracy } } })
      .subscribe({
        next: (e) => {
          if (e.type === 'step') {
            evaluations += e.runs;
            if (quiet) return;
            if (e.batch === 0) bar.start(stepsPerEpoch, 0, { epoch: e.epoch + 1, loss: '…', ms: '…' });
            bar.update(e.batch + 1, { loss: e.loss.toFixed(4), ms: e.ms.toFixed(0) });
          } else if (e.type === 'epoch') {
            if (!quiet) bar.stop();
            console.log(`  ${name} epoch ${e.epoch + 1}: train loss ${e.loss.toFixed(4)}, test accuracy ${(100 * e.val!['accuracy']!).toFixed(2)} %`);
          }
          last = e;
        },
        error: reject,
        complete: resolve,
      });
  });
  const accuracy = last?.type === 'epoch' ? last.val!['accuracy']! : NaN;
  await session.dispose();
  return { accuracy, evaluations, seconds: (performance.now() - started) / 1000, backend: session.backend };
}

console.log(`MNIST: ${data.trainY.length} training and ${data.testY.length} test digits, Keras mnist_cnn, batch ${BATCH}`);
// Adam's rate decays along a cosine to 5 % over the run (a schedule of the step counter): the last epochs settle
// instead of jittering by ±0.2 % from one epoch to the next.
const STEPS = EPOCHS * Math.ceil(data.trainY.length / BATCH);
const main = await train('adam', adam({ lr: cosineDecay({ init: 1e-3, steps: STEPS, alpha: 0.05 }) }), EPOCHS);
console.log(`adam: test accuracy ${(100 * main.accuracy).toFixed(2)} % after ${EPOCHS} epochs (${main.seconds.toFixed(0)} s on ${main.backend})`);

if (process.env['COMPARE'] === '1') {
  // Accuracy against gradient evaluations: heun takes two per step, so it gets half the epochs.
  const rows: [string, { accuracy: number; evaluations: number; seconds: number }][] = [['adam (lr 1e-3, cosine decay)', main]];
  rows.push(['sgd (lr 0.05, momentum 0.9)', await train('sgd', sgd({ lr: 0.05, momentum: 0.9 }), EPOCHS, true)]);
  rows.push(['heun (lr 0.05)', await train('heun', heun({ lr: 0.05 }), Math.max(1, EPOCHS / 2), true)]);
  rows.push(['soft batch 4 × adam', await train('soft batch', accumulate(adam({ lr: 2e-3 }), { steps: 4 }), EPOCHS, true)]);
  console.log('\n| optimizer | gradient evaluations | test accuracy | seconds |\n|---|---|---|---|');
  for (const [n, r] of rows) console.log(`| ${n} | ${r.evaluations} | ${(100 * r.accuracy).toFixed(2)} % | ${r.seconds.toFixed(0)} |`);
}
if (!(main.accuracy >= 0.975)) {
  console.error('expected at least 97.5 % test accuracy');
  process.exitCode = 1;
}
