import { describe, expect, it } from 'vitest';
import type { Kernel, KernelBackend } from '../src/backend/types.js';
import { add, cond, exp, greater, log, mul, placeholder, sum, toIR, type Tensor } from '../src/index.js';
import { type Block, planProgram } from '../src/session/plan.js';

// Planning needs only kernel selection from a backend; nothing runs here.
const backend = { kernelFor: () => (() => { throw new Error('not run'); }) as Kernel } as unknown as KernelBackend;

/** The node names a block computes, per nesting level: top-level kernels, then each cond's two branches. */
function names(block: Block): { top: string[]; branches: ReturnType<typeof names>[][] } {
  const top: string[] = [];
  const branches: ReturnType<typeof names>[][] = [];
  for (const step of block.steps) {
    if (step.kind === 'kernel') top.push(step.node.name);
    else branches.push(step.blocks.map(names));
  }
  return { top, branches };
}

function plan(outputs: Tensor[]): ReturnType<typeof names> {
  const { ir } = toIR(outputs, []);
  return names(planProgram(ir, outputs.map((t) => t.id), (id) => id, backend));
}

describe('planning a lazy cond', () => {
  it('computes a node both branches need once, before the cond; a node one branch needs stays in it', () => {
    const p = placeholder([], { dtype: 'bool' });
    const x = placeholder([3]);
    const shared = exp(x);
    const onlyThen = log(shared);
    const y = cond(p, () => sum(onlyThen), () => sum(mul(shared, 2)));
    const { top, branches } = plan([y]);
    expect(top).toContain(shared.name);
    expect(top).not.toContain(onlyThen.name);
    const [[thenBlock, elseBlock]] = branches as [[ReturnType<typeof names>, ReturnType<typeof names>]];
    expect(thenBlock.top).toContain(onlyThen.name);
    expect([...thenBlock.top, ...elseBlock.top]).not.toContain(shared.name);
  });

  it('hoists out of nested conds level by level, and never past the cond whose branches alone need it', () => {
    const p = placeholder([], { dtype: 'bool' });
    const q = placeholder([], { dtype: 'bool' });
    const x = placeholder([3]);
    const innerShared = exp(x);
    const y = cond(p, () => cond(q, () => sum(log(innerShared)), () => sum(innerShared)), () => sum(x));
    const { top, branches } = plan([y]);
    // Only the then-branch of p needs innerShared: it is computed there, before the inner cond, not at the top.
    expect(top).not.toContain(innerShared.name);
    const [[thenBlock, elseBlock]] = branches as [[ReturnType<typeof names>, ReturnType<typeof names>]];
    expect(thenBlock.top).toContain(innerShared.name);
    expect(elseBlock.top).not.toContain(innerShared.name);
    const [[innerThen, innerElse]] = thenBlock.branches as [[ReturnType<typeof names>, ReturnType<typeof names>]];
    expect([...innerThen.top, ...innerElse.top]).not.toContain(innerShared.name);
  });

  it('hoists what the two branches of an update cond share (a soft batch’s gradient)', () => {
    const p = placeholder([], { dtype: 'bool' });
    const x = placeholder([3]);
    const g = mul(exp(x), 3);
    const a = cond(p, () => add(g, 1), () => mul(g, g));
    const { top } = plan([a, greater(sum(x), 0)]);
    expect(top).toContain(g.name);
  });
});
