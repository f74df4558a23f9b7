/**
 * The documented limits: what a tensor, a name and a nested value may be. Each is checked where a value enters
 * (building a variable, compiling a function, reading a graph or checkpoint file), so one rule holds everywhere:
 * a name `variable()` accepts saves and restores, and a size one backend refuses, every backend refuses.
 */
import { SymflowError } from './errors.js';
import { type Dim, shapeString } from './tensor.js';

/** The most elements one tensor may have: 2²⁸ (1 GiB of float32). Larger static shapes are refused at compile time. */
export const MAX_ELEMENTS = 2 ** 28;

/** The longest name a variable (or any node in a graph file) may have, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 4096;

/** The deepest nesting a graph file may have (a real graph needs about 6 levels). */
export const MAX_JSON_DEPTH = 64;

// C0 control characters: a name is printed in error messages and logs, so it may not carry escapes or newlines.
const CONTROL = /[\u0000-\u001f]/;

/** True when `name` is a name a variable may have: 1 to MAX_NAME_LENGTH characters, no control characters. */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && name.length >= 1 && name.length <= MAX_NAME_LENGTH && !CONTROL.test(name);
}

/** How errors quote a name that may be long or hostile: JSON-escaped, cut to 80 characters. */
export function quoteName(name: unknown): string {
  const s = JSON.stringify(typeof name === 'string' ? name : String(name));
  return s.length > 82 ? `${s.slice(0, 80)}…"` : s;
}

/** Refuses a name no variable may have; the error names `who` and says what a name may be. */
export function checkName(who: string, name: unknown): string {
  if (!isValidName(name)) {
    throw new SymflowError(who, `name ${quoteName(name)} is not a valid name: use 1 to ${MAX_NAME_LENGTH} characters, none of them a control character`);
  }
  return name;
}

/**
 * The number of elements of the known dimensions of `shape`, stopping early once past the limit (so a claimed
 * 10¹² elements is refused without arithmetic on huge numbers). Unknown dimensions count as 1.
 */
export function knownElements(shape: readonly Dim[]): number {
  let n = 1;
  for (const d of shape) {
    if (d === null) continue;
    n *= d;
    if (n > MAX_ELEMENTS) return n;
  }
  return n;
}

/** Refuses a shape whose known dimensions already hold more than MAX_ELEMENTS elements. */
export function checkElements(who: string, what: string, shape: readonly Dim[]): void {
  const n = knownElements(shape);
  if (n > MAX_ELEMENTS) {
    const unknown = shape.some((d) => d === null) ? ' in its known dimensions alone' : '';
    throw new SymflowError(who, `${what} has shape ${shapeString(shape)}: ${n.toExponential(2)} elements${unknown}, more than the limit of 2^28 = ${MAX_ELEMENTS} elements per tensor`);
  }
}

/**
 * Refuses a value nested deeper than MAX_JSON_DEPTH levels (or holding a cycle), walking it with an explicit stack
 * so the check itself cannot overflow the call stack. Returns the path of the first offending member.
 */
export function checkDepth(who: string, value: unknown, what = 'the value'): void {
  const stack: [unknown, number, string][] = [[value, 0, '']];
  while (stack.length > 0) {
    const [v, depth, path] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) {
      throw new SymflowError(who, `${what} is nested more than ${MAX_JSON_DEPTH} levels deep (at ${path.slice(0, 120) || 'the top'}${path.length > 120 ? '…' : ''})`);
    }
    // Only members that are objects themselves are visited: a long array of numbers costs no path strings.
    if (Array.isArray(v)) v.forEach((x, i) => { if (x !== null && typeof x === 'object') stack.push([x, depth + 1, `${path}[${i}]`]); });
    else if (!ArrayBuffer.isView(v)) for (const [k, x] of Object.entries(v)) if (x !== null && typeof x === 'object') stack.push([x, depth + 1, `${path}.${k}`]);
  }
}
