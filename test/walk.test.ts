import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as sf from '../src/index.js';
import { toposort } from '../src/graph/walk.js';
import { Rng, evaluate, generateRecipe, SYMFLOW, symflowObjective } from '../fuzz/graphs.js';
import { EXPECTATIONS, encodeIR, fingerprints } from './walkFingerprint.js';

/** A fuzz graph with its gradients: a few dozen tensors, shared subexpressions, several outputs. */
function fuzzGraph(index: number): { roots: sf.Tensor[]; inputs: sf.Tensor[]; vals: sf.Tensor[] } {
  const recipe = generateRecipe(11, index, 0, 0, 'first');
  const inputs = recipe.inputs.map((inp) => sf.placeholder(inp.shape));
  const vals = evaluate(recipe, SYMFLOW, inputs);
  const y = symflowObjective(recipe, vals);
  return { roots: [y, ...sf.gradients(y, inputs, { unconnected: 'zero' })], inputs, vals };
}

/** What the roots reach when a gated-out node's inputs are not followed (a plain set, no order). */
function reachable<N>(roots: readonly N[], inputsOf: (n: N) => readonly N[], gate: (n: N) => boolean): Set<N> {
  const seen = new Set<N>();
  const todo = [...roots];
  while (todo.length > 0) {
    const n = todo.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (gate(n)) todo.push(...inputsOf(n));
  }
  return seen;
}

function expectTopological<N>(order: readonly N[], roots: readonly N[], inputsOf: (n: N) => readonly N[], gate: (n: N) => boolean): void {
  const position = new Map(order.map((n, i) => [n, i]));
  expect(position.size).toBe(order.length); // each node once
  expect(new Set(order)).toEqual(reachable(roots, inputsOf, gate)); // exactly what the gate lets through
  for (const [i, n] of order.entries()) {
    if (!gate(n)) continue;
    for (const input of inputsOf(n)) expect(position.get(input)!).toBeLessThan(i); // inputs first
  }
}

/** toIR and prune as they were before the one walk (issue 11 §5), to compare with. */
function oldToIR(outputs: readonly sf.Tensor[], feeds: readonly sf.Tensor[]): { ir: sf.GraphIR; tensors: Map<number, sf.Tensor> } {
  const tensors = new Map<number, sf.Tensor>();
  const nodes: Record<number, sf.NodeIR> = {};
  const stack = [...outputs, ...feeds];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (tensors.has(t.id)) continue;
    tensors.set(t.id, t);
    nodes[t.id] = { id: t.id, op: t.op, name: t.name, inputs: t.inputs.map((i) => i.id), attrs: t.attrs, shape: t.shape, dtype: t.dtype };
    stack.push(...t.inputs);
  }
  return { ir: { nodes, outputs: outputs.map((o) => o.id), feeds: feeds.map((f) => f.id) }, tensors };
}
function oldPruneKeep(ir: sf.GraphIR): Set<number> {
  const fed = new Set(ir.feeds);
  const keep = new Set<number>();
  const stack = [...ir.outputs];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (keep.has(id)) continue;
    keep.add(id);
    if (!fed.has(id)) stack.push(...ir.nodes[id]!.inputs);
  }
  return keep;
}

describe('toposort', () => {
  it('orders fuzz graphs inputs first, each node once, and respects the gate (tensors and NodeIR ids)', () => {
    for (let index = 0; index < 60; index++) {
      const { roots, inputs } = fuzzGraph(index);
      const all = toposort(roots, (t) => t.inputs);
      const rng = new Rng(index);
      const cut = new Set(all.filter(() => rng.bool(0.25)));
      for (const gate of [() => true, (t: sf.Tensor) => !cut.has(t)]) {
        expectTopological(toposort(roots, (t) => t.inputs, gate), roots, (t) => t.inputs, gate);
      }
      const { ir } = sf.toIR(roots, inputs);
      const ids = ir.outputs;
      const inputsOf = (id: number) => ir.nodes[id]!.inputs;
      const cutIds = new Set([...cut].map((t) => t.id));
      const gate = (id: number) => !cutIds.has(id);
      expectTopological(toposort(ids, inputsOf, gate), ids, inputsOf, gate);
      // A cond-style walk: a node may follow only some of its inputs (plan.ts follows only a cond's predicate).
      const firstOnly = (id: number) => inputsOf(id).slice(0, 1);
      expectTopological(toposort(ids, firstOnly, gate), ids, firstOnly, gate);
    }
  });

  it('walks roots in order, takes duplicates once, and keeps a gated-out root as a leaf', () => {
    const inputs: Record<number, number[]> = { 0: [], 1: [0], 2: [0, 1], 3: [2], 4: [1] };
    const of = (n: number) => inputs[n]!;
    expect(toposort([3, 4, 3], of)).toEqual([0, 1, 2, 3, 4]);
    expect(toposort([4, 3], of)).toEqual([0, 1, 4, 2, 3]);
    expect(toposort([3], of, (n) => n !== 2)).toEqual([2, 3]);
    expect(toposort([3], of, (n) => n !== 3)).toEqual([3]);
    expect(toposort([], of)).toEqual([]);
  });

  it('gives the plan its collect: stop at available nodes, a cond follows only its predicate (as schedule/plan.ts walks)', () => {
    // The hand-written collect of src/schedule/plan.ts, and the same with toposort; some nodes play cond.
    const oldCollect = (ir: sf.GraphIR, roots: readonly number[], available: ReadonlySet<number>, into: Set<number>, isCond: (id: number) => boolean) => {
      const stack = [...roots];
      while (stack.length > 0) {
        const id = stack.pop()!;
        if (into.has(id) || available.has(id)) continue;
        into.add(id);
        const node = ir.nodes[id]!;
        if (isCond(id)) stack.push(node.inputs[0]!);
        else stack.push(...node.inputs);
      }
      return into;
    };
    for (let index = 0; index < 40; index++) {
      const { roots, inputs } = fuzzGraph(index);
      const { ir } = sf.toIR(roots, inputs);
      const rng = new Rng(1000 + index);
      const ids = Object.keys(ir.nodes).map(Number);
      const available = new Set([...ir.feeds, ...ids.filter(() => rng.bool(0.15))]);
      const conds = new Set(ids.filter((id) => ir.nodes[id]!.inputs.length > 1 && rng.bool(0.3)));
      const before = new Set(ids.filter(() => rng.bool(0.1)));
      const into = new Set(before);
      const inputsOf = (id: number) => (conds.has(id) ? ir.nodes[id]!.inputs.slice(0, 1) : ir.nodes[id]!.inputs);
      for (const id of toposort(ir.outputs, inputsOf, (id) => !available.has(id) && !into.has(id))) if (!available.has(id)) into.add(id);
      expect(into).toEqual(oldCollect(ir, ir.outputs, available, new Set(before), (id) => conds.has(id)));
    }
  });

  it('walks a 20,000-node chain without overflowing the stack, and so do its users', () => {
    const x = sf.placeholder([2], { name: 'x' });
    const w = sf.variable([1, 2], { name: 'w' });
    let h: sf.Tensor = sf.mul(x, w);
    for (let i = 0; i < 20_000; i++) h = sf.add(h, 1);
    const order = toposort([h], (t) => t.inputs);
    expect(order.length).toBeGreaterThan(20_002); // x, w, their product, the adds and their constants
    expect(order[order.length - 1]).toBe(h);
    expectTopological(order, [h], (t) => t.inputs, () => true);
    const [g] = sf.gradients(sf.sum(h), [w]);
    expect(sf.variablesOf(sf.sum(h))).toEqual([w]);
    const { ir } = sf.toIR([g!, h], [x]);
    expect(Object.keys(ir.nodes).map(Number)).toEqual(Object.keys(oldToIR([g!, h], [x]).ir.nodes).map(Number));
    expect(new Set(Object.keys(sf.prune(ir).nodes).map(Number))).toEqual(oldPruneKeep(ir));
  });

  it('walks a 2,000-deep cond-free chain of two-input nodes for gradients (deep graphs, both inputs shared)', () => {
    const x = sf.placeholder([3]);
    let h: sf.Tensor = x;
    for (let i = 0; i < 2_000; i++) h = sf.add(sf.mul(sf.tanh(h), 0.5), h);
    const [g] = sf.gradients(sf.sum(h), [x]);
    const order = toposort([g!], (t) => t.inputs);
    expect(order[order.length - 1]).toBe(g);
    expectTopological(order, [g!], (t) => t.inputs, () => true);
  });
});

describe('the walk’s users give what the hand-written traversals gave', () => {
  it('toIR and prune of fuzz graphs are identical to the old implementations', () => {
    for (let index = 0; index < 60; index++) {
      const { roots, inputs, vals } = fuzzGraph(index);
      const feeds = [...inputs, vals[Math.floor(vals.length / 2)]!];
      const now = sf.toIR(roots, feeds);
      const old = oldToIR(roots, feeds);
      expect(now.ir).toEqual(old.ir);
      expect(encodeIR(now.ir)).toBe(encodeIR(old.ir));
      expect(new Map([...now.tensors].sort(([a], [b]) => a - b))).toEqual(new Map([...old.tensors].sort(([a], [b]) => a - b)));
      const pruned = sf.prune(now.ir);
      expect(new Set(Object.keys(pruned.nodes).map(Number))).toEqual(oldPruneKeep(now.ir));
      expect(pruned.feeds).toEqual(now.ir.feeds.filter((id) => oldPruneKeep(now.ir).has(id)));
    }
  });

  it('gradient graphs (first and second order, through conds), toIR, prune and variablesOf match the stored fingerprints', () => {
    const expected = JSON.parse(readFileSync(EXPECTATIONS, 'utf8')) as Record<string, string>;
    expect(fingerprints()).toEqual(expected);
  });
});
