import { type CondUpdate, makeCond, type MomentsUpdate, ownNodesOf, trace, type Update } from '../graph/cond.js';
import { lowerMoments } from '../graph/moments.js';
import { asTensor } from '../graph/convert.js';
import { SymflowError } from '../graph/errors.js';
import { addN } from '../graph/ops/identity.js';
import { mul } from '../graph/ops/binary.js';
import { broadcastLike } from '../graph/ops/broadcast.js';
import { equal, less, logicalAnd } from '../graph/ops/compare.js';
import { fillLikeOp } from '../graph/ops/fill.js';
import { sum } from '../graph/ops/reduce.js';
import { abs } from '../graph/ops/unary.js';
import { makeNode } from '../graph/registry.js';
import { shapesCompatible } from '../graph/shapes.js';
import { scalarConstant } from '../graph/sources.js';
import { isTensor, isVariable, shapeString, type Tensor, type Variable } from '../graph/tensor.js';

/**
 * Lowers an update list to one new value per variable. A `cond` of updates becomes one lazy cond node whose
 * outputs are the new values (a variable that only one branch assigns keeps its value in the other), so the
 * executor has a single mechanism for laziness. Two assignments of one variable are an error.
 */
export function lowerUpdates(updates: readonly Update[]): Map<Variable, Tensor> {
  return lowerGuarded(updates).values;
}

/**
 * `lowerUpdates`, and with `finite` a bool scalar that is true when every new float value the run would apply is
 * finite, and so is every tensor in `finite` (false also when a sum of finite values overflows: see `allFinite`). Only the values of the branches taken are looked at: each cond
 * carries its branches' verdicts as one more output, so a guard adds no work to an untaken branch.
 */
export function lowerGuarded(updates: readonly Update[], finite?: readonly Tensor[]): { values: Map<Variable, Tensor>; ok?: Tensor } {
  const values = new Map<Variable, Tensor>();
  const guard = finite === undefined ? undefined : newGuard();
  updates.forEach((u, i) => addUpdate(values, u, `updates[${i}]`, guard));
  return guard === undefined ? { values } : { values, ok: verdict(values, guard, finite) };
}

/**
 * What a guarded update list collects while it is lowered: the verdicts of the conds of updates lowered in it, and
 * the variables whose new value is such a cond's output (covered by that cond's verdict, in its taken branch).
 */
interface Guard {
  readonly oks: Tensor[];
  readonly covered: Set<Variable>;
}
const newGuard = (): Guard => ({ oks: [], covered: new Set() });

/** One list's verdict: its own new values (not passed through, not covered by a cond), `extra`, and its conds'. */
function verdict(values: ReadonlyMap<Variable, Tensor>, guard: Guard, extra: readonly Tensor[] = []): Tensor {
  const direct = [...values].filter(([v, t]) => t !== v && !guard.covered.has(v)).map(([, t]) => t);
  const flags = [allFinite([...extra, ...direct]), ...guard.oks];
  const TRUE = scalarConstant(1, 'bool');
  const real = flags.filter((f) => f !== TRUE);
  return real.length === 0 ? TRUE : real.reduce((a, b) => logicalAnd(a, b));
}

/**
 * True when every element of every float tensor is finite — or when a sum overflows: one sum per tensor and one
 * over the sums, which is finite when every element is, unless it overflows (|sum| > 3.4e38). No cond, so nothing
 * but the sums runs in the hot path; a caller that sees `false` tells the two apart with `exactlyFinite` (the
 * training step does: an overflowing sum of finite values is applied after all).
 */
export function allFinite(tensors: readonly Tensor[]): Tensor {
  const floats = [...new Set(tensors)].filter((t) => t.dtype === 'float32');
  if (floats.length === 0) return scalarConstant(1, 'bool');
  const total = addN(floats.map((t) => (t.rank === 0 ? t : sum(t))));
  return less(abs(total), Infinity);
}

/** True when every element is finite, checked element by element (for diagnostics and overflowing sums). */
export function exactlyFinite(tensors: readonly Tensor[]): Tensor {
  const floats = tensors.filter((t) => t.dtype === 'float32');
  if (floats.length === 0) return scalarConstant(1, 'bool');
  return equal(addN(floats.map((t) => (t.rank === 0 ? mul(t, 0) : sum(mul(t, 0))))), 0);
}

function addUpdate(out: Map<Variable, Tensor>, u: Update, where: string, guard?: Guard): void {
  if ((u as MomentsUpdate)?.kind === 'moments') {
    lowerMoments(u as MomentsUpdate).forEach((p, i) => addUpdate(out, p, `${where}.moments[${i}]`, guard));
    return;
  }
  if ((u as CondUpdate)?.kind === 'condUpdate') {
    const c = u as CondUpdate;
    const built = ownNodesOf(c);
    const sides = [c.then, c.else].map((list, side) => {
      const map = new Map<Variable, Tensor>();
      const inner = guard ? newGuard() : undefined;
      // What lowering the branch builds (a broadcast scalar, its conds, its verdict) belongs to the branch too.
      const lowered = trace(() => {
        list.forEach((x, i) => addUpdate(map, x, `${where}.${side === 0 ? 'then' : 'else'}[${i}]`, inner));
        // This branch's verdict, an output of the same cond, so it is computed only when the branch is taken.
        return inner ? verdict(map, inner) : undefined;
      });
      return { map, ok: lowered.result, own: (t: Tensor) => built[side]!(t) || lowered.own(t) };
    });
    const [thenMap, elseMap] = [sides[0]!.map, sides[1]!.map];
    const vars = [...new Set([...thenMap.keys(), ...elseMap.keys()])];
    if (vars.length === 0) return;
    for (const v of vars) if (out.has(v)) throw conflict(v, where);
    const thenOuts = vars.map((v) => thenMap.get(v) ?? v), elseOuts = vars.map((v) => elseMap.get(v) ?? v);
    if (guard) {
      thenOuts.push(sides[0]!.ok!);
      elseOuts.push(sides[1]!.ok!);
    }
    const news = makeCond(c.pred, thenOuts, elseOuts, sides[0]!.own, sides[1]!.own);
    vars.forEach((v, i) => {
      out.set(v, news[i]!);
      guard?.covered.add(v);
    });
    if (guard) guard.oks.push(news[vars.length]!);
    return;
  }
  if (!Array.isArray(u) || u.length !== 2) throw new SymflowError('session.function', `${where} must be a [variable, newValue] pair or a cond of updates`);
  const [v, value] = u as [unknown, unknown];
  if (!isVariable(v)) {
    throw new SymflowError('session.function', `${where}: only variables can be updated, got ${isTensor(v) ? String(v) : typeof v}`);
  }
  let x = typeof value === 'number' && v.rank > 0
    ? makeNode(fillLikeOp, [v], { value, dtype: v.dtype })
    : asTensor('session.function', `${where} value`, value as Tensor | number, v.dtype);
  // A scalar assigned to a larger variable broadcasts, so `[acc, 0]` resets a whole accumulator.
  if (x.rank === 0 && v.rank > 0) x = broadcastLike(x, v);
  if (x.dtype !== v.dtype) throw new SymflowError('session.function', `${where}: variable '${v.name}' is ${v.dtype}, new value is ${x.dtype}`);
  if (!shapesCompatible(x.shape, v.shape)) {
    throw new SymflowError('session.function', `${where}: variable '${v.name}' is ${shapeString(v.shape)}, new value is ${shapeString(x.shape)}`);
  }
  if (out.has(v)) throw conflict(v, where);
  out.set(v, x);
}

function conflict(v: Variable, where: string): SymflowError {
  return new SymflowError('session.function', `variable '${v.name}' is updated twice (again at ${where}); one function may assign a variable once`);
}
