import type { HostTensor } from '../graph/hostValue.js';
import type { GraphIR, NodeIR } from '../graph/ir.js';
import type { Block } from '../session/plan.js';
import type { Attrs, DType, Shape } from '../graph/tensor.js';

/** Names of the kernel backends a session can run on. */
export type BackendName = 'onnx' | 'wasm' | 'cpu' | 'tensorflow';

/** Severities of onnxruntime's logger, most verbose first (its own names). */
export const ONNX_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;
/** The least severe onnxruntime log line the onnx backend lets through to stderr. */
export type OnnxLogLevel = (typeof ONNX_LOG_LEVELS)[number];

/** An opaque handle to a tensor living on a backend. Only the backend looks inside. */
export interface DeviceTensor {
  readonly __deviceTensor: unique symbol;
}

/** What a kernel factory sees of a node: no graph objects, just plain data. */
export interface KernelNode {
  readonly op: string;
  readonly name: string;
  readonly attrs: Attrs;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly inputs: readonly { readonly shape: Shape; readonly dtype: DType }[];
}

export type Kernel = (inputs: readonly DeviceTensor[]) => DeviceTensor;

/**
 * The contract between the session's executor and a kernel library. Kernels are chosen once, when a session
 * function is compiled (`kernelFor`), so lowering decisions cost nothing per call.
 */
export interface KernelBackend {
  readonly name: BackendName;
  /** Makes this backend the active one (TF.js has one global engine). */
  activate(): Promise<void>;
  isActive(): boolean;
  /** Makes this backend the active one now, synchronously (before a call's kernels run); a no-op where nothing is global. */
  use(): void;
  kernelFor(node: KernelNode): Kernel;
  upload(value: HostTensor): DeviceTensor;
  /** Copies a tensor's value to the host (the caller owns the result). */
  download(t: DeviceTensor): HostTensor;
  /** A second handle to the same data (no copy); dispose each handle once. */
  alias(t: DeviceTensor): DeviceTensor;
  dispose(t: DeviceTensor): void;
  shapeOf(t: DeviceTensor): readonly number[];
  readBool(t: DeviceTensor): boolean;
  /** Whether transposed matMuls should become explicit transposes first (TF.js wasm). */
  readonly explicitTranspose?: boolean;
  /** Whether the backend has a fused matMul + bias (+ relu) kernel (op `fusedMatMul`). */
  readonly fusedMatMul?: boolean;
  /** Live tensors in the backend's engine (the leak check). */
  numTensors(): number;
  /**
   * Whole-function backends compile a planned session function into one program (the onnx backend lowers it to
   * one ONNX model); kernel backends leave this out and run the plan kernel by kernel.
   */
  compileProgram?(spec: ProgramSpec): GraphProgram;
}

/** A planned session function, for whole-function backends. Values are named by slot. */
export interface ProgramSpec {
  readonly ir: GraphIR;
  readonly top: Block;
  readonly nodeOfSlot: (slot: number) => NodeIR;
  /** Slots fed at run time (feeds and variables), in the order `run` receives them. */
  readonly inputs: readonly number[];
  /** Slots of constants, whose values the program may embed. */
  readonly constants: readonly number[];
  /** Slots the program returns, in order (outputs, then new values of variables). */
  readonly results: readonly number[];
  /**
   * Results that are a variable's new value, by result index → the variable's input slot. Where a taken branch
   * leaves that variable as it was, the program may return `undefined` for it instead of copying it out.
   */
  readonly keeps: ReadonlyMap<number, number>;
}

export interface GraphProgram {
  run(inputs: readonly DeviceTensor[]): Promise<(DeviceTensor | undefined)[]>;
  /** Releases what the program holds (an onnxruntime session and its threads). */
  dispose(): Promise<void>;
}
