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
  dense: (units: number, opts?: DenseLayerOptions): Dense => new Dense(units, opts),
  flatten: (opts?: { name?: string }): Flatten => new Flatten(opts),
  dropout: (rate: number, opts?: { seed?: number; name?: string }): Dropout => new Dropout(rate, opts),
  batchNorm: (opts?: BatchNormOptions): BatchNorm => new BatchNorm(opts),
  layerNorm: (opts?: LayerNormOptions): LayerNorm => new LayerNorm(opts),
  embedding: (vocab: number, dim: number, opts?: EmbeddingOptions): Embedding => new Embedding(vocab, dim, opts),
  multiHeadAttention: (opts: MultiHeadAttentionOptions): MultiHeadAttention => new MultiHeadAttention(opts),
  lstm: (units: number, opts?: RecurrentOptions): Lstm => new Lstm(units, opts),
  gru: (units: number, opts?: GruOptions): Gru => new Gru(units, opts),
  sequential: (layers: readonly Layer[], opts?: { name?: string }): Sequential => new Sequential(layers, opts),
  conv2d: (filters: number, kernelSize: number | readonly [number, number], opts?: Conv2DLayerOptions): Conv2D => new Conv2D(filters, kernelSize, opts),
  depthwiseConv2d: (kernelSize: number | readonly [number, number], opts?: DepthwiseConv2DLayerOptions): DepthwiseConv2D => new DepthwiseConv2D(kernelSize, opts),
  maxPool2d: (opts: PoolOptions & { name?: string }): Pool2D => new Pool2D('max', opts),
  avgPool2d: (opts: PoolOptions & { name?: string }): Pool2D => new Pool2D('avg', opts),
};
