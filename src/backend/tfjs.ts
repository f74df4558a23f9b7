import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

// Production mode: no debug checks, and no console banner suggesting tfjs-node on every cpu start.
tf.enableProdMode();
import type { HostTensor } from '../graph/hostValue.js';
import { alias, tfKernelFor } from './tfjsKernels.js';
import type { BackendName, DeviceTensor, Kernel, KernelBackend, KernelNode, PassRequests } from './types.js';

const asTf = (t: DeviceTensor) => t as unknown as tf.Tensor;
const asDevice = (t: tf.Tensor) => t as unknown as DeviceTensor;

/** TF.js kernels on one of its backends (cpu, wasm, or tensorflow from tfjs-node). */
export class TfjsBackend implements KernelBackend {
  readonly kind = 'kernels' as const;
  readonly name: BackendName;
  readonly passes: PassRequests;
  private readonly tfName: string;

  constructor(name: BackendName) {
    this.name = name;
    this.tfName = name;
    // TF.js wasm's transposed matMul is about 20× slower than transposing first.
    this.passes = { fuseMatMul: true, explicitTranspose: name === 'wasm' };
  }

  async activate(): Promise<void> {
    if (tf.getBackend() === this.tfName) return;
    const ok = await tf.setBackend(this.tfName);
    if (!ok) throw new Error(`Session.create: TF.js backend '${this.tfName}' failed to initialise`);
    await tf.ready();
  }

  isActive(): boolean {
    return tf.getBackend() === this.tfName;
  }

  /**
   * Makes this backend TF.js's active one now, synchronously. TF.js has ONE global engine: a session whose calls
   * interleave with another backend's session switches back before each of its own operations (a switch to an
   * initialised backend is synchronous), so its kernels never run on the other backend.
   */
  use(): void {
    if (tf.getBackend() === this.tfName) return;
    if (tf.findBackend(this.tfName) === null) throw new Error(`TF.js backend '${this.tfName}' is not initialised`);
    void tf.setBackend(this.tfName);
    if (tf.getBackend() !== this.tfName) throw new Error(`TF.js backend '${this.tfName}' could not be made active`);
  }

  kernelFor(node: KernelNode): Kernel {
    const kernel = tfKernelFor(node, {
      backend: this.name as 'cpu' | 'wasm' | 'tensorflow',
    }, this.name);
    return kernel as unknown as Kernel;
  }

  upload(value: HostTensor): DeviceTensor {
    this.use();
    // The cpu backend keeps the array it is given: copy, so later changes to the caller's array cannot leak in.
    const data = this.name === 'cpu' ? value.data.slice() : value.data;
    return asDevice(tf.tensor(data, value.shape, value.dtype));
  }

  download(t: DeviceTensor): HostTensor {
    this.use();
    const x = asTf(t);
    const data = x.dataSync() as Float32Array | Int32Array | Uint8Array;
    // TF.js cpu relabels an int32 or bool array as float32 (or a bool one as int32) when it casts: give the dtype's array.
    const Want = x.dtype === 'float32' ? Float32Array : x.dtype === 'int32' ? Int32Array : Uint8Array;
    return { shape: [...x.shape], dtype: x.dtype as HostTensor['dtype'], data: data instanceof Want ? data.slice() : Want.from(data) };
  }

  alias(t: DeviceTensor): DeviceTensor {
    this.use();
    return asDevice(alias(asTf(t)));
  }

  dispose(t: DeviceTensor): void {
    asTf(t).dispose();
  }

  shapeOf(t: DeviceTensor): readonly number[] {
    return asTf(t).shape;
  }

  readBool(t: DeviceTensor): boolean {
    this.use();
    return asTf(t).dataSync()[0] !== 0;
  }

  numTensors(): number {
    return tf.memory().numTensors;
  }
}
