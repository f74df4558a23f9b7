import { produce } from 'immer';
import type { GraphIR, NodeIR } from '../ir.js';

/** A float32 scalar constant equal to 0. */
export function isZeroScalar(n: NodeIR | undefined): boolean {
  return n !== undefined && n.op === 'constant' && n.dtype === 'float32' && n.shape.length === 0 && (n.attrs['value'] as Float32Array)[0] === 0;
}

/**
 * `relu` is a composite, `maximum(x, 0)`, so its gradient needs no code of its own. As a kernel, a binary maximum
 * against a broadcast scalar is the slow path of some libraries (TF.js wasm: about 7× its unary Relu on a 128×256
 * activation), so the forward `maximum(x, 0)` that no fusion took becomes one `relu` node. The value is the same
 * except for the sign of a zero: relu(−0) may be +0 where maximum(−0, 0) keeps −0, which no comparison or
 * arithmetic result downstream can tell apart.
 *
 * ```ts
 * const lowered = reluKernel(ir);
 * ```
 * @param ir the graph @returns the graph with `maximum(x, 0)` nodes as `relu` (each keeps its id)
 */
export function reluKernel(ir: GraphIR): GraphIR {
  const fed = new Set(ir.feeds);
  const rewrites = new Map<number, number>();
  for (const n of Object.values(ir.nodes)) {
    if (n.op !== 'maximum' || n.dtype !== 'float32' || fed.has(n.id)) continue;
    const [a, b] = n.inputs as [number, number];
    const x = isZeroScalar(ir.nodes[b]) ? a : isZeroScalar(ir.nodes[a]) ? b : undefined;
    // Only when x already has the result's shape (no broadcast of x against the scalar).
    if (x === undefined || ir.nodes[x]!.shape.length !== n.shape.length) continue;
    rewrites.set(n.id, x);
  }
  if (rewrites.size === 0) return ir;
  return produce(ir, (draft) => {
    for (const [id, x] of rewrites) {
      const node = draft.nodes[id]!;
      node.op = 'relu';
      node.inputs = [x];
    }
  });
}
