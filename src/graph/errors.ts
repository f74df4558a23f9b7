import { type Shape, shapeString, type Tensor } from './tensor.js';

/** An error raised by symflow. `op` names the op or function that refused its input. */
export class SymflowError extends Error {
  /** The op or function the error names, also the message's prefix (`'matMul'`, `'compile'`). */
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'SymflowError';
    this.op = op;
  }
}

/** `a is [2,3]`: how errors name an argument with its shape. */
export function argShape(arg: string, t: Tensor | Shape): string {
  const shape = 'shape' in t ? (t as Tensor).shape : (t as Shape);
  return `${arg} is ${shapeString(shape)}`;
}

/** Normalises a possibly negative axis against `rank`; errors name the op and the argument. */
export function normAxis(op: string, axis: number, rank: number, arg = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1) || (rank === 0 && axis !== 0 && axis !== -1)) {
    throw new SymflowError(op, `${arg} ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * Checks an axis attribute as stored in a node (already normalised): an integer in [0, limit). Graphs read from
 * JSON reach the shape rules with whatever the file says, so the rules check their attributes too.
 */
export function checkAxisAttr(op: string, axis: unknown, limit: number, arg = 'axis'): number {
  if (!Number.isInteger(axis) || (axis as number) < 0 || (axis as number) >= limit) {
    throw new SymflowError(op, `${arg} ${JSON.stringify(axis)} is not an axis in [0, ${limit})`);
  }
  return axis as number;
}

/** Checks stored axes: sorted, distinct integers in [0, rank). */
export function checkAxesAttr(op: string, axes: unknown, rank: number): number[] {
  if (!Array.isArray(axes)) throw new SymflowError(op, `axes must be an array, got ${JSON.stringify(axes)}`);
  axes.forEach((a, i) => {
    checkAxisAttr(op, a, rank, 'axes');
    if (i > 0 && (a as number) <= (axes[i - 1] as number)) throw new SymflowError(op, `axes ${JSON.stringify(axes)} must be sorted and distinct`);
  });
  return axes as number[];
}

export function checkBoolAttr(op: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new SymflowError(op, `${name} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Normalised, sorted, de-duplicated axes; `undefined` means all axes. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => normAxis(op, a, rank, 'axes'));
  if (new Set(out).size !== out.length) throw new SymflowError(op, `axes [${list.join(',')}] repeat an axis`);
  return out.sort((a, b) => a - b);
}
