import type { Update } from '../cond.js';
import { SymflowError } from '../errors.js';
import { initializers } from '../initializers.js';
import { add } from '../ops/binary.js';
import { gather } from '../ops/gather.js';
import { matMul } from '../ops/matMul.js';
import { relu, softmax } from '../ops/nn.js';
import { reshape } from '../ops/reshape.js';
import { sigmoid, tanh } from '../ops/unary.js';
import { dropout as dropoutOp } from '../random.js';
import { uniqueName } from '../names.js';
import { isTensor, shapeString, type Tensor, type Variable } from '../tensor.js';
import { BaseLayer, checkPositiveInt, type Layer, seedFor } from './base.js';

/** The activations a layer can apply to its output; `'linear'` (the identity) is the default. `'softmax'` is over the last axis. */
export type LayerActivation = 'linear' | 'relu' | 'sigmoid' | 'tanh' | 'softmax';
const ACTIVATIONS: Record<LayerActivation, (x: Tensor) => Tensor> = { linear: (x) => x, relu, sigmoid, tanh, softmax };

export function activationFn(who: string, a: LayerActivation | undefined): (x: Tensor) => Tensor {
  const f = Object.prototype.hasOwnProperty.call(ACTIVATIONS, a ?? 'linear') ? ACTIVATIONS[a ?? 'linear'] : undefined;
  if (f === undefined) throw new SymflowError(who, `unknown activation ${JSON.stringify(a)} (one of ${Object.keys(ACTIVATIONS).join(', ')})`);
  return f;
}

/** Options of `nn.dense`. */
export interface DenseLayerOptions {
  /** Applied to `x · kernel + bias`. Default 'linear' (none). */
  activation?: LayerActivation;
  /** Whether to add a `bias` variable (zeros, [units]). Default true. */
  useBias?: boolean;
  /** Seeds the Glorot-uniform kernel. Default: a random seed. */
  seed?: number;
  /** The layer's name (made unique; its variables are `<name>/kernel`, `<name>/bias`). Default 'dense'. */
  name?: string;
}

/** `activation(x · kernel + bias)` on the last axis (any rank ≥ 2). Variables `kernel` [features, units], `bias` [units]. */
export class Dense extends BaseLayer {
  /** The Glorot-uniform weights [features, units]; undefined until the first call. */
  kernel?: Variable;
  /** The bias [units], zeros at first; undefined until the first call, or always with `useBias: false`. */
  bias?: Variable;
  private readonly act: (x: Tensor) => Tensor;
  /**
   * @param units output size (a positive integer)
   * @param opts activation, bias, seed and name
   */
  constructor(readonly units: number, readonly opts: DenseLayerOptions = {}) {
    super('dense', opts.name);
    checkPositiveInt(this.who, 'units', units);
    this.act = activationFn(this.who, opts.activation);
  }
  protected check([x]: readonly Tensor[]): void {
    if (x!.rank < 2) throw new SymflowError(this.who, `x needs rank >= 2, x is ${shapeString(x!.shape)}`);
    this.checkFloat('x', x!);
    this.staticDim('x', x!, -1, 'last dimension');
    this.checkSame('x', x!, -1, this.kernel?.shape[0] as number | undefined, 'last dimension');
  }
  /** Makes `kernel` [features, units] from x's last dimension, and `bias` [units] unless `useBias` is false. */
  protected build([x]: readonly Tensor[]): void {
    const f = x!.shape[x!.rank - 1] as number;
    this.kernel = this.addWeight('kernel', initializers.glorotUniform([f, this.units], { seed: seedFor(this.opts.seed, 0) }));
    if (this.opts.useBias !== false) this.bias = this.addWeight('bias', initializers.zeros([this.units]));
  }
  /** `activation(x · kernel + bias)`. */
  protected call([x]: readonly Tensor[]): Tensor {
    const z = matMul(x!, this.kernel!);
    return this.act(this.bias ? add(z, this.bias) : z);
  }
}

/** [batch, d1, …, dk] → [batch, d1·…·dk]; the dimensions after the batch must be known. */
export class Flatten extends BaseLayer {
  /** @param opts `name`: the layer's name (default 'flatten') */
  constructor(opts: { name?: string } = {}) {
    super('flatten', opts.name);
  }
  protected check([x]: readonly Tensor[]): void {
    if (x!.rank < 1) throw new SymflowError(this.who, `x needs rank >= 1 (a batch axis), x is ${shapeString(x!.shape)}`);
    for (let a = 1; a < x!.rank; a++) this.staticDim('x', x!, a, 'size after the batch axis');
  }
  /** Nothing to make: flatten has no variables. */
  protected build(): void {}
  /** x itself when it already has rank 2, else a reshape to [batch, d1·…·dk]. */
  protected call([x]: readonly Tensor[]): Tensor {
    if (x!.rank === 2) return x!;
    const rest = (x!.shape.slice(1) as number[]).reduce((p, d) => p * d, 1);
    return reshape(x!, [x!.shape[0] ?? -1, rest]);
  }
}

/** Dropout while training (the learning phase), the identity otherwise; see `dropout` in random.ts. */
export class Dropout extends BaseLayer {
  /**
   * @param rate the fraction of elements zeroed while training, in [0, 1); survivors are scaled by 1 / (1 − rate)
   * @param opts `seed` (default: a random seed) and `name` (default 'dropout')
   */
  constructor(
    readonly rate: number,
    readonly opts: {
      /** Seeds the masks. Default: a random seed. */
      seed?: number;
      /** The layer's name. Default 'dropout'. */
      name?: string;
    } = {},
  ) {
    super('dropout', opts.name);
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new SymflowError(this.who, `rate must be in [0, 1), got ${String(rate)}`);
  }
  protected check([x]: readonly Tensor[]): void {
    this.checkFloat('x', x!);
  }
  /** Nothing to make: dropout has no variables. */
  protected build(): void {}
  /** `dropout(x, rate)`: a new mask each training step (the runs of one step share it), the identity outside training. */
  protected call([x]: readonly Tensor[]): Tensor {
    return dropoutOp(x!, this.rate, this.opts.seed === undefined ? {} : { seed: this.opts.seed });
  }
}

/** Options of `nn.embedding`. */
export interface EmbeddingOptions {
  /** Seeds the U(−0.05, 0.05) table (Keras' default). Default: a random seed. */
  seed?: number;
  /** The layer's name (made unique; its table is `<name>/embeddings`). Default 'embedding'. */
  name?: string;
}

/** int32 ids [..] → rows of an `embeddings` table [vocab, dim]: [.., dim]. */
export class Embedding extends BaseLayer {
  /** The table [vocab, dim], U(−0.05, 0.05) at first; undefined until the first call. */
  embeddings?: Variable;
  /**
   * @param vocab number of rows (ids run from 0 to vocab − 1; a positive integer)
   * @param dim size of each row (a positive integer)
   * @param opts seed and name
   */
  constructor(readonly vocab: number, readonly dim: number, readonly opts: EmbeddingOptions = {}) {
    super('embedding', opts.name);
    checkPositiveInt(this.who, 'vocab', vocab);
    checkPositiveInt(this.who, 'dim', dim);
  }
  protected check([ids]: readonly Tensor[]): void {
    if (ids!.dtype !== 'int32') throw new SymflowError(this.who, `ids must be int32, got ${ids!.dtype} (ids is ${shapeString(ids!.shape)}); cast(ids, 'int32') first`);
  }
  /** Makes the `embeddings` table [vocab, dim]. */
  protected build(): void {
    this.embeddings = this.addWeight('embeddings', initializers.randomUniform([this.vocab, this.dim], { min: -0.05, max: 0.05, seed: seedFor(this.opts.seed, 0) }));
  }
  /** `gather(embeddings, ids, 0)`: the rows of the ids, [..ids' shape, dim]. */
  protected call([ids]: readonly Tensor[]): Tensor {
    return gather(this.embeddings!, ids!, 0);
  }
}

/**
 * A layer of layers, applied in order. Its variables and updates are those of all its layers (each once). Any
 * object with the `Layer` interface can go in (the conv2d / pooling layers, when their ops land, will too).
 */
export class Sequential implements Layer {
  /** The unique name (default 'sequential'); it does not prefix its layers' names. */
  readonly name: string;
  /** The layers, in application order (a copy of the array given). */
  readonly layers: readonly Layer[];
  /**
   * @param layers objects with an `apply` method, applied first to last
   * @param opts `name`: default 'sequential'
   */
  constructor(layers: readonly Layer[], opts: { name?: string } = {}) {
    this.name = uniqueName(opts.name ?? 'sequential');
    if (!Array.isArray(layers)) throw new SymflowError(`sequential '${this.name}'`, `layers must be an array of layers, got ${typeof layers}`);
    layers.forEach((l, i) => {
      if (l === null || typeof l !== 'object' || typeof (l as Layer).apply !== 'function') {
        throw new SymflowError(`sequential '${this.name}'`, `layers[${i}] is not a layer (an object with apply), got ${l === null ? 'null' : typeof l}`);
      }
    });
    this.layers = [...layers];
  }
  private collect<T>(get: (l: Layer) => readonly T[]): T[] {
    const seen = new Set<T>();
    for (const l of this.layers) for (const v of get(l)) seen.add(v);
    return [...seen];
  }
  /** Its layers' trainable variables, in layer order, each once (a layer listed twice shares its variables). */
  get variables(): readonly Variable[] {
    return this.collect((l) => l.variables);
  }
  /** Its layers' non-trainable variables, each once. */
  get nonTrainableVariables(): readonly Variable[] {
    return this.collect((l) => l.nonTrainableVariables);
  }
  /** Its layers' model state updates, each once, for `compile(…, { updates })`. */
  get updates(): readonly Update[] {
    return this.collect((l) => l.updates);
  }
  /** Applies the layers in order: `layers[n−1].apply(… layers[0].apply(x))`. */
  apply(x: Tensor): Tensor {
    if (!isTensor(x)) throw new SymflowError(`sequential '${this.name}'`, `x must be a Tensor, got ${x === null ? 'null' : typeof x}`);
    return this.layers.reduce((h, l) => l.apply(h), x);
  }
}
