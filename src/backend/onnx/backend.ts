import { availableParallelism } from 'node:os';
import type ort from 'onnxruntime-node';
import type onnxProto from 'onnx-proto';
import { SymflowError } from '../../graph/errors.js';
import { isSealed } from '../../graph/random.js';
import { shapeString, sizeOf } from '../../graph/tensor.js';
import type { HostTensor, TypedArray } from '../../graph/hostValue.js';
import { type DeviceTensor, type GraphProgram, ONNX_LOG_LEVELS, type OnnxLogLevel, type ProgramBackend, type ProgramSpec, type StepsProgram } from '../types.js';
import { encodeModel, GraphBuilder, tensorProto, valueInfo } from './builder.js';
import { checkLowerings, emitBlock } from './emit.js';
import { dropUnreadOutputs, fuseConvBias, renameValues } from './peephole.js';
import { stepsModel, stepsProgram } from './steps.js';
import { type ThreadChoice, ThreadChooser } from './threads.js';

const asOrt = (t: DeviceTensor) => t as unknown as ort.Tensor;
const asDevice = (t: ort.Tensor) => t as unknown as DeviceTensor;

export interface OnnxOptions {
  /**
   * Threads for one op (default: the number of cores), or `'auto'`: a 1-thread and an all-cores onnxruntime session
   * per model, each run on the one measured faster lately (see threads.ts). On onnx-wasm, `'auto'` is all cores.
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
 * The onnxruntime the backend runs on: onnxruntime-node (native, backend `onnx`) or onnxruntime-web (WebAssembly,
 * backend `onnx-wasm`). Both implement onnxruntime-common's API; only these two of its classes are used.
 */
export interface OnnxRuntime {
  readonly InferenceSession: typeof ort.InferenceSession;
  readonly Tensor: typeof ort.Tensor;
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
 * A compiled CPU backend: a whole session function becomes one ONNX model (forward pass, symbolic gradient,
 * updates, and lazy `cond` as ONNX `If`) run by onnxruntime — native (onnxruntime-node, backend `onnx`) or
 * WebAssembly (onnxruntime-web, backend `onnx-wasm`: the same models, for hosts where no native addon installs).
 * Variables live in host buffers owned by the session; new values come back as outputs and replace the old ones
 * only after the run succeeded.
 */
export class OnnxBackend implements ProgramBackend {
  readonly kind = 'program' as const;
  readonly passes = { fuseMatMul: true, explicitTranspose: false } as const;
  private readonly threads: number | 'auto';
  private readonly cores = availableParallelism();
  /** @internal See `OnnxProbe`. */
  probe: OnnxProbe | undefined;
  private readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  private readonly executionProviders: ort.InferenceSession.SessionOptions['executionProviders'];

  /**
   * @param opts threads, logs, providers @param ort the runtime (onnxruntime-node's module for `onnx`)
   * @param name `onnx`, or `onnx-wasm` for onnxruntime-web
   */
  constructor(opts: OnnxOptions, private readonly ort: OnnxRuntime, readonly name: 'onnx' | 'onnx-wasm' = 'onnx') {
    // onnxruntime-web has one thread pool for the process: no per-session choice to make.
    const threads = opts.intraOpNumThreads ?? this.cores;
    this.threads = threads === 'auto' && name === 'onnx-wasm' ? this.cores : threads;
    this.logSeverityLevel = ONNX_LOG_LEVELS.indexOf(opts.logs ?? 'fatal') as 0 | 1 | 2 | 3 | 4;
    this.executionProviders = [...(opts.executionProviders ?? [name === 'onnx' ? 'cpu' : 'wasm'])] as ort.InferenceSession.SessionOptions['executionProviders'];
  }

  async activate(): Promise<void> {}

  isActive(): boolean {
    return true;
  }

  use(): void {}

  upload(value: HostTensor): DeviceTensor {
    // A copy, as the caller may write into its array later; a sealed one (a random draw, a stacked batch) is never
    // written (see graph/random.ts).
    return asDevice(new this.ort.Tensor(value.dtype, isSealed(value.data) ? value.data : value.data.slice(), value.shape));
  }

  /** The host value of a tensor without a copy (host buffers are never written after creation): to read, not keep. */
  view(t: DeviceTensor): HostTensor {
    const x = asOrt(t);
    return { shape: [...x.dims], dtype: x.type as HostTensor['dtype'], data: x.data as TypedArray };
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
    checkLowerings(spec.top, this.name);
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
    const outputs = spec.results.map((reg, k) => valueInfo(`out${k}`, spec.nodeOfReg(reg).dtype));
    // Top-level values are named s<register>: their symflow shapes are known.
    const shapeOf = (v: string) => (/^s\d+$/.test(v) ? spec.nodeOfReg(Number(v.slice(1))).shape : undefined);
    // Every result is made by a node of the top graph (sources are handed over on the host), once each: the node
    // that makes it names its output out<k>, with no copy.
    const resultNames = new Map(spec.results.map((reg, k) => [name(reg), `out${k}`]));
    b.replaceNodes(renameValues(dropUnreadOutputs(fuseConvBias(b.nodes, [], shapeOf), [...resultNames.keys()]), resultNames));
    // NOTE: a 0-size dimension is declared unknown: onnxruntime's buffer reuse assumes dim_value > 0 ("Shape
    // mismatch attempting to re-use buffer. {0} != {1}" in an empty batch's gradient).
    const inputs = spec.inputs.map((reg) => valueInfo(name(reg), spec.nodeOfReg(reg).dtype, spec.nodeOfReg(reg).shape.map((d) => (d === 0 ? null : d))));
    const bytes = encodeModel(b.graph('symflow', inputs, outputs));
    // For `exportOnnx`, encoded when asked: the same graph with its outputs' shapes declared (the ONNX checker
    // requires a shape on a graph's outputs; onnxruntime does not, and the backend's own model goes without). A kept
    // variable's output may be the empty marker, so it declares only its rank.
    const exportModel = () => encodeModel(b.graph('symflow', inputs, spec.results.map((reg, k) => {
      const shape = spec.nodeOfReg(reg).shape;
      return valueInfo(`out${k}`, spec.nodeOfReg(reg).dtype, spec.keeps.has(k) ? shape.map(() => null) : shape.map((d) => (d === 0 ? null : d)));
    })));
    const runtime = this.ort;
    const backendName = this.name;
    const create = (threads: number, model = bytes) => {
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
      const made = runtime.InferenceSession.create(model, opts);
      made.catch(() => undefined);
      this.probe?.compiled?.({ bytes: model, options: opts, session: made });
      return made;
    };
    // Created once, when the function is compiled (the first call waits for it); with `threads: 'auto'`, the
    // 1-thread session when the chooser first asks for it.
    const sessions: (Promise<ort.InferenceSession> | undefined)[] = this.threads === 'auto' ? [undefined, create(this.cores)] : [create(this.threads)];
    const chooser = this.threads === 'auto' && this.cores > 1 ? new ThreadChooser() : undefined;
    const probe = this.probe;
    const threadsOf = (choice: number) => (this.threads === 'auto' ? (choice === 0 ? 1 : this.cores) : this.threads);
    // k steps in one run: all cores under 'auto' too (the chooser times single runs).
    const loopThreads = this.threads === 'auto' ? this.cores : this.threads;
    const inputNames = spec.inputs.map(name);
    const outputNames = spec.results.map((_, k) => `out${k}`);
    // The k-step Loop model, made when `steps` is first asked for (one per program: its spec never changes).
    let loop: { program: StepsProgram; session: Promise<ort.InferenceSession> } | undefined;
    return {
      exportModel,
      steps(steps) {
        if (loop === undefined) {
          const model = stepsModel(spec, steps);
          const looped = create(loopThreads, model);
          loop = { program: { ...stepsProgram(runtime, steps, looped, (e) => runError(e, spec, backendName, b.nodes)), exportModel: () => model }, session: looped };
        }
        return loop.program;
      },
      async dispose() {
        await Promise.all([...sessions, loop?.session].map(async (made) => (await made?.catch(() => undefined))?.release()));
      },
      async run(values) {
        const choice = chooser?.next() ?? sessions.length - 1;
        const made = (sessions[choice] ??= create(1));
        const s = await made.catch((e: unknown) => {
          throw new SymflowError(backendName, `onnxruntime refused the compiled model: ${e instanceof Error ? e.message : String(e)}`);
        });
        const feeds: Record<string, ort.Tensor> = {};
        inputNames.forEach((n, i) => (feeds[n] = asOrt(values[i]!)));
        let out: ort.InferenceSession.ReturnType;
        const t0 = performance.now();
        try {
          out = await s.run(feeds, outputNames);
        } catch (e) {
          throw runError(e, spec, backendName, b.nodes);
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

// ONNX ops whose kernels check their inputs' values or shapes at run time: where onnxruntime-web's message names
// no node (it reports the failed check, not the node), the symflow node that has the only such op is the one.
const CHECKING = new Set(['Reshape', 'Gather', 'GatherElements', 'ArgMax', 'ArgMin', 'Expand']);

/**
 * Names the symflow node an onnxruntime error came from: by the ONNX node name native onnxruntime reports
 * (`symflowName#k`), else (onnxruntime-web) by the op its message names (`…/cpu/tensor/reshape_helper.h…`) or,
 * failing that, the only node of the model whose op checks its inputs at run time.
 */
function runError(e: unknown, spec: ProgramSpec, backend: string, nodes: readonly onnxProto.onnx.INodeProto[]): SymflowError {
  const msg = e instanceof Error ? e.message : String(e);
  const ownersOf = (pick: (opType: string) => boolean) => {
    const found = new Set<string>();
    const visit = (ns: readonly onnxProto.onnx.INodeProto[]) => {
      for (const n of ns) {
        if (pick(n.opType ?? '') && n.name) found.add(n.name.replace(/#\d+$/, ''));
        for (const a of n.attribute ?? []) if (a.g) visit(a.g.node ?? []);
      }
    };
    visit(nodes);
    return [...found];
  };
  const named = /Name:'([^']*)#\d+'/.exec(msg)?.[1];
  const file = /providers\/cpu\/\w+\/([a-z_]+?)(?:_helper|_op|_impl)?\.(?:h|cc)/.exec(msg)?.[1]?.replace(/_/g, '');
  const byFile = file === undefined ? [] : ownersOf((t) => t.toLowerCase() === file);
  const checking = ownersOf((t) => CHECKING.has(t));
  const owner = named ?? (byFile.length === 1 ? byFile[0] : named === undefined && byFile.length === 0 && checking.length === 1 ? checking[0] : undefined);
  const node = owner === undefined ? undefined : Object.values(spec.ir.nodes).find((n) => n.name === owner);
  if (node === undefined) return new SymflowError(backend, `run failed on backend ${backend}: ${msg}`);
  const shapes = node.inputs.map((id) => shapeString(spec.ir.nodes[id]!.shape)).join(', ');
  const why = node.op === 'gather' && /out of data bounds/.test(msg) ? `an index is outside [0, n) along axis ${node.attrs['axis']}; ` : '';
  return new SymflowError(node.op, `failed at node '${node.name}' on backend ${backend}: ${why}${msg} (inputs ${shapes})`);
}
