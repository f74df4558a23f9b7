import { SymflowError } from './errors.js';
import { dtypeOfArray, type TypedArray } from './hostValue.js';
import { checkDepth, isValidName, MAX_ELEMENTS, MAX_NAME_LENGTH } from './limits.js';
import { checkAttrs, getOp, makeNode } from './registry.js';
import { makeVariable } from './sources.js';
import { type AttrValue, type Attrs, type DType, type InitSpec, isTensor, isVariable, type Tensor, type Variable } from './tensor.js';
import { ancestors } from './traverse.js';

/**
 * The JSON form of a graph: nodes in creation order, inputs by index into `nodes`. A cond is one node like any
 * other (its branches are among its inputs). Version 2; version 1 files (whose conds were groups of nodes with
 * branch scopes) are read when they hold no cond.
 */
export interface GraphJSON {
  /** Marks the data as a symflow graph: always `'symflow-graph'`. */
  format: 'symflow-graph';
  /** The format version `toJSON` writes (2); `fromJSON` also reads version 1 files without a cond. */
  version: 2;
  /** Every node, inputs before the nodes that read them; a node's inputs are indices into this array. */
  nodes: NodeJSON[];
  /** The indices in `nodes` of the outputs, in the order given to `toJSON`. */
  outputs: number[];
}

export interface NodeJSON {
  name: string;
  op: string;
  inputs: number[];
  attrs: Record<string, unknown>;
  shape: (number | null)[];
  dtype: DType;
  /** Variables only: how to initialise it when not bound to an existing variable (absent for literal values). */
  init?: InitSpec;
  trainable?: boolean;
}

const TYPED = '$typed';
const MAX_JSON_NODES = 1_000_000;
/** A variable a file may ask to create: MAX_ELEMENTS, 2²⁸ elements (1 GiB of float32). */
const MAX_VARIABLE_ELEMENTS = MAX_ELEMENTS;

function encodeAttr(v: AttrValue): unknown {
  const typed = dtypeOfArray(v);
  if (typed !== undefined && typed !== 'float64') return { [TYPED]: typed, data: Array.from(v as TypedArray) };
  if (Array.isArray(v)) return v.map(encodeAttr);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encodeAttr(x as AttrValue)]));
  return v;
}

function decodeAttr(v: unknown, where: string): AttrValue {
  if (Array.isArray(v)) return v.map((x) => decodeAttr(x, where));
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (TYPED in o) {
      const data = o['data'];
      if (!Array.isArray(data) || !data.every((d) => typeof d === 'number')) throw new SymflowError('fromJSON', `${where}: typed data must be a number array`);
      const kind = o[TYPED];
      if (kind === 'float32') return Float32Array.from(data);
      if (kind === 'int32') return Int32Array.from(data);
      if (kind === 'bool') return Uint8Array.from(data);
      throw new SymflowError('fromJSON', `${where}: unknown typed array kind ${JSON.stringify(kind)}`);
    }
    const out: Record<string, AttrValue> = Object.create(null);
    for (const [k, x] of Object.entries(o)) out[k] = decodeAttr(x, where);
    return out;
  }
  if (v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  throw new SymflowError('fromJSON', `${where}: attribute of type ${typeof v} is not allowed`);
}

/**
 * Serialises the graph the outputs depend on: ops, attributes, constants; variables by name with their
 * initializer, never their values. A `customGradient` node is refused: its gradient rule is a JavaScript function.
 *
 * ```ts
 * const json = toJSON([loss]);
 * const { outputs: [loss2], nodes } = fromJSON(json);
 * ```
 * @param outputs the tensors to keep @returns plain JSON-compatible data
 */
export function toJSON(outputs: Tensor | readonly Tensor[]): GraphJSON {
  const list = isTensor(outputs) ? [outputs] : [...outputs];
  const nodes = ancestors(list);
  const index = new Map(nodes.map((t, i) => [t, i]));
  const json = nodes.map((t): NodeJSON => {
    if (t.op === 'customGradient') throw new SymflowError('toJSON', customGradientRefusal(`node '${t.name}'`));
    const n: NodeJSON = {
      name: t.name, op: t.op, inputs: t.inputs.map((i) => index.get(i)!), attrs: encodeAttr(t.attrs) as Record<string, unknown>,
      shape: [...t.shape], dtype: t.dtype,
    };
    if (isVariable(t)) {
      n.trainable = t.trainable;
      if (t.init.kind !== 'value') n.init = t.init;
    }
    return n;
  });
  return { format: 'symflow-graph', version: 2, nodes: json, outputs: list.map((t) => index.get(t)!) };
}

/** A customGradient node's rule is a JavaScript function: no file can carry it, so neither direction drops it silently. */
function customGradientRefusal(where: string): string {
  return `${where} is a customGradient, whose gradient rule is a JavaScript function and cannot be serialised; serialise a graph built without it`;
}

/** Options of `fromJSON`. */
export interface FromJSONOptions {
  /** Existing variables to bind by name (their values then come from the session, as with the originals). Default none: every variable is made anew. */
  variables?: readonly Variable[];
}

/** What `fromJSON` rebuilds: the outputs, every node by name, and the variables. */
export interface GraphFromJSON {
  /** The rebuilt outputs, in the order given to `toJSON`. */
  outputs: Tensor[];
  /** Every rebuilt node by its name in the JSON (find placeholders to feed here). */
  nodes: Map<string, Tensor>;
  /** The variables of the graph (bound or newly created). */
  variables: Variable[];
}

/**
 * Rebuilds a graph from `toJSON` data. Shapes and dtypes are inferred again (and must match); unknown ops,
 * dangling references and malformed fields are errors naming the node.
 * @param json the data (an object or a JSON string) @returns the rebuilt graph
 */
export function fromJSON(json: GraphJSON | string, opts: FromJSONOptions = {}): GraphFromJSON {
  let g: GraphJSON;
  try {
    g = (typeof json === 'string' ? JSON.parse(json) : json) as GraphJSON;
  } catch (e) {
    throw new SymflowError('fromJSON', `not valid JSON (${(e as Error).message})`);
  }
  // Before anything recursive reads it: a 4 KB file of 2,000 nested arrays (or an object with a cycle) would
  // otherwise overflow the call stack in the attribute decoder.
  checkDepth('fromJSON', g, 'the graph');
  try {
    return buildGraph(g, opts);
  } catch (e) {
    // A last line of defence: whatever a file makes overflow is its fault, and reported as such.
    if (e instanceof RangeError) throw new SymflowError('fromJSON', `the graph is too large or too deeply nested to read (${e.message})`);
    throw e;
  }
}

function buildGraph(g: GraphJSON, opts: FromJSONOptions): GraphFromJSON {
  if (g === null || typeof g !== 'object' || g.format !== 'symflow-graph') throw new SymflowError('fromJSON', 'not a symflow graph (format field missing)');
  const version = (g as { version: unknown }).version;
  if (version !== 1 && version !== 2) throw new SymflowError('fromJSON', `unsupported version ${JSON.stringify(version)}`);
  if (!Array.isArray(g.nodes) || g.nodes.length > MAX_JSON_NODES) throw new SymflowError('fromJSON', 'nodes must be an array');
  const bound = new Map((opts.variables ?? []).map((v) => [v.name, v]));
  const built: Tensor[] = [];
  const nodes = new Map<string, Tensor>();
  g.nodes.forEach((n, i) => {
    const where = `node ${i}${typeof n?.name === 'string' ? ` '${n.name}'` : ''}`;
    // Node names follow the rule variable names do, so every graph a variable can be in round-trips.
    if (n === null || typeof n !== 'object' || typeof n.op !== 'string' || !isValidName(n.name)) {
      throw new SymflowError('fromJSON', `${where}: needs a string op and a name of 1 to ${MAX_NAME_LENGTH} printable characters`);
    }
    if (!Array.isArray(n.shape) || typeof n.dtype !== 'string') throw new SymflowError('fromJSON', `${where}: needs shape and dtype`);
    if (!Array.isArray(n.inputs)) throw new SymflowError('fromJSON', `${where}: inputs must be an array`);
    const inputs = n.inputs.map((k) => {
      if (!Number.isInteger(k) || k < 0 || k >= i) throw new SymflowError('fromJSON', `${where}: dangling reference to input ${JSON.stringify(k)}`);
      return built[k]!;
    });
    if (version === 1 && n.op === 'cond') {
      throw new SymflowError('fromJSON', `${where}: a version 1 cond (a group of nodes with branch scopes) cannot be read; build the graph again and save it with this version`);
    }
    const t = n.op === 'variable' ? buildVariable(n, bound, where) : buildNode(n, inputs, where);
    built.push(t);
    nodes.set(n.name, t);
  });
  if (!Array.isArray(g.outputs)) throw new SymflowError('fromJSON', 'outputs must be an array');
  const outputs = g.outputs.map((k) => {
    if (!Number.isInteger(k) || k < 0 || k >= built.length) throw new SymflowError('fromJSON', `dangling output reference ${JSON.stringify(k)}`);
    return built[k]!;
  });
  return { outputs, nodes, variables: built.filter(isVariable) };
}

function buildNode(n: NodeJSON, inputs: Tensor[], where: string): Tensor {
  if (n.op === 'customGradient') throw new SymflowError('fromJSON', customGradientRefusal(where));
  const def = getOp(n.op);
  if (def === undefined || n.op === 'variable') throw new SymflowError('fromJSON', `${where}: unknown op '${n.op}'`);
  if (n.attrs === null || typeof n.attrs !== 'object' || Array.isArray(n.attrs)) throw new SymflowError('fromJSON', `${where}: attrs must be an object`);
  // The op's own schema says which attributes it takes and of what kind.
  const attrs = { ...(decodeAttr(n.attrs, where) as Record<string, AttrValue>) };
  checkAttrs(def, attrs, where);
  let t: Tensor;
  try {
    t = makeNode(def, inputs, attrs as Attrs, n.name);
  } catch (e) {
    throw new SymflowError('fromJSON', `${where}: ${(e as Error).message}`);
  }
  if (JSON.stringify(t.shape) !== JSON.stringify(n.shape) || t.dtype !== n.dtype) {
    throw new SymflowError('fromJSON', `${where}: recorded ${n.dtype} ${JSON.stringify(n.shape)} but the op gives ${t.dtype} ${JSON.stringify(t.shape)}`);
  }
  return t;
}

function buildVariable(n: NodeJSON, bound: Map<string, Variable>, where: string): Variable {
  const v = bound.get(n.name);
  if (v !== undefined) {
    if (v.dtype !== n.dtype || JSON.stringify(v.shape) !== JSON.stringify(n.shape)) {
      throw new SymflowError('fromJSON', `${where}: bound variable is ${v.dtype} ${JSON.stringify(v.shape)}, the graph needs ${n.dtype} ${JSON.stringify(n.shape)}`);
    }
    return v;
  }
  const size = n.shape.reduce<number>((p, d) => p * (Number.isSafeInteger(d) && (d as number) >= 0 ? (d as number) : NaN), 1);
  if (!(size <= MAX_VARIABLE_ELEMENTS)) {
    throw new SymflowError('fromJSON', `${where}: variable shape ${JSON.stringify(n.shape)} is not a shape of at most ${MAX_VARIABLE_ELEMENTS} elements`);
  }
  if (n.init === undefined) {
    throw new SymflowError('fromJSON', `${where}: variable '${n.name}' was initialised from a literal value, which JSON does not carry; bind it with {variables: [...]}`);
  }
  if (!Array.isArray(n.init.shape) || JSON.stringify(n.init.shape) !== JSON.stringify(n.shape)) {
    throw new SymflowError('fromJSON', `${where}: initializer shape does not match ${JSON.stringify(n.shape)}`);
  }
  checkInitSpec(n.init, where);
  return makeVariable({ ...n.init, shape: [...n.init.shape] } as InitSpec, n.name, n.trainable === undefined ? true : n.trainable === true);
}

/** An initializer from a file: a known kind with the numbers it needs, nothing else. */
function checkInitSpec(init: unknown, where: string): void {
  const spec = init as Record<string, unknown>;
  const nums: Record<string, string[]> = {
    zeros: [], ones: [], fill: ['value'], randomNormal: ['mean', 'stddev', 'seed'], randomUniform: ['min', 'max', 'seed'], glorotUniform: ['seed'], orthogonal: ['gain', 'seed'],
  };
  const need = typeof spec?.['kind'] === 'string' ? nums[spec['kind'] as string] : undefined;
  if (need === undefined || !Object.hasOwn(nums, spec['kind'] as string)) throw new SymflowError('fromJSON', `${where}: unknown initializer ${JSON.stringify(spec?.['kind'])}`);
  for (const k of need) if (typeof spec[k] !== 'number' || !Number.isFinite(spec[k])) throw new SymflowError('fromJSON', `${where}: initializer field ${k} must be a finite number`);
  if (spec['dtype'] !== undefined && !['float32', 'int32', 'bool'].includes(spec['dtype'] as string)) throw new SymflowError('fromJSON', `${where}: unknown dtype ${JSON.stringify(spec['dtype'])}`);
}
