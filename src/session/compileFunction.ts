import type { Backend, GraphProgram, KernelStep, PassRequests, ProgramBackend, StepsSpec } from '../backend/index.js';
import { SymflowError } from '../graph/errors.js';
import { type GraphIR, type NodeIR, toIR } from '../graph/ir.js';
import { checkElements, knownElements, MAX_ELEMENTS } from '../graph/limits.js';
import { constantFold } from '../graph/passes/constantFold.js';
import { cse } from '../graph/passes/cse.js';
import { explicitTranspose } from '../graph/passes/explicitTranspose.js';
import { fuseSub } from '../graph/passes/fuseSub.js';
import { fuseMatMul } from '../graph/passes/fuseMatMul.js';
import { reluKernel } from '../graph/passes/reluKernel.js';
import { simplifyShapes } from '../graph/passes/simplify.js';
import { prune } from '../graph/passes/prune.js';
import { foldConds } from '../graph/passes/foldConds.js';
import { symbolicShapes } from '../graph/passes/symbolicShapes.js';
import { isTensor, shapeString, type Tensor, type Variable } from '../graph/tensor.js';
import { type Block, planProgram, type Step } from '../schedule/plan.js';
import { bindKernels } from './bindKernels.js';
import type { FunctionSpec } from './session.js';
import { lowerGuarded } from './updates.js';

/** A register whose value a call binds before anything runs: a feed, a variable's current value, or a constant. */
export type Source =
  | { readonly kind: 'feed'; readonly reg: number; readonly index: number }
  | { readonly kind: 'variable'; readonly reg: number; readonly tensor: Variable }
  | { readonly kind: 'constant'; readonly reg: number; readonly node: NodeIR }
  | {
    readonly kind: 'random'; readonly reg: number; readonly node: NodeIR; readonly dims: readonly RandomDim[];
    /** What its values depend on besides the step and the shape (distribution, parameters, seed, salt), made once. */
    readonly key: string;
  };

/** A dimension of a random source: known, or the size of a fed value's axis (read when the call is made). */
export type RandomDim = number | { readonly input: number; readonly axis: number };

/** How a call runs, by the backend's kind: the executor walks a plan with bound kernels, or one program runs it all. */
export type Execution =
  | { readonly kind: 'kernels'; readonly top: Block<KernelStep> }
  | {
    readonly kind: 'program';
    readonly program: GraphProgram;
    /** The sources the program is fed, in order (feeds and variables; constants are embedded). */
    readonly inputs: readonly Source[];
    /** The registers the program returns, in order. */
    readonly results: readonly number[];
    /** What k calls in one run stack, carry and return (see `GraphProgram.steps`). */
    readonly steps: StepsSpec;
  };

/** Everything a call needs, decided once at compile time. */
export interface CompiledFunction {
  readonly who: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly outputRegs: readonly number[];
  readonly updates: readonly { readonly variable: Variable; readonly reg: number }[];
  readonly sources: readonly Source[];
  /** Registers whose tensors a call creates (kernel and cond outputs) and so must dispose or hand over. */
  readonly ownedRegs: readonly number[];
  readonly owned: ReadonlySet<number>;
  /** Registers a call needs: one per node of the pruned graph. */
  readonly nRegs: number;
  readonly exec: Execution;
  readonly kernelCount: number;
  /** With `applyIfFinite`: the index of the last output, the bool that says whether to commit. */
  readonly guard?: number;
}

function checkTensors(who: string, what: string, list: unknown): readonly Tensor[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new SymflowError(who, `${what} must be an array of Tensors`);
  list.forEach((t, i) => { if (!isTensor(t)) throw new SymflowError(who, `${what}[${i}] is not a Tensor (got ${typeof t})`); });
  return list as Tensor[];
}

/** Lowers updates, prunes, checks feeds and plans execution for one session function. */
export function compileFunction(spec: FunctionSpec, backend: Backend, who: string, rewrite = true): CompiledFunction {
  const inputs = checkTensors(who, 'inputs', spec.inputs);
  let outputs = checkTensors(who, 'outputs', spec.outputs);
  if (spec.updates !== undefined && !Array.isArray(spec.updates)) throw new SymflowError(who, 'updates must be an array');
  if (new Set(inputs).size !== inputs.length) {
    const dup = inputs.find((t, i) => inputs.indexOf(t) !== i)!;
    throw new SymflowError(who, `input '${dup.name}' is fed twice`);
  }
  const guardSpec = spec.applyIfFinite;
  if (guardSpec !== undefined && typeof guardSpec !== 'boolean') checkTensors(who, 'applyIfFinite', guardSpec);
  const lowered = lowerGuarded(spec.updates ?? [], guardSpec === undefined || guardSpec === false ? undefined : guardSpec === true ? [] : guardSpec);
  const updates = [...lowered.values];
  // The guard's verdict is one more output: the executor reads it before it commits anything.
  if (lowered.ok !== undefined) outputs = [...outputs, lowered.ok];
  const targets = [...outputs, ...updates.map(([, t]) => t)];
  const { ir: traced, tensors } = toIR(targets, inputs);
  const raw = bindPhase(traced, spec.training === true, who);
  const ir = rewrite
    ? optimize(raw, backend.passes)
    // The transposed-matMul lowering is part of the backend's contract, so it applies with rewrites off too.
    : backend.passes.explicitTranspose ? prune(explicitTranspose(prune(raw))) : prune(raw);
  checkSizes(who, ir);
  // Rewrites may redirect a target to an equivalent node: read the targets back from the rewritten graph.
  const targetIds = ir.outputs;

  const fedIndex = new Map(inputs.map((t, i) => [t.id, i]));
  const regIds = Object.keys(ir.nodes).map(Number).sort((p, q) => p - q);
  const regMap = new Map(regIds.map((id, i) => [id, i]));
  const regOf = (id: number) => regMap.get(id)!;
  const sources: Source[] = [];
  for (const id of regIds) {
    const node = ir.nodes[id]!;
    const index = fedIndex.get(id);
    if (index !== undefined) sources.push({ kind: 'feed', reg: regOf(id), index });
    else if (node.op === 'variable') sources.push({ kind: 'variable', reg: regOf(id), tensor: tensors.get(id) as Variable });
    else if (node.op === 'constant') sources.push({ kind: 'constant', reg: regOf(id), node });
    else if (node.op === 'random') {
      const a = node.attrs as { dist: string; seed: number; salt: number; a: number; b: number };
      sources.push({ kind: 'random', reg: regOf(id), node, dims: node.attrs['dims'] as unknown as RandomDim[], key: `${a.dist}|${a.seed}|${a.salt}|${a.a}|${a.b}` });
    }
    else if (node.op === 'placeholder') {
      throw new SymflowError(who, `missing feed for placeholder '${node.name}' ${shapeString(node.shape)} ${node.dtype}`);
    }
  }
  const top = planProgram(ir, targetIds, regOf);
  const sourceRegs = new Set(sources.map((s) => s.reg));
  const outputRegs = targetIds.slice(0, outputs.length).map(regOf);
  const updateRegs = targetIds.slice(outputs.length).map(regOf);
  const exec: Execution = backend.kind === 'kernels'
    ? { kind: 'kernels', top: bindKernels(top, ir, backend) }
    : compileProgram(backend, { ir, top, regIds, sources, outputRegs, updateRegs, variables: updates.map(([v]) => v) });
  const ownedRegs = regIds.map(regOf).filter((r) => !sourceRegs.has(r));
  return {
    exec,
    ...(lowered.ok !== undefined ? { guard: outputs.length - 1 } : {}),
    who,
    inputs,
    outputs,
    outputRegs,
    updates: updates.map(([variable], i) => ({ variable, reg: updateRegs[i]! })),
    sources,
    ownedRegs,
    owned: new Set(ownedRegs),
    nRegs: regIds.length,
    kernelCount: countKernels(top.steps),
  };
}

/** Hands a planned function to a whole-program backend, with what it returns and which variables it may keep. */
function compileProgram(
  backend: ProgramBackend,
  p: {
    ir: GraphIR; top: Block; regIds: readonly number[]; sources: readonly Source[];
    outputRegs: readonly number[]; updateRegs: readonly number[]; variables: readonly Variable[];
  },
): Execution {
  const { ir, outputRegs, updateRegs, sources } = p;
  const regOf = new Map(p.regIds.map((id, i) => [id, i]));
  const sourceRegs = new Set(sources.map((s) => s.reg));
  const inputs = sources.filter((s) => s.kind !== 'constant');
  const nodeByReg = p.regIds.map((id) => ir.nodes[id]!);
  // Whole-program backends return only what they compute: a value that is a source (a variable copied to another,
  // a fed value, a constant) is taken on the host, without a trip through the program.
  const computed = [...new Set([...outputRegs, ...updateRegs].filter((r) => !sourceRegs.has(r)))];
  const used = new Set(Object.values(ir.nodes).flatMap((n) => n.inputs.map((i) => regOf.get(i)!)));
  const keeps = new Map<number, number>();
  p.variables.forEach((variable, i) => {
    const k = computed.indexOf(updateRegs[i]!);
    const own = sources.find((s) => s.kind === 'variable' && s.tensor === variable);
    if (k >= 0 && own !== undefined && !used.has(updateRegs[i]!) && !outputRegs.includes(updateRegs[i]!)) keeps.set(k, own.reg);
  });
  const program = backend.compileProgram({
    ir, top: p.top, nodeOfReg: (reg) => nodeByReg[reg]!,
    inputs: inputs.map((s) => s.reg),
    constants: sources.filter((s) => s.kind === 'constant').map((s) => s.reg),
    results: computed,
    keeps,
  });
  // For k calls in one run: feeds and draws are stacked, the written variables carried, the rest read as they are.
  const written = new Set(p.variables);
  const steps: StepsSpec = {
    stacked: sources.filter((s) => s.kind === 'feed' || s.kind === 'random').map((s) => s.reg),
    fixed: sources.filter((s) => s.kind === 'variable' && !written.has(s.tensor)).map((s) => s.reg),
    carried: p.variables.map((v, i) => {
      const own = sources.find((s) => s.kind === 'variable' && s.tensor === v);
      return { ...(own === undefined ? {} : { reg: own.reg }), next: updateRegs[i]!, dtype: v.dtype, shape: v.shape as number[] };
    }),
    scanned: outputRegs,
  };
  return { kind: 'program', program, inputs, results: computed, steps };
}

/**
 * The rewrite pipeline every session function goes through, each pass an immutable transformation: dead-code
 * pruning (feeds cut what lies upstream), no-op shape adapters removed, constants folded, common subexpressions
 * merged (after transposed matMuls are made explicit where the backend wants it), pruning again, matMul +
 * bias (+ relu) fused where the backend has a fused kernel, and the remaining `maximum(x, 0)` run as relu kernels.
 */
export function optimize(ir: GraphIR, opts: Partial<PassRequests> = {}): GraphIR {
  const folded = constantFold(simplifyShapes(prune(ir)));
  const lean = prune(fuseSub(cse(opts.explicitTranspose ? explicitTranspose(folded) : folded)));
  return reluKernel(opts.fuseMatMul ? prune(fuseMatMul(lean)) : lean);
}

/**
 * What is decided when a function is compiled, before any rewrite: the learning phase becomes a constant (so the
 * conds on it are folded to the branch taken), and each random source learns where its run-time dimensions come
 * from — a dimension its symbolic shape shares with a fed value's axis is read from that value when the call is
 * made; any other unknown dimension is refused here, naming the node. A random source then has no inputs.
 */
function bindPhase(ir: GraphIR, training: boolean, who: string): GraphIR {
  const phases = Object.values(ir.nodes).filter((n) => n.op === 'learningPhase');
  if (phases.length > 0) {
    // The phase first: its conds folded, what the phase leaves out is gone before the random sources are placed.
    const bound: Record<number, NodeIR> = { ...ir.nodes };
    for (const n of phases) bound[n.id] = { ...n, op: 'constant', inputs: [], attrs: { shape: [], dtype: 'bool', value: Uint8Array.of(training ? 1 : 0) } };
    ir = prune(foldConds({ ...ir, nodes: bound }));
  }
  const randoms = Object.values(ir.nodes).filter((n) => n.op === 'random' && !ir.feeds.includes(n.id));
  if (randoms.length === 0) return ir;
  const shapes = randoms.some((n) => n.shape.includes(null)) ? symbolicShapes(ir) : undefined;
  const fedDims = new Map<string | number, { input: number; axis: number }>();
  ir.feeds.forEach((id, input) => shapes?.get(id)?.forEach((d, axis) => {
    if (typeof d === 'string' && !fedDims.has(d)) fedDims.set(d, { input, axis });
  }));
  const changed: Record<number, NodeIR> = { ...ir.nodes };
  for (const n of randoms) {
    const sym = shapes?.get(n.id);
    const dims = n.shape.map((d, axis): RandomDim => {
      if (d !== null) return d;
      const from = fedDims.get(sym![axis]!);
      if (from === undefined) {
        throw new SymflowError(who, `random node '${n.name}' ${shapeString(n.shape)}: dimension ${axis} is not known before the run; it must be the size of an axis of a fed tensor (a batch dimension is)`);
      }
      return from;
    });
    changed[n.id] = { ...n, inputs: [], attrs: { ...n.attrs, dims: dims.map((d) => (typeof d === 'number' ? d : { input: d.input, axis: d.axis })) } };
  }
  return prune({ ...ir, nodes: changed });
}

/**
 * Refuses, on every backend alike, a node whose static shape holds more than MAX_ELEMENTS elements in its known
 * dimensions: one backend would fail to allocate it, another silently compute garbage (wasm summed a 10¹²-element
 * `pad` to a wrong number). Checked after pruning, so a node a feed cuts off does not count; rewrites keep the
 * names and shapes of the nodes they leave, so the error names the user's node.
 */
function checkSizes(who: string, ir: GraphIR): void {
  for (const node of Object.values(ir.nodes)) {
    if (knownElements(node.shape) > MAX_ELEMENTS) checkElements(who, `node '${node.name}' (${node.op})`, node.shape);
  }
}

function countKernels(steps: readonly Step[]): number {
  return steps.reduce((n, s) => n + (s.kind === 'node' ? 1 : countKernels(s.blocks[0].steps) + countKernels(s.blocks[1].steps)), 0);
}
