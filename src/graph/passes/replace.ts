import type { Draft } from 'immer';
import type { GraphIR } from '../ir.js';

/** Points every use of a replaced node (inputs and graph outputs) at its replacement, inside an immer draft. */
export function redirect(draft: Draft<GraphIR>, replaced: ReadonlyMap<number, number>): void {
  if (replaced.size === 0) return;
  const final = (id: number) => {
    let r = id;
    while (replaced.has(r)) r = replaced.get(r)!;
    return r;
  };
  for (const node of Object.values(draft.nodes)) {
    if (node.inputs.some((i) => replaced.has(i))) node.inputs = node.inputs.map(final);
  }
  draft.outputs = draft.outputs.map(final);
}

/** How many nodes (and graph outputs) use each node. */
export function consumers(ir: GraphIR): Map<number, number> {
  const count = new Map<number, number>();
  const use = (id: number) => count.set(id, (count.get(id) ?? 0) + 1);
  for (const n of Object.values(ir.nodes)) n.inputs.forEach(use);
  ir.outputs.forEach(use);
  return count;
}
