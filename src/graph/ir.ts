import type { Attrs, DType, Shape, Tensor } from './tensor.js';
import { toposort } from './walk.js';

/** A node of the graph IR: plain, immutable data that rewrite passes transform with immer. */
export interface NodeIR {
  readonly id: number;
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly number[];
  readonly attrs: Attrs;
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A graph to run: its nodes by id, the ids it must produce, and the ids fed from outside. */
export interface GraphIR {
  readonly nodes: Readonly<Record<number, NodeIR>>;
  readonly outputs: readonly number[];
  readonly feeds: readonly number[];
}

/** Every node the outputs reach (feeds included, and what lies upstream of them, until a pass cuts it). */
export function toIR(outputs: readonly Tensor[], feeds: readonly Tensor[]): { ir: GraphIR; tensors: Map<number, Tensor> } {
  const tensors = new Map<number, Tensor>();
  const nodes: Record<number, NodeIR> = {};
  for (const t of toposort([...outputs, ...feeds], (n) => n.inputs)) {
    tensors.set(t.id, t);
    nodes[t.id] = { id: t.id, op: t.op, name: t.name, inputs: t.inputs.map((i) => i.id), attrs: t.attrs, shape: t.shape, dtype: t.dtype };
  }
  return { ir: { nodes, outputs: outputs.map((o) => o.id), feeds: feeds.map((f) => f.id) }, tensors };
}
