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
// Names are made in names.ts (`uniqueName`, `graph`, `nameScope`).

/**
 * The id the next node will get. Ids are creation order, so the nodes a synchronous function builds are exactly
 * those with ids from `nextNodeId()` before it to `nextNodeId()` after it (how `cond` finds a branch's own nodes).
 */
export function nextNodeId(): number {
  return nextId;
}

export interface TensorInit {
  op: string;
  inputs: readonly Tensor[];
  attrs: Attrs;
  shape: Shape;
  dtype: DType;
  name: string;
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
  /** Name of the op that makes this tensor (`'add'`, `'matMul'`, `'placeholder'`, `'variable'`, …). */
  readonly op: string;
  /** The op's input tensors, in the op's argument order (frozen; empty for sources). */
  readonly inputs: readonly Tensor[];
  /** The op's attributes (frozen), e.g. `{ transposeA: false }` for `matMul`. */
  readonly attrs: Attrs;
  /** Static shape inferred at construction; `null` dimensions are known only at run time. */
  readonly shape: Shape;
  /** Element type, inferred at construction. */
  readonly dtype: DType;

  constructor(init: TensorInit) {
    this.id = nextId++;
    this.name = init.name;
    this.op = init.op;
    this.inputs = Object.freeze([...init.inputs]);
    this.attrs = Object.freeze({ ...init.attrs });
    this.shape = Object.freeze([...init.shape]);
    this.dtype = init.dtype;
  }

  /** Number of dimensions, `shape.length` (0 for a scalar); known even when sizes are not. */
  get rank(): number {
    return this.shape.length;
  }

  /** A one-line description for messages: `Tensor 'dense/kernel' (variable) [784,10] float32` (`?` for unknown dimensions). */
  toString(): string {
    return `Tensor '${this.name}' (${this.op}) ${shapeString(this.shape)} ${this.dtype}`;
  }
}

/** How a variable gets its first value in a session. */
export type InitSpec =
  | {
    /** All zeros or all ones. */
    kind: 'zeros' | 'ones';
    /** The variable's shape. */
    shape: readonly number[];
    /** Element type. Default 'float32'. */
    dtype?: DType;
  }
  | {
    /** Every element `value`. */
    kind: 'fill';
    /** The variable's shape. */
    shape: readonly number[];
    /** The value of every element. */
    value: number;
    /** Element type. Default 'float32'. */
    dtype?: DType;
  }
  | {
    /** Normal samples (Box–Muller on a seeded mulberry32 generator), float32. */
    kind: 'randomNormal';
    /** The variable's shape. */
    shape: readonly number[];
    /** Mean of the distribution (`initializers.randomNormal` defaults it to 0). */
    mean: number;
    /** Standard deviation (`initializers.randomNormal` defaults it to 0.05). */
    stddev: number;
    /** Generator seed; the same seed gives the same values on every backend. */
    seed: number;
  }
  | {
    /** Uniform samples in [min, max), float32. */
    kind: 'randomUniform';
    /** The variable's shape. */
    shape: readonly number[];
    /** Lower bound, inclusive (`initializers.randomUniform` defaults it to −0.05). */
    min: number;
    /** Upper bound, exclusive (`initializers.randomUniform` defaults it to 0.05). */
    max: number;
    /** Generator seed; the same seed gives the same values on every backend. */
    seed: number;
  }
  | {
    /** Glorot (Xavier) uniform: U(±√(6 / (fanIn + fanOut))), fans as Keras computes them, float32. */
    kind: 'glorotUniform';
    /** The variable's shape. */
    shape: readonly number[];
    /** Generator seed; the same seed gives the same values on every backend. */
    seed: number;
  }
  | {
    /** Orthonormal columns (or rows, when wider than tall) times `gain`, as Keras' `Orthogonal`, float32. */
    kind: 'orthogonal';
    /** The variable's shape (rank ≥ 2; read as prod(shape[:-1]) × shape[-1]). */
    shape: readonly number[];
    /** Scale of the orthogonal matrix (`initializers.orthogonal` defaults it to 1). */
    gain: number;
    /** Generator seed; the same seed gives the same values on every backend. */
    seed: number;
  }
  | {
    /** Exactly these values. */
    kind: 'value';
    /** The variable's shape; `data.length` is its size. */
    shape: readonly number[];
    /** Row-major values; the dtype follows the array (Int32Array → int32, Uint8Array → bool, else float32). */
    data: Float32Array | Int32Array | Uint8Array;
  };

/** A variable: a source whose value lives in a session and changes only through updates. */
export class Variable extends Tensor {
  /** Whether it is a parameter: `variablesOf` lists only trainable variables by default (`variable`'s default is true). */
  readonly trainable: boolean;
  /** How a session makes its first value (frozen); see `initializers`. */
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
