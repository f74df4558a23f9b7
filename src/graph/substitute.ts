import { branchesOf, capturesOf, condNode, isRead } from './cond.js';
import { SymflowError } from './errors.js';
import { getOp, makeNode } from './registry.js';
import { shapesCompatible } from './shapes.js';
import { isTensor, shapeString, type Tensor } from './tensor.js';
import { toposort } from './walk.js';

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
  return rebuild(outputs, new Map(replacements), false);
}

/**
 * A fresh copy of the subgraph between `outputs` and `cut`: every node in it is built again (the copy of a cond
 * branch a gradient differentiates inside a cond of its own, so that nothing of it runs outside that cond).
 */
export function copyBetween(outputs: readonly Tensor[], cut: readonly Tensor[]): Tensor[] {
  return rebuild(outputs, new Map(cut.map((c) => [c, c])), true);
}

/**
 * Rebuilds `outputs` over `memo` (a tensor → what stands for it): a node is built again when one of its inputs
 * was (or always, with `fresh`; sources are shared). A cond node rebuilt gets its captures worked out again: the
 * tensors its new branches reach that are rebuilt captures, replacements or sources.
 */
function rebuild(outputs: readonly Tensor[], memo: Map<Tensor, Tensor>, fresh: boolean): Tensor[] {
  const stops = new Set(memo.values());
  const rebuilt = (t: Tensor) => memo.get(t) ?? t;
  for (const node of toposort(outputs, (t) => t.inputs, (t) => !memo.has(t))) {
    if (memo.has(node)) continue;
    const inputs = node.inputs.map(rebuilt);
    if (node.inputs.length === 0 || (!fresh && inputs.every((x, i) => x === node.inputs[i]))) {
      memo.set(node, node);
      continue;
    }
    if (node.op === 'cond') {
      const parts = branchesOf(inputs, node.attrs as { captures: number; outputs: number });
      const outer = new Set([...parts.captures, ...stops]);
      const captures = [...new Set([...capturesOf([...parts.then, ...parts.else], (t) => !outer.has(t) && !isRead(t))])].sort((a, b) => a.id - b.id);
      memo.set(node, condNode(parts.pred, captures, parts.then, parts.else, baseName(node)));
      continue;
    }
    const def = getOp(node.op);
    if (def === undefined) throw new SymflowError('substitute', `unknown op '${node.op}' at '${node.name}'`);
    memo.set(node, makeNode(def, inputs, node.attrs, baseName(node)));
  }
  return outputs.map(rebuilt);
}

/**
 * What a rebuilt node is named after: its name without the suffix that made it unique (`dense/add_3` → `dense/add`,
 * so the copy is `dense/add_4`). Taking the whole name as a base would give every copied node a name space
 * entry of its own, and a process that copies graphs (every gradient of a cond does) would grow without bound.
 */
function baseName(node: Tensor): string {
  return node.name.replace(/_[1-9][0-9]*$/, '');
}
