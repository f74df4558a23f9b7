import { cond } from '../cond.js';
import { SymflowError } from '../errors.js';
import { initializers } from '../initializers.js';
import { add, div, mul } from '../ops/binary.js';
import { mean, square, sub } from '../ops/math.js';
import { reshape } from '../ops/reshape.js';
import { sqrt } from '../ops/unary.js';
import { movingMoments } from '../moments.js';
import { learningPhase } from '../random.js';
import { shapeString, type Tensor, type Variable } from '../tensor.js';
import { BaseLayer } from './base.js';

/** Options of `nn.batchNorm`. */
export interface BatchNormOptions {
  /** In [0, 1]: moving = moving·momentum + batch·(1 − momentum). Default 0.99 (Keras'). */
  momentum?: number;
  /** Added to the variance before the square root; a positive number. Default 1e-3 (Keras'). */
  epsilon?: number;
  /** The feature axis (default −1, the last); statistics are taken over all the others. */
  axis?: number;
  /** The layer's name (made unique; its variables are `<name>/gamma`, `/beta`, `/moving_mean`, `/moving_variance`). Default 'batchNorm'. */
  name?: string;
}

function checkEpsilon(who: string, epsilon: unknown): number {
  if (typeof epsilon !== 'number' || !(epsilon > 0) || !Number.isFinite(epsilon)) throw new SymflowError(who, `epsilon must be a positive number, got ${String(epsilon)}`);
  return epsilon;
}

function checkAxisOf(who: string, x: Tensor, axis: number): number {
  if (!Number.isInteger(axis) || axis < -x.rank || axis >= x.rank) throw new SymflowError(who, `axis ${axis} is out of range for x of rank ${x.rank} (x is ${shapeString(x.shape)})`);
  return axis < 0 ? axis + x.rank : axis;
}

/**
 * Batch normalisation. While training (the learning phase): x normalised with the batch's mean and biased
 * variance over every axis but `axis`, then `gamma·x̂ + beta`; each call declares the updates
 * `moving_mean ← moving_mean·momentum + mean·(1 − momentum)` (and the same for `moving_variance`), as
 * `movingMoments` (pooled over the mini-batches under `accumulate`). Otherwise:
 * normalised with the moving statistics. The switch is a `cond` on `learningPhase()`, folded when a function is
 * compiled (an inference function computes no batch statistics). Pass `updates` to `compile`.
 */
export class BatchNorm extends BaseLayer {
  /** The scale, ones at first, one per feature; undefined until the first call. */
  gamma?: Variable;
  /** The offset, zeros at first, one per feature; undefined until the first call. */
  beta?: Variable;
  /** `moving_mean`, zeros at first (not trainable); undefined until the first call. */
  movingMean?: Variable;
  /** `moving_variance`, ones at first (not trainable); undefined until the first call. */
  movingVariance?: Variable;
  /** The moving statistics' momentum (default 0.99). */
  readonly momentum: number;
  /** Added to the variance before the square root (default 1e-3). */
  readonly epsilon: number;
  /** The feature axis as given (default −1). */
  readonly axis: number;
  /** @param opts momentum, epsilon, axis and name */
  constructor(opts: BatchNormOptions = {}) {
    super('batchNorm', opts.name);
    this.momentum = opts.momentum ?? 0.99;
    if (typeof this.momentum !== 'number' || !(this.momentum >= 0 && this.momentum <= 1)) throw new SymflowError(this.who, `momentum must be in [0, 1], got ${String(opts.momentum)}`);
    this.epsilon = checkEpsilon(this.who, opts.epsilon ?? 1e-3);
    this.axis = opts.axis ?? -1;
  }
  protected check([x]: readonly Tensor[]): void {
    this.checkFloat('x', x!);
    if (x!.rank < 1) throw new SymflowError(this.who, `x needs rank >= 1, x is ${shapeString(x!.shape)}`);
    const a = checkAxisOf(this.who, x!, this.axis);
    this.staticDim('x', x!, a, 'feature dimension');
    this.checkSame('x', x!, a, this.gamma?.shape[0] as number | undefined, 'feature dimension');
  }
  /** Makes `gamma`, `beta` and the moving statistics, sized from x's feature dimension. */
  protected build([x]: readonly Tensor[]): void {
    const c = x!.shape[checkAxisOf(this.who, x!, this.axis)] as number;
    this.gamma = this.addWeight('gamma', initializers.ones([c]));
    this.beta = this.addWeight('beta', initializers.zeros([c]));
    this.movingMean = this.addWeight('moving_mean', initializers.zeros([c]), { trainable: false });
    this.movingVariance = this.addWeight('moving_variance', initializers.ones([c]), { trainable: false });
  }
  /** Declares this call's moving-statistics update and returns the `cond` on the learning phase. */
  protected call([x]: readonly Tensor[]): Tensor {
    const a = checkAxisOf(this.who, x!, this.axis);
    const c = x!.shape[a] as number;
    const axes = x!.shape.map((_, i) => i).filter((i) => i !== a);
    const bshape = x!.shape.map((_, i) => (i === a ? c : 1));
    const b = (t: Tensor) => (x!.rank === 1 || a === x!.rank - 1 ? t : reshape(t, bshape));
    const norm = (m: Tensor, v: Tensor) => add(mul(div(sub(x!, m), sqrt(add(v, this.epsilon))), b(this.gamma!)), b(this.beta!));
    const batchMean = mean(x!, axes, true);
    const batchVar = mean(square(sub(x!, batchMean)), axes, true);
    // Declared as moments, so that under accumulate(…) the mini-batches' statistics are pooled (see movingMoments).
    this.ownUpdates.push(movingMoments(this.movingMean!, this.movingVariance!, x!, axes, { momentum: this.momentum }));
    return cond(learningPhase(), () => norm(batchMean, batchVar), () => norm(b(this.movingMean!), b(this.movingVariance!)));
  }
}

/** Options of `nn.layerNorm`. */
export interface LayerNormOptions {
  /** Added to the variance before the square root; a positive number. Default 1e-3 (Keras'). */
  epsilon?: number;
  /** The axis or axes normalised over (default −1, the last); `gamma` and `beta` have their sizes. */
  axis?: number | readonly number[];
  /** The layer's name (made unique; its variables are `<name>/gamma`, `<name>/beta`). Default 'layerNorm'. */
  name?: string;
}

/** Layer normalisation: x normalised with its mean and biased variance over `axis`, then `gamma·x̂ + beta`. */
export class LayerNorm extends BaseLayer {
  /** The scale, ones at first, shaped as the normalised axes; undefined until the first call. */
  gamma?: Variable;
  /** The offset, zeros at first, shaped as the normalised axes; undefined until the first call. */
  beta?: Variable;
  /** Added to the variance before the square root (default 1e-3). */
  readonly epsilon: number;
  /** @param opts epsilon, axis and name */
  constructor(readonly opts: LayerNormOptions = {}) {
    super('layerNorm', opts.name);
    this.epsilon = checkEpsilon(this.who, opts.epsilon ?? 1e-3);
  }
  private axesOf(x: Tensor): number[] {
    const list = Array.isArray(this.opts.axis) ? this.opts.axis : [this.opts.axis ?? -1];
    const axes = [...new Set(list.map((a: number) => checkAxisOf(this.who, x, a)))].sort((p, q) => p - q);
    if (axes.length === 0) throw new SymflowError(this.who, 'axis must name at least one axis');
    return axes;
  }
  protected check([x]: readonly Tensor[]): void {
    this.checkFloat('x', x!);
    if (x!.rank < 1) throw new SymflowError(this.who, `x needs rank >= 1, x is ${shapeString(x!.shape)}`);
    const axes = this.axesOf(x!);
    axes.forEach((a) => this.staticDim('x', x!, a, 'size on a normalised axis'));
    if (this.gamma) {
      const want = axes.map((a) => x!.shape[a]);
      if (want.length !== this.gamma.rank || want.some((d, i) => d !== this.gamma!.shape[i])) {
        throw new SymflowError(this.who, `x's normalised axes have sizes ${shapeString(want)} (x is ${shapeString(x!.shape)}), but the layer was built for ${shapeString(this.gamma.shape)}`);
      }
    }
  }
  /** Makes `gamma` and `beta`, shaped as x's normalised axes. */
  protected build([x]: readonly Tensor[]): void {
    const shape = this.axesOf(x!).map((a) => x!.shape[a] as number);
    this.gamma = this.addWeight('gamma', initializers.ones(shape));
    this.beta = this.addWeight('beta', initializers.zeros(shape));
  }
  /** `gamma·(x − mean) / √(variance + epsilon) + beta`, statistics over the normalised axes. */
  protected call([x]: readonly Tensor[]): Tensor {
    const axes = this.axesOf(x!);
    const trailing = axes.every((a, i) => a === x!.rank - axes.length + i);
    const bshape = x!.shape.map((d, i) => (axes.includes(i) ? (d as number) : 1));
    const b = (t: Tensor) => (trailing ? t : reshape(t, bshape));
    const m = mean(x!, axes, true);
    const v = mean(square(sub(x!, m)), axes, true);
    return add(mul(div(sub(x!, m), sqrt(add(v, this.epsilon))), b(this.gamma!)), b(this.beta!));
  }
}
