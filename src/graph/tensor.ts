/**
 * Symbolic tensors: immutable nodes of a static dataflow graph.
 *
 * A `Tensor` is a value in the graph, not data. It records the op that makes it, its inputs, the op's
 * attributes, and the static shape and dtype inferred when it was built. Nothing in it ever changes after
 * construction (every instance is frozen), so graphs can be shared, cached and rewritten safely.
 */

/** Element types a tensor may hold. */
export type DType = 'float32' | 'int32' | 'bool';

/** A dimension: a known size, or `null` when unknown until run time (typically the batch). */
export type Dim = number | null;

/** A static shape. A scalar has shape `[]`. */
export type Shape = readonly Dim[];

/** JSON-compatible attribute values an op may carry. */
export type AttrValue =
  | number
  | string
  | boolean
  | null
  | readonly AttrValue[]
  | Float32Array
  | Int32Array
  | Uint8Array
  | { readonly [key: string]: AttrValue };

export type Attrs = Readonly<Record<string, AttrValue>>;

let nextId = 1;
const usedNames = new Map<string, number>();

/** A unique, readable name: `base`, then `base_1`, `base_2`, … */
export function uniqueName(base: string): string {
  const n = usedNames.get(base);
  if (n === undefined && !usedNames.has(base)) {
    usedNames.set(base, 0);
    return base;
  }
  let k = (n ?? 0) + 1;
  while (usedNames.has(`${base}_${k}`)) k++;
  usedNames.set(base, k);
  usedNames.set(`${base}_${k}`, 0);
  return `${base}_${k}`;
}

/**
 * Cond branch scopes. Nodes built while a branch function of `cond` runs are tagged with that branch's scope, so
 * the gradient of a cond can find what a branch captures from outside and differentiate it inside a cond of its
 * own (keeping the backward pass as lazy as the forward one).
 */
const scopeParents = new Map<number, number>([[0, -1]]);
let currentScope = 0;
let nextScope = 1;

/** Runs `fn` inside a new child scope of the current one and returns its id with the result. */
export function withNewScope<T>(fn: () => T): { scope: number; result: T } {
  const scope = nextScope++;
  scopeParents.set(scope, currentScope);
  const saved = currentScope;
  currentScope = scope;
  try {
    return { scope, result: fn() };
  } finally {
    currentScope = saved;
  }
}

/** True when scope `inner` is `outer` or nested inside it. */
export function scopeWithin(inner: number, outer: number): boolean {
  for (let s = inner; s !== -1; s = scopeParents.get(s) ?? -1) if (s === outer) return true;
  return false;
}

/** The enclosing scope of `scope` (-1 for the top level). */
export function scopeParent(scope: number): number {
  return scopeParents.get(scope) ?? -1;
}

/** Creates a scope whose parent is `parent` (used when graphs are read back from JSON). */
export function newScope(parent: number): number {
  const scope = nextScope++;
  scopeParents.set(scope, parent);
  return scope;
}

export function getCurrentScope(): number {
  return currentScope;
}

export interface TensorInit {
  op: string;
  inputs: readonly Tensor[];
  attrs: Attrs;
  shape: Shape;
  dtype: DType;
  name: string;
  scope?: number;
}

/**
 * A symbolic tensor. Build them with the op functions (`add`, `matMul`, …) and sources (`placeholder`,
 * `variable`, `constant`); evaluate them with a `Session`.
 *
 * ```ts
 * const x = placeholder([null, 3]);
 * const y = sum(mul(x, 2), 1); // y.shape is [null]
 * ```
 */
export class Tensor {
  /** Process-unique id, also the creation order (inputs always have smaller ids). */
  readonly id: number;
  /** Unique, readable name such as `dense/kernel` or `add_3`. */
  readonly name: string;
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly attrs: Attrs;
  readonly shape: Shape;
  readonly dtype: DType;
  /** The cond branch scope this node was built in (0 at top level). */
  readonly scope: number;

  constructor(init: TensorInit) {
    this.id = nextId++;
    this.name = init.name;
    this.op = init.op;
    this.inputs = Object.freeze([...init.inputs]);
    this.attrs = Object.freeze({ ...init.attrs });
    this.shape = Object.freeze([...init.shape]);
    this.dtype = init.dtype;
    this.scope = init.scope ?? currentScope;
  }

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `Tensor '${this.name}' (${this.op}) ${shapeString(this.shape)} ${this.dtype}`;
  }
}

/** How a variable gets its first value in a session. */
export type InitSpec =
  | { kind: 'zeros' | 'ones'; shape: readonly number[]; dtype?: DType }
  | { kind: 'fill'; shape: readonly number[]; value: number; dtype?: DType }
  | { kind: 'randomNormal'; shape: readonly number[]; mean: number; stddev: number; seed: number }
  | { kind: 'randomUniform'; shape: readonly number[]; min: number; max: number; seed: number }
  | { kind: 'glorotUniform'; shape: readonly number[]; seed: number }
  | { kind: 'value'; shape: readonly number[]; data: Float32Array | Int32Array | Uint8Array };

/** A variable: a source whose value lives in a session and changes only through updates. */
export class Variable extends Tensor {
  readonly trainable: boolean;
  readonly init: InitSpec;

  constructor(init: TensorInit & { trainable: boolean; initSpec: InitSpec }) {
    super(init);
    this.trainable = init.trainable;
    this.init = Object.freeze(init.initSpec);
  }
}

export function isVariable(t: unknown): t is Variable {
  return t instanceof Variable;
}

export function isTensor(t: unknown): t is Tensor {
  return t instanceof Tensor;
}

export function shapeString(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/** Number of elements of a fully known shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function isFullyKnown(shape: Shape): shape is readonly number[] {
  return shape.every((d) => d !== null);
}
