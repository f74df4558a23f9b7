import type { Attrs, DType, Shape, Tensor } from './tensor.js';
import { toposort } from './walk.js';

/** A node of the graph IR: plain, immutable data that rewrite passes transform with immer. */
export interface NodeIR {
  /** The id of the tensor it was made from (`Tensor.id`), or a new one a pass made. */
  readonly id: number;
  /** The op name, as `Tensor.op`. */
  readonly op: string;
  /** The tensor's name, as `Tensor.name`. */
  readonly name: string;
  /** The ids of its inputs, in argument order. */
  readonly inputs: readonly number[];
  /** The op's attributes, as `Tensor.attrs`. */
  readonly attrs: Attrs;
  /** Static shape, as `Tensor.shape`. */
  readonly shape: Shape;
  /** Element type, as `Tensor.dtype`. */
  readonly dtype: DType;
}

/** A graph to run: its nodes by id, the ids it must produce, and the ids fed from outside. */
export interface GraphIR {
  /** Every node, keyed by id. */
  readonly nodes: Readonly<Record<number, NodeIR>>;
  /** The ids whose values a run returns (or assigns), in order. */
  readonly outputs: readonly number[];
  /** The ids whose values are fed from outside, in order. */
  readonly feeds: readonly number[];
}

/** Every node the outputs reach (feeds included, and what lies upstream of them, until a pass cuts it). */
export function toIR(outputs: readonly Tensor[], feeds: readonly Tensor[]): {
  /** The graph as data. */
  ir: GraphIR;
  /** The tensor behind each node id. */
  tensors: Map<number, Tensor>;
} {
  const tensors = new Map<number, Tensor>();
  const nodes: Record<number, NodeIR> = {};
  for (const t of toposort([...outputs, ...feeds], (n) => n.inputs)) {
    tensors.set(t.id, t);
    nodes[t.id] = { id: t.id, op: t.op, name: t.name, inputs: t.inputs.map((i) => i.id), attrs: t.attrs, shape: t.shape, dtype: t.dtype };
  }
  return { ir: { nodes, outputs: outputs.map((o) => o.id), feeds: feeds.map((f) => f.id) }, tensors };
}
