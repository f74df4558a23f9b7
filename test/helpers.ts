import { expect } from 'vitest';
import type { HostTensor } from '../src/index.js';

/** The kernel backends every suite runs on. */
export const BACKENDS = ['cpu', 'wasm', 'onnx'] as const;

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
