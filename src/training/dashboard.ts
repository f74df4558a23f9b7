import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isObservable, type Observable, type Subscription } from 'rxjs';
import { SymflowError } from '../graph/errors.js';
import type { TrainEvent } from './fit.js';
import { dashboardPage } from './dashboardPage.js';

/** One training stream, or several by name (shown side by side, one colour each). */
export type DashboardRuns = Observable<TrainEvent> | Readonly<Record<string, Observable<TrainEvent>>>;

/** Options of `dashboard(runs, opts)`. */
export interface DashboardOptions {
  /** Port to listen on (default 0: a free port; see `Dashboard.url`). */
  port?: number;
  /** Address to bind (default '127.0.0.1': this machine only). Pass '0.0.0.0' or '::' to serve the network. */
  host?: string;
  /** Page title (default 'symflow training'). */
  title?: string;
  /** The x axis the page starts with: steps, session runs (gradient evaluations) or seconds (default 'step'). */
  x?: 'step' | 'runs' | 'time';
  /** Name of the run when `runs` is a single Observable (default 'run'). */
  name?: string;
}

/** How a run stands: still training, its stream completed or errored, or stopped from the page or `stop()`. */
export interface RunStatus {
  /** Still training, its stream completed, stopped (from the page or `stop()`), or errored. */
  readonly status: 'running' | 'completed' | 'stopped' | 'error';
  /** Step events seen. */
  readonly steps: number;
  /** The stream's error message, for 'error'. */
  readonly error?: string;
}

/** A running dashboard: where it is, and how to stop runs and close it. */
export interface Dashboard {
  /** Where the page is, e.g. `http://127.0.0.1:43117/`. */
  readonly url: string;
  /** The address it is bound to. */
  readonly host: string;
  /** The port it listens on (the free one chosen for port 0). */
  readonly port: number;
  /** Stops one run (or, without a name, all): unsubscribes its stream, so training stops at a step boundary. */
  stop(run?: string): void;
  /** Each run's status now. */
  status(): Record<string, RunStatus>;
  /** Resolves with every run's final status once none is running. The page stays up until `close()`. */
  readonly done: Promise<Record<string, RunStatus>>;
  /** Stops the runs still going, ends the page's event streams and closes the server. */
  close(): Promise<void>;
}

/**
 * Serves a live training page: loss (log scale), validation metrics, learning rate and step time of each run,
 * plotted with vega-lite as events arrive (server-sent events; a page opened late gets the history first), with a
 * stop button per run and one for all. Subscribes to every run at once. Node's `http` only; the browser builds of
 * `vega`, `vega-lite` and `vega-embed` are served from node_modules (optional peer dependencies).
 *
 * ```ts
 * const board = await dashboard({ sgd: fit(a, data, opts), heun: fit(b, data, opts) });
 * console.log(board.url);
 * await board.done;
 * await board.close();
 * ```
 * @param runs a `fit` stream, or several by name @param opts port, host, title, initial x axis
 * @returns the running dashboard: its url, `stop`, `status`, `done` and `close`
 */
export async function dashboard(runs: DashboardRuns, opts: DashboardOptions = {}): Promise<Dashboard> {
  const streams = namedRuns(runs, opts.name ?? 'run');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SymflowError('dashboard', `port must be an integer in [0, 65535], got ${String(port)}`);
  const x = opts.x ?? 'step';
  if (x !== 'step' && x !== 'runs' && x !== 'time') throw new SymflowError('dashboard', `x must be 'step', 'runs' or 'time', got ${String(x)}`);
  const scripts = await browserBuilds();
  const page = dashboardPage();

  const names = streams.map(([name]) => name);
  /** Every message sent so far, in order, replayed to a client that connects late. */
  const history: string[] = [sse('hello', { title: opts.title ?? 'symflow training', runs: names, x })];
  const clients = new Set<ServerResponse>();
  const broadcast = (event: string, data: unknown) => {
    const message = sse(event, data);
    history.push(message);
    for (const c of clients) c.write(message);
  };

  const state = new Map<string, { status: RunStatus['status']; steps: number; error?: string; subscription?: Subscription }>();
  let finished: (s: Record<string, RunStatus>) => void = () => {};
  const done = new Promise<Record<string, RunStatus>>((resolve) => { finished = resolve; });
  const status = (): Record<string, RunStatus> => Object.fromEntries([...state].map(([name, s]) => [name, {
    status: s.status, steps: s.steps, ...(s.error === undefined ? {} : { error: s.error }),
  }]));
  const end = (name: string, how: 'completed' | 'stopped' | 'error', error?: string) => {
    const s = state.get(name)!;
    if (s.status !== 'running') return;
    s.status = how;
    if (error !== undefined) s.error = error;
    broadcast('status', { run: name, status: how, steps: s.steps, ...(error === undefined ? {} : { error }) });
    if ([...state.values()].every((r) => r.status !== 'running')) finished(status());
  };
  const stop = (run?: string) => {
    if (run !== undefined && !state.has(run)) throw new SymflowError('dashboard', `no run named '${run}'; runs are ${names.map((n) => `'${n}'`).join(', ')}`);
    for (const [name, s] of state) {
      if (run !== undefined && name !== run) continue;
      if (s.status !== 'running') continue;
      s.subscription?.unsubscribe();
      end(name, 'stopped');
    }
  };

  const server = createServer((req, res) => {
    try {
      route(req, res, { page, scripts, history, clients, stop, status, has: (run) => state.has(run) });
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await listen(server, port, host);
  const address = server.address() as AddressInfo;

  for (const [name] of streams) state.set(name, { status: 'running', steps: 0 });
  for (const [name, stream] of streams) {
    const s = state.get(name)!;
    if (s.status !== 'running') continue; // stopped synchronously by an earlier run's events
    const subscription = stream.subscribe({
      next: (event) => {
        if (event.type === 'step') s.steps++;
        broadcast('train', { run: name, event });
      },
      error: (e: unknown) => end(name, 'error', e instanceof Error ? e.message : String(e)),
      complete: () => end(name, 'completed'),
    });
    if (s.status === 'running') s.subscription = subscription;
    else subscription.unsubscribe();
  }

  let closing: Promise<void> | undefined;
  const close = () => closing ??= new Promise<void>((resolve, reject) => {
    stop();
    for (const c of clients) c.end();
    clients.clear();
    server.close((e) => (e ? reject(e) : resolve()));
    server.closeAllConnections();
  });
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${shown}:${address.port}/`, host: address.address, port: address.port, stop, status, done, close };
}

interface Routes {
  page: string;
  scripts: Record<string, string>;
  history: readonly string[];
  clients: Set<ServerResponse>;
  stop(run?: string): void;
  status(): Record<string, RunStatus>;
  has(run: string): boolean;
}

/** GET / (the page), the three scripts, /events (server-sent events, history first); POST /stop[?run=name]. */
function route(req: IncomingMessage, res: ServerResponse, r: Routes): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const text = (code: number, body: string) => void res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
  if (req.method === 'GET' && url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(r.page);
  } else if (req.method === 'GET' && Object.hasOwn(r.scripts, url.pathname)) {
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=3600' }).end(r.scripts[url.pathname]);
  } else if (req.method === 'GET' && url.pathname === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(r.history.join(''));
    r.clients.add(res);
    req.on('close', () => r.clients.delete(res));
  } else if (req.method === 'POST' && url.pathname === '/stop') {
    // A custom header makes a cross-site form or fetch preflight, which this server never answers.
    if (req.headers['x-symflow-dashboard'] !== '1') return text(403, 'missing x-symflow-dashboard header');
    const run = url.searchParams.get('run') ?? undefined;
    if (run !== undefined && !r.has(run)) return text(404, `no run named '${run}'`);
    r.stop(run);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r.status()));
  } else {
    text(404, 'not found');
  }
}

function namedRuns(runs: DashboardRuns, single: string): [string, Observable<TrainEvent>][] {
  if (isObservable(runs)) return [[single, runs as Observable<TrainEvent>]];
  if (runs === null || typeof runs !== 'object') throw new SymflowError('dashboard', `runs must be an Observable or a record of Observables by name, got ${String(runs)}`);
  const entries = Object.entries(runs);
  if (entries.length === 0) throw new SymflowError('dashboard', 'no runs: pass an Observable or a record of Observables by name');
  for (const [name, r] of entries) {
    if (!isObservable(r)) throw new SymflowError('dashboard', `run '${name}' is not an Observable`);
    if (name.length === 0) throw new SymflowError('dashboard', 'a run name is empty');
  }
  return entries as [string, Observable<TrainEvent>][];
}

/** The browser builds of vega, vega-lite and vega-embed, by the path the page loads them from. */
async function browserBuilds(): Promise<Record<string, string>> {
  const require = createRequire(import.meta.url);
  const files: [string, string, string][] = [['/vega.js', 'vega', 'vega.min.js'], ['/vega-lite.js', 'vega-lite', 'vega-lite.min.js'], ['/vega-embed.js', 'vega-embed', 'vega-embed.min.js']];
  const out: Record<string, string> = {};
  for (const [path, pkg, file] of files) {
    let entry: string;
    try {
      entry = require.resolve(pkg); // each package's main file sits in build/, beside its browser build
    } catch {
      throw new SymflowError('dashboard', `the dashboard plots with vega-lite in the browser and needs the packages vega, vega-lite and vega-embed; '${pkg}' is not installed: npm install vega vega-lite vega-embed`);
    }
    out[path] = await readFile(join(dirname(entry), file), 'utf8');
  }
  return out;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** One server-sent event. JSON has no newlines, so the data fits one line; NaN and ±Infinity become null. */
function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
