import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import type { HostTensor } from '../graph/hostValue.js';
import type { Tensor, Variable } from '../graph/tensor.js';
import type { DeviceValue, Session, SessionFunction } from '../session/session.js';
import { exactlyFinite, lowerUpdates } from '../session/updates.js';

/**
 * What a training step does with a batch that makes the loss, a gradient or a new value NaN or infinite:
 * `'error'` (the default) refuses it with a `NonFiniteError`, `'skip'` refuses it and reports it in the result,
 * `'apply'` applies it anyway (no check at all). A refused step leaves every variable bit-identical.
 */
export type NonFinitePolicy = 'error' | 'skip' | 'apply';

/** Why a step was refused: the first non-finite thing in the order loss, gradients, new values. */
export interface NonFiniteReport {
  /** What was not finite: the loss, a parameter's gradient, or a variable's new value. */
  readonly what: 'loss' | 'gradient' | 'value';
  /** The parameter whose gradient, or the variable whose new value, was not finite. */
  readonly variable?: string;
  /** The loss at the parameters the step started from (NaN or ±Inf when `what` is 'loss'). */
  readonly loss: number;
  /** A sentence saying what was not finite (the start of `NonFiniteError`'s message). */
  readonly message: string;
}

/** A training step refused because of non-finite values; nothing of it was applied. */
export class NonFiniteError extends SymflowError {
  /**
   * @param who the function that refused the step (`'TrainStep.step'`)
   * @param report what was not finite
   */
  constructor(who: string, readonly report: NonFiniteReport) {
    super(who, `${report.message}; the step was refused and every variable is as it was (compile with onNonFinite: 'skip' to skip such steps, or 'apply' to apply them)`);
  }
}

/**
 * @internal Thrown by a run that found a non-finite loss or new value; `compile` undoes the step, finds out what
 * (its diagnosis) and turns it into the policy's outcome. `variable`: the one whose new value the run found.
 */
export class Refused extends Error {
  constructor(readonly variable?: string) {
    super('refused: a non-finite value');
  }
}

export function checkPolicy(who: string, p: unknown): NonFinitePolicy {
  if (p === undefined) return 'error';
  if (p === 'error' || p === 'skip' || p === 'apply') return p;
  throw new SymflowError(who, `onNonFinite must be 'error', 'skip' or 'apply', got ${JSON.stringify(p) ?? String(p)}`);
}

/**
 * One run of a step. Guarded, its updates are applied only when every new float value it computes (and the loss,
 * when it reports it) is finite — decided inside the run, one sum per new value; a refusal throws `Refused`,
 * naming the variable (found by a diagnostic run at the same unchanged state, compiled when needed).
 * Unguarded, a non-finite loss it reports still throws `Refused` (after its updates, which the step's snapshot
 * undoes), so a bad batch is refused at once.
 */
export function guardedRun(
  session: Session, inputs: readonly Tensor[], loss: Tensor, spec: { outputs: readonly Tensor[]; updates: readonly Update[] }, guard: boolean,
  finite: readonly Tensor[] = [],
): ((batch: readonly DeviceValue[]) => Promise<HostTensor[]>) & { readonly fn: SessionFunction } {
  const lossAt = spec.outputs.indexOf(loss);
  const lossOf = (out: readonly HostTensor[]) => (lossAt >= 0 ? out[lossAt]!.data[0]! : undefined);
  const checked = lossAt >= 0 ? [loss, ...finite] : [...finite];
  const f = session.function({ inputs, outputs: spec.outputs, updates: spec.updates, training: true, ...(guard ? { applyIfFinite: checked } : {}) });
  // `fn`: the session function itself, for `exportOnnx` (see STEP_RUNS in compile.ts).
  return Object.assign(async (batch: readonly DeviceValue[]) => {
    const out = await f(batch);
    const l = lossOf(out);
    if (!guard) {
      if (l !== undefined && !Number.isFinite(l)) throw new Refused();
      return out;
    }
    const applied = out.pop()!.data[0] !== 0;
    if (applied) return out;
    if (l !== undefined && !Number.isFinite(l)) throw new Refused();
    const found = await valueDiagnosis(session, inputs, spec.updates, checked, batch);
    if (found.variable !== undefined || found.tensor) throw new Refused(found.variable);
    // Every element is finite: a sum overflowed (values beyond ~1e38). The state is unchanged, so the same run
    // without the check computes the same values, and applies them.
    return once(session.function({ inputs, outputs: spec.outputs, updates: spec.updates, training: true }), batch);
  }, { fn: f });
}

/**
 * Runs a function compiled for a rare path (a refused step) once and releases it, constants and all, so a refusal
 * leaves the session holding exactly what it held before.
 */
async function once(f: SessionFunction, batch: readonly DeviceValue[]): Promise<HostTensor[]> {
  try {
    return await f(batch);
  } finally {
    await f.dispose();
  }
}

/** A run that tells, element by element, which variable's new value (or which checked tensor) is not finite. */
async function valueDiagnosis(
  session: Session, inputs: readonly Tensor[], updates: readonly Update[], checked: readonly Tensor[], batch: readonly DeviceValue[],
): Promise<{ variable?: string; tensor: boolean }> {
  const pairs = [...lowerUpdates(updates)].filter(([v, t]) => t !== v && t.dtype === 'float32');
  const [tensorsOk, ...flags] = await once(session.function({ inputs, outputs: [exactlyFinite(checked), ...pairs.map(([, t]) => exactlyFinite([t]))], training: true }), batch);
  const i = flags.findIndex((x) => x.data[0] === 0);
  return { ...(i < 0 ? {} : { variable: pairs[i]![0].name }), tensor: tensorsOk!.data[0] === 0 };
}

/**
 * Finds what made a refused step non-finite, at the state the step started from: the loss, else the first
 * parameter whose gradient is not finite, else what the refusing run found. Compiled when needed, then released.
 */
export function stepDiagnosis(session: Session, inputs: readonly Tensor[], loss: Tensor, params: readonly Variable[], grads: readonly Tensor[]) {
  const outputs = [loss, ...grads.map((g) => exactlyFinite([g]))];
  return async (batch: readonly DeviceValue[], refused: Refused): Promise<NonFiniteReport> => {
    const [l, ...flags] = await once(session.function({ inputs, outputs, training: true }), batch);
    const lossValue = l!.data[0]!;
    if (!Number.isFinite(lossValue)) return { what: 'loss', loss: lossValue, message: `the loss is ${lossValue} on this batch` };
    const bad = flags.findIndex((x) => x.data[0] === 0);
    if (bad >= 0) {
      const name = params[bad]!.name;
      return { what: 'gradient', variable: name, loss: lossValue, message: `the gradient of '${name}' is not finite (NaN or ±Inf) on this batch (the loss, ${lossValue}, is)` };
    }
    const name = refused.variable;
    return {
      what: 'value', ...(name === undefined ? {} : { variable: name }), loss: lossValue,
      message: `the new value of ${name === undefined ? 'a variable' : `'${name}'`} is not finite (NaN or ±Inf) although the loss (${lossValue}) and every gradient are`,
    };
  };
}
