import { asTensor, type TensorLike } from './convert.js';
import { SymflowError } from './errors.js';
import { defineOp, makeNode } from './registry.js';
import { mergeShapes, shapesCompatible } from './shapes.js';
import { isTensor, isVariable, nextNodeId, shapeString, type Tensor, type Variable } from './tensor.js';
import { toposort } from './walk.js';

/** `[variable, newValue]`: one assignment of a session function. */
export type UpdatePair = readonly [Variable, TensorLike];

/** Updates that depend on a predicate: only the taken branch's assignments are computed and applied. */
export interface CondUpdate {
  /** Tells update kinds apart: `'condUpdate'`. */
  readonly kind: 'condUpdate';
  /** A bool scalar, read before the run assigns anything. */
  readonly pred: Tensor;
  /** The updates applied when `pred` is true. */
  readonly then: readonly Update[];
  /** The updates applied when `pred` is false. */
  readonly else: readonly Update[];
}

/**
 * Moving averages of a batch's mean and (biased) variance over `axes` — a batch norm's moving statistics, made by
 * `movingMoments`. Alone it is the two pairs `mean ← m·mean + (1 − m)·batchMean` and the same for the variance;
 * under `accumulate(inner, {steps: N})` the N mini-batches' moments are pooled first, so the statistics move once
 * per outer step, as one batch of all their rows would move them.
 */
export interface MomentsUpdate {
  /** Tells update kinds apart: `'moments'`. */
  readonly kind: 'moments';
  /** The moving mean variable, shaped like x with `axes` removed. */
  readonly mean: Variable;
  /** The moving (biased) variance variable, same shape. */
  readonly variance: Variable;
  /** The batch whose statistics move them. */
  readonly x: Tensor;
  /** The axes of x the statistics are taken over. */
  readonly axes: readonly number[];
  /** m in [0, 1]: the weight of the old value. */
  readonly momentum: number;
}

/** One entry of a session function's (or a step's) updates: an assignment, a conditional group, or moving moments. */
export type Update = UpdatePair | CondUpdate | MomentsUpdate;

type Branch = Tensor | number | readonly (Tensor | number)[] | readonly Update[];

/**
 * One lazy conditional, as ONE node (JAX's `cond_p`, TF's `If`). Its inputs are
 * `[pred, ...captures, ...thenOutputs, ...elseOutputs]`: the tensors the branches capture from outside, then the
 * outputs of each branch. A branch is the subgraph between its outputs and the captures — what its function built
 * (and what `substitute` rebuilt of it) — so it holds no reference to anything else, and every placeholder or
 * variable it reads is a capture. The node's own value is the branch decision (a bool scalar); its outputs are
 * read through `condOutput` nodes. A session evaluates `pred`, then only what the taken branch needs.
 */
export const condOp = defineOp<{ captures: number; outputs: number }>({
  name: 'cond',
  attrs: { captures: 'int', outputs: 'int' },
  infer: (inputs, { captures, outputs }) => {
    if (captures < 0 || outputs < 1 || inputs.length !== 1 + captures + 2 * outputs) {
      throw new SymflowError('cond', `needs [pred, ${captures} captures, ${outputs} then outputs, ${outputs} else outputs] as inputs, got ${inputs.length}`);
    }
    checkPred(inputs[0]);
    const { then: t, else: e, captures: caps } = branchesOf(inputs, { captures, outputs });
    t.forEach((a, i) => {
      const b = e[i]!;
      if (a.dtype !== b.dtype) throw new SymflowError('cond', `branches return different dtypes: then is ${a.dtype}, else is ${b.dtype}`);
      if (!shapesCompatible(a.shape, b.shape)) {
        throw new SymflowError('cond', `branches return different shapes: then is ${shapeString(a.shape)}, else is ${shapeString(b.shape)}`);
      }
    });
    checkClosed(caps, [...t, ...e]);
    return { shape: [], dtype: 'bool' };
  },
});

/** Output `index` of a cond node: the then branch's when the predicate is true, else the else branch's. */
export const condOutputOp = defineOp<{ index: number }>({
  name: 'condOutput',
  attrs: { index: 'int' },
  infer: ([c], { index }) => {
    if (c?.op !== 'cond') throw new SymflowError('condOutput', `input must be a cond node, got ${c === undefined ? 'none' : `'${c.name}' (${c.op})`}`);
    const { then: t, else: e } = branchesOf(c.inputs, c.attrs as { captures: number; outputs: number });
    if (!Number.isInteger(index) || index < 0 || index >= t.length) {
      throw new SymflowError('condOutput', `index ${index} is outside [0, ${t.length}) for cond '${c.name}'`);
    }
    return { shape: mergeShapes(t[index]!.shape, e[index]!.shape), dtype: t[index]!.dtype };
  },
});

/**
 * The structural ops of `cond`: the plan runs them (a cond step), no backend has a kernel for them. The op list
 * and the backend tables read this list.
 */
export const condOps = [condOp, condOutputOp] as const;

/** A cond node's parts, read from its inputs. */
export function branchesOf(inputs: readonly Tensor[], attrs: { captures: number; outputs: number }): {
  pred: Tensor; captures: readonly Tensor[]; then: readonly Tensor[]; else: readonly Tensor[];
} {
  const k = attrs.captures, m = attrs.outputs;
  return { pred: inputs[0]!, captures: inputs.slice(1, 1 + k), then: inputs.slice(1 + k, 1 + k + m), else: inputs.slice(1 + k + m) };
}

/** The same, for a cond node's IR (inputs are ids). */
export function branchIds(inputs: readonly number[], attrs: { captures: number; outputs: number }): {
  pred: number; captures: readonly number[]; then: readonly number[]; else: readonly number[];
} {
  const k = attrs.captures, m = attrs.outputs;
  return { pred: inputs[0]!, captures: inputs.slice(1, 1 + k), then: inputs.slice(1 + k, 1 + k + m), else: inputs.slice(1 + k + m) };
}

/** Placeholders and variables: read by a branch, they are always its captures. */
export const isRead = (t: Tensor) => t.op === 'placeholder' || t.op === 'variable';

/** Every placeholder and variable a branch reads must be a capture (else a gradient would miss it). */
function checkClosed(captures: readonly Tensor[], outs: readonly Tensor[]): void {
  const caps = new Set(captures);
  for (const t of toposort(outs, (n) => n.inputs, (n) => !caps.has(n))) {
    if (!caps.has(t) && isRead(t)) throw new SymflowError('cond', `a branch reads ${t.op} '${t.name}', which is not among its captures`);
  }
}

/**
 * What a branch captures: the tensors its outputs reach that are not its own (`own`), walking no further than
 * those. A branch output that is not its own (a branch returning an outer tensor) is a capture itself.
 */
export function capturesOf(outs: readonly Tensor[], own: (t: Tensor) => boolean): Tensor[] {
  return toposort(outs, (t) => t.inputs, own).filter((t) => !own(t));
}

/** The nodes a synchronous function built: ids in [from, to), sources excepted (they are always captured). */
export function builtBetween(from: number, to: number): (t: Tensor) => boolean {
  return (t) => t.id >= from && t.id < to && !isRead(t);
}

/** Runs `fn` and returns what it returned and a test for the nodes it built. */
export function trace<T>(fn: () => T): { result: T; own: (t: Tensor) => boolean } {
  const from = nextNodeId();
  const result = fn();
  return { result, own: builtBetween(from, nextNodeId()) };
}

/**
 * Builds one cond node and its outputs from traced branches: `ownThen`/`ownElse` tell each branch's own nodes
 * from what it captures. Returns one `condOutput` per output, in order.
 */
export function makeCond(
  pred: Tensor, thenOuts: readonly Tensor[], elseOuts: readonly Tensor[], ownThen: (t: Tensor) => boolean, ownElse: (t: Tensor) => boolean,
): Tensor[] {
  const captures = [...new Set([...capturesOf(thenOuts, ownThen), ...capturesOf(elseOuts, ownElse)])].sort((a, b) => a.id - b.id);
  return condFrom(pred, captures, thenOuts, elseOuts);
}

/** A cond node over given captures and branch outputs, and its outputs. */
export function condFrom(pred: Tensor, captures: readonly Tensor[], thenOuts: readonly Tensor[], elseOuts: readonly Tensor[]): Tensor[] {
  // The node is named as TF names its op (`if`); its outputs, what users hold, are `cond`, `cond_1`, ….
  const node = condNode(pred, captures, thenOuts, elseOuts, 'if');
  return thenOuts.map((_, index) => makeNode(condOutputOp, [node], { index }, 'cond'));
}

/** The cond node alone (its outputs are made by `condFrom`, or rebuilt by `substitute`). */
export function condNode(pred: Tensor, captures: readonly Tensor[], thenOuts: readonly Tensor[], elseOuts: readonly Tensor[], name?: string): Tensor {
  return makeNode(condOp, [pred, ...captures, ...thenOuts, ...elseOuts], { captures: captures.length, outputs: thenOuts.length }, name);
}

function checkPred(pred: unknown): asserts pred is Tensor {
  if (!isTensor(pred)) throw new SymflowError('cond', `pred must be a scalar bool Tensor, got ${typeof pred}`);
  if (pred.dtype !== 'bool' || pred.rank !== 0) {
    throw new SymflowError('cond', `pred must be a scalar bool tensor, got ${pred.dtype} ${shapeString(pred.shape)} (${pred.name})`);
  }
}

function isUpdateList(b: unknown): b is readonly Update[] {
  return Array.isArray(b) && b.every((u) => (Array.isArray(u) && u.length === 2 && isVariable(u[0])) || (u as CondUpdate)?.kind === 'condUpdate' || (u as MomentsUpdate)?.kind === 'moments');
}

/** What each branch function of a cond of updates built (the lowering of the updates adds its own nodes to it). */
const tracedUpdates = new WeakMap<CondUpdate, readonly [(t: Tensor) => boolean, (t: Tensor) => boolean]>();

/**
 * Tests for the nodes each branch function of a cond of updates built; for a `CondUpdate` written by hand, every
 * node but placeholders and variables.
 */
export function ownNodesOf(c: CondUpdate): readonly [(t: Tensor) => boolean, (t: Tensor) => boolean] {
  const all = (t: Tensor) => !isRead(t);
  return tracedUpdates.get(c) ?? [all, all];
}

/**
 * A lazy conditional: `pred` is evaluated first, then only the taken branch. The branches are functions that
 * build either tensors (one, or a list of the same length in both) or update lists. What a branch function
 * builds is its subgraph; the tensors it uses from outside are its captures.
 *
 * ```ts
 * const safe = cond(greater(x, 0), () => log(x), () => 0);         // log never sees x <= 0
 * const updates = cond(isLast, () => [[w, newW], [acc, zeros]], () => [[acc, add(acc, g)]]);
 * ```
 * @param pred a scalar bool tensor
 * @param thenFn builds the value (or updates) used when `pred` is true
 * @param elseFn builds the value (or updates) used when `pred` is false
 * @returns the output tensor(s), or a `CondUpdate` when the branches return updates
 */
export function cond(pred: Tensor, thenFn: () => readonly Update[], elseFn: () => readonly Update[]): CondUpdate;
export function cond(pred: Tensor, thenFn: () => Tensor | number, elseFn: () => Tensor | number): Tensor;
export function cond(pred: Tensor, thenFn: () => readonly (Tensor | number)[], elseFn: () => readonly (Tensor | number)[]): Tensor[];
export function cond(pred: Tensor, thenFn: () => Branch, elseFn: () => Branch): Tensor | Tensor[] | CondUpdate {
  checkPred(pred);
  const t = trace(thenFn);
  const e = trace(elseFn);
  const thenR = t.result, elseR = e.result;
  const thenUpd = isUpdateList(thenR), elseUpd = isUpdateList(elseR);
  if (thenUpd && elseUpd) {
    const update: CondUpdate = Object.freeze({ kind: 'condUpdate', pred, then: thenR, else: elseR });
    tracedUpdates.set(update, [t.own, e.own]);
    return update;
  }
  if ((thenUpd && thenR.length > 0) || (elseUpd && elseR.length > 0)) {
    throw new SymflowError('cond', 'one branch returns updates and the other tensors');
  }
  const single = !Array.isArray(thenR);
  const thenList = (single ? [thenR] : thenR) as readonly (Tensor | number)[];
  const elseList = (Array.isArray(elseR) ? elseR : [elseR]) as readonly (Tensor | number)[];
  if (thenList.length !== elseList.length || single !== !Array.isArray(elseR)) {
    throw new SymflowError('cond', `branches return different numbers of outputs: then ${thenList.length}, else ${elseList.length}`);
  }
  // Numbers become constants inside their branch (built now, so counted as the branch's own).
  const thenOuts: Tensor[] = [], elseOuts: Tensor[] = [];
  const lifted = trace(() => thenList.forEach((a, i) => {
    const b = elseList[i]!;
    const like = isTensor(a) ? a.dtype : isTensor(b) ? b.dtype : 'float32';
    thenOuts.push(asTensor('cond', `then[${i}]`, a as TensorLike, like));
    elseOuts.push(asTensor('cond', `else[${i}]`, b as TensorLike, like));
  }));
  const outs = makeCond(pred, thenOuts, elseOuts, (x) => t.own(x) || lifted.own(x), (x) => e.own(x) || lifted.own(x));
  return single ? outs[0]! : outs;
}
