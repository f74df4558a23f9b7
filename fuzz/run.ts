// Differential fuzzer: random symflow graphs, forward values and symbolic gradients on each backend, against eager
// TF.js (cpu) and tf.grads.
//
//   npx tsx fuzz/run.ts --seed 1 --count 10000 --backends cpu,wasm,onnx,onnx-wasm
//   npx tsx fuzz/run.ts --seed 1 --only 4711          # one graph, its recipe printed (to replay a mismatch)
//
// Options (or environment variables): --seed S (FUZZ_SEED, default 1), --count N (FUZZ_COUNT, default 1000),
// --start I (FUZZ_START, first graph index, default 0), --backends list (FUZZ_BACKENDS, default cpu,wasm,onnx,onnx-wasm),
// --only I (one graph, verbose), --rtol R, --atol A, --max-print K (mismatches printed in full, default 20),
// --include-known-bugs (FUZZ_INCLUDE_KNOWN_BUGS=1: also check graphs that exercise a reported bug, see KNOWN_BUGS),
// --recycle N (FUZZ_RECYCLE: new sessions every N graphs; default 0, one session per backend for the whole run).
// --rtol-norm R: see DEFAULT_TOLERANCE in fuzz/check.ts.
// --edge P (FUZZ_EDGE, default 0.2): the share of edge graphs, whose inputs hold NaN, ±Inf, −0 and 0-size dimensions
// (see CheckOptions.edge; 0 turns them off).
// Exits 1 when any comparison mismatched or errored, or TF.js tensors leaked.
import * as tf from '@tensorflow/tfjs';
import { Session, type BackendName } from '../src/index.js';
import { checkGraph, type ClosestCall, DEFAULT_TOLERANCE, formatMismatch, KNOWN_BUGS, knownBug, type Mismatch } from './check.js';
import { formatRecipe, type OpName } from './graphs.js';

/** Options without a value. */
const FLAGS = new Set(['include-known-bugs']);

function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`fuzz: unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (FLAGS.has(a.slice(2))) out.set(a.slice(2), '1');
    else out.set(a.slice(2), argv[++i] ?? '');
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const env = process.env;
const num = (key: string, envKey: string, dflt: number) => {
  const raw = args.get(key) ?? env[envKey];
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new Error(`fuzz: --${key} ${raw} is not a number`);
  return v;
};
const only = args.has('only') ? num('only', 'FUZZ_ONLY', 0) : undefined;
const seed = num('seed', 'FUZZ_SEED', 1);
const start = only ?? num('start', 'FUZZ_START', 0);
const count = only !== undefined ? 1 : num('count', 'FUZZ_COUNT', 1000);
const backends = (args.get('backends') ?? env['FUZZ_BACKENDS'] ?? 'cpu,wasm,onnx,onnx-wasm').split(',').map((b) => b.trim()).filter(Boolean) as BackendName[];
const tolerance = {
  rtol: num('rtol', 'FUZZ_RTOL', DEFAULT_TOLERANCE.rtol),
  atol: num('atol', 'FUZZ_ATOL', DEFAULT_TOLERANCE.atol),
  rtolNorm: num('rtol-norm', 'FUZZ_RTOL_NORM', DEFAULT_TOLERANCE.rtolNorm),
};
const maxPrint = num('max-print', 'FUZZ_MAX_PRINT', 20);
const recycle = num('recycle', 'FUZZ_RECYCLE', 0);
const includeKnownBugs = args.has('include-known-bugs') || env['FUZZ_INCLUDE_KNOWN_BUGS'] === '1';
const edge = num('edge', 'FUZZ_EDGE', 0.2);
if (edge < 0 || edge > 1) throw new Error(`fuzz: --edge ${edge} must be in [0, 1]`);

async function main(): Promise<number> {
  await tf.setBackend('cpu');
  const baseline = tf.memory().numTensors;
  let sessions: Session[] = [];
  const open = async () => {
    sessions = [];
    for (const backend of backends) sessions.push(await Session.create({ backend }));
  };
  await open();
  console.log(`fuzz: seed ${seed}, graphs ${start}…${start + count - 1}, backends ${sessions.map((s) => s.backend).join(',')}, rtol ${tolerance.rtol}, atol ${tolerance.atol}, rtolNorm ${tolerance.rtolNorm}, edge graphs ${edge}`);

  const t0 = performance.now();
  let graphs = 0, comparisons = 0, regenerated = 0, resampled = 0, skipped = 0, edgeGraphs = 0;
  const mismatches: Mismatch[] = [];
  const opCounts = new Map<OpName, number>();
  const failedGraphs = new Set<number>();
  const knownSkips = new Map<string, number>();
  const closest: ClosestCall[] = [];
  let lastReport = t0;
  let peakRss = 0;
  try {
    for (let index = start; index < start + count; index++) {
      if (recycle > 0 && index > start && (index - start) % recycle === 0) {
        // Session.run keeps every compiled function until the session is disposed (on onnx, a native
        // InferenceSession each, ~0.5 MB): --recycle N bounds the memory of long runs.
        for (const s of sessions) s.dispose();
        await open();
      }
      const report = await checkGraph(seed, index, sessions, { tolerance, edge, ...(includeKnownBugs ? {} : { skip: knownBug }) });
      if (report.recipe === undefined) {
        skipped++;
        continue;
      }
      if (report.skippedBecause !== undefined) {
        knownSkips.set(report.skippedBecause, (knownSkips.get(report.skippedBecause) ?? 0) + 1);
        if (only !== undefined) console.log(`${formatRecipe(report.recipe)}\nskipped: known bug ${report.skippedBecause} (--include-known-bugs to check it)`);
        continue;
      }
      graphs++;
      if (report.edge) edgeGraphs++;
      if (only !== undefined) console.log(formatRecipe(report.recipe));
      if (report.regenerated > 0) regenerated++;
      resampled += report.resampled;
      comparisons += report.comparisons;
      for (const s of report.recipe.steps) opCounts.set(s.op, (opCounts.get(s.op) ?? 0) + 1);
      if (report.closest !== undefined) {
        closest.push(report.closest);
        closest.sort((a, b) => b.ratio - a.ratio);
        closest.length = Math.min(closest.length, 5);
      }
      for (const m of report.mismatches) {
        if (mismatches.length < maxPrint) console.log(formatMismatch(m));
        else console.log(`MISMATCH seed=${m.seed} index=${m.index} backend=${m.backend} ${m.what}: ${m.message.split('\n')[0]}`);
        mismatches.push(m);
        failedGraphs.add(index);
      }
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      const now = performance.now();
      if (now - lastReport > 15_000) {
        lastReport = now;
        console.error(`  … ${index - start + 1}/${count} graphs, ${mismatches.length} mismatches, ${((now - t0) / 1000).toFixed(0)} s, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
      }
    }
  } finally {
    for (const s of sessions) s.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  await tf.setBackend('cpu');
  const leaked = tf.memory().numTensors - baseline;

  if (mismatches.length > maxPrint) console.log(`(${mismatches.length - maxPrint} more mismatches not printed)`);
  if (mismatches.length > 0) {
    const byKind = new Map<string, number>();
    for (const m of mismatches) byKind.set(`${m.backend} ${m.what.split(' ')[0]}`, (byKind.get(`${m.backend} ${m.what.split(' ')[0]}`) ?? 0) + 1);
    console.log(`mismatches by backend and kind: ${[...byKind].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    console.log(`failing graph indices (seed ${seed}): ${[...failedGraphs].slice(0, 50).join(' ')}${failedGraphs.size > 50 ? ' …' : ''}`);
  }
  for (const [id, n] of knownSkips) {
    console.log(`skipped ${n} graphs that exercise known bug ${id}: ${KNOWN_BUGS.find((b) => b.id === id)!.description} (--include-known-bugs checks them)`);
  }
  console.log(`closest calls (|diff| / allowed; max|diff| / max|expected|): ${closest.map((c) => `${c.ratio.toFixed(3)}; ${c.normRel.toExponential(1)} (index ${c.index} ${c.backend} ${c.what})`).join(', ')}`);
  const ops = [...opCounts].sort((a, b) => b[1] - a[1]);
  console.log(`ops used (${ops.length} distinct): ${ops.map(([op, n]) => `${op} ${n}`).join(', ')}`);
  console.log(`graphs replaced after every sample hit a kink: ${regenerated}; samples refused: ${resampled}; graph indices given up: ${skipped}; TF.js tensors leaked: ${leaked}`);
  console.log(`fuzz summary: seed ${seed}, ${graphs} graphs checked (${edgeGraphs} with edge values), ${comparisons} comparisons on ${backends.join(',')}, ${mismatches.length} mismatches (${failedGraphs.size} graphs), ${seconds.toFixed(1)} s, peak rss ${(peakRss / 1e6).toFixed(0)} MB`);
  return mismatches.length > 0 || leaked !== 0 ? 1 : 0;
}

main().then((code) => {
  process.exitCode = code;
}, (e: unknown) => {
  console.error(e);
  process.exitCode = 2;
});
