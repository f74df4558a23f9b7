import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import type { HostTensor } from '../graph/hostValue.js';
import { add } from '../graph/ops/binary.js';
import { identity } from '../graph/ops/identity.js';
import { placeholder } from '../graph/sources.js';
import { sizeOf, type Tensor } from '../graph/tensor.js';
import type { DeviceValue } from '../session/session.js';
import { defineMultiRun, type MultiRunOptimizer } from './compile.js';
import { counter, hyper } from './optimizer.js';

/** Options of `lbfgs`. */
export interface LbfgsOptions {
  /** The step length: the line search's first trial (default 1). The very first iteration scales it by min(1, 1/‖g‖₁). */
  lr?: number;
  /** Curvature pairs (s, y) kept (default 100). */
  historySize?: number;
  /** L-BFGS iterations per step (default 20). */
  maxIter?: number;
  /** Loss/gradient evaluations after which a step stops iterating (default ⌊maxIter·5/4⌋; checked between iterations). */
  maxEval?: number;
  /** A step stops once max|g| ≤ tolerance (torch's `tolerance_grad`, default 1e-7). */
  tolerance?: number;
  /** A step stops once a move, or the change of the loss, is below this (torch's `tolerance_change`, default 1e-9). */
  toleranceChange?: number;
  /** `'strongWolfe'` (torch's `line_search_fn='strong_wolfe'`) or `'none'`: a fixed step of length lr (the default). */
  lineSearch?: 'strongWolfe' | 'none';
}

/** One (loss, gradient) evaluation, gradient flattened over every parameter. */
interface Eval {
  f: number;
  g: Float64Array;
}

/** What L-BFGS carries from one step to the next (torch keeps the same in `state`). */
interface History {
  /** The value of the step counter this history belongs to (the variable is restored with the parameters). */
  readonly version: number;
  /** Iterations done since the start (torch's `state['n_iter']`): the very first one takes a gradient step. */
  nIter: number;
  d?: Float64Array;
  t: number;
  dirs: Float64Array[];
  stps: Float64Array[];
  ro: number[];
  hDiag: number;
  prevGrad?: Float64Array;
  prevLoss: number;
}

const OPTION_NAMES = new Set(['lr', 'historySize', 'maxIter', 'maxEval', 'tolerance', 'toleranceChange', 'lineSearch']);

/**
 * L-BFGS as torch.optim.LBFGS does it: one `step` is one `optimizer.step(closure)` — up to `maxIter` quasi-Newton
 * iterations on the step's batch, each loss/gradient evaluation one session run. The two-loop recursion, the
 * history and the strong-Wolfe line search run on the host in float64; the evaluations run on the backend, fed the
 * trial points x + t·d (rounded to float32, as the parameters are). The step is atomic, and `StepResult.runs`
 * counts the evaluations (torch's `func_evals`) plus the run that writes the new point (none when the step starts at
 * a stationary point); `StepResult.lr` is the last step length t taken (0 when none was). The history lives on the
 * host, tagged with a step counter that is a variable of the session: a step undone, or a checkpoint restored, at
 * another counter value makes the next step start a fresh history (a gradient step, as torch's first iteration).
 *
 * ```ts
 * const train = compile(lbfgs({ lineSearch: 'strongWolfe', maxIter: 5 }), session, { loss, inputs: [x, y] });
 * const { loss: l, runs } = await train.step([xs, ys]); // full batch, as L-BFGS wants
 * ```
 * @param opts lr, historySize, maxIter, maxEval, tolerance, toleranceChange, lineSearch
 * @returns a multi-run optimizer
 */
export function lbfgs(opts: LbfgsOptions = {}): MultiRunOptimizer {
  if (opts === null || typeof opts !== 'object') throw new SymflowError('lbfgs', `options must be an object, got ${String(opts)}`);
  for (const k of Object.keys(opts)) {
    if (!OPTION_NAMES.has(k)) throw new SymflowError('lbfgs', `unknown option '${k}' (expected one of ${[...OPTION_NAMES].join(', ')})`);
  }
  const lr = hyper('lbfgs', 'lr', opts.lr ?? 1, { min: 0, minExclusive: true });
  const historySize = count('historySize', opts.historySize ?? 100);
  const maxIter = count('maxIter', opts.maxIter ?? 20);
  const maxEval = count('maxEval', opts.maxEval ?? Math.floor((maxIter * 5) / 4));
  const tolerance = hyper('lbfgs', 'tolerance', opts.tolerance ?? 1e-7, { min: 0 });
  const toleranceChange = hyper('lbfgs', 'toleranceChange', opts.toleranceChange ?? 1e-9, { min: 0 });
  const lineSearch = opts.lineSearch ?? 'none';
  if (lineSearch !== 'strongWolfe' && lineSearch !== 'none') {
    throw new SymflowError('lbfgs', `lineSearch must be 'strongWolfe' or 'none', got ${JSON.stringify(lineSearch) ?? String(lineSearch)}`);
  }
  return defineMultiRun('lbfgs', (ctx) => {
    const { params, grads, session } = ctx;
    const sizes = params.map((p) => sizeOf(p.shape as number[]));
    const steps = counter('lbfgs', 'steps');
    // The first run reads the starting point; a non-finite loss there refuses the step at once.
    const start = ctx.run({ outputs: { loss: ctx.loss, grads, params, outputs: ctx.outputs, steps }, guard: false });
    // Trial points feed the parameters themselves; the loss goes out under another tensor, so that a non-finite
    // trial is the line search's business (it backtracks), not a refusal of the step.
    const trial = ctx.run({ feeds: params, outputs: { loss: identity(ctx.loss), grads }, guard: false });
    const targets = params.map((p) => placeholder(p.shape, { name: `lbfgs/target/${p.name}` }));
    const write = ctx.run({ feeds: targets, updates: [...params.map((p, i): Update => [p, targets[i]!]), [steps, add(steps, 1)]] });

    const flat = (ts: readonly HostTensor[]): Float64Array => {
      const out = new Float64Array(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      for (const t of ts) {
        out.set(t.data as Float32Array, at);
        at += t.data.length;
      }
      return out;
    };
    // Feeds a flat float64 point as float32 values, one per parameter (or target).
    const feed = async <T>(x: Float64Array, like: readonly Tensor[], f: (vals: DeviceValue[]) => Promise<T>): Promise<T> => {
      const vals: DeviceValue[] = [];
      try {
        let at = 0;
        like.forEach((p, i) => {
          vals.push(session.upload(p, { shape: p.shape as number[], data: Float32Array.from(x.subarray(at, at + sizes[i]!)) }));
          at += sizes[i]!;
        });
        return await f(vals);
      } finally {
        for (const v of vals) v.dispose();
      }
    };

    // The history of the last committed step and of the step that followed it: the step counter (a variable,
    // snapshotted and restored with the parameters) tells which one the session is at.
    let committed: History = fresh(0);
    let pending: History | undefined;
    const historyAt = (version: number): History => {
      if (pending?.version === version) committed = pending;
      else if (committed.version !== version) committed = fresh(version);
      pending = undefined;
      return committed;
    };

    return {
      // At least: the starting evaluation and the write (a step at a stationary point takes one run).
      runsPerStep: 2,
      variables: [steps],
      async step(batch) {
        const r0 = await start(batch);
        const loss0 = r0.loss.data[0]!;
        const base = historyAt(r0.steps.data[0]!);
        let evals = 1;
        let g = flat(r0.grads);
        if (maxAbs(g) <= tolerance) return { loss: loss0, outputs: r0.outputs, runs: 1, lr: 0 };
        const h: History = { ...base, version: base.version + 1, dirs: [...base.dirs], stps: [...base.stps], ro: [...base.ro] };
        let x = flat(r0.params);
        const evaluate = (t: number, d: Float64Array): Promise<Eval> => feed(moved(x, t, d), params, async (vals) => {
          evals++;
          const r = await trial([...batch, ...vals]);
          const e = { f: r.loss.data[0]!, g: flat(r.grads) };
          // A non-finite trial point is one too far: the line search treats it as an infinitely high loss.
          return Number.isFinite(e.f) && e.g.every(Number.isFinite) ? e : { f: Infinity, g: e.g.fill(NaN) };
        });
        let loss = loss0;
        let taken = 0;
        for (let iter = 1; iter <= maxIter; iter++) {
          h.nIter++;
          const d = direction(h, g, historySize);
          h.prevGrad = g;
          h.prevLoss = loss;
          let t = h.nIter === 1 ? Math.min(1, 1 / sumAbs(g)) * lr : lr;
          h.d = d;
          h.t = t;
          const gtd = dot(g, d);
          if (gtd > -toleranceChange) break; // not a descent direction (any more)
          let optimal = false;
          if (lineSearch === 'strongWolfe') {
            const found = await strongWolfe((s) => evaluate(s, d), d, t, { f: loss, g }, gtd, toleranceChange);
            ({ f: loss, g, t } = found);
            h.t = t;
            x = moved(x, t, d);
            optimal = maxAbs(g) <= tolerance;
          } else {
            x = moved(x, t, d);
            // Like torch: the last iteration moves without evaluating (the next step evaluates there anyway).
            if (iter !== maxIter) {
              ({ f: loss, g } = await evaluate(0, d));
              optimal = maxAbs(g) <= tolerance;
            }
          }
          taken = t;
          if (iter === maxIter || evals >= maxEval || optimal) break;
          if (maxAbs(d) * Math.abs(t) <= toleranceChange || Math.abs(loss - h.prevLoss) < toleranceChange) break;
        }
        await feed(x, targets, (vals) => write([...batch, ...vals]));
        pending = h;
        return { loss: loss0, outputs: r0.outputs, runs: evals + 1, lr: taken };
      },
    };
  });
}

function count(arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new SymflowError('lbfgs', `${arg} must be a positive integer, got ${String(v)}`);
  return v;
}

function fresh(version: number): History {
  return { version, nIter: 0, t: 0, dirs: [], stps: [], ro: [], hDiag: 1, prevLoss: NaN };
}

/**
 * The search direction: −g on the very first iteration (the history is cleared), else −H·g with H the L-BFGS
 * inverse-Hessian estimate — after adding the newest pair (s, y) when its curvature s·y exceeds 1e-10.
 */
function direction(h: History, g: Float64Array, historySize: number): Float64Array {
  if (h.nIter === 1) {
    h.dirs = [];
    h.stps = [];
    h.ro = [];
    h.hDiag = 1;
    return g.map((v) => -v);
  }
  const y = g.map((v, i) => v - h.prevGrad![i]!);
  const s = h.d!.map((v) => v * h.t);
  const ys = dot(y, s);
  if (ys > 1e-10) {
    if (h.dirs.length === historySize) {
      h.dirs.shift();
      h.stps.shift();
      h.ro.shift();
    }
    h.dirs.push(y);
    h.stps.push(s);
    h.ro.push(1 / ys);
    h.hDiag = ys / dot(y, y);
  }
  // The two-loop recursion, newest pair first, then back.
  const q = g.map((v) => -v);
  const al = new Array<number>(h.dirs.length);
  for (let i = h.dirs.length - 1; i >= 0; i--) {
    al[i] = dot(h.stps[i]!, q) * h.ro[i]!;
    axpy(q, -al[i]!, h.dirs[i]!);
  }
  const r = q.map((v) => v * h.hDiag);
  for (let i = 0; i < h.dirs.length; i++) axpy(r, al[i]! - dot(h.dirs[i]!, r) * h.ro[i]!, h.stps[i]!);
  return r;
}

const C1 = 1e-4;
const C2 = 0.9;
const MAX_LS = 25;

/**
 * The strong-Wolfe line search of torch's LBFGS (after minFunc): extrapolate until the interval [t_prev, t]
 * brackets a point satisfying the strong Wolfe conditions (sufficient decrease c1 = 1e-4, curvature c2 = 0.9), then
 * zoom in by safeguarded cubic interpolation; 25 evaluations at most. Returns the best point found.
 */
async function strongWolfe(evaluate: (t: number) => Promise<Eval>, d: Float64Array, t0: number, at0: Eval, gtd: number, toleranceChange: number): Promise<Eval & { t: number }> {
  const dNorm = maxAbs(d);
  const armijo = (t: number, f: number) => f > at0.f + C1 * t * gtd;
  const curvature = (gtdNew: number) => Math.abs(gtdNew) <= -C2 * gtd;
  let t = t0;
  let cur = await evaluate(t);
  let gtdNew = dot(cur.g, d);
  let prev = { t: 0, ...at0, gtd };
  // The bracket: points with their loss, gradient and directional derivative.
  let br: { t: number; f: number; g: Float64Array; gtd: number }[] | undefined;
  let done = false;
  let lsIter = 0;
  for (; lsIter < MAX_LS; lsIter++) {
    const here = { t, ...cur, gtd: gtdNew };
    if (armijo(t, cur.f) || (lsIter > 1 && cur.f >= prev.f)) {
      br = [prev, here];
      break;
    }
    if (curvature(gtdNew)) {
      br = [here];
      done = true;
      break;
    }
    if (gtdNew >= 0) {
      br = [prev, here];
      break;
    }
    // Extrapolate: a cubic step within [t + 0.01·(t − t_prev), 10·t].
    t = cubicMin(prev, here, [t + 0.01 * (t - prev.t), t * 10]);
    prev = here;
    cur = await evaluate(t);
    gtdNew = dot(cur.g, d);
  }
  br ??= [{ t: 0, ...at0, gtd }, { t, ...cur, gtd: gtdNew }];
  // Zoom: shrink the bracket around a point satisfying both conditions.
  let insufficient = false;
  let [low, high] = br[0]!.f <= br[br.length - 1]!.f ? [0, 1] : [1, 0];
  while (!done && lsIter < MAX_LS) {
    const [a, b] = [br[0]!, br[1]!];
    if (Math.abs(b.t - a.t) * dNorm < toleranceChange) break;
    t = cubicMin(a, b);
    const hi = Math.max(a.t, b.t), lo = Math.min(a.t, b.t), eps = 0.1 * (hi - lo);
    // Too close to an end (twice running, or on it): move 10% of the bracket inside.
    if (Math.min(hi - t, t - lo) < eps) {
      if (insufficient || t >= hi || t <= lo) {
        t = Math.abs(t - hi) < Math.abs(t - lo) ? hi - eps : lo + eps;
        insufficient = false;
      } else insufficient = true;
    } else insufficient = false;
    cur = await evaluate(t);
    lsIter++;
    const here = { t, ...cur, gtd: dot(cur.g, d) };
    if (armijo(t, cur.f) || cur.f >= br[low]!.f) {
      br[high] = here;
      [low, high] = br[0]!.f <= br[1]!.f ? [0, 1] : [1, 0];
    } else {
      if (curvature(here.gtd)) done = true;
      else if (here.gtd * (br[high]!.t - br[low]!.t) >= 0) br[high] = br[low]!;
      br[low] = here;
    }
  }
  const best = br[low]!;
  return { f: best.f, g: best.g, t: best.t };
}

/**
 * The minimiser of the cubic through two points with values and slopes, clamped to `bounds` (default: between
 * the points); their midpoint when the cubic has no minimum there. A non-finite result (an infinite trial) is
 * the midpoint too — torch would return NaN.
 */
function cubicMin(p: { t: number; f: number; gtd: number }, q: { t: number; f: number; gtd: number }, bounds?: [number, number]): number {
  const [lo, hi] = bounds ?? (p.t <= q.t ? [p.t, q.t] : [q.t, p.t]);
  const d1 = p.gtd + q.gtd - (3 * (p.f - q.f)) / (p.t - q.t);
  const d2sq = d1 * d1 - p.gtd * q.gtd;
  if (d2sq >= 0) {
    const d2 = Math.sqrt(d2sq);
    const [near, far] = p.t <= q.t ? [p, q] : [q, p];
    const m = far.t - (far.t - near.t) * ((far.gtd + d2 - d1) / (far.gtd - near.gtd + 2 * d2));
    if (Number.isFinite(m)) return Math.min(Math.max(m, lo), hi);
  }
  return (lo + hi) / 2;
}

/** x + t·d, each entry rounded to float32 as the parameters hold it. */
function moved(x: Float64Array, t: number, d: Float64Array): Float64Array {
  return t === 0 ? x : x.map((v, i) => Math.fround(v + t * d[i]!));
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function axpy(y: Float64Array, a: number, x: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i]! += a * x[i]!;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return Number.isNaN(m) ? NaN : m;
}

function sumAbs(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += Math.abs(v);
  return s;
}
