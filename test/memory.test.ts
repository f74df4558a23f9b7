import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Session, SymflowError, add, initializers, mul, placeholder, reshape, sum, variable } from '../src/index.js';
import { BACKENDS } from './helpers.js';

const exec = promisify(execFile);
const MiB = 2 ** 20;

interface Figures {
  before: { rss: number; heapUsed: number; external: number; tensors: number };
  after: { rss: number; heapUsed: number; external: number; tensors: number };
  /** How many of the graphs built (their constants, weakly held) are still alive after a collection. */
  alive: number;
  built: number;
}

// The figures come from a child process: `--expose-gc` gives real collections before each reading (vitest's
// workers have no gc), a fixed young generation and glibc's trim keep RSS to what is held rather than to where
// the allocators' high-water marks happen to be. Two children at a time (the machine has 2 cores).
let slots = 2;
const waiting: (() => void)[] = [];
async function child(mode: 'runs' | 'cycles' | 'scopes' | 'graphs', backend: string, count = 1000): Promise<unknown> {
  while (slots === 0) await new Promise<void>((r) => waiting.push(r));
  slots--;
  try {
    const { stdout } = await exec(
      process.execPath,
      ['--expose-gc', '--min-semi-space-size=1', '--max-semi-space-size=1', '--import', 'tsx', join(__dirname, 'fixtures', 'memoryGrowth.ts'), mode, backend, String(count)],
      { cwd: join(__dirname, '..'), env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0:glibc.malloc.arena_max=1' } },
    );
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  } finally {
    slots++;
    waiting.shift()?.();
  }
}

// All started by the first test that needs one, then awaited by each test: the children take about 25 s two at a
// time, 40 s one by one.
let started: Map<string, Promise<unknown>> | undefined;
function figures(key: string): Promise<unknown> {
  started ??= new Map(BACKENDS.flatMap((b) => (['runs', 'cycles', 'scopes'] as const).map((m) => [`${m} ${b}`, child(m, b)] as const)));
  for (const p of started.values()) p.catch(() => undefined);
  return started.get(key)!;
}

/**
 * What each reading bounds, over 1,000 graphs (each with a 1,000-float constant, 4 KB) after 200 of warm-up:
 * - tensors: exactly flat (the constants' device tensors are freed with their last compiled function);
 * - alive: at most Session.run's cache of 64 graphs (none for disposed functions) — nothing process-wide holds a graph;
 * - external (ArrayBuffer bytes): under 1 MiB, where keeping the constants alone is 3.8 MiB;
 * - RSS: under 32 MiB. RSS moves by up to ~20 MiB between readings with nothing held (the JIT, allocator pages); a
 *   function whose onnxruntime session is never released costs 250 MiB per 1,000 (measured), and fc57b06 grew
 *   +16 to +31 MiB per 1,000 runs.
 */
function expectFlat(f: Figures, heldGraphs: number): void {
  const grew = (k: 'rss' | 'external') => (f.after[k] - f.before[k]) / MiB;
  expect(f.after.tensors, 'TF.js tensors').toBe(f.before.tensors);
  expect(f.alive, `graphs still alive of ${f.built}`).toBeLessThanOrEqual(heldGraphs);
  expect(grew('external'), 'ArrayBuffer MiB').toBeLessThan(1);
  expect(grew('rss'), 'RSS MiB').toBeLessThan(32);
}

describe('names, stored per base rather than one entry per node', () => {
  it('stay unique and read as before: base, base_1, …, skipping names claimed as bases', () => {
    const names = ['memName', 'memName', 'memName_3', 'memName', 'memName', 'memName', 'memName_1', 'memName_3', 'memName_01'].map(
      (n) => variable(0, { name: n }).name,
    );
    expect(names).toEqual(['memName', 'memName_1', 'memName_3', 'memName_2', 'memName_4', 'memName_5', 'memName_1_1', 'memName_3_1', 'memName_01']);
  });
});

describe('graphs with conds', () => {
  it('10,000 built and dropped (nested conds, their gradients and JSON) leave the heap flat and none alive', async () => {
    // Each graph is ~40 nodes of ~1 KB of objects; were anything beside the graph to hold them, the heap would grow
    // by tens of MiB.
    const f = (await child('graphs', 'cpu', 10_000)) as { grewMiB: number; alive: number; graphs: number; nodes: number };
    expect(f.graphs).toBe(10_000);
    expect(f.nodes).toBeGreaterThan(10_000 * 20);
    expect(f.alive).toBe(0);
    expect(f.grewMiB).toBeLessThan(2);
  });
});

describe.each(BACKENDS)('memory stays flat on %s', (backend) => {
  it('1,000 Session.run calls, each on a fresh graph with a new 1,000-float constant', async () => {
    expectFlat((await figures(`runs ${backend}`)) as Figures, 64);
  });

  it('1,000 compile / call / dispose cycles of a session function', async () => {
    expectFlat((await figures(`cycles ${backend}`)) as Figures, 0);
  });

  it('conds built before garbage collections keep their gradients and their JSON (a cond holds its branches itself)', async () => {
    // v = 2, x = 2: the taken branches give (v·x)² = 16, whose gradient 2·v·x² is 16 too.
    expect(await figures(`scopes ${backend}`)).toEqual({ expected: [16, 16], again: [16, 16], sameJSON: true, roundTrip: [16, 16, 16] });
  });

  it('a disposed function is refused by name; calls issued before dispose complete; dispose twice is fine', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null], { name: 'x' });
    const w = variable(initializers.zeros([]), { name: 'w' });
    const total = sum(mul(x, add(w, 1)));
    await s.getValue(w);
    const tensors = s.numTensors();
    const f = s.function({ inputs: [x], outputs: [total], updates: [[w, add(w, 1)]] });
    const early = [f([[1, 2]]), f([[1, 2]])];
    const released = f.dispose();
    await expect(f([[1, 2]])).rejects.toThrow(SymflowError);
    await expect(f([[1, 2]])).rejects.toThrow(new RegExp(`^session\\.function: the function of outputs '${total.name}' and updates of 'w[^']*' is disposed`));
    expect((await Promise.all(early)).map((r) => r[0]!.data[0])).toEqual([3, 6]);
    await released;
    await f.dispose();
    expect(f.dispose()).toBe(f.dispose());
    expect(Array.from((await s.getValue(w)).data)).toEqual([2]);
    expect(s.numTensors()).toBe(tensors);
    await s.dispose();
  });

  it('a run that fails in a kernel keeps no first value of a variable it never used', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null], { name: 'x' });
    const v = variable(initializers.ones([2, 2]), { name: 'fresh' });
    const tensors = s.numTensors();
    await expect(s.run(sum(add(reshape(x, [2, 2]), v)), [[x, [1, 2, 3]]])).rejects.toThrow(/reshape: failed at node/);
    expect(s.numTensors()).toBe(tensors);
    expect(s.hasValue(v)).toBe(false);
    expect(s.variables).toEqual([]);
    expect(Array.from((await s.getValue(v)).data)).toEqual([1, 1, 1, 1]);
    await s.dispose();
  });

  it('a snapshot that fails on a later entry keeps none of the values it took', async () => {
    const s = await Session.create({ backend });
    const used = variable(initializers.ones([3]), { name: 'used' });
    await s.getValue(used);
    const fresh = variable(initializers.zeros([3]), { name: 'never' });
    const x = placeholder([3], { name: 'x' });
    const tensors = s.numTensors();
    let error: unknown;
    try {
      s.snapshot([used, fresh, x as never]);
    } catch (e) {
      error = e;
    }
    expect(s.numTensors()).toBe(tensors);
    expect(s.hasValue(fresh)).toBe(false);
    expect(String(error)).toMatch(/^SymflowError: Session\.snapshot: variables\[2\] is not a variable \(got Tensor 'x[^']*' \(placeholder\)/);
    expect(s.variables).toEqual([used]);
    const snap = s.snapshot([used, fresh]);
    snap.dispose();
    expect(s.hasValue(fresh)).toBe(true);
    await s.dispose();
  });
});
