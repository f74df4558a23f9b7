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

export type LayerActivation = 'linear' | 'relu' | 'sigmoid' | 'tanh' | 'softmax';
const ACTIVATIONS: Record<LayerActivation, (x: Tensor) => Tensor> = { linear: (x) => x, relu, sigmoid, tanh, softmax };

export function activationFn(who: string, a: LayerActivation | undefined): (x: Tensor) => Tensor {
  const f = Object.prototype.hasOwnProperty.call(ACTIVATIONS, a ?? 'linear') ? ACTIVATIONS[a ?? 'linear'] : undefined;
  if (f === undefined) throw new SymflowError(who, `unknown activation ${JSON.stringify(a)} (one of ${Object.keys(ACTIVATIONS).join(', ')})`);
  return f;
}

export interface DenseLayerOptions {
  activation?: LayerActivation;
  useBias?: boolean;
  /** Seeds the Glorot-uniform kernel. */
  seed?: number;
  name?: string;
}

/** `activation(x · kernel + bias)` on the last axis (any rank ≥ 2). Variables `kernel` [features, units], `bias` [units]. */
export class Dense extends BaseLayer {
  kernel?: Variable;
  bias?: Variable;
  private readonly act: (x: Tensor) => Tensor;
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
  protected build([x]: readonly Tensor[]): void {
    const f = x!.shape[x!.rank - 1] as number;
    this.kernel = this.addWeight('kernel', initializers.glorotUniform([f, this.units], { seed: seedFor(this.opts.seed, 0) }));
    if (this.opts.useBias !== false) this.bias = this.addWeight('bias', initializers.zeros([this.units]));
  }
  protected call([x]: readonly Tensor[]): Tensor {
    const z = matMul(x!, this.kernel!);
    return this.act(this.bias ? add(z, this.bias) : z);
  }
}

/** [batch, d1, …, dk] → [batch, d1·…·dk]; the dimensions after the batch must be known. */
export class Flatten extends BaseLayer {
  constructor(opts: { name?: string } = {}) {
    super('flatten', opts.name);
  }
  protected check([x]: readonly Tensor[]): void {
    if (x!.rank < 1) throw new SymflowError(this.who, `x needs rank >= 1 (a batch axis), x is ${shapeString(x!.shape)}`);
    for (let a = 1; a < x!.rank; a++) this.staticDim('x', x!, a, 'size after the batch axis');
  }
  protected build(): void {}
  protected call([x]: readonly Tensor[]): Tensor {
    if (x!.rank === 2) return x!;
    const rest = (x!.shape.slice(1) as number[]).reduce((p, d) => p * d, 1);
    return reshape(x!, [x!.shape[0] ?? -1, rest]);
  }
}

/** Dropout while training (the learning phase), the identity otherwise; see `dropout` in random.ts. */
export class Dropout extends BaseLayer {
  constructor(readonly rate: number, readonly opts: { seed?: number; name?: string } = {}) {
    super('dropout', opts.name);
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new SymflowError(this.who, `rate must be in [0, 1), got ${String(rate)}`);
  }
  protected check([x]: readonly Tensor[]): void {
    this.checkFloat('x', x!);
  }
  protected build(): void {}
  protected call([x]: readonly Tensor[]): Tensor {
    return dropoutOp(x!, this.rate, this.opts.seed === undefined ? {} : { seed: this.opts.seed });
  }
}

export interface EmbeddingOptions {
  /** Seeds the U(−0.05, 0.05) table (Keras' default). */
  seed?: number;
  name?: string;
}

/** int32 ids [..] → rows of an `embeddings` table [vocab, dim]: [.., dim]. */
export class Embedding extends BaseLayer {
  embeddings?: Variable;
  constructor(readonly vocab: number, readonly dim: number, readonly opts: EmbeddingOptions = {}) {
    super('embedding', opts.name);
    checkPositiveInt(this.who, 'vocab', vocab);
    checkPositiveInt(this.who, 'dim', dim);
  }
  protected check([ids]: readonly Tensor[]): void {
    if (ids!.dtype !== 'int32') throw new SymflowError(this.who, `ids must be int32, got ${ids!.dtype} (ids is ${shapeString(ids!.shape)}); cast(ids, 'int32') first`);
  }
  protected build(): void {
    this.embeddings = this.addWeight('embeddings', initializers.randomUniform([this.vocab, this.dim], { min: -0.05, max: 0.05, seed: seedFor(this.opts.seed, 0) }));
  }
  protected call([ids]: readonly Tensor[]): Tensor {
    return gather(this.embeddings!, ids!, 0);
  }
}

/**
 * A layer of layers, applied in order. Its variables and updates are those of all its layers (each once). Any
 * object with the `Layer` interface can go in (the conv2d / pooling layers, when their ops land, will too).
 */
export class Sequential implements Layer {
  readonly name: string;
  readonly layers: readonly Layer[];
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
  get variables(): readonly Variable[] {
    return this.collect((l) => l.variables);
  }
  get nonTrainableVariables(): readonly Variable[] {
    return this.collect((l) => l.nonTrainableVariables);
  }
  get updates(): readonly Update[] {
    return this.collect((l) => l.updates);
  }
  apply(x: Tensor): Tensor {
    if (!isTensor(x)) throw new SymflowError(`sequential '${this.name}'`, `x must be a Tensor, got ${x === null ? 'null' : typeof x}`);
    return this.layers.reduce((h, l) => l.apply(h), x);
  }
}
