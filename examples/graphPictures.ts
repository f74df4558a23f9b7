// Pictures of graphs and plans: a Heun training step's graph and its plan, and a soft batch's plan (with its lazy
// cond), as SVG (Graphviz as WebAssembly: npm install @viz-js/viz) in out/, and as PNG when @resvg/resvg-js is
// installed. `toDot` / `planToDot` give the DOT text itself, for `dot -Tsvg` or any Graphviz viewer.
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  Session, accumulate, add, compile, functionToSvg, gradients, graph, layers, mean, mul, placeholder, planToSvg, sgd, square, sub, substitute,
  variablesOf, type FunctionSpec, type SessionFunction, type Variable,
} from '../src/index.js';

const session = await Session.create({ backend: 'cpu' });
mkdirSync('out', { recursive: true });

// A small MLP's loss (2 inputs, 3 hidden relu units, 1 output), trained below by two functions of one session.
const { x, y, loss } = graph(() => {
  const x = placeholder([null, 2], { name: 'x' });
  const y = placeholder([null, 1], { name: 'y' });
  const h = layers.dense(x, 3, { activation: 'relu', seed: 1, name: 'hidden' });
  return { x, y, loss: mean(square(sub(layers.dense(h, 1, { seed: 2, name: 'out' }), y))) };
});

// Heun's method as one session function, by hand: the gradient g at p, the gradient g̃ at the Euler point
// p̃ = p − lr·g (the gradient graph substituted, the parameters never written), and p ← p − lr/2·(g + g̃).
const heunStep = graph(() => {
  const params = variablesOf(loss);
  const lr = 0.1;
  const g = gradients(loss, params);
  const euler = new Map(params.map((p, i) => [p, sub(p, mul(lr, g[i]!))] as const));
  const gEuler = substitute(g, euler);
  const updates = params.map((p, i): [Variable, ReturnType<typeof sub>] => [p, sub(p, mul(lr / 2, add(g[i]!, gEuler[i]!)))]);
  return session.function({ inputs: [x, y], outputs: [loss], updates });
});

// A soft batch of 4: accumulate(sgd) compiles one function whose cond applies the mean gradient every 4th call.
// The functions a TrainStep compiles are internal to it; this records them as `compile` makes them.
const recorded: SessionFunction[] = [];
const realFunction = session.function.bind(session);
session.function = (spec: FunctionSpec) => {
  const f = realFunction(spec);
  recorded.push(f);
  return f;
};
const softBatch = compile(accumulate(sgd({ lr: 0.1 }), { steps: 4 }), session, { loss, inputs: [x, y] });
session.function = realFunction;

// The soft batch trains as drawn: 8 calls, two applied steps.
const xs = [[0.5, -1], [1, 2], [-0.5, 0.25]], ys = [[1], [0], [-1]];
for (let i = 0; i < 8; i++) await softBatch.step([xs, ys]);
const [heunLoss] = await heunStep([xs, ys]);

const pictures: [string, Promise<string>][] = [
  ['heun', functionToSvg(heunStep, { title: "Heun's method, one session function: g(p), g(p − lr·g), p ← p − lr/2·(g + g̃)" })],
  ['heun-plan', planToSvg(heunStep)],
  ['softbatch-plan', planToSvg(recorded[0]!, { title: 'accumulate(sgd, {steps: 4}): the gradient on every call; the mean and sgd only on the 4th' })],
];
const resvg = await import('@resvg/resvg-js').catch(() => undefined);
for (const [name, svg] of pictures) {
  const text = await svg;
  writeFileSync(`out/${name}.svg`, text);
  if (resvg) writeFileSync(`out/${name}.png`, new resvg.Resvg(text, { background: 'white', fitTo: { mode: 'zoom', value: 1.5 } }).render().asPng());
  console.log(`out/${name}.svg${resvg ? ` and out/${name}.png` : ''}: ${(text.length / 1024).toFixed(0)} kB`);
}
console.log(`heun loss ${heunLoss!.data[0]!.toFixed(4)}; soft batch: ${recorded[0]!.kernelCount} kernels in its one function`);
await session.dispose();
