import { SymflowError, checkAxisAttr, normAxis } from '../errors.js';
import { defineOp, makeNode } from '../registry.js';
import { type Dim, isFullyKnown, shapeString, sizeOf, type Tensor } from '../tensor.js';
import { greaterEqual, less, logicalAnd } from './compare.js';
import { expandDims, reshape } from './reshape.js';
import { where } from './where.js';
import { transpose } from './transpose.js';

export const gatherOp = defineOp({
  name: 'gather',
  attrs: { axis: 'int' },
  infer: ([x, indices], { axis }) => {
    if (indices!.dtype !== 'int32') throw new SymflowError('gather', `indices must be int32, got ${indices!.dtype}`);
    checkAxisAttr('gather', axis, x!.rank);
    return { shape: [...x!.shape.slice(0, axis), ...indices!.shape, ...x!.shape.slice(axis + 1)], dtype: x!.dtype };
  },
  grad: (dy, _y, [x, indices], { axis }) => [() => gatherGrad(dy, x!, indices!, axis), undefined],
});

export const unsortedSegmentSumOp = defineOp({
  name: 'unsortedSegmentSum',
  attrs: { numSegments: 'int' },
  infer: ([data, ids], { numSegments }) => {
    if (ids!.dtype !== 'int32') throw new SymflowError('unsortedSegmentSum', `segmentIds must be int32, got ${ids!.dtype}`);
    if (!Number.isSafeInteger(numSegments) || numSegments < 0) throw new SymflowError('unsortedSegmentSum', `numSegments must be a non-negative integer, got ${JSON.stringify(numSegments)}`);
    if (ids!.rank !== 1 || data!.rank < 1) {
      throw new SymflowError('unsortedSegmentSum', `segmentIds must be rank 1 and data rank >= 1: data is ${shapeString(data!.shape)}, segmentIds is ${shapeString(ids!.shape)}`);
    }
    return { shape: [numSegments, ...data!.shape.slice(1)], dtype: data!.dtype };
  },
  // Rows with an id outside [0, numSegments) were dropped, so they get no gradient (gather would fail on them, or
  // on onnx wrap a negative id around).
  grad: (dy, _y, [data, ids], { numSegments }) => [() => {
    const inRange = logicalAnd(greaterEqual(ids!, 0), less(ids!, numSegments));
    const rows = gather(dy, where(inRange, ids!, 0), 0);
    // A where, not a mask product: a NaN or Inf gradient must not leak into the dropped rows as NaN.
    const keep = Array.from({ length: data!.rank - 1 }, () => 0).reduce((m: Tensor) => expandDims(m, -1), inRange);
    return where(keep, rows, 0);
  }, undefined],
});

// Scatter-add the incoming gradient back to the gathered rows; other axes are moved to the front and back.
function gatherGrad(dy: Tensor, x: Tensor, indices: Tensor, axis: number): Tensor {
  const n = x.shape[axis];
  if (n === null) throw new SymflowError('gradients', `gather: gradient needs a static size on axis ${axis}, x is ${shapeString(x.shape)}`);
  const k = indices.rank;
  // dy is x[:axis] + indices.shape + x[axis+1:]; bring the indices block to the front.
  const perm = [...Array.from({ length: k }, (_, i) => axis + i), ...Array.from({ length: axis }, (_, i) => i),
    ...Array.from({ length: x.rank - axis - 1 }, (_, i) => axis + k + i)];
  let d = transpose(dy, perm);
  const rest: Dim[] = d.shape.slice(k);
  let ids = indices;
  if (k !== 1) {
    if (rest.some((r) => r === null)) throw new SymflowError('gradients', `gather: gradient with indices of rank ${k} needs static x dims off axis ${axis}`);
    // The number of indices, not -1, when it is known: with an empty row shape a -1 would be ambiguous.
    d = reshape(d, [isFullyKnown(indices.shape) ? sizeOf(indices.shape) : -1, ...(rest as number[])]);
    ids = reshape(indices, [-1]);
  }
  const summed = unsortedSegmentSum(d, ids, n);
  const back = [...Array.from({ length: axis }, (_, i) => i + 1), 0, ...Array.from({ length: x.rank - axis - 1 }, (_, i) => axis + 1 + i)];
  return transpose(summed, back);
}

/**
 * Picks slices of `x` along `axis` at `indices`.
 * ```ts
 * const rows = gather(embeddings, ids); // [vocab, d] with ids [batch] → [batch, d]
 * ```
 * @param x the tensor @param indices int32 indices @param axis the axis @returns the gathered tensor
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  return makeNode(gatherOp, [x, indices], { axis: normAxis('gather', axis, x.rank) });
}

/**
 * Sums rows of `data` into `numSegments` buckets given by `segmentIds` (rows with ids out of range are dropped).
 * @param data rows to sum @param segmentIds int32 bucket per row @param numSegments number of buckets @returns the sums
 */
export function unsortedSegmentSum(data: Tensor, segmentIds: Tensor, numSegments: number): Tensor {
  if (!Number.isInteger(numSegments) || numSegments < 0) throw new SymflowError('unsortedSegmentSum', `numSegments must be a non-negative integer, got ${numSegments}`);
  return makeNode(unsortedSegmentSumOp, [data, segmentIds], { numSegments });
}
