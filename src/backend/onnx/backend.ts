import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { SymflowError } from '../../graph/errors.js';
import { isDrawn } from '../../graph/random.js';
import { shapeString, sizeOf } from '../../graph/tensor.js';
import type { HostTensor, TypedArray } from '../../graph/hostValue.js';
import type { Block } from '../../schedule/plan.js';
import { type DeviceTensor, type GraphProgram, ONNX_LOG_LEVELS, type OnnxLogLevel, type ProgramBackend, type ProgramSpec } from '../types.js';
import { encodeModel, GraphBuilder, tensorProto, valueInfo } from './builder.js';
import { hasLowering, lowerNode } from './lower.js';
import { dropUnreadOutputs, fuseConvBias } from './peephole.js';
import { type ThreadChoice, ThreadChooser } from './threads.js';

const asOrt = (t: DeviceTensor) => t as unknown as ort.Tensor;
const asDevice = (t: ort.Tensor) => t as unknown as DeviceTensor;

export interface OnnxOptions {
  /**
   * Threads for one op (default: the number of cores), or `'auto'`: a 1-thread and an all-cores onnxruntime session
   * per model, each run on the one measured faster lately (see threads.ts).
   */
  intraOpNumThreads?: number | 'auto';
  /**
   * onnxruntime's own log lines on stderr at this severity and above (default `fatal`): a failing run is already a
   * `SymflowError` carrying onnxruntime's message, so its `[E:onnxruntime:…]` line would only say it twice.
   */
  logs?: OnnxLogLevel;
  /** onnxruntime execution providers, in order of preference (default `['cpu']`); see `SessionOptions.executionProviders`. */
  executionProviders?: readonly (string | { readonly name: string; readonly [option: string]: unknown })[];
}

/**
 * @internal For bench/profile.ts: onnxruntime's profiler and the wall time of each run, without a hook in the
 * session code. Set on the backend (`session.backendImpl`) before compiling.
 */
export interface OnnxProbe {
  /** Turns onnxruntime's profiler on; its JSON traces go to files named from this prefix (plus `-t<threads>`). */
  profileFilePrefix?: string;
  /** Each onnxruntime session created, with its model and options. */
  compiled?(model: { bytes: Uint8Array; options: ort.InferenceSession.SessionOptions; session: Promise<ort.InferenceSession> }): void;
  /** After each run: the session, what it was fed and asked for, and the wall ms around `session.run`. */
  ran?(run: { session: ort.InferenceSession; feeds: Record<string, ort.Tensor>; outputNames: readonly string[]; ms: number; threads: number }): void;
}

/**
 * A compiled native CPU backend: a whole session function becomes one ONNX model (forward pass, symbolic
 * gradient, updates, and lazy `cond` as ONNX `If`) run by onnxruntime-node. Variables live in host buffers owned
 * by the session; new values come back as outputs and replace the old ones only after the run succeeded.
 */
export class OnnxBackend implements ProgramBackend {
  readonly kind = 'program' as const;
  readonly name = 'onnx' as const;
  readonly passes = { fuseMatMul: true, explicitTranspose: false } as const;
  private readonly threads: number | 'auto';
  private readonly cores = availableParallelism();
  /** @internal See `OnnxProbe`. */
  probe: OnnxProbe | undefined;
  private readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  private readonly executionProviders: ort.InferenceSession.SessionOptions['executionProviders'];

  constructor(opts: OnnxOptions = {}) {
    this.threads = opts.intraOpNumThreads ?? this.cores;
    this.logSeverityLevel = ONNX_LOG_LEVELS.indexOf(opts.logs ?? 'fatal') as 0 | 1 | 2 | 3 | 4;
    this.executionProviders = [...(opts.executionProviders ?? ['cpu'])] as ort.InferenceSession.SessionOptions['executionProviders'];
  }

  async activate(): Promise<void> {}

  isActive(): boolean {
    return true;
  }

  use(): void {}

  upload(value: HostTensor): DeviceTensor {
    // A copy, as the caller may write into its array later; a random draw is never written (see graph/random.ts).
    return asDevice(new ort.Tensor(value.dtype, isDrawn(value.data) ? value.data : value.data.slice(), value.shape));
  }

  download(t: DeviceTensor): HostTensor {
    const x = asOrt(t);
    return { shape: [...x.dims], dtype: x.type as HostTensor['dtype'], data: (x.data as TypedArray).slice() };
  }

  // Host buffers are never written after creation, so a second handle is the same object; the GC frees them.
  alias(t: DeviceTensor): DeviceTensor {
    return t;
  }

  dispose(): void {}

  shapeOf(t: DeviceTensor): readonly number[] {
    return asOrt(t).dims;
  }

  numTensors(): number {
    return 0;
  }

  compileProgram(spec: ProgramSpec): GraphProgram {
    checkLowerings(spec.top);
    // Nothing to compute (every result is a source the host hands over): no model at all.
    if (spec.results.length === 0) return { run: async () => [], dispose: async () => {} };
    const b = new GraphBuilder();
    const name = (reg: number) => `s${reg}`;
    for (const reg of spec.constants) {
      const n = spec.nodeOfReg(reg);
      b.addInitializer(tensorProto(name(reg), n.dtype, n.shape as number[], n.attrs['value'] as TypedArray));
    }
    // The cond outputs that are kept variables' new values: a branch that passes such a variable through returns
    // an empty tensor instead of a copy of it.
    const keepsByReg = new Map([...spec.keeps].map(([k, v]) => [spec.results[k]!, v]));
    emitBlock(b, spec.top, spec, new Map(), true, keepsByReg);
    // A result a top-level node makes is a graph output under its own name: an Identity to `out<k>` would copy it
    // once more in every run (the MLP's new weights, 1 MiB: the step measured 1–3 % faster without). Inputs,
    // constants and a register returned twice still go through an Identity (ONNX names each graph output once, and
    // an input is no node's output).
    const produced = new Set(b.nodes.flatMap((n) => n.output ?? []));
    const outputNames: string[] = [];
    for (const [k, reg] of spec.results.entries()) {
      const own = name(reg);
      const direct = produced.has(own) && !outputNames.includes(own);
      if (!direct) b.node('Identity', [own], {}, `out${k}`);
      outputNames.push(direct ? own : `out${k}`);
    }
    const outputs = spec.results.map((reg, k) => valueInfo(outputNames[k]!, spec.nodeOfReg(reg).dtype));
    // Top-level values are named s<register>: their symflow shapes are known.
    const shapeOf = (v: string) => (/^s\d+$/.test(v) ? spec.nodeOfReg(Number(v.slice(1))).shape : undefined);
    b.replaceNodes(dropUnreadOutputs(fuseConvBias(b.nodes, outputNames, shapeOf), outputNames));
    // NOTE: a 0-size dimension is declared unknown: onnxruntime's buffer reuse assumes dim_value > 0 ("Shape
    // mismatch attempting to re-use buffer. {0} != {1}" in an empty batch's gradient).
    const inputs = spec.inputs.map((reg) => valueInfo(name(reg), spec.nodeOfReg(reg).dtype, spec.nodeOfReg(reg).shape.map((d) => (d === 0 ? null : d))));
    const bytes = encodeModel(b.graph('symflow', inputs, outputs));
    // For `exportOnnx`, encoded when asked: the same graph with every output renamed out<k> (the sidecar's names)
    // by an Identity, and its outputs' shapes declared (the ONNX checker requires a shape on a graph's outputs;
    // onnxruntime does not, and the backend's own model goes without). A kept variable's output may be the empty
    // marker, so it declares only its rank.
    const exportModel = () => {
      const renames = outputNames.flatMap((n, k) => (n === `out${k}` ? [] : [{ opType: 'Identity', input: [n], output: [`out${k}`] }]));
      const g = b.graph('symflow', inputs, spec.results.map((reg, k) => {
        const shape = spec.nodeOfReg(reg).shape;
        return valueInfo(`out${k}`, spec.nodeOfReg(reg).dtype, spec.keeps.has(k) ? shape.map(() => null) : shape.map((d) => (d === 0 ? null : d)));
      }));
      return encodeModel({ ...g, node: [...(g.node ?? []), ...renames] });
    };
    const create = (threads: number) => {
      const opts: ort.InferenceSession.SessionOptions = {
        intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
        logSeverityLevel: this.logSeverityLevel, executionProviders: this.executionProviders,
        // NOTE: a multi-run step alternates between several models. Threads spin between the ops of a run (waking them
        // costs ~0.3 ms per MLP step) but stop when the run ends: idle pools that kept spinning stole the cores from
        // the next model (heun measured 6.9× an sgd step that way). Measured again for issue 16 (PROFILE.md): with
        // force_spinning_stop off a lone sgd model ran at best 5 % faster, heun (two models) 3.8× slower.
        extra: { session: { force_spinning_stop: '1' } },
        ...(this.probe?.profileFilePrefix === undefined ? {} : { enableProfiling: true, profileFilePrefix: `${this.probe.profileFilePrefix}-t${threads}` }),
      };
      const made = ort.InferenceSession.create(bytes, opts);
      made.catch(() => undefined);
      this.probe?.compiled?.({ bytes, options: opts, session: made });
      return made;
    };
    // Created once, when the function is compiled (the first call waits for it); with `threads: 'auto'`, the
    // 1-thread session when the chooser first asks for it.
    const sessions: (Promise<ort.InferenceSession> | undefined)[] = this.threads === 'auto' ? [undefined, create(this.cores)] : [create(this.threads)];
    const chooser = this.threads === 'auto' && this.cores > 1 ? new ThreadChooser() : undefined;
    const probe = this.probe;
    const threadsOf = (choice: number) => (this.threads === 'auto' ? (choice === 0 ? 1 : this.cores) : this.threads);
    const inputNames = spec.inputs.map(name);
    return {
      exportModel,
      async dispose() {
        await Promise.all(sessions.map(async (made) => (await made?.catch(() => undefined))?.release()));
      },
      async run(values) {
        const choice = chooser?.next() ?? sessions.length - 1;
        const made = (sessions[choice] ??= create(1));
        const s = await made.catch((e: unknown) => {
          throw new SymflowError('onnx', `onnxruntime refused the compiled model: ${e instanceof Error ? e.message : String(e)}`);
        });
        const feeds: Record<string, ort.Tensor> = {};
        inputNames.forEach((n, i) => (feeds[n] = asOrt(values[i]!)));
        let out: ort.InferenceSession.ReturnType;
        const t0 = performance.now();
        try {
          out = await s.run(feeds, outputNames);
        } catch (e) {
          throw runError(e, spec);
        }
        const ms = performance.now() - t0;
        chooser?.record(choice as ThreadChoice, ms);
        probe?.ran?.({ session: s, feeds, outputNames, ms, threads: threadsOf(choice) });
        // A kept variable comes back empty (see `keeps`): it is unchanged.
        return outputNames.map((n, k) => {
          const t = out[n]!;
          return spec.keeps.has(k) && t.size === 0 && sizeOf(spec.nodeOfReg(spec.keeps.get(k)!).shape as number[]) > 0 ? undefined : asDevice(t);
        });
      },
    };
  }
}

/** Refuses, at compile time and in plan order, the first node the onnx backend has no lowering for. */
function checkLowerings(block: Block): void {
  for (const step of block.steps) {
    if (step.kind === 'cond') step.blocks.forEach(checkLowerings);
    else if (!hasLowering(step.node.op)) throw new SymflowError(step.node.op, `no ONNX lowering for op '${step.node.op}' (node '${step.node.name}') on backend onnx`);
  }
}

/**
 * Lowers a planned block; a cond step becomes an ONNX `If` whose branches are the planned blocks. Values made
 * inside a branch get names of their own (a node both branches need is computed in each), outer ones keep theirs.
 */
function emitBlock(
  b: GraphBuilder, block: Block, spec: ProgramSpec, names: ReadonlyMap<number, string>, top: boolean, keeps: ReadonlyMap<number, number>,
): Map<number, string> {
  const local = new Map(names);
  const name = (reg: number) => local.get(reg) ?? `s${reg}`;
  const define = (reg: number) => {
    const n = top ? `s${reg}` : b.fresh(`s${reg}`);
    local.set(reg, n);
    return n;
  };
  for (const step of block.steps) {
    if (step.kind === 'node') {
      const inputs = step.inputs.map(name);
      lowerNode(b, step.node, inputs, step.node.inputs.map((id) => spec.ir.nodes[id]!), define(step.out));
      continue;
    }
    const pred = name(step.pred);
    const branches = step.blocks.map((inner, side) => {
      const c = b.child();
      const innerNames = emitBlock(c, inner, spec, local, false, keeps);
      const outs = inner.results.map((reg, i) => {
        const dtype = spec.nodeOfReg(reg).dtype;
        // A zero-size variable is passed through: its empty value is indistinguishable from the kept marker.
        const kept = keeps.get(step.outs[i]!) === reg && sizeOf(spec.nodeOfReg(reg).shape as number[]) > 0;
        const src = kept ? c.constant(dtype, [0], []) : innerNames.get(reg) ?? name(reg);
        const o = c.node('Identity', [src], {}, c.fresh(`branch${side}_${i}`));
        return valueInfo(o, dtype);
      });
      return c.graph(side === 0 ? 'then' : 'else', [], outs);
    });
    b.nodes.push({
      opType: 'If', input: [pred], output: step.outs.map(define),
      attribute: [
        { name: 'then_branch', type: 5, g: branches[0]! },
        { name: 'else_branch', type: 5, g: branches[1]! },
      ],
    });
  }
  return local;
}

/** Names the symflow node an onnxruntime error came from (ONNX node names are `symflowName#k`). */
function runError(e: unknown, spec: ProgramSpec): SymflowError {
  const msg = e instanceof Error ? e.message : String(e);
  const owner = /Name:'([^']*)#\d+'/.exec(msg)?.[1];
  const node = owner === undefined ? undefined : Object.values(spec.ir.nodes).find((n) => n.name === owner);
  if (node === undefined) return new SymflowError('onnx', `run failed on backend onnx: ${msg}`);
  const shapes = node.inputs.map((id) => shapeString(spec.ir.nodes[id]!.shape)).join(', ');
  const why = node.op === 'gather' && /out of data bounds/.test(msg) ? `an index is outside [0, n) along axis ${node.attrs['axis']}; ` : '';
  return new SymflowError(node.op, `failed at node '${node.name}' on backend onnx: ${why}${msg} (inputs ${shapes})`);
}
