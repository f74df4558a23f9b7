import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import { type Session, SymflowError } from '../src/index.js';
import { encodeCheckpoint } from '../src/session/checkpoint.js';

/** Backends whose engine counts live tensors (onnx keeps host buffers, which the GC frees). */
export const LEAK_FREE = new Set<string>(['cpu', 'wasm']);

export type Matcher = string | RegExp;

/** What a table of bad calls needs of its fixture: the session, and its backend. */
export interface RefusalContext {
  readonly s: Session;
  readonly backend: string;
}

/** One bad call: how it is refused, and that it changed nothing. */
export interface CaseOf<C, T> {
  name: string;
  /** Runs before the state is recorded: warm-up calls (so caches are filled) and whatever the bad call needs. */
  setup?(c: C): T | Promise<T>;
  /** The bad call. */
  bad(c: C, p: T): unknown;
  /** The refusal: `op` is the SymflowError's op (its message starts with it); `has` must all be in the message. */
  error?(c: C, p: T): { op: string; has: Matcher[] };
  /** File-system errors: any Error whose message has all of `has`. */
  fsError?(c: C, p: T): Matcher[];
  /** Bad input that is refused without an error (e.g. a skipped step): checks the result instead. */
  resolves?(value: unknown, c: C, p: T): void;
  /** Extra checks afterwards. */
  after?(c: C, p: T): void | Promise<void>;
  /** A real bug: the case is `it.fails` until it is fixed (see the comment at the case). */
  bug?: string;
}

/** Every variable the session knows: dtype, shape and raw bytes (bit for bit: NaN- and −0-exact). */
export async function sessionState(s: Session): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of s.variables) {
    const { dtype, shape, data } = await s.getValue(v);
    out[v.name] = `${dtype}[${shape.join(',')}]:${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')}`;
  }
  return out;
}

/**
 * Runs a bad call and checks (1) a clear refusal — a SymflowError naming the op, with every expected part in its
 * message — and (2) that nothing changed: live tensors, the variables the session knows, every value bit for bit,
 * and no prototype pollution.
 */
export async function expectRefused<C extends RefusalContext>(c: C, t: CaseOf<C, any>): Promise<void> {
  const p = t.setup ? await t.setup(c) : undefined;
  const names = c.s.variables.map((v) => v.name);
  const before = await sessionState(c.s);
  const live = c.s.numTensors();

  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await t.bad(c, p) };
  } catch (error) {
    outcome = { ok: false, error };
  }

  if (t.resolves) {
    if (!outcome.ok) throw outcome.error;
    t.resolves(outcome.value, c, p);
  } else {
    expect(outcome.ok, 'the bad call must be refused').toBe(false);
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    const expected = t.error ? t.error(c, p) : t.fsError ? { op: undefined, has: t.fsError(c, p) } : undefined;
    if (expected?.op !== undefined) {
      expect(error, message).toBeInstanceOf(SymflowError);
      expect((error as SymflowError).op).toBe(expected.op);
      expect(message.startsWith(`${expected.op}: `), message).toBe(true);
    }
    for (const m of expected?.has ?? []) {
      if (typeof m === 'string') expect(message).toContain(m);
      else expect(message).toMatch(m);
    }
  }

  if (LEAK_FREE.has(c.backend)) expect(c.s.numTensors(), 'live backend tensors').toBe(live);
  expect(c.s.variables.map((v) => v.name), 'the variables the session knows').toEqual(names);
  expect(await sessionState(c.s), 'every variable and optimizer slot, bit for bit').toEqual(before);
  await t.after?.(c, p);
  expect(Object.prototype).not.toHaveProperty('polluted');
}

/**
 * Writes a checkpoint of exactly the session's variables with every value changed (so a partial restore would
 * show), each entry passed through `edit` first; returns `path`.
 */
export async function checkpointWith(
  s: Session, path: string, edit: (e: { name: string; value: { shape: number[]; dtype: string; data: ArrayLike<number> } }) => void,
): Promise<string> {
  const entries = [];
  for (const v of s.variables) {
    const value = await s.getValue(v);
    const data = value.data.slice();
    for (let i = 0; i < data.length; i++) data[i] = value.dtype === 'bool' ? 1 - data[i]! : data[i]! + 1;
    const entry = { name: v.name, value: { ...value, data } };
    edit(entry);
    entries.push(entry);
  }
  writeFileSync(path, encodeCheckpoint(entries));
  return path;
}
