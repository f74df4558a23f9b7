import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Session, adam, add, cond, compile, greater, variable, dropout, exportOnnx, heun, layers, mean, placeholder, sgd, sparseSoftmaxCrossEntropy, sub, mul,
  variablesOf, type AnyOptimizer, type HostTensor, type OnnxExportSidecar, type OnnxExportSource, type SessionFunction, type TrainStep,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'symflow-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const xs = [[0.1, 0.2, 0.3], [1, -1, 0.5], [0, 0.3, -0.2], [-0.7, 0.4, 0.9]];
const ys = [0, 1, 1, 0];
const batchTensors = () => [new ort.Tensor('float32', Float32Array.from(xs.flat()), [4, 3]), new ort.Tensor('int32', Int32Array.from(ys), [4])];

async function mlp(opts: Parameters<typeof Session.create>[0] = {}) {
  // One intra-op thread on both sides: the comparison is bit for bit.
  const s = await Session.create({ backend: 'onnx', threads: 1, ...opts });
  const x = placeholder([null, 3], { name: 'x' });
  const y = placeholder([null], { dtype: 'int32', name: 'y' });
  const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(layers.dense(x, 5, { activation: 'tanh', seed: 5 }), 2, { seed: 6 }), y));
  return { s, x, y, loss };
}

const hex = (t: { data: unknown }) => Buffer.from((t.data as Float32Array).buffer, (t.data as Float32Array).byteOffset, (t.data as Float32Array).byteLength).toString('hex');

/** Runs the exported model from the session's current state as the sidecar says; returns outputs and new values. */
async function runExported(s: Session, path: string, car: OnnxExportSidecar, batch: ort.Tensor[]) {
  const byName = new Map(s.variables.map((v) => [v.name, v]));
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of car.inputs) {
    if (inp.kind === 'batch') feeds[inp.name] = batch[inp.index]!;
    else if (inp.kind === 'variable') {
      const v = await s.getValue(byName.get(inp.variable)!);
      feeds[inp.name] = new ort.Tensor(v.dtype, v.data, v.shape);
    } else throw new Error(`unexpected random input ${inp.name}`);
  }
  const model = await ort.InferenceSession.create(readFileSync(path), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  const out = await model.run(feeds);
  await model.release();
  const valueOf = (src: OnnxExportSource): { data: unknown; dims: readonly number[] } => {
    if ('output' in src) return out[src.output]!;
    if ('input' in src) return feeds[src.input]!;
    return { data: Float32Array.from(src.constant), dims: src.shape };
  };
  return { feeds, outputs: car.functionOutputs.map((o) => valueOf(o.from)), updates: car.updates.map((u) => ({ variable: u.variable, value: valueOf(u.from) })) };
}

const steps: [string, () => AnyOptimizer][] = [
  ['sgd', () => sgd({ lr: 0.1, momentum: 0.9 })],
  ['adam', () => adam({ lr: 0.01 })],
  ['heun fused', () => heun({ lr: 0.1, fused: true })],
];

describe('exportOnnx', () => {
  it.each(steps)('%s step: the exported model run by a fresh onnxruntime session equals symflow\'s step bit for bit', async (name, make) => {
    const { s, x, y, loss } = await mlp();
    const train: TrainStep = compile(make(), s, { loss, inputs: [x, y] });
    await train.step([xs, ys]); // a state that is not the initial one (momentum, adam's moments, the step counter)
    const path = join(dir, `${name.replace(' ', '_')}.onnx`);
    const car = await exportOnnx(train, path);
    expect(JSON.parse(readFileSync(`${path}.json`, 'utf8'))).toEqual(car);
    expect(car.model).toBe(`${name.replace(' ', '_')}.onnx`);
    // The sidecar lists every variable the step reads and every one it changes: all the session's variables here.
    const all = s.variables.map((v) => v.name).sort();
    expect(car.inputs.filter((i) => i.kind === 'variable').map((i) => (i as { variable: string }).variable).sort()).toEqual(all);
    const updated = [...train.params, ...train.stateVariables].map((v) => v.name);
    expect(car.updates.map((u) => u.variable).sort()).toEqual(expect.arrayContaining(train.params.map((v) => v.name)));
    for (const u of car.updates) expect(all).toContain(u.variable);
    expect(updated.length).toBeGreaterThan(0);
    expect(car.inputs.filter((i) => i.kind === 'batch').map((i) => [(i as { tensor: string }).tensor, (i as { index: number }).index])).toEqual([[x.name, 0], [y.name, 1]]);
    // A TrainStep compiled with the default onNonFinite ('error') is guarded: its last output says whether to apply.
    expect(car.guard).toBeDefined();
    expect(car.functionOutputs[car.guard!.index]!.guard).toBe(true);
    expect(car.functionOutputs[0]!.tensor).toBe(loss.name);

    const mine = await runExported(s, path, car, batchTensors());
    const before = new Map(await Promise.all(s.variables.map(async (v) => [v.name, await s.getValue(v)] as const)));
    const result = await train.step([xs, ys]);
    expect((mine.outputs[car.guard!.index]!.data as Uint8Array)[0]).toBe(1);
    expect(hex({ data: Float32Array.of(result.loss) })).toBe(hex(mine.outputs[0]!));
    let changed = 0;
    for (const { variable, value } of mine.updates) {
      const v = s.variables.find((w) => w.name === variable)!;
      const now = await s.getValue(v);
      const old = before.get(variable)!;
      // An empty output for a non-empty variable: unchanged (a cond branch kept it).
      const expected = (value.data as Float32Array).length === 0 && old.data.length > 0 ? old : value;
      expect(hex(now), variable).toBe(hex(expected));
      if (hex(now) !== hex(old)) changed++;
    }
    expect(changed).toBeGreaterThanOrEqual(train.params.length); // the step really moved the parameters
    await s.dispose();
  });

  it('a plain session function exports too (no guard); fed values and variables passed through are named', async () => {
    const { s, x, y, loss } = await mlp();
    const params = variablesOf(loss);
    const f: SessionFunction = s.function({ inputs: [x, y], outputs: [loss, x], updates: params.map((p) => [p, sub(p, mul(0.5, p))] as const) as never });
    const path = join(dir, 'plain.onnx');
    const car = await exportOnnx(f, path);
    expect(car.guard).toBeUndefined();
    expect(car.functionOutputs.map((o) => o.tensor)).toEqual([loss.name, x.name]);
    // Output 1 is the fed x itself: the model does not compute it, the sidecar says which input it is.
    const xIn = car.inputs.find((i) => i.kind === 'batch' && i.index === 0)!;
    expect(car.functionOutputs[1]!.from).toEqual({ input: xIn.name });
    expect(car.updates.map((u) => u.variable).sort()).toEqual(params.map((p) => p.name).sort());
    const mine = await runExported(s, path, car, batchTensors());
    const [l] = await f([xs, ys]);
    expect(hex(l!)).toBe(hex(mine.outputs[0]!));
    for (const { variable, value } of mine.updates) expect(hex(await s.getValue(s.variables.find((v) => v.name === variable)!))).toBe(hex(value));
    await s.dispose();
  });

  // A function with a cond of updates: an ONNX If; the branch that leaves a variable as it is returns the empty marker.
  async function condFunction() {
    const { s, x, y, loss } = await mlp();
    const params = variablesOf(loss);
    const count = variable(0, { name: 'count' });
    const upd = cond(greater(loss, 100), () => [[count, add(count, 1)]], () => params.map((p) => [p, mul(p, 0.5)] as const));
    return { s, loss, f: s.function({ inputs: [x, y], outputs: [loss], updates: [upd] }), params, count };
  }

  it('a cond of updates (ONNX If): the untaken side\'s variables come back empty (unchanged), the rest bit for bit', async () => {
    const { s, f, params, count } = await condFunction();
    const path = join(dir, 'cond.onnx');
    const car = await exportOnnx(f, path);
    expect(car.updates.map((u) => u.variable).sort()).toEqual([...params.map((p) => p.name), count.name].sort());
    const mine = await runExported(s, path, car, batchTensors());
    const before = new Map(await Promise.all(s.variables.map(async (v) => [v.name, await s.getValue(v)] as const)));
    const [l] = await f([xs, ys]);
    expect(hex(l!)).toBe(hex(mine.outputs[0]!));
    const empty = mine.updates.filter((u) => (u.value.data as Float32Array).length === 0).map((u) => u.variable);
    expect(empty).toEqual([count.name]); // loss < 100: the else branch ran, count kept
    for (const { variable, value } of mine.updates) {
      const now = await s.getValue(s.variables.find((v) => v.name === variable)!);
      expect(hex(now), variable).toBe(hex(empty.includes(variable) ? before.get(variable)! : value));
      // Halved (a zero-initialised bias stays zero).
      if (!empty.includes(variable) && Array.from(before.get(variable)!.data).some((v) => v !== 0)) expect(hex(now)).not.toBe(hex(before.get(variable)!));
    }
    await s.dispose();
  });

  it('random sources become inputs the caller draws, described in the sidecar', async () => {
    const s = await Session.create({ backend: 'onnx' });
    const x = placeholder([null, 4], { name: 'x' });
    const out = dropout(x, 0.25, { seed: 3 });
    const f = s.function({ inputs: [x], outputs: [out], training: true });
    const path = join(dir, 'dropout.onnx');
    const car = await exportOnnx(f, path);
    const rnd = car.inputs.filter((i) => i.kind === 'random');
    expect(rnd).toHaveLength(1);
    expect(rnd[0]).toMatchObject({ kind: 'random', dist: 'mask', dtype: 'float32', shape: [{ input: 0, axis: 0 }, 4] });
    // Feeding a mask drawn by hand: the model multiplies by it.
    const model = await ort.InferenceSession.create(readFileSync(path));
    const xin = car.inputs.find((i) => i.kind === 'batch')!.name;
    const mask = Float32Array.of(0, 2, 0, 2, 2, 0, 2, 0);
    const r = await model.run({ [xin]: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), [2, 4]), [rnd[0]!.name]: new ort.Tensor('float32', mask, [2, 4]) });
    const o = car.functionOutputs[0]!.from as { output: string };
    expect(Array.from(r[o.output]!.data as Float32Array)).toEqual([0, 4, 0, 8, 10, 0, 14, 0]);
    await model.release();
    await s.dispose();
  });

  it('refuses clearly: a multi-run step, a non-onnx session, a function that computes nothing, a bad target or path', async () => {
    const { s, x, y, loss } = await mlp();
    const multi = compile(heun({ lr: 0.1 }), s, { loss, inputs: [x, y] });
    await expect(exportOnnx(multi, join(dir, 'heun.onnx'))).rejects.toThrow(/exportOnnx: the TrainStep of heun runs 2 session functions per step; only a step of one run exports as one model/);
    await expect(exportOnnx(s.function({ inputs: [x], outputs: [x] }), join(dir, 'id.onnx'))).rejects.toThrow(/exportOnnx: .*computes nothing/);
    await expect(exportOnnx((() => 1) as never, join(dir, 'f.onnx'))).rejects.toThrow(/exportOnnx: target must be a SessionFunction .* or a TrainStep/);
    await expect(exportOnnx(s.function({ inputs: [x, y], outputs: [loss] }), '')).rejects.toThrow(/exportOnnx: path must be a non-empty string/);
    await s.dispose();
    const c = await Session.create({ backend: 'cpu' });
    const xc = placeholder([null, 3]);
    await expect(exportOnnx(c.function({ inputs: [xc], outputs: [mul(xc, 2)] }), join(dir, 'cpu.onnx'))).rejects.toThrow(/exportOnnx: .*not compiled to an ONNX model: create its session with \{ backend: 'onnx' \}/);
    await c.dispose();
  });

  it('the k-step model (steps: true) run by a fresh onnxruntime session equals train.steps bit for bit, and five single steps', async () => {
    const k = 5;
    const batches = Array.from({ length: k }, (_, i) => [xs.map((r) => r.map((v) => v * (1 + i / 10))), ys]);
    const m = await mlp();
    // One graph, two sessions: the same variables in both.
    const run = async (s: Session) => {
      const train = compile(adam({ lr: 0.01 }), s, { loss: m.loss, inputs: [m.x, m.y] });
      await train.step([xs, ys]);
      return { s, train };
    };
    const a = await run(m.s);
    const path = join(dir, 'steps.onnx');
    const car = await exportOnnx(a.train, path, { steps: true });
    expect(car.format).toBe('symflow-onnx-steps/1');
    expect(JSON.parse(readFileSync(`${path}.json`, 'utf8'))).toEqual(car);
    expect(car.inputs[0]).toEqual({ name: 'trip', kind: 'steps', dtype: 'int64' });
    // Feed the stacked batches and the state, as the sidecar says.
    const byName = new Map(a.s.variables.map((v) => [v.name, v]));
    const feeds: Record<string, ort.Tensor> = {};
    for (const inp of car.inputs) {
      if (inp.kind === 'steps') feeds[inp.name] = new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), []);
      else if (inp.kind === 'batch') {
        const col = batches.map((b) => b[inp.index]!.flat() as number[]).flat();
        feeds[inp.name] = inp.dtype === 'int32' ? new ort.Tensor('int32', Int32Array.from(col), [k, 4]) : new ort.Tensor('float32', Float32Array.from(col), [k, 4, 3]);
      } else if (inp.kind === 'variable') {
        const v = await a.s.getValue(byName.get(inp.variable)!);
        feeds[inp.name] = new ort.Tensor(v.dtype, v.data, v.shape);
      } else throw new Error(`unexpected input ${inp.name}`);
    }
    const model = await ort.InferenceSession.create(readFileSync(path), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const out = await model.run(feeds);
    await model.release();
    const guard = out[car.guard!.output]!;
    expect(Array.from(guard.data as Uint8Array)).toEqual([1, 1, 1, 1, 1]);
    // symflow's own steps from the same state, and five single steps.
    const results = await a.train.steps(batches);
    const b = await run(await Session.create({ backend: 'onnx', threads: 1 }));
    for (const batch of batches) await b.train.step(batch);
    const losses = out[(car.functionOutputs[0]!.from as { output: string }).output]!;
    expect(Array.from(losses.data as Float32Array)).toEqual(results.map((r) => r.loss));
    // b's optimizer state is its own (a second compile makes its own slots): matched by position.
    const aVars = [...a.train.params, ...a.train.stateVariables], bVars = [...b.train.params, ...b.train.stateVariables];
    for (const u of car.updates) {
      const v = byName.get(u.variable)!;
      const w = bVars[aVars.indexOf(v)]!;
      const exported = hex(out[(u.from as { output: string }).output]!);
      expect(exported, u.variable).toBe(hex(await a.s.getValue(v)));
      expect(exported, u.variable).toBe(hex(await b.s.getValue(w)));
    }
    await expect(exportOnnx(a.train, path, { steps: 'yes' as never })).rejects.toThrow(/^exportOnnx: opts\.steps must be a boolean, got string/);
    await a.s.dispose();
    await b.s.dispose();
  });

  // The ONNX checker, when python3 has the onnx module (Debian's python3-onnx is not installed on every host).
  const python = ['/usr/bin/python3', 'python3'].find((p) => {
    try {
      execFileSync(p, ['-c', 'import onnx'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  const checkerTitle = python === undefined
    ? 'the exported model passes onnx.checker.check_model — SKIPPED: neither /usr/bin/python3 nor python3 on PATH can `import onnx` (pip install onnx to run it)'
    : `the exported model passes onnx.checker.check_model (${python})`;
  it.skipIf(python === undefined)(checkerTitle, async () => {
    const { s, x, y, loss } = await mlp();
    const train = compile(adam({ lr: 0.01 }), s, { loss, inputs: [x, y] });
    const path = join(dir, 'checked.onnx');
    await exportOnnx(train, path);
    const withIf = await condFunction();
    const condPath = join(dir, 'checkedCond.onnx');
    await exportOnnx(withIf.f, condPath);
    // The k-step model: a Loop whose body holds the step (and its Ifs).
    const stepsPath = join(dir, 'checkedSteps.onnx');
    await exportOnnx(train, stepsPath, { steps: true });
    for (const p of [path, condPath, stepsPath]) {
      const out = execFileSync(python!, ['-c', 'import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(sorted({n.op_type for n in m.graph.node}))', p], { encoding: 'utf8' });
      if (p === stepsPath) expect(out).toContain("'Loop'");
      else expect(out).toMatch(/MatMul|Gemm/);
      if (p === condPath) expect(out).toContain("'If'");
    }
    await s.dispose();
    await withIf.s.dispose();
  });
});

describe('executionProviders', () => {
  it("['cpu'] gives the same step as the default, bit for bit", async () => {
    const results: string[][] = [];
    for (const opts of [{}, { executionProviders: ['cpu'] }]) {
      const { s, x, y, loss } = await mlp(opts);
      const train = compile(adam({ lr: 0.01 }), s, { loss, inputs: [x, y] });
      const r = await train.step([xs, ys]);
      await train.step([xs, ys]);
      const vals: HostTensor[] = await Promise.all(s.variables.map((v) => s.getValue(v)));
      results.push([String(r.loss), ...vals.map(hex)]);
      await s.dispose();
    }
    expect(results[1]).toEqual(results[0]);
  });

  it('the list reaches onnxruntime: a provider it does not have is its refusal, at the first call', async () => {
    const s = await Session.create({ backend: 'onnx', executionProviders: ['nosuchprovider'] });
    const x = placeholder([2]);
    const f = s.function({ inputs: [x], outputs: [mul(x, 2)] });
    await expect(f([[1, 2]])).rejects.toThrow(/onnxruntime refused the compiled model: .*nosuchprovider/);
    await s.dispose();
  });

  it('a non-array (or an empty array, or a bad entry) is refused, naming the option', async () => {
    await expect(Session.create({ backend: 'onnx', executionProviders: 'cuda' as never })).rejects.toThrow(/Session\.create: executionProviders must be a non-empty array .*; got string/);
    await expect(Session.create({ backend: 'onnx', executionProviders: [] })).rejects.toThrow(/Session\.create: executionProviders .*got an empty array/);
    await expect(Session.create({ backend: 'onnx', executionProviders: [3 as never] })).rejects.toThrow(/Session\.create: executionProviders .*executionProviders\[0\] is 3/);
  });
});
