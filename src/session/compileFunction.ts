import type { GraphProgram, KernelBackend } from '../backend/index.js';
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
import { isTensor, shapeString, type Tensor, type Variable } from '../graph/tensor.js';
import { type Block, planProgram, type Step } from './plan.js';
import type { FunctionSpec } from './session.js';
import { lowerGuarded } from './updates.js';

export type Source =
  | { readonly kind: 'feed'; readonly slot: number; readonly index: number }
  | { readonly kind: 'variable'; readonly slot: number; readonly tensor: Variable }
  | { readonly kind: 'constant'; readonly slot: number; readonly node: NodeIR };

/** Everything a call needs, decided once at compile time. */
export interface CompiledFunction {
  readonly who: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly outputSlots: readonly number[];
  readonly updates: readonly { readonly variable: Variable; readonly slot: number }[];
  readonly sources: readonly Source[];
  /** Slots whose tensors a call creates (kernel and cond outputs) and so must dispose or hand over. */
  readonly ownedSlots: readonly number[];
  readonly owned: ReadonlySet<number>;
  readonly nSlots: number;
  readonly top: Block;
  readonly kernelCount: number;
  /** Whole-function backends: the compiled program, fed `programInputs` and returning outputs then updates. */
  readonly program?: GraphProgram;
  readonly programInputs: readonly Source[];
  /** The slots the program returns, in order. */
  readonly programResults: readonly number[];
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
export function compileFunction(spec: FunctionSpec, backend: KernelBackend, who: string, rewrite = true): CompiledFunction {
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
  const { ir: raw, tensors } = toIR(targets, inputs);
  const ir = rewrite
    ? optimize(raw, { fuseMatMul: backend.fusedMatMul === true, explicitTranspose: backend.explicitTranspose === true })
    // The transposed-matMul lowering is part of the backend's contract, so it applies with rewrites off too.
    : backend.explicitTranspose === true ? prune(explicitTranspose(prune(raw))) : prune(raw);
  checkSizes(who, ir);
  // Rewrites may redirect a target to an equivalent node: read the targets back from the rewritten graph.
  const targetIds = ir.outputs;

  const fedIndex = new Map(inputs.map((t, i) => [t.id, i]));
  const slotIds = Object.keys(ir.nodes).map(Number).sort((p, q) => p - q);
  const slotMap = new Map(slotIds.map((id, i) => [id, i]));
  const slotOf = (id: number) => slotMap.get(id)!;
  const sources: Source[] = [];
  for (const id of slotIds) {
    const node = ir.nodes[id]!;
    const index = fedIndex.get(id);
    if (index !== undefined) sources.push({ kind: 'feed', slot: slotOf(id), index });
    else if (node.op === 'variable') sources.push({ kind: 'variable', slot: slotOf(id), tensor: tensors.get(id) as Variable });
    else if (node.op === 'constant') sources.push({ kind: 'constant', slot: slotOf(id), node });
    else if (node.op === 'placeholder') {
      throw new SymflowError(who, `missing feed for placeholder '${node.name}' ${shapeString(node.shape)} ${node.dtype}`);
    }
  }
  const top = planProgram(ir, targetIds, slotOf, backend);
  const sourceSlots = new Set(sources.map((s) => s.slot));
  const programInputs = sources.filter((s) => s.kind !== 'constant');
  const outputSlots = targetIds.slice(0, outputs.length).map(slotOf);
  const updateSlots = targetIds.slice(outputs.length).map(slotOf);
  const nodeBySlot = slotIds.map((id) => ir.nodes[id]!);
  // Whole-function backends return only what they compute: a value that is a source (a variable copied to another,
  // a fed value, a constant) is taken on the host, without a trip through the program.
  const computed = [...new Set([...outputSlots, ...updateSlots].filter((slot) => !sourceSlots.has(slot)))];
  const used = new Set(Object.values(ir.nodes).flatMap((n) => n.inputs.map(slotOf)));
  const keeps = new Map<number, number>();
  updates.forEach(([variable], i) => {
    const k = computed.indexOf(updateSlots[i]!);
    const own = sources.find((s) => s.kind === 'variable' && s.tensor === variable);
    if (k >= 0 && own !== undefined && !used.has(updateSlots[i]!) && !outputSlots.includes(updateSlots[i]!)) keeps.set(k, own.slot);
  });
  const program = backend.compileProgram?.({
    ir, top, nodeOfSlot: (slot) => nodeBySlot[slot]!,
    inputs: programInputs.map((s) => s.slot),
    constants: sources.filter((s) => s.kind === 'constant').map((s) => s.slot),
    results: computed,
    keeps,
  });
  const ownedSlots = slotIds.map(slotOf).filter((s) => !sourceSlots.has(s));
  return {
    program,
    ...(lowered.ok !== undefined ? { guard: outputs.length - 1 } : {}),
    programInputs,
    programResults: computed,
    who,
    inputs,
    outputs,
    outputSlots,
    updates: updates.map(([variable], i) => ({ variable, slot: updateSlots[i]! })),
    sources,
    ownedSlots,
    owned: new Set(ownedSlots),
    nSlots: slotIds.length,
    top,
    kernelCount: countKernels(top.steps),
  };
}

/**
 * The rewrite pipeline every session function goes through, each pass an immutable transformation: dead-code
 * pruning (feeds cut what lies upstream), no-op shape adapters removed, constants folded, common subexpressions
 * merged (after transposed matMuls are made explicit where the backend wants it), pruning again, matMul +
 * bias (+ relu) fused where the backend has a fused kernel, and the remaining `maximum(x, 0)` run as relu kernels.
 */
export function optimize(ir: GraphIR, opts: { fuseMatMul?: boolean; explicitTranspose?: boolean } = {}): GraphIR {
  const folded = constantFold(simplifyShapes(prune(ir)));
  const lean = prune(fuseSub(cse(opts.explicitTranspose ? explicitTranspose(folded) : folded)));
  return reluKernel(opts.fuseMatMul ? prune(fuseMatMul(lean)) : lean);
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
  return steps.reduce((n, s) => n + (s.kind === 'kernel' ? 1 : countKernels(s.blocks[0].steps) + countKernels(s.blocks[1].steps)), 0);
}
