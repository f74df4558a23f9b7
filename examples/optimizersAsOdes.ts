// Optimizers as ODE solvers for gradient flow dp/dt = −∇L(p): SGD is Euler's method; Heun, RK4 and adaptive
// Dormand–Prince take several gradient evaluations (session runs) per step; soft batch accumulates 4 mini-batches
// per update. All train the same small MLP on the same 3-class spiral; the table shows the full-batch loss against
// the number of gradient evaluations spent, and out/optimizersAsOdes.svg and .png plot the whole curves.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import {
  Session, accumulate, compile, heun, layers, mean, placeholder, rungeKutta, sgd, sparseSoftmaxCrossEntropy, tableaux,
  type AnyOptimizer,
} from '../src/index.js';

const N = 240;
const CLASSES = 3;
const EVALS = 400;
const REPORT = [0, 25, 50, 100, 200, 400];

function spiral(): { xs: number[][]; ys: number[] } {
  const xs: number[][] = [];
  const ys: number[] = [];
  for (let c = 0; c < CLASSES; c++) {
    for (let i = 0; i < N / CLASSES; i++) {
      const r = i / (N / CLASSES);
      const t = (c * 2 * Math.PI) / CLASSES + 3 * r + Math.sin(7 * i + c) * 0.15;
      xs.push([r * Math.sin(t), r * Math.cos(t)]);
      ys.push(c);
    }
  }
  return { xs, ys };
}

const session = await Session.create();
const data = spiral();

const curves: { method: string; evaluations: number; loss: number }[] = [];

async function train(label: string, optimizer: AnyOptimizer, batches: number): Promise<Map<number, number>> {
  const x = placeholder([null, 2]);
  const y = placeholder([null], { dtype: 'int32' });
  const h = layers.dense(x, 32, { activation: 'tanh', seed: 11, name: `${label}/h` });
  const logits = layers.dense(h, CLASSES, { seed: 12, name: `${label}/out` });
  const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
  const step = compile(optimizer, session, { loss, inputs: [x, y] });
  const fullLoss = async () => (await session.run(loss, [[x, data.xs], [y, data.ys]])).data[0]!;
  const size = N / batches;
  const seen = new Map<number, number>([[0, await fullLoss()]]);
  curves.push({ method: label, evaluations: 0, loss: seen.get(0)! });
  let evals = 0;
  let next = 1;
  while (evals < EVALS) {
    const k = (evals / (step.runsPerStep)) % batches;
    const part = batches === 1 ? [data.xs, data.ys] : [data.xs.slice(k * size, (k + 1) * size), data.ys.slice(k * size, (k + 1) * size)];
    const r = await step.step(part);
    evals += r.runs;
    curves.push({ method: label, evaluations: evals, loss: await fullLoss() });
    while (next < REPORT.length && evals >= REPORT[next]!) seen.set(REPORT[next++]!, await fullLoss());
  }
  return seen;
}

const runs: [string, AnyOptimizer, number][] = [
  ['sgd (euler)', sgd({ lr: 1 }), 1],
  ['heun', heun({ lr: 1 }), 1],
  ['rk4', rungeKutta({ tableau: tableaux.rk4, lr: 1 }), 1],
  ['rk45 adaptive', rungeKutta({ tableau: tableaux.dormandPrince, lr: 1, adaptive: { tol: 1e-3 } }), 1],
  ['soft batch 4×60', accumulate(sgd({ lr: 1 }), { steps: 4 }), 4],
];

const table: string[][] = [];
for (const [label, opt, batches] of runs) {
  const seen = await train(label, opt, batches);
  table.push([label, ...REPORT.map((e) => (seen.has(e) ? seen.get(e)!.toFixed(4) : '—'))]);
}
console.log(`backend ${session.backend}; full-batch loss after n gradient evaluations (spiral, ${N} points, MLP 2-32-3)\n`);
const header = ['method', ...REPORT.map((e) => `n=${e}`)];
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const row of table) console.log(line(row));

// The plot: vega-lite compiles to vega, which renders SVG headless; resvg turns the SVG into a PNG.
const spec: vegaLite.TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: 'Optimizers as ODE solvers: loss against gradient evaluations',
  width: 560, height: 320, background: 'white',
  data: { values: curves },
  mark: { type: 'line', strokeWidth: 2 },
  encoding: {
    x: { field: 'evaluations', type: 'quantitative', title: 'gradient evaluations' },
    y: { field: 'loss', type: 'quantitative', title: 'full-batch loss', scale: { zero: false } },
    color: { field: 'method', type: 'nominal', title: 'method' },
  },
};
const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
const svg = await view.toSVG();
view.finalize();
mkdirSync('out', { recursive: true });
writeFileSync('out/optimizersAsOdes.svg', svg);
writeFileSync('out/optimizersAsOdes.png', new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true } }).render().asPng());
console.log('\nwrote out/optimizersAsOdes.svg and out/optimizersAsOdes.png');
session.dispose();
