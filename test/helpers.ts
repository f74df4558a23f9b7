import { expect } from 'vitest';
import { type HostTensor, Session, type SessionFunction } from '../src/index.js';

/** The kernel backends every suite runs on. */
export const BACKENDS = ['cpu', 'wasm', 'onnx', 'onnx-wasm'] as const;

/** The raw bytes of a host value: bit-for-bit comparison (NaN- and −0-exact). */
export function bits(t: HostTensor): number[] {
  return Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

/** A seeded uniform generator in [0, 1) (LCG), so the data is the same on every backend and run. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Plain numbers of a host tensor. */
export function values(t: HostTensor): number[] {
  return Array.from(t.data);
}

/** Asserts elementwise closeness: |a − e| ≤ atol + rtol·|e|. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-6): void {
  expect(actual.length, 'length').toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e)) {
      expect(Number.isNaN(a), `element ${i}: expected NaN, got ${a}`).toBe(true);
      continue;
    }
    const ok = Math.abs(a - e) <= atol + rtol * Math.abs(e);
    expect(ok, `element ${i}: got ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`).toBe(true);
  }
}

/**
 * A session whose functions count their calls: `failAt(n)` makes call n (counted across all of them) throw
 * instead of running; `failAt(-1)` turns that off.
 */
export async function failingSession(backend: (typeof BACKENDS)[number]) {
  const s = await Session.create({ backend });
  let count = 0;
  let failing = -1;
  const original = s.function.bind(s);
  s.function = ((spec) => {
    const f = original(spec);
    const wrapped = (async (values) => {
      if (count++ === failing) throw new Error(`injected failure in call ${failing}`);
      return f(values);
    }) as SessionFunction;
    return Object.assign(wrapped, { inputs: f.inputs, outputs: f.outputs, kernelCount: f.kernelCount, dispose: f.dispose });
  }) as Session['function'];
  return { s, calls: () => count, failAt: (n: number) => { failing = n; } };
}
