// The optimizers-as-ODE-solvers comparison (examples/optimizersAsOdes.ts) live on the training dashboard: SGD
// (Euler), Heun, RK4, adaptive Dormand–Prince and a soft batch of 4 train the same MLP on the same spiral side by
// side, each a `fit` stream, with the x axis in session runs (gradient evaluations). Prints the page's URL; at the
// end takes a screenshot into out/dashboard.png with playwright-core and chromium (CHROMIUM=/path, else `chromium`
// on the PATH) and exits. KEEP=1 keeps the page up after training until Ctrl-C.
// `npm run example:dashboard`
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import {
  Session, accumulate, argMax, cast, compile, dashboard, equal, fit, heun, layers, mean, placeholder, rungeKutta, sgd,
  sparseSoftmaxCrossEntropy, tableaux, type AnyOptimizer, type TrainEvent,
} from '../src/index.js';
import type { Observable } from 'rxjs';

const N = 240;
const CLASSES = 3;

function spiral(noise: number): { xs: number[][]; ys: number[] } {
  const xs: number[][] = [];
  const ys: number[] = [];
  for (let c = 0; c < CLASSES; c++) {
    for (let i = 0; i < N / CLASSES; i++) {
      const r = i / (N / CLASSES);
      const t = (c * 2 * Math.PI) / CLASSES + 3 * r + Math.sin(noise * i + c) * 0.15;
      xs.push([r * Math.sin(t), r * Math.cos(t)]);
      ys.push(c);
    }
  }
  return { xs, ys };
}

const session = await Session.create();
const train = spiral(7);
const val = spiral(5);

/** A fit stream of the MLP 2-32-3 under `optimizer`, validated on a second spiral each epoch. */
function run(label: string, optimizer: AnyOptimizer, batchSize: number, epochs: number): Observable<TrainEvent> {
  const x = placeholder([null, 2]);
  const y = placeholder([null], { dtype: 'int32' });
  const h = layers.dense(x, 32, { activation: 'tanh', seed: 11, name: `${label}/h` });
  const logits = layers.dense(h, CLASSES, { seed: 12, name: `${label}/out` });
  const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
  const accuracy = mean(cast(equal(argMax(logits), y), 'float32'));
  const step = compile(optimizer, session, { loss, inputs: [x, y] });
  return fit(step, [train.xs, train.ys], { epochs, batchSize, seed: 3, validation: { data: [val.xs, val.ys], metrics: { accuracy } } });
}

// About 400 gradient evaluations each: a full-batch step costs 1 (SGD), 2 (Heun), 4 (RK4) or 6–7 (RK45) of them.
const board = await dashboard({
  'sgd (euler)': run('sgd', sgd({ lr: 1 }), N, 400),
  heun: run('heun', heun({ lr: 1 }), N, 200),
  rk4: run('rk4', rungeKutta({ tableau: tableaux.rk4, lr: 1 }), N, 100),
  'rk45 adaptive': run('rk45', rungeKutta({ tableau: tableaux.dormandPrince, lr: 1, adaptive: { tol: 1e-3 } }), N, 60),
  'soft batch 4×60': run('soft', accumulate(sgd({ lr: 1 }), { steps: 4 }), N / 4, 100),
}, { title: 'Optimizers as ODE solvers — spiral, MLP 2-32-3', x: 'runs' });
console.log(`dashboard at ${board.url} (backend ${session.backend})`);

const final = await board.done;
for (const [name, s] of Object.entries(final)) console.log(`  ${name}: ${s.status} after ${s.steps} steps${s.error ? ` (${s.error})` : ''}`);

await screenshot(board.url, 'out/dashboard.png');
if (process.env['KEEP'] === '1') {
  console.log(`training done; the page stays up at ${board.url} until Ctrl-C`);
  process.once('SIGINT', () => void board.close().then(() => session.dispose()));
} else {
  await board.close();
  session.dispose();
}

/** Opens the page in headless chromium once everything is plotted, and saves a full-page PNG. */
async function screenshot(url: string, file: string): Promise<void> {
  const executablePath = process.env['CHROMIUM'] ?? which('chromium');
  if (!executablePath) return void console.log('no chromium found (set CHROMIUM=/path/to/chromium): no screenshot');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
    await page.goto(url);
    const steps = Object.values(board.status()).reduce((n, s) => n + s.steps, 0);
    await page.waitForFunction((n) => {
      const w = globalThis as unknown as { __views?: { main?: { data(name: string): unknown[] } } };
      return (w.__views?.main?.data('steps').length ?? 0) >= n;
    }, steps);
    await page.waitForTimeout(300); // the last flush's render
    mkdirSync('out', { recursive: true });
    await page.screenshot({ path: file, fullPage: true });
    console.log(`wrote ${file}`);
  } finally {
    await browser.close();
  }
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('which', [cmd], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
