import { produce } from 'immer';
import { branchIds } from '../cond.js';
import type { GraphIR } from '../ir.js';
import { redirect } from './replace.js';

/**
 * Conds whose predicate is a constant (the learning phase, once a function is compiled for training or not) are
 * replaced by the branch they always take: each `condOutput` is redirected to that branch's output, and pruning
 * then drops the cond and the other branch.
 *
 * ```ts
 * const lean = prune(foldConds(ir));
 * ```
 * @param ir the graph @returns the graph with constant conds resolved
 */
export function foldConds(ir: GraphIR): GraphIR {
  const replaced = new Map<number, number>();
  for (const node of Object.values(ir.nodes)) {
    if (node.op !== 'condOutput') continue;
    const c = ir.nodes[node.inputs[0]!]!;
    const parts = branchIds(c.inputs, c.attrs as { captures: number; outputs: number });
    const pred = ir.nodes[parts.pred]!;
    if (pred.op !== 'constant' || ir.feeds.includes(pred.id)) continue;
    const taken = (pred.attrs['value'] as Uint8Array)[0] ? parts.then : parts.else;
    replaced.set(node.id, taken[node.attrs['index'] as number]!);
  }
  if (replaced.size === 0) return ir;
  return produce(ir, (draft) => redirect(draft, replaced));
}
