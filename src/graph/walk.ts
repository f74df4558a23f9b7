/**
 * The one graph walk (tinygrad's `toposort`): every node the roots reach, each once, every node after its inputs.
 *
 * Generic over what a node is (a `Tensor`, or a `NodeIR` id with `inputsOf = (id) => ir.nodes[id].inputs`), and
 * iterative, so a graph thousands of nodes deep does not overflow the stack. `gate(node)` decides whether a node's
 * inputs are walked: a node it refuses is still in the result, as a leaf (a fed node in pruning, an x where
 * gradients cut, a capture at a cond branch's edge). A walk that must follow only some inputs (a cond's predicate)
 * says so in `inputsOf`. Graphs are acyclic by construction (a tensor's inputs exist before it, and passes only
 * rewire a node to older ones), so the walk does not pay to look for cycles.
 *
 * ```ts
 * const order = toposort([loss], (t) => t.inputs);                       // inputs first, loss last
 * const kept = toposort(ir.outputs, (id) => ir.nodes[id]!.inputs, (id) => !fed.has(id));
 * ```
 * @param roots where the walk starts (duplicates are fine)
 * @param inputsOf a node's inputs
 * @param gate whether to walk a node's inputs (default: always)
 * @returns the nodes reached, inputs before users; among a node's inputs, the first comes first
 */
export function toposort<N>(roots: Iterable<N>, inputsOf: (node: N) => readonly N[], gate?: (node: N) => boolean): N[] {
  const order: N[] = [];
  const entered = new Set<N>();
  // The path from the current root, with each node's inputs and the index of the next one to walk.
  const path: N[] = [];
  const pathInputs: (readonly N[])[] = [];
  const next: number[] = [];
  const enter = (node: N) => {
    entered.add(node);
    path.push(node);
    pathInputs.push(gate === undefined || gate(node) ? inputsOf(node) : LEAF);
    next.push(0);
  };
  for (const root of roots) {
    if (entered.has(root)) continue;
    enter(root);
    while (path.length > 0) {
      const top = path.length - 1;
      const inputs = pathInputs[top]!;
      const i = next[top]!;
      if (i === inputs.length) {
        const node = path.pop()!;
        pathInputs.pop();
        next.pop();
        order.push(node);
        continue;
      }
      next[top] = i + 1;
      const input = inputs[i]!;
      if (!entered.has(input)) enter(input);
    }
  }
  return order;
}

const LEAF: readonly never[] = [];
