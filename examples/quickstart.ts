// Linear regression in symflow: build a graph, take symbolic gradients, train with session.function updates.
import { Session, add, gradients, initializers, matMul, mean, mul, placeholder, square, sub, variable } from '../src/index.js';

const session = await Session.create(); // 'auto': tensorflow if tfjs-node is installed, else onnx, wasm, cpu

const x = placeholder([null, 2], { name: 'x' });
const y = placeholder([null, 1], { name: 'y' });
const w = variable(initializers.zeros([2, 1]), { name: 'w' });
const b = variable(0, { name: 'b' });
const loss = mean(square(sub(add(matMul(x, w), b), y)));
const [dw, db] = gradients(loss, [w, b]);

// One call = one run: the loss is measured before the step, then both updates apply together.
const lr = 0.1;
const train = session.function({ inputs: [x, y], outputs: [loss], updates: [[w, sub(w, mul(lr, dw))], [b, sub(b, mul(lr, db))]] });

const xs = Array.from({ length: 64 }, (_, i) => [Math.sin(i), Math.cos(3 * i)]);
const ys = xs.map(([u, v]) => [3 * u! - 2 * v! + 0.5]); // the truth: w = [3, -2], b = 0.5
for (let epoch = 0; epoch <= 300; epoch++) {
  const [l] = await train([xs, ys]);
  if (epoch % 50 === 0) console.log(`epoch ${String(epoch).padStart(3)}  loss ${l!.data[0]!.toExponential(3)}`);
}
console.log(`backend ${session.backend}: w = [${Array.from((await session.getValue(w)).data, (v) => v.toFixed(4))}], b = ${(await session.getValue(b)).data[0]!.toFixed(4)}`);
session.dispose();
