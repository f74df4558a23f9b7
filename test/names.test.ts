// Names are scoped and deterministic (issue 11 §4): graph(…) gives a fresh name space, nameScope prefixes names,
// a checkpoint of one build restores into another (in this process and in a child), and a session refuses two
// different variables with one name.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, SymflowError, adam, add, compile, cond, gradients, graph, layers, mean, mul, nameScope, neg, placeholder, sparseSoftmaxCrossEntropy,
  toJSON, variable, type HostTensor,
} from '../src/index.js';
import { batch, buildModel } from './fixtures/namesModel.js';
import { BACKENDS } from './helpers.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'symflow-names-'));
const MODEL_NAMES = [
  'adam/iterations', 'adam/lr', 'adam/m/encoder/dense/bias', 'adam/m/encoder/dense/kernel', 'adam/m/out/bias', 'adam/m/out/kernel',
  'adam/v/encoder/dense/bias', 'adam/v/encoder/dense/kernel', 'adam/v/out/bias', 'adam/v/out/kernel',
  'encoder/dense/bias', 'encoder/dense/kernel', 'out/bias', 'out/kernel',
];

async function hexByName(session: Session): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of session.variables) out[v.name] = Buffer.from((await session.getValue(v)).data.buffer).toString('hex');
  return out;
}

const sessions: Session[] = [];
async function newSession(backend: (typeof BACKENDS)[number] = 'cpu'): Promise<Session> {
  const s = await Session.create({ backend });
  sessions.push(s);
  return s;
}
afterAll(() => sessions.forEach((s) => s.dispose()));

describe('graph(…)', () => {
  beforeAll(async () => {
    // The process space already holds the model's names, so names in graph(…) cannot depend on it.
    buildModel(await newSession(), false);
  });

  it('gives the same names on every build, optimizer slots included, and the same toJSON', async () => {
    const [s1, s2] = [await newSession(), await newSession()];
    const b1 = buildModel(s1), b2 = buildModel(s2);
    expect(s1.variables.map((v) => v.name)).toEqual(MODEL_NAMES);
    expect(s2.variables.map((v) => v.name)).toEqual(MODEL_NAMES);
    expect(b1.train.stateVariables.map((v) => v.name)).toEqual(b2.train.stateVariables.map((v) => v.name));
    const json = (b: typeof b1) => JSON.stringify(toJSON([b.loss, ...b.train.stateVariables]));
    expect(json(b1)).toEqual(json(b2));
    expect(b1.loss.name).toBe(b2.loss.name);
  });

  it('names optimizer slots in the parameters\' name space, also when compile runs after the graph(…)', async () => {
    const build = () => graph(() => {
      const x = placeholder([null, 5], { name: 'x' });
      const y = placeholder([null], { dtype: 'int32', name: 'y' });
      return { x, y, loss: mean(sparseSoftmaxCrossEntropy(layers.dense(x, 3, { seed: 2, name: 'out' }), y)) };
    });
    const names = async () => {
      const m = build();
      const train = compile(adam({ lr: 0.01 }), await newSession(), { loss: m.loss, inputs: [m.x, m.y] });
      return train.stateVariables.map((v) => v.name);
    };
    const first = await names();
    expect([...first].sort()).toEqual(['adam/iterations', 'adam/lr', 'adam/m/out/bias', 'adam/m/out/kernel', 'adam/v/out/bias', 'adam/v/out/kernel']);
    expect(await names()).toEqual(first);
  });

  it('leaves code outside any graph as it was: a second build gets _1', async () => {
    const s = await newSession();
    const names = buildModel(s, false).train.params.map((p) => p.name);
    expect(names.every((n) => /_[0-9]+$/.test(n)), names.join(', ')).toBe(true);
  });

  it('suffixes an explicit name used twice in one graph, and gives it again in another', () => {
    const make = () => graph(() => [variable(1, { name: 'w' }), variable(2, { name: 'w' }), variable(3, { name: 'w_1' })].map((v) => v.name));
    expect(make()).toEqual(['w', 'w_1', 'w_1_1']);
    expect(make()).toEqual(['w', 'w_1', 'w_1_1']);
  });

  it('returns what build returns, and nests: an inner graph neither sees nor takes the outer names', () => {
    const names = graph(() => {
      const a = variable(1, { name: 'a' }).name;
      const inner = graph(() => [variable(1, { name: 'a' }).name, nameScope('s', () => graph(() => variable(1, { name: 'a' }).name))]);
      return [a, ...inner, variable(1, { name: 'a' }).name];
    });
    // The graph inside nameScope('s', …) starts with no prefix: 'a', not 's/a'.
    expect(names).toEqual(['a', 'a', 'a', 'a_1']);
  });

  it('restores the outer name space and prefix when build throws', () => {
    const names = graph(() => {
      const first = variable(1, { name: 'namesTestA' }).name;
      expect(() => graph(() => { variable(1, { name: 'namesTestB' }); throw new Error('boom'); })).toThrow('boom');
      expect(() => nameScope('p', () => { throw new Error('boom'); })).toThrow('boom');
      // The inner space is gone (namesTestB is free here), the outer one is back (namesTestA is taken), no prefix.
      return [first, variable(1, { name: 'namesTestB' }).name, variable(1, { name: 'namesTestA' }).name];
    });
    expect(names).toEqual(['namesTestA', 'namesTestB', 'namesTestA_1']);
  });

  it('refuses an async build, and restores the outer space', () => {
    graph(() => {
      variable(1, { name: 'c' });
      expect(() => graph(async () => 1)).toThrow(/graph: build returned a Promise: .*must be synchronous/);
      expect(() => nameScope('p', async () => 1)).toThrow(/nameScope: build returned a Promise/);
      expect(variable(1, { name: 'c' }).name).toBe('c_1');
    });
  });

  it('refuses a build that is not a function', () => {
    expect(() => graph(42 as unknown as () => void)).toThrow(/graph: build must be a function, got number/);
  });
});

describe('nameScope', () => {
  it('prefixes every name made inside, nesting, and restores the prefix after', () => {
    const got = graph(() => {
      const x = placeholder([null, 2], { name: 'x' });
      const inner = nameScope('a', () => nameScope('b', () => ({ w: variable(1, { name: 'w' }), s: add(x, 1) })));
      const d = nameScope('encoder', () => layers.denseLayer(x, 3));
      const d2 = nameScope('encoder', () => layers.denseLayer(x, 3));
      return [x.name, inner.w.name, inner.s.name, d.kernel.name, d.bias!.name, d2.kernel.name, variable(1, { name: 'w' }).name];
    });
    expect(got).toEqual(['x', 'a/b/w', 'a/b/add', 'encoder/dense/kernel', 'encoder/dense/bias', 'encoder/dense/kernel_1', 'w']);
  });

  it('keeps cond branch scopes (and the gradient of a cond) working inside graph and nameScope', async () => {
    const s = await newSession();
    const { p, w, y } = graph(() => nameScope('s', () => {
      const p = placeholder([], { dtype: 'bool', name: 'p' });
      const w = variable(3, { name: 'w' });
      return { p, w, y: cond(p, () => mul(w, w), () => neg(w)) };
    }));
    expect([p.name, w.name, y.name]).toEqual(['s/p', 's/w', 's/cond']);
    const [g] = gradients(y, [w]);
    const at = async (pred: boolean) => ((await s.run([y, g!], [[p, pred]])) as HostTensor[]).map((t) => t.data[0]);
    expect(await at(true)).toEqual([9, 6]);
    expect(await at(false)).toEqual([-3, -1]);
  });

  it('starts afresh in a nested graph', () => {
    expect(nameScope('outer', () => graph(() => variable(1, { name: 'v' }).name))).toBe('v');
  });

  it.each([
    ['', /nameScope: name "" is not a valid name/],
    ['a\nb', /nameScope: name "a\\nb" is not a valid name/],
    [7, /nameScope: name "7" is not a valid name/],
    ['a/', /nameScope: prefix "a\/" may not start or end with '\/'/],
    ['/a', /nameScope: prefix "\/a" may not start/],
    ['a//b', /hold '\/\/'/],
  ])('refuses the prefix %j', (prefix, message) => {
    expect(() => nameScope(prefix as string, () => 1)).toThrow(SymflowError);
    expect(() => nameScope(prefix as string, () => 1)).toThrow(message);
  });

  it('a prefix making a variable name too long is refused where the variable is made', () => {
    expect(() => nameScope('p'.repeat(4096), () => variable(1, { name: 'w' }))).toThrow(/variable: name "p{10,}…" is not a valid name/);
  });
});

describe('a session and two builds', () => {
  it('refuses a second build in the session that trained the first, naming the variable and what to do', async () => {
    const s = await newSession();
    const b1 = buildModel(s);
    await b1.train.step(batch(0));
    let error: unknown;
    try {
      buildModel(s);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SymflowError);
    const message = (error as Error).message;
    expect(message).toMatch(/^Session: two different variables are named "(encoder\/dense|out)\/(kernel|bias)": /);
    expect(message).toMatch(/one session per graph build/);
    expect(message).toMatch(/fromJSON\(json, \{variables\}\)/);
  });
});

describe.each(BACKENDS)('a checkpoint of one build restores into another (%s)', (backend) => {
  const k = 3, m = 3;
  const path = join(dir, `model-${backend}.ckpt`);
  let continued: Record<string, string>;

  beforeAll(async () => {
    // Build 1 trains k steps, saves, and trains m more.
    const s1 = await newSession(backend);
    const b1 = buildModel(s1);
    for (let i = 0; i < k; i++) await b1.train.step(batch(i));
    await s1.save(path);
    for (let i = k; i < k + m; i++) await b1.train.step(batch(i));
    continued = await hexByName(s1);
  }, 60_000);

  it('in this process: build 2 in a fresh session restores it and trains on bit-identically', async () => {
    const s2 = await newSession(backend);
    const b2 = buildModel(s2);
    await s2.restore(path);
    for (let i = k; i < k + m; i++) await b2.train.step(batch(i));
    const resumed = await hexByName(s2);
    expect(Object.keys(resumed)).toEqual(MODEL_NAMES);
    expect(resumed).toEqual(continued);
  }, 60_000);

  it('in a child process that built other variables first', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'namesChild.ts'), backend, path, String(k), String(m)], {
      cwd: join(__dirname, '..'), maxBuffer: 64 * 2 ** 20,
    });
    const child = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, string>;
    expect(Object.keys(child)).toEqual(MODEL_NAMES);
    expect(child).toEqual(continued);
  }, 60_000);
});
