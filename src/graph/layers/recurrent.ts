import { SymflowError } from '../errors.js';
import { initializers } from '../initializers.js';
import { add, mul } from '../ops/binary.js';
import { concat } from '../ops/concat.js';
import { matMul } from '../ops/matMul.js';
import { sub } from '../ops/math.js';
import { expandDims, squeeze } from '../ops/reshape.js';
import { pad, slice } from '../ops/slice.js';
import { sigmoid, tanh } from '../ops/unary.js';
import { shapeString, type Tensor, type Variable } from '../tensor.js';
import { BaseLayer, checkPositiveInt, seedFor } from './base.js';

/** Options of `nn.lstm` (and, with `resetAfter`, `nn.gru`). */
export interface RecurrentOptions {
  /** Return the whole sequence of outputs [batch, T, units] (default: the last, [batch, units]). */
  returnSequences?: boolean;
  /** Seeds the kernels (Glorot uniform; the recurrent kernel orthogonal, as Keras). Default: a random seed. */
  seed?: number;
  /** The layer's name (made unique; its variables are `<name>/kernel`, `/recurrent_kernel`, `/bias`). Default 'lstm' or 'gru'. */
  name?: string;
}

/** Options of `nn.gru`. */
export interface GruOptions extends RecurrentOptions {
  /** Keras' default true: the reset gate is applied after the recurrent product, with a separate recurrent bias. */
  resetAfter?: boolean;
}

/** The columns [from, from + n) of a [batch, k] (or [k]) tensor. */
function cols(x: Tensor, from: number, n: number): Tensor {
  return x.rank === 1 ? slice(x, [from], [n]) : slice(x, [0, from], [-1, n]);
}

/** The common part of the recurrent layers: a [batch, T, features] input with known T and features. */
abstract class Recurrent extends BaseLayer {
  /** The input kernel [features, gates·units], Glorot uniform; undefined until the first call. */
  kernel?: Variable;
  /** The recurrent kernel [units, gates·units], orthogonal; undefined until the first call. */
  recurrentKernel?: Variable;
  /** The bias (see the layer for its shape and first value); undefined until the first call. */
  bias?: Variable;
  /**
   * @param kind the layer kind (default name)
   * @param units the state size (a positive integer)
   * @param opts returnSequences, seed, name
   */
  constructor(kind: string, readonly units: number, readonly opts: RecurrentOptions) {
    super(kind, opts.name);
    checkPositiveInt(this.who, 'units', units);
  }
  protected check([x]: readonly Tensor[]): void {
    this.checkFloat('x', x!);
    if (x!.rank !== 3) throw new SymflowError(this.who, `x must be [batch, timesteps, features] (rank 3), x is ${shapeString(x!.shape)}`);
    this.staticDim('x', x!, 1, 'number of timesteps (the sequence is unrolled)');
    if (x!.shape[1] === 0) throw new SymflowError(this.who, `x has no timesteps, x is ${shapeString(x!.shape)}`);
    this.staticDim('x', x!, 2, 'feature size');
    this.checkSame('x', x!, 2, this.kernel?.shape[0] as number | undefined, 'feature size');
  }
  /** One step from the input projection `xw` [batch, gates·units] and the state (undefined at t = 0). */
  protected abstract step(xw: Tensor, state: Tensor[] | undefined): Tensor[];
  /** The bias added to the input projection `x·kernel` of all timesteps at once (here all of `bias`). */
  protected inputBias(): Tensor | undefined {
    return this.bias;
  }
  /** Unrolls the recurrence over the timesteps: the last output [batch, units], or all of them [batch, T, units] with `returnSequences`. */
  protected call([x]: readonly Tensor[]): Tensor {
    const steps = x!.shape[1] as number;
    const b = this.inputBias();
    const xwAll = b ? add(matMul(x!, this.kernel!), b) : matMul(x!, this.kernel!); // [batch, T, gates·units]
    const width = xwAll.shape[2] as number;
    const outs: Tensor[] = [];
    let state: Tensor[] | undefined;
    for (let t = 0; t < steps; t++) {
      const xw = squeeze(slice(xwAll, [0, t, 0], [-1, 1, width]), [1]);
      state = this.step(xw, state);
      outs.push(state[0]!);
    }
    return this.opts.returnSequences ? concat(outs.map((h) => expandDims(h, 1)), 1) : outs[outs.length - 1]!;
  }
}

/**
 * Keras' LSTM, unrolled: gates in Keras' order i, f, c, o — `z = x·kernel + h·recurrent_kernel + bias`,
 * `c ← σ(f)·c + σ(i)·tanh(c̃)`, `h = σ(o)·tanh(c)`, from zero states. Variables `kernel` [features, 4u],
 * `recurrent_kernel` [u, 4u], `bias` [4u] (the forget gate's part starts at 1, Keras' `unit_forget_bias`).
 * The recurrent kernel starts orthogonal, as in Keras.
 */
export class Lstm extends Recurrent {
  /**
   * @param units the state size (a positive integer)
   * @param opts returnSequences, seed, name
   */
  constructor(units: number, opts: RecurrentOptions = {}) {
    super('lstm', units, opts);
  }
  /** Makes `kernel` [features, 4u], `recurrent_kernel` [u, 4u] and `bias` [4u] (forget part 1, the rest 0). */
  protected build([x]: readonly Tensor[]): void {
    const u = this.units, f = x!.shape[2] as number;
    this.kernel = this.addWeight('kernel', initializers.glorotUniform([f, 4 * u], { seed: seedFor(this.opts.seed, 0) }));
    this.recurrentKernel = this.addWeight('recurrent_kernel', initializers.orthogonal([u, 4 * u], { seed: seedFor(this.opts.seed, 1) }));
    const b = new Float32Array(4 * u);
    b.fill(1, u, 2 * u);
    this.bias = this.addWeight('bias', { shape: [4 * u], data: b });
  }
  protected step(xw: Tensor, state: Tensor[] | undefined): Tensor[] {
    const u = this.units;
    const z = state ? add(xw, matMul(state[0]!, this.recurrentKernel!)) : xw;
    const i = sigmoid(cols(z, 0, u)), f = sigmoid(cols(z, u, u)), g = tanh(cols(z, 2 * u, u)), o = sigmoid(cols(z, 3 * u, u));
    const c = state ? add(mul(f, state[1]!), mul(i, g)) : mul(i, g);
    return [mul(o, tanh(c)), c];
  }
}

/**
 * Keras' GRU, unrolled: gates in Keras' order z, r, h; `h ← z·h + (1 − z)·h̃`, from a zero state. With
 * `resetAfter` (Keras' default): `h̃ = tanh(x·W_h + b_h + r·(h·U_h + b'_h))`, `bias` [2, 3u] (input and recurrent
 * rows); without: `h̃ = tanh(x·W_h + b_h + (r·h)·U_h)`, `bias` [3u].
 */
export class Gru extends Recurrent {
  /** Whether the reset gate is applied after the recurrent product (default true, Keras'). */
  readonly resetAfter: boolean;
  /**
   * @param units the state size (a positive integer)
   * @param opts resetAfter, returnSequences, seed, name
   */
  constructor(units: number, opts: GruOptions = {}) {
    super('gru', units, opts);
    this.resetAfter = opts.resetAfter ?? true;
  }
  /** Makes `kernel` [features, 3u], `recurrent_kernel` [u, 3u] and `bias` (zeros; [2, 3u] with resetAfter, else [3u]). */
  protected build([x]: readonly Tensor[]): void {
    const u = this.units, f = x!.shape[2] as number;
    this.kernel = this.addWeight('kernel', initializers.glorotUniform([f, 3 * u], { seed: seedFor(this.opts.seed, 0) }));
    this.recurrentKernel = this.addWeight('recurrent_kernel', initializers.orthogonal([u, 3 * u], { seed: seedFor(this.opts.seed, 1) }));
    this.bias = this.addWeight('bias', initializers.zeros(this.resetAfter ? [2, 3 * u] : [3 * u]));
  }
  /**
   * With resetAfter, the recurrent bias of the z and r gates is added to the input projection once (with the
   * input bias: the sum is the same), and only its h part stays in the step, where the reset gate scales it. The
   * rows are slices (a reshaped slice as the bias of a matMul + add would be fused, and TF.js wasm's fused matMul
   * reads a reshaped tensor's original rank and refuses it).
   */
  protected override inputBias(): Tensor | undefined {
    if (!this.resetAfter) return this.bias;
    const u = this.units;
    return add(slice(this.bias!, [0, 0], [1, 3 * u]), pad(slice(this.bias!, [1, 0], [1, 2 * u]), [[0, 0], [0, u]]));
  }
  protected step(xw: Tensor, state: Tensor[] | undefined): Tensor[] {
    const u = this.units;
    const hPrev = state?.[0];
    const xz = cols(xw, 0, u), xr = cols(xw, u, u), xh = cols(xw, 2 * u, u);
    let z: Tensor, hh: Tensor;
    if (this.resetAfter) {
      // With a zero state the recurrent product is 0 (its bias is in xw, and in recH below).
      const inner = hPrev ? matMul(hPrev, this.recurrentKernel!) : undefined;
      z = sigmoid(inner ? add(xz, cols(inner, 0, u)) : xz);
      const r = sigmoid(inner ? add(xr, cols(inner, u, u)) : xr);
      const recH = slice(this.bias!, [1, 2 * u], [1, u]);
      hh = tanh(add(xh, mul(r, inner ? add(cols(inner, 2 * u, u), recH) : recH)));
    } else if (hPrev) {
      const inner = matMul(hPrev, cols(this.recurrentKernel!, 0, 2 * u));
      z = sigmoid(add(xz, cols(inner, 0, u)));
      const r = sigmoid(add(xr, cols(inner, u, u)));
      hh = tanh(add(xh, matMul(mul(r, hPrev), cols(this.recurrentKernel!, 2 * u, u))));
    } else {
      z = sigmoid(xz);
      hh = tanh(xh);
    }
    const h = hPrev ? add(mul(z, hPrev), mul(sub(1, z), hh)) : mul(sub(1, z), hh);
    return [h];
  }
}
