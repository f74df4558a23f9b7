import type { GraphIR } from '../ir.js';
import { getOp } from '../registry.js';
import { shapeCtx } from '../shapeRule.js';
import type { Dim, Tensor } from '../tensor.js';

/** A dimension: a known size, or a symbol standing for one unknown size (equal symbols are equal sizes). */
export type SymDim = number | string;

/**
 * Symbolic shape inference: every unknown dimension gets a symbol, propagated by each op's own shape rule (the one
 * its record gives, also used at build time). Two unknown batch dimensions that come from the same placeholder get
 * the same symbol, so a rewrite can prove that, say, a gradient's `sumToShape` over the batch is a no-op — which
 * the static shapes alone (`[?,256]` and `[?,256]`) cannot.
 *
 * ```ts
 * const shapes = symbolicShapes(toIR([loss], []).ir); // node id → dims, e.g. ['1:0', 256]
 * ```
 * @param ir the graph @returns each node's dims
 */
export function symbolicShapes(ir: GraphIR): Map<number, SymDim[]> {
  // Union–find over symbols: dims a rule reports equal (`ctx.equal`: matMul's inner dimension, addN's terms) make
  // their symbols one. Symbol names are deterministic (node id and axis), so the inference is repeated until no
  // new equality turns up, and a late union reaches the nodes before it.
  const parent = new Map<string, SymDim>();
  const find = (d: SymDim): SymDim => {
    while (typeof d === 'string' && parent.has(d)) d = parent.get(d)!;
    return d;
  };
  const unify = (a: SymDim, b: SymDim): boolean => {
    const [x, y] = [find(a), find(b)];
    if (x === y) return false;
    if (typeof x === 'string') parent.set(x, y);
    else if (typeof y === 'string') parent.set(y, x);
    else return false;
    return true;
  };
  const ids = Object.keys(ir.nodes).map(Number).sort((a, b) => a - b);
  const fed = new Set(ir.feeds);
  let out = new Map<number, SymDim[]>();
  for (let pass = 0; pass < 4; pass++) {
    out = new Map();
    let changed = false;
    for (const id of ids) {
      const n = ir.nodes[id]!;
      // A fed node is a source here (what lies upstream of it was pruned).
      const inferred = fed.has(id) ? undefined : ruleShape(ir, id, out, (a, b) => { changed = unify(a, b) || changed; });
      // Never lose what the static shape knows; an unknown the rule left unnamed gets a fresh symbol.
      out.set(id, n.shape.map((d, i) => find(d ?? inferred?.[i] ?? `${id}:${i}`)));
    }
    if (!changed) break;
  }
  for (const [id, dims] of out) out.set(id, dims.map(find));
  return out;
}

/**
 * Runs node `id`'s shape rule on its inputs' symbolic dims. Returns the dims it gives (`undefined` at an axis the
 * rule could not name), or `undefined` if the rule refused these inputs. Equalities go to `onEqual`.
 */
function ruleShape(ir: GraphIR, id: number, dims: ReadonlyMap<number, SymDim[]>, onEqual: (a: SymDim, b: SymDim) => void): (SymDim | undefined)[] | undefined {
  const n = ir.nodes[id]!;
  const def = getOp(n.op);
  if (def === undefined) return undefined;
  const symbols = new Set<SymDim>();
  // What a rule reads of its inputs: shape (with symbols for unknown dims), dtype, name and rank.
  const inputs = n.inputs.map((i) => {
    const shape = dims.get(i)!;
    shape.forEach((d) => symbols.add(d));
    return { shape, dtype: ir.nodes[i]!.dtype, name: ir.nodes[i]!.name, rank: shape.length } as unknown as Tensor;
  });
  const pairs: [SymDim, SymDim][] = [];
  const ctx = shapeCtx(true, (a: Dim | SymDim, b: Dim | SymDim) => { if (a !== null && b !== null) pairs.push([a, b]); });
  let shape: readonly unknown[];
  try {
    shape = def.infer(inputs, n.attrs, ctx).shape;
  } catch {
    return undefined; // e.g. a rule that checks its inputs are real Tensors: the static shape stands
  }
  if (shape.length !== n.shape.length) return undefined;
  for (const [a, b] of pairs) onEqual(a, b);
  // A size, or a symbol copied from an input; anything else (null, arithmetic on a symbol) is an unknown.
  return shape.map((d) => ((typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) || (typeof d === 'string' && symbols.has(d)) ? d as SymDim : undefined));
}

export function sameSymShape(a: readonly SymDim[] | undefined, b: readonly SymDim[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
}
