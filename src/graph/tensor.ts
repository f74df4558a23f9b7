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
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly attrs: Attrs;
  readonly shape: Shape;
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
  | { kind: 'orthogonal'; shape: readonly number[]; gain: number; seed: number }
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
