import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { SymflowError } from '../../graph/errors.js';
import type { Dim } from '../../graph/tensor.js';
import type { CompiledFunction, Source } from '../../session/compileFunction.js';
import { COMPILED_FUNCTION, type SessionFunction } from '../../session/session.js';
import { STEP_RUNS, type TrainStep } from '../../optimizers/compile.js';

// NOTE: no onnxruntime import here: the model is the graph the onnx backend compiled (and onnxruntime loaded), encoded
// by the backend with its outputs' shapes declared, so exporting needs no runtime and src/index.ts may reach it.

export type { OnnxExecutionProvider, OnnxExecutionProviderOptions } from '../index.js';

const WHO = 'exportOnnx';

/**
 * A model input of an exported step, and what the caller feeds to it: a batch value, a variable's value, a random
 * draw, or (a k-step model) the number of steps.
 */
export type OnnxExportInput = OnnxBatchInput | OnnxVariableInput | OnnxRandomInput | OnnxTripInput;

/** The number of steps a k-step model takes (an int64 scalar): batches and draws are fed stacked, k along axis 0. */
export interface OnnxTripInput {
  /** The model input's name. */
  readonly name: string;
  /** Tells the input kinds apart. */
  readonly kind: 'steps';
  /** Always int64. */
  readonly dtype: 'int64';
}

/** A batch value: the function's `index`-th input (the step's `index`-th value). */
export interface OnnxBatchInput {
  /** The model input's name. */
  readonly name: string;
  /** Tells the input kinds apart. */
  readonly kind: 'batch';
  /** Which of the function's inputs (the step's values) it is. */
  readonly index: number;
  /** The fed tensor's name. */
  readonly tensor: string;
  /** Its dtype. */
  readonly dtype: string;
  /** Its shape (`null`: any size, e.g. the batch). */
  readonly shape: readonly Dim[];
}

/** A variable's current value (read before anything changes). */
export interface OnnxVariableInput {
  /** The model input's name. */
  readonly name: string;
  /** Tells the input kinds apart. */
  readonly kind: 'variable';
  /** The variable's name (as in `session.variables`, checkpoints and the sidecar's `updates`). */
  readonly variable: string;
  /** Its dtype. */
  readonly dtype: string;
  /** Its shape. */
  readonly shape: readonly Dim[];
}

/**
 * A random source the caller draws (float32): `uniform` on [a, b), `normal` with mean a and stddev b, or `mask`:
 * b with probability a, else 0 (dropout's scaled keep mask). symflow's own draws (keyed by seed, salt and the step
 * counter) are not part of the model: the model matches a symflow step only when fed the same draw.
 */
export interface OnnxRandomInput {
  /** The model input's name. */
  readonly name: string;
  /** Tells the input kinds apart. */
  readonly kind: 'random';
  /** The random node's name. */
  readonly node: string;
  /** `'uniform'`, `'normal'` or `'mask'`. */
  readonly dist: string;
  /** The distribution's first parameter (min, mean, keep probability). */
  readonly a: number;
  /** Its second (max, stddev, the kept value). */
  readonly b: number;
  /** The node's seed (−1: the session's). */
  readonly seed: number;
  /** The node's salt (from its name). */
  readonly salt: number;
  /** Always float32. */
  readonly dtype: 'float32';
  /** Its shape: a number, or `{input, axis}` for that axis of batch input `input` (the batch size). */
  readonly shape: readonly (number | OnnxAxisOf)[];
}

/** A dimension that is the size of an axis of a batch input. */
export interface OnnxAxisOf {
  /** The batch input's index (the function's input). */
  readonly input: number;
  /** The axis. */
  readonly axis: number;
}

/** Where a value of the exported function comes from: a model output, or (a value the model does not compute) a model input or a constant. */
export type OnnxExportSource = OnnxOutputSource | OnnxInputSource | OnnxConstantSource;

/** A value the model computes. */
export interface OnnxOutputSource {
  /** The model output's name. */
  readonly output: string;
}

/** A value the model does not compute: a model input passed through (a fed value, a variable's current value). */
export interface OnnxInputSource {
  /** The model input's name. */
  readonly input: string;
}

/** A value the model does not compute: a constant. */
export interface OnnxConstantSource {
  /** Its elements, row-major. */
  readonly constant: readonly number[];
  /** Its shape. */
  readonly shape: readonly number[];
}

/** A model output. */
export interface OnnxExportOutput {
  /** The model output's name. */
  readonly name: string;
  /** Its dtype. */
  readonly dtype: string;
}

/** One of the function's outputs. */
export interface OnnxFunctionOutput {
  /** Its position among the function's outputs. */
  readonly index: number;
  /** The output tensor's name. */
  readonly tensor: string;
  /** Its dtype. */
  readonly dtype: string;
  /** Where its value comes from. */
  readonly from: OnnxExportSource;
  /** Set on the guard's verdict (see `OnnxExportSidecar.guard`). */
  readonly guard?: true;
}

/** A variable's new value. */
export interface OnnxExportUpdate {
  /** The variable's name. */
  readonly variable: string;
  /** Its dtype. */
  readonly dtype: string;
  /** Its shape. */
  readonly shape: readonly Dim[];
  /** Where its new value comes from (0 elements for a non-empty variable: unchanged). */
  readonly from: OnnxExportSource;
}

/**
 * The JSON sidecar `exportOnnx` writes next to the model (`path + '.json'`). A k-step model
 * (`'symflow-onnx-steps/1'`, `exportOnnx(step, path, { steps: true })`) takes the number of steps k (the `steps`
 * input), every batch value and random draw stacked along a new axis 0 (shape `[k, …]`, step i's value at index
 * i), and the variables' values before the first step; it returns each function output stacked the same way and
 * each variable's value after the k-th step — to assign only when every step's guard is true.
 */
export interface OnnxExportSidecar {
  /** This layout's name and version: one step per run, or k steps per run. */
  readonly format: 'symflow-onnx-step/1' | 'symflow-onnx-steps/1';
  /** The model file's name (same directory). */
  readonly model: string;
  /** Every model input, in the model's order: all must be fed. */
  readonly inputs: readonly OnnxExportInput[];
  /** Every model output, in the model's order. */
  readonly outputs: readonly OnnxExportOutput[];
  /** The function's outputs, in order (a TrainStep's run: the loss first), each with where it comes from. */
  readonly functionOutputs: readonly OnnxFunctionOutput[];
  /**
   * The variables' new values: after a run, assign each `from` to its variable (all of them, and only when `guard`,
   * if any, is true). An output with 0 elements for a variable with more means "unchanged" (a cond branch kept it).
   */
  readonly updates: readonly OnnxExportUpdate[];
  /** For a guarded step (`applyIfFinite`, a TrainStep's default): the function output (a bool scalar) that says whether to apply the updates. */
  readonly guard?: OnnxGuard;
}

/** Where a guarded step's verdict is. */
export interface OnnxGuard {
  /** Its position among the function's outputs. */
  readonly index: number;
  /** The model output that holds it. */
  readonly output: string;
}

/** The one session function behind an export target, refusing what cannot be exported as one model. */
function functionOf(target: unknown): SessionFunction {
  const runs = (target as { [STEP_RUNS]?: readonly SessionFunction[] } | null)?.[STEP_RUNS];
  if (runs !== undefined) {
    const step = target as TrainStep;
    if (runs.length !== 1) {
      throw new SymflowError(WHO, `the TrainStep of ${step.optimizer.name} runs ${runs.length} session functions per step; only a step of one run exports as one model (a single-run optimizer, or heun({ fused: true }))`);
    }
    return runs[0]!;
  }
  if (typeof target === 'function' && COMPILED_FUNCTION in target) return target as unknown as SessionFunction;
  throw new SymflowError(WHO, 'target must be a SessionFunction (session.function(…)) or a TrainStep (compile(…))');
}

function sourceOf(src: Source): OnnxExportSource {
  if (src.kind === 'constant') {
    const a = src.node.attrs as unknown as { value: ArrayLike<number> };
    return { constant: Array.from(a.value, Number), shape: src.node.shape.map((d) => d ?? 0) };
  }
  return { input: `s${src.reg}` };
}

/** Builds the sidecar of a compiled function on the onnx backend. */
function sidecarOf(compiled: CompiledFunction, model: string): OnnxExportSidecar {
  const exec = compiled.exec;
  if (exec.kind !== 'program' || exec.program.exportModel === undefined) {
    throw new SymflowError(WHO, `${compiled.who}: the function was not compiled to an ONNX model: create its session with { backend: 'onnx' }`);
  }
  const inputs = exec.inputs.map((src): OnnxExportInput => {
    const name = `s${src.reg}`;
    if (src.kind === 'feed') {
      const t = compiled.inputs[src.index]!;
      return { name, kind: 'batch', index: src.index, tensor: t.name, dtype: t.dtype, shape: [...t.shape] };
    }
    if (src.kind === 'variable') return { name, kind: 'variable', variable: src.tensor.name, dtype: src.tensor.dtype, shape: [...src.tensor.shape] };
    if (src.kind === 'random') {
      const a = src.node.attrs as { dist: string; seed: number; salt: number; a: number; b: number };
      return { name, kind: 'random', node: src.node.name, dist: a.dist, a: a.a, b: a.b, seed: a.seed, salt: a.salt, dtype: 'float32', shape: src.dims.map((d) => (typeof d === 'number' ? d : { input: d.input, axis: d.axis })) };
    }
    throw new SymflowError(WHO, 'internal: a constant among the model inputs');
  });
  const outAt = new Map(exec.results.map((reg, k) => [reg, `out${k}`]));
  const from = (reg: number): OnnxExportSource => {
    const out = outAt.get(reg);
    if (out !== undefined) return { output: out };
    const src = compiled.sources.find((s) => s.reg === reg);
    if (src === undefined) throw new SymflowError(WHO, `internal: register ${reg} is neither computed nor a source`);
    return sourceOf(src);
  };
  const dtypeOfReg = new Map<number, string>();
  compiled.outputRegs.forEach((reg, i) => dtypeOfReg.set(reg, compiled.outputs[i]!.dtype));
  compiled.updates.forEach(({ variable, reg }) => dtypeOfReg.set(reg, variable.dtype));
  return {
    format: 'symflow-onnx-step/1',
    model,
    inputs,
    outputs: exec.results.map((reg, k) => ({ name: `out${k}`, dtype: dtypeOfReg.get(reg)! })),
    functionOutputs: compiled.outputRegs.map((reg, index) => ({
      index, tensor: compiled.outputs[index]!.name, dtype: compiled.outputs[index]!.dtype, from: from(reg), ...(index === compiled.guard ? { guard: true as const } : {}),
    })),
    updates: compiled.updates.map(({ variable, reg }) => ({ variable: variable.name, dtype: variable.dtype, shape: [...variable.shape], from: from(reg) })),
    ...(compiled.guard === undefined ? {} : { guard: { index: compiled.guard, output: (from(compiled.outputRegs[compiled.guard]!) as { output: string }).output } }),
  };
}

/** The sidecar of the k-step model (see `OnnxExportSidecar`): its inputs and outputs are named as steps.ts names them. */
function stepsSidecarOf(compiled: CompiledFunction, model: string): OnnxExportSidecar {
  const one = sidecarOf(compiled, model);
  const exec = compiled.exec as Extract<CompiledFunction['exec'], { kind: 'program' }>;
  if (exec.program.steps === undefined) throw new SymflowError(WHO, `${compiled.who}: the backend has no k-step form`);
  const spec = exec.steps;
  const byName = new Map(one.inputs.map((i) => [i.name, i]));
  const stacked = (reg: number): OnnxExportInput => {
    const i = byName.get(`s${reg}`)! as OnnxBatchInput | OnnxRandomInput;
    return i.kind === 'batch' ? { ...i, name: `k${reg}`, shape: [null, ...i.shape] } : { ...i, name: `k${reg}` };
  };
  const inputs: OnnxExportInput[] = [
    { name: 'trip', kind: 'steps', dtype: 'int64' },
    ...spec.stacked.map(stacked),
    ...spec.fixed.map((reg) => byName.get(`s${reg}`)!),
    ...compiled.updates.map(({ variable }, i) => ({ name: `v${i}`, kind: 'variable' as const, variable: variable.name, dtype: variable.dtype, shape: [...variable.shape] })),
  ];
  const scans = spec.scanned.map((_, j) => `scan${j}`);
  return {
    format: 'symflow-onnx-steps/1',
    model,
    inputs,
    outputs: [
      ...compiled.updates.map(({ variable }, i) => ({ name: `final${i}`, dtype: variable.dtype })),
      ...compiled.outputs.map((t, j) => ({ name: scans[j]!, dtype: t.dtype })),
    ],
    functionOutputs: one.functionOutputs.map((o) => ({ ...o, from: { output: scans[o.index]! } })),
    updates: one.updates.map((u, i) => ({ ...u, from: { output: `final${i}` } })),
    ...(one.guard === undefined ? {} : { guard: { index: one.guard.index, output: scans[one.guard.index]! } }),
  };
}

/**
 * Writes a compiled step as a standalone ONNX model to `path` — the very model the onnx backend runs — and a JSON
 * sidecar (`path + '.json'`, an `OnnxExportSidecar`) naming every model input (batch values by index and tensor,
 * variables' current values, random sources to draw) and what each output is (the function's outputs, the new
 * values of which variables, the guard). One run of the model from a state is one step from that state: the
 * caller feeds the batch and the variables' values and assigns the new values (only when the guard says so).
 *
 * `target`: a `SessionFunction` of an onnx session, or a `TrainStep` of one run per step (a single-run optimizer,
 * `heun({ fused: true })`); a multi-run step is refused, as is a function compiled on another backend. A function
 * with random sources (dropout) is exported with them as model inputs: the sidecar says their distribution and
 * shape, and the caller draws them (the model then matches symflow's step only for the same draws).
 * `accumulate`'s step exports its per-step run (its flush is a function of its own); a learning-rate schedule or
 * the step counter is a variable like any other, fed and updated through the sidecar.
 * @param target the function or step @param path where the model goes (the sidecar goes to `path + '.json'`)
 * @returns the sidecar it wrote
 */
export async function exportOnnx(target: SessionFunction | TrainStep, path: string, opts: {
  /** Export the k-step model (an ONNX `Loop` over stacked batches, what `TrainStep.steps` runs) instead of one step. */
  steps?: boolean;
} = {}): Promise<OnnxExportSidecar> {
  if (typeof path !== 'string' || path.length === 0) throw new SymflowError(WHO, `path must be a non-empty string, got ${typeof path}`);
  if (opts === null || typeof opts !== 'object' || (opts.steps !== undefined && typeof opts.steps !== 'boolean')) {
    throw new SymflowError(WHO, `opts.steps must be a boolean, got ${opts === null || typeof opts !== 'object' ? String(opts) : typeof opts.steps}`);
  }
  const fn = functionOf(target);
  const compiled = (fn as unknown as { [COMPILED_FUNCTION]: CompiledFunction })[COMPILED_FUNCTION];
  const exec = compiled.exec;
  // The onnx backend compiles no model for a function that computes nothing.
  if (exec.kind === 'program' && exec.program.exportModel === undefined && exec.results.length === 0) {
    throw new SymflowError(WHO, `${compiled.who}: the function computes nothing (every output and new value is a fed value or a variable), so there is no model to export`);
  }
  if (opts.steps === true) {
    const sidecar = stepsSidecarOf(compiled, basename(path));
    const program = (exec as Extract<CompiledFunction['exec'], { kind: 'program' }>).program.steps!((exec as Extract<CompiledFunction['exec'], { kind: 'program' }>).steps);
    await writeFile(path, program.exportModel!());
    await writeFile(`${path}.json`, `${JSON.stringify(sidecar, null, 2)}\n`);
    return sidecar;
  }
  const sidecar = sidecarOf(compiled, basename(path));
  await writeFile(path, (exec as { program: { exportModel: () => Uint8Array } }).program.exportModel());
  await writeFile(`${path}.json`, `${JSON.stringify(sidecar, null, 2)}\n`);
  return sidecar;
}
