import type { Kernel, KernelBackend } from '../backend/index.js';
import { SymflowError } from '../graph/errors.js';
import type { GraphIR, NodeIR } from '../graph/ir.js';

/** Runs one kernel into slot `out`, then frees the slots whose last use this was. */
export interface KernelStep {
  readonly kind: 'kernel';
  readonly kernel: Kernel;
  readonly inputs: readonly number[];
  readonly out: number;
  readonly free: readonly number[];
  readonly node: NodeIR;
}

/** Reads `pred`, runs only the taken block, and moves the block's results into `outs`. */
export interface CondStep {
  readonly kind: 'cond';
  readonly pred: number;
  readonly blocks: readonly [Block, Block];
  readonly outs: readonly number[];
  readonly free: readonly number[];
}

export type Step = KernelStep | CondStep;

/** A straight-line list of steps; `results` are handed to the enclosing cond (moved when `transfer`, else aliased). */
export interface Block {
  readonly steps: readonly Step[];
  readonly results: readonly number[];
  readonly transfer: readonly boolean[];
}

export const SOURCE_OPS = new Set(['placeholder', 'variable', 'constant']);

/**
 * Plans the execution of a pruned graph: which kernels run, in which order, and where each intermediate is freed.
 *
 * Lazy `cond`: nodes needed unconditionally form the top block; a node needed by only one branch goes into that
 * branch's block, so an untaken branch costs nothing, and a node both branches need runs once, before the cond. Node ids are creation order (inputs are older than their
 * users), so sorting a block by id is a topological order, also for a cond step placed at its members' position.
 */
export function planProgram(ir: GraphIR, targets: readonly number[], slotOf: (id: number) => number, backend: KernelBackend): Block {
  const available = new Set<number>(ir.feeds);
  for (const node of Object.values(ir.nodes)) if (SOURCE_OPS.has(node.op)) available.add(node.id);
  const keep = new Set(targets.map(slotOf));
  return planBlock(ir, targets, available, keep, slotOf, backend).block;
}

/** Adds to `into` every node `roots` need that is not `available`; a cond needs only its predicate up front. */
function collect(ir: GraphIR, roots: readonly number[], available: ReadonlySet<number>, into: Set<number>): Set<number> {
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (into.has(id) || available.has(id)) continue;
    into.add(id);
    const node = ir.nodes[id]!;
    if (node.op === 'cond') stack.push(node.inputs[0]!);
    else stack.push(...node.inputs);
  }
  return into;
}

function planBlock(
  ir: GraphIR,
  targets: readonly number[],
  available: ReadonlySet<number>,
  keep: ReadonlySet<number>,
  slotOf: (id: number) => number,
  backend: KernelBackend,
): { block: Block; freeVars: Set<number> } {
  const local = new Set<number>();
  collect(ir, targets, available, local);
  // A node both branches of a cond need runs whichever is taken: it is computed before the cond, once (on onnx this
  // keeps, e.g., a soft batch's whole backward pass out of the If subgraph).
  const hoisted = new Set<number>();
  for (let again = true; again;) {
    again = false;
    for (const id of [...local]) {
      const node = ir.nodes[id]!;
      if (node.op !== 'cond' || hoisted.has(node.attrs['group'] as number)) continue;
      const g = node.attrs['group'] as number;
      hoisted.add(g);
      const members = [...local].filter((m) => ir.nodes[m]!.op === 'cond' && ir.nodes[m]!.attrs['group'] === g);
      const outer = new Set([...available, ...local]);
      const [a, b] = [1, 2].map((side) => collect(ir, members.map((m) => ir.nodes[m]!.inputs[side]!), outer, new Set<number>()));
      const both = [...a!].filter((n) => b!.has(n));
      if (both.length > 0) {
        collect(ir, both, available, local);
        again = true;
      }
    }
  }
  const inner = new Set([...available, ...local]);
  const ordered = [...local].sort((p, q) => p - q);
  const groups = new Map<number, number[]>();
  for (const id of ordered) {
    const node = ir.nodes[id]!;
    if (node.op !== 'cond') continue;
    const g = node.attrs['group'] as number;
    groups.set(g, [...(groups.get(g) ?? []), id]);
  }

  const planned: { step: Omit<KernelStep, 'free'> | Omit<CondStep, 'free'>; uses: number[] }[] = [];
  const freeVars = new Set<number>();
  const emitted = new Set<number>();
  for (const id of ordered) {
    const node = ir.nodes[id]!;
    if (node.op !== 'cond') {
      const kernel = backend.kernelFor({ ...node, inputs: node.inputs.map((i) => ir.nodes[i]!) });
      planned.push({ step: { kind: 'kernel', kernel, inputs: node.inputs.map(slotOf), out: slotOf(id), node }, uses: [...node.inputs] });
      continue;
    }
    const g = node.attrs['group'] as number;
    if (emitted.has(g)) continue;
    emitted.add(g);
    const members = groups.get(g)!;
    const branches = [1, 2].map((side) => {
      const outs = members.map((m) => ir.nodes[m]!.inputs[side]!);
      const { block, freeVars: fv } = planBlock(ir, outs, inner, new Set(outs.map(slotOf)), slotOf, backend);
      return { block, fv };
    });
    const uses = [node.inputs[0]!, ...branches.flatMap((b) => [...b.fv])];
    planned.push({
      step: { kind: 'cond', pred: slotOf(node.inputs[0]!), blocks: [branches[0]!.block, branches[1]!.block], outs: members.map(slotOf) },
      uses,
    });
  }

  // Free each slot made here right after its last use, unless it is a result handed outward.
  const lastUse = new Map<number, number>();
  planned.forEach(({ uses }, i) => {
    for (const u of uses) {
      if (local.has(u)) lastUse.set(u, i);
      else freeVars.add(u);
    }
  });
  const frees: number[][] = planned.map(() => []);
  for (const [id, i] of lastUse) if (!keep.has(slotOf(id))) frees[i]!.push(slotOf(id));
  for (const id of local) {
    if (!lastUse.has(id) && !keep.has(slotOf(id))) throw new SymflowError('Session', `internal: node ${ir.nodes[id]!.name} is planned but never used`);
  }
  const steps = planned.map(({ step }, i) => ({ ...step, free: frees[i]! }) as Step);
  const seen = new Set<number>();
  const results = targets.map(slotOf);
  const transfer = targets.map((id) => {
    const first = !seen.has(id);
    seen.add(id);
    return first && local.has(id);
  });
  for (const id of targets) if (!local.has(id)) freeVars.add(id);
  return { block: { steps, results, transfer }, freeVars };
}
