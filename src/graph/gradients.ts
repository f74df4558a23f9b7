import { condGroup, cond } from './cond.js';
import { SymflowError } from './errors.js';
import { getOp } from './registry.js';
import { shapesCompatible } from './shapes.js';
import { isFullyKnown, isTensor, scopeWithin, shapeString, sizeOf, type Tensor } from './tensor.js';
import { makeConstant, scalarConstant } from './sources.js';
import { onesLike, zerosLike } from './ops/fill.js';
import { addN } from './ops/identity.js';
import { toposort } from './walk.js';

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
  report?: { who: string; xs: string; hint: string };
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
  const doneGroups = new Set<number>();
  const order = [...between].sort((a, b) => b.id - a.id);
  for (const node of order) {
    const list = pending.get(node);
    if (list === undefined && node.op !== 'cond') continue;
    if (list !== undefined) {
      const dy = addN(list);
      pending.delete(node);
      done.set(node, dy);
      if (cut && xSet.has(node)) continue;
      if (node.op !== 'cond') {
        const thunks = getOp(node.op)?.grad?.(dy, node, node.inputs, node.attrs) ?? [];
        node.inputs.forEach((input, i) => {
          const thunk = thunks[i];
          if (thunk !== undefined && between.has(input) && input.dtype === 'float32') push(input, thunk());
        });
        continue;
      }
    }
    const group = node.attrs['group'] as number;
    if (doneGroups.has(group)) continue;
    doneGroups.add(group);
    condGrad(condGroup(node), done, pending, between, push);
  }
  return xs.map((x) => done.get(x) ?? (pending.has(x) ? addN(pending.get(x)!) : undefined));
}

/**
 * The gradient of a cond group is itself a cond: each branch differentiates its own subgraph with respect to
 * the tensors it captures from outside, so the backward pass stays as lazy as the forward one (an untaken
 * branch's gradient never runs, and cannot turn a NaN into the result).
 */
function condGrad(
  members: readonly Tensor[],
  done: Map<Tensor, Tensor>,
  pending: Map<Tensor, Tensor[]>,
  between: Set<Tensor>,
  push: (t: Tensor, g: Tensor) => void,
): void {
  const seeded = members.filter((m) => done.has(m) || pending.has(m));
  if (seeded.length === 0) return;
  const dys = seeded.map((m) => {
    const dy = done.get(m) ?? addN(pending.get(m)!);
    pending.delete(m);
    done.set(m, dy);
    return dy;
  });
  const { thenScope, elseScope } = seeded[0]!.attrs as { thenScope: number; elseScope: number };
  const thenOuts = seeded.map((m) => m.inputs[1]!);
  const elseOuts = seeded.map((m) => m.inputs[2]!);
  const captures = [...new Set([...branchCaptures(thenOuts, thenScope), ...branchCaptures(elseOuts, elseScope)])]
    .filter((c) => between.has(c) && c.dtype === 'float32')
    .sort((a, b) => a.id - b.id);
  if (captures.length === 0) return;
  const branch = (outs: Tensor[]) => () => backprop(outs, dys, captures, true).map((g, i) => g ?? zerosLike(captures[i]!));
  const grads = cond(seeded[0]!.inputs[0]!, branch(thenOuts), branch(elseOuts));
  captures.forEach((c, i) => push(c, grads[i]!));
}

/** Tensors from outside `scope` that the branch outputs depend on (a branch output from outside is one itself). */
function branchCaptures(outs: readonly Tensor[], scope: number): Tensor[] {
  const inside = (t: Tensor) => scopeWithin(t.scope, scope);
  return toposort(outs, (t) => t.inputs, inside).filter((t) => !inside(t));
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
