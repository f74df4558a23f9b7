// The differential check of one generated graph: symflow (forward values and symbolic gradients, on each session's
// backend) against eager TF.js on cpu (forward values and `tf.grads`). Shared by fuzz/run.ts and test/fuzz.test.ts.
import * as tf from '@tensorflow/tfjs';
import { gradients, placeholder, type HostTensor, type Session, type Tensor } from '../src/index.js';
import {
  checkSample, EDGE_ELEMENT, EDGE_EMPTY_DIM, evaluate, formatRecipe, generateRecipe, mixSeed, type Recipe, Rng, sampleInputs, SYMFLOW, symflowObjective,
  TFJS, tfjsObjective,
} from './graphs.js';

export interface Tolerance {
  rtol: number;
  atol: number;
  /** Relative to the largest |expected| of the whole tensor (for small entries that are sums of cancelling terms). */
  rtolNorm: number;
}

/**
 * Elementwise: |got − expected| ≤ atol + rtol·|expected| + rtolNorm·max|expected|.
 *
 * The rtolNorm term is for small gradient entries that float32 computes badly on every backend: tanh's gradient
 * 1 − y² at saturation (|x| ≈ 6) cancels to ~1e-5 from two numbers near 1, so a one-ulp difference in tanh between
 * onnxruntime and TF.js moves it by 1e-3 relative (seed 1 index 1959: an entry of 5.2e-3 off by 1.4e-5, in a
 * gradient whose largest entry is 6.6, i.e. 2.1e-6 of the tensor's scale). 1e-5 of the scale leaves 5× headroom
 * for that case; a wrong gradient rule is off by O(1) of the scale (a gradient 0.1 % too large fails). Over 40,000
 * graphs (seeds 1–4) the closest any comparison came to this tolerance was 0.67 of it (seed 2 index 5618: a
 * softmax of logits up to 48, a 6.7e-5 relative difference on cpu).
 */
export const DEFAULT_TOLERANCE: Tolerance = { rtol: 1e-4, atol: 1e-5, rtolNorm: 1e-5 };

// No debug checks and no console banner (symflow's TF.js backends do the same when they load).
tf.enableProdMode();

/** Samples of the inputs tried per recipe before the recipe is replaced (every sample was too close to a kink). */
const SAMPLES_PER_RECIPE = 8;
/** Recipes tried per graph index before the index is given up as skipped. */
const RECIPES_PER_GRAPH = 10;

export interface Mismatch {
  seed: number;
  index: number;
  attempt: number;
  backend: string;
  /** What was compared: `forward v7`, `y`, `grad x0`, or `error` (symflow threw). */
  what: string;
  message: string;
  recipe: string;
  inputs: string;
}

export interface GraphReport {
  /** The recipe checked (undefined when every recipe for this index kept hitting kinks: skipped). */
  recipe?: Recipe;
  /** Recipes replaced because no sample kept clear of their kinks. */
  regenerated: number;
  /** Samples refused (too close to a kink). */
  resampled: number;
  comparisons: number;
  mismatches: Mismatch[];
  /** Set when the caller's `skip` refused the graph. */
  skippedBecause?: string;
  /** This graph's comparison closest to (or furthest beyond) its tolerance. */
  closest?: ClosestCall;
  /** An edge graph (see CheckOptions.edge). */
  edge?: boolean;
}

/**
 * Symflow bugs the fuzzer has found and reported, not yet fixed. A graph that exercises one is skipped (by default
 * in fuzz/run.ts, always in test/fuzz.test.ts) so the other graphs keep being checked; `--include-known-bugs`
 * checks them anyway.
 */
export const KNOWN_BUGS: readonly { id: string; description: string; matches: (recipe: Recipe) => boolean }[] = [];

/** The first known bug a recipe exercises, as a skip reason. */
export function knownBug(recipe: Recipe): string | undefined {
  return KNOWN_BUGS.find((b) => b.matches(recipe))?.id;
}

export interface CheckOptions {
  tolerance?: Tolerance;
  /**
   * The chance that a graph is an edge graph (default 0): its first input may get a 0-size dimension and its input
   * elements may be NaN, ±Inf or −0. Its forward values are checked against TF.js, patched where docs/semantics.md
   * differs from TF.js cpu, and its gradients across the backends (tf.grads' NaN and Inf patterns are its own).
   */
  edge?: number;
  /** Refuses known cases (returns the reason), e.g. a reported symflow bug. */
  skip?: (recipe: Recipe) => string | undefined;
}

interface HostArray {
  shape: number[];
  data: Float32Array;
}

/**
 * Which ops graph `index` draws from: even graphs from the first fuzzer's ops (so the graphs that once found bugs,
 * such as seed 1's graph 44, are drawn as they were), odd graphs from all of them (sin, cos, erf, softplus, silu,
 * gelu too).
 */
export function opsOf(index: number): 'all' | 'first' {
  return index % 2 === 0 ? 'first' : 'all';
}

/** Finds a recipe for (seed, index) and inputs that keep clear of its kinks. Needs the TF.js cpu backend. */
export function recipeAndInputs(seed: number, index: number, edge = false): { recipe?: Recipe; inputs?: Float32Array[]; regenerated: number; resampled: number } {
  let resampled = 0;
  for (let attempt = 0; attempt < RECIPES_PER_GRAPH; attempt++) {
    const recipe = generateRecipe(seed, index, attempt, edge ? EDGE_EMPTY_DIM : 0, opsOf(index));
    const rng = new Rng(mixSeed(seed, index, attempt, 2));
    for (let k = 0; k < SAMPLES_PER_RECIPE; k++) {
      const inputs = sampleInputs(recipe, rng, edge ? EDGE_ELEMENT : 0);
      if (checkSample(recipe, inputs, edge).ok) return { recipe, inputs, regenerated: attempt, resampled };
      resampled++;
    }
  }
  return { regenerated: RECIPES_PER_GRAPH, resampled };
}

/**
 * The TF.js reference on its cpu backend: the outputs, y, and d y / d xₖ by `tf.grads`, as host arrays. Every TF.js
 * tensor is made inside one tidy and freed; a leak throws.
 */
export function tfjsReference(recipe: Recipe, inputs: readonly Float32Array[]): HostArray[] {
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const xs = recipe.inputs.map((inp, k) => tf.tensor(inputs[k]!, inp.shape, 'float32'));
    const vals = evaluate(recipe, TFJS, xs);
    // + 0·Σx for every input: exactly y, and exactly its gradient, but tf.grads no longer refuses an input that
    // reaches y only through a where's condition (taken off the tape, see TFJS.where): its gradient is 0.
    const f = (...args: tf.Tensor[]) => args.reduce((acc, x) => tf.add(acc, tf.mul(0, tf.sum(x))), tfjsObjective(recipe, evaluate(recipe, TFJS, args)));
    return [...recipe.outputs.map((id) => vals[id]!), tfjsObjective(recipe, vals), ...tf.grads(f)(xs)];
  });
  const host = out.map((t) => ({ shape: [...t.shape], data: Float32Array.from(t.dataSync()) }));
  tf.dispose(out);
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`fuzz: the TF.js reference leaked ${after - before} tensors`);
  return host;
}

const show = (data: ArrayLike<number>) => {
  const list = Array.from(data, (v) => (Number.isInteger(v) ? String(v) : v.toPrecision(7)));
  return `[${list.length > 32 ? `${list.slice(0, 32).join(', ')}, … (${list.length})` : list.join(', ')}]`;
};

export interface Comparison {
  /** Largest |got − expected| / allowed over the elements (≤ 1: close; Infinity for NaN or a shape mismatch). */
  ratio: number;
  /** Largest |got − expected| / max(max|expected|, atol): the normwise relative error. */
  normRel: number;
  /** Undefined when close, else a description with both values. */
  message?: string;
}

/** Whether graph `index` of `seed` is an edge graph when a share `rate` of the graphs are (a stream of its own). */
export function isEdgeGraph(seed: number, index: number, rate: number): boolean {
  return rate > 0 && new Rng(mixSeed(seed, index, 4)).bool(rate);
}

/** The forward values (outputs and y) of TF.js on cpu, without gradients: the reference of an edge graph. */
export function tfjsForward(recipe: Recipe, inputs: readonly Float32Array[]): HostArray[] {
  const out = tf.tidy(() => {
    const xs = recipe.inputs.map((inp, k) => tf.tensor(inputs[k]!, inp.shape, 'float32'));
    const vals = evaluate(recipe, TFJS, xs);
    return [...recipe.outputs.map((id) => vals[id]!), tfjsObjective(recipe, vals)];
  });
  const host = out.map((t) => ({ shape: [...t.shape], data: Float32Array.from(t.dataSync()) }));
  tf.dispose(out);
  return host;
}

/**
 * Elementwise comparison under `tol`, NaN-aware: a NaN or an infinity expected must come out as exactly that (NaN
 * as "is NaN"), and only finite expected values set the scale.
 */
export function compare(got: HostTensor, expected: HostArray, tol: Tolerance): Comparison {
  const shapeOk = got.shape.length === expected.shape.length && got.shape.every((d, i) => d === expected.shape[i]);
  if (!shapeOk || got.dtype !== 'float32') {
    return { ratio: Infinity, normRel: Infinity, message: `got ${got.dtype} [${got.shape.join(',')}], expected float32 [${expected.shape.join(',')}]` };
  }
  let scale = 0;
  for (const e of expected.data) if (Number.isFinite(e)) scale = Math.max(scale, Math.abs(e));
  const allowedAt = (i: number) => tol.atol + tol.rtol * Math.abs(expected.data[i]!) + tol.rtolNorm * scale;
  let worst = -1, ratio = 0, maxErr = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const e = expected.data[i]!, g = got.data[i]!;
    if (!Number.isFinite(e)) {
      const same = Number.isNaN(e) ? Number.isNaN(g) : g === e;
      if (!same && (worst < 0 || ratio < Infinity)) [worst, ratio, maxErr] = [i, Infinity, Infinity];
      continue;
    }
    const err = Math.abs(g - e);
    const r = Number.isNaN(err) ? Infinity : err / allowedAt(i);
    maxErr = Math.max(maxErr, Number.isNaN(err) ? Infinity : err);
    if (worst < 0 || r > ratio) [worst, ratio] = [i, r];
  }
  const normRel = maxErr === 0 ? 0 : maxErr / Math.max(scale, tol.atol);
  if (worst < 0 || ratio <= 1) return { ratio: Math.max(ratio, 0), normRel };
  const a = got.data[worst]!, e = expected.data[worst]!;
  const message = `element ${worst}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e).toExponential(3)} > ${allowedAt(worst).toExponential(3)}; `
    + `max|diff| / max|expected| = ${normRel.toExponential(2)})\n    got      ${show(got.data)}\n    expected ${show(expected.data)}`;
  return { ratio, normRel, message };
}

/** The comparison that came closest to its tolerance (or went furthest beyond it). */
export interface ClosestCall {
  ratio: number;
  normRel: number;
  seed: number;
  index: number;
  backend: string;
  what: string;
}

/**
 * Checks graph `index` of `seed` on every session: forward values of the outputs and of y, and the symbolic
 * gradients of y with respect to every input, against TF.js on cpu.
 */
export async function checkGraph(seed: number, index: number, sessions: readonly Session[], opts: CheckOptions = {}): Promise<GraphReport> {
  const tol = opts.tolerance ?? DEFAULT_TOLERANCE;
  // Sessions on TF.js backends switch the global backend when they run: the reference always runs on cpu.
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  let found: ReturnType<typeof recipeAndInputs>;
  const edge = isEdgeGraph(seed, index, opts.edge ?? 0);
  try {
    found = recipeAndInputs(seed, index, edge);
  } catch (e) {
    // A generator self-check failed (a shape or a bound the generator promised): a bug of the fuzzer.
    const recipe = generateRecipe(seed, index, 0, 0, opsOf(index));
    return {
      recipe, regenerated: 0, resampled: 0, comparisons: 1,
      mismatches: [{ seed, index, attempt: 0, backend: '(generator)', what: 'error', message: String(e), recipe: formatRecipe(recipe), inputs: '' }],
    };
  }
  const report: GraphReport = { regenerated: found.regenerated, resampled: found.resampled, comparisons: 0, mismatches: [], edge };
  if (found.recipe === undefined || found.inputs === undefined) return report;
  const { recipe, inputs } = found;
  report.recipe = recipe;
  const reason = opts.skip?.(recipe);
  if (reason !== undefined) {
    report.skippedBecause = reason;
    return report;
  }
  const inputText = recipe.inputs.map((inp, k) => `  x${inp.id} = ${show(inputs[k]!)}`).join('\n');
  const fail = (backend: string, what: string, message: string) => report.mismatches.push({
    seed, index, attempt: recipe.attempt, backend, what, message, recipe: formatRecipe(recipe), inputs: inputText,
  });

  let expected: HostArray[];
  try {
    expected = edge ? tfjsForward(recipe, inputs) : tfjsReference(recipe, inputs);
  } catch (e) {
    report.comparisons++;
    fail('(TF.js reference)', 'error', e instanceof Error ? e.stack ?? e.message : String(e));
    return report;
  }
  const names = [...recipe.outputs.map((id) => `forward ${id < recipe.inputs.length ? 'x' : 'v'}${id}`), 'y', ...recipe.inputs.map((inp) => `grad x${inp.id}`)];

  // One symbolic graph (forward, y and its gradients), run on every session.
  let fetches: Tensor[] = [];
  let phs: Tensor[] = [];
  const build = (unknownEmpty: boolean) => {
    phs = recipe.inputs.map((inp) => placeholder(inp.shape.map((d) => (d === 0 && unknownEmpty ? null : d)), { name: `x${inp.id}` }));
    const vals = evaluate(recipe, SYMFLOW, phs);
    const y = symflowObjective(recipe, vals);
    // Inputs that reach y only through sign or floor have no gradient path in symflow: zeros, as TF.js gives.
    fetches = [...recipe.outputs.map((id) => vals[id]!), y, ...gradients(y, phs, { unconnected: 'zero' })];
  };
  try {
    // A 0-size dimension is declared unknown where the gradients allow it (the run-time path), static where
    // concat, pad or slice gradients need a static size.
    try {
      build(true);
    } catch {
      build(false);
    }
  } catch (e) {
    fail('(graph building)', 'error', e instanceof Error ? e.stack ?? e.message : String(e));
    return report;
  }
  const feeds = phs.map((p, k) => [p, { shape: recipe.inputs[k]!.shape, data: inputs[k]! }] as const);
  const nOut = recipe.outputs.length + 1;
  // An edge graph's gradients: the first backend's are the reference of the others.
  let gradRef: HostArray[] | undefined;
  for (const session of sessions) {
    let got: HostTensor[];
    try {
      got = await session.run(fetches, feeds);
    } catch (e) {
      report.comparisons++;
      // Was it the forward pass or the gradients? Run the forward fetches alone to tell.
      const nForward = recipe.outputs.length + 1;
      let where = 'forward';
      try {
        const fwd = await session.run(fetches.slice(0, nForward), feeds);
        where = fwd.every((g, k) => compare(g, expected[k]!, tol).message === undefined) ? 'gradients (the forward pass alone runs and matches)' : 'gradients (the forward pass alone runs but mismatches)';
      } catch {
        // the forward pass fails too
      }
      fail(session.backend, 'error', `running ${where}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    if (edge && gradRef === undefined) gradRef = got.slice(nOut).map((g) => ({ shape: g.shape, data: Float32Array.from(g.data) }));
    got.forEach((g, k) => {
      report.comparisons++;
      const c = compare(g, edge && k >= nOut ? gradRef![k - nOut]! : expected[k]!, tol);
      if (report.closest === undefined || c.ratio > report.closest.ratio) {
        report.closest = { ratio: c.ratio, normRel: c.normRel, seed, index, backend: session.backend, what: names[k]! };
      }
      const what = !edge ? names[k]! : `${names[k]!} (edge graph${k >= nOut ? `, against ${sessions[0]!.backend}` : ''})`;
      if (c.message !== undefined) fail(session.backend, what, c.message);
    });
  }
  return report;
}

/** A mismatch as a printable block. */
export function formatMismatch(m: Mismatch): string {
  return [
    `MISMATCH seed=${m.seed} index=${m.index} attempt=${m.attempt} backend=${m.backend} ${m.what}`,
    `  ${m.message}`,
    m.recipe.split('\n').map((l) => `  ${l}`).join('\n'),
    '  inputs:',
    m.inputs,
  ].join('\n');
}
