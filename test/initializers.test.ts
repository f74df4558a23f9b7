// initializers.orthogonal (Keras' Orthogonal, the default of recurrent kernels): orthonormal columns (or rows,
// when wider than tall) times gain, deterministic for a seed, and carried by graph JSON.
import { describe, expect, it } from 'vitest';
import { Session, SymflowError, fromJSON, initializers, nn, placeholder, toJSON, variable } from '../src/index.js';
import { values } from './helpers.js';

/** The Gram matrix of a rows × cols row-major matrix: its columns' (or, with `rowsOf`, its rows') dot products. */
function gram(data: ArrayLike<number>, rows: number, cols: number, rowsOf: boolean): number[][] {
  const n = rowsOf ? rows : cols, len = rowsOf ? cols : rows;
  const at = (v: number, t: number) => (rowsOf ? data[v * cols + t]! : data[t * cols + v]!);
  return Array.from({ length: n }, (_, p) => Array.from({ length: n }, (_, q) => {
    let s = 0;
    for (let t = 0; t < len; t++) s += at(p, t) * at(q, t);
    return s;
  }));
}

describe('initializers.orthogonal', () => {
  it.each([[[6, 4], false], [[3, 12], true], [[2, 3, 5], false], [[5, 5], false]] as const)('shape %j: orthonormal, times gain', async (shape, wide) => {
    const s = await Session.create({ backend: 'cpu' });
    const v = variable(initializers.orthogonal([...shape], { gain: 2, seed: 11 }));
    const data = values(await s.getValue(v));
    const cols = shape[shape.length - 1]!, rows = data.length / cols;
    const g = gram(data, rows, cols, wide);
    g.forEach((row, p) => row.forEach((x, q) => expect(x).toBeCloseTo(p === q ? 4 : 0, 5)));
    await s.dispose();
  });

  it('is deterministic for a seed, differs across seeds, and round-trips through JSON', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const a = variable(initializers.orthogonal([4, 8], { seed: 3 }), { name: 'oa' });
    const b = variable(initializers.orthogonal([4, 8], { seed: 3 }), { name: 'ob' });
    const c = variable(initializers.orthogonal([4, 8], { seed: 4 }), { name: 'oc' });
    const [va, vb, vc] = await Promise.all([a, b, c].map(async (v) => values(await s.getValue(v))));
    expect(vb).toEqual(va);
    expect(vc).not.toEqual(va);
    const read = fromJSON(JSON.stringify(toJSON([a])));
    expect(values(await s.getValue(read.variables[0]!))).toEqual(va);
    await s.dispose();
  });

  it('refuses a rank below 2 and a non-finite gain, naming the initializer', () => {
    expect(() => initializers.orthogonal([5])).toThrow(new SymflowError('orthogonal', 'needs a shape of rank >= 2, got [5]'));
    expect(() => initializers.orthogonal([2, 2], { gain: NaN })).toThrow(/orthogonal: gain must be a finite number, got NaN/);
  });

  it("is the LSTM's and GRU's recurrent kernel initializer (orthonormal rows, as Keras)", async () => {
    const s = await Session.create({ backend: 'cpu' });
    const x = placeholder([null, 3, 2]);
    for (const layer of [nn.lstm(4, { seed: 1 }), nn.gru(4, { seed: 1 })]) {
      layer.apply(x);
      const rk = layer.variables.find((v) => v.name.endsWith('recurrent_kernel'))!;
      const data = values(await s.getValue(rk));
      const g = gram(data, 4, rk.shape[1] as number, true);
      g.forEach((row, p) => row.forEach((v, q) => expect(v).toBeCloseTo(p === q ? 1 : 0, 5)));
    }
    await s.dispose();
  });
});
