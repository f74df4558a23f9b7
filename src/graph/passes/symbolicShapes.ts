import type { GraphIR, NodeIR } from '../ir.js';

/** A dimension: a known size, or a symbol standing for one unknown size (equal symbols are equal sizes). */
export type SymDim = number | string;

/**
 * Symbolic shape inference: every unknown dimension gets a symbol, propagated through the ops whose output
 * dimensions are copies of input dimensions. Two unknown batch dimensions that come from the same placeholder get
 * the same symbol, so a rewrite can prove that, say, a gradient's `sumToShape` over the batch is a no-op — which
 * the static shapes alone (`[?,256]` and `[?,256]`) cannot.
 */
export function symbolicShapes(ir: GraphIR): Map<number, SymDim[]> {
  // Union–find over symbols: ops that require equal sizes (softmaxCrossEntropy's logits and labels, addN's terms,
  // matMul's inner dimension) make their symbols one. Symbol names are deterministic (node id and axis), so the
  // inference is repeated until no new equality turns up, and a late union reaches the nodes before it.
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
      const fallback = (): SymDim[] => n.shape.map((d, i) => d ?? `${id}:${i}`);
      // A fed node is a source here (what lies upstream of it was pruned).
      const ins = fed.has(id) ? [] : n.inputs.map((i) => out.get(i)!);
      const inferred = fed.has(id) ? undefined : infer(n, ins, (axis) => `${id}:${axis}`);
      if (!fed.has(id)) for (const [a, b] of equalDims(n, ins)) changed = unify(a, b) || changed;
      // Never lose what the static shape knows.
      out.set(id, (inferred ?? fallback()).map((d, i) => find(n.shape[i] ?? d)));
    }
    if (!changed) break;
  }
  for (const [id, dims] of out) out.set(id, dims.map(find));
  return out;
}

function broadcast(a: SymDim[], b: SymDim[], unknown: (axis: number) => string): SymDim[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const x = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const y = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (x === y) return x;
    if (x === 1) return y;
    if (y === 1) return x;
    if (typeof x === 'number') return x;
    if (typeof y === 'number') return y;
    return unknown(i);
  });
}

/** Pairs of dimensions an op requires to be equal (a run with them different fails). */
function equalDims(n: NodeIR, ins: SymDim[][]): [SymDim, SymDim][] {
  const pairs: [SymDim, SymDim][] = [];
  const same = (a: SymDim[], b: SymDim[]) => { if (a.length === b.length) a.forEach((d, i) => pairs.push([d, b[i]!])); };
  if (n.op === 'softmaxCrossEntropy') same(ins[0]!, ins[1]!);
  if (n.op === 'addN') ins.slice(1).forEach((x) => same(ins[0]!, x));
  if (n.op === 'matMul') {
    const [x, y] = ins as [SymDim[], SymDim[]];
    const { transposeA: ta, transposeB: tb } = n.attrs as { transposeA: boolean; transposeB: boolean };
    pairs.push([ta ? x[x.length - 2]! : x[x.length - 1]!, tb ? y[y.length - 1]! : y[y.length - 2]!]);
  }
  return pairs;
}

const ELEMENTWISE = new Set([
  'add', 'subtract', 'mul', 'div', 'maximum', 'minimum', 'pow', 'greater', 'less', 'equal', 'notEqual', 'greaterEqual', 'lessEqual',
  'logicalAnd', 'logicalOr', 'where', 'broadcastLike',
]);
const SAME_AS_FIRST = new Set([
  'neg', 'exp', 'log', 'sqrt', 'abs', 'sign', 'sigmoid', 'tanh', 'sin', 'cos', 'floor', 'logicalNot', 'cast', 'identity', 'stopGradient',
  'fillLike', 'addN', 'customGradient',
]);

function infer(n: NodeIR, ins: SymDim[][], unknown: (axis: number) => string): SymDim[] | undefined {
  const a = n.attrs as Record<string, never>;
  if (SAME_AS_FIRST.has(n.op)) return ins[0];
  if (ELEMENTWISE.has(n.op)) return ins.reduce((p, q) => broadcast(p, q, unknown));
  switch (n.op) {
    case 'sumToShape':
    case 'reshapeLike':
      return ins[1];
    case 'matMul': {
      const [x, y] = ins as [SymDim[], SymDim[]];
      const { transposeA: ta, transposeB: tb } = n.attrs as { transposeA: boolean; transposeB: boolean };
      const m = ta ? x[x.length - 1]! : x[x.length - 2]!;
      const k = tb ? y[y.length - 2]! : y[y.length - 1]!;
      return [...broadcast(x.slice(0, -2), y.slice(0, -2), unknown), m, k];
    }
    case 'transpose':
      return (a.perm as number[]).map((p) => ins[0]![p]!);
    case 'sum':
    case 'max': {
      const axes = a.axes as number[];
      return a.keepDims ? ins[0]!.map((d, i) => (axes.includes(i) ? 1 : d)) : ins[0]!.filter((_, i) => !axes.includes(i));
    }
    case 'expandDims': {
      const s = [...ins[0]!];
      s.splice(a.axis, 0, 1);
      return s;
    }
    case 'squeeze':
      return ins[0]!.filter((_, i) => !(a.axes as number[]).includes(i));
    case 'softmaxCrossEntropy':
      return ins[0]!.slice(0, -1);
    case 'argMax':
      return ins[0]!.filter((_, i) => i !== a.axis);
    case 'oneHot':
      return [...ins[0]!, a.depth];
    case 'gather':
      return [...ins[0]!.slice(0, a.axis), ...ins[1]!, ...ins[0]!.slice(a.axis + 1)];
    default:
      return undefined;
  }
}

export function sameSymShape(a: readonly SymDim[] | undefined, b: readonly SymDim[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
}
