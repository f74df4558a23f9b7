// The typed side of an op's per-backend kernels. Op records keep them opaque (graph code never sees a kernel
// library); the backends read them here, typed. Exported from src/index.ts as types, for `defineOp`.
import type * as tf from '@tensorflow/tfjs-core';
import type { Attrs, DType, Shape } from '../graph/tensor.js';

/**
 * A TF.js kernel of a user op: its output from its inputs, with `@tensorflow/tfjs-core` ops. It runs inside
 * `tf.tidy`, so intermediates are freed; it must not keep or dispose its inputs.
 *
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * const softsign: TfjsKernel = ([x]) => tf.div(x!, tf.add(1, tf.abs(x!)));
 * ```
 */
export type TfjsKernel<A extends Attrs = Attrs> = (inputs: tf.Tensor[], attrs: A) => tf.Tensor;

/** Element types of ONNX values a lowering may make (int64 for shapes and axes). */
export type OnnxElem = 'float32' | 'int32' | 'bool' | 'int64' | 'float64';

/** An ONNX node attribute: an int, a string, ints, floats (`{floats}`) or a float (`{float}`). */
export type OnnxAttr = number | string | readonly number[]
  | {
    /** A list of floats (a plain number list is taken as ints). */
    readonly floats: readonly number[];
  }
  | {
    /** One float (a plain number is taken as an int). */
    readonly float: number;
  };

/** What a lowering may call of the ONNX graph builder (opset 17). */
export interface OnnxBuilder {
  /** Adds a node (`opType` as in the ONNX spec); returns the name of its output. */
  node(opType: string, inputs: readonly string[], attrs?: Readonly<Record<string, OnnxAttr>>): string;
  /** A constant tensor (deduplicated); returns its name. */
  constant(elem: OnnxElem, dims: readonly number[], data: ArrayLike<number>): string;
  /** A scalar constant. */
  scalar(elem: OnnxElem, value: number): string;
  /** An int64 vector (shapes, axes, pads). */
  ints(values: readonly number[]): string;
}

/** The shapes and dtypes of a node and its inputs, as a lowering sees them (static: `null` for unknown dims). */
export interface NodeTypes {
  /** The node's output shape (`null` where a dimension is known only at run time). */
  readonly shape: Shape;
  /** The node's output dtype. */
  readonly dtype: DType;
  /** Each input's shape and dtype, in order. */
  readonly inputs: readonly {
    /** The input's shape (`null` for dimensions known only at run time). */
    readonly shape: Shape;
    /** The input's dtype. */
    readonly dtype: DType;
  }[];
}

/**
 * An ONNX lowering of a user op: emits nodes computing its value from the names of its inputs' values and
 * returns the name of the result.
 *
 * ```ts
 * const softsign: OnnxLowering = (b, [x]) => b.node('Div', [x!, b.node('Add', [b.scalar('float32', 1), b.node('Abs', [x!])])]);
 * ```
 */
export type OnnxLowering<A extends Attrs = Attrs> = (b: OnnxBuilder, inputs: readonly string[], attrs: A, node: NodeTypes) => string;

/**
 * A user op's kernels, per backend: `tfjs` serves every TF.js backend (cpu, wasm, tensorflow) unless one has its
 * own entry; `onnx` is the ONNX lowering. A backend with none uses the op's `compose` fallback, if it has one.
 */
export interface OpKernels<A extends Attrs = Attrs> {
  /** The kernel for every TF.js backend that has no entry of its own. */
  readonly tfjs?: TfjsKernel<A>;
  /** The kernel on TF.js cpu (overrides `tfjs`). */
  readonly cpu?: TfjsKernel<A>;
  /** The kernel on TF.js wasm (overrides `tfjs`). */
  readonly wasm?: TfjsKernel<A>;
  /** The kernel on tfjs-node (overrides `tfjs`). */
  readonly tensorflow?: TfjsKernel<A>;
  /** The ONNX lowering (the onnx backend compiles whole functions to one ONNX model). */
  readonly onnx?: OnnxLowering<A>;
}

/** A backend table's entry that declares the op's `compose` fallback (its composition from other ops) instead of a kernel. */
export const COMPOSE = Object.freeze({ fallback: 'compose' as const });
export type Compose = typeof COMPOSE;
