import { SymflowError } from './errors.js';
import { uniqueName } from './names.js';
import type { HostTensor, TypedArray } from './hostValue.js';
import { builtinOps } from './opList.js';
import { BUILD_SHAPES, type ShapeCtx } from './shapeRule.js';
import { type AttrValue, type Attrs, type DType, type Shape, Tensor } from './tensor.js';

export type { ShapeCtx } from './shapeRule.js';

/** Shape and dtype of an op's output, worked out at build time. */
export interface Inferred {
  /** The output's static shape (`null` for sizes unknown until run time). */
  shape: Shape;
  /** The output's element type. */
  dtype: DType;
}

/** One entry per input: a builder of that input's gradient, or `undefined`. */
export type GradThunks = ((() => Tensor) | undefined)[];

/**
 * The kind of one attribute: what JSON round-trips and `fromJSON` checks. `int` a safe integer, `number` any
 * number, `ints` a list of ints, `pairs` a list of [int, int], `shape` a list of sizes or null, `data` a typed array.
 */
export type AttrKind = 'int' | 'number' | 'bool' | 'dtype' | 'ints' | 'pairs' | 'shape' | 'data' | 'string';

/** The kinds an attribute of TypeScript type T may be declared as. */
type KindFor<T> = T extends boolean ? 'bool'
  : T extends number ? 'int' | 'number'
  : T extends DType ? 'dtype'
  : T extends string ? 'string'
  : T extends TypedArray ? 'data'
  : T extends readonly (readonly [number, number])[] ? 'pairs'
  : T extends readonly number[] ? 'ints'
  : T extends Shape ? 'shape'
  : never;

/** The TypeScript type of an attribute of each kind. */
export interface AttrTypes {
  int: number;
  number: number;
  bool: boolean;
  dtype: DType;
  ints: readonly number[];
  pairs: readonly (readonly [number, number])[];
  shape: Shape;
  data: TypedArray;
  string: string;
}

/** An op's attribute schema: one kind per attribute of its typed attributes `A` (TypeScript checks both agree). */
export type AttrSchema<A extends Attrs = Attrs> = { readonly [K in keyof A]-?: KindFor<A[K]> };

/** The typed attributes a schema describes: `{axes: 'ints'}` gives `{axes: readonly number[]}`. */
export type AttrsOf<S extends Readonly<Record<string, AttrKind>>> = { readonly [K in keyof S]: AttrTypes[S[K]] };

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
  string: (x) => typeof x === 'string',
};

/**
 * Checks attributes against an op's schema: exactly its keys, each of its kind. Deeper rules (an axis in range, a
 * permutation) are the shape rule's. `fromJSON` calls it on every node it reads; `who` is the op the error names.
 */
export function checkAttrs(def: OpDef, attrs: Readonly<Record<string, unknown>>, where: string, who = 'fromJSON'): void {
  const expected = Object.keys(def.attrs).sort();
  const keys = Object.keys(attrs).sort();
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    throw new SymflowError(who, `${where}: op '${def.name}' takes attributes [${expected.join(', ')}], got [${keys.map((k) => JSON.stringify(k)).join(', ')}]`);
  }
  for (const k of expected) {
    const kind = (def.attrs as Record<string, AttrKind>)[k]!;
    if (!KIND_CHECKS[kind](attrs[k])) {
      throw new SymflowError(who, `${where}: attribute '${k}' of op '${def.name}' must be ${kind === 'int' || kind === 'ints' ? `${kind === 'int' ? 'an' : ''} ${kind}`.trim() : `of kind ${kind}`}, got ${JSON.stringify(attrs[k] as AttrValue) ?? String(attrs[k])}`);
    }
  }
}

/**
 * A host evaluator, for constant folding: the op's value from its inputs' values on the host, by the rules of
 * docs/semantics.md (the conformance test's `fold` rows hold it to them bit for bit). `out` is the output's
 * (fully known) shape and dtype. Returns `undefined` to leave a node unfolded.
 */
export type HostEvaluator<A extends Attrs = Attrs> = (inputs: readonly HostTensor[], attrs: A, out: { readonly shape: readonly number[]; readonly dtype: DType }) => TypedArray | undefined;

/** The parts of an op record besides its name and attribute schema. */
export interface OpRules<A extends Attrs> {
  /**
   * The one shape rule: validates inputs and attributes and returns the output's shape and dtype; throws
   * `SymflowError`. It runs at build time (`makeNode`) and in `symbolicShapes`, where `ctx.symbolic` is true and an
   * input's unknown dimensions are symbols (strings, though typed as `Dim`): a rule tests dims with `ctx.known`,
   * broadcasts with `ctx.broadcast`, and reports dims that must be equal with `ctx.equal`. An unknown output dim
   * (`null`, or anything not copied from an input) gets a fresh symbol.
   */
  infer(inputs: readonly Tensor[], attrs: A, ctx: ShapeCtx): Inferred;
  /**
   * The gradient rule: one entry per input, a thunk that builds the input's gradient from public ops (called only
   * when that input lies on a path to the targets), or `undefined` where the input gets none. Rules never touch
   * kernels, so gradients of gradients work.
   */
  grad?(dy: Tensor, y: Tensor, inputs: readonly Tensor[], attrs: A): GradThunks;
  /** The host evaluator for constant folding (elementwise ops; see `HostEvaluator`). */
  evaluate?(inputs: readonly HostTensor[], attrs: A, out: { readonly shape: readonly number[]; readonly dtype: DType }): TypedArray | undefined;
  /**
   * Kernels and lowerings per backend, opaque here: only src/backend reads them (user ops, see `defineOp` in
   * src/defineOp.ts). Built-in ops have theirs in the backend tables.
   */
  kernels?: Readonly<Record<string, unknown>>;
  /** A composition from public ops: the declared fallback on a backend without a kernel for the op. */
  compose?(inputs: readonly Tensor[], attrs: A): Tensor;
}

/** One primitive: its name, attribute schema, shape rule and gradient rule side by side (JAX's primitive). */
export interface OpDef<A extends Attrs = Attrs, N extends string = string> extends OpRules<A> {
  /** The op's unique name: what `Tensor.op` holds and graph JSON stores. */
  readonly name: N;
  /** The attribute schema: validation and the JSON round-trip derive from it (no attributes: `{}`). */
  readonly attrs: AttrSchema<A>;
}

/**
 * Defines a primitive's record (the name is what graph JSON stores). An op with attributes declares their schema
 * (`attrs: {axes: 'ints', keepDims: 'bool'}`), which types the attributes its rules see; one without may leave it
 * out. Defining registers nothing: built-in ops are found through the list in opList.ts, user ops through the
 * public `defineOp` (src/defineOp.ts).
 */
export function defineOp<const N extends string, const S extends Readonly<Record<string, AttrKind>> = {}>(
  def: OpRules<AttrsOf<S>> & { readonly name: N; readonly attrs?: S },
): OpDef<AttrsOf<S>, N>;
/** The same, with the attributes' type given (`defineOp<{axis: number}>({…, attrs: {axis: 'int'}})`). */
export function defineOp<A extends Attrs>(def: OpRules<A> & { readonly name: string; readonly attrs?: AttrSchema<A> }): OpDef<A>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the overloads above are the typed surface
export function defineOp(def: OpRules<any> & { readonly name: string; readonly attrs?: object }): OpDef<any> {
  // A function declaration using nothing of this module's state: op modules call it while the import cycle
  // through opList.ts may still be evaluating this module.
  return Object.freeze({ ...def, attrs: Object.freeze({ ...(def.attrs ?? {}) }) });
}

let builtins: ReadonlyMap<string, OpDef> | undefined;
const userOps = new Map<string, OpDef>();

function builtinTable(): ReadonlyMap<string, OpDef> {
  // Built on first use: every op module has been evaluated by then, whatever the import order was.
  builtins ??= new Map(builtinOps().map((d) => [d.name, d as OpDef]));
  return builtins;
}

/** Whether `name` is a built-in op's. */
export function isBuiltinOp(name: string): boolean {
  return builtinTable().has(name);
}

/** Adds a user-defined op (src/defineOp.ts checks it first); a name in use is refused. */
export function registerUserOp(def: OpDef): void {
  if (builtinTable().has(def.name)) throw new SymflowError('defineOp', `op '${def.name}' is a built-in op; choose another name`);
  if (userOps.has(def.name)) throw new SymflowError('defineOp', `op '${def.name}' is already defined`);
  userOps.set(def.name, def);
}

/** Every op: the built-ins of opList.ts, then the ones users defined. */
export function allOps(): readonly OpDef[] {
  return [...builtinTable().values(), ...userOps.values()];
}

/** The record of an op by name: a built-in, or one a user defined. */
export function getOp(name: string): OpDef | undefined {
  return builtinTable().get(name) ?? userOps.get(name);
}

/** Builds a node of an op: infers shape and dtype (errors at build time), names it, freezes it. */
export function makeNode<A extends Attrs>(
  def: OpDef<A>,
  inputs: readonly Tensor[],
  attrs: A,
  name?: string,
): Tensor {
  const { shape, dtype } = def.infer(inputs, attrs, BUILD_SHAPES);
  return Object.freeze(new Tensor({ op: def.name, inputs, attrs, shape, dtype, name: uniqueName(name ?? def.name) }));
}
