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
  const out = new Map<number, SymDim[]>();
  let fresh = 0;
  const unknown = () => `?${fresh++}`;
  const fallback = (n: NodeIR): SymDim[] => n.shape.map((d) => d ?? unknown());
  const ids = Object.keys(ir.nodes).map(Number).sort((a, b) => a - b);
  const fed = new Set(ir.feeds);
  for (const id of ids) {
    const n = ir.nodes[id]!;
    // A fed node is a source here (what lies upstream of it was pruned).
    if (fed.has(id)) {
      out.set(id, fallback(n));
      continue;
    }
    const ins = n.inputs.map((i) => out.get(i) ?? fallback(ir.nodes[i]!));
    const inferred = infer(n, ins, unknown);
    // Never lose what the static shape knows.
    out.set(id, (inferred ?? fallback(n)).map((d, i) => n.shape[i] ?? d));
  }
  return out;
}

function broadcast(a: SymDim[], b: SymDim[], unknown: () => string): SymDim[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const x = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const y = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (x === y) return x;
    if (x === 1) return y;
    if (y === 1) return x;
    if (typeof x === 'number') return x;
    if (typeof y === 'number') return y;
    return unknown();
  });
}

const ELEMENTWISE = new Set([
  'add', 'mul', 'div', 'maximum', 'minimum', 'pow', 'greater', 'less', 'equal', 'notEqual', 'greaterEqual', 'lessEqual',
  'logicalAnd', 'logicalOr', 'where', 'broadcastLike',
]);
const SAME_AS_FIRST = new Set([
  'neg', 'exp', 'log', 'sqrt', 'abs', 'sign', 'sigmoid', 'tanh', 'floor', 'logicalNot', 'cast', 'identity', 'stopGradient',
  'fillLike', 'addN',
]);

function infer(n: NodeIR, ins: SymDim[][], unknown: () => string): SymDim[] | undefined {
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
