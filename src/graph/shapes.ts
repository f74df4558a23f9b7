import { SymflowError } from './errors.js';
import { type Dim, type Shape, shapeString } from './tensor.js';

// Every helper treats a dim that is not a number as unknown: `null` at build time, a symbol (a string) in
// symbolicShapes, which runs the same shape rules (see shapeRule.ts).
const known = (d: Dim): d is number => typeof d === 'number';

/**
 * NumPy broadcasting of two static shapes. Unknown dimensions broadcast optimistically (`?` with `n` gives `n`;
 * the run checks the real sizes); known sizes that differ and are not 1 are an error naming the op.
 */
export function broadcastShapes(op: string, a: Shape, b: Shape, names: [string, string] = ['a', 'b']): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    out.push(broadcastDim(op, da, db, a, b, names));
  }
  return out;
}

function broadcastDim(op: string, da: Dim, db: Dim, a: Shape, b: Shape, names: [string, string]): Dim {
  if (da === db) return da;
  if (da === 1) return db;
  if (db === 1) return da;
  if (!known(da) && !known(db)) return null; // two different symbols: some size, not provably either
  if (!known(da)) return db;
  if (!known(db)) return da;
  throw new SymflowError(
    op,
    `shapes cannot be broadcast: ${names[0]} is ${shapeString(a)}, ${names[1]} is ${shapeString(b)}`,
  );
}

/** True when two static shapes can describe the same run-time shape. */
export function shapesCompatible(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => !known(d) || !known(b[i]!) || d === b[i]);
}

/** The most specific shape compatible with both (`null` where two known sizes disagree or neither is known). */
export function mergeShapes(a: Shape, b: Shape): Dim[] {
  return a.map((d, i) => mergeDim(d, b[i]!));
}

function mergeDim(d: Dim, e: Dim): Dim {
  if (d === e || e === null) return d;
  if (d === null) return e;
  if (known(d) !== known(e)) return known(d) ? d : e; // a size beats a symbol
  return null; // two different sizes, or two different symbols
}

/** True when both shapes are fully known and equal: only then is a broadcast provably a no-op. */
export function sameKnownShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => known(d) && d === b[i]);
}

/** True when every dim is a known size. */
export function allKnown(shape: Shape): shape is readonly number[] {
  return shape.every(known);
}
