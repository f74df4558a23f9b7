import { produce } from 'immer';
import type { GraphIR } from '../ir.js';
import { toposort } from '../walk.js';

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
  const keep = new Set(toposort(ir.outputs, (id) => ir.nodes[id]!.inputs, (id) => !fed.has(id)));
  return produce(ir, (draft) => {
    for (const key of Object.keys(draft.nodes)) {
      if (!keep.has(Number(key))) delete draft.nodes[Number(key)];
    }
    draft.feeds = draft.feeds.filter((id) => keep.has(id));
  });
}
