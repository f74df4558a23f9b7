import { isVariable, type Tensor, type Variable } from './tensor.js';

/** Every node the given tensors depend on (themselves included), oldest first. */
export function ancestors(tensors: readonly Tensor[]): Tensor[] {
  const seen = new Set<Tensor>();
  const stack = [...tensors];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push(...t.inputs);
  }
  return [...seen].sort((a, b) => a.id - b.id);
}

/**
 * The variables a computation reads, in creation order (trainable ones only by default).
 * ```ts
 * const params = variablesOf(loss); // what an optimizer should update
 * ```
 * @param tensors the computation's outputs @returns its variables
 */
export function variablesOf(tensors: Tensor | readonly Tensor[], opts: { trainable?: boolean } = {}): Variable[] {
  const list = Array.isArray(tensors) ? tensors : [tensors as Tensor];
  const onlyTrainable = opts.trainable ?? true;
  return ancestors(list).filter((t): t is Variable => isVariable(t) && (!onlyTrainable || t.trainable));
}
