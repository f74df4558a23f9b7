import { describe, expect, it } from 'vitest';
import { add, cond, exp, greater, log, mul, placeholder, sum, toIR, type Tensor } from '../src/index.js';
import type { Kernel, KernelBackend, KernelStep } from '../src/backend/index.js';
import { type Block, planProgram } from '../src/schedule/plan.js';
import { bindKernels } from '../src/session/bindKernels.js';

/** The node names a block computes, per nesting level: top-level kernels, then each cond's two branches. */
function names(block: Block): { top: string[]; branches: ReturnType<typeof names>[][] } {
  const top: string[] = [];
  const branches: ReturnType<typeof names>[][] = [];
  for (const step of block.steps) {
    if (step.kind === 'node') top.push(step.node.name);
    else branches.push(step.blocks.map(names));
  }
  return { top, branches };
}

function plan(outputs: Tensor[]): ReturnType<typeof names> {
  const { ir } = toIR(outputs, []);
  return names(planProgram(ir, outputs.map((t) => t.id), (id) => id));
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

describe('the plan is plain data', () => {
  const p = placeholder([], { dtype: 'bool' });
  const x = placeholder([3]);
  const y = cond(p, () => sum(log(x)), () => sum(exp(x)));
  const { ir } = toIR([y, mul(x, 2)], []);
  const top = planProgram(ir, ir.outputs, (id) => id);

  it('holds no functions: it survives a structured clone unchanged', () => {
    expect(structuredClone(top)).toEqual(top);
  });

  it('bindKernels asks a kernel backend once per node step, in plan order, and keeps the plan’s shape', () => {
    const asked: string[] = [];
    const kernel = (() => { throw new Error('not run'); }) as Kernel;
    const backend = { kind: 'kernels', kernelFor: (n: { name: string }) => (asked.push(n.name), kernel) } as unknown as KernelBackend;
    const bound = bindKernels(top, ir, backend);
    const planned: string[] = [];
    const walk = (b: Block) => b.steps.forEach((s) => (s.kind === 'node' ? planned.push(s.node.name) : s.blocks.forEach(walk)));
    walk(top);
    expect(asked).toEqual(planned);
    const strip = (b: Block<KernelStep>): Block => ({
      ...b, steps: b.steps.map((s) => (s.kind === 'node' ? (({ kernel: _, ...rest }) => rest)(s) : { ...s, blocks: [strip(s.blocks[0]), strip(s.blocks[1])] as const })),
    });
    expect(strip(bound)).toEqual(top);
  });

  it('onnx refuses, at compile time, a node it has no lowering for, naming the op and the backend', async () => {
    const { OnnxBackend } = await import('../src/backend/onnx/backend.js');
    const node = { ...ir.nodes[ir.outputs[1]!]!, op: 'noSuchOp', name: 'mystery' };
    const plan: Block = { steps: [{ kind: 'node', inputs: [x.id], out: node.id, free: [], node }], results: [node.id], transfer: [true] };
    const spec = { ir, top: plan, nodeOfReg: (r: number) => ir.nodes[r]!, inputs: [x.id], constants: [], results: [node.id], keeps: new Map() };
    const ort = (await import('onnxruntime-node')).default;
    expect(() => new OnnxBackend({}, ort).compileProgram(spec)).toThrow("no ONNX lowering for op 'noSuchOp' (node 'mystery') on backend onnx");
  });
});
