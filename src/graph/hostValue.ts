import { SymflowError } from './errors.js';
import { type DType, type Shape, shapeString, sizeOf } from './tensor.js';

/** The arrays tensor data is held in: Float32Array for float32, Int32Array for int32, Uint8Array (0/1) for bool. */
export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** A tensor's value on the host: what every session call returns. A scalar has shape `[]`. */
export interface HostTensor {
  /** Fully known dimensions, outermost first. */
  shape: number[];
  /** Element type; `data`'s array type follows it (see `TypedArray`). */
  dtype: DType;
  /** The elements in row-major order; its length is the product of `shape`. */
  data: TypedArray;
}

/** Nested arrays of numbers or booleans, one level per dimension (rectangular; ragged arrays are refused). */
export type NestedArray = number | boolean | readonly NestedArray[];

/**
 * Anything that can be turned into a tensor value: a number or boolean, a nested array, a typed array (its shape
 * taken from the static shape it is fed to) or an explicit `{shape, data}`.
 */
export type Value =
  | number
  | boolean
  | readonly NestedArray[]
  | TypedArray
  | Float64Array
  | {
    /** Dimensions, non-negative integers. */
    shape: readonly number[];
    /** Row-major elements, as many as the product of `shape`. */
    data: TypedArray | Float64Array | readonly number[];
  };

export function typedArrayFor(dtype: DType, n: number): TypedArray {
  return dtype === 'float32' ? new Float32Array(n) : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
}

/** The dtype a typed array holds (Uint8Array is bool), 'float64' for a Float64Array, undefined for anything else. */
export function dtypeOfArray(data: unknown): DType | 'float64' | undefined {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'bool';
  if (data instanceof Float64Array) return 'float64';
  return undefined;
}

/**
 * Turns a user value into a host tensor of `dtype`, checked against `expected` (a static shape, `null` for unknown
 * dimensions). Errors name `who` (an op or placeholder) so the user can tell which argument was wrong.
 */
export function toHostTensor(who: string, value: Value, dtype: DType, expected?: Shape): HostTensor {
  const { shape, flat } = readValue(who, value, dtype, expected);
  if (expected !== undefined) checkShape(who, shape, expected);
  const data = convertData(who, flat, dtype);
  return { shape, dtype, data };
}

function readValue(who: string, value: Value, dtype: DType, expected?: Shape) {
  if (typeof value === 'number' || typeof value === 'boolean') return { shape: [] as number[], flat: [value] as unknown };
  if (Array.isArray(value)) {
    const shape = nestedShape(who, value);
    return { shape, flat: (value as unknown[]).flat(Infinity as 1) as unknown };
  }
  if (ArrayBuffer.isView(value)) {
    checkArrayKind(who, value, dtype);
    return { shape: shapeForFlat(who, (value as TypedArray).length, expected), flat: value as unknown };
  }
  if (value !== null && typeof value === 'object' && 'shape' in value && 'data' in value) {
    const shape = [...value.shape];
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SymflowError(who, `shape ${shapeString(shape)} must hold non-negative integers`);
    }
    if (ArrayBuffer.isView(value.data)) checkArrayKind(who, value.data, dtype);
    if (value.data.length !== sizeOf(shape)) {
      throw new SymflowError(who, `data has ${value.data.length} elements but shape ${shapeString(shape)} needs ${sizeOf(shape)}`);
    }
    return { shape, flat: value.data as unknown };
  }
  throw new SymflowError(who, `cannot read a value of type ${value === null ? 'null' : typeof value}`);
}

function checkArrayKind(who: string, data: ArrayBufferView, dtype: DType): void {
  const kind = dtypeOfArray(data);
  if (kind === undefined) throw new SymflowError(who, `unsupported typed array ${data.constructor.name}`);
  if (kind !== dtype && !(kind === 'float64' && dtype === 'float32')) {
    throw new SymflowError(who, `dtype mismatch: expected ${dtype}, got ${/^[AEIOU]/.test(data.constructor.name) ? 'an' : 'a'} ${data.constructor.name} (${kind})`);
  }
}

function nestedShape(who: string, value: readonly NestedArray[]): number[] {
  const shape: number[] = [];
  let level: NestedArray = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = (level as NestedArray[])[0]!;
  }
  const at: number[] = [];
  const check = (v: NestedArray, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new SymflowError(who, `ragged nested array: expected shape ${shapeString(shape)}`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new SymflowError(who, `ragged nested array: expected shape ${shapeString(shape)}`);
    }
    const list = v as NestedArray[];
    for (let i = 0; i < list.length; i++) {
      // A hole (`[1, , 3]`) would vanish in flattening and shift every later element: refuse it.
      at.push(i);
      if (!(i in list)) throw new SymflowError(who, `sparse array: element [${at.join(',')}] is a hole; give every element a value`);
      check(list[i]!, depth + 1);
      at.pop();
    }
  };
  check(value, 0);
  return shape;
}

/** Flattens a nested array of any raggedness, refusing holes (`[1, , 3]`), which `Array.prototype.flat` drops. */
export function flattenNested(who: string, value: readonly NestedArray[]): (number | boolean)[] {
  const out: (number | boolean)[] = [];
  const walk = (v: readonly NestedArray[]): void => {
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) throw new SymflowError(who, `sparse array: an element is a hole; give every element a value`);
      const e = v[i]!;
      if (Array.isArray(e)) walk(e);
      else out.push(e as number | boolean);
    }
  };
  walk(value);
  return out;
}

/** The shape of a flat typed array: the static shape, with at most one unknown dimension solved from the length. */
function shapeForFlat(who: string, n: number, expected?: Shape): number[] {
  if (expected === undefined) return [n];
  const unknown = expected.filter((d) => d === null).length;
  const known = sizeOf(expected.filter((d): d is number => d !== null));
  if (unknown === 0) return [...(expected as number[])];
  if (unknown === 1 && known > 0 && n % known === 0) return expected.map((d) => (d === null ? n / known : d));
  throw new SymflowError(
    who,
    `a typed array of ${n} elements does not fit shape ${shapeString(expected)}; pass {shape, data}`,
  );
}

function checkShape(who: string, shape: readonly number[], expected: Shape): void {
  const ok = shape.length === expected.length && expected.every((d, i) => d === null || d === shape[i]);
  if (!ok) {
    const what = shape.length !== expected.length ? 'rank' : 'shape';
    throw new SymflowError(who, `${what} mismatch: expected ${shapeString(expected)}, got ${shapeString(shape)}`);
  }
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function convertData(who: string, flat: unknown, dtype: DType): TypedArray {
  if (flat instanceof Float32Array && dtype === 'float32') return flat;
  if (flat instanceof Int32Array && dtype === 'int32') return flat;
  if (flat instanceof Uint8Array && dtype === 'bool') {
    // A bool is one byte holding 0 or 1; backends differ on what any other byte means, so none is accepted.
    const i = flat.findIndex((b) => b > 1);
    if (i >= 0) throw new SymflowError(who, `element ${i} (${flat[i]}) is not a boolean for dtype bool (a Uint8Array for bool holds only 0 and 1)`);
    return flat;
  }
  const src = flat as ArrayLike<number | boolean>;
  const out = typedArrayFor(dtype, src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (typeof v === 'boolean') {
      out[i] = v ? 1 : 0;
      continue;
    }
    if (typeof v !== 'number') throw new SymflowError(who, `element ${i} is ${typeof v}, not a number`);
    if (dtype === 'int32' && !Number.isInteger(v)) throw new SymflowError(who, `element ${i} (${v}) is not an integer for dtype int32`);
    if (dtype === 'int32' && (v < INT32_MIN || v > INT32_MAX)) {
      throw new SymflowError(who, `element ${i} (${v}) is outside the int32 range [${INT32_MIN}, ${INT32_MAX}]`);
    }
    if (dtype === 'bool' && v !== 0 && v !== 1) throw new SymflowError(who, `element ${i} (${v}) is not a boolean for dtype bool`);
    out[i] = v;
  }
  return out;
}

/** A readable nested array of a host tensor (a number for a scalar). */
export function toNested(t: HostTensor): NestedArray {
  const build = (offset: number, dim: number): NestedArray => {
    if (dim === t.shape.length) return t.dtype === 'bool' ? t.data[offset] === 1 : t.data[offset]!;
    const stride = sizeOf(t.shape.slice(dim + 1));
    return Array.from({ length: t.shape[dim]! }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return build(0, 0);
}
