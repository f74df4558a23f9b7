import { type Block, mapSteps } from '../schedule/plan.js';
import type { GraphIR } from '../graph/ir.js';
import type { KernelBackend, KernelStep } from '../backend/index.js';

/**
 * Chooses a kernel for every node step of a plan, once, when a session function is compiled; the plan keeps its
 * shape (cond steps, results, disposal points). A node the backend cannot run is refused here, naming the op.
 *
 * ```ts
 * const top = bindKernels(planProgram(ir, targets, regOf), ir, backend);
 * ```
 * @param plan the plain plan
 * @param ir the graph it was planned from (a kernel sees its inputs' shapes and dtypes)
 * @param backend the kernel backend
 * @returns the same plan, each node step carrying its kernel
 */
export function bindKernels(plan: Block, ir: GraphIR, backend: KernelBackend): Block<KernelStep> {
  return mapSteps(plan, (step) => ({ ...step, kernel: backend.kernelFor({ ...step.node, inputs: step.node.inputs.map((i) => ir.nodes[i]!) }) }));
}
