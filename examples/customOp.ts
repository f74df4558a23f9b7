// Your own op with your own gradient, two ways, each checked against central finite differences (with its second
// derivative) on every backend this machine has:
// - customGradient: softplus(x) = log(1 + eˣ), a composite written so it never overflows, with the exact gradient
//   sigmoid(x) (autodiff of the naive formula gives Inf / Inf = NaN for x ≳ 89);
// - defineOp: softsign(x) = x / (1 + |x|), a primitive of its own with a TF.js kernel, an ONNX lowering and a
//   composition from public ops as the fallback, a shape rule and a gradient rule, and a JSON round trip.
import * as tf from '@tensorflow/tfjs-core';
import {
  abs, add, customGradient, defineOp, div, exp, fromJSON, gradients, log, maximum, mul, neg, placeholder, Session, sigmoid, square, sum,
  type Tensor, toJSON,
} from '../src/index.js';

const softplus = customGradient(
  (x: Tensor) => add(maximum(x, 0), log(add(1, exp(neg(abs(x)))))),
  ([x], _y, dy) => [mul(dy, sigmoid(x!))], // built from public ops, so gradients of it work too
  'softplus',
);
const naive = (x: Tensor) => log(add(1, exp(x)));

const softsign = defineOp({
  name: 'softsign',
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  grad: (dy, _y, [x]) => [div(dy, square(add(1, abs(x!))))], // 1 / (1 + |x|)²
  kernels: {
    tfjs: ([x]) => tf.div(x!, tf.add(1, tf.abs(x!))), // cpu, wasm and tensorflow
    onnx: (b, [x]) => b.node('Softsign', [x!]),
  },
  compose: ([x]) => div(x!, add(1, abs(x!))), // where a backend has no kernel
});

// Away from 0, where softsign has a kink (|x|) that central differences blur.
const points = [-5, -0.5, 0.25, 1.5, 4, 100];
const x = placeholder([points.length], { name: 'x' });
const ops: [string, Tensor][] = [['softplus', sum(softplus(x))], ['softsign', sum(softsign([x]))]];
// softsign's graph goes through JSON and back: its op is found by name, its gradient rule with it.
const json = JSON.stringify(toJSON([ops[1]![1]]));
const { outputs: [reread], nodes } = fromJSON(json);
ops.push(['softsign (JSON)', reread!]);
const dNaive = gradients(sum(naive(x)), x);

const fmt = (v: ArrayLike<number>) => `[${Array.from(v, (e) => e.toPrecision(5)).join(', ')}]`;
for (const backend of ['cpu', 'wasm', 'onnx'] as const) {
  let session: Session;
  try {
    session = await Session.create({ backend });
  } catch (e) {
    console.log(`${backend}: not available here (${(e as Error).message.split('\n')[0]})`);
    continue;
  }
  for (const [name, loss] of ops) {
    const input = name.endsWith('(JSON)') ? nodes.get('x')! : x;
    const dx = gradients(loss, input);
    const d2x = gradients(dx, input);
    const f = session.function({ inputs: [input], outputs: [loss] });
    const [g, g2] = await session.run([dx, d2x], [[input, points]]);
    // Central differences of the loss, one point at a time (the loss is a sum, so ∂/∂x_i is one bump of x_i).
    const eps = 1e-2;
    const fd: number[] = [];
    for (let i = 0; i < points.length; i++) {
      const at = async (d: number) => (await f([points.map((p, k) => (k === i ? p + d : p))]))[0]!.data[0]!;
      fd.push((await at(eps) - (await at(-eps))) / (2 * eps));
    }
    const worst = Math.max(...fd.map((e, i) => Math.abs(g!.data[i]! - e) / Math.max(1, Math.abs(e))));
    if (!(worst < 1e-2)) process.exitCode = 1;
    console.log(`${backend}: ${name}`);
    console.log(`  d/dx          ${fmt(g!.data)}`);
    console.log(`  finite diff.  ${fmt(fd)}  (worst relative error ${worst.toExponential(1)}: ${worst < 1e-2 ? 'ok' : 'FAILED'})`);
    console.log(`  d²/dx²        ${fmt(g2!.data)}`);
  }
  const [gn] = await session.run([dNaive], [[x, points]]);
  console.log(`  naive softplus autodiff ${fmt(gn!.data)}`);
  session.dispose();
}
