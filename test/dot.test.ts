import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accumulate, add, compile, cond, dotToSvg, exp, functionToDot, graph, greater, heun, layers, log, matMul, mean, mul, neg, placeholder, planToDot, planToSvg,
  relu, rungeKutta, Session, sgd, square, sub, sum, tableaux, toDot, toSvg, variable, type FunctionSpec, type SessionFunction, type Tensor,
} from '../src/index.js';
import { loadViz } from '../src/graph/svg.js';

/** A DOT file read back: nodes (label and attributes, with the cluster holding each), edges, clusters. */
interface ParsedDot {
  readonly nodes: Map<string, { label: string; attrs: string; cluster: string | undefined }>;
  readonly edges: { from: string; to: string; label: string; attrs: string }[];
  readonly clusters: Map<string, { label: string; parent: string | undefined }>;
}

const QUOTED = '"(?:[^"\\\\]|\\\\.)*"';
const unquote = (q: string) => q.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/** Parses what toDot and planToDot write, line by line; a line of any other form fails the test. */
function parseDot(dot: string): ParsedDot {
  const nodes: ParsedDot['nodes'] = new Map();
  const edges: ParsedDot['edges'] = [];
  const clusters: ParsedDot['clusters'] = new Map();
  const stack: string[] = [];
  const lines = dot.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  expect(lines[0]).toBe('digraph symflow {');
  expect(lines.at(-1)).toBe('}');
  for (const line of lines.slice(1, -1)) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^subgraph (cluster_\w+) \{$/))) {
      clusters.set(m[1]!, { label: '', parent: stack.at(-1) });
      stack.push(m[1]!);
    } else if (line === '}') {
      expect(stack.length, 'a } closes a cluster').toBeGreaterThan(0);
      stack.pop();
    } else if ((m = line.match(new RegExp(`^label=(${QUOTED});$`)))) {
      if (stack.length > 0) clusters.get(stack.at(-1)!)!.label = unquote(m[1]!);
    } else if ((m = line.match(new RegExp(`^(\\w+) -> (\\w+)(?: \\[(.*)\\])?;$`)))) {
      const lab = m[3]?.match(new RegExp(`label=(${QUOTED})`));
      edges.push({ from: m[1]!, to: m[2]!, label: lab ? unquote(lab[1]!) : '', attrs: m[3] ?? '' });
    } else if ((m = line.match(new RegExp(`^(\\w+) \\[label=(${QUOTED})(.*)\\];$`)))) {
      expect(nodes.has(m[1]!), `node ${m[1]} drawn once`).toBe(false);
      nodes.set(m[1]!, { label: unquote(m[2]!), attrs: m[3]!, cluster: stack.at(-1) });
    } else {
      expect(line, 'a known line form').toMatch(/^(graph|node|edge) \[.*\];$|^labelloc=t;$|^fontsize=\d+;$|^style=.*;$|^\{ rank=sink; .* \}$/);
    }
  }
  expect(stack, 'every cluster closed').toEqual([]);
  for (const e of edges) for (const end of [e.from, e.to]) expect(nodes.has(end), `edge end ${end} is a node`).toBe(true);
  return { nodes, edges, clusters };
}

/** A label's first line; a constant by its value (interned scalars keep the name of the graph that first made them). */
const head = (label: string) => (label.startsWith('constant ') ? `constant ${label.split(' = ')[1]}` : label.split('\n')[0]!);
/** `from -> to [label]`, nodes by the first line of their labels. */
const edgeList = (p: ParsedDot) => p.edges.map((e) => `${head(p.nodes.get(e.from)!.label)} -> ${head(p.nodes.get(e.to)!.label)} ${e.label}`.trim()).sort();
const idOf = (p: ParsedDot, first: string | RegExp) => {
  const ids = [...p.nodes].filter(([, n]) => (typeof first === 'string' ? head(n.label) === first : first.test(head(n.label)))).map(([id]) => id);
  expect(ids, `one node labelled ${String(first)}`).toHaveLength(1);
  return ids[0]!;
};
/** The clusters holding a node, innermost first, by label's first line. */
const clustersOf = (p: ParsedDot, id: string) => {
  const out: string[] = [];
  for (let c = p.nodes.get(id)!.cluster; c !== undefined; c = p.clusters.get(c)!.parent) out.push(head(p.clusters.get(c)!.label));
  return out;
};
/** Node labels (first lines) directly in the cluster whose label starts with `title`. */
const membersOf = (p: ParsedDot, title: string) => {
  const ids = [...p.clusters].filter(([, c]) => head(c.label) === title).map(([id]) => id);
  expect(ids, `one cluster '${title}'`).toHaveLength(1);
  return [...p.nodes.values()].filter((n) => n.cluster === ids[0]).map((n) => head(n.label)).sort();
};

describe('toDot', () => {
  it('draws a small graph: exactly its nodes, styled by kind, and its edges with shapes', () => {
    const y = graph(() => {
      const x = placeholder([null, 2], { name: 'x' });
      const w = variable([[1], [2]], { name: 'dense/kernel' });
      return relu(matMul(x, w));
    });
    const p = parseDot(toDot(y));
    expect([...p.nodes.values()].map((n) => n.label.replace(/^constant '[^']*'/, 'constant')).sort()).toEqual([
      'constant\nfloat32 [] = 0',
      "matMul 'matMul'\nfloat32 [?,1]",
      "maximum 'maximum'\nfloat32 [?,1]",
      "placeholder 'x'\nfloat32 [?,2]",
      "variable 'dense/kernel'\nfloat32 [2,1]",
    ]);
    expect(edgeList(p)).toEqual([
      "constant 0 -> maximum 'maximum' []",
      "matMul 'matMul' -> maximum 'maximum' [?,1]",
      "placeholder 'x' -> matMul 'matMul' [?,2]",
      "variable 'dense/kernel' -> matMul 'matMul' [2,1]",
    ]);
    const attrs = (first: string) => p.nodes.get(idOf(p, first))!.attrs;
    expect(attrs("variable 'dense/kernel'")).toContain('shape=box');
    expect(attrs("placeholder 'x'")).toContain('shape=invhouse');
    expect(attrs("matMul 'matMul'")).not.toMatch(/invhouse|peripheries/);
    // The output has a double border, and only it.
    expect([...p.nodes.values()].filter((n) => n.attrs.includes('peripheries=2')).map((n) => head(n.label))).toEqual(["maximum 'maximum'"]);
    expect(p.clusters.size).toBe(0);
  });

  it("draws each cond's branches as clusters holding their own nodes, a nested cond nested", () => {
    const y = graph(() => {
      const x = placeholder([null, 3], { name: 'x' });
      const h = matMul(x, variable([[1], [2], [3]], { name: 'w' }));
      return cond(greater(sum(h), 0), () => exp(h), () => cond(greater(mean(h), -1), () => neg(h), () => add(h, 1)));
    });
    const p = parseDot(toDot(y));
    // Outer cond 'if_1' (built last), inner 'if' inside its else branch.
    expect([...p.clusters.values()].map((c) => c.label).sort()).toEqual([
      "else of 'if'\ncaptures 'matMul'",
      "else of 'if_1'\ncaptures 'matMul'",
      "then of 'if'\ncaptures 'matMul'",
      "then of 'if_1'\ncaptures 'matMul'",
    ]);
    expect(membersOf(p, "then of 'if_1'")).toEqual(["exp 'exp'"]);
    expect(membersOf(p, "else of 'if_1'")).toEqual([
      "cond 'if'", "condOutput 'cond'", 'constant -1', "div 'div'", "greater 'greater_1'", "shapeSize 'shapeSize'", "sum 'sum_1'",
    ]);
    expect(membersOf(p, "then of 'if'")).toEqual(["neg 'neg'"]);
    expect(membersOf(p, "else of 'if'")).toEqual(["add 'add'", 'constant 1']);
    expect(clustersOf(p, idOf(p, "neg 'neg'"))).toEqual(["then of 'if'", "else of 'if_1'"]);
    // What the predicate needs, the captured matMul and the outer cond itself are outside every branch.
    for (const n of ["matMul 'matMul'", "sum 'sum'", "greater 'greater'", "cond 'if_1'", "condOutput 'cond_1'", 'constant 0']) {
      expect(clustersOf(p, idOf(p, n)), n).toEqual([]);
    }
    // The captured matMul enters both branches of both conds; each cond takes its predicate and branch outputs.
    const matMulUsers = p.edges.filter((e) => e.from === idOf(p, "matMul 'matMul'")).map((e) => head(p.nodes.get(e.to)!.label)).sort();
    expect(matMulUsers).toEqual(["add 'add'", "exp 'exp'", "neg 'neg'", "shapeSize 'shapeSize'", "sum 'sum'", "sum 'sum_1'"]);
    expect(edgeList(p).filter((e) => e.includes("-> cond 'if_1'"))).toEqual([
      "condOutput 'cond' -> cond 'if_1' else[0] [?,1]", "exp 'exp' -> cond 'if_1' then[0] [?,1]", "greater 'greater' -> cond 'if_1' pred []",
    ]);
  });

  it('gives the same string for the same graph built twice, and draws assignments', () => {
    const build = () => graph(() => {
      const x = placeholder([null, 4], { name: 'x' });
      const d = layers.dense(x, 3, { activation: 'relu', seed: 1 });
      const w = variable(0, { name: 'count' });
      return { y: cond(greater(sum(d), 0), () => log(add(sum(d), 1)), () => 0), w };
    });
    const a = build(), b = build();
    expect(a.y).not.toBe(b.y);
    expect(a.y.id).not.toBe(b.y.id);
    const dotA = graph(() => toDot(a.y, { updates: [[a.w, add(a.w, a.y)]] }));
    const dotB = graph(() => toDot(b.y, { updates: [[b.w, add(b.w, b.y)]] }));
    expect(dotA).toBe(dotB);
    const p = parseDot(dotA);
    const assign = p.edges.filter((e) => p.nodes.get(e.to)!.label.startsWith('assign '));
    expect(assign).toHaveLength(1);
    expect(head(p.nodes.get(assign[0]!.from)!.label)).toMatch(/^add 'add(_\d+)?'$/);
    expect(p.nodes.get(assign[0]!.to)!.label).toBe("assign 'count'");
    expect(assign[0]!.label).toBe('[]');
  });

  it('escapes quotes and backslashes in names', () => {
    const name = 'a"b\\c\'d';
    const y = graph(() => mul(variable(2, { name }), 3));
    const dot = toDot(y);
    expect(dot).toContain('variable \'a\\"b\\\\c\'d\'');
    const p = parseDot(dot);
    expect(p.nodes.get(idOf(p, /^variable /))!.label).toBe(`variable '${name}'\nfloat32 []`);
  });

  it('refuses a graph bigger than maxNodes, saying what to do', () => {
    const y = graph(() => {
      let t: Tensor = placeholder([2], { name: 'x' });
      for (let i = 0; i < 30; i++) t = neg(t);
      return t;
    });
    expect(() => toDot(y, { maxNodes: 20 })).toThrow(/toDot: the graph has 31 nodes, more than maxNodes \(20\): draw fewer outputs .* larger \{ maxNodes \}/);
    expect(parseDot(toDot(y, { maxNodes: 31 })).nodes.size).toBe(31);
    expect(() => toDot(y, { maxNodes: 0 })).toThrow(/maxNodes must be a positive integer/);
    expect(() => toDot([])).toThrow(/at least one output/);
    expect(() => toDot([1 as unknown as Tensor])).toThrow(/outputs\[0\] is not a Tensor/);
  });
});

describe('toSvg', () => {
  it('renders a valid SVG with a node per op and the cluster titles', async () => {
    const y = graph(() => {
      const x = placeholder([], { name: 'x"q' });
      return cond(greater(x, 0), () => log(x), () => neg(x));
    });
    const p = parseDot(toDot(y));
    const svg = await toSvg(y);
    expect(svg).toMatch(/<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    // Well formed: every tag opened is closed, in order.
    const stack: string[] = [];
    for (const [, close, tag, , selfClosing] of svg.replace(/<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--[\s\S]*?-->/g, '').matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
      if (selfClosing === '/') continue;
      if (close === '/') expect(stack.pop()).toBe(tag);
      else stack.push(tag!);
    }
    expect(stack).toEqual([]);
    const nodeGroups = [...svg.matchAll(/<g id="node\d+" class="node">\s*<title>(\w+)<\/title>/g)].map((m) => m[1]).sort();
    expect(nodeGroups).toEqual([...p.nodes.keys()].sort());
    expect(nodeGroups).toHaveLength(p.nodes.size);
    const clusterTitles = [...svg.matchAll(/<g id="clust\d+" class="cluster">\s*<title>(\w+)<\/title>/g)].map((m) => m[1]).sort();
    expect(clusterTitles).toEqual([...p.clusters.keys()].sort());
    expect(svg).toContain('>then of &#39;if&#39;</text>');
    expect(svg).toContain('>else of &#39;if&#39;</text>');
    expect(svg).toContain('placeholder &#39;x&quot;q&#39;');
  });

  it("reports Graphviz's error for DOT it cannot read", async () => {
    await expect(dotToSvg('digraph { a -> }')).rejects.toThrow(/^dotToSvg: Graphviz could not render the graph: .*syntax error/);
    await expect(dotToSvg(3 as unknown as string)).rejects.toThrow(/dotToSvg: dot must be a string, got number/);
  });

  it('says how to install Graphviz when @viz-js/viz is missing', async () => {
    await expect(loadViz('toSvg', '@viz-js/not-installed-here')).rejects.toThrow(/toSvg: .*npm install @viz-js\/not-installed-here/);
  });
});

describe('planToDot', () => {
  let session: Session;
  beforeAll(async () => {
    session = await Session.create({ backend: 'cpu' });
  });
  afterAll(() => session.dispose());

  /** The session functions `build` compiles (what a TrainStep's runs are), on a fresh session. */
  const functionsOf = async (build: () => void): Promise<SessionFunction[]> => {
    await session.dispose();
    session = await Session.create({ backend: 'cpu' });
    const made: SessionFunction[] = [];
    const real = session.function.bind(session);
    session.function = (spec: FunctionSpec) => {
      const f = real(spec);
      made.push(f);
      return f;
    };
    try {
      build();
    } finally {
      session.function = real;
    }
    return made;
  };
  const steps = (p: ParsedDot) => [...p.nodes.values()].filter((n) => n.label.startsWith('#'));
  const kernels = (p: ParsedDot) => steps(p).filter((n) => !/^#[\d.a-z]+ cond /.test(n.label));

  it('puts what only a branch needs in its cluster, what both need before the cond', async () => {
    const { f, x } = graph(() => {
      const x = placeholder([], { name: 'x' });
      const e = exp(x); // both branches read it: it runs once, before the cond
      const y = cond(greater(x, 0), () => log(add(e, 1)), () => mul(e, neg(x)));
      return { f: session.function({ inputs: [x], outputs: [y] }), x };
    });
    const p = parseDot(planToDot(f));
    expect(steps(p).map((n) => head(n.label))).toEqual([
      "#1 exp 'exp'", "#2 greater 'greater'", "#3 cond 'if'",
      "#3.then.1 add 'add'", "#3.then.2 log 'log'", "#3.else.1 neg 'neg'", "#3.else.2 mul 'mul'",
    ]);
    expect(clustersOf(p, idOf(p, "#3.then.2 log 'log'"))).toEqual(["#3 then: only when 'greater' is true"]);
    expect(clustersOf(p, idOf(p, "#3.else.2 mul 'mul'"))).toEqual(["#3 else: only when 'greater' is false"]);
    expect(clustersOf(p, idOf(p, "#1 exp 'exp'"))).toEqual([]);
    // The branch results fill the cond's output, which is the function's output.
    const out = idOf(p, "condOutput 'cond'");
    expect(p.edges.filter((e) => e.to === out && e.label !== '').map((e) => `${head(p.nodes.get(e.from)!.label)} ${e.label}`).sort())
      .toEqual(["#3.else.2 mul 'mul' else", "#3.then.2 log 'log' then"]);
    expect(p.edges.some((e) => e.from === out && p.nodes.get(e.to)!.label === "output 0: 'cond'")).toBe(true);
    expect(kernels(p)).toHaveLength(f.kernelCount);
    expect(p.nodes.get(idOf(p, "input 0: placeholder 'x'"))).toBeDefined();
    // It runs as drawn: x = 2 takes the then branch.
    expect((await f([2]))[0]!.data[0]).toBeCloseTo(Math.log(Math.exp(2) + 1), 5);
    expect(x.name).toBe('x');
  });

  it("draws a Heun step's two runs: the stage gradient stored, then the parameters assigned", async () => {
    const fns = await functionsOf(() => graph(() => {
      const x = placeholder([null, 2], { name: 'x' });
      const y = placeholder([null, 1], { name: 'y' });
      const loss = mean(square(sub(layers.dense(x, 1, { seed: 3 }), y)));
      compile(heun({ lr: 0.1 }), session, { loss, inputs: [x, y] });
    }));
    expect(fns).toHaveLength(2);
    const [first, second] = fns.map((f) => parseDot(planToDot(f)));
    const assigned = (p: ParsedDot) => [...p.nodes.values()].filter((n) => n.label.startsWith('assign ')).map((n) => n.label).sort();
    expect(assigned(first!)).toEqual(["assign 'heun/g1/dense/bias'", "assign 'heun/g1/dense/kernel'"]);
    expect(assigned(second!)).toEqual(["assign 'dense/bias'", "assign 'dense/kernel'", "assign 'heun/iterations'"]);
    fns.forEach((f, i) => expect(kernels([first!, second!][i]!)).toHaveLength(f.kernelCount));
    // The second run reads the stored stage gradient, never the first run's tensors.
    expect([...second!.nodes.values()].filter((n) => n.label.startsWith("variable 'heun/g1/")).length).toBe(2);
    expect(second!.clusters.size).toBe(0);
  });

  it("draws an adaptive Heun–Euler step's accept/reject cond with the controller's work in its branches", async () => {
    const heunEuler = { ...tableaux.heun, name: 'heunEuler', bStar: [1, 0], errorOrder: 1 };
    const fns = await functionsOf(() => graph(() => {
      const x = placeholder([null, 2], { name: 'x' });
      const loss = mean(square(layers.dense(x, 1, { seed: 3 })));
      compile(rungeKutta({ tableau: heunEuler, lr: 0.1, adaptive: { tol: 1e-3 } }), session, { loss, inputs: [x] });
    }));
    const last = parseDot(planToDot(fns.at(-1)!));
    const conds = steps(last).filter((n) => /^#\d+ cond /.test(n.label));
    expect(conds).toHaveLength(1);
    const num = head(conds[0]!.label).split(' ')[0]!;
    const inThen = steps(last).filter((n) => n.label.startsWith(`${num}.then.`));
    const inElse = steps(last).filter((n) => n.label.startsWith(`${num}.else.`));
    expect(inThen.length).toBeGreaterThan(0);
    expect(inElse.length).toBeGreaterThan(0);
    for (const n of inThen) expect(clustersOf(last, [...last.nodes].find(([, m]) => m === n)![0])[0]).toMatch(new RegExp(`^${num} then: only when`));
    for (const n of inElse) expect(clustersOf(last, [...last.nodes].find(([, m]) => m === n)![0])[0]).toMatch(new RegExp(`^${num} else: only when`));
    // The parameters' new values come out of the cond (accepted: p₁, rejected: p₀).
    const kernelAssign = idOf(last, "assign 'dense/kernel'");
    const from = last.edges.find((e) => e.to === kernelAssign)!.from;
    expect(head(last.nodes.get(from)!.label)).toMatch(/^condOutput /);
    expect(kernels(last)).toHaveLength(fns.at(-1)!.kernelCount);
  });

  it("draws a soft batch's plan: the gradient before the cond, the inner step only in the then block", async () => {
    const fns = await functionsOf(() => graph(() => {
      const x = placeholder([null, 3], { name: 'x' });
      const y = placeholder([null, 1], { name: 'y' });
      const h = layers.dense(x, 4, { activation: 'relu', seed: 1 });
      const loss = mean(square(sub(layers.dense(h, 1, { seed: 2 }), y)));
      compile(accumulate(sgd({ lr: 0.1 }), { steps: 4 }), session, { loss, inputs: [x, y] });
    }));
    const f = fns[0]!;
    const p = parseDot(planToDot(f));
    expect(kernels(p)).toHaveLength(f.kernelCount);
    const conds = steps(p).filter((n) => / cond /.test(head(n.label)));
    expect(conds.map((n) => head(n.label).replace(/^#\d+ /, ''))).toEqual(["cond 'if'"]);
    const num = head(conds[0]!.label).split(' ')[0]!;
    const at = (n: { cluster: string | undefined }) => (n.cluster === undefined ? 'top' : head(p.clusters.get(n.cluster)!.label).split(':')[0]);
    // The whole backward pass (every matMul) runs once, on every call, before the choice.
    const matMuls = kernels(p).filter((n) => / (fusedMatMul|matMul) /.test(head(n.label)));
    expect(matMuls.length).toBeGreaterThanOrEqual(5);
    for (const n of matMuls) expect(at(n), n.label).toBe('top');
    // The 4th mini-batch (then): the mean of the 4 gradients (one div by 4 per parameter) and sgd's step.
    const thenDivs = kernels(p).filter((n) => at(n) === `${num} then` && / div /.test(head(n.label))).map((n) => n.label.split('\n')[1]).sort();
    expect(thenDivs).toEqual(['float32 [1]', 'float32 [3,4]', 'float32 [4,1]', 'float32 [4]']);
    expect(kernels(p).filter((n) => at(n) === `${num} else` && / (div|mul) /.test(head(n.label)))).toEqual([]);
    // Each parameter is assigned the cond's output.
    for (const v of ['dense/kernel', 'dense/bias', 'dense/kernel_1', 'dense/bias_1']) {
      const from = p.edges.find((e) => e.to === idOf(p, `assign '${v}'`))!.from;
      expect(head(p.nodes.get(from)!.label), v).toMatch(/^condOutput 'cond_\d+'$/);
    }
    const svg = await planToSvg(f);
    expect([...svg.matchAll(/<g id="clust\d+" class="cluster">/g)]).toHaveLength(2);
  });

  it('gives the same plan on cpu and onnx (it is the plan the session made), and refuses other functions', async () => {
    const onnx = await Session.create({ backend: 'onnx' });
    try {
      const build = (s: Session) => graph(() => {
        const x = placeholder([null, 2], { name: 'x' });
        const w = variable([[1], [2]], { name: 'w' });
        const l = mean(matMul(x, w));
        return s.function({ inputs: [x], outputs: [l], updates: [cond(greater(l, 0), () => [[w, mul(w, 0.5)]], () => [])] });
      });
      const a = build(session), b = build(onnx);
      expect(planToDot(b)).toBe(planToDot(a));
      // The graph of a function: its cond of updates lowered to one cond node, the new value assigned to 'w'.
      const g = parseDot(functionToDot(a));
      expect(membersOf(g, "then of 'if'")).toContain("mul 'mul'");
      expect(membersOf(g, "else of 'if'")).toEqual(['(passes captures through)']);
      const assign = g.edges.filter((e) => g.nodes.get(e.to)!.label.startsWith('assign ')).map((e) => `${head(g.nodes.get(e.from)!.label)} -> ${head(g.nodes.get(e.to)!.label)}`);
      expect(assign).toEqual(["condOutput 'cond' -> assign 'w'"]);
      expect(() => planToDot((() => Promise.resolve([])) as unknown as SessionFunction)).toThrow(/planToDot: expects a function made by session.function/);
      // 4 sources (x, w, the constants 0 and 0.5), 6 kernel steps and a cond step, 1 output, 1 assignment.
      expect(() => planToDot(a, { maxNodes: 12 })).toThrow(/planToDot: the plan has 13 nodes, more than maxNodes \(12\)/);
    } finally {
      await onnx.dispose();
    }
  });
});
