import type { GraphProgram, ProgramBackend, ProgramSpec } from '../backend/index.js';
import { checkSize, constantValue, type DotNode, type DotOptions, edgeLine, header, labelLines, nameList, quote, styleOf, toDot } from '../graph/dot.js';
import { SymflowError } from '../graph/errors.js';
import { graph } from '../graph/names.js';
import { renderSvg } from '../graph/svg.js';
import { shapeString, type Tensor } from '../graph/tensor.js';
import type { Block } from '../schedule/plan.js';
import { type CompiledFunction, compileFunction } from './compileFunction.js';
import { FUNCTION_SOURCE, type FunctionSpec, type SessionFunction } from './session.js';
import { lowerGuarded } from './updates.js';

export { toDot, type DotOptions } from '../graph/dot.js';
export { dotToSvg, toSvg } from '../graph/svg.js';

/** What `session.function` keeps of a function for its pictures (see session.ts). */
interface FunctionSource {
  readonly spec: FunctionSpec;
  readonly passes: ProgramBackend['passes'];
  readonly rewrite: boolean;
}

function sourceOf(who: string, fn: SessionFunction): FunctionSource {
  const source = (fn as unknown as { [FUNCTION_SOURCE]?: FunctionSource } | undefined)?.[FUNCTION_SOURCE];
  if (source === undefined) throw new SymflowError(who, 'expects a function made by session.function');
  return source;
}

/**
 * The function's plan, planned again exactly as its session planned it (the same spec, rewrites and backend
 * passes: planning is deterministic), handed to a stand-in program backend that keeps the plan instead of
 * compiling it. Built in a fresh name space, so it renames nothing the caller builds later.
 */
function replan(who: string, fn: SessionFunction): { compiled: CompiledFunction; program: ProgramSpec } {
  const source = sourceOf(who, fn);
  let program: ProgramSpec | undefined;
  const keep: GraphProgram = { run: () => Promise.reject(new SymflowError(who, 'internal: a plan picture does not run')), dispose: () => Promise.resolve() };
  const backend = { kind: 'program', name: 'onnx', passes: source.passes, compileProgram: (p: ProgramSpec) => ((program = p), keep) } as unknown as ProgramBackend;
  const compiled = graph(() => compileFunction(source.spec, backend, who, source.rewrite));
  return { compiled, program: program! };
}

/** `outputs 'loss' and updates of 'w', 'b'`. */
function describe(compiled: CompiledFunction): string {
  const parts = [
    ...(compiled.outputs.length > 0 ? [`outputs ${nameList(compiled.outputs.map((t) => t.name), 3)}`] : []),
    ...(compiled.updates.length > 0 ? [`updates of ${nameList(compiled.updates.map((u) => u.variable.name), 3)}`] : []),
  ];
  return parts.join(' and ') || 'nothing';
}

const countSteps = (b: Block): number => b.steps.reduce((n, s) => n + (s.kind === 'node' ? 1 : 1 + countSteps(s.blocks[0]) + countSteps(s.blocks[1])), 0);
const countKernels = (b: Block): number => b.steps.reduce((n, s) => n + (s.kind === 'node' ? 1 : countKernels(s.blocks[0]) + countKernels(s.blocks[1])), 0);

/**
 * The execution plan of a compiled session function as a Graphviz DOT string: what one call runs, in order.
 * Steps are numbered as they run (`#4`; `#4.then.2` is the second step of the then block of cond step 4). The
 * top level is what runs on every call, before and after the conds; each cond step is a diamond reading its
 * predicate, with one cluster per branch block holding the steps that run only when that branch is taken (a
 * node both branches need runs once, before the cond, so it is outside both), and its outputs (the ellipses)
 * filled by the taken block's results. Sources (feeds, variables, constants) come first; the function's
 * outputs and the variables it assigns are the sinks.
 *
 * ```ts
 * const step = session.function({ inputs: [x], outputs: [loss], updates });
 * writeFileSync('plan.svg', await planToSvg(step));
 * ```
 * @param fn a function made by `session.function`
 * @param opts maxNodes (default 500, counting steps, sources and sinks), rankdir, edgeLabels, title
 * @returns the DOT text
 */
export function planToDot(fn: SessionFunction, opts: DotOptions = {}): string {
  const { compiled, program } = replan('planToDot', fn);
  const { top, nodeOfReg } = program;
  checkSize('planToDot', compiled.sources.length + countSteps(top) + compiled.outputs.length + compiled.updates.length, opts, 'plan');
  const edgeLabels = opts.edgeLabels ?? true;
  const shapeOf = (reg: number) => (edgeLabels ? shapeString(nodeOfReg(reg).shape) : '');
  const lines = header({ ...opts, title: opts.title ?? `plan of ${describe(compiled)}: ${countKernels(top)} kernels` });
  const edges: string[] = [];
  const node = (id: string, n: DotNode, indent: string, prefix = '', extra = '') =>
    lines.push(`${indent}${id} [label=${quote(...labelLines(n, prefix))}, ${styleOf(n.op, (n as Tensor & { trainable?: boolean }).trainable ?? true)}${extra}];`);

  // Small constants are drawn beside each step that reads them (no long edges from one shared `0`); one that is a
  // result, an output or a new value is drawn once, as a source.
  const small = new Set(compiled.sources.filter((s) => s.kind === 'constant' && constantValue(s.node) !== undefined).map((s) => s.reg));
  const used = new Set<number>();
  // DOT ids in the order the picture meets the registers, never the registers' numbers: those follow node ids,
  // which an interned constant made by an earlier graph shifts.
  const ids = new Map<number, string>();
  const dotId = (reg: number) => {
    let id = ids.get(reg);
    if (id === undefined) ids.set(reg, (id = `r${ids.size}`));
    return id;
  };
  const from = (reg: number) => {
    if (small.has(reg)) used.add(reg);
    return dotId(reg);
  };
  let locals = 0;
  const stepInput = (reg: number, to: string, indent: string): void => {
    if (!small.has(reg)) {
      edges.push(edgeLine(dotId(reg), to, shapeOf(reg)));
      return;
    }
    const id = `k${locals++}`;
    lines.push(`${indent}${id} [label=${quote(constantValue(nodeOfReg(reg))!)}, ${styleOf('constant')}, fontsize=8, height=0.2];`);
    edges.push(edgeLine(id, to, ''));
  };
  for (const src of compiled.sources) {
    const n = nodeOfReg(src.reg);
    if (small.has(src.reg)) continue;
    if (src.kind === 'feed') node(dotId(src.reg), { ...n, op: 'placeholder' }, '  ', `input ${src.index}: `);
    else if (src.kind === 'variable') node(dotId(src.reg), src.tensor, '  ');
    else node(dotId(src.reg), n, '  ');
  }
  let conds = 0;
  const emit = (block: Block, path: string, indent: string) => {
    block.steps.forEach((step, i) => {
      const num = `${path}${i + 1}`;
      if (step.kind === 'node') {
        node(dotId(step.out), step.node, indent, `#${num} `);
        for (const r of step.inputs) stepInput(r, dotId(step.out), indent);
        return;
      }
      const id = `c${conds++}`;
      const out0 = step.outs[0] === undefined ? undefined : nodeOfReg(step.outs[0]);
      const condName = out0 === undefined ? 'cond' : program.ir.nodes[out0.inputs[0]!]?.name ?? 'cond';
      const predName = nodeOfReg(step.pred).name;
      lines.push(`${indent}${id} [label=${quote(`#${num} cond '${condName}'`, `pred '${predName}'`)}, ${styleOf('cond')}];`);
      edges.push(edgeLine(from(step.pred), id, edgeLabels ? 'pred' : ''));
      (['then', 'else'] as const).forEach((side, k) => {
        const b = step.blocks[k]!;
        const color = side === 'then' ? '#1e8449' : '#a93226';
        lines.push(`${indent}subgraph cluster_${id}_${side} {`);
        lines.push(`${indent}  label=${quote(`#${num} ${side}: only when '${predName}' is ${side === 'then'}`, `${countKernels(b)} kernels`)};`);
        lines.push(`${indent}  style="rounded,dashed"; color="${color}"; fontcolor="${color}";`);
        // A cluster with nothing in it is not drawn: an empty block (results all from outside) gets a marker.
        if (b.steps.length === 0) lines.push(`${indent}  ${id}_${side} [label="(nothing runs)", shape=plaintext, fontcolor="${color}"];`);
        emit(b, `${num}.${side}.`, `${indent}  `);
        lines.push(`${indent}}`);
        b.results.forEach((r, j) => edges.push(edgeLine(from(r), dotId(step.outs[j]!), side, color)));
        if (b.steps.length === 0) edges.push(edgeLine(id, `${id}_${side}`, '', color, 'style=dotted'));
      });
      for (const o of step.outs) {
        node(dotId(o), nodeOfReg(o), indent);
        edges.push(edgeLine(id, dotId(o), '', '#b7950b', 'style=dotted, arrowhead=none'));
      }
    });
  };
  emit(top, '', '  ');

  compiled.outputRegs.forEach((r, i) => {
    const what = i === compiled.guard ? 'applied? (applyIfFinite)' : `'${compiled.outputs[i]!.name}'`;
    lines.push(`  o${i} [label=${quote(`output ${i}: ${what}`)}, shape=plaintext, fontcolor="#c0392b"];`);
    edges.push(edgeLine(from(r), `o${i}`, shapeOf(r), '#c0392b'));
  });
  compiled.updates.forEach((u, i) => {
    lines.push(`  u${i} [label=${quote(`assign '${u.variable.name}'`)}, shape=box, style="filled,dashed", fillcolor="#fde8c4", color="#b9770e"];`);
    edges.push(edgeLine(from(u.reg), `u${i}`, shapeOf(u.reg), '#b9770e'));
  });
  for (const reg of used) node(dotId(reg), nodeOfReg(reg), '  ');
  // The function's outputs and assignments at the bottom, side by side.
  const sinks = [...compiled.outputRegs.map((_, i) => `o${i}`), ...compiled.updates.map((_, i) => `u${i}`)];
  if (sinks.length > 0) lines.push(`  { rank=sink; ${sinks.join('; ')}; }`);
  return `${[...lines, ...edges, '}'].join('\n')}\n`;
}

/**
 * The plan of a compiled session function as SVG: `planToDot` rendered by Graphviz (`@viz-js/viz`).
 * @param fn a function made by `session.function`
 * @param opts as `planToDot`
 * @returns the SVG text
 */
export async function planToSvg(fn: SessionFunction, opts: DotOptions = {}): Promise<string> {
  return renderSvg('planToSvg', planToDot(fn, opts));
}

/**
 * The graph of a compiled session function as DOT: its outputs and the new values of its updates, with their
 * graphs, before the session's rewrites — `toDot` with the updates lowered as the session lowers them (a `cond`
 * of updates is one cond node whose outputs are the new values), each drawn with an `assign` edge to its variable.
 * @param fn a function made by `session.function`
 * @param opts as `toDot`
 * @returns the DOT text
 */
export function functionToDot(fn: SessionFunction, opts: DotOptions = {}): string {
  const { spec } = sourceOf('functionToDot', fn);
  return graph(() => {
    const { values } = lowerGuarded(spec.updates ?? []);
    const updates = [...values].filter(([v, t]) => t !== v);
    const outputs = [...(spec.outputs ?? [])];
    if (outputs.length === 0 && updates.length === 0) throw new SymflowError('functionToDot', 'the function has no outputs and no updates to draw');
    return toDot(outputs, { ...opts, updates: [...(opts.updates ?? []), ...updates] });
  });
}

/**
 * The graph of a compiled session function as SVG: `functionToDot` rendered by Graphviz (`@viz-js/viz`).
 * @param fn a function made by `session.function`
 * @param opts as `toDot`
 * @returns the SVG text
 */
export async function functionToSvg(fn: SessionFunction, opts: DotOptions = {}): Promise<string> {
  return renderSvg('functionToSvg', functionToDot(fn, opts));
}
