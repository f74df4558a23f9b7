import { SymflowError } from '../graph/errors.js';
import type { BackendName, KernelBackend } from './types.js';

export type { BackendName, DeviceTensor, Kernel, KernelBackend, KernelNode } from './types.js';

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
 * `@tensorflow/tfjs-node` can be imported), else wasm, else cpu.
 */
export async function loadBackend(choice: BackendChoice): Promise<KernelBackend> {
  const { TfjsBackend } = await import('./tfjs.js');
  const names: BackendName[] = ['tensorflow', 'wasm', 'cpu'];
  if (choice !== 'auto' && !names.includes(choice)) {
    throw new SymflowError('Session.create', `unknown backend ${JSON.stringify(choice)}; use 'auto', ${names.map((n) => `'${n}'`).join(', ')}`);
  }
  if (choice === 'tensorflow' && !(await loadTensorflow())) {
    throw new SymflowError('Session.create', "backend 'tensorflow' needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (same version as @tensorflow/tfjs-core), which could not be imported");
  }
  const order: BackendName[] = choice === 'auto' ? ((await loadTensorflow()) ? names : ['wasm', 'cpu']) : [choice];
  let lastError: unknown;
  for (const name of order) {
    const backend = new TfjsBackend(name);
    try {
      await backend.activate();
      return backend;
    } catch (e) {
      lastError = e;
    }
  }
  throw new SymflowError('Session.create', `no backend could be initialised (${String(lastError)})`);
}
