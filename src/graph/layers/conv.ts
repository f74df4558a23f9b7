import { SymflowError } from '../errors.js';
import { initializers } from '../initializers.js';
import { add } from '../ops/binary.js';
import { type Conv2DOptions, conv2d, depthwiseConv2d } from '../ops/conv.js';
import { avgPool, maxPool, type PoolOptions } from '../ops/pool.js';
import { shapeString, type Tensor, type Variable } from '../tensor.js';
import { BaseLayer, checkPositiveInt, seedFor } from './base.js';
import { activationFn, type LayerActivation } from './core.js';

/** Options of `nn.conv2d`: the convolution's strides, padding and dilations, and the layer's own. */
export interface Conv2DLayerOptions extends Conv2DOptions {
  /** Applied to `conv2d(x, kernel) + bias`. Default 'linear' (none). */
  activation?: LayerActivation;
  /** Whether to add a `bias` variable (zeros, one per output channel). Default true. */
  useBias?: boolean;
  /** The layer's name (made unique; its variables are `<name>/kernel`, `<name>/bias`). Default 'conv2d' (or 'depthwiseConv2d'). */
  name?: string;
  /** Seeds the Glorot-uniform kernel. Default: a random seed. */
  seed?: number;
}

type Size = number | readonly [number, number];
const pair = (who: string, arg: string, s: Size): [number, number] => {
  const p = typeof s === 'number' ? [s, s] : s;
  if (!Array.isArray(p) || p.length !== 2) throw new SymflowError(who, `${arg} must be a number or [h, w], got ${JSON.stringify(s)}`);
  return [checkPositiveInt(who, arg, p[0]), checkPositiveInt(who, arg, p[1])];
};

/** Shared input checks of the NHWC layers: float32, rank 4, known channels (and the channels built for). */
function checkNhwc(who: string, x: Tensor, built: number | undefined): void {
  if (x.dtype !== 'float32') throw new SymflowError(who, `x must be float32, got ${x.dtype} (x is ${shapeString(x.shape)})`);
  if (x.rank !== 4) throw new SymflowError(who, `x must be NHWC (rank 4), x is ${shapeString(x.shape)}`);
  if (x.shape[3] === null) throw new SymflowError(who, `x needs a known channel dimension (axis 3), x is ${shapeString(x.shape)}`);
  if (built !== undefined && x.shape[3] !== built) throw new SymflowError(who, `x has ${String(x.shape[3])} channels (x is ${shapeString(x.shape)}), but the layer was built for ${built}`);
}

/**
 * What Conv2D and DepthwiseConv2D share: the kernel [kh, kw, in, `kernelOut`] (Glorot uniform with Keras' fans), the
 * bias [in·… output channels], the input checks, and `activation(op(x, kernel) + bias)`.
 */
abstract class ConvLayer extends BaseLayer {
  /** The Glorot-uniform kernel [kh, kw, in, kernelOut]; undefined until the first call. */
  kernel?: Variable;
  /** The bias, zeros, one per output channel; undefined until the first call, or always with `useBias: false`. */
  bias?: Variable;
  /** The window `[kh, kw]` (a number given is used for both). */
  readonly kernelSize: [number, number];
  private readonly act: (x: Tensor) => Tensor;
  /**
   * @param kind the layer kind (default name)
   * @param kernelSize the window: a positive integer or `[kh, kw]`
   * @param opts the convolution's and the layer's options
   */
  constructor(kind: string, kernelSize: Size, readonly opts: Conv2DLayerOptions) {
    super(kind, opts.name);
    this.kernelSize = pair(this.who, 'kernelSize', kernelSize);
    this.act = activationFn(this.who, opts.activation);
  }
  /** The kernel's last dimension and the output channels, for `c` input channels. */
  protected abstract sizes(c: number): {
    /** The kernel's last dimension. */
    kernelOut: number;
    /** The number of output channels (the bias's size). */
    channels: number;
  };
  /** The convolution itself (`conv2d` or `depthwiseConv2d`). */
  protected abstract op(x: Tensor, kernel: Tensor, opts: Conv2DOptions): Tensor;
  protected check([x]: readonly Tensor[]): void {
    checkNhwc(this.who, x!, this.kernel?.shape[2] as number | undefined);
  }
  /** Makes `kernel` from x's channels and, unless `useBias` is false, `bias`. */
  protected build([x]: readonly Tensor[]): void {
    const { kernelOut, channels } = this.sizes(x!.shape[3] as number);
    this.kernel = this.addWeight('kernel', initializers.glorotUniform([...this.kernelSize, x!.shape[3] as number, kernelOut], { seed: seedFor(this.opts.seed, 0) }));
    if (this.opts.useBias !== false) this.bias = this.addWeight('bias', initializers.zeros([channels]));
  }
  /** `activation(op(x, kernel) + bias)`. */
  protected call([x]: readonly Tensor[]): Tensor {
    const { strides, padding, dilations } = this.opts;
    const z = this.op(x!, this.kernel!, { ...(strides === undefined ? {} : { strides }), ...(padding === undefined ? {} : { padding }), ...(dilations === undefined ? {} : { dilations }) });
    return this.act(this.bias ? add(z, this.bias) : z);
  }
}

/** Keras' `Conv2D`: `activation(conv2d(x, kernel) + bias)`, NHWC, kernel [kh, kw, in, filters], bias [filters]. */
export class Conv2D extends ConvLayer {
  /**
   * @param filters output channels (a positive integer)
   * @param kernelSize the window: a positive integer or `[kh, kw]`
   * @param opts strides, padding, dilations, activation, bias, seed, name
   */
  constructor(readonly filters: number, kernelSize: Size, opts: Conv2DLayerOptions = {}) {
    super('conv2d', kernelSize, opts);
    checkPositiveInt(this.who, 'filters', filters);
  }
  /** The kernel's last dimension and the output channels: both `filters`. */
  protected sizes(): {
    /** `filters`. */
    kernelOut: number;
    /** `filters`. */
    channels: number;
  } {
    return { kernelOut: this.filters, channels: this.filters };
  }
  protected op(x: Tensor, kernel: Tensor, opts: Conv2DOptions): Tensor {
    return conv2d(x, kernel, opts);
  }
}

/** Options of `nn.depthwiseConv2d`: those of `nn.conv2d` and the depth multiplier. */
export interface DepthwiseConv2DLayerOptions extends Conv2DLayerOptions {
  /** Output channels per input channel (Keras' `depth_multiplier`, default 1). */
  depthMultiplier?: number;
}

/** Keras' `DepthwiseConv2D`: kernel [kh, kw, in, multiplier], bias [in · multiplier]. */
export class DepthwiseConv2D extends ConvLayer {
  /** Output channels per input channel (default 1). */
  readonly depthMultiplier: number;
  /**
   * @param kernelSize the window: a positive integer or `[kh, kw]`
   * @param opts strides, padding, dilations, depth multiplier, activation, bias, seed, name
   */
  constructor(kernelSize: Size, opts: DepthwiseConv2DLayerOptions = {}) {
    super('depthwiseConv2d', kernelSize, opts);
    this.depthMultiplier = checkPositiveInt(this.who, 'depthMultiplier', opts.depthMultiplier ?? 1);
  }
  /** The kernel's last dimension, `depthMultiplier`, and the output channels, `c · depthMultiplier`. */
  protected sizes(c: number): {
    /** `depthMultiplier`. */
    kernelOut: number;
    /** `c · depthMultiplier`. */
    channels: number;
  } {
    return { kernelOut: this.depthMultiplier, channels: c * this.depthMultiplier };
  }
  protected op(x: Tensor, kernel: Tensor, opts: Conv2DOptions): Tensor {
    return depthwiseConv2d(x, kernel, opts);
  }
}

/** Keras' `MaxPooling2D` / `AveragePooling2D` (NHWC; strides default to the window, padding to 'valid'). */
export class Pool2D extends BaseLayer {
  /**
   * @param mode 'max' (`nn.maxPool2d`) or 'avg' (`nn.avgPool2d`)
   * @param opts the window `size` (required), `strides`, `padding`, and the layer `name` (default 'maxPool2d' / 'avgPool2d')
   */
  constructor(
    readonly mode: 'max' | 'avg',
    readonly opts: PoolOptions & {
      /** The layer's name. Default 'maxPool2d' or 'avgPool2d'. */
      name?: string;
    },
  ) {
    super(mode === 'max' ? 'maxPool2d' : 'avgPool2d', opts?.name);
    if (opts?.size === undefined) throw new SymflowError(this.who, 'needs a window size ({size: 2} or {size: [h, w]})');
    pair(this.who, 'size', opts.size);
    if (opts.strides !== undefined) pair(this.who, 'strides', opts.strides);
  }
  protected check([x]: readonly Tensor[]): void {
    checkNhwc(this.who, x!, undefined);
  }
  /** Nothing to make: pooling has no variables. */
  protected build(): void {}
  /** `maxPool(x, opts)` or `avgPool(x, opts)`. */
  protected call([x]: readonly Tensor[]): Tensor {
    const { name: _name, ...pool } = this.opts;
    return this.mode === 'max' ? maxPool(x!, pool) : avgPool(x!, pool);
  }
}
