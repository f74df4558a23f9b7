// Loader fuzzing: random byte flips, insertions and truncations of valid graph JSON and checkpoint files. Every
// outcome must be a clean load or a SymflowError — never another exception, a crash or a hang.
import { createHash } from 'node:crypto';
import {
  SymflowError, cond, fromJSON, greater, layers, mean, placeholder, sparseSoftmaxCrossEntropy, sum, toJSON, variablesOf,
} from '../src/index.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/session/checkpoint.js';
import { seededRandom } from '../src/graph/initializers.js';

export interface LoaderFuzzResult {
  cases: number;
  clean: number;
  refused: number;
  failures: string[];
  slowestMs: number;
}

function sampleGraph(): string {
  const x = placeholder([null, 4], { name: 'x' });
  const y = placeholder([null], { dtype: 'int32', name: 'y' });
  const logits = layers.dense(layers.dense(x, 5, { activation: 'relu', seed: 1 }), 3, { seed: 2 });
  const loss = mean(sparseSoftmaxCrossEntropy(logits, y));
  const out = cond(greater(loss, 1), () => sum(logits), () => loss);
  void variablesOf(out);
  return JSON.stringify(toJSON([out]));
}

function sampleCheckpoint(): Uint8Array {
  return encodeCheckpoint([
    { name: 'dense/kernel', value: { shape: [4, 5], dtype: 'float32', data: new Float32Array(20).map((_, i) => i / 7) } },
    { name: 'adam/iterations', value: { shape: [], dtype: 'int32', data: Int32Array.of(12) } },
    { name: 'mask', value: { shape: [3], dtype: 'bool', data: Uint8Array.of(1, 0, 1) } },
  ]);
}

/** Re-seals a mutated checkpoint with a valid checksum, so mutations reach the header parser, not just the hash check. */
function reseal(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 32) return bytes;
  const out = new Uint8Array(bytes);
  out.set(createHash('sha256').update(out.subarray(0, out.length - 32)).digest(), out.length - 32);
  return out;
}

function mutate(bytes: Uint8Array, rand: () => number): Uint8Array {
  const kind = Math.floor(rand() * 4);
  if (kind === 0) return bytes.subarray(0, Math.floor(rand() * bytes.length));
  const out = new Uint8Array(bytes);
  const flips = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < flips; i++) {
    const at = Math.floor(rand() * out.length);
    out[at] = kind === 1 ? out[at]! ^ (1 << Math.floor(rand() * 8)) : kind === 2 ? Math.floor(rand() * 256) : ' {}[]",:0-9e'.charCodeAt(Math.floor(rand() * 14));
  }
  return out;
}

export function fuzzLoaders(count: number, seed: number): LoaderFuzzResult {
  const rand = seededRandom(seed);
  const graph = new TextEncoder().encode(sampleGraph());
  const ckpt = sampleCheckpoint();
  const result: LoaderFuzzResult = { cases: 0, clean: 0, refused: 0, failures: [], slowestMs: 0 };
  for (let i = 0; i < count; i++) {
    const onGraph = i % 2 === 0;
    const mutated = mutate(onGraph ? graph : ckpt, rand);
    const input = onGraph ? mutated : rand() < 0.7 ? reseal(mutated) : mutated;
    const started = performance.now();
    try {
      if (onGraph) fromJSON(new TextDecoder().decode(input));
      else decodeCheckpoint(input);
      result.clean++;
    } catch (e) {
      if (e instanceof SymflowError) result.refused++;
      else result.failures.push(`case ${i} (seed ${seed}, ${onGraph ? 'graph' : 'checkpoint'}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    }
    result.slowestMs = Math.max(result.slowestMs, performance.now() - started);
    result.cases++;
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.env['LOADER_CASES'] ?? 20_000);
  const seed = Number(process.env['SEED'] ?? 1);
  const r = fuzzLoaders(count, seed);
  console.log(`loader fuzz: ${r.cases} mutated files (seed ${seed}): ${r.clean} loaded, ${r.refused} refused with a clear error, ${r.failures.length} failures; slowest ${r.slowestMs.toFixed(1)} ms`);
  for (const f of r.failures.slice(0, 20)) console.log(`  ${f}`);
  if (r.failures.length > 0 || r.slowestMs > 2000) process.exitCode = 1;
}
