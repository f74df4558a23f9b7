/**
 * Issue 10, sections 4 and 7: what checkpoints write and read, hostile files and silent user errors. One table run
 * on every backend, as in badInput.test.ts. Every refusal is a SymflowError whose `op` names the function and whose
 * message names the argument and the values or shapes; after it, every variable the session knows is bit-identical,
 * the session knows the same variables, and (cpu, wasm) no backend tensor leaked. Every case failed before the fix.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adam, cast, compile, constant, fit, fromJSON, gradients, initializers, layers, mean, mul, pad, placeholder, Session,
  sgd, sparseSoftmaxCrossEntropy, sum, type Tensor, toJSON, type TrainStep, type Variable, variable,
} from '../src/index.js';
import { checkRows } from '../src/graph/rows.js';
import { makeVariable } from '../src/graph/sources.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/session/checkpoint.js';
import { BACKENDS } from './helpers.js';
import { type CaseOf, checkpointWith, expectRefused, sessionState } from './refusals.js';

const dir = mkdtempSync(join(tmpdir(), 'symflow-hostile-'));

/** 6 rows of 3 features, labels in [0, 3). */
const X = Array.from({ length: 6 }, (_, r) => Array.from({ length: 3 }, (_, k) => Math.sin(r * 5 + k * 2)));
const L = [0, 1, 2, 2, 1, 0];

/** Names a variable can have: spaces, '/', non-ASCII letters, quotes, backslashes, a long one. */
const ODD_NAMES = ['layer 1/kernel', 'Gewichte/Größe/权重/вес', `it's "quoted"`, 'back\\slash; semi:colon', 'n'.repeat(3000)];

interface Ctx {
  backend: string;
  s: Session;
  x: Tensor;
  labels: Tensor;
  logits: Tensor;
  loss: Tensor;
  train: TrainStep;
  iterations: Variable;
  flags: Variable;
  odd: Variable[];
  stranger: Variable;
  file(name: string): string;
}

async function makeCtx(backend: string): Promise<Ctx> {
  const s = await Session.create({ backend: backend as 'cpu' });
  const x = placeholder([null, 3], { name: 'x' });
  const labels = placeholder([null], { dtype: 'int32', name: 'labels' });
  const h = layers.dense(x, 4, { activation: 'tanh', seed: 1, name: `hostile_${backend}/h` });
  const logits = layers.dense(h, 3, { seed: 2, name: `hostile_${backend}/out` });
  const loss = mean(sparseSoftmaxCrossEntropy(logits, labels));
  const train = compile(adam({ lr: 0.05 }), s, { loss, inputs: [x, labels] });
  for (let i = 0; i < 3; i++) await train.step([X.slice(i, i + 3), L.slice(i, i + 3)]);
  const iterations = train.stateVariables.find((v) => /^adam\/iterations/.test(v.name))!;
  const flags = variable([true, false, true], { dtype: 'bool', name: `hostile_${backend}/flags` });
  const odd = ODD_NAMES.map((n, i) => variable([i, i + 0.5], { name: `${backend}/${n}` }));
  for (const v of [flags, ...odd]) await s.getValue(v);
  return {
    backend, s, x, labels, logits, loss, train, iterations, flags, odd,
    stranger: variable([1, 2, 3], { name: `hostile_${backend}/stranger` }),
    file: (name) => join(dir, `${backend}-${name}`),
  };
}

const state = sessionState;

/** A checkpoint of exactly our variables, every value changed, then `edit`ed. */
const ourCheckpointWith = (c: Ctx, name: string, edit: Parameters<typeof checkpointWith>[2]) => checkpointWith(c.s, c.file(name), edit);

/** A checkpoint holding only the bool variable, with `data`. */
function flagsFile(c: Ctx, name: string, data: Uint8Array): string {
  writeFileSync(c.file(name), encodeCheckpoint([{ name: c.flags.name, value: { shape: [3], dtype: 'bool', data } }]));
  return c.file(name);
}

type Case = CaseOf<Ctx, any>;
const tc = <T = undefined>(c: CaseOf<Ctx, T>): Case => c;
const asVariable = (t: Tensor) => t as unknown as Variable;
const DEEP = `${'['.repeat(2000)}${']'.repeat(2000)}`;

const CASES: Case[] = [
  // --- section 4: checkpoints ----------------------------------------------------------------------------------
  tc({
    name: 'save: a variable listed twice (writes no file)',
    bad: (c) => c.s.save(c.file('twice.ckpt'), { variables: [c.odd[0]!, c.flags, c.odd[0]!] }),
    error: (c) => ({ op: 'Session.save', has: [`variables[2] '${c.odd[0]!.name}' is listed twice (also variables[0])`] }),
    after: (c) => expect(existsSync(c.file('twice.ckpt'))).toBe(false),
  }),
  tc({
    name: 'restore: a variable listed twice',
    setup: (c) => flagsFile(c, 'twice-restore.ckpt', Uint8Array.of(0, 1, 0)),
    bad: (c, path) => c.s.restore(path, { variables: [c.flags, c.flags] }),
    error: (c) => ({ op: 'Session.restore', has: [`variables[1] '${c.flags.name}' is listed twice (also variables[0])`] }),
  }),
  tc({
    // The file holds an entry named like the placeholder, of its shape: before, restore took it, the session
    // "knew" the placeholder, and every later save failed on it.
    name: 'restore: a placeholder in variables (and later saves still work)',
    setup: (c) => {
      const p = placeholder([2], { name: `hostile_${c.backend}/not_a_variable` });
      writeFileSync(c.file('placeholder.ckpt'), encodeCheckpoint([{ name: p.name, value: { shape: [2], dtype: 'float32', data: Float32Array.of(1, 2) } }]));
      return p;
    },
    bad: (c, p) => c.s.restore(c.file('placeholder.ckpt'), { variables: [asVariable(p)] }),
    error: (_c, p) => ({ op: 'Session.restore', has: [`variables[0] is not a variable (got Tensor '${p.name}' (placeholder) [2] float32)`] }),
    after: async (c) => {
      await c.s.save(c.file('after-placeholder.ckpt'));
      expect(existsSync(c.file('after-placeholder.ckpt'))).toBe(true);
    },
  }),
  tc({
    name: 'restore: variables that is not an array',
    setup: (c) => flagsFile(c, 'notarray.ckpt', Uint8Array.of(0, 1, 0)),
    bad: (c, path) => c.s.restore(path, { variables: c.flags as unknown as Variable[] }),
    error: () => ({ op: 'Session.restore', has: ['variables must be an array of variables, got object'] }),
  }),
  tc({
    name: 'restore: a checkpoint whose bool entry holds 7',
    setup: (c) => flagsFile(c, 'flags7.ckpt', Uint8Array.of(0, 7, 0)),
    bad: (c, path) => c.s.restore(path, { variables: [c.flags] }),
    error: (c, path) => ({ op: 'Session.restore', has: [`${path}: variable "${c.flags.name}" is bool but element 1 is 7; a bool is 0 or 1`] }),
  }),
  tc({
    name: 'restore: a bool entry holding 7 (nothing else is restored either)',
    setup: (c) => ourCheckpointWith(c, 'bool7.ckpt', (e) => { if (e.name === c.flags.name) e.value.data = Uint8Array.of(1, 7, 0); }),
    bad: (c, path) => c.s.restore(path),
    error: (c, path) => ({ op: 'Session.restore', has: [`${path}: variable "${c.flags.name}" is bool but element 1 is 7; a bool is 0 or 1`] }),
  }),
  tc({
    name: 'a failed Session.run does not change which variables checkpoints cover',
    setup: (c) => variable([1, 2, 3], { name: `hostile_${c.backend}/met_by_a_failed_run` }),
    bad: (c, v) => c.s.run(mul(v, c.x), [[c.x, [[1, 2]]]]),
    error: (c) => ({ op: `feed '${c.x.name}'`, has: ['shape mismatch: expected [?,3], got [1,2]'] }),
    after: (c, v) => expect(c.s.variables).not.toContain(v),
  }),
  tc({
    // A hand-made variable whose initial value does not fit its shape: the backend refuses the upload.
    name: 'a getValue that throws does not change which variables checkpoints cover',
    setup: (c) => makeVariable({ kind: 'value', shape: [3], data: Float32Array.of(1, 2) }, `hostile_${c.backend}/unmakeable`, true),
    bad: (c, v) => c.s.getValue(v),
    after: (c, v) => expect(c.s.variables).not.toContain(v),
  }),
  tc({
    name: 'variable: a sparse array ([1, , 3]) is refused at build time',
    bad: () => variable([1, , 3] as number[]),
    error: () => ({ op: 'variable', has: ['sparse array: element [1] is a hole; give every element a value'] }),
  }),
  tc({
    name: 'variable: a hole in a nested array',
    bad: () => variable([[1, 2], [3, , ]] as number[][]),
    error: () => ({ op: 'variable', has: ['sparse array: element [1,1] is a hole'] }),
  }),
  tc({
    name: 'variable: a hole with opts.shape',
    bad: () => variable([1, , 3, 4] as number[], { shape: [2, 2] }),
    error: () => ({ op: 'variable', has: ['sparse array: an element is a hole'] }),
  }),
  tc({
    name: 'variable: a shape past the element limit is refused at build time',
    bad: () => variable(initializers.zeros([65536, 65536]), { name: 'huge' }),
    error: () => ({ op: 'variable', has: ['variable "huge" has shape [65536,65536]: 4.29e+9 elements, more than the limit of 2^28 = 268435456 elements per tensor'] }),
  }),
  tc({
    name: 'variable: a name with a control character',
    bad: () => variable(1, { name: 'a\nb' }),
    error: () => ({ op: 'variable', has: ['name "a\\nb" is not a valid name: use 1 to 4096 characters, none of them a control character'] }),
  }),
  tc({
    name: 'setValue: an int32 value outside the int32 range (not wrapped)',
    bad: (c) => c.s.setValue(c.iterations, 3e9),
    error: (c) => ({ op: `Session.setValue: variable '${c.iterations.name}'`, has: ['element 0 (3000000000) is outside the int32 range [-2147483648, 2147483647]'] }),
  }),
  tc({
    name: 'setValue: a Uint8Array holding 7 for a bool variable',
    bad: (c) => c.s.setValue(c.flags, Uint8Array.of(1, 7, 0)),
    error: (c) => ({ op: `Session.setValue: variable '${c.flags.name}'`, has: ['element 1 (7) is not a boolean for dtype bool (a Uint8Array for bool holds only 0 and 1)'] }),
  }),
  tc({
    name: 'feed: a Uint8Array holding 2 for a bool placeholder',
    setup: () => placeholder([2], { dtype: 'bool', name: 'mask' }),
    bad: (c, m) => c.s.run(cast(m, 'float32'), [[m, Uint8Array.of(0, 2)]]),
    error: (_c, m) => ({ op: `feed '${m.name}'`, has: ['element 1 (2) is not a boolean for dtype bool'] }),
  }),

  // --- section 7: hostile files ----------------------------------------------------------------------------------
  tc({
    name: 'fromJSON: a 4 KB file with 2,000 nested arrays (no stack overflow)',
    setup: (c) => {
      const text = JSON.stringify(toJSON(c.loss)).replace('"keepDims":false', `"keepDims":${DEEP}`);
      expect(text.length).toBeLessThan(toJSON(c.loss).nodes.length * 400 + 5000);
      return text;
    },
    bad: (_c, text) => fromJSON(text),
    error: () => ({ op: 'fromJSON', has: [/^fromJSON: the graph is nested more than 64 levels deep \(at \.nodes\[\d+\]\.attrs\.keepDims\[0\]\[0\]/] }),
  }),
  tc({
    name: 'fromJSON: a graph object with a cycle',
    setup: (c) => {
      const g = toJSON(c.loss) as unknown as { nodes: { attrs: Record<string, unknown> }[] };
      g.nodes[g.nodes.length - 1]!.attrs['self'] = g;
      return g;
    },
    bad: (_c, g) => fromJSON(g as never),
    error: () => ({ op: 'fromJSON', has: ['the graph is nested more than 64 levels deep'] }),
  }),
  tc({
    // Before, the graph ran: cpu failed in the kernel, wasm returned a wrong sum.
    name: 'a graph file whose pad claims 10^12 elements loads, and is refused at compile time',
    setup: () => {
      const x = placeholder([2], { name: 'px' });
      const g = fromJSON(toJSON(sum(pad(x, [[0, 1e12 - 2]], 1))));
      return { x: g.nodes.get(x.name)!, out: g.outputs[0]! };
    },
    bad: (c, g) => c.s.run(g.out, [[g.x, [1, 2]]]),
    error: (_c, g) => ({ op: 'Session.run', has: [`node '${g.out.inputs[0]!.name}' (pad) has shape [1000000000000]: 1.00e+12 elements, more than the limit of 2^28 = 268435456 elements per tensor`] }),
  }),
  tc({
    name: 'session.function: a node past the limit in its known dimensions, with a batch dimension',
    setup: (c) => pad(c.x, [[0, 0], [0, 2 ** 28]]),
    bad: (c, p) => c.s.function({ inputs: [c.x], outputs: [sum(p)] }),
    error: () => ({ op: 'session.function', has: [/\(pad\) has shape \[\?,268435459\]: 2\.68e\+8 elements in its known dimensions alone, more than the limit/] }),
  }),

  // --- section 7: silent user errors -----------------------------------------------------------------------------
  tc({
    name: 'fit: columns of different lengths name the inputs',
    bad: (c) => fit(c.train, [X, L.slice(0, 5)]),
    error: (c) => ({ op: 'fit', has: [`columns differ in length: column 0 ('${c.x.name}') has 6 rows, column 1 ('${c.labels.name}') has 5`] }),
  }),
  tc({
    // checkRows is the helper TrainStep.step is to call (the lead wires it into src/optimizers/compile.ts).
    name: 'checkRows: inputs of one step with different row counts',
    bad: (c) => checkRows('TrainStep.step', [c.x, c.labels], [X.slice(0, 2), L.slice(0, 1)]),
    error: (c) => ({ op: 'TrainStep.step', has: [`inputs differ in row count: '${c.x.name}' has 2 rows, '${c.labels.name}' has 1 row; every input with a batch dimension needs the same number of rows`] }),
  }),
  tc({
    name: 'checkRows: uploaded values, {shape, data} and typed arrays are counted too',
    bad: (c) => {
      const d = c.s.upload(c.x, X.slice(0, 4));
      try {
        checkRows('TrainStep.step', [c.x, c.labels], [X.slice(0, 4), { shape: [4], data: L.slice(0, 4) }]);
        checkRows('TrainStep.step', [c.x, c.labels], [new Float32Array(12), Int32Array.of(0, 1, 2, 0)]);
        checkRows('TrainStep.step', [c.x, c.labels], [d, Int32Array.of(0, 1, 2)]);
      } finally {
        d.dispose();
      }
    },
    error: (c) => ({ op: 'TrainStep.step', has: [`'${c.x.name}' has 4 rows, '${c.labels.name}' has 3 rows`] }),
  }),
  tc({
    name: 'TrainStep.step: x with 2 rows and labels with 1 (no loss is computed)',
    bad: (c) => c.train.step([X.slice(0, 2), L.slice(0, 1)]),
    error: (c) => ({ op: 'TrainStep.step', has: [`'${c.x.name}' has 2 rows, '${c.labels.name}' has 1 row`] }),
  }),
  tc({
    name: 'fit: an Observable batch whose inputs differ in row count',
    bad: (c) => lastValueFrom(fit(c.train, from([[X.slice(0, 2), L.slice(0, 1)]]))),
    error: (c) => ({ op: 'TrainStep.step', has: [`'${c.x.name}' has 2 rows, '${c.labels.name}' has 1 row`] }),
  }),
  tc({
    name: 'sparseSoftmaxCrossEntropy: a fed label >= classes (Session.run)',
    bad: (c) => c.s.run(c.loss, [[c.x, X.slice(0, 4)], [c.labels, [0, 1, 3, 2]]]),
    error: (c) => ({ op: `feed '${c.labels.name}'`, has: [`sparseSoftmaxCrossEntropy: label 3 at index [2] is outside the valid range [0, 3) of the 3 classes of logits '${c.logits.name}'`] }),
  }),
  tc({
    name: 'sparseSoftmaxCrossEntropy: a negative fed label in a training step (nothing is applied)',
    bad: (c) => c.train.step([X.slice(0, 4), [0, -1, 2, 1]]),
    error: (c) => ({ op: `feed '${c.labels.name}'`, has: ['sparseSoftmaxCrossEntropy: label -1 at index [1] is outside the valid range [0, 3)'] }),
  }),
  tc({
    name: 'sparseSoftmaxCrossEntropy: an out-of-range label in fit columns',
    bad: (c) => lastValueFrom(fit(c.train, [X, [0, 1, 2, 5, 1, 0]], { batchSize: 6, shuffle: false })),
    error: (c) => ({ op: `feed '${c.labels.name}'`, has: ['label 5 at index [3] is outside the valid range [0, 3)'] }),
  }),
  tc({
    name: 'sparseSoftmaxCrossEntropy: labels computed in the graph give NaN for a bad row, never 0',
    setup: (c) => {
      const yf = placeholder([null], { name: 'yf' });
      return { yf, loss: sparseSoftmaxCrossEntropy(c.logits, cast(yf, 'int32')) };
    },
    bad: (c, g) => c.s.run(g.loss, [[c.x, X.slice(0, 4)], [g.yf, [0, 7, -2, 1]]]),
    resolves: (value) => {
      const data = Array.from((value as { data: Float32Array }).data);
      expect(data.map(Number.isNaN)).toEqual([false, true, true, false]);
      expect(data[0]).toBeGreaterThan(0);
    },
  }),
  tc({
    name: 'compile: an int32 loss gets the float32-scalar message with a fitting hint',
    setup: (c) => sum(cast(c.labels, 'int32')),
    bad: (c, l) => compile(sgd(), c.s, { loss: l, inputs: [c.x, c.labels] }),
    error: (_c, l) => ({ op: 'compile', has: [`loss must be a float32 scalar, got int32 [] ('${l.name}'); an int32 tensor has no gradient: compute the loss in float32`] }),
  }),
  tc({
    name: 'getUpdates: an unconnected parameter is reported in its own terms',
    bad: (c) => sgd().getUpdates(c.loss, [c.odd[0]!, c.stranger]),
    error: (c) => ({ op: 'sgd', has: [`params[0] '${c.odd[0]!.name}' is not connected to '${c.loss.name}'; leave it out of params`] }),
  }),
  tc({
    name: 'gradients: a caller-supplied report for an unconnected x',
    bad: (c) => gradients(c.loss, [c.stranger], { report: { who: 'compile', xs: 'params', hint: 'omit params to train every trainable variable the loss reads' } }),
    error: (c) => ({ op: 'compile', has: [`params[0] '${c.stranger.name}' is not connected to '${c.loss.name}'; omit params to train every trainable variable the loss reads`] }),
  }),
  tc({
    name: 'compile: an unconnected parameter gets a hint in compile\'s own options',
    bad: (c) => compile(sgd(), c.s, { loss: c.loss, params: [c.stranger], inputs: [c.x, c.labels] }),
    error: (c) => ({ op: 'compile', has: [`params[0] '${c.stranger.name}' is not connected to '${c.loss.name}'`] }),
  }),
];

describe.each(BACKENDS)('hostile input on %s', (backend) => {
  let c: Ctx;
  beforeAll(async () => {
    c = await makeCtx(backend);
  });
  afterAll(() => c?.s.dispose());

  it('any name a variable can have saves AND restores, bit for bit', async () => {
    const path = c.file('odd-names.ckpt');
    await c.s.save(path);
    const saved = await state(c.s);
    expect(decodeCheckpoint(new Uint8Array(readFileSync(path))).map((e) => e.name)).toEqual(expect.arrayContaining(c.odd.map((v) => v.name)));
    for (const v of c.odd) await c.s.setValue(v, [7, 8]);
    await c.train.step([X.slice(3, 6), L.slice(3, 6)]);
    expect(await state(c.s)).not.toEqual(saved);
    await c.s.restore(path);
    expect(await state(c.s)).toEqual(saved);
    await c.s.restore(path, { variables: c.odd });
    expect(await state(c.s)).toEqual(saved);
  });

  it('labels in range train as before: the loss is the mean of the per-example cross-entropies', async () => {
    const [l] = await c.s.run([c.loss], [[c.x, X], [c.labels, L]]);
    const per = await c.s.run(sparseSoftmaxCrossEntropy(c.logits, c.labels), [[c.x, X], [c.labels, L]]);
    expect(Array.from(per.data).every((v) => Number.isFinite(v) && v > 0)).toBe(true);
    expect(l!.data[0]).toBeCloseTo(Array.from(per.data).reduce((a, b) => a + b, 0) / 6, 6);
  });

  it('int32 values at the ends of the range are kept exactly', async () => {
    const v = variable(0, { dtype: 'int32', name: `hostile_${backend}/edge` });
    for (const e of [2 ** 31 - 1, -(2 ** 31)]) {
      await c.s.setValue(v, e);
      expect(Array.from((await c.s.getValue(v)).data)).toEqual([e]);
    }
  });

  it('a constant of a known shape within the limit still compiles and runs', async () => {
    const [out] = await c.s.run([sum(constant(new Float32Array(1000).fill(1), { shape: [10, 100] }))]);
    expect(Array.from(out!.data)).toEqual([1000]);
  });

  for (const t of CASES) (t.bug ? it.fails : it)(t.name, () => expectRefused(c, t));
});

describe('hostile input: the table', () => {
  it('names are unique', () => {
    expect(new Set(CASES.map((t) => t.name)).size).toBe(CASES.length);
  });
});
