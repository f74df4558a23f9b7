import { SymflowError } from '../errors.js';
import { initializers } from '../initializers.js';
import { add, mul } from '../ops/binary.js';
import { matMul } from '../ops/matMul.js';
import { softmax } from '../ops/nn.js';
import { reshape } from '../ops/reshape.js';
import { transpose } from '../ops/transpose.js';
import { constant } from '../sources.js';
import { shapeString, type Tensor, type Variable } from '../tensor.js';
import { BaseLayer, checkPositiveInt, seedFor } from './base.js';

/** Options of `nn.multiHeadAttention` (`numHeads` and `keyDim` are required). */
export interface MultiHeadAttentionOptions {
  /** The number of attention heads (a positive integer). */
  numHeads: number;
  /** The size of each head's query and key. */
  keyDim: number;
  /** The size of each head's value (default keyDim). */
  valueDim?: number;
  /** Each position attends to itself and earlier ones only (Keras' `use_causal_mask`). Default false. */
  causal?: boolean;
  /** Whether the four projections have biases (zeros at first). Default true. */
  useBias?: boolean;
  /** Seeds the four Glorot-uniform kernels. Default: a random seed. */
  seed?: number;
  /** The layer's name (made unique; its variables are `<name>/query/kernel`, …, `<name>/attention_output/bias`). Default 'multiHeadAttention'. */
  name?: string;
}

/**
 * Keras' MultiHeadAttention: `apply(query, value, key = value)` on [batch, T, dim] tensors. Query, key and value
 * are projected to `numHeads` heads (kernels [dim, numHeads·keyDim], flattened from Keras' [dim, numHeads,
 * keyDim]), scores are `q·kᵀ / √keyDim` (plus −1e9 where the causal mask hides a position, as Keras' masked
 * softmax), softmaxed over the keys, applied to the values, and the heads projected back to the query's dim.
 * Sequence lengths and feature sizes must be known.
 */
export class MultiHeadAttention extends BaseLayer {
  /** The number of heads. */
  readonly numHeads: number;
  /** The size of each head's query and key. */
  readonly keyDim: number;
  /** The size of each head's value (`keyDim` when not given). */
  readonly valueDim: number;
  /** Whether the causal mask is applied (default false). */
  readonly causal: boolean;
  /**
   * The projections' variables (undefined until the first call): query and key kernels [dim, numHeads·keyDim],
   * value [dim, numHeads·valueDim], output [numHeads·valueDim, query's dim]; named `query`, `key`, `value`,
   * `attention_output` as in Keras.
   */
  weights?: Record<'query' | 'key' | 'value' | 'output', {
    /** The projection's Glorot-uniform kernel. */
    kernel: Variable;
    /** Its bias, absent with `useBias: false`. */
    bias?: Variable;
  }>;
  /** @param opts numHeads, keyDim (both required), valueDim, causal, useBias, seed, name */
  constructor(readonly opts: MultiHeadAttentionOptions) {
    super('multiHeadAttention', opts?.name);
    if (opts === null || typeof opts !== 'object') throw new SymflowError(this.who, 'options {numHeads, keyDim} are required');
    this.numHeads = checkPositiveInt(this.who, 'numHeads', opts.numHeads);
    this.keyDim = checkPositiveInt(this.who, 'keyDim', opts.keyDim);
    this.valueDim = checkPositiveInt(this.who, 'valueDim', opts.valueDim ?? opts.keyDim);
    this.causal = opts.causal ?? false;
  }
  private args(xs: readonly Tensor[]): [Tensor, Tensor, Tensor] {
    if (xs.length < 1 || xs.length > 3) throw new SymflowError(this.who, `takes query, value and key (value and key optional), got ${xs.length} arguments`);
    const q = xs[0]!, v = xs[1] ?? q, k = xs[2] ?? v;
    return [q, v, k];
  }
  protected check(xs: readonly Tensor[]): void {
    const [q, v, k] = this.args(xs);
    const named: [string, Tensor][] = [['query', q], ['value', v], ['key', k]];
    for (const [n, t] of named) {
      this.checkFloat(n, t);
      if (t.rank !== 3) throw new SymflowError(this.who, `${n} must be [batch, sequence, features] (rank 3), ${n} is ${shapeString(t.shape)}`);
      this.staticDim(n, t, 1, 'sequence length');
      this.staticDim(n, t, 2, 'feature size');
    }
    if (k.shape[1] !== v.shape[1]) throw new SymflowError(this.who, `key and value sequence lengths differ: key is ${shapeString(k.shape)}, value is ${shapeString(v.shape)}`);
    const b = [q, v, k].map((t) => t.shape[0]).filter((d) => d !== null);
    if (new Set(b).size > 1) throw new SymflowError(this.who, `batch sizes differ: query is ${shapeString(q.shape)}, value is ${shapeString(v.shape)}, key is ${shapeString(k.shape)}`);
    if (this.weights) {
      for (const [n, t, w] of [['query', q, this.weights.query], ['value', v, this.weights.value], ['key', k, this.weights.key]] as const) {
        if (t.shape[2] !== w.kernel.shape[0]) throw new SymflowError(this.who, `${n} has feature size ${String(t.shape[2])} (${n} is ${shapeString(t.shape)}), but the layer was built for ${w.kernel.shape[0]}`);
      }
    }
  }
  /** Makes the four projections' kernels (and biases) from the query's, key's and value's feature sizes. */
  protected build(xs: readonly Tensor[]): void {
    const [q, v, k] = this.args(xs);
    const h = this.numHeads, useBias = this.opts.useBias !== false;
    const proj = (n: string, fin: number, fout: number, s: number) => ({
      kernel: this.addWeight(`${n}/kernel`, initializers.glorotUniform([fin, fout], { seed: seedFor(this.opts.seed, s) })),
      ...(useBias ? { bias: this.addWeight(`${n}/bias`, initializers.zeros([fout])) } : {}),
    });
    const dq = q.shape[2] as number;
    this.weights = {
      query: proj('query', dq, h * this.keyDim, 0),
      key: proj('key', k.shape[2] as number, h * this.keyDim, 1),
      value: proj('value', v.shape[2] as number, h * this.valueDim, 2),
      output: proj('attention_output', h * this.valueDim, dq, 3),
    };
  }
  /** Attention of the query [batch, Tq, dq] over the key and value: [batch, Tq, dq]. */
  protected call(xs: readonly Tensor[]): Tensor {
    const [q, v, k] = this.args(xs);
    const w = this.weights!;
    const h = this.numHeads;
    const tq = q.shape[1] as number, tv = v.shape[1] as number;
    const dense = (x: Tensor, p: { kernel: Variable; bias?: Variable }) => (p.bias ? add(matMul(x, p.kernel), p.bias) : matMul(x, p.kernel));
    // [batch, T, h·d] → [batch, h, T, d]
    const heads = (x: Tensor, t: number, d: number) => transpose(reshape(x, [-1, t, h, d]), [0, 2, 1, 3]);
    const qh = heads(mul(dense(q, w.query), 1 / Math.sqrt(this.keyDim)), tq, this.keyDim);
    const kh = heads(dense(k, w.key), tv, this.keyDim);
    const vh = heads(dense(v, w.value), tv, this.valueDim);
    let scores = matMul(qh, kh, { transposeB: true }); // [batch, h, Tq, Tv]
    if (this.causal) {
      const mask = new Float32Array(tq * tv);
      for (let i = 0; i < tq; i++) for (let j = 0; j < tv; j++) mask[i * tv + j] = j <= i ? 0 : -1e9;
      scores = add(scores, constant({ shape: [tq, tv], data: mask }, { name: 'causal_mask' }));
    }
    const out = matMul(softmax(scores, -1), vh); // [batch, h, Tq, valueDim]
    const merged = reshape(transpose(out, [0, 2, 1, 3]), [-1, tq, h * this.valueDim]);
    return dense(merged, w.output);
  }
}
