import { availableParallelism } from 'node:os';
import { SymflowError } from '../graph/errors.js';
import type { OnnxRuntime } from './onnx/backend.js';
import { type Backend, type BackendName, ONNX_LOG_LEVELS, type OnnxLogLevel } from './types.js';

export type {
  Backend, BackendName, DeviceTensor, GraphProgram, Kernel, KernelBackend, KernelNode, KernelStep, OnnxLogLevel, PassRequests, ProgramBackend, ProgramSpec, StepsProgram, StepsSpec,
} from './types.js';

/** What `Session.create` accepts: a backend name, or `auto` for the best one available here. */
export type BackendChoice = 'auto' | BackendName;

// Loaded through a variable so that neither TypeScript nor a bundler insists on these optional peers.
const TFJS_NODE = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

async function tryImport(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

async function loadTensorflow(): Promise<boolean> {
  for (const name of TFJS_NODE) if (await tryImport(name)) return true;
  return false;
}

/** What the backends take from `Session.create` besides the backend's name. */
export interface BackendOptions {
  threads?: number | 'auto';
  onnxLogs?: OnnxLogLevel;
  executionProviders?: readonly OnnxExecutionProvider[];
}

/**
 * An onnxruntime execution provider, passed through as is to `InferenceSession.create`'s `executionProviders`: a
 * name (`'cpu'`, `'cuda'`, …) or an object with a `name` and that provider's options (e.g. `{ name: 'cuda', deviceId: 1 }`).
 */
export type OnnxExecutionProvider = string | OnnxExecutionProviderOptions;

/** An execution provider with options of its own. */
export interface OnnxExecutionProviderOptions {
  /** The provider's name (`'cuda'`, `'cpu'`, …). */
  readonly name: string;
  /** That provider's options, as onnxruntime-node takes them. */
  readonly [option: string]: unknown;
}

/** Refuses an `executionProviders` option that is not a non-empty array of names or `{name, …}` objects. */
export function checkExecutionProviders(who: string, list: unknown): readonly OnnxExecutionProvider[] | undefined {
  if (list === undefined) return undefined;
  const bad = (why: string) => new SymflowError(who, `executionProviders must be a non-empty array of provider names (e.g. ['cuda', 'cpu']) or { name, ... } objects; ${why}`);
  if (!Array.isArray(list)) throw bad(`got ${list === null ? 'null' : typeof list}`);
  if (list.length === 0) throw bad('got an empty array');
  list.forEach((p: unknown, i) => {
    const ok = (typeof p === 'string' && p.length > 0) || (typeof p === 'object' && p !== null && typeof (p as { name?: unknown }).name === 'string');
    if (!ok) throw bad(`executionProviders[${i}] is ${JSON.stringify(p) ?? typeof p}`);
  });
  return list as OnnxExecutionProvider[];
}

/**
 * Resolves a backend choice and initialises it. `auto` picks tensorflow (when `@tensorflow/tfjs-node-gpu` or
 * `@tensorflow/tfjs-node` can be imported), else onnx (onnxruntime-node, an optional dependency), else wasm, else cpu.
 */
export async function loadBackend(choice: BackendChoice, opts: BackendOptions = {}): Promise<Backend> {
  const names: BackendName[] = ['tensorflow', 'onnx', 'onnx-wasm', 'wasm', 'cpu'];
  if (choice !== 'auto' && !names.includes(choice)) {
    throw new SymflowError('Session.create', `unknown backend ${JSON.stringify(choice)}; use 'auto', ${names.map((n) => `'${n}'`).join(', ')}`);
  }
  if (opts.onnxLogs !== undefined && !ONNX_LOG_LEVELS.includes(opts.onnxLogs)) {
    throw new SymflowError('Session.create', `onnxLogs must be one of ${ONNX_LOG_LEVELS.map((l) => `'${l}'`).join(', ')}, got ${JSON.stringify(opts.onnxLogs)}`);
  }
  checkExecutionProviders('Session.create', opts.executionProviders);
  if (choice === 'tensorflow' && !(await loadTensorflow())) {
    throw new SymflowError('Session.create', "backend 'tensorflow' needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (same version as @tensorflow/tfjs-core), which could not be imported");
  }
  const order: BackendName[] = choice === 'auto' ? ((await loadTensorflow()) ? names : names.slice(1)) : [choice];
  let lastError: unknown;
  for (const name of order) {
    try {
      const backend = await create(name, opts);
      await backend.activate();
      return backend;
    } catch (e) {
      lastError = e;
      if (choice !== 'auto') break;
    }
  }
  throw new SymflowError('Session.create', `backend ${choice} could not be initialised (${lastError instanceof Error ? lastError.message : String(lastError)})`);
}

async function create(name: BackendName, opts: BackendOptions): Promise<Backend> {
  if (name === 'onnx' || name === 'onnx-wasm') {
    const onnxOpts = {
      ...(opts.threads === undefined ? {} : { intraOpNumThreads: opts.threads }),
      ...(opts.onnxLogs === undefined ? {} : { logs: opts.onnxLogs }),
      ...(opts.executionProviders === undefined ? {} : { executionProviders: opts.executionProviders }),
    };
    const { OnnxBackend } = await import('./onnx/backend.js');
    if (name === 'onnx') return new OnnxBackend(onnxOpts, runtimeOf(await import('onnxruntime-node').catch(missingOnnxruntime)), 'onnx');
    return new OnnxBackend(onnxOpts, await loadOnnxruntimeWeb(opts.threads), 'onnx-wasm');
  }
  const { TfjsBackend } = await import('./tfjs.js');
  return new TfjsBackend(name);
}

/** A CommonJS module's exports: its namespace under Node's ESM loader, or the namespace's default under a transpiler. */
function runtimeOf(m: unknown): OnnxRuntime {
  const ns = m as Partial<OnnxRuntime> & { default?: OnnxRuntime };
  return ns.InferenceSession !== undefined ? (ns as OnnxRuntime) : ns.default!;
}

// onnxruntime-web is an optional peer (139 MB of WebAssembly builds): loaded through a variable, like tfjs-node.
const ORT_WEB = 'onnxruntime-web';

/**
 * onnxruntime-web for backend `onnx-wasm`. Its thread count is one setting of the process (`env.wasm.numThreads`),
 * read when its WebAssembly module starts, i.e. by the first `onnx-wasm` session: later ones share that pool.
 */
async function loadOnnxruntimeWeb(threads: number | 'auto' | undefined): Promise<OnnxRuntime> {
  let ort: OnnxRuntime & { env: { wasm: { numThreads?: number } } };
  try {
    ort = runtimeOf(await import(ORT_WEB)) as typeof ort;
  } catch {
    throw new Error("backend 'onnx-wasm' needs onnxruntime-web (an optional peer dependency): npm install onnxruntime-web");
  }
  if (!webStarted) ort.env.wasm.numThreads = threads === undefined || threads === 'auto' ? availableParallelism() : threads;
  webStarted = true;
  return serialised(ort);
}
let webStarted = false;
let queue: Promise<unknown> = Promise.resolve();

/**
 * onnxruntime-web with every session creation and run of the process in one queue: its sessions share one
 * WebAssembly instance, and two runs in flight at once (two symflow sessions training side by side) failed with
 * "Unexpected input data type. Actual: (((null)))".
 */
function serialised(ort: OnnxRuntime): OnnxRuntime {
  const inTurn = <T>(f: () => Promise<T>): Promise<T> => {
    const turn = queue.then(f);
    queue = turn.catch(() => undefined);
    return turn;
  };
  type Created = Awaited<ReturnType<OnnxRuntime['InferenceSession']['create']>>;
  const create = async (...args: unknown[]): Promise<Created> => {
    const session = await inTurn(() => (ort.InferenceSession.create as (...a: unknown[]) => Promise<Created>)(...args));
    // The class's own methods, looked up at each call (not bound once), queued.
    const own = Object.getPrototypeOf(session) as { run(...a: unknown[]): ReturnType<Created['run']>; release(): Promise<void> };
    return Object.assign(session, {
      run: (...a: unknown[]) => inTurn(() => own.run.apply(session, a)),
      release: () => inTurn(() => own.release.call(session)),
    });
  };
  return { InferenceSession: { create } as unknown as OnnxRuntime['InferenceSession'], Tensor: ort.Tensor };
}

// onnxruntime-node is an optional dependency: npm drops it when its install script fails (the script downloads CUDA
// libraries from outside the npm registry), and the CPU build it ships would have worked.
function missingOnnxruntime(e: unknown): never {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' && /onnxruntime-node/.test(String((e as Error).message))) {
    throw new Error('onnxruntime-node is not installed: npm drops this optional dependency when its install script fails; `ONNXRUNTIME_NODE_INSTALL=skip npm install` installs it without that script');
  }
  throw e;
}
