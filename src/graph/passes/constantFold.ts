import { produce } from 'immer';
import type { HostTensor, TypedArray } from '../hostValue.js';
import type { GraphIR, NodeIR } from '../ir.js';
import { getOp } from '../registry.js';
import { isFullyKnown, sizeOf } from '../tensor.js';

const MAX_ELEMENTS = 4096;

const hostValue = (c: NodeIR): HostTensor => ({ shape: c.shape as number[], dtype: c.dtype, data: c.attrs['value'] as TypedArray });

/**
 * Constant folding: a node whose op has a host evaluator (its record's `evaluate`), whose inputs are all constants
 * and whose result is small becomes a constant, computed once at compile time: `sub(1, beta1)`, `mul(-1, lr)` and
 * the like stop costing a kernel per step. The node keeps its id, so nothing else changes.
 *
 * ```ts
 * const folded = constantFold(ir);
 * ```
 * @param ir the graph @returns the graph with foldable nodes replaced by constants
 */
export function constantFold(ir: GraphIR): GraphIR {
  const fed = new Set(ir.feeds);
  const ids = Object.keys(ir.nodes).map(Number).sort((a, b) => a - b);
  const folded = new Map<number, NodeIR>();
  const nodeOf = (id: number) => folded.get(id) ?? ir.nodes[id]!;
  for (const id of ids) {
    const n = ir.nodes[id]!;
    const evaluate = getOp(n.op)?.evaluate;
    if (evaluate === undefined || fed.has(id) || !isFullyKnown(n.shape) || sizeOf(n.shape) > MAX_ELEMENTS) continue;
    const ins = n.inputs.map(nodeOf);
    if (!ins.every((c) => c.op === 'constant' && !fed.has(c.id))) continue;
    const value = evaluate(ins.map(hostValue), n.attrs, { shape: n.shape, dtype: n.dtype });
    if (value === undefined) continue;
    folded.set(id, { id, op: 'constant', name: n.name, inputs: [], attrs: { shape: [...n.shape], dtype: n.dtype, value }, shape: n.shape, dtype: n.dtype });
  }
  if (folded.size === 0) return ir;
  return produce(ir, (draft) => {
    for (const [id, node] of folded) draft.nodes[id] = node as typeof draft.nodes[number];
  });
}
