// Optimizers as ODE solvers for gradient flow dp/dt = −∇L(p): SGD is Euler's method; Heun, RK4 and adaptive
// Dormand–Prince take several gradient evaluations (session runs) per step; soft batch accumulates 4 mini-batches
// per update. All train the same small MLP on the same 3-class spiral; the table shows the full-batch loss against
// the number of gradient evaluations spent.
import {
  Session, accumulate, compile, heun, layers, mean, placeholder, rungeKutta, sgd, sparseSoftmaxCrossEntropy, tableaux,
  type AnyOptimizer,
} from '../src/index.js';

const N = 240;
const CLASSES = 3;
const EVALS = 240;
const REPORT = [0, 30, 60, 120, 180, 240];

function spiral(): { xs: number[][]; ys: number[] } {
  const xs: number[][] = [];
  const ys: number[] = [];
  for (let c = 0; c < CLASSES; c++) {
    for (let i = 0; i < N / CLASSES; i++) {
      const r = i / (N / CLASSES);
      const t = (c * 4 + 4 * r) + Math.sin(7 * i + c) * 0.2;
      xs.push([r * Math.sin(t), r * Math.cos(t)]);
      ys.push(c);
    }
  }
  return { xs, ys };
}

const session = await Session.create();
const data = spiral();

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
  let evals = 0;
  let next = 1;
  while (evals < EVALS) {
    const k = (evals / (step.runsPerStep)) % batches;
    const part = batches === 1 ? [data.xs, data.ys] : [data.xs.slice(k * size, (k + 1) * size), data.ys.slice(k * size, (k + 1) * size)];
    const r = await step.step(part);
    evals += r.runs;
    while (next < REPORT.length && evals >= REPORT[next]!) seen.set(REPORT[next++]!, await fullLoss());
  }
  return seen;
}

const runs: [string, AnyOptimizer, number][] = [
  ['sgd (euler)', sgd({ lr: 0.5 }), 1],
  ['heun', heun({ lr: 0.5 }), 1],
  ['rk4', rungeKutta({ tableau: tableaux.rk4, lr: 0.5 }), 1],
  ['rk45 adaptive', rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.5, adaptive: { tol: 1e-3 } }), 1],
  ['soft batch 4×60', accumulate(sgd({ lr: 0.5 }), { steps: 4 }), 4],
];

const table: string[][] = [];
for (const [label, opt, batches] of runs) {
  const seen = await train(label.split(' ')[0]!, opt, batches);
  table.push([label, ...REPORT.map((e) => (seen.has(e) ? seen.get(e)!.toFixed(4) : '—'))]);
}
console.log(`backend ${session.backend}; full-batch loss after n gradient evaluations (spiral, ${N} points, MLP 2-32-3)\n`);
const header = ['method', ...REPORT.map((e) => `n=${e}`)];
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const row of table) console.log(line(row));
session.dispose();
