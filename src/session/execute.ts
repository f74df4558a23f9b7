import type { DeviceTensor, KernelBackend, KernelStep } from '../backend/index.js';
import { SymflowError } from '../graph/errors.js';
import { checkFed } from '../graph/feedChecks.js';
import { type HostTensor, toHostTensor, typedArrayFor } from '../graph/hostValue.js';
import { seal } from '../graph/random.js';
import { shapesCompatible } from '../graph/shapes.js';
import { shapeString } from '../graph/tensor.js';
import type { Block } from '../schedule/plan.js';
import type { CompiledFunction } from './compileFunction.js';
import { DeviceValue } from './handles.js';
import type { FeedValue, Session } from './session.js';

/** A call's registers: one device tensor per node of the pruned graph, while it is live. */
type Registers = (DeviceTensor | undefined)[];

/**
 * One call of a compiled function on a kernel backend. Feeds are checked before anything is allocated; every
 * kernel reads the variables as they were before the call; updates are committed only after every output is on the
 * host. On any error every tensor the call made is freed and no variable changes.
 */
export function execute(session: Session, fn: CompiledFunction, top: Block<KernelStep>, values: readonly FeedValue[]): HostTensor[] {
  // A function compiled to kernels was compiled for this session's backend, a kernel backend.
  const backend = session.backendImpl as KernelBackend;
  const feeds = readFeeds(session, fn, values);
  const regs: Registers = new Array(fn.nRegs);
  const uploaded: DeviceTensor[] = [];
  try {
    bindSources(session, fn, feeds, regs, uploaded);
    runBlock(top, regs, backend);
    return applyResults(session, fn, (reg) => regs[reg], (news) => claim(backend, fn, regs, news));
  } finally {
    for (const r of fn.ownedRegs) {
      const t = regs[r];
      if (t !== undefined) backend.dispose(t);
    }
    for (const t of uploaded) backend.dispose(t);
  }
}

/**
 * One call on a whole-program backend: sources go in as the program's inputs, outputs and new values come back,
 * and the new values replace the old only after the run succeeded (double buffering).
 */
export async function executeProgram(
  session: Session, fn: CompiledFunction, exec: Extract<CompiledFunction['exec'], { kind: 'program' }>, values: readonly FeedValue[],
): Promise<HostTensor[]> {
  const feeds = readFeeds(session, fn, values);
  const regs: Registers = new Array(fn.nRegs);
  // Host buffers: nothing to free, so the uploads are not tracked.
  bindSources(session, fn, feeds, regs, []);
  const results = await exec.program.run(exec.inputs.map((src) => regs[src.reg]!));
  // The session was disposed while the run was in flight: its results are dropped, nothing is applied.
  if (session.isDisposed) throw new SymflowError(fn.who, 'the session was disposed during the call; nothing was applied');
  // Every value is read before anything is committed: a source result is the state before the call.
  const computed = new Map(exec.results.map((reg, k) => [reg, results[k]]));
  // A variable the taken branch left as it was comes back undefined: it keeps its value.
  return applyResults(session, fn, (reg) => (computed.has(reg) ? computed.get(reg) : regs[reg]), (news) => news.map(({ t }) => t));
}

/** What `executeSteps` found: each call's outputs, or the index of a call whose guard refused (nothing applied). */
export type StepsOutcome = { readonly outputs: HostTensor[][] } | { readonly refused: number };

/**
 * k calls of a function as ONE run of the program's k-step form: call i is fed batch i and draws at step counter
 * `firstStep + i`, each call reads the variables as the previous one left them, and the variables take the last
 * call's values only after the run succeeded and every call's guard (if any) accepted — all of them or nothing.
 * Undefined when the backend has no k-step form; the feeds of all calls must have the same shapes.
 */
export async function executeSteps(
  session: Session, fn: CompiledFunction, exec: Extract<CompiledFunction['exec'], { kind: 'program' }>,
  batches: readonly (readonly FeedValue[])[], firstStep: number,
): Promise<StepsOutcome | undefined> {
  const program = exec.program.steps?.(exec.steps);
  if (program === undefined) return undefined;
  const backend = session.backendImpl;
  const k = batches.length;
  // Uploaded values are read where they are (they are copied into the stack below), not downloaded first.
  const read = (t: DeviceTensor) => (backend.kind === 'program' && backend.view ? backend.view(t) : backend.download(t));
  const feeds = batches.map((b) => readFeeds(session, fn, b).map((f) => (f instanceof DeviceValue ? read(f.tensor) : f)));
  const sourceOf = new Map(fn.sources.map((src) => [src.reg, src]));
  const stacked = exec.steps.stacked.map((reg) => {
    const src = sourceOf.get(reg)!;
    const parts = feeds.map((f, i) => (src.kind === 'feed' ? f[src.index]! : session.randomValue(src as Extract<typeof src, { kind: 'random' }>, f, firstStep + i)));
    return backend.upload(stack(fn, parts));
  });
  const varOf = (reg: number) => (sourceOf.get(reg) as Extract<CompiledFunction['sources'][number], { kind: 'variable' }>).tensor;
  const fixed = exec.steps.fixed.map((reg) => session.variableTensor(varOf(reg)));
  const carried = fn.updates.map(({ variable }) => session.variableTensor(variable));
  const out = await program.run(stacked, fixed, carried, k);
  if (session.isDisposed) throw new SymflowError(fn.who, 'the session was disposed during the call; nothing was applied');
  const scanned = out.scanned.map((t) => backend.download(t));
  const outputs = Array.from({ length: k }, (_, i) => scanned.map((s) => unstack(s, i, k)));
  if (fn.guard !== undefined) {
    const refused = outputs.findIndex((o) => o[fn.guard!]!.data[0] === 0);
    if (refused >= 0) return { refused };
  }
  fn.updates.forEach(({ variable }, i) => checkShape(fn, variable, backend.shapeOf(out.carried[i]!)));
  session.assign(fn.updates.map(({ variable }, i) => [variable, out.carried[i]!] as const));
  return { outputs };
}

/** The calls' values of one input stacked along a new leading axis (every call's value has the same shape). */
function stack(fn: CompiledFunction, parts: readonly HostTensor[]): HostTensor {
  const first = parts[0]!;
  const n = first.data.length;
  const data = typedArrayFor(first.dtype, n * parts.length);
  parts.forEach((p, i) => {
    if (p.shape.length !== first.shape.length || p.shape.some((d, j) => d !== first.shape[j])) {
      throw new SymflowError(fn.who, `the calls of one run must be fed the same shapes: ${shapeString(first.shape)} and ${shapeString(p.shape)}`);
    }
    data.set(p.data, i * n);
  });
  // Made here and only uploaded: the backend may wrap it instead of copying it once more.
  return { shape: [parts.length, ...first.shape], dtype: first.dtype, data: seal(data) };
}

/** Call i's slice of a result stacked along axis 0. */
function unstack(t: HostTensor, i: number, k: number): HostTensor {
  const n = t.data.length / k;
  return { shape: t.shape.slice(1), dtype: t.dtype, data: t.data.slice(i * n, (i + 1) * n) };
}

/**
 * The store's tensors for a kernel call's new values: the first update of a register the call made claims its
 * tensor, any other takes an alias. Claimed registers are cleared so the call's cleanup skips them.
 */
function claim(backend: KernelBackend, fn: CompiledFunction, regs: Registers, news: readonly { reg: number; t: DeviceTensor }[]): DeviceTensor[] {
  const claimed = new Set<number>();
  const fresh = news.map(({ reg, t }) => {
    if (fn.owned.has(reg) && !claimed.has(reg)) {
      claimed.add(reg);
      return t;
    }
    return backend.alias(t);
  });
  for (const reg of claimed) regs[reg] = undefined;
  return fresh;
}

/** The one source-binding loop: variables' current values, constants, random draws, and feeds (uploaded unless already on device). */
function bindSources(session: Session, fn: CompiledFunction, feeds: readonly (HostTensor | DeviceValue)[], regs: Registers, uploaded: DeviceTensor[]): void {
  const backend = session.backendImpl;
  for (const src of fn.sources) {
    if (src.kind === 'variable') regs[src.reg] = session.variableTensor(src.tensor);
    else if (src.kind === 'constant') regs[src.reg] = session.constantTensor(src.node);
    else if (src.kind === 'random') {
      // Drawn on the host by the same code for every backend (see graph/random.ts), then bound like a feed.
      const t = backend.upload(session.randomValue(src, feeds));
      uploaded.push(t);
      regs[src.reg] = t;
    } else {
      const feed = feeds[src.index]!;
      if (feed instanceof DeviceValue) regs[src.reg] = feed.tensor;
      else {
        const t = backend.upload(feed);
        uploaded.push(t);
        regs[src.reg] = t;
      }
    }
  }
}

/**
 * The one way results are applied: every new value's shape is checked and every output downloaded before anything
 * is committed; unless the guard refuses, all updates are assigned at once. A new value `undefined` (a variable a
 * program kept) leaves its variable as it is; `take` turns the others into the tensors the store will own.
 */
function applyResults(
  session: Session, fn: CompiledFunction, valueOf: (reg: number) => DeviceTensor | undefined,
  take: (news: readonly { reg: number; t: DeviceTensor }[]) => readonly DeviceTensor[],
): HostTensor[] {
  const backend = session.backendImpl;
  const news = fn.updates.map(({ variable, reg }) => {
    const t = valueOf(reg);
    if (t !== undefined) checkShape(fn, variable, backend.shapeOf(t));
    return t;
  });
  const out = fn.outputRegs.map((reg) => backend.download(valueOf(reg)!));
  if (fn.guard !== undefined && out[fn.guard]!.data[0] === 0) return out; // refused by the guard: nothing applied
  const changed = fn.updates.flatMap(({ variable, reg }, i) => (news[i] === undefined ? [] : [{ variable, reg, t: news[i]! }]));
  const tensors = take(changed);
  session.assign(changed.map(({ variable }, i) => [variable, tensors[i]!] as const));
  return out;
}

function runBlock(block: Block<KernelStep>, regs: Registers, backend: KernelBackend): void {
  for (const step of block.steps) {
    if (step.kind === 'node') {
      regs[step.out] = runKernel(step, regs, backend);
    } else {
      const taken = step.blocks[backend.readBool(regs[step.pred]!) ? 0 : 1];
      runBlock(taken, regs, backend);
      // Read every result before any is moved: one register can be a result twice (moved once, aliased after).
      const results = taken.results.map((r) => regs[r]!);
      step.outs.forEach((out, i) => {
        regs[out] = taken.transfer[i] ? results[i] : backend.alias(results[i]!);
      });
      taken.results.forEach((r, i) => {
        if (taken.transfer[i]) regs[r] = undefined;
      });
    }
    for (const r of step.free) {
      backend.dispose(regs[r]!);
      regs[r] = undefined;
    }
  }
}

function runKernel(step: KernelStep, regs: Registers, backend: KernelBackend): DeviceTensor {
  const xs = step.inputs.map((r) => regs[r]!);
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

function checkShape(fn: CompiledFunction, variable: { name: string; rank: number; shape: readonly (number | null)[] }, shape: readonly number[]): void {
  if (shape.length !== variable.rank || shape.some((d, i) => d !== variable.shape[i])) {
    throw new SymflowError(fn.who, `new value of variable '${variable.name}' has shape ${shapeString(shape)}, the variable ${shapeString(variable.shape)}`);
  }
}
