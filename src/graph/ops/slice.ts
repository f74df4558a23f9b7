import { SymflowError } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { type Dim, shapeString, type Tensor } from '../tensor.js';

export const sliceOp = defineOp({
  name: 'slice',
  attrs: { begin: 'ints', size: 'ints' },
  infer: ([x], { begin, size }, ctx) => {
    const bad = (why: string) => new SymflowError('slice', `${why}: x is ${shapeString(x!.shape)}, begin [${begin.join(',')}], size [${size.join(',')}]`);
    if (begin.length !== x!.rank || size.length !== x!.rank) throw bad('begin and size need one entry per axis');
    const shape: Dim[] = x!.shape.map((d, i) => {
      const b = begin[i]!, s = size[i]!;
      if (!Number.isInteger(b) || b < 0 || !Number.isInteger(s) || s < -1) throw bad(`axis ${i} has a bad begin or size`);
      if (ctx.known(d) && (b > d || (s !== -1 && b + s > d))) throw bad(`axis ${i} runs past the end`);
      return s === -1 ? (ctx.known(d) ? d - b : null) : s;
    });
    return { shape, dtype: x!.dtype };
  },
  grad: (dy, _y, [x], { begin, size }) => [() => {
    const paddings = x!.shape.map((d, i): [number, number] => {
      if (size[i] === -1) return [begin[i]!, 0];
      if (d === null) throw new SymflowError('gradients', `slice: gradient needs a static size on axis ${i}, x is ${shapeString(x!.shape)}`);
      return [begin[i]!, d - begin[i]! - size[i]!];
    });
    return pad(dy, paddings);
  }],
});

export const padOp = defineOp({
  name: 'pad',
  attrs: { paddings: 'pairs', value: 'number' },
  infer: ([x], { paddings }, ctx) => {
    if (paddings.length !== x!.rank || !paddings.every((p) => p.length === 2 && p.every((v) => Number.isInteger(v) && v >= 0))) {
      throw new SymflowError('pad', `paddings ${JSON.stringify(paddings)} need one [before, after] pair of non-negative integers per axis of x ${shapeString(x!.shape)}`);
    }
    return { shape: x!.shape.map((d, i) => (ctx.known(d) ? d + paddings[i]![0] + paddings[i]![1] : null)), dtype: x!.dtype };
  },
  grad: (dy, _y, [x], { paddings }) => [() => slice(dy, paddings.map((p) => p[0]), x!.shape.map((d, i) => {
    if (d !== null) return d;
    if (paddings[i]![1] === 0) return -1;
    throw new SymflowError('gradients', `pad: gradient needs a static size on axis ${i}, x is ${shapeString(x!.shape)}`);
  }))],
});

/**
 * Extracts a block: `size[i]` elements from `begin[i]` on each axis (-1 means to the end).
 * @param x the tensor @param begin start per axis @param size length per axis @returns the block
 */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  return makeNode(sliceOp, [x], { begin: [...begin], size: size ? [...size] : begin.map(() => -1) });
}

/**
 * Pads with a constant.
 * @param x the tensor @param paddings [before, after] per axis @param value the fill value @returns the padded tensor
 */
export function pad(x: Tensor, paddings: readonly (readonly [number, number])[], value = 0): Tensor {
  return makeNode(padOp, [x], { paddings: paddings.map((p) => [p[0], p[1]] as const), value });
}
