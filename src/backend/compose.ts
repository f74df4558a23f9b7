import { condOps } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { type GraphIR, type NodeIR, toIR } from '../graph/ir.js';
import { graph } from '../graph/names.js';
import { getOp } from '../graph/registry.js';
import { shapesCompatible } from '../graph/shapes.js';
import { placeholder } from '../graph/sources.js';
import type { KernelNode } from './types.js';
import { isTensor, shapeString } from '../graph/tensor.js';

/** A node's composition from other ops, ready to run or lower node by node. */
export interface Composition {
  readonly ir: GraphIR;
  /** The nodes to compute, inputs before users (constants included; the inputs' placeholders left out). */
  readonly steps: readonly NodeIR[];
  /** The placeholders standing for the node's inputs, in order. */
  readonly inputs: readonly number[];
  readonly output: number;
}

/**
 * Builds the `compose` fallback of a node's op on placeholders of its inputs' shapes, in a name space of its own
 * (so nothing else's names change). `undefined` when the op has no composition. A composition is a function of
 * its inputs: variables and conds in it are refused, naming the op.
 */
export function composition(node: KernelNode): Composition | undefined {
  const def = getOp(node.op);
  if (def?.compose === undefined) return undefined;
  return graph(() => {
    const phs = node.inputs.map((x, i) => placeholder(x.shape, { dtype: x.dtype, name: `${node.op}/input${i}` }));
    const out: unknown = def.compose!(phs, node.attrs);
    if (!isTensor(out) || out.dtype !== node.dtype || !shapesCompatible(out.shape, node.shape)) {
      const got = isTensor(out) ? `${out.dtype} ${shapeString(out.shape)}` : typeof out;
      throw new SymflowError(node.op, `compose must return one Tensor like the op's output (${node.dtype} ${shapeString(node.shape)}), got ${got}`);
    }
    const { ir } = toIR([out], phs);
    const inputs = phs.map((p) => p.id);
    const steps = Object.values(ir.nodes).filter((n) => !inputs.includes(n.id)).sort((a, b) => a.id - b.id);
    const bad = steps.find((n) => n.op === 'variable' || n.op === 'placeholder' || condOps.some((c) => c.name === n.op));
    if (bad !== undefined) {
      throw new SymflowError(node.op, `compose may use only the op's inputs, constants and ops a backend runs, not a ${bad.op} ('${bad.name}')`);
    }
    return { ir, steps, inputs, output: out.id };
  });
}
