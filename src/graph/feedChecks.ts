/**
 * Checks of fed values that an op needs and a static shape cannot express, such as class labels that must lie in
 * [0, classes). An op registers one on the tensor it reads; when that tensor is fed, the session checks the host
 * value before the run, so a bad batch is refused with nothing changed, on every backend alike. (A tensor computed
 * in the graph is not checked here: the op itself must make a bad value visible, e.g. as NaN.)
 *
 * Kept beside the graph, not in it: the tensors are frozen, and a WeakMap holds nothing alive that is dropped.
 */
import { SymflowError } from './errors.js';
import type { HostTensor } from './hostValue.js';
import type { Tensor } from './tensor.js';

/** Integer values in [min, max). `op` and `why` say who needs it and what the range is. */
export interface RangeCheck {
  readonly op: string;
  readonly arg: string;
  readonly min: number;
  readonly max: number;
  readonly why: string;
}

const checks = new WeakMap<Tensor, RangeCheck[]>();

/** Registers a range every value fed to `t` must respect. */
export function requireRange(t: Tensor, check: RangeCheck): void {
  checks.set(t, [...(checks.get(t) ?? []), check]);
}

/** Throws when `host`, a value fed to `t`, breaks a check registered on `t`; returns it otherwise. */
export function checkFed(who: string, t: Tensor, host: HostTensor): HostTensor {
  const list = checks.get(t);
  if (list === undefined) return host;
  for (const c of list) {
    const i = host.data.findIndex((v) => !(v >= c.min && v < c.max));
    if (i < 0) continue;
    throw new SymflowError(who, `${c.op}: ${c.arg} ${host.data[i]} at index ${indexString(i, host.shape)} is outside the valid range [${c.min}, ${c.max}) ${c.why}`);
  }
  return host;
}

/** A flat index as a position in `shape`: `[3]`, or `[1,2]` for a matrix. */
function indexString(flat: number, shape: readonly number[]): string {
  const at: number[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    at.unshift(rest % shape[d]!);
    rest = Math.floor(rest / shape[d]!);
  }
  return `[${at.join(',')}]`;
}
