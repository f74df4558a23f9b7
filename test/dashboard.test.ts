import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { EMPTY, of, tap, type Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import {
  abs, add, type AnyOptimizer, compile, dashboard, type EpochEvent, fit, heun, matMul, mean, placeholder, Session, sgd,
  square, type StepEvent, sub, SymflowError, type TrainEvent, type TrainStep, variable,
} from '../src/index.js';
import { rng } from './helpers.js';

/** The chromium binary: $CHROMIUM, /usr/bin/chromium, or `chromium` on the PATH. */
function chromiumPath(): string | undefined {
  if (process.env['CHROMIUM']) return process.env['CHROMIUM'];
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const CHROMIUM = chromiumPath();
if (!CHROMIUM) console.warn('test/dashboard.test.ts: no chromium binary (set CHROMIUM or install chromium): the browser tests are skipped');

// 10 training and 6 validation rows of a noisy linear function.
const r = rng(24680);
const makeRows = (n: number): [number[][], number[][]] => {
  const xs = Array.from({ length: n }, () => [r() * 2 - 1, r() * 2 - 1]);
  return [xs, xs.map(([a, b]) => [1.5 * a! - 0.7 * b! + 0.2 + 0.1 * (r() - 0.5)])];
};
const [X, Y] = makeRows(10);
const [VX, VY] = makeRows(6);

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
const isStep = (e: TrainEvent): e is StepEvent => e.type === 'step';
const isEpoch = (e: TrainEvent): e is EpochEvent => e.type === 'epoch';
/** The fields of a step event the page plots. */
const plotted = (e: StepEvent) => ({ epoch: e.epoch, step: e.step, batch: e.batch, loss: e.loss, runs: e.runs, ms: e.ms, lr: e.lr });

/** One watched training run: its events as `fit` emitted them, how its stream ended, the train step's calls. */
interface Watched {
  stream: Observable<TrainEvent>;
  events: TrainEvent[];
  calls: () => number;
  ended: () => 'running' | 'completed' | 'unsubscribed' | 'error';
}

/** Unsubscribed from a page, i.e. from a browser: a real server, a real page, real clicks. */
describe.skipIf(!CHROMIUM)('dashboard in chromium', () => {
  let s: Session;
  let browser: Browser;
  beforeAll(async () => {
    s = await Session.create({ backend: 'cpu' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM!, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    s?.dispose();
  });

  /** Linear regression trained by `fit` for (practically) ever, each step slowed by 3 ms so the page keeps up. */
  function run(name: string, opt: AnyOptimizer): Watched {
    const w = variable([[0.3], [-0.2]], { name: `${name}/w` });
    const b = variable(0.1, { name: `${name}/b` });
    const x = placeholder([null, 2]);
    const y = placeholder([null, 1]);
    const err = sub(add(matMul(x, w), b), y);
    const loss = mean(square(err));
    const train = compile(opt, s, { loss, inputs: [x, y] });
    let calls = 0;
    const slow: TrainStep = { ...train, step: async (v, o) => { calls++; await sleep(3); return train.step(v, o); } };
    const events: TrainEvent[] = [];
    let ended: ReturnType<Watched['ended']> = 'running';
    const stream = fit(slow, [X, Y], { epochs: 100_000, batchSize: 4, seed: 1, validation: { data: [VX, VY], metrics: { mae: mean(abs(err)) } } }).pipe(tap({
      next: (e) => events.push(e), complete: () => (ended = 'completed'), error: () => (ended = 'error'), unsubscribe: () => (ended = 'unsubscribed'),
    }));
    return { stream, events, calls: () => calls, ended: () => ended };
  }

  type PageView = { data(name: string): Record<string, unknown>[] };
  const rowsOf = (page: Page, dataset: 'steps' | 'epochs', run: string) => page.evaluate(([d, name]) => {
    const view = (globalThis as unknown as { __views: { main: PageView } }).__views.main;
    return view.data(d!).filter((row) => row['run'] === name).map((row) => ({ ...row }));
  }, [dataset, run] as const);
  const count = (page: Page, run: string) => page.evaluate((name) => {
    const view = (globalThis as unknown as { __views?: { main?: PageView } }).__views?.main;
    return view ? view.data('steps').filter((row) => row['run'] === name).length : 0;
  }, run);
  const until = async (cond: () => Promise<boolean> | boolean, what: string, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  };
  const servers = () => process.getActiveResourcesInfo().filter((t) => t === 'TCPServerWrap').length;

  it('plots both runs exactly as streamed (history first), stops one from its button while the other trains on, then all', async () => {
    const serversBefore = servers();
    const a = run('sgd', sgd({ lr: 0.05 }));
    const b = run('heun', heun({ lr: 0.05 }));
    const board = await dashboard({ sgd: a.stream, heun: b.stream }, { port: 0, title: 'test board' });
    try {
      // Bound to the loopback address only, on a free port.
      expect(board.host).toBe('127.0.0.1');
      expect(board.port).toBeGreaterThan(0);
      expect(board.url).toBe(`http://127.0.0.1:${board.port}/`);
      const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
      if (external) {
        const refused = await new Promise<string>((res) => {
          const c = connect(board.port, external.address);
          c.once('connect', () => { c.destroy(); res('connected'); });
          c.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
        });
        expect(refused).toBe('ECONNREFUSED');
      }
      // The control endpoint refuses requests without the page's header, unknown runs and unknown paths.
      expect((await fetch(`${board.url}stop`, { method: 'POST' })).status).toBe(403);
      expect((await fetch(`${board.url}stop?run=adam`, { method: 'POST', headers: { 'x-symflow-dashboard': '1' } })).status).toBe(404);
      expect((await fetch(`${board.url}nothing`)).status).toBe(404);
      expect(() => board.stop('adam')).toThrow(SymflowError);

      // Training has been going for a while (since `dashboard`) before the page connects: it gets the history.
      await until(() => a.events.filter(isStep).length >= 10 && b.events.filter(isStep).length >= 10, 'both runs to take 10 steps');
      const page = await browser.newPage();
      await page.goto(board.url);
      expect(await page.title()).toBe('test board');
      await until(async () => (await count(page, 'sgd')) >= 40 && (await count(page, 'heun')) >= 40, 'the page to plot 40 steps of each run');
      for (const w of [a, b]) {
        const name = w === a ? 'sgd' : 'heun';
        const rows = await rowsOf(page, 'steps', name);
        const steps = w.events.filter(isStep);
        expect(rows.length).toBeGreaterThanOrEqual(40);
        expect(rows.map((row) => plotted(row as unknown as StepEvent))).toEqual(steps.slice(0, rows.length).map(plotted));
        expect(rows[0]!['step']).toBe(0); // the history, from the first step
        // Epoch ends: the mean step loss and the validation loss and mae, exactly.
        const epochRows = await rowsOf(page, 'epochs', name);
        const epochs = w.events.filter(isEpoch).slice(0, epochRows.length / 3);
        expect(epochs.length).toBeGreaterThanOrEqual(5);
        expect(epochRows.map((row) => [row['epoch'], row['metric'], row['value']])).toEqual(epochs.flatMap((e) => [
          [e.epoch, 'mean step loss', e.loss], [e.epoch, 'val loss', e.val!['loss']], [e.epoch, 'val mae', e.val!['mae']],
        ]));
      }
      // sgd, lr 0.05: every step event reports that lr (a float32 variable), and the page plots it.
      expect(new Set((await rowsOf(page, 'steps', 'sgd')).map((row) => row['lr']))).toEqual(new Set([Math.fround(0.05)]));

      // Stop sgd from its button: its stream is unsubscribed, training stops at a step boundary, heun trains on.
      await page.click('button[data-stop="sgd"]');
      await page.waitForSelector('tr[data-run="sgd"] td.status.stopped');
      expect(a.ended()).toBe('unsubscribed');
      expect(board.status()['sgd']!.status).toBe('stopped');
      const stoppedAt = a.events.length;
      const callsAt = a.calls();
      const heunAt = b.events.length;
      await sleep(300);
      await until(() => b.events.length > heunAt + 10, 'heun to train on');
      expect(a.events.length).toBe(stoppedAt);
      expect(a.calls()).toBe(callsAt);
      // At most the step in flight when the button was pressed ran without being reported.
      expect(callsAt - a.events.filter(isStep).length).toBeGreaterThanOrEqual(0);
      expect(callsAt - a.events.filter(isStep).length).toBeLessThanOrEqual(1);
      expect(b.ended()).toBe('running');
      expect(await page.isDisabled('button[data-stop="sgd"]')).toBe(true);
      expect(await page.isDisabled('button[data-stop="heun"]')).toBe(false);
      expect(await page.textContent('tr[data-run="heun"] td.status')).toBe('running');
      // Everything sgd emitted is on the page, and nothing else.
      const sgdSteps = a.events.filter(isStep);
      await until(async () => (await count(page, 'sgd')) === sgdSteps.length, 'the page to plot all of sgd');
      expect((await rowsOf(page, 'steps', 'sgd')).map((row) => plotted(row as unknown as StepEvent))).toEqual(sgdSteps.map(plotted));

      // A page opened now gets the whole history, sgd's end included.
      const late = await browser.newPage();
      await late.goto(board.url);
      await late.waitForSelector('tr[data-run="sgd"] td.status.stopped');
      await until(async () => (await count(late, 'sgd')) === sgdSteps.length, 'the late page to plot all of sgd');
      expect((await rowsOf(late, 'steps', 'sgd')).map((row) => plotted(row as unknown as StepEvent))).toEqual(sgdSteps.map(plotted));

      // Another x axis re-creates the view from everything received: the same rows, now plotted against seconds.
      type Tagged = { __views: { main: unknown }; __before?: unknown };
      await late.evaluate(() => { const g = globalThis as unknown as Tagged; g.__before = g.__views.main; });
      await late.selectOption('#x', 'time');
      await until(() => late.evaluate(() => { const g = globalThis as unknown as Tagged; return g.__views.main !== g.__before; }), 'the new view');
      await until(async () => (await late.locator('#charts svg text', { hasText: 'wall-clock seconds' }).count()) === 5, 'the 5 x axes titled in seconds');
      await until(async () => (await count(late, 'sgd')) === sgdSteps.length, 'the re-created view to hold all of sgd');
      const seconds = (await rowsOf(late, 'steps', 'sgd')).map((row) => row['seconds']);
      let total = 0;
      expect(seconds).toEqual(sgdSteps.map((e) => (total += e.ms) / 1000));

      // Stop all: heun stops too, and `done` resolves with both statuses.
      await page.click('#stop-all');
      const done = await board.done;
      expect(done).toEqual({ sgd: { status: 'stopped', steps: sgdSteps.length }, heun: { status: 'stopped', steps: b.events.filter(isStep).length } });
      expect(b.ended()).toBe('unsubscribed');
      await page.waitForSelector('tr[data-run="heun"] td.status.stopped');
      expect(await page.isDisabled('#stop-all')).toBe(true);
    } finally {
      await board.close();
    }
    // Closed: connections refused, and the listening handle goes (libuv closes it a moment after 'close').
    await until(() => servers() === serversBefore, 'the server handle to close', 1000);
    await expect(fetch(board.url)).rejects.toThrow();
  });
});

describe('dashboard without a browser', () => {
  it('refuses bad arguments', async () => {
    await expect(dashboard({})).rejects.toThrow(/no runs/);
    await expect(dashboard({ a: 42 as never })).rejects.toThrow(/run 'a' is not an Observable/);
    await expect(dashboard(EMPTY, { port: -1 })).rejects.toThrow(/port must be an integer/);
    await expect(dashboard(EMPTY, { x: 'epoch' as never })).rejects.toThrow(/x must be 'step', 'runs' or 'time'/);
  });

  it('serves the history as server-sent events to a client that connects after the run ended', async () => {
    const events: TrainEvent[] = [
      { type: 'step', epoch: 0, step: 0, batch: 0, loss: 0.1 + 0.2, runs: 2, ms: 1.25, lr: 1e-3 },
      { type: 'skipped', epoch: 0, step: 1, batch: 1, loss: NaN, reason: 'loss' },
      { type: 'epoch', epoch: 0, loss: 1 / 3, steps: 1, val: { loss: 0.5 }, ms: 4 },
    ];
    const board = await dashboard(of(...events), { name: 'only', title: 't', x: 'runs' });
    try {
      expect(await board.done).toEqual({ only: { status: 'completed', steps: 1 } });
      const page = await (await fetch(board.url)).text();
      expect(page).toContain('<script src="/vega-lite.js"></script>');
      expect((await fetch(`${board.url}vega-embed.js`)).headers.get('content-type')).toMatch(/javascript/);
      const res = await fetch(`${board.url}events`);
      expect(res.headers.get('content-type')).toBe('text/event-stream');
      const reader = res.body!.getReader();
      let text = '';
      while ((text.match(/\n\n/g) ?? []).length < 5) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      const messages = text.trim().split('\n\n').map((m) => {
        const [event, data] = m.split('\n');
        return [event!.replace('event: ', ''), JSON.parse(data!.replace('data: ', ''))];
      });
      expect(messages).toEqual([
        ['hello', { title: 't', runs: ['only'], x: 'runs' }],
        ['train', { run: 'only', event: events[0] }],
        ['train', { run: 'only', event: { ...events[1], loss: null } }],
        ['train', { run: 'only', event: events[2] }],
        ['status', { run: 'only', status: 'completed', steps: 1 }],
      ]);
    } finally {
      await board.close();
    }
  });
});
