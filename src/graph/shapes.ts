import { SymflowError } from './errors.js';
import { type Dim, type Shape, shapeString } from './tensor.js';

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
  if (da === null) return db;
  if (db === null) return da;
  throw new SymflowError(
    op,
    `shapes cannot be broadcast: ${names[0]} is ${shapeString(a)}, ${names[1]} is ${shapeString(b)}`,
  );
}

/** True when two static shapes can describe the same run-time shape. */
export function shapesCompatible(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === null || b[i] === null || d === b[i]);
}

/** The most specific shape compatible with both (`null` where they disagree or either is unknown). */
export function mergeShapes(a: Shape, b: Shape): Dim[] {
  return a.map((d, i) => (d === b[i] ? d : d === null ? b[i]! : b[i] === null ? d : null));
}

/** True when both shapes are fully known and equal: only then is a broadcast provably a no-op. */
export function sameKnownShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d !== null && d === b[i]);
}
