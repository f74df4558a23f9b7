// The public `defineOp`: a user's own primitive, with its shape rule, gradient rule and kernels per backend. It
// sits above graph and backend: the record it makes keeps the kernels opaque (graph code never sees a kernel
// library), and the backends read them typed (src/backend/opKernels.ts).
import type { OpKernels } from './backend/opKernels.js';
import { asTensor, type TensorLike } from './graph/convert.js';
import { SymflowError } from './graph/errors.js';
import {
  type AttrKind, type AttrsOf, checkAttrs, defineOp as makeRecord, type Inferred, makeNode, type OpDef, registerUserOp, type ShapeCtx,
} from './graph/registry.js';
import type { Tensor } from './graph/tensor.js';

/** An attribute schema: one kind per attribute (`{alpha: 'number', axes: 'ints'}`). */
export type AttrSchemaOf = Readonly<Record<string, AttrKind>>;

/** What a user op is made of. `A` is the attributes' type, derived from the schema `attrs`. */
export interface OpDefinition<S extends AttrSchemaOf> {
  /** The op's name: what graph JSON stores, and what errors name. A built-in's name is refused. */
  readonly name: string;
  /** The attribute schema; the attributes' types, validation and the JSON round-trip derive from it. */
  readonly attrs?: S;
  /**
   * The shape rule: the output's shape and dtype from the inputs (`{shape, dtype, name, rank}`) and attributes;
   * throw a `SymflowError` naming the op for inputs it refuses. It also runs on symbolic shapes (see `ShapeCtx`).
   */
  infer(inputs: readonly Tensor[], attrs: AttrsOf<S>, ctx: ShapeCtx): Inferred;
  /**
   * The gradient rule, from public ops: one entry per input, its gradient (a tensor, or a thunk that builds it
   * only when needed), or `undefined` for none. Without it no gradient flows through the op.
   */
  grad?(dy: Tensor, y: Tensor, inputs: readonly Tensor[], attrs: AttrsOf<S>): readonly (Tensor | (() => Tensor) | undefined)[];
  /** Kernels per backend: `tfjs` (or `cpu`, `wasm`, `tensorflow` for one of them) and `onnx`. */
  readonly kernels?: OpKernels<AttrsOf<S>>;
  /** The same value composed from public ops: the fallback on a backend without a kernel for the op. */
  compose?(inputs: readonly Tensor[], attrs: AttrsOf<S>): Tensor;
}

/** A user op: call it to build a node; `op` is its record. */
export interface UserOp<A> {
  (inputs: readonly TensorLike[], ...attrs: {} extends A ? [attrs?: A, name?: string] : [attrs: A, name?: string]): Tensor;
  /** The op's record (name, attribute schema, rules), as registered: what graph JSON and the backends key on. */
  readonly op: OpDef;
}

const KERNEL_KEYS = new Set(['tfjs', 'cpu', 'wasm', 'tensorflow', 'onnx']);
const KINDS = new Set<unknown>(['int', 'number', 'bool', 'dtype', 'ints', 'pairs', 'shape', 'data', 'string']);

/**
 * Defines an op of your own: its shape rule and gradient rule, kernels per backend, and optionally a composition
 * from public ops as the fallback where a backend has no kernel. A session refuses, when it compiles a function,
 * an op that has neither for its backend, naming the op and the backend.
 *
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * // softsign(x) = x / (1 + |x|), with d/dx = 1 / (1 + |x|)²
 * const softsign = defineOp({
 *   name: 'softsign',
 *   infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
 *   grad: (dy, _y, [x]) => [div(dy, square(add(1, abs(x!))))],
 *   kernels: {
 *     tfjs: ([x]) => tf.div(x!, tf.add(1, tf.abs(x!))),
 *     onnx: (b, [x]) => b.node('Softsign', [x!]),
 *   },
 *   compose: ([x]) => div(x!, add(1, abs(x!))),
 * });
 * const y = softsign([x]);
 * ```
 * @param def the op: name, attrs schema, infer, grad, kernels, compose
 * @returns a function building the op's nodes from inputs (numbers become float32 scalars) and attributes
 */
export function defineOp<const S extends AttrSchemaOf = {}>(def: OpDefinition<S>): UserOp<AttrsOf<S>> {
  const name = checkDefinition(def as unknown as OpDefinition<AttrSchemaOf>);
  const { grad } = def;
  const record = makeRecord({
    name,
    attrs: { ...(def.attrs ?? {}) } as AttrSchemaOf,
    infer: (inputs, attrs, ctx) => def.infer(inputs, attrs as AttrsOf<S>, ctx),
    grad: grad && ((dy, y, inputs, attrs) => {
      const gs: unknown = grad.call(def, dy, y, inputs, attrs as AttrsOf<S>);
      if (!Array.isArray(gs) || gs.length !== inputs.length) {
        throw new SymflowError(name, `grad must return one entry per input (${inputs.length}), got ${Array.isArray(gs) ? `${gs.length} entries` : typeof gs}`);
      }
      return gs.map((g: Tensor | (() => Tensor) | undefined) => (g === undefined ? undefined : typeof g === 'function' ? g : () => g));
    }),
    kernels: def.kernels as Readonly<Record<string, unknown>> | undefined,
    compose: def.compose && ((inputs, attrs) => def.compose!(inputs, attrs as AttrsOf<S>)),
  }) as OpDef;
  registerUserOp(record);
  const build = (inputs: readonly TensorLike[], attrs: Record<string, unknown> = {}, nodeName?: string): Tensor => {
    if (!Array.isArray(inputs)) throw new SymflowError(name, `inputs must be an array of tensors, got ${typeof inputs}`);
    checkAttrs(record, attrs ?? {}, 'attrs', name);
    const xs = inputs.map((x, i) => asTensor(name, `inputs[${i}]`, x));
    return makeNode(record, xs, attrs as AttrsOf<S>, nodeName);
  };
  return Object.assign(build, { op: record }) as unknown as UserOp<AttrsOf<S>>;
}

/** Checks a definition's parts before anything is registered; returns its name. */
function checkDefinition(def: OpDefinition<AttrSchemaOf>): string {
  if (def === null || typeof def !== 'object') throw new SymflowError('defineOp', `the definition must be an object, got ${def === null ? 'null' : typeof def}`);
  const { name } = def;
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_.]{0,99}$/.test(name)) {
    throw new SymflowError('defineOp', `name must be a letter then up to 99 letters, digits, '_' or '.', got ${JSON.stringify(name)}`);
  }
  if (typeof def.infer !== 'function') throw new SymflowError('defineOp', `'${name}': infer (the shape rule) must be a function`);
  for (const part of ['grad', 'compose'] as const) {
    if (def[part] !== undefined && typeof def[part] !== 'function') throw new SymflowError('defineOp', `'${name}': ${part} must be a function`);
  }
  for (const [k, kind] of Object.entries(def.attrs ?? {})) {
    if (!KINDS.has(kind)) throw new SymflowError('defineOp', `'${name}': attribute '${k}' has unknown kind ${JSON.stringify(kind)}; use one of ${[...KINDS].join(', ')}`);
  }
  for (const [k, kernel] of Object.entries(def.kernels ?? {})) {
    if (!KERNEL_KEYS.has(k)) throw new SymflowError('defineOp', `'${name}': kernels.${k} is not a backend; use ${[...KERNEL_KEYS].join(', ')}`);
    if (typeof kernel !== 'function') throw new SymflowError('defineOp', `'${name}': kernels.${k} must be a function`);
  }
  return name;
}
