import type { HostTensor } from '../graph/hostValue.js';
import type { GraphIR, NodeIR } from '../graph/ir.js';
import type { Block, NodeStep } from '../schedule/plan.js';
import type { Attrs, DType, Shape } from '../graph/tensor.js';

/** Names of the kernel backends a session can run on. */
export type BackendName = 'onnx' | 'onnx-wasm' | 'wasm' | 'cpu' | 'tensorflow';

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

/** What a backend wants from the rewrite passes every session function goes through. */
export interface PassRequests {
  /** Fuse matMul + bias (+ relu) into `fusedMatMul`: the backend has that kernel. */
  readonly fuseMatMul: boolean;
  /** Turn transposed matMuls into explicit transposes first (TF.js wasm); applies with rewrites off too. */
  readonly explicitTranspose: boolean;
}

/** What every backend offers the session: device tensors, their transfer, and its engine. */
interface BackendBase {
  readonly name: BackendName;
  /** What this backend wants from the rewrite passes. */
  readonly passes: PassRequests;
  /** Makes this backend the active one (TF.js has one global engine). */
  activate(): Promise<void>;
  isActive(): boolean;
  /** Makes this backend the active one now, synchronously (before a call's kernels run); a no-op where nothing is global. */
  use(): void;
  upload(value: HostTensor): DeviceTensor;
  /** Copies a tensor's value to the host (the caller owns the result). */
  download(t: DeviceTensor): HostTensor;
  /** A second handle to the same data (no copy); dispose each handle once. */
  alias(t: DeviceTensor): DeviceTensor;
  dispose(t: DeviceTensor): void;
  shapeOf(t: DeviceTensor): readonly number[];
  /** Live tensors in the backend's engine (the leak check). */
  numTensors(): number;
}

/**
 * A kernel-by-kernel backend (TF.js): kernels are chosen once, when a session function is compiled (`kernelFor`,
 * through the session's `bindKernels`), so lowering decisions cost nothing per call; the session's executor runs the plan.
 */
export interface KernelBackend extends BackendBase {
  readonly kind: 'kernels';
  kernelFor(node: KernelNode): Kernel;
  /** Reads a scalar bool (a cond's predicate) on the host. */
  readBool(t: DeviceTensor): boolean;
}

/**
 * A whole-program backend (onnx): a planned session function is compiled into one program (one ONNX model), which
 * a call runs at once. `compileProgram` refuses, naming the op, a plan with a node it cannot lower.
 */
export interface ProgramBackend extends BackendBase {
  readonly kind: 'program';
  compileProgram(spec: ProgramSpec): GraphProgram;
  /** @internal A tensor's host value without a copy, where its buffer is on the host and never written: to read at once. */
  view?(t: DeviceTensor): HostTensor;
}

/** The contract between the session and a backend: one of the two kinds, told apart by `kind`. */
export type Backend = KernelBackend | ProgramBackend;

/** A plan's node step with the kernel a kernel backend chose for it. */
export interface KernelStep extends NodeStep {
  readonly kernel: Kernel;
}

/** A planned session function, for whole-program backends. Values are named by register. */
export interface ProgramSpec {
  readonly ir: GraphIR;
  readonly top: Block;
  readonly nodeOfReg: (reg: number) => NodeIR;
  /** Registers fed at run time (feeds and variables), in the order `run` receives them. */
  readonly inputs: readonly number[];
  /** Registers of constants, whose values the program may embed. */
  readonly constants: readonly number[];
  /** Registers the program returns, in order (outputs, then new values of variables). */
  readonly results: readonly number[];
  /**
   * Results that are a variable's new value, by result index → the variable's input register. Where a taken branch
   * leaves that variable as it was, the program may return `undefined` for it instead of copying it out.
   */
  readonly keeps: ReadonlyMap<number, number>;
}

export interface GraphProgram {
  run(inputs: readonly DeviceTensor[]): Promise<(DeviceTensor | undefined)[]>;
  /** Releases what the program holds (an onnxruntime session and its threads). */
  dispose(): Promise<void>;
  /**
   * @internal The serialized model, for `exportOnnx` (onnx: the ModelProto the program runs, with its outputs'
   * shapes declared), encoded when asked.
   */
  readonly exportModel?: () => Uint8Array;
  /**
   * @internal The same function run k times in ONE call (onnx: an ONNX `Loop`), where the backend can; compiled
   * when first asked and released with the program. See `StepsSpec`.
   */
  readonly steps?: (spec: StepsSpec) => StepsProgram;
}

/**
 * k consecutive calls of one program as one: each call's feeds (and random draws) are stacked along a new leading
 * axis, the variables the calls write are carried from one call to the next, the others read as they are.
 */
export interface StepsSpec {
  /** Inputs fed per call, stacked [k, …shape]: feeds and random draws. */
  readonly stacked: readonly number[];
  /** Inputs the same in every call: the variables no call writes. */
  readonly fixed: readonly number[];
  /** The variables the calls write: the register a call reads it from (if it reads it) and that of its new value. */
  readonly carried: readonly { readonly reg?: number; readonly next: number; readonly dtype: DType; readonly shape: readonly number[] }[];
  /** Registers returned by every call, stacked [k, …shape]. */
  readonly scanned: readonly number[];
}

/** A compiled `StepsSpec`: inputs in the spec's order; the carried values after the k-th call and the stacked results. */
export interface StepsProgram {
  /** @internal The serialized Loop model, for `exportOnnx(…, { steps: true })`. */
  readonly exportModel?: () => Uint8Array;
  run(stacked: readonly DeviceTensor[], fixed: readonly DeviceTensor[], carried: readonly DeviceTensor[], k: number): Promise<{ carried: DeviceTensor[]; scanned: DeviceTensor[] }>;
}
