import { type CondUpdate, makeCondGroup, type Update } from '../graph/cond.js';
import { asTensor } from '../graph/convert.js';
import { SymflowError } from '../graph/errors.js';
import { broadcastLike } from '../graph/ops/broadcast.js';
import { fillLikeOp } from '../graph/ops/fill.js';
import { makeNode } from '../graph/registry.js';
import { shapesCompatible } from '../graph/shapes.js';
import { getCurrentScope, isTensor, isVariable, shapeString, type Tensor, type Variable } from '../graph/tensor.js';

/**
 * Lowers an update list to one new value per variable. A `cond` of updates becomes one lazy cond group whose
 * outputs are the new values (a variable that only one branch assigns keeps its value in the other), so the
 * executor has a single mechanism for laziness. Two assignments of one variable are an error.
 */
export function lowerUpdates(updates: readonly Update[]): Map<Variable, Tensor> {
  const out = new Map<Variable, Tensor>();
  updates.forEach((u, i) => addUpdate(out, u, `updates[${i}]`));
  return out;
}

function addUpdate(out: Map<Variable, Tensor>, u: Update, where: string): void {
  if ((u as CondUpdate)?.kind === 'condUpdate') {
    const c = u as CondUpdate;
    const thenMap = new Map<Variable, Tensor>();
    const elseMap = new Map<Variable, Tensor>();
    c.then.forEach((x, i) => addUpdate(thenMap, x, `${where}.then[${i}]`));
    c.else.forEach((x, i) => addUpdate(elseMap, x, `${where}.else[${i}]`));
    const vars = [...new Set([...thenMap.keys(), ...elseMap.keys()])];
    if (vars.length === 0) return;
    for (const v of vars) if (out.has(v)) throw conflict(v, where);
    const scope = getCurrentScope();
    const news = makeCondGroup(c.pred, vars.map((v) => thenMap.get(v) ?? v), vars.map((v) => elseMap.get(v) ?? v), scope, scope);
    vars.forEach((v, i) => out.set(v, news[i]!));
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
