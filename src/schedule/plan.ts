import { SymflowError } from '../graph/errors.js';
import type { GraphIR, NodeIR } from '../graph/ir.js';
import { branchIds } from '../graph/cond.js';
import { toposort } from '../graph/walk.js';

/**
 * The execution plan of a session function, as plain data (tinygrad's `ScheduleItem`): steps naming nodes and
 * registers, and where each register is freed. It sits below both the session and the backends: the session plans it
 * and binds a kernel backend's kernel to each node step (`bindKernels`); a program backend lowers the whole plan.
 * Values live in numbered registers (one per node of the pruned graph).
 */

/** Computes `node` from the registers `inputs` into register `out`, then frees the registers whose last use this was. */
export interface NodeStep {
  readonly kind: 'node';
  readonly inputs: readonly number[];
  readonly out: number;
  readonly free: readonly number[];
  readonly node: NodeIR;
}

/** Reads `pred`, runs only the taken block, and moves the block's results into `outs`. */
export interface CondStep<N extends NodeStep = NodeStep> {
  readonly kind: 'cond';
  readonly pred: number;
  readonly blocks: readonly [Block<N>, Block<N>];
  readonly outs: readonly number[];
  readonly free: readonly number[];
}

/** A step; `N` is what a node step carries (the plain plan's `NodeStep`, or a kernel backend's step with its kernel). */
export type Step<N extends NodeStep = NodeStep> = N | CondStep<N>;

/** A straight-line list of steps; `results` are handed to the enclosing cond (moved when `transfer`, else aliased). */
export interface Block<N extends NodeStep = NodeStep> {
  readonly steps: readonly Step<N>[];
  readonly results: readonly number[];
  readonly transfer: readonly boolean[];
}

/** Maps every node step of a plan, keeping its shape (cond steps, results, disposal points) as it is. */
export function mapSteps<N extends NodeStep>(block: Block, f: (step: NodeStep) => N): Block<N> {
  const steps = block.steps.map((s): Step<N> => (s.kind === 'node' ? f(s) : { ...s, blocks: [mapSteps(s.blocks[0], f), mapSteps(s.blocks[1], f)] }));
  return { ...block, steps };
}

export const SOURCE_OPS = new Set(['placeholder', 'variable', 'constant', 'random']);

/** Where each cond's outputs are: its `condOutput` nodes, and the cond each belongs to. */
interface Outputs {
  readonly of: ReadonlyMap<number, readonly number[]>;
  readonly condOf: ReadonlyMap<number, number>;
}

function findOutputs(ir: GraphIR): Outputs {
  const of = new Map<number, number[]>();
  const condOf = new Map<number, number>();
  for (const node of Object.values(ir.nodes)) {
    if (node.op !== 'condOutput') continue;
    const c = node.inputs[0]!;
    of.set(c, [...(of.get(c) ?? []), node.id].sort((a, b) => a - b));
    condOf.set(node.id, c);
  }
  return { of, condOf };
}

/**
 * Plans the execution of a pruned graph: which nodes run, in which order, and where each intermediate is freed.
 *
 * Lazy `cond`: a cond node's inputs are its predicate, its captures and each branch's outputs; only the
 * predicate is needed up front. Nodes needed unconditionally form the top block; a node needed by only one branch
 * goes into that branch's block, so an untaken branch costs nothing, and a node both branches need runs once,
 * before the cond. A cond's `condOutput` nodes are the registers its step fills. Node ids are creation order
 * (inputs are older than their users), so sorting a block by id is a topological order.
 */
export function planProgram(ir: GraphIR, targets: readonly number[], regOf: (id: number) => number): Block {
  const available = new Set<number>(ir.feeds);
  for (const node of Object.values(ir.nodes)) if (SOURCE_OPS.has(node.op)) available.add(node.id);
  const keep = new Set(targets.map(regOf));
  return planBlock(ir, findOutputs(ir), targets, available, keep, regOf).block;
}

/**
 * Adds to `into` every node `roots` need that is not `available`: a cond needs only its predicate up front, and a
 * cond output is made by its cond's step (so the cond is what is added).
 */
function collect(ir: GraphIR, roots: readonly number[], available: ReadonlySet<number>, into: Set<number>): Set<number> {
  const inputsOf = (id: number) => {
    const node = ir.nodes[id]!;
    return node.op === 'cond' ? [node.inputs[0]!] : node.inputs;
  };
  // The walk stops at what is available or already collected; those are returned (as gated leaves) but not added.
  for (const id of toposort(roots, inputsOf, (id) => !available.has(id) && !into.has(id))) {
    if (!available.has(id) && ir.nodes[id]!.op !== 'condOutput') into.add(id);
  }
  return into;
}

/** The outputs of a cond step: its condOutput nodes, and for each the branch outputs that fill it. */
function stepOutputs(ir: GraphIR, outputs: Outputs, id: number): { outs: readonly number[]; sides: readonly [number[], number[]] } {
  const node = ir.nodes[id]!;
  const parts = branchIds(node.inputs, node.attrs as { captures: number; outputs: number });
  const outs = outputs.of.get(id) ?? [];
  const index = (o: number) => ir.nodes[o]!.attrs['index'] as number;
  return { outs, sides: [outs.map((o) => parts.then[index(o)]!), outs.map((o) => parts.else[index(o)]!)] };
}

function planBlock(
  ir: GraphIR,
  outputs: Outputs,
  targets: readonly number[],
  available: ReadonlySet<number>,
  keep: ReadonlySet<number>,
  regOf: (id: number) => number,
): { block: Block; freeVars: Set<number> } {
  const local = new Set<number>();
  collect(ir, targets, available, local);
  // A node both branches of a cond need runs whichever is taken: it is computed before the cond, once (on onnx this
  // keeps, e.g., a soft batch's whole backward pass out of the If subgraph).
  const hoisted = new Set<number>();
  const withOutputs = (ids: Iterable<number>) => {
    const all = new Set(ids);
    for (const id of all) for (const o of outputs.of.get(id) ?? []) all.add(o);
    return all;
  };
  for (let again = true; again;) {
    again = false;
    for (const id of [...local]) {
      if (ir.nodes[id]!.op !== 'cond' || hoisted.has(id)) continue;
      hoisted.add(id);
      const outer = withOutputs([...available, ...local]);
      const [a, b] = stepOutputs(ir, outputs, id).sides.map((side) => collect(ir, side, outer, new Set<number>()));
      const both = [...a!].filter((n) => b!.has(n));
      if (both.length > 0) {
        collect(ir, both, available, local);
        again = true;
      }
    }
  }
  const inner = withOutputs([...available, ...local]);
  // What this block makes: its nodes, and the outputs of its conds.
  const made = withOutputs(local);
  const ordered = [...local].sort((p, q) => p - q);

  const planned: { step: Omit<NodeStep, 'free'> | Omit<CondStep, 'free'>; uses: number[]; makes: readonly number[] }[] = [];
  const freeVars = new Set<number>();
  for (const id of ordered) {
    const node = ir.nodes[id]!;
    if (node.op !== 'cond') {
      planned.push({ step: { kind: 'node', inputs: node.inputs.map(regOf), out: regOf(id), node }, uses: [...node.inputs], makes: [id] });
      continue;
    }
    const { outs, sides } = stepOutputs(ir, outputs, id);
    const branches = sides.map((side) => planBlock(ir, outputs, side, inner, new Set(side.map(regOf)), regOf));
    planned.push({
      step: { kind: 'cond', pred: regOf(node.inputs[0]!), blocks: [branches[0]!.block, branches[1]!.block], outs: outs.map(regOf) },
      uses: [node.inputs[0]!, ...branches.flatMap((b) => [...b.freeVars])],
      makes: outs,
    });
  }

  // Free each register made here right after its last use (an output nothing uses, right where it is made), unless
  // it is a result handed outward.
  const lastUse = new Map<number, number>();
  planned.forEach(({ uses }, i) => {
    for (const u of uses) {
      if (made.has(u)) lastUse.set(u, i);
      else freeVars.add(u);
    }
  });
  const frees: number[][] = planned.map(() => []);
  for (const [id, i] of lastUse) if (!keep.has(regOf(id))) frees[i]!.push(regOf(id));
  planned.forEach(({ makes }, i) => {
    for (const id of makes) {
      if (lastUse.has(id) || keep.has(regOf(id))) continue;
      if (ir.nodes[id]!.op !== 'condOutput') throw new SymflowError('Session', `internal: node ${ir.nodes[id]!.name} is planned but never used`);
      frees[i]!.push(regOf(id));
    }
  });
  const steps = planned.map(({ step }, i) => ({ ...step, free: frees[i]! }) as Step);
  const seen = new Set<number>();
  const results = targets.map(regOf);
  const transfer = targets.map((id) => {
    const first = !seen.has(id);
    seen.add(id);
    return first && made.has(id);
  });
  for (const id of targets) if (!made.has(id)) freeVars.add(id);
  return { block: { steps, results, transfer }, freeVars };
}
