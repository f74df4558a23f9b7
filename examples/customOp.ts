// Your own op with your own gradient: softplus(x) = log(1 + eˣ), written so it never overflows, with the exact
// gradient sigmoid(x) (autodiff of the naive formula gives Inf / Inf = NaN for x ≳ 89). Checked against central
// finite differences, with its second derivative, on every backend this machine has.
import { abs, add, customGradient, exp, gradients, log, maximum, mul, neg, placeholder, Session, sigmoid, sum, type Tensor } from '../src/index.js';

const softplus = customGradient(
  (x: Tensor) => add(maximum(x, 0), log(add(1, exp(neg(abs(x)))))),
  ([x], _y, dy) => [mul(dy, sigmoid(x!))], // built from public ops, so gradients of it work too
  'softplus',
);
const naive = (x: Tensor) => log(add(1, exp(x)));

const points = [-5, -0.5, 0, 1.5, 4, 100];
const x = placeholder([points.length], { name: 'x' });
const loss = sum(softplus(x));
const dx = gradients(loss, x);
const d2x = gradients(dx, x); // σ(x)(1 − σ(x))
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
  const f = session.function({ inputs: [x], outputs: [loss] });
  const [g, g2, gn] = await session.run([dx, d2x, dNaive], [[x, points]]);
  // Central differences of the loss, one point at a time (the loss is a sum, so ∂/∂x_i is one bump of x_i).
  const eps = 1e-2;
  const fd: number[] = [];
  for (let i = 0; i < points.length; i++) {
    const at = async (d: number) => (await f([points.map((p, k) => (k === i ? p + d : p))]))[0]!.data[0]!;
    fd.push((await at(eps) - (await at(-eps))) / (2 * eps));
  }
  const worst = Math.max(...fd.map((e, i) => Math.abs(g!.data[i]! - e) / Math.max(1, Math.abs(e))));
  if (!(worst < 1e-2)) process.exitCode = 1;
  const line = (label: string, text: string) => console.log(`${(label === 'd/dx' ? `${backend}:` : '').padEnd(6)}${label.padEnd(16)}${text}`);
  line('d/dx', fmt(g!.data));
  line('finite diff.', `${fmt(fd)}  (worst relative error ${worst.toExponential(1)}: ${worst < 1e-2 ? 'ok' : 'FAILED'})`);
  line('d²/dx²', fmt(g2!.data));
  line('naive autodiff', fmt(gn!.data));
  session.dispose();
}
