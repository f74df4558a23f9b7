import { SymflowError } from './errors.js';
import { dtypeOfArray, flattenNested, type HostTensor, type NestedArray, toHostTensor, type TypedArray, type Value } from './hostValue.js';
import { initDtype } from './initializers.js';
import { checkElements, checkName, quoteName } from './limits.js';
import { rememberSpace, uniqueName } from './names.js';
import { defineOp, makeNode } from './registry.js';
import { type DType, type Dim, type InitSpec, isTensor, type Shape, shapeString, Tensor, Variable } from './tensor.js';

const DTYPES: readonly DType[] = ['float32', 'int32', 'bool'];

function checkDtype(op: string, dtype: unknown): DType {
  if (!DTYPES.includes(dtype as DType)) throw new SymflowError(op, `unknown dtype ${JSON.stringify(dtype)}; use one of ${DTYPES.join(', ')}`);
  return dtype as DType;
}

function checkStaticShape(op: string, shape: unknown): Dim[] {
  if (!Array.isArray(shape) || !shape.every((d) => d === null || (Number.isInteger(d) && d >= 0))) {
    throw new SymflowError(op, `shape must be an array of non-negative integers or null, got ${JSON.stringify(shape)}`);
  }
  return shape as Dim[];
}

const sourceInfer = (op: string) => (_: readonly Tensor[], attrs: { shape: Shape; dtype: DType }) => ({
  shape: checkStaticShape(op, attrs.shape),
  dtype: checkDtype(op, attrs.dtype),
});

export const placeholderOp = defineOp({ name: 'placeholder', attrs: { shape: 'shape', dtype: 'dtype' }, infer: sourceInfer('placeholder') });
export const constantOp = defineOp({
  name: 'constant',
  attrs: { shape: 'shape', dtype: 'dtype', value: 'data' },
  infer: (inputs, attrs) => {
    const out = sourceInfer('constant')(inputs, attrs);
    const kinds = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;
    const size = out.shape.reduce<number>((p, d) => p * (d ?? NaN), 1);
    if (!(attrs.value instanceof kinds[out.dtype]) || attrs.value.length !== size) {
      throw new SymflowError('constant', `value must be a ${kinds[out.dtype].name} of ${size} elements for shape ${shapeString(out.shape)}`);
    }
    return out;
  },
});
export const variableOp = defineOp({ name: 'variable', attrs: { shape: 'shape', dtype: 'dtype' }, infer: sourceInfer('variable') });

/**
 * A graph input, fed at run time. `null` marks a dimension known only then (such as the batch).
 *
 * ```ts
 * const x = placeholder([null, 784], { name: 'x' });
 * ```
 * @param shape static shape, `null` for unknown dimensions
 * @param opts `dtype` (default 'float32') and `name` (default 'placeholder', made unique)
 * @returns a symbolic tensor that must be fed when a run needs it
 */
export function placeholder(shape: readonly Dim[], opts: { dtype?: DType; name?: string } = {}): Tensor {
  const dtype = checkDtype('placeholder', opts.dtype ?? 'float32');
  return makeNode(placeholderOp, [], { shape: checkStaticShape('placeholder', shape), dtype }, opts.name ?? 'placeholder');
}

/**
 * A constant baked into the graph.
 *
 * ```ts
 * const c = constant([[1, 2], [3, 4]]);
 * ```
 * @param value a number, nested array, typed array (with `opts.shape`) or `{shape, data}`
 * @param opts `dtype` (default: int32 for Int32Array data, bool for a boolean or Uint8Array data, else float32), `shape`
 * (for a flat array) and `name` (default 'const')
 * @returns a symbolic tensor with that value
 */
export function constant(value: Value, opts: { dtype?: DType; shape?: readonly number[]; name?: string } = {}): Tensor {
  const dtype = checkDtype('constant', opts.dtype ?? inferDtype(value));
  const host = toHostTensor('constant', withShape(value, opts.shape), dtype);
  return makeConstant(host, opts.name);
}

export function makeConstant(host: HostTensor, name?: string): Tensor {
  return makeNode(constantOp, [], { shape: host.shape, dtype: host.dtype, value: host.data }, name ?? 'const');
}

/**
 * The most recently used scalar constants, least recent first. Bounded, so a program that mixes a new number into
 * every graph it builds (a step size, a loop index) does not keep every one of those graphs' constants forever;
 * a number used again after eviction just gets a node of its own.
 */
const scalarCache = new Map<string, Tensor>();
const SCALAR_CACHE = 1024;

/** Interned scalar constant (numbers mixed into ops reuse one node per value and dtype). */
export function scalarConstant(value: number, dtype: DType): Tensor {
  const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
  let t = scalarCache.get(key);
  if (t === undefined) {
    t = makeConstant(toHostTensor('constant', value, dtype), 'const');
    if (scalarCache.size >= SCALAR_CACHE) scalarCache.delete(scalarCache.keys().next().value!);
  } else {
    scalarCache.delete(key);
  }
  scalarCache.set(key, t);
  return t;
}

function inferDtype(value: Value): DType {
  if (typeof value === 'boolean') return 'bool';
  const data = value !== null && typeof value === 'object' && 'data' in value && !Array.isArray(value) ? value.data : value;
  const d = dtypeOfArray(data);
  return d === 'int32' || d === 'bool' ? d : 'float32';
}

function withShape(value: Value, shape?: readonly number[], who = 'constant'): Value {
  if (shape === undefined) return value;
  if (!ArrayBuffer.isView(value) && !Array.isArray(value)) throw new SymflowError(who, `opts.shape goes with a flat array, got ${typeof value}`);
  return { shape, data: ArrayBuffer.isView(value) ? (value as TypedArray) : flattenNested(who, value as NestedArray[]) as number[] };
}

function isInitSpec(v: unknown): v is InitSpec {
  return v !== null && typeof v === 'object' && 'kind' in v && 'shape' in v;
}

/**
 * A variable: state that lives in a session, initialised on first use, changed only by updates.
 *
 * ```ts
 * const w = variable(initializers.glorotUniform([3, 1], { seed: 0 }), { name: 'w' });
 * const b = variable(0, { name: 'b' });
 * ```
 * @param initial a number, nested array, typed array (with `opts.shape`), `{shape, data}`, or an initializer
 * @param opts `name` (default 'variable', made unique), `dtype` (default inferred from the value, as `constant`;
 * with an initializer it must match the initializer's), `trainable` (default true), `shape` (for a flat array)
 * @returns the variable, a symbolic tensor that reads its value before the run
 */
export function variable(
  initial: Value | InitSpec,
  opts: { name?: string; dtype?: DType; trainable?: boolean; shape?: readonly number[] } = {},
): Variable {
  if (isTensor(initial)) throw new SymflowError('variable', `initial value must be data or an initializer, not the symbolic ${initial}`);
  let spec: InitSpec;
  if (isInitSpec(initial)) {
    spec = initial;
    if (opts.dtype !== undefined && opts.dtype !== initDtype(spec)) {
      throw new SymflowError('variable', `dtype ${opts.dtype} differs from the initializer's ${initDtype(spec)}`);
    }
  } else {
    const dtype = checkDtype('variable', opts.dtype ?? inferDtype(initial as Value));
    const host = toHostTensor('variable', withShape(initial as Value, opts.shape, 'variable'), dtype);
    spec = { kind: 'value', shape: host.shape, data: host.data };
  }
  return makeVariable(spec, opts.name ?? 'variable', opts.trainable ?? true);
}

export function makeVariable(spec: InitSpec, name: string, trainable: boolean): Variable {
  const dtype = initDtype(spec);
  const shape = [...spec.shape];
  // Checked here, where every variable is made (variable(), fromJSON, optimizer slots): a name a variable has is a
  // name its checkpoint entry may have, and a size past the limit is refused before anything is allocated.
  checkName('variable', name);
  checkElements('variable', `variable ${quoteName(name)}`, shape);
  const v = new Variable({
    op: 'variable', inputs: [], attrs: { shape, dtype, trainable }, shape, dtype,
    name: checkName('variable', uniqueName(name)), trainable, initSpec: spec,
  });
  rememberSpace(v);
  return Object.freeze(v);
}
