import { isVariable, type Tensor, type Variable } from './tensor.js';
import { toposort } from './walk.js';

/** Every node the given tensors depend on (themselves included), oldest first. */
export function ancestors(tensors: readonly Tensor[]): Tensor[] {
  // Ids are creation order, itself a topological order, and the one callers see (serialised node order).
  return toposort(tensors, (t) => t.inputs).sort((a, b) => a.id - b.id);
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
