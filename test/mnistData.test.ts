import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, type MnistSplit } from '../examples/data/mnist.js';

const PIXELS = 784;

/** A digest of image k's pixels (exact bytes). */
function imageHash(x: Float32Array, k: number): string {
  const row = x.subarray(k * PIXELS, (k + 1) * PIXELS);
  return createHash('sha1').update(new Uint8Array(row.buffer, row.byteOffset, row.byteLength)).digest('hex');
}

describe('loadMnist (examples/data/mnist.ts)', () => {
  let m: MnistSplit;
  beforeAll(() => {
    m = loadMnist();
  });

  it('gives 8,000 training and 2,000 test digits of 784 pixels', () => {
    expect(m.trainX).toBeInstanceOf(Float32Array);
    expect(m.trainY).toBeInstanceOf(Int32Array);
    expect(m.testX).toBeInstanceOf(Float32Array);
    expect(m.testY).toBeInstanceOf(Int32Array);
    expect(m.trainX.length).toBe(8000 * PIXELS);
    expect(m.trainY.length).toBe(8000);
    expect(m.testX.length).toBe(2000 * PIXELS);
    expect(m.testY.length).toBe(2000);
  });

  it('pixels lie in [0, 1], and no image is blank', () => {
    for (const x of [m.trainX, m.testX]) {
      let lo = Infinity, hi = -Infinity;
      for (const v of x) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      expect(hi).toBeGreaterThan(0.5);
      const n = x.length / PIXELS;
      for (let k = 0; k < n; k++) {
        let ink = 0;
        for (let p = k * PIXELS; p < (k + 1) * PIXELS; p++) ink += x[p]!;
        if (!(ink > 0)) throw new Error(`image ${k} is blank`);
      }
    }
  });

  it('labels are integers 0..9 and every class occurs in both splits, roughly balanced', () => {
    for (const [y, n] of [[m.trainY, 8000], [m.testY, 2000]] as const) {
      const counts = new Array<number>(10).fill(0);
      for (const label of y) {
        expect(Number.isInteger(label) && label >= 0 && label <= 9).toBe(true);
        counts[label]!++;
      }
      for (const c of counts) {
        expect(c).toBeGreaterThan(0);
        // About a tenth each (the package holds about 1,000 digits per class, shuffled before the split).
        expect(c).toBeGreaterThan(n / 10 / 2);
        expect(c).toBeLessThan((n / 10) * 2);
      }
    }
  });

  it('is deterministic: a second call gives identical arrays', () => {
    const again = loadMnist();
    expect(Buffer.from(again.trainX.buffer).equals(Buffer.from(m.trainX.buffer))).toBe(true);
    expect(Buffer.from(again.trainY.buffer).equals(Buffer.from(m.trainY.buffer))).toBe(true);
    expect(Buffer.from(again.testX.buffer).equals(Buffer.from(m.testX.buffer))).toBe(true);
    expect(Buffer.from(again.testY.buffer).equals(Buffer.from(m.testY.buffer))).toBe(true);
  });

  it('the split is shuffled (not class by class)', () => {
    const firstHundred = new Set(m.trainY.subarray(0, 100));
    expect(firstHundred.size).toBe(10);
  });

  it('train and test share no image', () => {
    const train = new Set<string>();
    for (let k = 0; k < 8000; k++) train.add(imageHash(m.trainX, k));
    let shared = 0;
    for (let k = 0; k < 2000; k++) if (train.has(imageHash(m.testX, k))) shared++;
    expect(shared).toBe(0);
  });

  it('refuses to ask for more digits than the package has', () => {
    expect(() => loadMnist(9000, 2000)).toThrow(/asked for 11000 digits/);
  });
});
