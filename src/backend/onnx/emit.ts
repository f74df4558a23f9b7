// The lowering of a planned block into ONNX nodes, shared by the one-call program and the k-step Loop (steps.ts).
import { SymflowError } from '../../graph/errors.js';
import { sizeOf } from '../../graph/tensor.js';
import type { Block } from '../../schedule/plan.js';
import type { ProgramSpec } from '../types.js';
import { type GraphBuilder, valueInfo } from './builder.js';
import { hasLowering, lowerNode } from './lower.js';

/** Refuses, at compile time and in plan order, the first node the onnx backend has no lowering for. */
export function checkLowerings(block: Block, backend: string): void {
  for (const step of block.steps) {
    if (step.kind === 'cond') step.blocks.forEach((b) => checkLowerings(b, backend));
    else if (!hasLowering(step.node.op)) throw new SymflowError(step.node.op, `no ONNX lowering for op '${step.node.op}' (node '${step.node.name}') on backend ${backend}`);
  }
}

/**
 * Lowers a planned block; a cond step becomes an ONNX `If` whose branches are the planned blocks. Values made
 * inside a branch get names of their own (a node both branches need is computed in each), outer ones keep theirs.
 */
export function emitBlock(
  b: GraphBuilder, block: Block, spec: ProgramSpec, names: ReadonlyMap<number, string>, top: boolean, keeps: ReadonlyMap<number, number>,
): Map<number, string> {
  const local = new Map(names);
  const name = (reg: number) => local.get(reg) ?? `s${reg}`;
  const define = (reg: number) => {
    const n = top ? `s${reg}` : b.fresh(`s${reg}`);
    local.set(reg, n);
    return n;
  };
  for (const step of block.steps) {
    if (step.kind === 'node') {
      const inputs = step.inputs.map(name);
      lowerNode(b, step.node, inputs, step.node.inputs.map((id) => spec.ir.nodes[id]!), define(step.out));
      continue;
    }
    const pred = name(step.pred);
    const branches = step.blocks.map((inner, side) => {
      const c = b.child();
      const innerNames = emitBlock(c, inner, spec, local, false, keeps);
      // A value a node of the branch makes is returned under its own name; an Identity (a copy: 5 % of an
      // accumulate-only MLP step for its accumulators) only for an outer value, a kept marker, or a second return.
      const made = new Set(c.nodes.flatMap((n) => n.output ?? []));
      const returned = new Set<string>();
      const outs = inner.results.map((reg, i) => {
        const dtype = spec.nodeOfReg(reg).dtype;
        // A zero-size variable is passed through: its empty value is indistinguishable from the kept marker.
        const kept = keeps.get(step.outs[i]!) === reg && sizeOf(spec.nodeOfReg(reg).shape as number[]) > 0;
        const src = kept ? c.constant(dtype, [0], []) : innerNames.get(reg) ?? name(reg);
        if (!kept && made.has(src) && !returned.has(src)) {
          returned.add(src);
          return valueInfo(src, dtype);
        }
        const o = c.node('Identity', [src], {}, c.fresh(`branch${side}_${i}`));
        return valueInfo(o, dtype);
      });
      return c.graph(side === 0 ? 'then' : 'else', [], outs);
    });
    b.nodes.push({
      opType: 'If', input: [pred], output: step.outs.map(define),
      attribute: [
        { name: 'then_branch', type: 5, g: branches[0]! },
        { name: 'else_branch', type: 5, g: branches[1]! },
      ],
    });
  }
  return local;
}
