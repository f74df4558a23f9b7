/**
 * Node names: unique within a name space, readable, and deterministic inside `graph(…)`.
 *
 * Names are made synchronously when an op, source or layer is called. They are unique within the current name
 * space: the process-wide one outside any `graph(…)`, or the fresh one `graph(build)` pushes while `build` runs, so
 * the same model code run in two `graph(…)` calls (in one process or two) gives the same names, and a checkpoint of
 * one build restores into the other. `nameScope(prefix, build)` prefixes the names made inside it.
 */
import { SymflowError } from './errors.js';
import { checkName, quoteName } from './limits.js';

/**
 * One name space. Per base name, the last suffix handed out: `base_1` … `base_k` are all taken (made here, or
 * claimed before as a base of their own). Only bases are stored, not every name ever made, so a space grows with
 * the distinct names asked for, not with the number of nodes built.
 */
class NameSpace {
  private readonly lastSuffix = new Map<string, number>();

  /** Whether `name` was handed out: claimed as a base, or `base_k` with k at most base's last suffix. */
  private taken(name: string): boolean {
    if (this.lastSuffix.has(name)) return true;
    const m = /^(.*)_([1-9][0-9]*)$/s.exec(name);
    return m !== null && (this.lastSuffix.get(m[1]!) ?? 0) >= Number(m[2]);
  }

  unique(base: string): string {
    if (!this.taken(base)) {
      this.lastSuffix.set(base, 0);
      return base;
    }
    let k = (this.lastSuffix.get(base) ?? 0) + 1;
    while (this.taken(`${base}_${k}`)) k++;
    this.lastSuffix.set(base, k);
    return `${base}_${k}`;
  }
}

/** The process-wide space: names made outside any `graph(…)` are unique per process, as they always were. */
const processSpace = new NameSpace();
let currentSpace = processSpace;
/** The current `nameScope` prefix, with its trailing `/` ('' outside any nameScope). */
let currentPrefix = '';

/**
 * A unique, readable name in the current name space: `prefix/base`, then `prefix/base_1`, `prefix/base_2`, …
 * @param base the op's name or the name asked for @returns the name to give the node
 */
export function uniqueName(base: string): string {
  return currentSpace.unique(currentPrefix + base);
}

/** The name space each variable was named in, so what is derived from it later is named there too. */
const spaceOfVariable = new WeakMap<object, NameSpace>();

/** Records that `v` was just named in the current name space (called where variables are made). */
export function rememberSpace(v: object): void {
  spaceOfVariable.set(v, currentSpace);
}

/**
 * Runs `build` in the name space `v` was named in, with no prefix: an optimizer's slots (`adam/m/<param>`) and
 * counters get the same names whether `compile` runs inside the `graph(…)` that built the model or after it.
 * @param v a variable (others run in the current space) @param build makes nodes, synchronously
 */
export function inSpaceOf<T>(v: object | undefined, build: () => T): T {
  const space = v === undefined ? undefined : spaceOfVariable.get(v);
  return space === undefined ? build() : within('inSpaceOf', space, '', build);
}

/** Runs `build` with the given space and prefix, restoring the outer ones however `build` ends. */
function within<T>(who: string, space: NameSpace, prefix: string, build: () => T): T {
  if (typeof build !== 'function') throw new SymflowError(who, `build must be a function, got ${typeof build}`);
  const saved = [currentSpace, currentPrefix] as const;
  currentSpace = space;
  currentPrefix = prefix;
  let result: T;
  try {
    result = build();
  } finally {
    [currentSpace, currentPrefix] = saved;
  }
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    // What build made after its first await was named outside this scope already: refuse rather than mix spaces.
    throw new SymflowError(who, 'build returned a Promise: names are made while build runs synchronously, so build must be synchronous (load data before, or await outside)');
  }
  return result;
}

/**
 * Runs `build` in a fresh name space and returns what it returns: the same model code run in two `graph(…)`
 * calls gives the same names (in one process or two), so a checkpoint of one build restores into the other.
 * An explicit `{name}` used twice in one graph gets the usual `_1`; in two graphs it is the same name. Build the
 * training step (`compile`) inside the same `graph(…)` so its optimizer slots (`adam/m/<param>`) are named there
 * too. Graphs nest; a graph starts with no `nameScope` prefix; `build` must be synchronous.
 *
 * ```ts
 * const build = () => graph(() => {
 *   const x = placeholder([null, 4], { name: 'x' });
 *   return { x, y: layers.dense(x, 2, { seed: 1 }) }; // variables dense/kernel, dense/bias every time
 * });
 * ```
 * @param build makes the graph, synchronously @returns what `build` returns
 */
export function graph<T>(build: () => T): T {
  return within('graph', new NameSpace(), '', build);
}

/**
 * Prefixes the names made while `build` runs with `prefix/` (nesting: `a/b/…`), in the current name space.
 *
 * ```ts
 * const h = nameScope('encoder', () => layers.dense(x, 8)); // variables encoder/dense/kernel, encoder/dense/bias
 * ```
 * @param prefix a valid variable name (1 to 4,096 characters, no control characters) @param build makes nodes,
 * synchronously @returns what `build` returns
 */
export function nameScope<T>(prefix: string, build: () => T): T {
  checkName('nameScope', prefix);
  if (prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//')) {
    throw new SymflowError('nameScope', `prefix ${quoteName(prefix)} may not start or end with '/' or hold '//' (nameScope adds the '/')`);
  }
  return within('nameScope', currentSpace, `${currentPrefix}${prefix}/`, build);
}

/**
 * Runs `build` with exactly the prefix `name/` in the current name space, whatever the current `nameScope`: a
 * layer object's scope, so its variables (and the ops of its calls) are named under the layer's own name — which
 * already holds the prefix it was made under — wherever it is later called.
 * @param name the layer's full name (from `uniqueName`) @param build makes nodes, synchronously
 */
export function layerScope<T>(name: string, build: () => T): T {
  return within('layer', currentSpace, `${name}/`, build);
}
