import { SymflowError } from './errors.js';
import type { TypedArray } from './hostValue.js';
import { isFullyKnown, sizeOf, type Tensor } from './tensor.js';

/**
 * Refuses the values of one step when its batch inputs disagree on the number of rows, as Keras does: otherwise an
 * `x` of 2 rows and a `y` of 1 broadcast silently into a loss. The batch inputs are those whose static shape starts
 * with an unknown dimension (`placeholder([null, 3])`); inputs of a known leading size or rank 0 (a learning rate, a
 * mask of fixed size) are not compared. Errors name every batch input with its row count.
 *
 * ```ts
 * checkRows('TrainStep.step', [x, y], [[[1, 2, 3], [4, 5, 6]], [[1]]]); // throws: 'x' has 2 rows, 'y' has 1
 * ```
 * @param who the function named in the error
 * @param inputs the tensors fed, in order
 * @param values their values: nested arrays, typed arrays, `{shape, data}`, host tensors or uploaded `DeviceValue`s
 */
export function checkRows(who: string, inputs: readonly Tensor[], values: readonly unknown[]): void {
  const counted: { name: string; rows: number }[] = [];
  inputs.forEach((t, i) => {
    if (t.rank === 0 || t.shape[0] !== null) return;
    const rows = rowsOf(values[i], t);
    if (rows !== undefined) counted.push({ name: t.name, rows });
  });
  if (counted.every((c) => c.rows === counted[0]!.rows)) return;
  const listed = counted.slice(0, 6).map((c) => `'${c.name}' has ${c.rows} row${c.rows === 1 ? '' : 's'}`).join(', ');
  throw new SymflowError(who, `inputs differ in row count: ${listed}${counted.length > 6 ? ', …' : ''}; every input with a batch dimension needs the same number of rows`);
}

/** The leading size of a value fed to `t`, or undefined where it cannot be told without reading it (the feed check will). */
function rowsOf(v: unknown, t: Tensor): number | undefined {
  if (Array.isArray(v)) return v.length;
  if (ArrayBuffer.isView(v)) {
    const rest = t.shape.slice(1);
    const rowSize = isFullyKnown(rest) ? sizeOf(rest) : 0;
    const n = (v as TypedArray).length;
    return rowSize > 0 && n % rowSize === 0 ? n / rowSize : undefined;
  }
  if (v !== null && typeof v === 'object' && 'shape' in v) {
    const shape = (v as { shape: unknown }).shape;
    if (Array.isArray(shape) && shape.length > 0 && Number.isInteger(shape[0])) return shape[0] as number;
  }
  return undefined;
}
