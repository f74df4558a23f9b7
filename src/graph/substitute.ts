import { condGroup, makeCondGroup } from './cond.js';
import { SymflowError } from './errors.js';
import { getOp, makeNode } from './registry.js';
import { shapesCompatible } from './shapes.js';
import { isTensor, shapeString, type Tensor } from './tensor.js';
import { ancestors } from './traverse.js';

/**
 * Graph-to-graph substitution: the same computation with some tensors replaced by others. Nodes that depend on a
 * replaced tensor are rebuilt (shapes and dtypes inferred again); the rest are shared with the original graph.
 *
 * It is how a multi-run method evaluates a loss or gradient at another point without writing the parameters:
 * ```ts
 * const [gAtStage] = substitute([g], new Map([[w, add(w, mul(lr, k1))]])); // ∇L at w + lr·k1
 * ```
 * @param outputs the tensors to rebuild
 * @param replacements tensor → replacement (same dtype, compatible shape)
 * @returns the rebuilt outputs, in order (an output nothing reaches is returned as it is)
 */
export function substitute(outputs: readonly Tensor[], replacements: ReadonlyMap<Tensor, Tensor>): Tensor[] {
  for (const [from, to] of replacements) {
    if (!isTensor(from) || !isTensor(to)) throw new SymflowError('substitute', 'replacements must map tensors to tensors');
    if (from.dtype !== to.dtype || !shapesCompatible(from.shape, to.shape)) {
      throw new SymflowError('substitute', `replacement for '${from.name}' is ${to.dtype} ${shapeString(to.shape)}, it needs ${from.dtype} ${shapeString(from.shape)}`);
    }
  }
  const memo = new Map<Tensor, Tensor>(replacements);
  const rebuilt = (t: Tensor) => memo.get(t) ?? t;
  for (const node of ancestors(outputs)) {
    if (memo.has(node)) continue;
    if (!node.inputs.some((i) => rebuilt(i) !== i)) {
      memo.set(node, node);
      continue;
    }
    if (node.op === 'cond') {
      // A cond group is rebuilt whole; its members' inputs are all older than its members, so already done.
      const members = condGroup(node);
      const { thenScope, elseScope } = node.attrs as { thenScope: number; elseScope: number };
      const news = makeCondGroup(rebuilt(node.inputs[0]!), members.map((m) => rebuilt(m.inputs[1]!)), members.map((m) => rebuilt(m.inputs[2]!)), thenScope, elseScope);
      members.forEach((m, i) => memo.set(m, news[i]!));
      continue;
    }
    const def = getOp(node.op);
    if (def === undefined) throw new SymflowError('substitute', `unknown op '${node.op}' at '${node.name}'`);
    // Rebuilt nodes keep their scope, so a gradient through a rebuilt cond still finds its branches.
    memo.set(node, makeNode(def, node.inputs.map(rebuilt), node.attrs, node.name, node.scope));
  }
  return outputs.map(rebuilt);
}
