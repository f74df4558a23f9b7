// Ops users define (issue 11 §6): a primitive of one's own with its shape rule, gradient rule, kernels per backend
// and a composition as the fallback, run on every backend against a reference, with its gradients checked.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  abs, add, cond, defineOp, div, fromJSON, gradients, greater, matMul, maximum, mean, mul, placeholder, prune, Session, sign,
  simplifyShapes, square, sum, symbolicShapes, SymflowError, type Tensor, toIR, toJSON, variable, where,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, values } from './helpers.js';

/** softsign(x) = x / (1 + |x|): d/dx = 1 / (1 + |x|)², d²/dx² = −2·sign(x) / (1 + |x|)³. */
const softsign = defineOp({
  name: 'softsign',
  infer: ([x]) => {
    if (x!.dtype !== 'float32') throw new SymflowError('softsign', `x must be float32, got ${x!.dtype}`);
    return { shape: x!.shape, dtype: 'float32' };
  },
  grad: (dy, _y, [x]) => [div(dy, square(add(1, abs(x!))))],
  kernels: {
    tfjs: ([x]) => tf.div(x!, tf.add(1, tf.abs(x!))),
    onnx: (b, [x]) => b.node('Softsign', [x!]),
  },
});

/** leakyRelu(x) = x for x > 0, alpha·x otherwise: a TF.js kernel only, so onnx runs its composition. */
const leakyRelu = defineOp({
  name: 'leakyRelu',
  attrs: { alpha: 'number' },
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  grad: (dy, _y, [x], { alpha }) => [() => where(greater(x!, 0), dy, mul(alpha, dy))],
  kernels: { tfjs: ([x], { alpha }) => tf.leakyRelu(x!, alpha) },
  compose: ([x], { alpha }) => maximum(x!, mul(alpha, x!)),
});

/** An op with a cpu kernel and nothing else: every other backend refuses it when a function is compiled. */
const cpuOnly = defineOp({
  name: 'cpuOnlyDouble',
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  kernels: { cpu: ([x]) => tf.mul(x!, 2) },
});

/** Kernels that return the wrong thing. */
const broken = defineOp({
  name: 'brokenKernels',
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  kernels: { tfjs: () => 42 as unknown as tf.Tensor, onnx: () => undefined as unknown as string },
});

const refSoftsign = (v: number) => v / (1 + Math.abs(v));
const points = [-50, -2, -0.5, -0.25, 0.3, 1, 4];

describe.each(BACKENDS)('user ops on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('softsign (own kernels) and leakyRelu (kernel on TF.js, composition on onnx) give the reference values', async () => {
    const x = placeholder([null]);
    const [y, z] = await s.run([softsign([x]), leakyRelu([x], { alpha: 0.1 })], [[x, points]]);
    expectClose(values(y!), points.map(refSoftsign), 1e-6, 1e-7);
    expectClose(values(z!), points.map((v) => (v > 0 ? v : Math.fround(0.1) * v)), 1e-6, 1e-7);
  });

  it('gradients agree with central finite differences, and softsign’s second derivative with its formula', async () => {
    const x = placeholder([points.length]);
    const w = placeholder([points.length]);
    const loss = sum(mul(w, add(softsign([x]), leakyRelu([mul(x, 3)], { alpha: 0.2 }))));
    const [dx] = gradients(loss, [x]);
    const [d2] = gradients(sum(softsign([x])), [x]).map((g) => gradients(sum(g!), [x])[0]!);
    const weights = points.map((_, i) => 1 + i / 4);
    const [g, h] = await s.run([dx!, d2!], [[x, points], [w, weights]]);
    const f = s.function({ inputs: [x, w], outputs: [loss] });
    const eps = 1e-2;
    const fd: number[] = [];
    for (let i = 0; i < points.length; i++) {
      const at = async (d: number) => values((await f([points.map((p, k) => (k === i ? p + d : p)), weights]))[0]!)[0]!;
      fd.push((await at(eps) - (await at(-eps))) / (2 * eps));
    }
    expectClose(values(g!), fd, 2e-2, 2e-3);
    expectClose(values(h!), points.map((v) => (-2 * Math.sign(v)) / (1 + Math.abs(v)) ** 3), 1e-4, 1e-6);
  });

  it('runs inside cond branches (onnx: the composition lowered inside an If)', async () => {
    const x = placeholder([3]);
    const p = placeholder([], { dtype: 'bool' });
    const y = cond(p, () => softsign([x]), () => leakyRelu([x], { alpha: 0.5 }));
    const f = s.function({ inputs: [p, x], outputs: [y] });
    expectClose(values((await f([true, [-1, 0, 3]]))[0]!), [-0.5, 0, 0.75], 1e-6, 1e-7);
    expectClose(values((await f([false, [-1, 0, 3]]))[0]!), [-0.5, 0, 3], 1e-6, 1e-7);
  });

  it('runs inside a training step (a variable through a user op and a matMul)', async () => {
    const v = variable([[0.5], [-1]]);
    const x = placeholder([null, 2]);
    const loss = mean(square(softsign([matMul(x, v)])));
    const [gv] = gradients(loss, [v]);
    const step = s.function({ inputs: [x], outputs: [loss], updates: [[v, add(v, mul(-0.5, gv!))]] });
    const first = values((await step([[[1, 2], [3, -1]]]))[0]!)[0]!;
    const second = values((await step([[[1, 2], [3, -1]]]))[0]!)[0]!;
    const rows = [[1, 2], [3, -1]].map(([a, b]) => a! * 0.5 - b!);
    expectClose([first], [rows.reduce((p, r) => p + refSoftsign(r) ** 2, 0) / 2], 1e-5, 1e-7);
    expect(second).toBeLessThan(first);
  });

  it('an op without a kernel or composition for this backend is refused when the function is compiled', async () => {
    const x = placeholder([2]);
    const y = cpuOnly([x]);
    if (backend === 'cpu') {
      expect(values((await s.run([y], [[x, [1.5, -2]]]))[0]!)).toEqual([3, -4]);
      return;
    }
    const message = backend.startsWith('onnx')
      ? `cpuOnlyDouble: no ONNX lowering for op 'cpuOnlyDouble' (node '${y.name}') on backend ${backend}`
      : `cpuOnlyDouble: no kernel for op 'cpuOnlyDouble' (node '${y.name}') on backend wasm: give it kernels.wasm (or kernels.tfjs), or a compose fallback`;
    expect(() => s.function({ inputs: [x], outputs: [y] })).toThrow(message);
  });

  it('a kernel that does not return a tensor (TF.js) or a value name (onnx) is an error naming the op', async () => {
    const x = placeholder([2]);
    const err = await (async () => s.run([broken([x])], [[x, [1, 2]]]))().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SymflowError);
    expect((err as Error).message).toMatch(backend.startsWith('onnx')
      ? /^brokenKernels: kernels\.onnx must return the name of its result, got undefined/
      : /^brokenKernels: failed at node 'brokenKernels(_\d+)?' on backend (cpu|wasm) .*its TF\.js kernel must return a tf\.Tensor, got number/);
  });

  it('a graph using user ops survives the JSON round trip bit for bit', async () => {
    const x = placeholder([null, 3], { name: 'input' });
    const y = add(softsign([x]), leakyRelu([x], { alpha: -0.25 }));
    const [dx] = gradients(sum(y), [x]);
    const back = fromJSON(JSON.parse(JSON.stringify(toJSON([y, dx!]))));
    const data = [[-3, -0.5, 0], [0.25, 2, 100]];
    const original = await s.run([y, dx!], [[x, data]]);
    const rebuilt = await s.run(back.outputs, [[back.nodes.get(x.name)!, data]]);
    expect(rebuilt.map((t) => bits(t).join(','))).toEqual(original.map((t) => bits(t).join(',')));
  });
});

describe('defining ops', () => {
  it('its shape rule runs at build time and in symbolic shapes', () => {
    expect(() => softsign([placeholder([2], { dtype: 'int32' })])).toThrow('softsign: x must be float32, got int32');
    const x = placeholder([null, 4]);
    const y = softsign([x]);
    expect(y.shape).toEqual([null, 4]);
    const { ir } = toIR([y], []);
    const shapes = symbolicShapes(ir);
    expect(shapes.get(y.id)).toEqual(shapes.get(x.id));
    // The gradient's sumToShape back to x goes: symbolic shapes prove it a no-op through the user op.
    const [dx] = gradients(sum(mul(y, x)), [x]);
    const before = prune(toIR([dx!], []).ir);
    const count = (g: typeof before) => Object.values(g.nodes).filter((n) => n.op === 'sumToShape').length;
    expect(count(before)).toBeGreaterThan(0);
    expect(count(prune(simplifyShapes(before)))).toBe(0);
  });

  it('refuses bad attributes, naming the op', () => {
    const x = placeholder([2]);
    expect(() => (leakyRelu as (xs: Tensor[], a?: object) => Tensor)([x])).toThrow("leakyRelu: attrs: op 'leakyRelu' takes attributes [alpha], got []");
    expect(() => leakyRelu([x], { alpha: 'big' as unknown as number })).toThrow("leakyRelu: attrs: attribute 'alpha' of op 'leakyRelu' must be of kind number, got \"big\"");
    expect(() => leakyRelu([x], { alpha: 0.1, beta: 1 } as { alpha: number })).toThrow(/takes attributes \[alpha\], got \["alpha", "beta"\]/);
  });

  it('refuses a built-in’s name, a name defined twice, and malformed definitions', () => {
    const infer = ([x]: readonly Tensor[]) => ({ shape: x!.shape, dtype: x!.dtype });
    expect(() => defineOp({ name: 'add', infer })).toThrow("defineOp: op 'add' is a built-in op; choose another name");
    expect(() => defineOp({ name: 'relu', infer })).toThrow(/'relu' is a built-in op/);
    expect(() => defineOp({ name: 'softsign', infer })).toThrow("defineOp: op 'softsign' is already defined");
    expect(() => defineOp({ name: 'has space', infer })).toThrow(/name must be a letter then/);
    expect(() => defineOp({ name: 'noRule' } as never)).toThrow("defineOp: 'noRule': infer (the shape rule) must be a function");
    expect(() => defineOp({ name: 'badKind', attrs: { a: 'float' as never }, infer })).toThrow(/attribute 'a' has unknown kind "float"/);
    expect(() => defineOp({ name: 'badBackend', infer, kernels: { gpu: () => undefined } as never })).toThrow("defineOp: 'badBackend': kernels.gpu is not a backend; use tfjs, cpu, wasm, tensorflow, onnx");
    // Nothing refused was registered: the names are still free.
    expect(() => defineOp({ name: 'badKind', infer })).not.toThrow();
  });

  it('a gradient rule must return one entry per input', () => {
    const bad = defineOp({ name: 'badGrad', infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }), grad: (dy) => [dy, dy], kernels: { tfjs: ([x]) => tf.clone(x!) } });
    const x = placeholder([2]);
    expect(() => gradients(sum(bad([x])), [x])).toThrow('badGrad: grad must return one entry per input (1), got 2 entries');
    expect(sign(x).shape).toEqual([2]);
  });
});
