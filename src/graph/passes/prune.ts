import { produce } from 'immer';
import type { GraphIR } from '../ir.js';

/**
 * Dead-code pruning: keeps only the nodes the outputs need. A fed node is a cut: what lies upstream of it is not
 * needed (as in TF1, feeding any tensor replaces its computation).
 *
 * ```ts
 * const pruned = prune(ir); // ir is untouched; pruned shares every kept node with it
 * ```
 * @param ir the graph @returns the graph without unneeded nodes
 */
export function prune(ir: GraphIR): GraphIR {
  const fed = new Set(ir.feeds);
  const keep = new Set<number>();
  const stack = [...ir.outputs];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (keep.has(id)) continue;
    keep.add(id);
    if (!fed.has(id)) stack.push(...ir.nodes[id]!.inputs);
  }
  return produce(ir, (draft) => {
    for (const key of Object.keys(draft.nodes)) {
      if (!keep.has(Number(key))) delete draft.nodes[Number(key)];
    }
    draft.feeds = draft.feeds.filter((id) => keep.has(id));
  });
}
