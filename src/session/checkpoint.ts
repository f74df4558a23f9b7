import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Backend, DeviceTensor } from '../backend/index.js';
import { SymflowError } from '../graph/errors.js';
import type { HostTensor, TypedArray } from '../graph/hostValue.js';
import { typedArrayFor } from '../graph/hostValue.js';
import { isValidName, quoteName } from '../graph/limits.js';
import { type DType, isVariable, type Variable } from '../graph/tensor.js';

/**
 * The checkpoint format, version 1 (all integers little-endian):
 *   "SYMFCKPT" · u32 version · u32 header length · header (UTF-8 JSON) · data · SHA-256 of everything before it.
 * The header lists each variable's name, dtype, shape, and the offset and length of its bytes in the data section.
 */
const MAGIC = 'SYMFCKPT';
export const CHECKPOINT_VERSION = 1;
const HASH_BYTES = 32;
const PREFIX = MAGIC.length + 8;
/** Sane limits a file's claims are checked against before anything is allocated. */
const MAX_FILE_BYTES = 2 ** 33;
const MAX_HEADER_BYTES = 64 * 2 ** 20;
const MAX_ENTRIES = 1_000_000;
const BYTES: Record<DType, number> = { float32: 4, int32: 4, bool: 1 };

export interface CheckpointEntry {
  name: string;
  value: HostTensor;
}

interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  offset: number;
  bytes: number;
}

/** Serialises entries (and the session's step counter, which random nodes are keyed by) to the checkpoint bytes. */
export function encodeCheckpoint(entries: readonly CheckpointEntry[], meta: { step?: number; meta?: Readonly<Record<string, unknown>> } = {}): Uint8Array {
  let offset = 0;
  const header: HeaderEntry[] = entries.map(({ name, value }) => {
    const bytes = value.data.byteLength;
    const e = { name, dtype: value.dtype, shape: value.shape, offset, bytes };
    offset += bytes + ((4 - (bytes % 4)) % 4);
    return e;
  });
  const json = new TextEncoder().encode(JSON.stringify({ format: 'symflow-checkpoint', variables: header, ...(meta.step === undefined ? {} : { step: meta.step }), ...(meta.meta === undefined ? {} : { meta: meta.meta }) }));
  const total = PREFIX + json.length + offset + HASH_BYTES;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(MAGIC.length, CHECKPOINT_VERSION, true);
  view.setUint32(MAGIC.length + 4, json.length, true);
  out.set(json, PREFIX);
  const dataStart = PREFIX + json.length;
  entries.forEach(({ value }, i) => {
    out.set(new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength), dataStart + header[i]!.offset);
  });
  out.set(createHash('sha256').update(out.subarray(0, total - HASH_BYTES)).digest(), total - HASH_BYTES);
  return out;
}

/**
 * Parses checkpoint bytes, treating them as hostile: the checksum is verified first, every size and shape the
 * header claims is checked against the real byte length and sane limits before anything is allocated, nothing is
 * evaluated, and names are checked before use. Any problem is a clear error naming the file.
 */
export function decodeCheckpoint(bytes: Uint8Array, file = 'checkpoint'): CheckpointEntry[] {
  return decodeCheckpointFile(bytes, file).entries;
}

/** `decodeCheckpoint`, with the step counter the file carries (absent in files saved before it was saved). */
export function decodeCheckpointFile(bytes: Uint8Array, file = 'checkpoint'): { entries: CheckpointEntry[]; step?: number; meta?: Record<string, unknown> } {
  const bad = (why: string) => new SymflowError('Session.restore', `${file}: ${why}`);
  if (bytes.length < PREFIX + HASH_BYTES) throw bad(`truncated (${bytes.length} bytes)`);
  if (new TextDecoder().decode(bytes.subarray(0, MAGIC.length)) !== MAGIC) throw bad('not a symflow checkpoint (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(MAGIC.length, true);
  if (version !== CHECKPOINT_VERSION) throw bad(`unsupported version ${version} (this symflow reads version ${CHECKPOINT_VERSION})`);
  const digest = createHash('sha256').update(bytes.subarray(0, bytes.length - HASH_BYTES)).digest();
  if (!digest.equals(bytes.subarray(bytes.length - HASH_BYTES))) throw bad('checksum mismatch: the file is corrupt or truncated');
  const headerBytes = view.getUint32(MAGIC.length + 4, true);
  if (headerBytes > MAX_HEADER_BYTES || PREFIX + headerBytes > bytes.length - HASH_BYTES) throw bad(`header claims ${headerBytes} bytes, more than the file holds`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headerBytes)));
  } catch (e) {
    throw bad(`unreadable header (${(e as Error).message})`);
  }
  const list = (header as { variables?: unknown })?.variables;
  if ((header as { format?: unknown })?.format !== 'symflow-checkpoint' || !Array.isArray(list) || list.length > MAX_ENTRIES) {
    throw bad('malformed header');
  }
  const step = (header as { step?: unknown }).step;
  if (step !== undefined && !(Number.isSafeInteger(step) && (step as number) >= 0)) throw bad(`step must be a non-negative integer, got ${JSON.stringify(step)}`);
  const dataStart = PREFIX + headerBytes;
  const dataBytes = bytes.length - HASH_BYTES - dataStart;
  const seen = new Set<string>();
  const entries = list.map((raw, i): CheckpointEntry => {
    const e = checkEntry(raw, i, dataBytes, bad);
    if (seen.has(e.name)) throw bad(`variable '${e.name}' appears twice`);
    seen.add(e.name);
    const data = typedArrayFor(e.dtype, e.bytes / BYTES[e.dtype]);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + e.offset, dataStart + e.offset + e.bytes));
    const notBool = e.dtype === 'bool' ? data.findIndex((b) => b > 1) : -1;
    if (notBool >= 0) throw bad(`variable ${quoteName(e.name)} is bool but element ${notBool} is ${data[notBool]}; a bool is 0 or 1`);
    return { name: e.name, value: { shape: e.shape, dtype: e.dtype, data } };
  });
  const meta = (header as { meta?: unknown }).meta;
  if (meta !== undefined && (meta === null || typeof meta !== 'object' || Array.isArray(meta))) throw bad('meta must be an object');
  return { entries, ...(step === undefined ? {} : { step: step as number }), ...(meta === undefined ? {} : { meta: meta as Record<string, unknown> }) };
}

function checkEntry(raw: unknown, i: number, dataBytes: number, bad: (why: string) => SymflowError): HeaderEntry {
  if (raw === null || typeof raw !== 'object') throw bad(`entry ${i} is not an object`);
  const { name, dtype, shape, offset, bytes } = raw as Record<string, unknown>;
  // The rule `variable()` applies to names, so every name a variable can have restores.
  if (!isValidName(name)) throw bad(`entry ${i} has an invalid name ${quoteName(name)}`);
  if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') throw bad(`variable '${name}' has unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || shape.length > 16 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`variable '${name}' has an invalid shape`);
  }
  // Multiply with an early exit, so a claimed 10¹² elements is refused before any allocation.
  let size = 1;
  for (const d of shape as number[]) {
    size *= d;
    if (size * BYTES[dtype] > dataBytes) throw bad(`variable '${name}' claims shape [${shape.join(',')}], more data than the file holds`);
  }
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(bytes) || (offset as number) < 0 || (offset as number) % 4 !== 0) {
    throw bad(`variable '${name}' has an invalid offset`);
  }
  if (bytes !== size * BYTES[dtype] || (offset as number) + (bytes as number) > dataBytes) {
    throw bad(`variable '${name}' claims ${String(bytes)} bytes at ${String(offset)}, inconsistent with its shape or the file`);
  }
  return { name, dtype, shape: shape as number[], offset: offset as number, bytes: bytes as number };
}

/**
 * Checks the `variables` a save or restore was given: an array of variables, none listed twice (by identity or by
 * name: a checkpoint holds one entry per name), each with a name a checkpoint can hold. Errors name the index.
 */
export function checkVariableList(who: string, list: unknown): readonly Variable[] {
  if (!Array.isArray(list)) throw new SymflowError(who, `variables must be an array of variables, got ${list === null ? 'null' : typeof list}`);
  const seen = new Map<string, number>();
  list.forEach((v: unknown, i) => {
    if (!isVariable(v)) throw new SymflowError(who, `variables[${i}] is not a variable (got ${String(v)})`);
    if (!isValidName(v.name)) throw new SymflowError(who, `variables[${i}] has the name ${quoteName(v.name)}, which a checkpoint cannot hold`);
    const first = seen.get(v.name);
    if (first !== undefined) throw new SymflowError(who, `variables[${i}] '${v.name}' is listed twice (also variables[${first}])`);
    seen.set(v.name, i);
  });
  return list as Variable[];
}

/** Uploads every value, or none: if one upload fails, the ones already made are freed before the error goes on. */
export function uploadAll(backend: Backend, values: readonly HostTensor[]): DeviceTensor[] {
  const made: DeviceTensor[] = [];
  try {
    for (const v of values) made.push(backend.upload(v));
    return made;
  } catch (e) {
    for (const t of made) backend.dispose(t);
    throw e;
  }
}

/**
 * Writes a file atomically: a temp file beside it, fsynced, then renamed over the target (and the directory
 * fsynced), so a crash at any point leaves either the old file or the new one, never a torn one.
 */
export async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } catch {
    // Some file systems cannot fsync a directory; the rename itself is still atomic.
  } finally {
    await dir.close();
  }
}

/** Reads a checkpoint file, refusing one larger than any checkpoint could sanely be. */
export async function readCheckpoint(path: string): Promise<{ entries: CheckpointEntry[]; step?: number; meta?: Record<string, unknown> }> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new SymflowError('Session.restore', `${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (!info.isFile()) throw new SymflowError('Session.restore', `${path}: not a file`);
  if (info.size > MAX_FILE_BYTES) throw new SymflowError('Session.restore', `${path}: ${info.size} bytes is larger than a checkpoint may be`);
  return decodeCheckpointFile(new Uint8Array(await readFile(path)), path);
}

export type { TypedArray };
