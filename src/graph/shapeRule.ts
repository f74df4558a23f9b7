import { broadcastShapes, mergeShapes, shapesCompatible } from './shapes.js';
import type { Dim, Shape } from './tensor.js';

/**
 * What a shape rule gets besides its inputs and attributes, so that ONE rule serves both the build (static shapes,
 * `null` for unknown) and `symbolicShapes` (an unknown dimension is a symbol, and equal symbols are equal sizes).
 *
 * ```ts
 * infer: ([a, b], _attrs, ctx) => {
 *   ctx.equal(a.shape[1]!, b.shape[0]!); // an inner dimension: a run with them different fails
 *   return { shape: [a.shape[0]!, b.shape[1]!], dtype: a.dtype };
 * }
 * ```
 */
export interface ShapeCtx {
  /** True in `symbolicShapes`: unknown input dims are then symbols (strings), not `null`. */
  readonly symbolic: boolean;
  /** Whether a dim is a known size (not `null`, not a symbol). Test dims with it, never with `=== null`. */
  known(d: Dim): d is number;
  /** NumPy broadcasting; known sizes that differ and are not 1 are an error naming `op` and the shapes. */
  broadcast(op: string, a: Shape, b: Shape, names?: [string, string]): Dim[];
  /** Reports two dims the op requires to be equal (a run with them different fails); symbolic shapes unify them. */
  equal(a: Dim, b: Dim): void;
  /**
   * Whether two shapes can be the same run-time shape; when they can, reports their dims equal pairwise and
   * returns true. The most specific shape of the two is `merge(a, b)`.
   */
  sameShape(a: Shape, b: Shape): boolean;
  /** The most specific shape compatible with both (same rank): per dim, a known size beats `null` or a symbol; two that differ give `null`. */
  merge(a: Shape, b: Shape): Dim[];
}

const known = (d: Dim): d is number => typeof d === 'number';

/** A shape context whose `equal` reports to `onEqual` (nothing at build time). */
export function shapeCtx(symbolic: boolean, onEqual: (a: Dim, b: Dim) => void): ShapeCtx {
  return {
    symbolic,
    known,
    broadcast: broadcastShapes,
    equal: onEqual,
    sameShape: (a, b) => {
      if (!shapesCompatible(a, b)) return false;
      a.forEach((d, i) => onEqual(d, b[i]!));
      return true;
    },
    merge: mergeShapes,
  };
}

/** The build-time context: `null` is unknown, and equalities need no record. */
export const BUILD_SHAPES: ShapeCtx = shapeCtx(false, () => undefined);
