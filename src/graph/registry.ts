import { SymflowError } from './errors.js';
import { uniqueName } from './names.js';
import { type Attrs, type DType, type Shape, Tensor } from './tensor.js';

/** Shape and dtype of an op's output, worked out at build time. */
export interface Inferred {
  shape: Shape;
  dtype: DType;
}

/**
 * One primitive: its shape rule and its gradient rule side by side.
 *
 * `grad(dy, y, inputs, attrs)` returns one entry per input: a thunk that builds the input's gradient from public
 * ops (called only when that input lies on a path to the targets), or `undefined` where the input gets no gradient.
 * Rules never touch kernels, so gradients of gradients work.
 */
/** One entry per input: a builder of that input's gradient, or `undefined`. */
export type GradThunks = ((() => Tensor) | undefined)[];

export interface OpDef<A extends Attrs = Attrs> {
  readonly name: string;
  /** Validates inputs and attributes and returns the output's static shape and dtype. Throws `SymflowError`. */
  infer(inputs: readonly Tensor[], attrs: A): Inferred;
  grad?(dy: Tensor, y: Tensor, inputs: readonly Tensor[], attrs: A): GradThunks;
}

const registry = new Map<string, OpDef>();

/** Defines a primitive and registers it by name (the name is what graph JSON stores). */
export function defineOp<A extends Attrs>(def: OpDef<A>): OpDef<A> {
  if (registry.has(def.name)) throw new SymflowError('defineOp', `op '${def.name}' is already defined`);
  registry.set(def.name, def as unknown as OpDef);
  return def;
}

export function getOp(name: string): OpDef | undefined {
  return registry.get(name);
}

/** Builds a node of a registered op: infers shape and dtype (errors at build time), names it, freezes it. */
export function makeNode<A extends Attrs>(
  def: OpDef<A>,
  inputs: readonly Tensor[],
  attrs: A,
  name?: string,
  scope?: number,
): Tensor {
  const { shape, dtype } = def.infer(inputs, attrs);
  return Object.freeze(new Tensor({ op: def.name, inputs, attrs, shape, dtype, name: uniqueName(name ?? def.name), scope }));
}
