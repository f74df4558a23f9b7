/**
 * Layer objects (issue 12 §3): a small, Keras-like set of layers that are made once and called on tensors.
 *
 * A layer's name is taken when it is made (`dense`, `dense_1`, … — unique in the current name space, with the
 * current `nameScope` prefix), its variables are made on its first call, sized from that call's input, named
 * `<layer>/kernel` etc., so names are deterministic inside `graph(…)`. Calling a layer again shares its
 * variables (the gradients of both calls add up). `variables` lists its trainable variables,
 * `nonTrainableVariables` the rest (a batch norm's moving statistics), `updates` the `[variable, newValue]` model
 * state updates of its calls, for `compile(…, {updates: model.updates})`.
 */
import type { Update } from '../cond.js';
import { SymflowError } from '../errors.js';
import type { Value } from '../hostValue.js';
import { layerScope, uniqueName } from '../names.js';
import { variable } from '../sources.js';
import { type Dim, type InitSpec, isTensor, shapeString, type Tensor, type Variable } from '../tensor.js';

/** A layer object: made once, called with `apply`; calls share its variables. */
export interface Layer {
  /** The layer's unique name (its variables are `<name>/kernel`, …). */
  readonly name: string;
  /** Its trainable variables (empty until its first call). */
  readonly variables: readonly Variable[];
  /** Its other variables (a batch norm's moving statistics). */
  readonly nonTrainableVariables: readonly Variable[];
  /** The model state updates of its calls so far, for `compile(…, {updates})`. */
  readonly updates: readonly Update[];
  /** Calls the layer: the first call makes its variables. */
  apply(x: Tensor, ...rest: Tensor[]): Tensor;
}

/** The shared machinery: the name, the variables made on first call, the updates of the calls. */
export abstract class BaseLayer implements Layer {
  readonly name: string;
  /** What errors name: `dense 'encoder/dense'`. */
  protected readonly who: string;
  private readonly trainable: Variable[] = [];
  private readonly frozen: Variable[] = [];
  /** The model state updates its calls made; a subclass pushes to it in `call` (`updates` returns a copy). */
  protected readonly ownUpdates: Update[] = [];
  private built = false;

  /**
   * @param kind the layer kind (`'dense'`, `'lstm'`, …): the default name and what errors name
   * @param name the requested name, made unique in the current name space; `kind` when undefined
   */
  constructor(readonly kind: string, name: string | undefined) {
    if (name !== undefined && (typeof name !== 'string' || name.length === 0)) throw new SymflowError(kind, `name must be a non-empty string, got ${JSON.stringify(name)}`);
    this.name = uniqueName(name ?? kind);
    this.who = `${kind} '${this.name}'`;
  }

  get variables(): readonly Variable[] {
    return [...this.trainable];
  }

  get nonTrainableVariables(): readonly Variable[] {
    return [...this.frozen];
  }

  get updates(): readonly Update[] {
    return [...this.ownUpdates];
  }

  apply(...xs: Tensor[]): Tensor {
    xs.forEach((x, i) => {
      if (!isTensor(x)) throw new SymflowError(this.who, `argument ${i} must be a Tensor, got ${x === null ? 'null' : typeof x}`);
    });
    return layerScope(this.name, () => {
      if (!this.built) {
        this.check(xs);
        this.build(xs);
        this.built = true;
      } else {
        this.check(xs);
      }
      return this.call(xs);
    });
  }

  /** Makes a variable `<layer>/<local>` (inside the layer's scope). */
  protected addWeight(local: string, init: InitSpec | Value, opts: { trainable?: boolean; shape?: readonly number[] } = {}): Variable {
    const trainable = opts.trainable ?? true;
    const v = variable(init, { name: local, trainable, ...(opts.shape ? { shape: opts.shape } : {}) });
    (trainable ? this.trainable : this.frozen).push(v);
    return v;
  }

  /** Refuses bad input (every call; the first call before `build`). */
  protected abstract check(xs: readonly Tensor[]): void;
  /** Makes the variables (with `addWeight`), sized from the first call's arguments, after `check` passed. */
  protected abstract build(xs: readonly Tensor[]): void;
  /** Builds the layer's output from its arguments (called inside the layer's name scope, after `check`). */
  protected abstract call(xs: readonly Tensor[]): Tensor;

  /** A static dimension of argument `arg`, or a clear error. */
  protected staticDim(arg: string, x: Tensor, axis: number, what: string): number {
    const a = axis < 0 ? axis + x.rank : axis;
    const d: Dim | undefined = x.shape[a];
    if (d === null || d === undefined) throw new SymflowError(this.who, `${arg} needs a known ${what} (axis ${a}), ${arg} is ${shapeString(x.shape)}`);
    return d;
  }

  /** Refuses an argument `arg` that is not float32, naming the layer, the argument and its shape. */
  protected checkFloat(arg: string, x: Tensor): void {
    if (x.dtype !== 'float32') throw new SymflowError(this.who, `${arg} must be float32, got ${x.dtype} (${arg} is ${shapeString(x.shape)})`);
  }

  /** The input's last dimension must stay what the first call made the variables for. */
  protected checkSame(arg: string, x: Tensor, axis: number, built: number | undefined, what: string): void {
    const a = axis < 0 ? axis + x.rank : axis;
    if (built !== undefined && x.shape[a] !== built) {
      throw new SymflowError(this.who, `${arg} has ${what} ${String(x.shape[a])} (${arg} is ${shapeString(x.shape)}), but the layer was built for ${built}`);
    }
  }
}

export function checkPositiveInt(who: string, arg: string, v: unknown): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new SymflowError(who, `${arg} must be a positive integer, got ${String(v)}`);
  return v as number;
}

/** Per-variable seeds from one layer seed: deterministic when a seed is given, random otherwise. */
export function seedFor(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : (seed + 7919 * k) % 2147483647;
}
