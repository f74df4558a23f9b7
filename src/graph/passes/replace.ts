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
