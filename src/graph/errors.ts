import { type Shape, shapeString, type Tensor } from './tensor.js';

/** An error raised by symflow. `op` names the op or function that refused its input. */
export class SymflowError extends Error {
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

/** Normalised, sorted, de-duplicated axes; `undefined` means all axes. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => normAxis(op, a, rank, 'axes'));
  if (new Set(out).size !== out.length) throw new SymflowError(op, `axes [${list.join(',')}] repeat an axis`);
  return out.sort((a, b) => a - b);
}
