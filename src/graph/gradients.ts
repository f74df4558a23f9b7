import { branchesOf, cond } from './cond.js';
import { SymflowError } from './errors.js';
import { getOp } from './registry.js';
import { shapesCompatible } from './shapes.js';
import { isFullyKnown, isTensor, shapeString, sizeOf, type Tensor } from './tensor.js';
import { makeConstant, scalarConstant } from './sources.js';
import { onesLike, zerosLike } from './ops/fill.js';
import { addN } from './ops/identity.js';
import { copyBetween } from './substitute.js';
import { toposort } from './walk.js';

/** Options of `gradients`. */
export interface GradientsOptions {
  /** Seeds for each y (default: ones, i.e. the gradient of sum(y)). */
  gradYs?: Tensor | readonly Tensor[];
  /** What an x that no y depends on gets: an error (default) or zeros. */
  unconnected?: 'error' | 'zero';
  /**
   * How the error for an unconnected x reads, for callers with options of their own (`compile` has no
   * `unconnected`): the function it names, what the xs are called there, and the hint that replaces
   * "pass {unconnected: 'zero'} for zeros". Default: `{who: 'gradients', xs: 'xs', hint: …}`.
   */
  report?: {
    /** The function the error names (`'compile'`). */
    who: string;
    /** What the xs are called there (`'params'`). */
    xs: string;
    /** The hint that ends the message. */
    hint: string;
  };
}

/**
 * Symbolic reverse-mode gradients of sum(ys) with respect to each x, as new graph nodes.
 *
 * Only nodes between `xs` and `ys` are visited; contributions over several paths are summed; `stopGradient`,
 * int and bool tensors pass none. Because the result is an ordinary graph, gradients of gradients work.
 *
 * ```ts
 * const [dw, db] = gradients(loss, [w, b]);
 * const d2 = gradients(gradients(pow(x, 3), x), x); // 6x
 * ```
 * @param ys the tensor(s) to differentiate (float32)
 * @param xs the tensor(s) to differentiate with respect to
 * @returns one gradient per x, shaped like it
 */
export function gradients(ys: Tensor | readonly Tensor[], xs: Tensor, opts?: GradientsOptions): Tensor;
export function gradients(ys: Tensor | readonly Tensor[], xs: readonly Tensor[], opts?: GradientsOptions): Tensor[];
export function gradients(ys: Tensor | readonly Tensor[], xs: Tensor | readonly Tensor[], opts: GradientsOptions = {}): Tensor | Tensor[] {
  const yList = isTensor(ys) ? [ys] : [...ys];
  const xList = isTensor(xs) ? [xs] : [...xs];
  const seeds = seedGradients(yList, opts.gradYs);
  const result = backprop(yList, seeds, xList, false);
  const out = xList.map((x, i) => {
    const g = result[i];
    if (g !== undefined) return g;
    if (opts.unconnected === 'zero') return zerosLike(x);
    const why = x.dtype !== 'float32' ? ` (only float32 tensors have gradients; it is ${x.dtype})` : '';
    const { who, xs: arg, hint } = opts.report ?? { who: 'gradients', xs: 'xs', hint: "pass {unconnected: 'zero'} for zeros" };
    throw new SymflowError(who, `${arg}[${i}] '${x.name}' is not connected to ${yList.map((y) => `'${y.name}'`).join(', ')}${why}; ${hint}`);
  });
  return isTensor(xs) ? out[0]! : out;
}

function onesConstant(shape: readonly number[]): Tensor {
  if (shape.length === 0) return scalarConstant(1, 'float32');
  return makeConstant({ shape: [...shape], dtype: 'float32', data: new Float32Array(sizeOf(shape)).fill(1) });
}

function seedGradients(ys: readonly Tensor[], gradYs: GradientsOptions['gradYs']): Tensor[] {
  const given = gradYs === undefined ? undefined : isTensor(gradYs) ? [gradYs] : [...gradYs];
  if (given !== undefined && given.length !== ys.length) {
    throw new SymflowError('gradients', `gradYs has ${given.length} entries for ${ys.length} ys`);
  }
  return ys.map((y, i) => {
    if (!isTensor(y)) throw new SymflowError('gradients', `ys[${i}] is not a Tensor`);
    if (y.dtype !== 'float32') throw new SymflowError('gradients', `ys[${i}] '${y.name}' must be float32, got ${y.dtype}`);
    const g = given?.[i];
    // A fully known shape seeds with a constant, so the backward graph does not depend on y's own value.
    if (g === undefined) return isFullyKnown(y.shape) ? onesConstant(y.shape) : onesLike(y);
    if (g.dtype !== 'float32' || !shapesCompatible(g.shape, y.shape)) {
      throw new SymflowError('gradients', `gradYs[${i}] is ${g.dtype} ${shapeString(g.shape)}, y '${y.name}' is ${y.dtype} ${shapeString(y.shape)}`);
    }
    return g;
  });
}

/**
 * The reverse sweep. Node ids are creation order and inputs are always older than their users, so visiting
 * nodes by descending id is a reverse topological order. With `cut`, gradients stop at the xs (used inside a
 * cond branch, whose captured inputs are leaves there).
 */
function backprop(ys: readonly Tensor[], seeds: readonly Tensor[], xs: readonly Tensor[], cut: boolean): (Tensor | undefined)[] {
  const xSet = new Set(xs);
  const between = nodesBetween(ys, xSet, cut);
  const pending = new Map<Tensor, Tensor[]>();
  const push = (t: Tensor, g: Tensor) => {
    if (!between.has(t) || t.dtype !== 'float32') return;
    const list = pending.get(t);
    if (list) list.push(g);
    else pending.set(t, [g]);
  };
  ys.forEach((y, i) => push(y, seeds[i]!));
  const done = new Map<Tensor, Tensor>();
  // The gradients reaching each cond's outputs, by output index: its own gradient is built when the sweep gets to it.
  const condDys = new Map<Tensor, Map<number, Tensor>>();
  const order = [...between].sort((a, b) => b.id - a.id);
  for (const node of order) {
    if (node.op === 'cond') {
      const dys = condDys.get(node);
      if (dys !== undefined) condGrad(node, dys, between, push);
      continue;
    }
    const list = pending.get(node);
    if (list === undefined) continue;
    const dy = addN(list);
    pending.delete(node);
    done.set(node, dy);
    if (cut && xSet.has(node)) continue;
    if (node.op === 'condOutput') {
      const c = node.inputs[0]!;
      if (!condDys.has(c)) condDys.set(c, new Map());
      condDys.get(c)!.set(node.attrs['index'] as number, dy);
      continue;
    }
    const thunks = getOp(node.op)?.grad?.(dy, node, node.inputs, node.attrs) ?? [];
    node.inputs.forEach((input, i) => {
      const thunk = thunks[i];
      if (thunk !== undefined && between.has(input) && input.dtype === 'float32') push(input, thunk());
    });
  }
  return xs.map((x) => done.get(x) ?? (pending.has(x) ? addN(pending.get(x)!) : undefined));
}

/**
 * The gradient of a cond is itself a cond: each branch differentiates a fresh copy of its own subgraph with
 * respect to the cond's captures, so the backward pass stays as lazy as the forward one (an untaken branch's
 * gradient never runs, and cannot turn a NaN into the result), at every order of differentiation.
 */
function condGrad(node: Tensor, dys: ReadonlyMap<number, Tensor>, between: Set<Tensor>, push: (t: Tensor, g: Tensor) => void): void {
  const parts = branchesOf(node.inputs, node.attrs as { captures: number; outputs: number });
  const seeded = [...dys.keys()].sort((a, b) => a - b);
  // Only the captures the seeded outputs reach get a gradient (an x only another output uses is not connected).
  const all = new Set(parts.captures);
  const reached = new Set(toposort(seeded.flatMap((i) => [parts.then[i]!, parts.else[i]!]), (t) => t.inputs, (t) => !all.has(t)));
  const captures = parts.captures.filter((c) => reached.has(c) && between.has(c) && c.dtype === 'float32');
  if (captures.length === 0) return;
  const seeds = seeded.map((i) => dys.get(i)!);
  const branch = (outs: readonly Tensor[]) => () => {
    const copy = copyBetween(seeded.map((i) => outs[i]!), parts.captures);
    return backprop(copy, seeds, captures, true).map((g, i) => g ?? zerosLike(captures[i]!));
  };
  const grads = cond(parts.pred, branch(parts.then), branch(parts.else));
  captures.forEach((c, i) => push(c, grads[i]!));
}

/** Nodes that the ys depend on and that depend on some x (the only ones the sweep needs to visit). */
function nodesBetween(ys: readonly Tensor[], xs: Set<Tensor>, cut: boolean): Set<Tensor> {
  const reach = toposort(ys, (t) => t.inputs, cut ? (t) => !xs.has(t) : undefined);
  // Inputs come first in `reach`, so one forward pass finds every descendant of an x.
  const between = new Set<Tensor>();
  for (const t of reach) {
    if (xs.has(t) || t.inputs.some((i) => between.has(i))) between.add(t);
  }
  return between;
}
