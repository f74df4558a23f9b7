// Rewrites of the lowered ONNX graph that onnxruntime's own optimizer does not make. onnxruntime cancels the
// NHWC↔NCHW transposes around convolutions itself (its transpose optimizer keeps a conv chain NCHW), but it fuses
// a bias Add into a Conv only when the bias is a constant, and a layer's bias is a variable, fed each run.
import type onnxProto from 'onnx-proto';
import type { Dim } from '../../graph/tensor.js';

type INodeProto = onnxProto.onnx.INodeProto;

/** The static shape of a value by its ONNX name, where the lowering knows it (undefined elsewhere). */
export type ShapeOf = (name: string) => readonly Dim[] | undefined;

const NHWC = [0, 2, 3, 1];

/** How many times each name is read: by nodes (subgraphs included, which may read outer values) and as outputs. */
function readCounts(nodes: readonly INodeProto[], outputs: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const visit = (ns: readonly INodeProto[]) => {
    for (const n of ns) {
      for (const i of n.input ?? []) counts.set(i, (counts.get(i) ?? 0) + 1);
      for (const a of n.attribute ?? []) if (a.g) visit(a.g.node ?? []);
    }
  };
  visit(nodes);
  for (const o of outputs) counts.set(o, (counts.get(o) ?? 0) + 1);
  return counts;
}

const permOf = (n: INodeProto) => (n.attribute ?? []).find((a) => a.name === 'perm')?.ints?.map(Number);

/**
 * Add(Transpose_NHWC(Conv(x, w)), bias) → Transpose_NHWC(Conv(x, w, bias)), where bias is [C] and the Conv and the
 * Transpose feed nothing else: the bias is added in the Conv's own pass over its output instead of by a broadcast
 * Add over the whole activation (2.5 ms of a 180 ms mnist_cnn step for its second conv). The Conv adds the bias
 * to the same sum the Add would, once: the same float32 values.
 */
export function fuseConvBias(nodes: INodeProto[], outputs: readonly string[], shapeOf: ShapeOf): INodeProto[] {
  const producer = new Map<string, INodeProto>();
  const at = new Map<INodeProto, number>();
  nodes.forEach((n, i) => {
    at.set(n, i);
    for (const o of n.output ?? []) producer.set(o, n);
  });
  const reads = readCounts(nodes, outputs);
  const dropped = new Set<INodeProto>();
  for (const add of nodes) {
    if (add.opType !== 'Add' || add.input?.length !== 2) continue;
    for (const side of [0, 1]) {
      const [t, bias] = [add.input[side]!, add.input[1 - side]!];
      const tr = producer.get(t);
      const conv = tr?.opType === 'Transpose' && permOf(tr)?.join() === NHWC.join() ? producer.get(tr.input![0]!) : undefined;
      if (conv?.opType !== 'Conv' || conv.input?.length !== 2 || reads.get(t) !== 1 || reads.get(tr!.input![0]!) !== 1) continue;
      const [ts, bs, out] = [shapeOf(t), shapeOf(bias), shapeOf(add.output![0]!)];
      const c = ts?.[3];
      // The Conv reads the bias where it stands: the bias must be made before it (a fed variable always is).
      const made = producer.get(bias);
      if (made !== undefined && at.get(made)! > at.get(conv)!) continue;
      if (ts?.length !== 4 || typeof c !== 'number' || bs?.length !== 1 || bs[0] !== c || out?.join() !== ts.join()) continue;
      conv.input.push(bias);
      tr!.output = [add.output![0]!];
      dropped.add(add);
      break;
    }
  }
  return dropped.size === 0 ? nodes : nodes.filter((n) => !dropped.has(n));
}

/** Every node of the graph and of its branches, outer first. */
function allNodes(nodes: readonly INodeProto[]): INodeProto[] {
  return nodes.flatMap((n) => [n, ...(n.attribute ?? []).flatMap((a) => (a.g ? allNodes(a.g.node ?? []) : []))]);
}

/** Reads as readCounts, with every branch's outputs counted as reads too. */
function allReads(nodes: readonly INodeProto[], outputs: readonly string[]): Map<string, number> {
  const counts = readCounts(nodes, outputs);
  for (const n of allNodes(nodes)) {
    for (const a of n.attribute ?? []) for (const o of a.g?.output ?? []) counts.set(o.name!, (counts.get(o.name!) ?? 0) + 1);
  }
  return counts;
}

/**
 * Drops the outputs nobody reads of If nodes (from both branches too) and MaxPool's unread Indices: maxPool's
 * lowering always asks for the indices (a training step's gradient reuses them), and onnxruntime runs a MaxPool
 * with Indices on its plain kernel, without them on its faster blocked-layout one.
 */
export function dropUnreadOutputs(nodes: INodeProto[], outputs: readonly string[]): INodeProto[] {
  let reads = readCounts(nodes, outputs);
  for (const n of nodes) {
    if (n.opType !== 'If') continue;
    const keep = (n.output ?? []).map((o) => (reads.get(o) ?? 0) > 0);
    if (keep.every(Boolean) || !keep.some(Boolean)) continue;
    n.output = n.output!.filter((_, k) => keep[k]);
    for (const a of n.attribute ?? []) if (a.g) a.g.output = (a.g.output ?? []).filter((_, k) => keep[k]);
  }
  reads = allReads(nodes, outputs);
  for (const n of allNodes(nodes)) {
    if (n.opType === 'MaxPool' && n.output?.length === 2 && (reads.get(n.output[1]!) ?? 0) === 0) n.output = [n.output[0]!];
  }
  return nodes;
}

/**
 * Renames values wherever they are made or read (subgraphs included): a graph output takes the name of the value
 * it returns instead of an `Identity` copy of it (0.1 ms of an MLP step for its weights, ~1 ms of the mnist_cnn
 * step for its 9216×128 kernel). Names are unique in a model, so a plain substitution is exact.
 */
export function renameValues(nodes: INodeProto[], names: ReadonlyMap<string, string>): INodeProto[] {
  const to = (v: string) => names.get(v) ?? v;
  const visit = (ns: readonly INodeProto[]) => {
    for (const n of ns) {
      n.input = (n.input ?? []).map(to);
      n.output = (n.output ?? []).map(to);
      for (const a of n.attribute ?? []) {
        if (!a.g) continue;
        visit(a.g.node ?? []);
        for (const o of a.g.output ?? []) o.name = to(o.name ?? '');
      }
    }
  };
  visit(nodes);
  return nodes;
}
