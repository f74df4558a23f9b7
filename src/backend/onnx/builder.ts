import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;
type IGraphProto = onnxProto.onnx.IGraphProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const OPSET = 17;
export const ELEM = { float32: 1, int32: 6, bool: 9, int64: 7, float64: 11 } as const;
export type Elem = keyof typeof ELEM;
/** Stands for "to the end" in Slice ends (ONNX clamps it to the dimension). */
export const INT_MAX = Number.MAX_SAFE_INTEGER;

export type AttrSpec = number | string | readonly number[] | { floats: readonly number[] } | { graph: IGraphProto } | { tensor: ITensorProto } | { float: number };

function attribute(name: string, v: AttrSpec): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: [...v] };
  if ('floats' in v) return { name, type: T.FLOATS, floats: [...v.floats] };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('graph' in v) return { name, type: T.GRAPH, g: v.graph };
  return { name, type: T.TENSOR, t: (v as { tensor: ITensorProto }).tensor };
}

/** A tensor constant in ONNX form. */
export function tensorProto(name: string, elem: Elem, dims: readonly number[], data: ArrayLike<number>): ITensorProto {
  const t: ITensorProto = { name, dataType: ELEM[elem], dims: [...dims] };
  if (elem === 'int64') t.int64Data = Array.from(data);
  else if (elem === 'float32') t.rawData = new Uint8Array(Float32Array.from(data).buffer);
  else if (elem === 'int32') t.rawData = new Uint8Array(Int32Array.from(data).buffer);
  else if (elem === 'float64') t.rawData = new Uint8Array(Float64Array.from(data).buffer);
  else t.rawData = Uint8Array.from(data);
  return t;
}

export function valueInfo(name: string, elem: Elem, dims?: readonly (number | null)[]): IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: ELEM[elem] };
  if (dims !== undefined) tensorType.shape = { dim: dims.map((d) => (d === null ? {} : { dimValue: d })) };
  return { name, type: { tensorType } };
}

/**
 * Emits ONNX nodes. Child builders (If branches) share the root's initializers, which subgraphs may reference as
 * outer-scope values.
 */
export class GraphBuilder {
  nodes: INodeProto[] = [];
  /** The symflow node being lowered: ONNX node names carry it, so run-time errors can name it. */
  owner: string | undefined;
  private readonly root: GraphBuilder;
  private readonly parent: GraphBuilder | undefined;
  /** Values a lowering made for a later one to reuse, by a key of its choosing (see `remember`). */
  private readonly memo = new Map<string, string>();
  private readonly initializers: ITensorProto[];
  private readonly constCache: Map<string, string>;
  private counter: { n: number };

  constructor(parent?: GraphBuilder) {
    this.root = parent?.root ?? this;
    this.parent = parent;
    this.initializers = parent?.initializers ?? [];
    this.constCache = parent?.constCache ?? new Map();
    this.counter = parent?.counter ?? { n: 0 };
  }

  child(): GraphBuilder {
    return new GraphBuilder(this);
  }

  fresh(hint = 't'): string {
    return `${hint}_${this.counter.n++}`;
  }

  /** Adds a node; returns its (first) output name. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrSpec> = {}, output?: string): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    const name = this.owner === undefined ? undefined : `${this.owner}#${this.counter.n++}`;
    this.nodes.push({ opType, input: [...inputs], output: [out], attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)), ...(name ? { name } : {}) });
    return out;
  }

  /** A constant as a (deduplicated) initializer of the root graph. */
  constant(elem: Elem, dims: readonly number[], data: ArrayLike<number>): string {
    const key = `${elem}|${dims.join(',')}|${Array.from(data).join(',')}`;
    const hit = this.constCache.get(key);
    if (hit !== undefined && data.length <= 64) return hit;
    const name = this.fresh('c');
    this.initializers.push(tensorProto(name, elem, dims, data));
    if (data.length <= 64) this.constCache.set(key, name);
    return name;
  }

  /** An int64 vector (shapes, axes, pads). */
  ints(values: readonly number[]): string {
    return this.constant('int64', [values.length], values);
  }

  scalar(elem: Elem, value: number): string {
    return this.constant(elem, [], [value]);
  }

  /**
   * Keeps a value made here under `key`, for a later lowering in this graph or in a branch inside it (which may
   * read outer values; the outer graph cannot read a branch's).
   */
  remember(key: string, value: string): void {
    this.memo.set(key, value);
  }

  /** The value kept under `key` here or in an enclosing graph. */
  recall(key: string): string | undefined {
    return this.memo.get(key) ?? this.parent?.recall(key);
  }

  /** Replaces the node list (a rewrite pass's result). */
  replaceNodes(nodes: INodeProto[]): void {
    this.nodes = nodes;
  }

  addInitializer(t: ITensorProto): void {
    this.initializers.push(t);
  }

  graph(name: string, inputs: IValueInfoProto[], outputs: IValueInfoProto[]): IGraphProto {
    return { name, node: this.nodes, input: inputs, output: outputs, initializer: this === this.root ? this.initializers : [] };
  }
}

/** Serialises a model of one graph. */
export function encodeModel(graph: IGraphProto): Uint8Array {
  const model = { irVersion: 8, opsetImport: [{ domain: '', version: OPSET }], producerName: 'symflow', graph };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
