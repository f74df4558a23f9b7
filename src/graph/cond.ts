import { asTensor, type TensorLike } from './convert.js';
import { SymflowError } from './errors.js';
import { defineOp, makeNode } from './registry.js';
import { mergeShapes, shapesCompatible } from './shapes.js';
import { isTensor, isVariable, scopeHandle, shapeString, type Tensor, type Variable, withNewScope } from './tensor.js';

/** `[variable, newValue]`: one assignment of a session function. */
export type UpdatePair = readonly [Variable, TensorLike];

/** Updates that depend on a predicate: only the taken branch's assignments are computed and applied. */
export interface CondUpdate {
  readonly kind: 'condUpdate';
  readonly pred: Tensor;
  readonly then: readonly Update[];
  readonly else: readonly Update[];
}

export type Update = UpdatePair | CondUpdate;

type Branch = Tensor | number | readonly (Tensor | number)[] | readonly Update[];

/**
 * One output of a lazy conditional. All outputs of one `cond` call share a `group`; a session evaluates `pred`
 * once per group and then only the taken branch's subgraph. `thenScope`/`elseScope` tag the nodes each branch
 * built, which the gradient uses to differentiate each branch inside a cond of its own.
 */
export const condOp = defineOp<{ group: number; index: number; thenScope: number; elseScope: number }>({
  name: 'cond',
  attrs: { group: 'int', index: 'int', thenScope: 'int', elseScope: 'int' },
  infer: ([pred, t, e]) => {
    checkPred(pred!);
    if (t!.dtype !== e!.dtype) throw new SymflowError('cond', `branches return different dtypes: then is ${t!.dtype}, else is ${e!.dtype}`);
    if (!shapesCompatible(t!.shape, e!.shape)) {
      throw new SymflowError('cond', `branches return different shapes: then is ${shapeString(t!.shape)}, else is ${shapeString(e!.shape)}`);
    }
    return { shape: mergeShapes(t!.shape, e!.shape), dtype: t!.dtype };
  },
});

/**
 * Each cond node's group — all outputs of its `cond` call, in order — and its branch scopes, kept beside the nodes:
 * a group lives as long as one of its nodes, and nothing process-wide holds a graph.
 */
const groups = new WeakMap<Tensor, { readonly members: readonly Tensor[]; readonly scopes: readonly object[] }>();
let nextGroup = 1;

/** All outputs of the cond group `node` belongs to, in order. */
export function condGroup(node: Tensor): readonly Tensor[] {
  return groups.get(node)?.members ?? [node];
}

function checkPred(pred: unknown): asserts pred is Tensor {
  if (!isTensor(pred)) throw new SymflowError('cond', `pred must be a scalar bool Tensor, got ${typeof pred}`);
  if (pred.dtype !== 'bool' || pred.rank !== 0) {
    throw new SymflowError('cond', `pred must be a scalar bool tensor, got ${pred.dtype} ${shapeString(pred.shape)} (${pred.name})`);
  }
}

function isUpdateList(b: unknown): b is readonly Update[] {
  return Array.isArray(b) && b.every((u) => (Array.isArray(u) && u.length === 2 && isVariable(u[0])) || (u as CondUpdate)?.kind === 'condUpdate');
}

/** Builds the output nodes of one cond group from already traced branch outputs. */
export function makeCondGroup(pred: Tensor, thenOuts: readonly Tensor[], elseOuts: readonly Tensor[], thenScope: number, elseScope: number): Tensor[] {
  const group = nextGroup++;
  const outs = thenOuts.map((t, index) => makeNode(condOp, [pred, t, elseOuts[index]!], { group, index, thenScope, elseScope }));
  registerCondGroup(outs);
  return outs;
}

/** Records the nodes of one group (also a group read back from JSON), in order. */
export function registerCondGroup(outs: readonly Tensor[]): void {
  const members = Object.freeze([...outs]);
  const { thenScope, elseScope } = members[0]!.attrs as { thenScope: number; elseScope: number };
  const entry = Object.freeze({ members, scopes: Object.freeze([scopeHandle(thenScope), scopeHandle(elseScope)]) });
  for (const m of members) groups.set(m, entry);
}
export function newCondGroupId(): number {
  return nextGroup++;
}

/**
 * A lazy conditional: `pred` is evaluated first, then only the taken branch. The branches are functions that
 * build either tensors (one, or a list of the same length in both) or update lists.
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
  const t = withNewScope(thenFn);
  const e = withNewScope(elseFn);
  const thenR = t.result, elseR = e.result;
  const thenUpd = isUpdateList(thenR), elseUpd = isUpdateList(elseR);
  if (thenUpd && elseUpd) {
    return Object.freeze({ kind: 'condUpdate', pred, then: thenR, else: elseR });
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
  const thenOuts: Tensor[] = [], elseOuts: Tensor[] = [];
  thenList.forEach((a, i) => {
    const b = elseList[i]!;
    const like = isTensor(a) ? a.dtype : isTensor(b) ? b.dtype : 'float32';
    thenOuts.push(asTensor('cond', `then[${i}]`, a as TensorLike, like));
    elseOuts.push(asTensor('cond', `else[${i}]`, b as TensorLike, like));
  });
  const outs = makeCondGroup(pred, thenOuts, elseOuts, t.scope, e.scope);
  return single ? outs[0]! : outs;
}

/**
 * The structural ops of `cond`: the plan runs them (a cond step), no backend has a kernel for them. The op list
 * and the backend tables read this list.
 */
export const condOps = [condOp] as const;
