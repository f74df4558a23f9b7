import { produce } from 'immer';
import type { GraphIR, NodeIR } from '../ir.js';
import { redirect } from './replace.js';

// Sources are distinct by identity (two placeholders are two inputs); a cond node is kept as built (its outputs
// name it by identity).
const NEVER_MERGED = new Set(['placeholder', 'variable', 'cond']);

function attrKey(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}[${Array.from(v as unknown as ArrayLike<number>).join(',')}]`;
  if (Array.isArray(v)) return `[${v.map(attrKey).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${k}:${attrKey(x)}`).join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}

/**
 * Common-subexpression elimination: nodes with the same op, attributes and (already merged) inputs are computed
 * once. Constants with equal values merge too. The oldest node of each class stays, so id order stays topological.
 *
 * ```ts
 * const merged = cse(ir);
 * ```
 * @param ir the graph @returns the graph with duplicates redirected to their first occurrence
 */
export function cse(ir: GraphIR): GraphIR {
  const seen = new Map<string, number>();
  const replaced = new Map<number, number>();
  const fed = new Set(ir.feeds);
  const ids = Object.keys(ir.nodes).map(Number).sort((a, b) => a - b);
  for (const id of ids) {
    const n: NodeIR = ir.nodes[id]!;
    if (NEVER_MERGED.has(n.op) || fed.has(id)) continue;
    const inputs = n.inputs.map((i) => replaced.get(i) ?? i);
    const key = `${n.op}|${n.dtype}|${inputs.join(',')}|${attrKey(n.attrs)}|${n.op === 'constant' ? n.shape.join(',') : ''}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, id);
    else replaced.set(id, first);
  }
  if (replaced.size === 0) return ir;
  return produce(ir, (draft) => redirect(draft, replaced));
}
