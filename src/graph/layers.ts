import { SymflowError } from './errors.js';
import { initializers } from './initializers.js';
import { add } from './ops/binary.js';
import { matMul } from './ops/matMul.js';
import { relu, softmax } from './ops/nn.js';
import { sigmoid, tanh } from './ops/unary.js';
import { variable } from './sources.js';
import type { Tensor, Variable } from './tensor.js';

/** The activations `layers.dense` can apply; `'linear'` (the identity) is the default, `'softmax'` is over the last axis. */
export type Activation = 'linear' | 'relu' | 'sigmoid' | 'tanh' | 'softmax';

const activations: Record<Activation, (x: Tensor) => Tensor> = { linear: (x) => x, relu, sigmoid, tanh, softmax };

/** Options of `layers.dense` and `layers.denseLayer`. */
export interface DenseOptions {
  /** Applied to `x · kernel + bias`. Default 'linear' (none). */
  activation?: Activation;
  /** Prefix of the variables' names, `<name>/kernel` and `<name>/bias` (made unique in the name space). Default 'dense'. */
  name?: string;
  /** Seeds the Glorot-uniform kernel. Default: a random seed. */
  seed?: number;
  /** Whether to add a zero-initialised bias [units]. Default true. */
  useBias?: boolean;
}

/** A dense layer's output together with the variables it created. */
export interface DenseLayer {
  /** `activation(x · kernel + bias)`, [..., units]. */
  output: Tensor;
  /** The kernel [features, units]. */
  kernel: Variable;
  /** The bias [units]; undefined with `useBias: false`. */
  bias?: Variable;
}

/**
 * Small layer helpers for examples; a Keras clone is not the goal.
 *
 * ```ts
 * const h = layers.dense(x, 256, { activation: 'relu', name: 'hidden', seed: 1 });
 * ```
 */
export const layers = {
  /**
   * `activation(x · kernel + bias)` with a Glorot-uniform kernel and a zero bias, named `name/kernel`, `name/bias`.
   * @param x input [batch, features] @param units output features @returns the output tensor
   */
  dense(x: Tensor, units: number, opts: DenseOptions = {}): Tensor {
    return layers.denseLayer(x, units, opts).output;
  },
  /** Like `dense`, but also returns the created variables. */
  denseLayer(x: Tensor, units: number, opts: DenseOptions = {}): DenseLayer {
    const features = x.shape[x.rank - 1];
    if (x.rank < 2 || features === null || features === undefined) {
      throw new SymflowError('layers.dense', `x needs rank >= 2 and a known last dimension, got ${x}`);
    }
    if (!Number.isInteger(units) || units < 1) throw new SymflowError('layers.dense', `units must be a positive integer, got ${units}`);
    const act = activations[opts.activation ?? 'linear'];
    if (act === undefined) throw new SymflowError('layers.dense', `unknown activation ${JSON.stringify(opts.activation)}`);
    const name = opts.name ?? 'dense';
    const kernel = variable(initializers.glorotUniform([features, units], { seed: opts.seed }), { name: `${name}/kernel` });
    const bias = opts.useBias === false ? undefined : variable(initializers.zeros([units]), { name: `${name}/bias` });
    const z = matMul(x, kernel);
    return { output: act(bias ? add(z, bias) : z), kernel, bias };
  },
};
