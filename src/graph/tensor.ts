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
// Names are made in names.ts (`uniqueName`, `graph`, `nameScope`); the scopes below are cond branch scopes.

/**
 * Cond branch scopes. Nodes built while a branch function of `cond` runs are tagged with that branch's scope, so
 * the gradient of a cond can find what a branch captures from outside and differentiate it inside a cond of its
 * own (keeping the backward pass as lazy as the forward one).
 *
 * A scope is an object held by the nodes built in it (and by its nested scopes and the conds naming it, see
 * `scopeHandle`): it goes when its graph goes. Graphs store scope ids, so live scopes are also found by id, through
 * weak references whose entries are dropped when the scope is collected.
 */
interface Scope {
  readonly id: number;
  readonly parent: Scope | undefined;
}
const TOP: Scope = Object.freeze({ id: 0, parent: undefined });
const scopesById = new Map<number, WeakRef<Scope>>();
const collected = new FinalizationRegistry<number>((id) => scopesById.delete(id));
/** Each node's scope: a node keeps its scope (and the scope's parents) alive. */
const scopeOfNode = new WeakMap<object, Scope>();
let currentScope: Scope = TOP;
let nextScope = 1;

function makeScope(parent: Scope, id = nextScope++): Scope {
  const scope = Object.freeze({ id, parent });
  // A new WeakRef keeps its target alive until the current job ends, so a scope made here survives until a node
  // (or a cond, or a nested scope) holds it.
  scopesById.set(id, new WeakRef(scope));
  collected.register(scope, id);
  return scope;
}

function findScope(id: number): Scope | undefined {
  return id === 0 ? TOP : scopesById.get(id)?.deref();
}

/** The live scope with this id (an id no live scope has is a scope without nodes: it starts again under the top level). */
function scopeById(id: number): Scope {
  return findScope(id) ?? makeScope(TOP, id);
}

/** Runs `fn` inside a new child scope of the current one and returns its id with the result. */
export function withNewScope<T>(fn: () => T): { scope: number; result: T } {
  const scope = makeScope(currentScope);
  const saved = currentScope;
  currentScope = scope;
  try {
    return { scope: scope.id, result: fn() };
  } finally {
    currentScope = saved;
  }
}

/** True when scope `inner` is `outer` or nested inside it. */
export function scopeWithin(inner: number, outer: number): boolean {
  if (inner === outer) return true;
  for (let s = findScope(inner)?.parent; s !== undefined; s = s.parent) if (s.id === outer) return true;
  return false;
}

/** The enclosing scope of `scope` (-1 for the top level). */
export function scopeParent(scope: number): number {
  return findScope(scope)?.parent?.id ?? -1;
}

/** Creates a scope whose parent is `parent` (used when graphs are read back from JSON). */
export function newScope(parent: number): number {
  return makeScope(scopeById(parent)).id;
}

/** What keeps scope `id` alive: a cond node holds its branch scopes' handles, as nodes hold their own scope. */
export function scopeHandle(id: number): object {
  return scopeById(id);
}

export function getCurrentScope(): number {
  return currentScope.id;
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
  /** Readable name such as `dense/kernel` or `add_3`, unique in its name space (see `graph` in names.ts). */
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
    const scope = init.scope === undefined ? currentScope : scopeById(init.scope);
    this.scope = scope.id;
    scopeOfNode.set(this, scope);
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
