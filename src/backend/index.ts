import { SymflowError } from '../graph/errors.js';
import type { BackendName, KernelBackend } from './types.js';

export type { BackendName, DeviceTensor, GraphProgram, Kernel, KernelBackend, KernelNode, ProgramSpec } from './types.js';

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

/**
 * Resolves a backend choice and initialises it. `auto` picks tensorflow (when `@tensorflow/tfjs-node-gpu` or
 * `@tensorflow/tfjs-node` can be imported), else onnx (onnxruntime-node), else wasm, else cpu.
 */
export async function loadBackend(choice: BackendChoice, opts: { threads?: number } = {}): Promise<KernelBackend> {
  const names: BackendName[] = ['tensorflow', 'onnx', 'wasm', 'cpu'];
  if (choice !== 'auto' && !names.includes(choice)) {
    throw new SymflowError('Session.create', `unknown backend ${JSON.stringify(choice)}; use 'auto', ${names.map((n) => `'${n}'`).join(', ')}`);
  }
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

async function create(name: BackendName, opts: { threads?: number }): Promise<KernelBackend> {
  if (name === 'onnx') {
    const { OnnxBackend } = await import('./onnx/backend.js');
    return new OnnxBackend(opts.threads === undefined ? {} : { intraOpNumThreads: opts.threads });
  }
  const { TfjsBackend } = await import('./tfjs.js');
  return new TfjsBackend(name);
}
