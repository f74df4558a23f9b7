// Dropout's mask draw by WebAssembly SIMD (src/graph/maskSimd.ts) against the scalar loop it replaces: the same
// bits for every size (whole vectors and the ragged tails), keep probability and key, and dropout's keep
// decisions equal to bernoulli's (the uniform draw they share).
import { describe, expect, it } from 'vitest';
import { Session, bernoulli, dropout, placeholder } from '../src/index.js';
import { drawMaskScalar, drawRandom, randomKey } from '../src/graph/random.js';
import { maskSimd } from '../src/graph/maskSimd.js';
import { values } from './helpers.js';

const threshold = (keep: number) => Math.ceil(Math.fround(keep) * 16777216) | 0;
const bitsOf = (f: Float32Array) => Array.from(new Int32Array(f.buffer, f.byteOffset, f.length));

describe('the SIMD mask draw', () => {
  it('runs here (Node has WebAssembly SIMD), and writes exactly the scalar loop\'s bits', () => {
    expect(maskSimd(new Int32Array(4), 1, 0, 0, 0)).toBe(true);
    const attrs = { seed: -1, salt: 12345 };
    for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 1000, 65_537]) {
      for (const [keep, value] of [[0.5, 2], [0.75, 1 / 0.75], [1, 1], [1e-7, 1e7], [0.9999999, 1.0000001]] as const) {
        for (const step of [0, 1, 2 ** 32 + 5]) {
          const key = randomKey(attrs, 99, step);
          const simd = drawRandom({ dist: 'mask', a: keep, b: value }, key, [n]);
          const scalar = new Float32Array(n);
          drawMaskScalar(scalar, key[0], key[1], threshold(keep), value);
          expect(bitsOf(simd)).toEqual(bitsOf(scalar));
        }
      }
    }
  });

  it('keeps about the keep fraction, scaled, and leaves nothing else', () => {
    const v = drawRandom({ dist: 'mask', a: 0.3, b: 1 / 0.3 }, randomKey({ seed: 4, salt: 0 }, 0, 7), [100_000]);
    const kept = v.filter((x) => x !== 0);
    expect(kept.every((x) => x === Math.fround(1 / 0.3))).toBe(true);
    expect(Math.abs(kept.length / v.length - 0.3)).toBeLessThan(0.01);
  });

  it('a mask of several chunks (65,536 elements each), and a smaller one after, match the scalar loop', () => {
    for (const n of [300_000, 65_536, 65_537, 131_071, 17]) {
      const key = randomKey({ seed: 1, salt: 0 }, 0, n);
      const simd = drawRandom({ dist: 'mask', a: 0.5, b: 2 }, key, [n]);
      const scalar = new Float32Array(n);
      drawMaskScalar(scalar, key[0], key[1], threshold(0.5), 2);
      expect(bitsOf(simd)).toEqual(bitsOf(scalar));
    }
  });

  it('dropout keeps exactly where bernoulli(1 − rate) with the same seed is true', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const x = placeholder([null, 37]);
    const ones = Array.from({ length: 9 }, () => Array.from({ length: 37 }, () => 1));
    const [d, b] = (await s.run([dropout(x, 0.4, { seed: 11 }), bernoulli(0.6, x, { seed: 11 })], [[x, ones]], { training: true })).map(values);
    expect(d.map((v) => v !== 0)).toEqual(b.map((v) => v !== 0));
    expect(d.filter((v) => v !== 0).every((v) => v === Math.fround(1 / 0.6))).toBe(true);
    await s.dispose();
  });
});
