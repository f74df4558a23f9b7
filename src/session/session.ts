import { type BackendChoice, type BackendName, type DeviceTensor, type Backend, type GraphProgram, loadBackend, type OnnxExecutionProvider, type OnnxLogLevel } from '../backend/index.js';
import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { checkFed } from '../graph/feedChecks.js';
import { type HostTensor, toHostTensor, type Value } from '../graph/hostValue.js';
import { initialValue } from '../graph/initializers.js';
import type { NodeIR } from '../graph/ir.js';
import { quoteName } from '../graph/limits.js';
import { isTensor, isVariable, shapeString, type Tensor, type Variable } from '../graph/tensor.js';
import { compileFunction, type CompiledFunction, type Source } from './compileFunction.js';
import { drawRandom, randomKey } from '../graph/random.js';
import { checkVariableList, encodeCheckpoint, readCheckpoint, uploadAll, writeAtomic } from './checkpoint.js';
import { execute, executeProgram, executeSteps, type StepsOutcome } from './execute.js';
import { DeviceValue, Snapshot } from './handles.js';
import { TransactionQueue } from './transactions.js';

export { DeviceValue, Snapshot };

const RUN_CACHE = 64;

/** Options of `Session.create`: the backend and how it runs. */
export interface SessionOptions {
  /** Backend: `auto` (default) picks tensorflow when tfjs-node can be imported, else onnx, else wasm, else cpu. */
  backend?: BackendChoice;
  /**
   * Run the graph rewrites (shape simplification, constant folding, CSE, matMul fusion) before execution
   * (default true). Pruning and the backend's own lowerings always run. Turning the rewrites off is for debugging
   * and for checking that they change no result.
   */
  optimize?: boolean;
  /**
   * Intra-op threads of the onnx backend's runs (default: the number of cores), or `'auto'`: each compiled model
   * gets a 1-thread and an all-cores onnxruntime session and runs on the one it measured faster lately (re-measured
   * now and then), so that a step degrades gracefully when other processes take cores. Both give the same values
   * (onnxruntime's CPU kernels split work over output elements: checked bit for bit on MLPs and a conv net), so it
   * may switch mid-training. Other backends ignore it.
   */
  threads?: number | 'auto';
  /**
   * onnxruntime's own log lines (`[E:onnxruntime:…]`) on stderr at this severity and above: `'verbose'`, `'info'`,
   * `'warning'`, `'error'` or `'fatal'` (default: a failed run is already an error carrying onnxruntime's message).
   * Other backends ignore it.
   */
  onnxLogs?: OnnxLogLevel;
  /**
   * The onnx backend's onnxruntime execution providers, in order of preference, passed through to
   * `InferenceSession.create` (default `['cpu']`): names (`'cuda'`, `'cpu'`, …) or `{ name, ...providerOptions }`
   * objects. Other backends ignore it. Validated here (a non-empty array of names or objects); whether a provider
   * works is onnxruntime-node's business. NOTE: only `['cpu']` is tested here (no GPU on the test hosts). To check a
   * GPU provider, pass `['cuda', 'cpu']` where your onnxruntime-node build has CUDA and compare one training step
   * from the same state against a `['cpu']` session's (close, not bit-identical: GPU kernels sum in another order).
   */
  executionProviders?: readonly OnnxExecutionProvider[];
  /**
   * The seed of random nodes built without a seed of their own (default 0): their values depend on it, the node
   * (its name) and the step counter. Nodes with an explicit seed ignore it.
   */
  seed?: number;
}

/** What `session.function` compiles: its inputs, outputs and updates, and how it runs. */
export interface FunctionSpec {
  /** Tensors fed, in order, by the function's arguments (usually placeholders; any tensor may be fed). */
  inputs?: readonly Tensor[];
  /** Tensors whose values the function returns. */
  outputs?: readonly Tensor[];
  /** `[variable, newValue]` pairs and `cond`s of them, applied together after every output is computed. */
  updates?: readonly Update[];
  /**
   * Apply the updates only when every new float value the call computed (in the branches it took) is finite, and
   * so is every tensor listed (e.g. the loss). The check is part of the run — one sum per new value — and the
   * function then returns one more output, last: a bool scalar, whether the updates were applied. A sum of finite
   * values that overflows float32 (beyond ±3.4e38) also refuses; `TrainStep` tells that case apart and applies it.
   */
  applyIfFinite?: boolean | readonly Tensor[];
  /**
   * Compile for training: the learning phase is true (dropout drops, …). `TrainStep` compiles its runs so; every
   * other function, `session.run` and validation default to false.
   */
  training?: boolean;
}


/** One random source's value at one step, with what drew it. */
interface Draw {
  readonly attrs: { dist: string; seed: number; salt: number; a: number; b: number };
  readonly value: HostTensor;
}

/** Options of `Session.run`. */
export interface RunOptions {
  /** Evaluate in the learning phase (dropout drops, at the session's current step); default false. */
  training?: boolean;
}

/** What a session function accepts per input. */
export type FeedValue = Value | DeviceValue;

/**
 * A compiled session function: one call is one run. Every output and every new value is computed from the
 * variables as they were before the call; then all updates are applied together. A call that fails applies none.
 */
export interface SessionFunction {
  (values?: readonly FeedValue[]): Promise<HostTensor[]>;
  /** The tensors each call's values feed, in order. */
  readonly inputs: readonly Tensor[];
  /** The tensors each call returns, in order (plus the guard's verdict, last, with `applyIfFinite`). */
  readonly outputs: readonly Tensor[];
  /** Kernels the function can run (both branches of every cond counted). */
  readonly kernelCount: number;
  /**
   * Releases what the function holds (its compiled program — an onnxruntime session on onnx — and its constants),
   * after the calls issued before it; later calls are refused.
   */
  dispose(): Promise<void>;
}

/** @internal What a session function was compiled from, for plan pictures (`planToDot` re-plans it). */
export const FUNCTION_SOURCE = Symbol('symflow.functionSource');

/** @internal The compiled function behind a session function (`exportOnnx` reads its program and sources). */
export const COMPILED_FUNCTION = Symbol('symflow.compiledFunction');

/** The feeds of `session.run`: each fed tensor with its value, as a Map or a list of pairs. */
export type Feeds = Map<Tensor, FeedValue> | readonly (readonly [Tensor, FeedValue])[];

/** `the function of outputs 'loss' and updates of 'w', 'b'`: how errors name a compiled function. */
function describeFunction(compiled: CompiledFunction): string {
  const names = (list: readonly { name: string }[]) => {
    const shown = list.slice(0, 3).map((t) => `'${t.name}'`).join(', ');
    return list.length > 3 ? `${shown} and ${list.length - 3} more` : shown;
  };
  const parts = [
    ...(compiled.outputs.length > 0 ? [`outputs ${names(compiled.outputs)}`] : []),
    ...(compiled.updates.length > 0 ? [`updates of ${names(compiled.updates.map((u) => u.variable))}`] : []),
  ];
  return parts.length > 0 ? `the function of ${parts.join(' and ')}` : 'the function';
}

/**
 * A session: variable values on one backend, and compiled functions that run graphs against them.
 *
 * ```ts
 * const session = await Session.create({ backend: 'wasm' });
 * const step = session.function({ inputs: [x, y], outputs: [loss], updates: [[w, sub(w, mul(0.1, gw))]] });
 * const [l] = await step([xs, ys]);
 * ```
 */
export class Session {
  /** @internal */ readonly backendImpl: Backend;
  /** Each variable's value on the backend; changed only through `assign` (and first use). */
  private readonly store = new Map<Variable, DeviceTensor>();
  /** @internal */ readonly constants = new Map<number, DeviceTensor>();
  private readonly runCache = new Map<string, CompiledFunction>();
  private disposed = false;

  /** @internal */ readonly optimizeGraphs: boolean;

  /** @internal */ readonly seed: number;
  /** Training steps taken: part of every random node's key (one value per step, the same for all its runs). */
  private randomStep = 0;
  /** This step's draws, by node key and shape: a step's runs share them. */
  private draws = new Map<string, Draw>();

  private constructor(backend: Backend, optimize: boolean, seed: number) {
    this.backendImpl = backend;
    this.optimizeGraphs = optimize;
    this.seed = seed;
  }

  /**
   * The training steps this session has taken, the counter random nodes are keyed by. `TrainStep.step` moves it
   * once per step (a failed or skipped step too); checkpoints save and restore it.
   */
  get step(): number {
    return this.randomStep;
  }

  /** @internal Moves the step counter: called once at the end of every `TrainStep.step`. */
  advanceStep(): void {
    this.randomStep++;
    this.draws = new Map();
  }

  /** @internal Sets the step counter back (`TrainStep.steps` undoing the steps of a call that failed). */
  rewindStep(step: number): void {
    this.randomStep = step;
    this.draws = new Map();
  }

  /**
   * @internal The value of a random source for one call: its shape read from the feeds, drawn at this step (or at
   * `step`, for the later calls of `TrainStep.steps`: drawn as that step will draw it, not kept).
   */
  randomValue(src: Extract<Source, { kind: 'random' }>, feeds: readonly { readonly shape: readonly number[] }[], step = this.randomStep): HostTensor {
    const shape = src.dims.map((d) => (typeof d === 'number' ? d : feeds[d.input]!.shape[d.axis]!));
    const a = src.node.attrs as { dist: string; seed: number; salt: number; a: number; b: number };
    if (step !== this.randomStep) return { shape, dtype: 'float32', data: drawRandom(a, randomKey(a, this.seed, step), shape) };
    const key = `${src.key}|${shape.join(',')}`;
    let d = this.draws.get(key);
    if (d === undefined) {
      if (this.draws.size >= 256) this.draws.clear(); // many shapes at one step (runs outside training): bounded
      d = { attrs: a, value: { shape, dtype: 'float32', data: drawRandom(a, randomKey(a, this.seed, this.randomStep), shape) } };
      this.draws.set(key, d);
    }
    return d.value;
  }

  /**
   * Creates a session on a backend.
   * @param opts `{backend}`: 'auto' | 'onnx' | 'wasm' | 'cpu' | 'tensorflow'
   * @returns the session, once its backend is ready
   */
  static async create(opts: SessionOptions = {}): Promise<Session> {
    const threads = opts?.threads;
    if (threads !== undefined && threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= 1024)) {
      throw new SymflowError('Session.create', `threads must be an integer from 1 to 1024, got ${typeof threads === 'string' ? JSON.stringify(threads) : String(threads)} (or 'auto': the faster of 1 thread and all cores, measured as it runs)`);
    }
    const seed = opts?.seed ?? 0;
    if (!(Number.isSafeInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
      throw new SymflowError('Session.create', `seed must be an integer from 0 to 4294967295, got ${String(seed)}`);
    }
    return new Session(await loadBackend(opts.backend ?? 'auto', { threads, onnxLogs: opts.onnxLogs, executionProviders: opts.executionProviders }), opts.optimize ?? true, seed);
  }

  /** The backend that runs this session's kernels. */
  get backend(): BackendName {
    return this.backendImpl.name;
  }

  /**
   * Compiles a function of the graph: `K.function(inputs, outputs, updates)`. Compiles once (prune, order, plan
   * each intermediate's disposal), then every call reuses the plan.
   * @param spec inputs fed by the arguments, outputs returned, updates applied
   * @returns the callable
   */
  function(spec: FunctionSpec): SessionFunction {
    this.checkAlive('session.function');
    const compiled = this.track(compileFunction(spec, this.backendImpl, 'session.function', this.optimizeGraphs));
    let released: Promise<void> | undefined;
    const f = ((values: readonly FeedValue[] = []) => {
      if (released !== undefined) return Promise.reject(new SymflowError(compiled.who, `${describeFunction(compiled)} is disposed; compile it again to call it`));
      return this.call(compiled, values);
    }) as SessionFunction;
    const dispose = (): Promise<void> => {
      released ??= this.disposed ? Promise.resolve() : this.exclusive(() => this.release(compiled), 'release');
      return released;
    };
    const source = { spec: { ...spec }, passes: this.backendImpl.passes, rewrite: this.optimizeGraphs };
    return Object.assign(f, { inputs: compiled.inputs, outputs: compiled.outputs, kernelCount: compiled.kernelCount, dispose, [FUNCTION_SOURCE]: source, [COMPILED_FUNCTION]: compiled });
  }

  /**
   * Evaluates fetches. Any tensor may be fed, which cuts off what lies upstream of it; only the subgraph the
   * fetches need runs.
   * @param fetches one tensor or a list
   * @param feeds a Map or a list of [tensor, value] pairs
   * @returns host values, one per fetch (a single one for a single fetch)
   */
  run(fetches: Tensor, feeds?: Feeds, opts?: RunOptions): Promise<HostTensor>;
  run(fetches: readonly Tensor[], feeds?: Feeds, opts?: RunOptions): Promise<HostTensor[]>;
  async run(fetches: Tensor | readonly Tensor[], feeds: Feeds = [], opts: RunOptions = {}): Promise<HostTensor | HostTensor[]> {
    this.checkAlive('Session.run');
    const list = isTensor(fetches) ? [fetches] : [...fetches];
    const pairs = feeds instanceof Map ? [...feeds.entries()] : [...feeds];
    pairs.forEach(([t], i) => { if (!isTensor(t)) throw new SymflowError('Session.run', `feeds[${i}] key is not a Tensor`); });
    list.forEach((t, i) => { if (!isTensor(t)) throw new SymflowError('Session.run', `fetches[${i}] is not a Tensor`); });
    const inputs = pairs.map(([t]) => t);
    const training = opts?.training === true;
    const key = `${list.map((t) => t.id).join(',')}|${inputs.map((t) => t.id).join(',')}|${training}`;
    let compiled = this.runCache.get(key);
    if (compiled === undefined) {
      // A run meets its variables only once it succeeds: a failed run changes nothing, not what checkpoints cover.
      compiled = this.track(compileFunction({ inputs, outputs: list, training }, this.backendImpl, 'Session.run', this.optimizeGraphs), false);
      this.runCache.set(key, compiled);
      this.evictRuns();
    } else {
      // Most recently used last, so eviction drops the least recently used.
      this.runCache.delete(key);
      this.runCache.set(key, compiled);
    }
    const out = await this.call(compiled, pairs.map(([, v]) => v));
    this.meet(compiled);
    return isTensor(fetches) ? out[0]! : out;
  }

  /**
   * Moves a value to the backend once, to be fed to several calls (the runs of one multi-run step).
   * @param like the tensor it will be fed to (its dtype and static shape check the value)
   * @param value the value
   * @returns a handle to dispose when done
   */
  upload(like: Tensor, value: Value): DeviceValue {
    this.checkAlive('Session.upload');
    const host = checkFed(`feed '${like.name}'`, like, toHostTensor(`feed '${like.name}'`, value, like.dtype, like.shape));
    return this.adopt(this.backendImpl.upload(host), host.shape, host.dtype);
  }

  /** @internal A handle on a backend tensor the session now tracks (freed with the session if not before). */
  adopt(t: DeviceTensor, shape: readonly number[], dtype: HostTensor['dtype']): DeviceValue {
    const d = new DeviceValue(this, t, shape, dtype);
    this.live.add(d);
    return d;
  }

  /**
   * Reads a variable's value (initialising it on first use).
   * @param v the variable @returns its value on the host
   */
  async getValue(v: Variable): Promise<HostTensor> {
    this.checkAlive('Session.getValue');
    if (!isVariable(v)) throw new SymflowError('Session.getValue', `expected a variable, got ${String(v)}`);
    return this.exclusive(async () => {
      const value = this.backendImpl.download(this.variableTensor(v));
      this.know(v);
      return value;
    }, 'Session.getValue');
  }

  /**
   * Sets a variable's value; the shape and dtype must match the variable's.
   * @param v the variable @param value the new value
   */
  async setValue(v: Variable, value: Value): Promise<void> {
    this.checkAlive('Session.setValue');
    if (!isVariable(v)) throw new SymflowError('Session.setValue', `expected a variable, got ${String(v)}`);
    const host = toHostTensor(`Session.setValue: variable '${v.name}'`, value, v.dtype, v.shape);
    await this.exclusive(async () => {
      this.know(v, false);
      this.assign([[v, this.backendImpl.upload(host)]]);
      this.know(v);
    }, 'Session.setValue');
  }

  /**
   * Remembers the current values of `variables` without copying them (values are immutable on the backend, so
   * holding a second handle is enough). `restore()` puts them back; this is how multi-run steps stay atomic.
   * @param variables the variables to remember @returns a snapshot to restore or dispose
   */
  snapshot(variables: readonly Variable[]): Snapshot {
    this.checkAlive('Session.snapshot');
    this.checkQuiet('Session.snapshot');
    if (typeof (variables as Iterable<Variable> | undefined)?.[Symbol.iterator] !== 'function') {
      throw new SymflowError('Session.snapshot', 'variables must be an array of variables');
    }
    const given = [...variables];
    given.forEach((v, i) => {
      if (!isVariable(v)) throw new SymflowError('Session.snapshot', `variables[${i}] is not a variable (got ${isTensor(v) ? String(v) : typeof v})`);
    });
    const list = [...new Set(given)];
    const fresh = list.filter((v) => !this.store.has(v));
    const held = new Map<Variable, DeviceTensor>();
    try {
      for (const v of list) held.set(v, this.backendImpl.alias(this.variableTensor(v)));
      for (const v of list) this.know(v);
    } catch (e) {
      // Nothing taken stays behind: neither the aliases nor the first values uploaded for it.
      for (const t of held.values()) this.backendImpl.dispose(t);
      this.dropFirstValues(fresh);
      throw e;
    }
    const snap = new Snapshot(this, held);
    this.live.add(snap);
    return snap;
  }

  /**
   * Runs `fn` as ONE transaction in the session's call order: it starts when every call issued before it has
   * finished, the session's calls made inside it (also through a `TrainStep`) run in it, and calls issued from
   * anywhere else meanwhile wait until it ends. A training step is one transaction; so is `fit`'s step with its
   * non-finite check. Don't await, inside `fn`, a call issued outside it after it started: that call waits for `fn`.
   * ```ts
   * await session.transaction(async () => {
   *   const snap = session.snapshot(session.variables);
   *   try { await step([xs, ys]); } catch (e) { snap.restore(); throw e; } finally { snap.dispose(); }
   * });
   * ```
   * @param fn the work @returns what `fn` returns
   */
  transaction<T>(fn: () => Promise<T> | T): Promise<T> {
    this.checkAlive('Session.transaction');
    if (typeof fn !== 'function') throw new SymflowError('Session.transaction', `fn must be a function, got ${typeof fn}`);
    return this.exclusive(fn, 'Session.transaction');
  }

  /** @internal Whether the caller runs inside one of this session's open transactions. */
  get inTransaction(): boolean {
    return this.calls.inTransaction;
  }

  /**
   * Frees every tensor the session holds — variables, constants, uploaded batches, snapshots — and refuses later
   * calls. A step in flight fails at its next run with an error saying the session was disposed, and applies
   * nothing; a backend run in flight finishes first and its results are dropped. Resolves when all is released.
   */
  dispose(): Promise<void> {
    if (this.disposed) return this.released;
    this.disposed = true;
    for (const d of [...this.live]) d.dispose();
    for (const t of [...this.store.values(), ...this.constants.values()]) this.backendImpl.dispose(t);
    this.store.clear();
    this.constants.clear();
    this.constantUsers.clear();
    this.runCache.clear();
    const programs = this.programs.splice(0);
    this.released = this.running.then(() => Promise.all(programs.map((p) => p.dispose()))).then(() => undefined, () => undefined);
    return this.released;
  }

  private released: Promise<void> = Promise.resolve();
  /** The backend run in flight (onnx runs are asynchronous): `dispose` releases programs after it. */
  private running: Promise<unknown> = Promise.resolve();
  /** Uploaded batches and snapshots not yet disposed: the session frees them when it is disposed. */
  private readonly live = new Set<{ dispose(): void }>();
  /** How many compiled functions use each constant (by node id): a constant is freed with its last user. */
  private readonly constantUsers = new Map<number, number>();

  /** @internal */
  forget(x: { dispose(): void }): void {
    this.live.delete(x);
  }

  /** @internal Refuses work that must not land in the middle of a call (snapshots taken outside a transaction). */
  checkQuiet(who: string): void {
    if (this.calls.busy && !this.inTransaction) {
      throw new SymflowError(who, 'calls of this session are in flight; do this inside session.transaction(…) so it sees the state between calls');
    }
  }

  private readonly programs: GraphProgram[] = [];

  /** Releases a compiled function's program and its share of the constants (in call order). */
  private async release(compiled: CompiledFunction): Promise<void> {
    if (this.disposed) return;
    for (const src of compiled.sources) {
      if (src.kind !== 'constant') continue;
      const id = src.node.id;
      const users = (this.constantUsers.get(id) ?? 1) - 1;
      if (users > 0) {
        this.constantUsers.set(id, users);
        continue;
      }
      this.constantUsers.delete(id);
      const t = this.constants.get(id);
      this.constants.delete(id);
      if (t !== undefined) this.backendImpl.dispose(t);
    }
    if (compiled.exec.kind !== 'program') return;
    const program = compiled.exec.program;
    const i = this.programs.indexOf(program);
    if (i >= 0) this.programs.splice(i, 1);
    await program.dispose();
  }

  /**
   * `run` keeps at most RUN_CACHE compiled graphs (each holds an onnxruntime session on onnx); the least recently
   * used is released, after the calls queued before it.
   */
  private evictRuns(): void {
    while (this.runCache.size > RUN_CACHE) {
      const [key, old] = this.runCache.entries().next().value as [string, CompiledFunction];
      this.runCache.delete(key);
      void this.exclusive(() => this.release(old), 'release');
    }
  }
  private writes: Promise<unknown> = Promise.resolve();
  /** Every variable this session has met (compiled functions, reads, writes), by name: what checkpoints cover. */
  private readonly known = new Map<string, Variable>();

  /** `meet`: whether the function's variables count as met now (compiled functions) or after a successful call (runs). */
  private track(compiled: CompiledFunction, meet = true): CompiledFunction {
    if (compiled.exec.kind === 'program') this.programs.push(compiled.exec.program);
    for (const src of compiled.sources) {
      if (src.kind === 'constant') this.constantUsers.set(src.node.id, (this.constantUsers.get(src.node.id) ?? 0) + 1);
    }
    this.meet(compiled, meet);
    return compiled;
  }

  private meet(compiled: CompiledFunction, commit = true): void {
    for (const src of compiled.sources) if (src.kind === 'variable') this.know(src.tensor, commit);
    for (const u of compiled.updates) this.know(u.variable, commit);
  }

  /** Adds `v` to what checkpoints cover; with `commit` false only checks it could be (no other variable has its name). */
  private know(v: Variable, commit = true): void {
    const other = this.known.get(v.name);
    if (other !== undefined && other !== v) {
      throw new SymflowError('Session', `two different variables are named ${quoteName(v.name)}: this session already holds one from another build (building a model again makes new variables with the same names); use one session per graph build (restore a checkpoint into a new session), or bind the variables you have with fromJSON(json, {variables})`);
    }
    if (commit) this.known.set(v.name, v);
  }

  /** The variables checkpoints cover by default: every variable the session has met, in name order. */
  get variables(): Variable[] {
    return [...this.known.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Saves variables — parameters and optimizer state — and the step counter to a versioned, checksummed file, atomically (a temp file,
   * fsynced, renamed over `path`): a crash during a save leaves the previous checkpoint intact.
   * ```ts
   * await session.save('run/ckpt.bin');
   * ```
   * @param path the file @param opts variables to save (default: every variable the session has met), and `meta`:
   * JSON-able data stored in the header (fit's progress, written by `checkpointEvery`), returned by `restore`
   */
  async save(path: string, opts: { variables?: readonly Variable[]; meta?: Readonly<Record<string, unknown>> } = {}): Promise<void> {
    this.checkAlive('Session.save');
    const vars = checkVariableList('Session.save', opts.variables ?? this.variables);
    // Values are read in call order (never in the middle of a call); the file is written after.
    const { entries, step } = await this.exclusive(async () => {
      return { entries: vars.map((v) => ({ name: v.name, value: this.backendImpl.download(this.variableTensor(v)) })), step: this.randomStep };
    }, 'Session.save');
    // Files are written in the order the values were read, so a later save is never overwritten by an earlier one.
    const meta = opts.meta;
    if (meta !== undefined && (meta === null || typeof meta !== 'object' || Array.isArray(meta))) throw new SymflowError('Session.save', 'meta must be an object');
    const write = this.writes.then(() => writeAtomic(path, encodeCheckpoint(entries, { step, ...(meta === undefined ? {} : { meta }) })));
    this.writes = write.catch(() => undefined);
    try {
      await write;
    } catch (e) {
      throw new SymflowError('Session.save', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    for (const v of vars) this.know(v);
  }

  /**
   * Restores variables from a checkpoint, all or nothing. Without `variables`, the file must hold exactly the
   * variables this session has met, with the same dtypes and shapes; a file of another graph is refused with the
   * differences listed, and a corrupt or truncated one by its checksum. Either way nothing changes.
   * @param path the file @param opts variables to restore (then extra entries in the file are ignored)
   * @returns the `meta` the file was saved with (fit's progress), if any
   */
  async restore(path: string, opts: { variables?: readonly Variable[] } = {}): Promise<{
    /** The JSON the checkpoint was saved with (`Session.save`'s `meta`; `checkpointEvery` stores fit's progress as `meta.fit`). */
    meta?: Record<string, unknown>;
  }> {
    this.checkAlive('Session.restore');
    const vars = checkVariableList('Session.restore', opts.variables ?? this.variables);
    const { entries, step, meta } = await readCheckpoint(path);
    const byName = new Map(entries.map((e) => [e.name, e.value]));
    const list = (names: string[]) => `${names.slice(0, 5).map((n) => `'${n}'`).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`;
    const missing = vars.filter((v) => !byName.has(v.name)).map((v) => v.name);
    const extra = opts.variables === undefined ? [...byName.keys()].filter((name) => !this.known.has(name)) : [];
    const reshaped = vars.flatMap((v) => {
      const e = byName.get(v.name);
      const same = e === undefined || (e.dtype === v.dtype && e.shape.length === v.rank && e.shape.every((d, i) => d === v.shape[i]));
      return same ? [] : [`'${v.name}' is ${v.dtype} ${shapeString(v.shape)} here but ${e!.dtype} ${shapeString(e!.shape)} in the file`];
    });
    const problems = [
      ...reshaped.slice(0, 5),
      ...(missing.length ? [`${missing.length} variable(s) of this session are not in the file: ${list(missing)}`] : []),
      ...(extra.length ? [`the file has ${extra.length} variable(s) this session does not: ${list(extra)}${missing.length === 0 && vars.length < entries.length ? ' (restore after compile, so the session knows the optimizer\'s variables too, or pass `variables` to restore only some)' : ''}`] : []),
    ];
    if (problems.length > 0) throw new SymflowError('Session.restore', `${path} does not match this graph: ${problems.join('; ')}`);
    await this.exclusive(async () => {
      for (const v of vars) this.know(v, false);
      const uploaded = uploadAll(this.backendImpl, vars.map((v) => byName.get(v.name)!));
      for (const v of vars) this.know(v);
      this.assign(vars.map((v, i) => [v, uploaded[i]!] as const));
      // The step counter too, so random nodes draw after a restore what they drew after the save.
      if (step !== undefined) {
        this.randomStep = step;
        this.draws = new Map();
      }
    }, 'Session.restore');
    return meta === undefined ? {} : { meta };
  }

  /** Runs `fn` as one transaction in the session's call order (at once when already inside one of them). */
  private exclusive<T>(fn: () => Promise<T> | T, who = 'Session'): Promise<T> {
    return this.calls.run(fn, who);
  }

  // Queued before a dispose, run after it: refused (a released function's cleanup still runs).
  private readonly calls = new TransactionQueue((who) => (this.disposed && who !== 'release' ? new SymflowError(who, 'the session is disposed') : undefined));

  /** Whether `dispose()` was called: every later call is refused. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Live tensors on the backend engine (for leak checks). */
  numTensors(): number {
    return this.backendImpl.numTensors();
  }

  /**
   * @internal Gives variables new values (the session takes the tensors), all at once, then frees the values they
   * replace — what a call's commit, a snapshot's restore and `setValue` do.
   */
  assign(pairs: readonly (readonly [Variable, DeviceTensor])[]): void {
    const old: DeviceTensor[] = [];
    for (const [v, t] of pairs) {
      const prev = this.store.get(v);
      if (prev !== undefined && prev !== t) old.push(prev);
      this.store.set(v, t);
    }
    for (const t of old) this.backendImpl.dispose(t);
  }

  /**
   * @internal An object that changes whenever `v` is assigned (its current tensor): a program that keeps something
   * computed from `v` (a Runge–Kutta step's last gradient) checks that nobody wrote `v` since.
   */
  valueToken(v: Variable): unknown {
    return this.store.get(v);
  }

  /** @internal Whether `v` has a value in this session yet (it gets one on first use). */
  hasValue(v: Variable): boolean {
    return this.store.has(v);
  }

  /** @internal */
  variableTensor(v: Variable): DeviceTensor {
    let t = this.store.get(v);
    if (t === undefined) {
      // Only checked: the public call that reads the variable counts it as met once that call succeeds.
      this.know(v, false);
      t = this.backendImpl.upload({ shape: [...v.init.shape], dtype: v.dtype, data: initialValue(v.init) });
      this.store.set(v, t);
    }
    return t;
  }

  /** @internal */
  constantTensor(c: NodeIR): DeviceTensor {
    let t = this.constants.get(c.id);
    if (t === undefined) {
      const value = c.attrs['value'] as HostTensor['data'];
      t = this.backendImpl.upload({ shape: c.shape as number[], dtype: c.dtype, data: value });
      this.constants.set(c.id, t);
    }
    return t;
  }

  /** Calls run one at a time, in order: each sees the state the previous one left (an async backend could interleave). */
  private call(compiled: CompiledFunction, values: readonly FeedValue[]): Promise<HostTensor[]> {
    return this.inCall(compiled, (exec) => {
      if (exec.kind === 'kernels') {
        // Kernel backends run a call synchronously, so nothing can switch TF.js's global backend in between.
        this.backendImpl.use();
        return execute(this, compiled, exec.top, values);
      }
      return executeProgram(this, compiled, exec, values);
    });
  }

  /**
   * @internal k calls of a compiled function in one run of the backend (see `executeSteps`), call i drawing at
   * step counter `firstStep + i`; undefined where the backend cannot (kernel backends), with nothing done.
   */
  callSteps(compiled: CompiledFunction, batches: readonly (readonly FeedValue[])[], firstStep: number): Promise<StepsOutcome | undefined> {
    return this.inCall(compiled, (exec) => (exec.kind === 'program' ? executeSteps(this, compiled, exec, batches, firstStep) : undefined));
  }

  /**
   * One call in the session's order: a program run is what `dispose` waits for, and a call that fails drops the
   * first values it gave variables (it changes nothing).
   */
  private inCall<T>(compiled: CompiledFunction, body: (exec: CompiledFunction['exec']) => T | Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.checkAlive(compiled.who);
      const fresh = compiled.sources.flatMap((src) => (src.kind === 'variable' && !this.store.has(src.tensor) ? [src.tensor] : []));
      try {
        const out = body(compiled.exec);
        if (!(out instanceof Promise)) return out;
        this.running = out.catch(() => undefined);
        return await out;
      } catch (e) {
        this.dropFirstValues(fresh);
        throw e;
      }
    }, compiled.who);
  }

  /** Frees the first values `variableTensor` uploaded for `vars` in a call that then failed. */
  private dropFirstValues(vars: readonly Variable[]): void {
    for (const v of vars) {
      const t = this.store.get(v);
      if (t === undefined) continue;
      this.store.delete(v);
      this.backendImpl.dispose(t);
    }
  }

  private checkAlive(who: string): void {
    if (this.disposed) throw new SymflowError(who, 'the session is disposed');
  }
}
