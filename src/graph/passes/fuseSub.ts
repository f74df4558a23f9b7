import { produce } from 'immer';
import type { GraphIR } from '../ir.js';
import { consumers } from './replace.js';

/**
 * `sub` is a composite, a + (−b) (one primitive fewer, no gradient code of its own), but as kernels that is two
 * passes over the data. This pass turns `add(a, neg(b))` — when nothing else reads `neg(b)` — into one
 * `subtract(a, b)` node, a kernel every backend has. Parameter updates (p − lr·g) are full of them.
 *
 * ```ts
 * const lean = fuseSub(ir);
 * ```
 * @param ir the graph @returns the graph with add-of-neg pairs fused (the add keeps its id)
 */
export function fuseSub(ir: GraphIR): GraphIR {
  const uses = consumers(ir);
  const fed = new Set(ir.feeds);
  const rewrites = new Map<number, [number, number]>();
  for (const n of Object.values(ir.nodes)) {
    if (n.op !== 'add' || fed.has(n.id)) continue;
    const [a, b] = n.inputs as [number, number];
    const negated = (id: number) => {
      const m = ir.nodes[id]!;
      return m.op === 'neg' && !fed.has(id) && uses.get(id) === 1 ? m.inputs[0]! : undefined;
    };
    const right = negated(b);
    const left = right === undefined ? negated(a) : undefined;
    if (right !== undefined) rewrites.set(n.id, [a, right]);
    else if (left !== undefined) rewrites.set(n.id, [b, left]);
  }
  if (rewrites.size === 0) return ir;
  return produce(ir, (draft) => {
    for (const [id, inputs] of rewrites) {
      const node = draft.nodes[id]!;
      node.op = 'subtract';
      node.inputs = inputs;
    }
  });
}
