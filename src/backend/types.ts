import type { HostTensor } from '../graph/hostValue.js';
import type { Attrs, DType, Shape } from '../graph/tensor.js';

/** Names of the kernel backends a session can run on. */
export type BackendName = 'wasm' | 'cpu' | 'tensorflow';

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
  kernelFor(node: KernelNode): Kernel;
  upload(value: HostTensor): DeviceTensor;
  /** Copies a tensor's value to the host (the caller owns the result). */
  download(t: DeviceTensor): HostTensor;
  /** A second handle to the same data (no copy); dispose each handle once. */
  alias(t: DeviceTensor): DeviceTensor;
  dispose(t: DeviceTensor): void;
  shapeOf(t: DeviceTensor): readonly number[];
  readBool(t: DeviceTensor): boolean;
  /** Live tensors in the backend's engine (the leak check). */
  numTensors(): number;
}
