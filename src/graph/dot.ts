import { branchesOf, isRead } from './cond.js';
import { SymflowError } from './errors.js';
import { type Attrs, type DType, type Shape, shapeString, type Tensor } from './tensor.js';
import { toposort } from './walk.js';

/**
 * Graph pictures: a computation as a Graphviz DOT string. One DOT node per op, labelled with its op, name, dtype
 * and shape; sources styled apart (variables as amber boxes, placeholders as blue input houses, constants grey);
 * an edge per input, labelled with the tensor's shape; and each branch of a `cond` as a cluster holding the nodes
 * only that branch builds (the captures enter it from outside; a cond inside a branch is a cluster inside it).
 * Pure text, the same for the same graph: nodes are numbered by their place in the walk, never by process ids.
 */

/** Options of `toDot` and `planToDot`. */
export interface DotOptions {
  /** Refuse a graph with more nodes than this (default 500): Graphviz lays out a thousand-node graph slowly and unreadably. */
  readonly maxNodes?: number;
  /** Layout direction: top to bottom (default) or left to right. */
  readonly rankdir?: 'TB' | 'LR';
  /** Label each edge with its tensor's shape (default true). */
  readonly edgeLabels?: boolean;
  /** A title above the picture. */
  readonly title?: string;
  /**
   * Assignments to draw (`toDot` only): each new value joins the picture, with an `assign 'name'` box fed by it
   * — what a `session.function`'s update pairs do.
   */
  readonly updates?: readonly (readonly [Tensor, Tensor])[];
}

/** What a picture needs of a node: a `Tensor` or a `NodeIR`. */
export interface DotNode {
  readonly op: string;
  readonly name: string;
  readonly attrs: Attrs;
  readonly shape: Shape;
  readonly dtype: DType;
}

const DEFAULT_MAX_NODES = 500;

/** @internal A DOT double-quoted string: backslashes and quotes escaped, lines joined by Graphviz's centred `\n`. */
export function quote(...lines: readonly string[]): string {
  // Names hold no control characters (names.ts), but a picture must never break on one: they become spaces.
  // eslint-disable-next-line no-control-regex
  const esc = (s: string) => s.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return `"${lines.map(esc).join('\\n')}"`;
}

/** @internal A short value for a small constant (`0.5`, `[1,2,3]`), or undefined for a big one. */
export function constantValue(node: DotNode): string | undefined {
  const v = node.attrs['value'];
  if (!(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array) || v.length > 4) return undefined;
  const items = Array.from(v, (x) => (node.dtype === 'bool' ? String(x === 1) : String(Number(x.toPrecision(6)))));
  return node.shape.length === 0 ? items[0] : `[${items.join(',')}]`;
}

/** @internal The label lines of a node: `op 'name'` and `dtype [shape]` (a small constant shows its value). */
export function labelLines(node: DotNode, prefix = ''): string[] {
  const value = node.op === 'constant' ? constantValue(node) : undefined;
  return [`${prefix}${node.op} '${node.name}'`, `${node.dtype} ${shapeString(node.shape)}${value === undefined ? '' : ` = ${value}`}`];
}

/** @internal The DOT attributes that style a node by its op (sources apart, the cond node a diamond). */
export function styleOf(op: string, trainable = true): string {
  switch (op) {
    case 'variable':
      return `shape=box, style="filled${trainable ? ',bold' : ',dashed'}", fillcolor="#fde8c4", color="#b9770e"`;
    case 'placeholder':
      return 'shape=invhouse, style=filled, fillcolor="#d4e6f9", color="#2e6da4"';
    case 'constant':
      return 'shape=box, style="filled,rounded", fillcolor="#eeeeee", color="#999999", fontsize=9';
    case 'random':
      return 'shape=box, style="filled,rounded", fillcolor="#e8daef", color="#7d3c98"';
    case 'cond':
      return 'shape=diamond, style=filled, fillcolor="#f9e79f", color="#b7950b"';
    case 'condOutput':
      return 'shape=ellipse, style=filled, fillcolor="#fcf3cf", color="#b7950b"';
    default:
      return 'shape=box, style="rounded,filled", fillcolor="#ffffff"';
  }
}

/** @internal The opening lines of every picture: layout and fonts. */
export function header(opts: DotOptions): string[] {
  const title = opts.title === undefined ? [] : [`  label=${quote(opts.title)};`, '  labelloc=t;', '  fontsize=14;'];
  return [
    'digraph symflow {',
    `  graph [rankdir=${opts.rankdir === 'LR' ? 'LR' : 'TB'}, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.35];`,
    '  node [fontname="Helvetica", fontsize=10, margin="0.08,0.03", height=0.3];',
    '  edge [fontname="Helvetica", fontsize=8, color="#555555", fontcolor="#555555", arrowsize=0.6];',
    ...title,
  ];
}

/** @internal Refuses a picture of more than `maxNodes` nodes, saying how to get one. */
export function checkSize(who: string, count: number, opts: DotOptions, what = 'graph'): void {
  const max = opts.maxNodes ?? DEFAULT_MAX_NODES;
  if (!(Number.isInteger(max) && max >= 1)) throw new SymflowError(who, `maxNodes must be a positive integer, got ${String(max)}`);
  if (count > max) {
    throw new SymflowError(who, `the ${what} has ${count} nodes, more than maxNodes (${max}): draw fewer outputs (a part of the graph) or pass a larger { maxNodes }`);
  }
}

/** A branch of a cond: its own nodes and where it sits (inside the cluster of the branch holding the cond). */
interface Branch {
  readonly cond: Tensor;
  readonly side: 'then' | 'else';
  readonly parent: Branch | undefined;
  readonly depth: number;
  readonly captures: readonly Tensor[];
  readonly members: Tensor[];
  readonly children: Branch[];
}

/**
 * Which branch each node belongs to. Conds are visited outermost first (an inner cond is an input, through its
 * outputs, of the outer one, so it is older: ids descending), so a cond's own place is known before its branches.
 * A node both branches of one cond reach belongs to neither; one that two unrelated branches reach sits where
 * their clusters meet.
 */
function branchesIn(nodes: readonly Tensor[]): { root: Branch[]; placeOf: Map<Tensor, Branch | undefined> } {
  const inBranches = new Map<Tensor, Branch[]>();
  const placeOf = new Map<Tensor, Branch | undefined>();
  const root: Branch[] = [];
  const place = (n: Tensor): Branch | undefined => {
    const all = inBranches.get(n) ?? [];
    const cands = all.filter((b) => !all.some((o) => o !== b && o.cond === b.cond));
    if (cands.length === 0) return undefined;
    const deepest = cands.reduce((a, b) => (b.depth > a.depth ? b : a));
    const ancestors = new Set<Branch>();
    for (let b: Branch | undefined = deepest; b !== undefined; b = b.parent) ancestors.add(b);
    if (cands.every((b) => ancestors.has(b))) return deepest;
    // Not one chain: the deepest branch that holds every candidate.
    const holds = (outer: Branch, b: Branch) => { for (let x: Branch | undefined = b; x; x = x.parent) if (x === outer) return true; return false; };
    for (let b = deepest.parent; b !== undefined; b = b.parent) if (cands.every((c) => holds(b!, c))) return b;
    return undefined;
  };
  const conds = nodes.filter((n) => n.op === 'cond').sort((a, b) => b.id - a.id);
  for (const c of conds) {
    const parent = place(c);
    placeOf.set(c, parent);
    const parts = branchesOf(c.inputs, c.attrs as { captures: number; outputs: number });
    const caps = new Set(parts.captures);
    for (const side of ['then', 'else'] as const) {
      const members = toposort(parts[side], (n) => n.inputs, (n) => !caps.has(n)).filter((n) => !caps.has(n) && !isRead(n));
      const branch: Branch = { cond: c, side, parent, depth: (parent?.depth ?? 0) + 1, captures: parts.captures, members: [], children: [] };
      (parent?.children ?? root).push(branch);
      for (const m of members) inBranches.set(m, [...(inBranches.get(m) ?? []), branch]);
    }
  }
  for (const n of nodes) {
    const b = n.op === 'cond' ? placeOf.get(n) : place(n);
    placeOf.set(n, b);
    b?.members.push(n);
  }
  return { root, placeOf };
}

/** @internal `  a -> b [label="[?,3]", color="…"];` */
export function edgeLine(from: string, to: string, label: string, color?: string, extra?: string): string {
  const attrs = [...(label === '' ? [] : [`label=${quote(label)}`]), ...(color === undefined ? [] : [`color="${color}"`]), ...(extra === undefined ? [] : [extra])];
  return `  ${from} -> ${to}${attrs.length === 0 ? '' : ` [${attrs.join(', ')}]`};`;
}

/** @internal `'x', 'w' and 3 more`. */
export function nameList(names: readonly string[], max = 4): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * A computation as a Graphviz DOT string: every node the outputs reach, sources styled apart, edges labelled
 * with shapes, each cond's branches as clusters (nested conds nested), the outputs drawn with a double border.
 * The same graph gives the same string; render it with `toSvg`, or `dot -Tsvg`.
 *
 * ```ts
 * const x = placeholder([null, 4], { name: 'x' });
 * const y = cond(greater(sum(x), 0), () => relu(x), () => neg(x));
 * writeFileSync('model.dot', toDot(y));
 * ```
 * @param outputs the tensor(s) to draw, with everything they depend on
 * @param opts maxNodes (default 500; a bigger graph is refused), rankdir, edgeLabels, title
 * @returns the DOT text
 */
export function toDot(outputs: Tensor | readonly Tensor[], opts: DotOptions = {}): string {
  const outs: readonly Tensor[] = Array.isArray(outputs) ? outputs : [outputs as Tensor];
  outs.forEach((t, i) => { if (typeof (t as Tensor | undefined)?.op !== 'string' || !Array.isArray((t as Tensor).inputs)) throw new SymflowError('toDot', `outputs[${i}] is not a Tensor`); });
  const updates = opts.updates ?? [];
  if (!Array.isArray(updates)) throw new SymflowError('toDot', 'updates must be an array of [variable, newValue] pairs');
  updates.forEach((u, i) => {
    if (!Array.isArray(u) || u.length !== 2 || (u[0] as Tensor | undefined)?.op !== 'variable' || typeof (u[1] as Tensor | undefined)?.op !== 'string') {
      throw new SymflowError('toDot', `updates[${i}] is not a [variable, newValue tensor] pair`);
    }
  });
  if (outs.length === 0 && updates.length === 0) throw new SymflowError('toDot', 'needs at least one output tensor (or update)');
  const nodes = toposort<Tensor>([...outs, ...updates.flatMap(([v, t]) => [v, t])], (n) => n.inputs);
  checkSize('toDot', nodes.length, opts);
  const idOf = new Map(nodes.map((n, i) => [n, `n${i}`]));
  const outputSet = new Set(outs);
  const { root, placeOf } = branchesIn(nodes);
  const edgeLabels = opts.edgeLabels ?? true;

  const nodeLine = (n: Tensor, indent: string) => {
    const trainable = (n as Tensor & { trainable?: boolean }).trainable ?? true;
    const border = outputSet.has(n) ? ', peripheries=2' : '';
    return `${indent}${idOf.get(n)} [label=${quote(...labelLines(n))}, ${styleOf(n.op, trainable)}${border}];`;
  };
  const lines = header(opts);
  for (const n of nodes) if (placeOf.get(n) === undefined) lines.push(nodeLine(n, '  '));
  let clusterCount = 0;
  const emit = (b: Branch, indent: string) => {
    const id = `cluster_${clusterCount++}_${b.side}`;
    const captured = b.captures.length === 0 ? [] : [`captures ${nameList(b.captures.map((c) => c.name))}`];
    lines.push(`${indent}subgraph ${id} {`);
    lines.push(`${indent}  label=${quote(`${b.side} of '${b.cond.name}'`, ...captured)};`);
    lines.push(`${indent}  style="rounded,dashed"; color="${b.side === 'then' ? '#1e8449' : '#a93226'}"; fontcolor="${b.side === 'then' ? '#1e8449' : '#a93226'}";`);
    for (const m of b.members) lines.push(nodeLine(m, `${indent}  `));
    // Graphviz draws no empty cluster: a branch that only passes captures through gets a marker.
    if (b.members.length === 0 && b.children.length === 0) lines.push(`${indent}  ${id}_empty [label="(passes captures through)", shape=plaintext, fontsize=9];`);
    for (const child of b.children) emit(child, `${indent}  `);
    lines.push(`${indent}}`);
  };
  // Clusters in the order of their conds in the walk (then before else): deterministic.
  const order = new Map(nodes.map((n, i) => [n, i]));
  const sortBranches = (bs: Branch[]) => bs.sort((a, b) => order.get(a.cond)! - order.get(b.cond)! || (a.side === 'then' ? -1 : 1));
  const sortAll = (bs: Branch[]) => { sortBranches(bs); for (const b of bs) sortAll(b.children); };
  sortAll(root);
  for (const b of root) emit(b, '  ');

  for (const n of nodes) {
    const to = idOf.get(n)!;
    const parts = n.op === 'cond' ? branchesOf(n.inputs, n.attrs as { captures: number; outputs: number }) : undefined;
    n.inputs.forEach((input, i) => {
      // A cond output reads the cond node (whose value is the decision): the edge names the output instead.
      const shape = !edgeLabels ? '' : n.op === 'condOutput' ? `out ${String(n.attrs['index'])}` : shapeString(input.shape);
      let role = '';
      if (parts !== undefined) {
        // The captures reach the branch nodes that read them; the cond node itself takes its predicate and outputs.
        if (i >= 1 && i <= parts.captures.length) return;
        role = i === 0 ? 'pred' : i <= parts.captures.length + parts.then.length ? `then[${i - 1 - parts.captures.length}]` : `else[${i - 1 - parts.captures.length - parts.then.length}]`;
      }
      const label = [role, shape].filter((s) => s !== '').join(' ');
      const color = role.startsWith('then') ? '#1e8449' : role.startsWith('else') ? '#a93226' : undefined;
      lines.push(edgeLine(idOf.get(input)!, to, label, color));
    });
  }
  // An assignment is a sink beside the new value (an edge back up to the variable would cross the whole picture).
  updates.forEach(([v, value], i) => {
    lines.push(`  a${i} [label=${quote(`assign '${v.name}'`)}, shape=box, style="filled,dashed", fillcolor="#fde8c4", color="#b9770e"];`);
    lines.push(edgeLine(idOf.get(value)!, `a${i}`, edgeLabels ? shapeString(value.shape) : '', '#b9770e'));
  });
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
