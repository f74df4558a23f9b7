import { produce } from 'immer';
import type { GraphIR, NodeIR } from '../ir.js';
import { consumers, redirect } from './replace.js';
import { isZeroScalar } from './reluKernel.js';

const RESHAPING = new Set(['reshape', 'reshapeLike', 'squeeze', 'expandDims']);

/**
 * matMul + bias (+ relu) fusion, for backends with a fused kernel (TF.js `fused.matMul`, ONNX `Gemm`):
 * `add(matMul(a, b), bias)` with a rank-1 bias along the last axis becomes one `fusedMatMul`, and a following
 * `maximum(·, 0)` joins it when nothing else reads the pre-activation. In a training graph the relu's gradient
 * reads the pre-activation, so there only the bias is fused; in an inference graph the relu is too.
 *
 * ```ts
 * const fused = fuseMatMul(ir);
 * ```
 * @param ir the graph @returns the graph with fused nodes (each keeps the id of the node it replaces)
 */
export function fuseMatMul(ir: GraphIR): GraphIR {
  const uses = consumers(ir);
  const fed = new Set(ir.feeds);
  const fused = new Map<number, NodeIR>();
  const replaced = new Map<number, number>();
  for (const n of Object.values(ir.nodes)) {
    if (n.op !== 'add' || fed.has(n.id) || n.dtype !== 'float32') continue;
    const [p, q] = n.inputs.map((i) => ir.nodes[i]!);
    const [mm, bias] = p!.op === 'matMul' ? [p!, q!] : q!.op === 'matMul' ? [q!, p!] : [undefined, undefined];
    if (mm === undefined || bias === undefined || fed.has(mm.id) || uses.get(mm.id) !== 1) continue;
    const last = mm.shape[mm.shape.length - 1];
    if (mm.shape.length !== 2 || bias.shape.length !== 1 || last === null || bias.shape[0] !== last) continue;
    // NOTE: a bias that is a reshaped view stays unfused: TF.js wasm's fused kernel reads the shape the data was
    // made with ([1, n] for reshape(v, [n]) of a [1, n] v) and refuses it as "rank-2 bias".
    if (RESHAPING.has(bias.op)) continue;
    fused.set(n.id, { ...n, op: 'fusedMatMul', inputs: [mm.inputs[0]!, mm.inputs[1]!, bias.id], attrs: { ...mm.attrs, activation: 'linear' } });
  }
  // A relu (maximum with a zero scalar) joins when it is the pre-activation's only reader.
  for (const n of Object.values(ir.nodes)) {
    if (n.op !== 'maximum' || fed.has(n.id)) continue;
    const [p, q] = n.inputs;
    const base = fused.has(p!) && isZeroScalar(ir.nodes[q!]) ? p! : fused.has(q!) && isZeroScalar(ir.nodes[p!]) ? q! : undefined;
    if (base === undefined || uses.get(base) !== 1) continue;
    const f = fused.get(base)!;
    fused.set(base, { ...f, attrs: { ...f.attrs, activation: 'relu' } });
    replaced.set(n.id, base);
  }
  if (fused.size === 0) return ir;
  return produce(ir, (draft) => {
    for (const [id, node] of fused) draft.nodes[id] = node as typeof draft.nodes[number];
    redirect(draft, replaced);
  });
}
