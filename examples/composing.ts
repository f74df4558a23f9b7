// Composing an optimizer from gradient transformations, the way optax does, on the MNIST MLP: clip by global
// norm, weight decay on the kernels only, Adam's rescaling, a warmup-then-cosine learning rate — all under soft
// batch (each update from 2 mini-batches of 32), with an average of the weights for validation. One session run
// per mini-batch; the clip, the decay and the schedule act once per update, on the accumulated gradient.
import cliProgress from 'cli-progress';
import {
  Session, accumulate, addDecayedWeights, argMax, cast, chain, clipByGlobalNorm, compile, emaParams, equal, fit, kernelsOnly,
  layers, mean, placeholder, scaleByAdam, scaleByLearningRate, sparseSoftmaxCrossEntropy, warmupCosineDecay,
  type TrainEvent,
} from '../src/index.js';
import { loadMnist } from './data/mnist.js';

const EPOCHS = Number(process.env['EPOCHS'] ?? 6);
const MINI = 32;
const GROUP = 2; // mini-batches per update: the effect of batch 64

const data = loadMnist();
const session = await Session.create();

const x = placeholder([null, 784], { name: 'pixels' });
const y = placeholder([null], { dtype: 'int32', name: 'digit' });
const hidden = layers.dense(x, 128, { activation: 'relu', seed: 1, name: 'hidden' });
const logits = layers.dense(hidden, 10, { seed: 2, name: 'logits' });
const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
const accuracy = mean(cast(equal(argMax(logits), y), 'float32'));

const stepsPerEpoch = Math.ceil(data.trainY.length / MINI);
const updates = Math.ceil((EPOCHS * stepsPerEpoch) / GROUP);
// The schedule counts updates (the chain's own step counter moves once per GROUP mini-batches).
const lr = warmupCosineDecay({ init: 0, peak: 2e-3, warmupSteps: Math.round(updates / 10), decaySteps: updates, end: 1e-5 });
const optimizer = accumulate(
  chain(
    clipByGlobalNorm(1),
    // L2 on the kernels, through Adam (put it after scaleByAdam for AdamW's decoupled decay).
    addDecayedWeights({ rate: 1e-4, mask: kernelsOnly }),
    scaleByAdam(),
    scaleByLearningRate(lr),
    emaParams({ decay: 0.99 }),
  ),
  { steps: GROUP },
);
const train = compile(optimizer, session, { loss, inputs: [x, y] });

console.log(`MNIST MLP 784-128-10: chain(clipByGlobalNorm, decay on kernels, scaleByAdam, warmupCosineDecay lr, emaParams) under accumulate(${GROUP}), batch ${MINI}, backend ${session.backend}`);
const bar = new cliProgress.SingleBar(
  { format: 'epoch {epoch} [{bar}] {value}/{total} steps | loss {loss} | lr {lr}', hideCursor: true, clearOnComplete: false },
  cliProgress.Presets.shades_classic,
);

// Validation at the averaged weights (read in place of the parameters; nothing is swapped).
let last: TrainEvent | undefined;
await new Promise<void>((resolve, reject) => {
  fit(train, [data.trainX, data.trainY], {
    epochs: EPOCHS, batchSize: MINI, seed: 7,
    validation: { data: [data.testX, data.testY], metrics: { accuracy }, weights: 'averages' },
  }).subscribe({
    next: (e) => {
      if (e.type === 'step') {
        if (e.batch === 0) bar.start(stepsPerEpoch, 0, { epoch: e.epoch + 1, loss: '…', lr: '…' });
        bar.update(e.batch + 1, { loss: e.loss.toFixed(4), lr: e.lr?.toExponential(2) ?? '?' });
      } else if (e.type === 'epoch') {
        bar.stop();
        console.log(`  epoch ${e.epoch + 1}: train loss ${e.loss.toFixed(4)}, test loss at the averages ${e.val!['loss']!.toFixed(4)}, accuracy ${(100 * e.val!['accuracy']!).toFixed(2)} %`);
      }
      last = e;
    },
    error: reject,
    complete: resolve,
  });
});

const atAverages = last?.type === 'epoch' ? last.val!['accuracy']! : NaN;
const lossAtAverages = last?.type === 'epoch' ? last.val!['loss']! : NaN;
const [atParams, lossAtParams] = await session.run([accuracy, loss], [[x, data.testX], [y, data.testY]]);
console.log(`final test accuracy: ${(100 * atAverages).toFixed(2)} % (loss ${lossAtAverages.toFixed(4)}) at the averaged weights, ${(100 * atParams!.data[0]!).toFixed(2)} % (loss ${lossAtParams!.data[0]!.toFixed(4)}) at the trained ones`);
await session.dispose();
if (!(atAverages >= 0.9)) {
  console.error('expected at least 90 % test accuracy');
  process.exitCode = 1;
}
