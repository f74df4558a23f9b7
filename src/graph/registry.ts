import { SymflowError } from './errors.js';
import { uniqueName } from './names.js';
import type { TypedArray } from './hostValue.js';
import { type AttrValue, type Attrs, type DType, type Shape, Tensor } from './tensor.js';

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

/**
 * The kind of one attribute: what JSON round-trips and `fromJSON` checks. `int` a safe integer, `number` any
 * number, `ints` a list of ints, `pairs` a list of [int, int], `shape` a list of sizes or null, `data` a typed array.
 */
export type AttrKind = 'int' | 'number' | 'bool' | 'dtype' | 'ints' | 'pairs' | 'shape' | 'data';

/** The kinds an attribute of TypeScript type T may be declared as. */
type KindFor<T> = T extends boolean ? 'bool'
  : T extends number ? 'int' | 'number'
  : T extends DType ? 'dtype'
  : T extends TypedArray ? 'data'
  : T extends readonly (readonly [number, number])[] ? 'pairs'
  : T extends readonly number[] ? 'ints'
  : T extends Shape ? 'shape'
  : never;

/** An op's attribute schema: one kind per attribute of its typed attributes `A` (TypeScript checks both agree). */
export type AttrSchema<A extends Attrs = Attrs> = { readonly [K in keyof A]-?: KindFor<A[K]> };

const DTYPES = new Set<unknown>(['float32', 'int32', 'bool']);
const isInt = (x: unknown) => Number.isSafeInteger(x);
const KIND_CHECKS: Readonly<Record<AttrKind, (x: unknown) => boolean>> = {
  int: isInt,
  number: (x) => typeof x === 'number',
  bool: (x) => typeof x === 'boolean',
  dtype: (x) => DTYPES.has(x),
  ints: (x) => Array.isArray(x) && x.every(isInt),
  pairs: (x) => Array.isArray(x) && x.every((p) => Array.isArray(p) && p.length === 2 && p.every(isInt)),
  shape: (x) => Array.isArray(x) && x.every((d) => d === null || (isInt(d) && (d as number) >= 0)),
  data: (x) => x instanceof Float32Array || x instanceof Int32Array || x instanceof Uint8Array,
};

/**
 * Checks attributes against an op's schema: exactly its keys, each of its kind. Deeper rules (an axis in range, a
 * permutation) are the shape rule's. `fromJSON` calls it on every node it reads.
 */
export function checkAttrs(def: OpDef, attrs: Readonly<Record<string, unknown>>, where: string): void {
  const expected = Object.keys(def.attrs).sort();
  const keys = Object.keys(attrs).sort();
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    throw new SymflowError('fromJSON', `${where}: op '${def.name}' takes attributes [${expected.join(', ')}], got [${keys.map((k) => JSON.stringify(k)).join(', ')}]`);
  }
  for (const k of expected) {
    const kind = (def.attrs as Record<string, AttrKind>)[k]!;
    if (!KIND_CHECKS[kind](attrs[k])) {
      throw new SymflowError('fromJSON', `${where}: attribute '${k}' of op '${def.name}' must be ${kind === 'int' || kind === 'ints' ? `${kind === 'int' ? 'an' : ''} ${kind}`.trim() : `of kind ${kind}`}, got ${JSON.stringify(attrs[k] as AttrValue) ?? String(attrs[k])}`);
    }
  }
}

export interface OpDef<A extends Attrs = Attrs> {
  readonly name: string;
  /** The attribute schema: validation and the JSON round-trip derive from it (no attributes: `{}`). */
  readonly attrs: AttrSchema<A>;
  /** Validates inputs and attributes and returns the output's static shape and dtype. Throws `SymflowError`. */
  infer(inputs: readonly Tensor[], attrs: A): Inferred;
  grad?(dy: Tensor, y: Tensor, inputs: readonly Tensor[], attrs: A): GradThunks;
}

const registry = new Map<string, OpDef>();

/**
 * Defines a primitive and registers it by name (the name is what graph JSON stores). An op with attributes
 * declares their schema (`attrs: {axes: 'ints', keepDims: 'bool'}`); one without may leave it out.
 */
export function defineOp<A extends Attrs>(def: Omit<OpDef<A>, 'attrs'> & { attrs?: AttrSchema<A> }): OpDef<A> {
  if (registry.has(def.name)) throw new SymflowError('defineOp', `op '${def.name}' is already defined`);
  const full = Object.freeze({ ...def, attrs: Object.freeze({ ...(def.attrs ?? {}) }) as AttrSchema<A> });
  registry.set(def.name, full as unknown as OpDef);
  return full;
}

/** Every op defined so far, by name. */
export function allOps(): readonly OpDef[] {
  return [...registry.values()];
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
