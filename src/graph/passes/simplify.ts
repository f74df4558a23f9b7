import { produce } from 'immer';
import type { GraphIR } from '../ir.js';
import { redirect } from './replace.js';
import { sameSymShape, symbolicShapes } from './symbolicShapes.js';

const SHAPE_OPS = new Set(['sumToShape', 'broadcastLike', 'reshapeLike']);

/**
 * Removes shape adapters that symbolic shapes prove to be no-ops: the `sumToShape` of a gradient whose batch
 * dimension is the very one of its input, a `broadcastLike` to the shape the value already has, an identity
 * `reshapeLike`. Gradients of graphs with an unknown batch dimension are full of them.
 *
 * ```ts
 * const lean = simplifyShapes(ir); // same results, fewer nodes
 * ```
 * @param ir the graph @returns the graph with those nodes bypassed (prune afterwards to drop them)
 */
export function simplifyShapes(ir: GraphIR): GraphIR {
  const shapes = symbolicShapes(ir);
  const replaced = new Map<number, number>();
  for (const node of Object.values(ir.nodes)) {
    if (!SHAPE_OPS.has(node.op) || ir.feeds.includes(node.id)) continue;
    const x = node.inputs[0]!;
    if (sameSymShape(shapes.get(x), shapes.get(node.id))) replaced.set(node.id, x);
  }
  if (replaced.size === 0) return ir;
  return produce(ir, (draft) => redirect(draft, replaced));
}
