/**
 * The one graph walk (tinygrad's `toposort`): every node the roots reach, each once, every node after its inputs.
 *
 * Generic over what a node is (a `Tensor`, or a `NodeIR` id with `inputsOf = (id) => ir.nodes[id].inputs`), and
 * iterative, so a graph thousands of nodes deep does not overflow the stack. `gate(node)` decides whether a node's
 * inputs are walked: a node it refuses is still in the result, as a leaf (a fed node in pruning, an x where
 * gradients cut, a capture at a cond branch's edge). A walk that must follow only some inputs (a cond's predicate)
 * says so in `inputsOf`.
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
  // A node is in `entered` from when its inputs are pushed; it joins `order` once they have all been emitted.
  const entered = new Set<N>();
  const done = new Set<N>();
  // Entries are nodes to enter, and (after an `EMIT` marker) nodes whose inputs are done. Roots are walked in order.
  const stack: (N | typeof EMIT)[] = [...roots].reverse();
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (top === EMIT) {
      const node = stack.pop() as N;
      done.add(node);
      order.push(node);
      continue;
    }
    // An entry pushed before its node was entered by another path: that node is done by now.
    if (entered.has(top)) continue;
    entered.add(top);
    stack.push(top, EMIT);
    if (gate !== undefined && !gate(top)) continue;
    const inputs = inputsOf(top);
    for (let i = inputs.length - 1; i >= 0; i--) {
      const input = inputs[i]!;
      if (!entered.has(input)) stack.push(input);
      // Entered but not done: the input lies on the path that led here, so it is its own ancestor.
      else if (!done.has(input)) throw new Error(`toposort: the graph has a cycle through ${describe(input)}`);
    }
  }
  return order;
}

function describe(node: unknown): string {
  return typeof node === 'object' && node !== null && 'name' in node ? `'${String(node.name)}'` : String(node);
}

const EMIT: unique symbol = Symbol('emit');
