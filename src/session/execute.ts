import type { DeviceTensor, KernelBackend } from '../backend/index.js';
import { SymflowError } from '../graph/errors.js';
import { checkFed } from '../graph/feedChecks.js';
import { type HostTensor, toHostTensor } from '../graph/hostValue.js';
import { shapesCompatible } from '../graph/shapes.js';
import { shapeString } from '../graph/tensor.js';
import type { CompiledFunction } from './compileFunction.js';
import type { Block, KernelStep } from './plan.js';
import { DeviceValue } from './handles.js';
import type { FeedValue, Session } from './session.js';

type Slots = (DeviceTensor | undefined)[];

/**
 * One call of a compiled function. Feeds are checked before anything is allocated; every kernel reads the
 * variables as they were before the call; updates are committed only after every output is on the host. On any
 * error every tensor the call made is freed and no variable changes.
 */
export function execute(session: Session, fn: CompiledFunction, values: readonly FeedValue[]): HostTensor[] {
  const backend = session.backendImpl;
  const feeds = readFeeds(session, fn, values);
  const vals: Slots = new Array(fn.nSlots);
  const uploaded: DeviceTensor[] = [];
  try {
    for (const src of fn.sources) {
      if (src.kind === 'variable') vals[src.slot] = session.variableTensor(src.tensor);
      else if (src.kind === 'constant') vals[src.slot] = session.constantTensor(src.node);
      else {
        const feed = feeds[src.index]!;
        if (feed instanceof DeviceValue) vals[src.slot] = feed.tensor;
        else {
          const t = backend.upload(feed);
          uploaded.push(t);
          vals[src.slot] = t;
        }
      }
    }
    runBlock(fn.top, vals, backend);
    for (const { variable, slot } of fn.updates) checkShape(fn, variable, backend.shapeOf(vals[slot]!));
    const results = fn.outputSlots.map((s) => backend.download(vals[s]!));
    if (fn.guard === undefined || results[fn.guard]!.data[0] !== 0) commit(session, fn, vals);
    return results;
  } finally {
    for (const s of fn.ownedSlots) {
      const t = vals[s];
      if (t !== undefined) backend.dispose(t);
    }
    for (const t of uploaded) backend.dispose(t);
  }
}

/** Applies all updates at once. Slots handed to the store are cleared so the caller's cleanup skips them. */
export function commit(session: Session, fn: CompiledFunction, vals: Slots): void {
  const backend = session.backendImpl;
  const claimed = new Set<number>();
  const tensors = fn.updates.map(({ slot }) => vals[slot]!);
  const fresh = fn.updates.map(({ slot }, i) => {
    if (fn.owned.has(slot) && !claimed.has(slot)) {
      claimed.add(slot);
      return tensors[i]!;
    }
    return backend.alias(tensors[i]!);
  });
  for (const slot of claimed) vals[slot] = undefined;
  session.assign(fn.updates.map(({ variable }, i) => [variable, fresh[i]!] as const));
}

function runBlock(block: Block, vals: Slots, backend: KernelBackend): void {
  for (const step of block.steps) {
    if (step.kind === 'kernel') {
      vals[step.out] = runKernel(step, vals, backend);
    } else {
      const taken = step.blocks[backend.readBool(vals[step.pred]!) ? 0 : 1];
      runBlock(taken, vals, backend);
      step.outs.forEach((out, i) => {
        const r = taken.results[i]!;
        if (taken.transfer[i]) {
          vals[out] = vals[r];
          vals[r] = undefined;
        } else {
          vals[out] = backend.alias(vals[r]!);
        }
      });
    }
    for (const s of step.free) {
      backend.dispose(vals[s]!);
      vals[s] = undefined;
    }
  }
}

function runKernel(step: KernelStep, vals: Slots, backend: KernelBackend): DeviceTensor {
  const xs = step.inputs.map((s) => vals[s]!);
  try {
    return step.kernel(xs);
  } catch (e) {
    const shapes = xs.map((x) => shapeString(backend.shapeOf(x))).join(', ');
    const msg = e instanceof Error ? e.message : String(e);
    throw new SymflowError(step.node.op, `failed at node '${step.node.name}' on backend ${backend.name} with inputs ${shapes}: ${msg}`);
  }
}

export function readFeeds(session: Session, fn: CompiledFunction, values: readonly FeedValue[]): (HostTensor | DeviceValue)[] {
  if (!Array.isArray(values)) throw new SymflowError(fn.who, `values must be an array (one per input), got ${typeof values}`);
  if (values.length !== fn.inputs.length) {
    throw new SymflowError(fn.who, `expected ${fn.inputs.length} input value(s) (${fn.inputs.map((t) => `'${t.name}'`).join(', ')}), got ${values.length}`);
  }
  return values.map((v, i) => {
    const t = fn.inputs[i]!;
    const who = `feed '${t.name}'`;
    if (!(v instanceof DeviceValue)) return checkFed(who, t, toHostTensor(who, v, t.dtype, t.shape));
    if (v.session !== session) throw new SymflowError(who, 'the uploaded value belongs to another session');
    if (v.isDisposed) throw new SymflowError(who, 'the uploaded value is disposed');
    if (v.dtype !== t.dtype) throw new SymflowError(who, `dtype mismatch: expected ${t.dtype}, got ${v.dtype}`);
    if (!shapesCompatible(v.shape, t.shape)) throw new SymflowError(who, `shape mismatch: expected ${shapeString(t.shape)}, got ${shapeString(v.shape)}`);
    return v;
  });
}

/**
 * One call on a whole-function backend: sources go in as the program's inputs, outputs and new values come back,
 * and the new values replace the old only after the run succeeded (double buffering).
 */
export async function executeProgram(session: Session, fn: CompiledFunction, values: readonly FeedValue[]): Promise<HostTensor[]> {
  const backend = session.backendImpl;
  const feeds = readFeeds(session, fn, values);
  const bySlot = new Map<number, DeviceTensor>();
  for (const src of fn.sources) {
    if (src.kind === 'variable') bySlot.set(src.slot, session.variableTensor(src.tensor));
    else if (src.kind === 'constant') bySlot.set(src.slot, session.constantTensor(src.node));
    else {
      const feed = feeds[src.index]!;
      bySlot.set(src.slot, feed instanceof DeviceValue ? feed.tensor : backend.upload(feed));
    }
  }
  const results = await fn.program!.run(fn.programInputs.map((src) => bySlot.get(src.slot)!));
  // The session was disposed while the run was in flight: its results are dropped, nothing is applied.
  if (session.isDisposed) throw new SymflowError(fn.who, 'the session was disposed during the call; nothing was applied');
  // Every value is read before anything is committed: a source result is the state before the call.
  const computed = new Map(fn.programResults.map((slot, k) => [slot, results[k]]));
  const valueOf = (slot: number) => (computed.has(slot) ? computed.get(slot) : bySlot.get(slot));
  const news = fn.updates.map(({ variable, slot }) => {
    const t = valueOf(slot);
    if (t !== undefined) checkShape(fn, variable, backend.shapeOf(t));
    return t;
  });
  const out = fn.outputSlots.map((slot) => backend.download(valueOf(slot)!));
  if (fn.guard !== undefined && out[fn.guard]!.data[0] === 0) return out; // refused by the guard: nothing applied
  // A variable the taken branch left as it was comes back undefined: it keeps its value.
  session.assign(fn.updates.flatMap(({ variable }, i) => (news[i] === undefined ? [] : [[variable, news[i]!] as const])));
  return out;
}

function checkShape(fn: CompiledFunction, variable: { name: string; rank: number; shape: readonly (number | null)[] }, shape: readonly number[]): void {
  if (shape.length !== variable.rank || shape.some((d, i) => d !== variable.shape[i])) {
    throw new SymflowError(fn.who, `new value of variable '${variable.name}' has shape ${shapeString(shape)}, the variable ${shapeString(variable.shape)}`);
  }
}
