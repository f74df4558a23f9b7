// Learning-rate schedules in the manner of optax (optax/schedules/_schedule.py, _join.py): a schedule maps the step
// counter to a value. Here each one is two things at once: a graph function (a valid `LearningRate`, computed by
// the session in float32) and a host function `at` (computed in JS in float64), so the same schedule can be
// trained with, plotted and checked. Where optax quietly falls back (transition_steps ≤ 0 or decay_rate 0 give a
// constant, a negative transition_begin becomes 0), these refuse the argument instead: a constant is `constant`.
import { SymflowError } from '../graph/errors.js';
import { add, div, maximum, minimum, mul, pow } from '../graph/ops/binary.js';
import { broadcastLike } from '../graph/ops/broadcast.js';
import { cast } from '../graph/ops/cast.js';
import { greaterEqual, less } from '../graph/ops/compare.js';
import { sub } from '../graph/ops/math.js';
import { cos, floor } from '../graph/ops/unary.js';
import { where } from '../graph/ops/where.js';
import { scalarConstant } from '../graph/sources.js';
import { isTensor, type Tensor } from '../graph/tensor.js';
import { hyper } from './optimizer.js';

/**
 * A schedule: a graph function of the step and, as its property `at`, the same function on the host.
 *
 * The graph function takes the step as a float32 or int32 tensor (an int32 one is cast) and returns float32, applied
 * elementwise: a scalar step gives a scalar, which is what an optimizer's `lr` needs (the step counter is 0 on the
 * first step). `at(step)` computes the same value in JS in float64, for plots, tests and reports; the two agree to
 * float32 precision for steps below 2²⁴ (where float32 counts exactly).
 *
 * ```ts
 * const lr = schedules.warmupCosineDecay({ init: 0, peak: 0.1, warmupSteps: 100, decaySteps: 1000 });
 * sgd({ lr });          // the graph form, evaluated every step
 * lr.at(550);           // 0.05, on the host
 * ```
 */
export interface Schedule {
  (step: Tensor): Tensor;
  /** The schedule at `step`, computed on the host in float64. @param step a step count @returns the value */
  at(step: number): number;
}

/**
 * Makes a schedule from a graph function and its host twin (what the built-in schedules are made with).
 * ```ts
 * const halving = defineSchedule('halving', (t) => pow(0.5, floor(div(t, 100))), (n) => 0.5 ** Math.floor(n / 100));
 * ```
 * @param name names the schedule in errors @param graph the value from a float32 step tensor
 * @param at the same in float64 on the host @returns a `Schedule`
 */
export function defineSchedule(name: string, graph: (step: Tensor) => Tensor, at: (step: number) => number): Schedule {
  const fn = (step: Tensor): Tensor => {
    if (!isTensor(step)) throw new SymflowError(name, `step must be a Tensor, got ${typeof step}`);
    if (step.dtype === 'bool') throw new SymflowError(name, `step must be float32 or int32, got bool ('${step.name}')`);
    return graph(cast(step, 'float32'));
  };
  const host = (step: number): number => {
    if (typeof step !== 'number') throw new SymflowError(`${name}.at`, `step must be a number, got ${typeof step}`);
    return at(step);
  };
  Object.defineProperty(fn, 'name', { value: name });
  return Object.freeze(Object.assign(fn, { at: host }));
}

/**
 * The same value at every step (optax `constant_schedule`).
 * ```ts
 * schedules.constant(0.01).at(1e6); // 0.01
 * ```
 * @param value the value @returns a `Schedule`
 */
export function constant(value: number): Schedule {
  const v = finite('constant', 'value', value);
  return defineSchedule('constant', (t) => fill(v, t), () => v);
}

/** Options of `schedules.linear`. */
export interface LinearOptions {
  /** The value up to step `begin`. */
  init: number;
  /** The value from step `begin + steps` on. */
  end: number;
  /** Steps of the transition, an integer ≥ 1. */
  steps: number;
  /** Steps held at `init` before the transition (default 0). */
  begin?: number;
}

/**
 * A linear transition from `init` to `end` over `steps` steps, starting at step `begin` (optax `linear_schedule`):
 * init before `begin`, end from `begin + steps` on.
 * ```ts
 * schedules.linear({ init: 0, end: 0.1, steps: 1000 }).at(500); // 0.05
 * ```
 * @param opts init, end, steps, begin @returns a `Schedule`
 */
export function linear(opts: LinearOptions): Schedule {
  return transition('linear', { ...options('linear', opts), power: 1 });
}

/** Options of `schedules.polynomial`. */
export interface PolynomialOptions extends LinearOptions {
  /** The polynomial's power, > 0 (1 is linear). */
  power: number;
}

/**
 * A polynomial transition (optax `polynomial_schedule`): with c = clip(step − begin, 0, steps),
 * (init − end)·(1 − c/steps)^power + end.
 * ```ts
 * schedules.polynomial({ init: 1, end: 0.01, power: 2, steps: 100 }).at(50); // 0.2575
 * ```
 * @param opts init, end, power, steps, begin @returns a `Schedule`
 */
export function polynomial(opts: PolynomialOptions): Schedule {
  const o = options('polynomial', opts);
  return transition('polynomial', { ...o, power: hyper('polynomial', 'power', opts.power, { min: 0, minExclusive: true }) });
}

/** Options of `schedules.exponentialDecay`. */
export interface ExponentialDecayOptions {
  /** The value at step 0 (and until `begin`). */
  init: number;
  /** Factor per `steps` steps, > 0 (< 1 decays, > 1 grows). */
  rate: number;
  /** Steps per factor of `rate`, an integer ≥ 1. */
  steps: number;
  /** Apply the factor at whole multiples of `steps` only (default false). */
  staircase?: boolean;
  /** Steps held at `init` before the decay starts (default 0). */
  begin?: number;
  /** A bound the value stops at: a floor when rate < 1, a ceiling otherwise (default none). */
  end?: number;
}

/**
 * Exponential decay (optax `exponential_decay`, Keras `ExponentialDecay`, PyTorch `ExponentialLR` with steps 1):
 * init·rate^((step − begin)/steps), the exponent floored with `staircase`, init before `begin`, clipped at `end`.
 * ```ts
 * schedules.exponentialDecay({ init: 0.1, rate: 0.5, steps: 100, staircase: true }).at(250); // 0.025
 * ```
 * @param opts init, rate, steps, staircase, begin, end @returns a `Schedule`
 */
export function exponentialDecay(opts: ExponentialDecayOptions): Schedule {
  const who = 'exponentialDecay';
  object(who, opts);
  const init = finite(who, 'init', opts.init);
  const rate = hyper(who, 'rate', opts.rate, { min: 0, minExclusive: true });
  const steps = integer(who, 'steps', opts.steps, 1);
  const begin = integer(who, 'begin', opts.begin ?? 0, 0);
  const staircase = flag(who, 'staircase', opts.staircase);
  const end = opts.end === undefined ? undefined : finite(who, 'end', opts.end);
  // optax's clip: rate < 1 decays towards a floor, otherwise the value grows towards a ceiling.
  const clipHost = end === undefined ? (v: number) => v : rate < 1 ? (v: number) => Math.max(v, end) : (v: number) => Math.min(v, end);
  const clip = end === undefined ? (v: Tensor) => v : rate < 1 ? (v: Tensor) => maximum(v, end) : (v: Tensor) => minimum(v, end);
  // Before `begin` the exponent is 0 (optax selects init there; rate⁰ = 1 gives init exactly).
  return defineSchedule(who, (t) => {
    const p = div(maximum(add(t, -begin), 0), steps);
    return clip(mul(init, pow(rate, staircase ? floor(p) : p)));
  }, (n) => {
    const p = Math.max(n - begin, 0) / steps;
    return clipHost(init * rate ** (staircase ? Math.floor(p) : p));
  });
}

/** Options of `schedules.cosineDecay`. */
export interface CosineDecayOptions {
  /** The value at step 0. */
  init: number;
  /** Steps of the decay, an integer ≥ 1; the value stays at alpha·init after. */
  steps: number;
  /** The final value as a fraction of init, in [0, 1] (default 0). */
  alpha?: number;
  /** Power of the cosine factor, > 0 (default 1). */
  exponent?: number;
}

/**
 * Cosine decay (optax `cosine_decay_schedule`, Keras `CosineDecay`, PyTorch `CosineAnnealingLR` over half a
 * period): with c = ½(1 + cos(π·min(step, steps)/steps)), init·((1 − alpha)·c^exponent + alpha).
 * ```ts
 * schedules.cosineDecay({ init: 0.1, steps: 1000 }).at(500); // 0.05
 * ```
 * @param opts init, steps, alpha, exponent @returns a `Schedule`
 */
export function cosineDecay(opts: CosineDecayOptions): Schedule {
  const who = 'cosineDecay';
  object(who, opts);
  const init = finite(who, 'init', opts.init);
  const steps = integer(who, 'steps', opts.steps, 1);
  const alpha = hyper(who, 'alpha', opts.alpha ?? 0, { min: 0, max: 1 });
  const exponent = hyper(who, 'exponent', opts.exponent ?? 1, { min: 0, minExclusive: true });
  return cosineFromTo(who, init, init * alpha, steps, exponent);
}

/** Options of `schedules.warmupCosineDecay`. */
export interface WarmupCosineDecayOptions {
  /** The value at step 0. */
  init: number;
  /** The value reached at step `warmupSteps`. */
  peak: number;
  /** Steps of the linear warmup, an integer ≥ 0. */
  warmupSteps: number;
  /** Steps of the whole schedule, warmup included: the cosine takes `decaySteps − warmupSteps` ≥ 1 steps. */
  decaySteps: number;
  /** The value from step `decaySteps` on (default 0). */
  end?: number;
  /** Power of the cosine factor, > 0 (default 1). */
  exponent?: number;
}

/**
 * A linear warmup from `init` to `peak` over `warmupSteps`, then a cosine decay from `peak` to `end` ending at step
 * `decaySteps` (optax `warmup_cosine_decay_schedule`; `decaySteps` counts the warmup too). One difference: with
 * peak 0 optax decays to 0 whatever `end` is; here the cosine goes from `peak` to `end` in every case.
 * ```ts
 * schedules.warmupCosineDecay({ init: 0, peak: 0.1, warmupSteps: 100, decaySteps: 1100 }).at(600); // 0.05
 * ```
 * @param opts init, peak, warmupSteps, decaySteps, end, exponent @returns a `Schedule`
 */
export function warmupCosineDecay(opts: WarmupCosineDecayOptions): Schedule {
  const who = 'warmupCosineDecay';
  object(who, opts);
  const init = finite(who, 'init', opts.init);
  const peak = finite(who, 'peak', opts.peak);
  const end = finite(who, 'end', opts.end ?? 0);
  const warmup = integer(who, 'warmupSteps', opts.warmupSteps, 0);
  const total = integer(who, 'decaySteps', opts.decaySteps, 1);
  if (total <= warmup) throw new SymflowError(who, `decaySteps must be greater than warmupSteps (it includes the warmup), got decaySteps ${total} and warmupSteps ${warmup}`);
  const exponent = hyper(who, 'exponent', opts.exponent ?? 1, { min: 0, minExclusive: true });
  const decay = cosineFromTo(who, peak, end, total - warmup, exponent);
  if (warmup === 0) return decay;
  return joinChecked(who, [transition(who, { init, end: peak, steps: warmup, begin: 0, power: 1 }), decay], [warmup]);
}

/** Options of `schedules.piecewiseConstant`. */
export interface PiecewiseConstantOptions {
  /** The value before the first boundary. */
  init: number;
  /** `{ step: scale }`: from each step on, the value is multiplied by its scale (≥ 0). */
  boundaries: Readonly<Record<number, number>>;
}

/**
 * A constant multiplied by a scale at each boundary (optax `piecewise_constant_schedule`, PyTorch `MultiStepLR`):
 * init times the product of the scales of all boundaries ≤ step (so a boundary's own step has the new value).
 * ```ts
 * const lr = schedules.piecewiseConstant({ init: 0.1, boundaries: { 1000: 0.1, 2000: 0.1 } });
 * lr.at(999); // 0.1
 * lr.at(1000); // 0.01
 * ```
 * @param opts init, boundaries @returns a `Schedule`
 */
export function piecewiseConstant(opts: PiecewiseConstantOptions): Schedule {
  const who = 'piecewiseConstant';
  object(who, opts);
  const init = finite(who, 'init', opts.init);
  if (typeof opts.boundaries !== 'object' || opts.boundaries === null || Array.isArray(opts.boundaries)) {
    throw new SymflowError(who, `boundaries must be an object { step: scale }, got ${describe(opts.boundaries)}`);
  }
  const entries = Object.entries(opts.boundaries).map(([key, scale]) => {
    const step = key.trim() === '' ? NaN : Number(key);
    if (!Number.isInteger(step) || step < 0) throw new SymflowError(who, `boundaries: step must be an integer >= 0, got ${JSON.stringify(key)}`);
    return [step, hyper(who, `boundaries[${key}]`, scale, { min: 0 })] as const;
  }).sort((a, b) => a[0] - b[0]);
  // The running products, in float64: every piece is then one rounding from its exact value.
  const values = [init];
  for (const [, scale] of entries) values.push(values.at(-1)! * scale);
  return piecewise(who, entries.map(([step]) => step), values);
}

/** Options of `schedules.piecewiseValues`. */
export interface PiecewiseValuesOptions {
  /** Strictly increasing integer steps ≥ 0 at which the value changes. */
  boundaries: readonly number[];
  /** One more value than boundaries: `values[i]` from `boundaries[i − 1]` (inclusive) to `boundaries[i]`. */
  values: readonly number[];
}

/**
 * A constant per interval, given by its values (Keras `PiecewiseConstantDecay`, but the boundary's own step takes
 * the new value, as in optax and `join`; Keras changes one step later, so add 1 to its boundaries).
 * ```ts
 * const lr = schedules.piecewiseValues({ boundaries: [1000, 2000], values: [0.1, 0.01, 0.001] });
 * lr.at(1000); // 0.01
 * ```
 * @param opts boundaries, values @returns a `Schedule`
 */
export function piecewiseValues(opts: PiecewiseValuesOptions): Schedule {
  const who = 'piecewiseValues';
  object(who, opts);
  const boundaries = steps(who, 'boundaries', opts.boundaries);
  if (!Array.isArray(opts.values) || opts.values.length !== boundaries.length + 1) {
    const got = Array.isArray(opts.values) ? `${opts.values.length} values` : describe(opts.values);
    throw new SymflowError(who, `values must be an array of boundaries.length + 1 = ${boundaries.length + 1} numbers, got ${got}`);
  }
  return piecewise(who, boundaries, opts.values.map((v, i) => finite(who, `values[${i}]`, v)));
}

/**
 * Schedules one after another (optax `join_schedules`, PyTorch `SequentialLR`): `schedules[0]` before
 * `boundaries[0]`, then `schedules[i]` from `boundaries[i − 1]` on, seeing the step minus that boundary (so each
 * later schedule starts from its own step 0).
 * ```ts
 * const warm = schedules.linear({ init: 0, end: 0.1, steps: 100 });
 * const lr = schedules.join([warm, schedules.cosineDecay({ init: 0.1, steps: 900 })], [100]);
 * ```
 * @param list the schedules @param boundaries strictly increasing integer steps ≥ 0, one fewer than schedules
 * @returns a `Schedule`
 */
export function join(list: readonly Schedule[], boundaries: readonly number[]): Schedule {
  const who = 'join';
  if (!Array.isArray(list) || list.length === 0) throw new SymflowError(who, `schedules must be a non-empty array, got ${describe(list)}`);
  list.forEach((s, i) => {
    if (typeof s !== 'function' || typeof (s as Partial<Schedule>).at !== 'function') {
      throw new SymflowError(who, `schedules[${i}] is not a Schedule (a graph function with a host 'at'); make one with defineSchedule`);
    }
  });
  const bs = steps(who, 'boundaries', boundaries);
  if (bs.length !== list.length - 1) throw new SymflowError(who, `boundaries must have schedules.length − 1 = ${list.length - 1} entries, got ${bs.length}`);
  return joinChecked(who, list, bs);
}

// --- building blocks ---

function joinChecked(who: string, list: readonly Schedule[], boundaries: readonly number[]): Schedule {
  return defineSchedule(who, (t) => {
    let out = list[0]!(t);
    boundaries.forEach((b, i) => (out = where(less(t, b), out, list[i + 1]!(add(t, -b)))));
    return out;
  }, (n) => {
    let i = 0;
    while (i < boundaries.length && n >= boundaries[i]!) i++;
    return list[i]!.at(i === 0 ? n : n - boundaries[i - 1]!);
  });
}

/** values[i] from boundaries[i − 1] on (values[0] before boundaries[0]); each piece is its value exactly. */
function piecewise(who: string, boundaries: readonly number[], values: readonly number[]): Schedule {
  return defineSchedule(who, (t) => {
    let out = fill(values[0]!, t);
    boundaries.forEach((b, i) => (out = where(greaterEqual(t, b), values[i + 1]!, out)));
    return out;
  }, (n) => {
    let i = 0;
    while (i < boundaries.length && n >= boundaries[i]!) i++;
    return values[i]!;
  });
}

/** (init − end)·(1 − c/steps)^power + end with c = clip(step − begin, 0, steps). */
function transition(who: string, o: { init: number; end: number; steps: number; begin: number; power: number }): Schedule {
  const { init, end, steps, begin, power } = o;
  return defineSchedule(who, (t) => {
    // c/steps is exactly 1 at the end of the transition, so the value there is `end` exactly.
    const frac = sub(1, div(minimum(maximum(add(t, -begin), 0), steps), steps));
    return add(mul(init - end, power === 1 ? frac : pow(frac, power)), end);
  }, (n) => (init - end) * (1 - Math.min(Math.max(n - begin, 0), steps) / steps) ** power + end);
}

/** (from − to)·c^exponent + to with c = ½(1 + cos(π·min(step, steps)/steps)): `from` at 0, `to` from `steps` on. */
function cosineFromTo(who: string, from: number, to: number, steps: number, exponent: number): Schedule {
  return defineSchedule(who, (t) => {
    // min(t, steps)/steps is exactly 1 at the end, so cos gives −1 and the value is `to` exactly.
    const c = mul(0.5, add(1, cos(mul(Math.PI, div(minimum(t, steps), steps)))));
    return add(mul(from - to, exponent === 1 ? c : pow(c, exponent)), to);
  }, (n) => (from - to) * (0.5 * (1 + Math.cos((Math.PI * Math.min(n, steps)) / steps))) ** exponent + to);
}

/** `value` in the step's shape (a scalar for a scalar step). */
function fill(value: number, t: Tensor): Tensor {
  const v = scalarConstant(value, 'float32');
  return t.rank === 0 ? v : broadcastLike(v, t);
}

// --- argument checks: errors name the schedule, the argument and the bad value ---

function options(who: string, opts: LinearOptions): { init: number; end: number; steps: number; begin: number } {
  object(who, opts);
  return {
    init: finite(who, 'init', opts.init),
    end: finite(who, 'end', opts.end),
    steps: integer(who, 'steps', opts.steps, 1),
    begin: integer(who, 'begin', opts.begin ?? 0, 0),
  };
}

function object(who: string, opts: unknown): void {
  if (typeof opts !== 'object' || opts === null) throw new SymflowError(who, `expects an options object, got ${describe(opts)}`);
}

function finite(who: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SymflowError(who, `${arg} must be a finite number, got ${describe(v)}`);
  return v;
}

function integer(who: string, arg: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new SymflowError(who, `${arg} must be an integer >= ${min}, got ${describe(v)}`);
  return v;
}

function flag(who: string, arg: string, v: unknown): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new SymflowError(who, `${arg} must be a boolean, got ${describe(v)}`);
  return v === true;
}

function steps(who: string, arg: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw new SymflowError(who, `${arg} must be an array of steps, got ${describe(v)}`);
  v.forEach((b, i) => {
    integer(who, `${arg}[${i}]`, b, 0);
    if (i > 0 && b <= v[i - 1]) throw new SymflowError(who, `${arg} must be strictly increasing, got ${v[i - 1]} then ${b} at ${arg}[${i}]`);
  });
  return [...v] as number[];
}

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'function' ? 'a function' : Array.isArray(v) ? `[${v.map(describe).join(', ')}]` : String(v);
}
