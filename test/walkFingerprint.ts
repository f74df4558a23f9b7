// Fingerprints of what the graph walk's users build (gradient graphs, toIR, prune, variablesOf), for
// test/walk.test.ts. test/fixtures/walkExpectations.json holds the fingerprints the hand-written traversals gave
// before §5 of issue 11 (commit deefdba), made with
//   npx tsx -e "import('./test/walkFingerprint.ts').then((m) => m.writeExpectations())"
// in a checkout of that commit (with this file copied in). The four `cond …` entries and `unconnected` (a sum the copy of a branch now names `sum_k`) were made again when §3 made
// a cond one node (its inputs and attributes changed; the values of gradients through conds are held by
// test/gradients.test.ts). Everything is built inside `graph(…)`, so a fingerprint does not depend on what the
// process built before.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as sf from '../src/index.js';
import { evaluate, generateRecipe, SYMFLOW, symflowObjective } from '../fuzz/graphs.js';

export const EXPECTATIONS = new URL('./fixtures/walkExpectations.json', import.meta.url);
export const RECIPES = 120;

/**
 * Tensors as (op, name, inputs by position, attrs, shape, dtype) in a depth-first order of their own, then the
 * creation order of the nodes built here. Scalar constants are cached across graphs (sources.ts), so their ids
 * depend on what the process built before and so do the numbers in constants' names ('const_4'): the scalars are
 * left out of the creation order and constants' names are not encoded.
 */
export function encodeTensors(tensors: readonly sf.Tensor[]): string {
  const nodes = allUpstream(tensors);
  const index = new Map(nodes.map((t, i) => [t.id, i]));
  const cached = (t: sf.Tensor) => t.op === 'constant' && t.shape.length === 0;
  const created = nodes.filter((t) => !cached(t)).sort((a, b) => a.id - b.id).map((t) => index.get(t.id));
  return JSON.stringify({
    nodes: nodes.map((t) => encodeNode(t.op, t.op === 'constant' ? 'const' : t.name, t.inputs.map((i) => index.get(i.id)!), t.attrs, t.shape, t.dtype)),
    roots: tensors.map((t) => index.get(t.id)),
    created,
  });
}

/** A GraphIR: its nodes by rank of id (ids are creation order), constants as in `encodeTensors`. */
export function encodeIR(ir: sf.GraphIR): string {
  const cached = (id: number) => ir.nodes[id]!.op === 'constant' && ir.nodes[id]!.shape.length === 0;
  const ids = Object.keys(ir.nodes).map(Number);
  const rest = ids.filter((id) => !cached(id)).sort((a, b) => a - b);
  const scalars = ids.filter(cached).sort((a, b) => JSON.stringify(ir.nodes[a]!.attrs).localeCompare(JSON.stringify(ir.nodes[b]!.attrs)));
  const index = new Map([...scalars, ...rest].map((id, i) => [id, i]));
  const at = (id: number) => index.get(id) ?? 'pruned'; // a fed node keeps its inputs
  const nodes = [...scalars, ...rest].map((id) => {
    const n = ir.nodes[id]!;
    return encodeNode(n.op, n.op === 'constant' ? 'const' : n.name, n.inputs.map(at), n.attrs, n.shape, n.dtype);
  });
  return JSON.stringify({ nodes, keys: Object.keys(ir.nodes).map((k) => at(Number(k))).sort(), outputs: ir.outputs.map(at), feeds: ir.feeds.map(at) });
}

function encodeNode(op: string, name: string, inputs: readonly unknown[], attrs: object, shape: readonly unknown[], dtype: string): string {
  const encoded = JSON.stringify(attrs, (key, v: unknown) => {
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
    if (typeof v === 'function') return 'fn';
    return v;
  });
  return `${op}|${name}|${inputs.join(',')}|${encoded}|${JSON.stringify(shape)}|${dtype}`;
}

function allUpstream(tensors: readonly sf.Tensor[]): sf.Tensor[] {
  const out: sf.Tensor[] = [];
  const seen = new Set<sf.Tensor>();
  const todo = [...tensors];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    out.push(t);
    todo.push(...t.inputs);
  }
  return out;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 24);

function attempt(f: () => string): string {
  try {
    return f();
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
}

/** One fuzz graph: its first and second gradients, toIR of them, and prune with an intermediate fed. */
function recipeCase(index: number): Record<string, string> {
  return sf.graph(() => {
    const recipe = generateRecipe(7, index, 0, 0, 'first');
    const inputs = recipe.inputs.map((inp, k) => sf.placeholder(inp.shape, { name: `x${k}` }));
    const vals = evaluate(recipe, SYMFLOW, inputs);
    const y = symflowObjective(recipe, vals);
    const grads = sf.gradients(y, inputs, { unconnected: 'zero' });
    const out: Record<string, string> = { grads: hash(encodeTensors([y, ...grads])) };
    out['grad2'] = hash(attempt(() => encodeTensors(sf.gradients(sf.addN(grads.map((g) => sf.sum(sf.mul(g, g)))), inputs, { unconnected: 'zero' }))));
    const { ir } = sf.toIR([y, ...grads], inputs);
    out['toIR'] = hash(encodeIR(ir));
    const mid = vals[Math.floor(vals.length / 2)]!;
    out['prune'] = hash(encodeIR(sf.prune(sf.toIR([y, ...grads], [mid]).ir)));
    return out;
  });
}

/** Hand-made graphs with conds (gradients through branches, captures), variables and a cut at a fed tensor. */
function condCases(): Record<string, string> {
  return sf.graph(() => {
    const x = sf.placeholder([3], { name: 'x' });
    const w = sf.variable([1, 2, 3], { name: 'w' });
    const v = sf.variable([0.5, -1, 2], { name: 'v' });
    const frozen = sf.variable([1, 1, 1], { name: 'frozen', trainable: false });
    const h = sf.tanh(sf.mul(x, w));
    const p = sf.greater(sf.sum(h), 0);
    const [a, b] = sf.cond(p, () => [sf.mul(sf.exp(h), v), sf.add(w, frozen)], () => [sf.mul(h, h), sf.cond(sf.less(sf.sum(v), 1), () => sf.mul(v, 2), () => sf.neg(w))]);
    const loss = sf.add(sf.sum(a!), sf.sum(sf.mul(b!, x)));
    const out: Record<string, string> = {};
    const gs = sf.gradients(loss, [w, v, x]);
    out['cond grads'] = hash(encodeTensors([loss, ...gs]));
    out['cond grad2'] = hash(attempt(() => encodeTensors(sf.gradients(sf.sum(sf.mul(gs[0]!, gs[1]!)), [w, v]))));
    out['variablesOf'] = sf.variablesOf(loss).map((t) => t.name).join(',');
    out['variablesOf all'] = sf.variablesOf([loss, ...gs], { trainable: false }).map((t) => t.name).join(',');
    out['cond toIR'] = hash(encodeIR(sf.toIR([loss, ...gs], [x]).ir));
    out['cond prune'] = hash(encodeIR(sf.prune(sf.toIR([loss, ...gs], [x, h]).ir)));
    out['unconnected'] = attempt(() => encodeTensors(sf.gradients(sf.sum(a!), [frozen, x])));
    return out;
  });
}

export function fingerprints(): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < RECIPES; i++) for (const [k, v] of Object.entries(recipeCase(i))) out[`recipe ${i} ${k}`] = v;
  for (const [k, v] of Object.entries(condCases())) out[k] = v;
  return out;
}

export function writeExpectations(): void {
  writeFileSync(EXPECTATIONS, `${JSON.stringify(fingerprints(), null, 1)}\n`);
}
