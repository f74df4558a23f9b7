import { produce } from 'immer';
import type { GraphIR, NodeIR } from '../ir.js';

const swapLast = (rank: number) => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];

/**
 * The transposed-matMul lowering, for backends whose transposed matMul is slow (TF.js wasm: about 20× slower than
 * transposing first): `matMul(a, b, {transposeA, transposeB})` becomes `matMul(transpose(a), transpose(b))`. The new
 * transposes get ids just below the matMul's, between it and its inputs, so id order stays topological.
 *
 * ```ts
 * const lowered = explicitTranspose(ir);
 * ```
 * @param ir the graph @returns the graph with every matMul untransposed
 */
export function explicitTranspose(ir: GraphIR): GraphIR {
  const targets = Object.values(ir.nodes).filter((n) => n.op === 'matMul' && (n.attrs['transposeA'] || n.attrs['transposeB']));
  if (targets.length === 0) return ir;
  return produce(ir, (draft) => {
    for (const n of targets) {
      const inputs = [...n.inputs];
      (['transposeA', 'transposeB'] as const).forEach((flag, side) => {
        if (!n.attrs[flag]) return;
        const x = ir.nodes[inputs[side]!]!;
        const id = n.id - (side === 0 ? 0.5 : 0.25);
        const perm = swapLast(x.shape.length);
        const t: NodeIR = { id, op: 'transpose', name: `${n.name}/${flag}`, inputs: [x.id], attrs: { perm }, shape: perm.map((p) => x.shape[p]!), dtype: x.dtype };
        draft.nodes[id] = t as typeof draft.nodes[number];
        inputs[side] = id;
      });
      const node = draft.nodes[n.id]!;
      node.inputs = inputs;
      node.attrs = { ...n.attrs, transposeA: false, transposeB: false };
    }
  });
}
