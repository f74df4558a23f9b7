/**
 * `nn`: layer objects (issue 12 §3). Made once, called with `apply`; see base.ts.
 */
import { Dense, type DenseLayerOptions, Dropout, Embedding, type EmbeddingOptions, Flatten, Sequential } from './core.js';
import { BatchNorm, type BatchNormOptions, LayerNorm, type LayerNormOptions } from './norm.js';
import { MultiHeadAttention, type MultiHeadAttentionOptions } from './attention.js';
import { Gru, type GruOptions, Lstm, type RecurrentOptions } from './recurrent.js';
import type { Layer } from './base.js';
import { Conv2D, type Conv2DLayerOptions, DepthwiseConv2D, type DepthwiseConv2DLayerOptions, Pool2D } from './conv.js';
import type { PoolOptions } from '../ops/pool.js';

export { BaseLayer, type Layer } from './base.js';
export { Dense, Dropout, Embedding, Flatten, Sequential, type DenseLayerOptions, type EmbeddingOptions, type LayerActivation } from './core.js';
export { BatchNorm, LayerNorm, type BatchNormOptions, type LayerNormOptions } from './norm.js';
export { MultiHeadAttention, type MultiHeadAttentionOptions } from './attention.js';
export { Gru, Lstm, type GruOptions, type RecurrentOptions } from './recurrent.js';
export { Conv2D, DepthwiseConv2D, Pool2D, type Conv2DLayerOptions, type DepthwiseConv2DLayerOptions } from './conv.js';

/**
 * Layer objects:
 * ```ts
 * const model = nn.sequential([nn.dense(64, { activation: 'relu' }), nn.batchNorm(), nn.dropout(0.2), nn.dense(10)]);
 * const logits = model.apply(x);           // variables made here, from x's last dimension
 * compile(adam(), session, { loss, inputs: [x, y], updates: model.updates });
 * ```
 */
export const nn = {
  /** A {@link Dense} layer: `activation(x · kernel + bias)`. @param units output size @param opts activation, useBias, seed, name */
  dense: (units: number, opts?: DenseLayerOptions): Dense => new Dense(units, opts),
  /** A {@link Flatten} layer: [batch, d1, …, dk] → [batch, d1·…·dk]. @param opts name (default 'flatten') */
  flatten: (opts?: { name?: string }): Flatten => new Flatten(opts),
  /** A {@link Dropout} layer, active only while training. @param rate fraction dropped, in [0, 1) @param opts seed, name */
  dropout: (rate: number, opts?: { seed?: number; name?: string }): Dropout => new Dropout(rate, opts),
  /** A {@link BatchNorm} layer (pass its `updates` to `compile`). @param opts momentum (0.99), epsilon (1e-3), axis (−1), name */
  batchNorm: (opts?: BatchNormOptions): BatchNorm => new BatchNorm(opts),
  /** A {@link LayerNorm} layer. @param opts epsilon (1e-3), axis (−1), name */
  layerNorm: (opts?: LayerNormOptions): LayerNorm => new LayerNorm(opts),
  /** An {@link Embedding} layer: int32 ids → rows of a [vocab, dim] table. @param vocab number of ids @param dim row size @param opts seed, name */
  embedding: (vocab: number, dim: number, opts?: EmbeddingOptions): Embedding => new Embedding(vocab, dim, opts),
  /** A {@link MultiHeadAttention} layer: `apply(query, value, key = value)`. @param opts numHeads and keyDim (required), valueDim, causal, useBias, seed, name */
  multiHeadAttention: (opts: MultiHeadAttentionOptions): MultiHeadAttention => new MultiHeadAttention(opts),
  /** An {@link Lstm} layer over [batch, T, features] (unrolled; T must be known). @param units state size @param opts returnSequences, seed, name */
  lstm: (units: number, opts?: RecurrentOptions): Lstm => new Lstm(units, opts),
  /** A {@link Gru} layer over [batch, T, features] (unrolled; T must be known). @param units state size @param opts resetAfter, returnSequences, seed, name */
  gru: (units: number, opts?: GruOptions): Gru => new Gru(units, opts),
  /** A {@link Sequential} layer: the layers applied in order. @param layers the layers @param opts name (default 'sequential') */
  sequential: (layers: readonly Layer[], opts?: { name?: string }): Sequential => new Sequential(layers, opts),
  /** A {@link Conv2D} layer (NHWC). @param filters output channels @param kernelSize `k` or `[kh, kw]` @param opts strides, padding, dilations, activation, useBias, seed, name */
  conv2d: (filters: number, kernelSize: number | readonly [number, number], opts?: Conv2DLayerOptions): Conv2D => new Conv2D(filters, kernelSize, opts),
  /** A {@link DepthwiseConv2D} layer (NHWC). @param kernelSize `k` or `[kh, kw]` @param opts depthMultiplier (1), strides, padding, dilations, activation, useBias, seed, name */
  depthwiseConv2d: (kernelSize: number | readonly [number, number], opts?: DepthwiseConv2DLayerOptions): DepthwiseConv2D => new DepthwiseConv2D(kernelSize, opts),
  /** A max-pooling {@link Pool2D} layer (NHWC). @param opts size (required), strides (the size), padding ('valid'), name */
  maxPool2d: (opts: PoolOptions & { name?: string }): Pool2D => new Pool2D('max', opts),
  /** An average-pooling {@link Pool2D} layer (NHWC). @param opts size (required), strides (the size), padding ('valid'), name */
  avgPool2d: (opts: PoolOptions & { name?: string }): Pool2D => new Pool2D('avg', opts),
};
