import type { Update } from '../graph/cond.js';
import { SymflowError } from '../graph/errors.js';
import { inSpaceOf } from '../graph/names.js';
import { checkRows } from '../graph/rows.js';
import type { HostTensor } from '../graph/hostValue.js';
import { isTensor, isVariable, type Tensor, type Variable } from '../graph/tensor.js';
import { variablesOf } from '../graph/traverse.js';
import { checkFed } from '../graph/feedChecks.js';
import { toHostTensor } from '../graph/hostValue.js';
import type { CompiledFunction } from '../session/compileFunction.js';
import { COMPILED_FUNCTION, DeviceValue, type FeedValue, type Session, type SessionFunction } from '../session/session.js';
import { checkPolicy, guardedRun, NonFiniteError, type NonFinitePolicy, type NonFiniteReport, Refused, stepDiagnosis } from './nonFinite.js';
import { checkLoss, checkParams, type Optimizer, type OptimizerState, paramGradients, slotLike } from './optimizer.js';
import { fromTransform, type GradientTransformation, isHyperparameter } from './transform.js';

/** What one training step reports. */
export interface StepResult {
  /** The loss at the parameters the step started from. */
  loss: number;
  /** Values of the requested outputs, at the same parameters. */
  outputs: HostTensor[];
  /** Session runs this step took. */
  runs: number;
  /** Adaptive methods: whether the step was accepted (always true once `step` resolves). */
  accepted?: boolean;
  /** Adaptive methods: attempts rejected (and retried with a smaller step) before the accepted one. */
  rejections?: number;
  /** The learning rate (step size) the step used. */
  lr?: number;
  /** Adaptive methods: the error norm of the accepted step (scaled by atol + rtol·|p|; accepted when ≤ 1). */
  errorNorm?: number;
  /** Runge–Kutta methods: gradient evaluations this step took (stages evaluated, rejected attempts included). */
  gradientEvaluations?: number;
  /** With `onNonFinite: 'skip'`: the step was refused (nothing applied), and why. */
  skipped?: NonFiniteReport;
}

/**
 * @internal The session functions a `TrainStep` runs per step, in the order they were compiled (its model-update
 * run last, when it has one; the flush of `accumulate` is not a per-step run): `exportOnnx` exports a step that has one.
 */
export const STEP_RUNS = Symbol('symflow.stepRuns');

/** One compiled run of a multi-run step: a session function fed with the step's batch, then its `feeds`' values. */
export type Run = (batch: readonly DeviceValue[]) => Promise<HostTensor[]>;

/** Named outputs of a run: each a tensor, or a list of tensors (such as the user's extra outputs). */
export type RunOutputs = Readonly<Record<string, Tensor | readonly Tensor[]>>;
/** What a run with named outputs resolves to: a host value per named tensor, a list per named list. */
export type NamedResults<O extends RunOutputs> = { readonly [K in keyof O]: NonNullable<O[K]> extends readonly Tensor[] ? HostTensor[] : HostTensor };
/** A run whose outputs are read by name, not by position. */
export type NamedRun<O extends RunOutputs> = (batch: readonly DeviceValue[]) => Promise<NamedResults<O>>;

/** What a run applies and checks (see `RunContext.run`). */
export interface RunSpec {
  /** The run's assignments, all computed from the variables' values before the run. Default none. */
  updates?: readonly Update[];
  /**
   * Whether the run refuses the step when a new value is not finite (default true). Pass false for a run whose
   * non-finite values the method handles itself. No effect under `onNonFinite: 'apply'`.
   */
  guard?: boolean;
  /** More tensors a guarded run requires finite (the step is refused when one is not). Default none. */
  finite?: readonly Tensor[];
  /**
   * More tensors the run feeds, after the step's inputs: the run then takes their values after the batch (uploaded
   * with `session.upload`). A method that computes points on the host feeds them so — L-BFGS's trial points feed the
   * parameters themselves, and a placeholder per parameter carries the point it writes.
   */
  feeds?: readonly Tensor[];
}

/**
 * What a multi-run optimizer gets to build its runs with: the loss, the parameters, their symbolic gradients,
 * and `run()` to compile session functions over the step's inputs.
 */
export interface RunContext {
  /** The session the step is compiled against (for a run of your own, e.g. a flush: `session.function`). */
  readonly session: Session;
  /** The scalar loss being minimised. */
  readonly loss: Tensor;
  /** The parameters to train (`CompileOptions.params`, or every trainable variable the loss reads). */
  readonly params: readonly Variable[];
  /** ∇loss with respect to each parameter, at the parameters' current values. */
  readonly grads: readonly Tensor[];
  /** The tensors each step's batch feeds, in order (`CompileOptions.inputs`). */
  readonly inputs: readonly Tensor[];
  /** Extra tensors the user asked for; report them from the run that measures the loss. */
  readonly outputs: readonly Tensor[];
  /**
   * Compiles one run: a session function whose inputs are the step's inputs. Unless the step applies non-finite
   * values (`onNonFinite: 'apply'`), the run applies its updates only when every new value is finite, and the
   * step is refused otherwise; pass `guard: false` for a run whose non-finite values the method handles itself
   * (Runge–Kutta's stage runs: a non-finite stage is a rejected adaptive step). A run that reports the loss
   * refuses the step at once when it is not finite. `finite` lists more tensors a guarded run requires finite.
   */
  run(spec: RunSpec & { outputs?: readonly Tensor[] }): Run;
  /** The same with named outputs: `ctx.run({outputs: {loss: ctx.loss, lr}})` resolves to `{loss, lr}`. */
  run<O extends RunOutputs>(spec: RunSpec & { outputs: O }): NamedRun<O>;
  /** A zero slot variable per parameter, named `owner/name/param`. */
  slots(owner: string, name: string): Variable[];
}

/** A compiled multi-run method: its runs, its state, and the host script that sequences them. */
export interface MultiRunProgram {
  /** Runs a step takes when nothing is rejected. */
  readonly runsPerStep: number;
  /** Every variable the method owns besides the parameters (restored if a step fails). */
  readonly variables: readonly Variable[];
  /**
   * The host script of one step: calls the runs, in order, with the step's batch (already on the backend) and
   * reports the loss at the parameters the step started from. `compile` makes it atomic: if it throws or a guarded
   * run refuses, every parameter and `variables` entry is restored.
   */
  step(batch: readonly DeviceValue[]): Promise<StepResult>;
  /**
   * For a method of one run per step whose result follows from that run's outputs alone (no host logic between
   * steps): the step's result from them, in the run's output order. With it, `TrainStep.steps` runs k steps of the
   * method in ONE backend call where it can (on onnx an ONNX `Loop`), instead of calling `step` k times.
   */
  resultOf?(outputs: readonly HostTensor[]): StepResult;
  /** Finishes a pending partial step (see `TrainStep.flush`), if the method has one. */
  flush?(): Promise<boolean>;
}

/**
 * An optimizer that needs several session runs per step (Heun, Runge–Kutta, SAM, …): the seed's "intrusive"
 * train_function, done properly. `build` compiles the runs once; `compile` feeds each step's batch to the backend
 * once and makes the whole step atomic.
 */
export interface MultiRunOptimizer {
  /** Tells optimizer kinds apart: `'multiRun'`. */
  readonly kind: 'multiRun';
  /** The method's name, for messages (`'heun'`, `'sam(sgd)'`, …). */
  readonly name: string;
  /** Compiles the runs and returns the step script; `compile` calls it once, in the parameters' name space. */
  build(ctx: RunContext): MultiRunProgram;
}

/**
 * Declares a multi-run optimizer: `build` compiles its runs with `ctx.run` and returns the host script that
 * sequences them. A complete two-run method, "look ahead, then step" (the extragradient method, shipped as
 * `extragradient`):
 *
 * ```ts
 * import { compile, defineMultiRun, mean, mul, placeholder, Session, square, sub, variable, type Update } from 'symflow';
 *
 * // Run 1 measures the loss at p, remembers p and moves to p½ = p − lr·∇L(p);
 * // run 2 reads the gradient at p½ and steps from the remembered p: p ← p − lr·∇L(p½).
 * const lookThenStep = (lr: number) => defineMultiRun('lookThenStep', (ctx) => {
 *   const start = ctx.slots('lookThenStep', 'start'); // a zero slot per parameter
 *   const look = ctx.run({
 *     outputs: { loss: ctx.loss, extra: ctx.outputs },
 *     // Every new value is computed from the values before the run: start ← p and p ← p − lr·∇L(p) together.
 *     updates: ctx.params.flatMap((p, i): Update[] => [[start[i]!, p], [p, sub(p, mul(lr, ctx.grads[i]!))]]),
 *   });
 *   // The same symbolic gradients, now evaluated at p½ (what the parameters hold after run 1).
 *   const jump = ctx.run({ updates: ctx.params.map((p, i): Update => [p, sub(start[i]!, mul(lr, ctx.grads[i]!))]) });
 *   return {
 *     runsPerStep: 2,
 *     variables: start, // restored with the parameters if a step fails
 *     async step(batch) {
 *       const { loss, extra } = await look(batch);
 *       await jump(batch);
 *       return { loss: loss.data[0]!, outputs: extra, runs: 2, lr };
 *     },
 *   };
 * });
 *
 * const x = placeholder([null], { name: 'x' });
 * const w = variable(0, { name: 'w' });
 * const loss = mean(square(sub(mul(w, x), mul(2, x)))); // minimum at w = 2
 * const session = await Session.create();
 * const train = compile(lookThenStep(0.05), session, { loss, inputs: [x] });
 * for (let i = 0; i < 50; i++) await train.step([[1, 2, 3]]);
 * console.log((await session.getValue(w)).data[0]); // ≈ 2
 * ```
 * @param name the optimizer's name @param build compiles the runs and returns the step script
 * @returns a multi-run optimizer for `compile`
 */
export function defineMultiRun(name: string, build: (ctx: RunContext) => MultiRunProgram): MultiRunOptimizer {
  return Object.freeze({ kind: 'multiRun' as const, name, build });
}

/** Anything `compile` takes: a single-run optimizer, a multi-run one, or a bare gradient transformation (its updates applied). */
export type AnyOptimizer = Optimizer | MultiRunOptimizer | GradientTransformation<any>;

/** Options of `compile`: what to minimise, over which variables, fed by what. */
export interface CompileOptions {
  /** The scalar float32 loss to minimise. */
  loss: Tensor;
  /** The variables to train (default: every trainable variable the loss reads). */
  params?: readonly Variable[];
  /** Tensors fed, in order, by each step's values. */
  inputs: readonly Tensor[];
  /** Extra tensors to evaluate alongside the loss, at the same parameters (`StepResult.outputs`). Default none. */
  outputs?: readonly Tensor[];
  /**
   * A batch that makes the loss, a gradient or a new value NaN or infinite: refused with a `NonFiniteError`
   * (`'error'`, the default), refused and reported as `StepResult.skipped` (`'skip'`), or applied (`'apply'`).
   * The check is part of each run (one sum per new value); a refused step changes no variable.
   */
  onNonFinite?: NonFinitePolicy;
  /**
   * The model's own state updates (a batch norm's moving averages: not parameters, not optimizer state), applied
   * exactly once per step and computed from the variables as they were when the step started and the step's
   * batch — in a multi-run step too (a Heun step updates them once, not twice). Part of the step: a refused or
   * failed step applies none of them.
   */
  updates?: readonly Update[];
}

/** Per-step options of `TrainStep.step`. */
export interface StepOptions {
  /**
   * Overrides the compiled policy for this step: 'error' or 'skip'. A step compiled with 'apply' has no compiled
   * check; asked to refuse, it checks the loss only and undoes the step when it is not finite.
   */
  onNonFinite?: 'error' | 'skip';
}

/** A compiled training step. */
export interface TrainStep {
  /** The session that holds the variables and runs the step. */
  readonly session: Session;
  /** The optimizer as given to `compile`. */
  readonly optimizer: AnyOptimizer;
  /** Session calls one step needs when nothing is rejected. */
  readonly runsPerStep: number;
  /** The variables trained (`CompileOptions.params`, or every trainable variable the loss reads), in order. */
  readonly params: readonly Variable[];
  /** The loss being minimised and the tensors each step's values feed. */
  readonly loss: Tensor;
  /** The tensors each step's values feed, in order (`CompileOptions.inputs`). */
  readonly inputs: readonly Tensor[];
  /** The optimizer's state variables. */
  readonly stateVariables: readonly Variable[];
  /** What a step does with non-finite values (see `CompileOptions.onNonFinite`). */
  readonly onNonFinite: NonFinitePolicy;
  /** One step on one batch: values for `inputs`, in order. Atomic: if it throws, nothing changed. */
  step(values: readonly FeedValue[], opts?: StepOptions): Promise<StepResult>;
  /**
   * k steps, one per batch, with the results of k `step` calls bit for bit (the same values, draws and counters),
   * atomic as a whole: one transaction of the session (nothing lands between its steps), and if it throws, every
   * variable and the step counter are as they were before it. A step refused under `onNonFinite: 'skip'` is skipped
   * as `step` skips it, and the others apply. On onnx, the consecutive batches of one shape of a single-run step
   * (or of a method of one run per step with `MultiRunProgram.resultOf`, such as `heun({fused: true})`) run as ONE
   * onnxruntime call (an ONNX `Loop` over the stacked batches: per-call costs paid once); elsewhere, and for other
   * multi-run steps, it takes the steps one by one.
   */
  steps(batches: readonly (readonly FeedValue[])[], opts?: StepOptions): Promise<StepResult[]>;
  /** Finishes a pending partial step (soft batch's ragged last group); resolves to false when there was none. */
  flush(): Promise<boolean>;
  /** The optimizer's hyperparameters (a numeric lr, `hyperparameter(…)`s it was given): what `setHyperparameter` sets. */
  readonly hyperparameters: readonly Variable[];
  /**
   * Sets a hyperparameter between steps, without recompiling: `'lr'`, or the variable's full name when several
   * share a last part (`'kernels/sgd/lr'`). Queued like any session call: a step in progress finishes first.
   */
  setHyperparameter(name: string, value: number): Promise<void>;
  /** A hyperparameter's current value. */
  getHyperparameter(name: string): Promise<number>;
  /** The averaged copy of each parameter (`emaParams`), in the order of `params`; undefined without one. */
  readonly averages: readonly Variable[] | undefined;
}

/**
 * Compiles an optimizer against a session into a `TrainStep`. One step is one or more `session.function` calls;
 * the batch goes to the backend once per step and every run of the step reuses it.
 *
 * ```ts
 * const train = compile(heun({ lr: 0.1 }), session, { loss, inputs: [x, y] });
 * const { loss: l, runs } = await train.step([xs, ys]); // runs === 2
 * ```
 * @param given the optimizer: single-run, multi-run, or a bare gradient transformation
 * @param session the session that holds the variables
 * @param opts loss, params, inputs, outputs
 * @returns the train step
 */
export function compile(given: AnyOptimizer, session: Session, opts: CompileOptions): TrainStep {
  if (given?.kind !== 'single' && given?.kind !== 'multiRun' && given?.kind !== 'transform') throw new SymflowError('compile', 'optimizer must be made by sgd, adam, chain, rungeKutta, defineMultiRun, …');
  // A bare transformation (scaleByAdam(), …) is an optimizer once its updates are applied.
  const optimizer: Optimizer | MultiRunOptimizer = given.kind === 'transform' ? fromTransform(given) : given;
  checkLoss('compile', opts?.loss);
  const params = opts.params ?? variablesOf(opts.loss);
  checkParams('compile', params);
  const inputs = [...(opts.inputs ?? [])];
  inputs.forEach((t, i) => { if (!isTensor(t)) throw new SymflowError('compile', `inputs[${i}] is not a Tensor`); });
  const outputs = [...(opts.outputs ?? [])];
  const policy = checkPolicy('compile', opts.onNonFinite);
  const grads = paramGradients('compile', opts.loss, params, 'leave it out of params, or omit params to train every trainable variable the loss reads');
  let runsThisStep = 0;
  const runFunctions: SessionFunction[] = [];
  const ctx: RunContext = {
    session, loss: opts.loss, params, grads, inputs, outputs,
    run: ((spec: RunSpec & { outputs?: readonly Tensor[] | RunOutputs }) => {
      const named = spec.outputs !== undefined && !Array.isArray(spec.outputs) ? Object.entries(spec.outputs as RunOutputs) : undefined;
      const flat = named ? named.flatMap(([, t]) => (Array.isArray(t) ? t : [t as Tensor])) : (spec.outputs as readonly Tensor[] | undefined) ?? [];
      const spec2 = { outputs: flat, updates: spec.updates ?? [] };
      const feeds = spec.feeds ?? [];
      if (!Array.isArray(feeds)) throw new SymflowError('RunContext.run', 'feeds must be an array of tensors');
      feeds.forEach((t, i) => { if (!isTensor(t)) throw new SymflowError('RunContext.run', `feeds[${i}] is not a Tensor`); });
      const fed = feeds.length > 0 ? [...inputs, ...feeds] : inputs;
      // A step's runs are compiled for training: the learning phase is true in them (dropout drops).
      const compiled = policy === 'apply' ? session.function({ inputs: fed, ...spec2, training: true }) : guardedRun(session, fed, opts.loss, spec2, spec.guard ?? true, spec.finite ?? []);
      runFunctions.push('fn' in compiled ? compiled.fn : compiled);
      const f: Run = compiled;
      const run: Run = (batch) => {
        runsThisStep++;
        return f(batch);
      };
      if (named === undefined) return run;
      // Named outputs: the flat results cut back into the record, in the order the names were given.
      return async (batch: readonly DeviceValue[]) => {
        const out = await run(batch);
        let at = 0;
        return Object.fromEntries(named.map(([k, t]) => {
          const n = Array.isArray(t) ? t.length : 1;
          const part = out.slice(at, at + n);
          at += n;
          return [k, Array.isArray(t) ? part : part[0]!];
        }));
      };
    }) as RunContext['run'],
    slots: (owner, name) => params.map((p) => slotLike(owner, name, p)),
  };
  // The model's state updates: in the single run of a single-run step; after a multi-run step's runs, in a run of
  // their own fed with the parameters' values at the step's start.
  const modelUpdates = [...(opts.updates ?? [])];
  const modelVariables = updatedVariables('compile', modelUpdates);
  const trained = modelVariables.find((v) => params.includes(v));
  if (trained !== undefined) throw new SymflowError('compile', `updates assign '${trained.name}', which the optimizer trains or owns; a model update may assign only the model's own state`);
  // The optimizer's variables are named in the parameters' name space: the same in every build of one model.
  const { built, program } = inSpaceOf(params[0], () => {
    const single = optimizer.kind === 'single' ? singleRun(optimizer, ctx, modelUpdates) : undefined;
    return { built: single, program: single?.program ?? (optimizer as MultiRunOptimizer).build(ctx) };
  });
  const state = built?.state;
  const flushRun = built?.flushRun ?? program.flush?.bind(program);
  const stateVariables = [...(state?.variables ?? []), ...program.variables];
  const everything: Variable[] = [...params, ...stateVariables];
  const atomic = program.runsPerStep > 1 || optimizer.kind === 'multiRun';


  for (const v of modelVariables) {
    if (everything.includes(v)) throw new SymflowError('compile', `updates assign '${v.name}', which the optimizer trains or owns; a model update may assign only the model's own state`);
  }
  everything.push(...modelVariables);
  const stateRun = modelUpdates.length > 0 && optimizer.kind === 'multiRun'
    ? session.function({ inputs: [...inputs, ...params], updates: modelUpdates, training: true })
    : undefined;
  const atomicStep = atomic || stateRun !== undefined;

  const diagnose = stepDiagnosis(session, inputs, opts.loss, params, grads);

  const checkBatch = (who: string, values: readonly FeedValue[], what = '') => {
    if (!Array.isArray(values) || values.length !== inputs.length) {
      throw new SymflowError(who, `${what}expected ${inputs.length} value(s) (${inputs.map((t) => `'${t.name}'`).join(', ')}), got ${Array.isArray(values) ? values.length : typeof values}`);
    }
    checkRows(who, inputs, values);
  };

  async function step(values: readonly FeedValue[], stepOpts: StepOptions = {}): Promise<StepResult> {
    const onNonFinite = stepOpts?.onNonFinite === undefined ? policy : checkPolicy('TrainStep.step', stepOpts.onNonFinite);
    if (onNonFinite === 'apply' && policy !== 'apply') throw new SymflowError('TrainStep.step', "onNonFinite 'apply' needs a step compiled with it (the check is compiled in)");
    checkBatch('TrainStep.step', values);
    // The whole step — its runs, its snapshot and any rollback — is one transaction of the session: calls issued
    // meanwhile (a setValue, a save, another fit's step) take effect before or after it, never in between.
    return session.transaction(async () => {
      const made: DeviceValue[] = [];
      try {
        const batch = values.map((v, i) => {
          if (v instanceof DeviceValue) return v;
          const d = session.upload(inputs[i]!, v);
          made.push(d);
          return d;
        });
        runsThisStep = 0;
        // Compiled with 'apply' but asked to refuse (fit's policies): no check is compiled, so the loss is checked
        // here and the step undone — the one other place a step is rolled back.
        const hostCheck = policy === 'apply' && onNonFinite !== 'apply';
        const snap = atomicStep || hostCheck ? session.snapshot(everything) : undefined;
        try {
          const result = await program.step(batch);
          if (stateRun !== undefined) {
            const start = snap!.values(params);
            try {
              await stateRun([...batch, ...start]);
            } finally {
              for (const d of start) d.dispose();
            }
          }
          if (!hostCheck || Number.isFinite(result.loss)) return result;
          throw new Refused();
        } catch (e) {
          if (session.isDisposed) throw e; // no restore into a disposed session: the outer catch says what happened
          snap?.restore();
          if (!(e instanceof Refused)) throw e;
          const report = await diagnose(batch, e);
          if (onNonFinite === 'error') throw new NonFiniteError('TrainStep.step', report);
          return { loss: report.loss, outputs: [], runs: runsThisStep, skipped: report };
        } finally {
          snap?.dispose();
          // One step, one value of the counter random nodes are keyed by: all its runs drew the same values.
          if (!session.isDisposed) session.advanceStep();
        }
      } catch (e) {
        if (!session.isDisposed) throw e;
        throw new SymflowError('TrainStep.step', 'the session was disposed during the step; nothing of the step was applied');
      } finally {
        for (const d of made) d.dispose();
      }
    });
  }

  // A step of one run whose result follows from that run's outputs (every single-run optimizer, a method that says
  // so with `resultOf`) runs k batches of one shape as one call of its k-step form.
  const resultOf = built?.resultOf ?? program.resultOf?.bind(program);
  const fusable = resultOf !== undefined && program.runsPerStep === 1 && stateRun === undefined && runFunctions.length === 1;

  /** k steps of one shape in one call; undefined when a step was refused (nothing applied: they go one by one). */
  async function fusedSteps(group: readonly (readonly FeedValue[])[]): Promise<StepResult[] | undefined> {
    const fn = (runFunctions[0] as unknown as { [COMPILED_FUNCTION]: CompiledFunction })[COMPILED_FUNCTION];
    const outcome = await session.callSteps(fn, group, session.step);
    if (outcome === undefined || 'refused' in outcome) return undefined;
    for (let i = 0; i < group.length; i++) session.advanceStep();
    return outcome.outputs.map((out) => resultOf!(fn.guard === undefined ? out : out.slice(0, fn.guard)));
  }

  async function steps(batches: readonly (readonly FeedValue[])[], stepOpts: StepOptions = {}): Promise<StepResult[]> {
    const who = 'TrainStep.steps';
    if (!Array.isArray(batches)) throw new SymflowError(who, `batches must be an array of batches (each an array of values for ${inputs.map((t) => `'${t.name}'`).join(', ')}), got ${typeof batches}`);
    const onNonFinite = stepOpts?.onNonFinite === undefined ? policy : checkPolicy(who, stepOpts.onNonFinite);
    if (onNonFinite === 'apply' && policy !== 'apply') throw new SymflowError(who, "onNonFinite 'apply' needs a step compiled with it (the check is compiled in)");
    batches.forEach((values, i) => checkBatch(who, values, `batches[${i}]: `));
    // Read once, so the batches' shapes are known before anything runs (and a bad value refused before any step).
    const fed = batches.map((values: readonly FeedValue[], i) => values.map((v: FeedValue, j): HostTensor | DeviceValue => {
      if (v instanceof DeviceValue) return v;
      const t = inputs[j]!;
      const where = `${who}: batches[${i}] feed '${t.name}'`;
      return checkFed(where, t, toHostTensor(where, v, t.dtype, t.shape));
    }));
    // Compiled with 'apply' but asked to refuse: the loss is checked on the host after each step (see `step`).
    const oneCall = fusable && !(policy === 'apply' && onNonFinite !== 'apply');
    return session.transaction(async () => {
      const first = session.step;
      const snap = session.snapshot(everything);
      try {
        const results: StepResult[] = [];
        for (let at = 0; at < fed.length;) {
          let end = at + 1;
          while (oneCall && end < fed.length && sameShapes(fed[at]!, fed[end]!)) end++;
          const fused = end - at > 1 ? await fusedSteps(fed.slice(at, end)) : undefined;
          for (const [i, values] of fed.slice(at, end).entries()) {
            if (fused !== undefined) results.push(fused[i]!);
            else results.push(await step(values, stepOpts).catch((e: unknown) => { throw stepsError(e, at + i, fed.length); }));
          }
          at = end;
        }
        return results;
      } catch (e) {
        if (!session.isDisposed) {
          snap.restore();
          session.rewindStep(first);
        }
        throw e;
      } finally {
        snap.dispose();
      }
    });
  }

  const hyperparameters = stateVariables.filter(isHyperparameter);
  const hyperNamed = (who: string, name: string): Variable => {
    if (typeof name !== 'string') throw new SymflowError(who, `name must be a string, got ${typeof name}`);
    const exact = hyperparameters.filter((v) => v.name === name);
    const found = exact.length > 0 ? exact : hyperparameters.filter((v) => v.name.split('/').at(-1)!.replace(/_\d+$/, '') === name);
    if (found.length === 1) return found[0]!;
    const known = hyperparameters.map((v) => `'${v.name}'`).join(', ') || 'none';
    throw new SymflowError(who, found.length === 0
      ? `no hyperparameter '${name}' in ${optimizer.name} (it has ${known}; a schedule or a constant tensor is not settable)`
      : `'${name}' is ambiguous in ${optimizer.name}: ${found.map((v) => `'${v.name}'`).join(', ')}; pass the full name`);
  };
  const averages = built?.state && optimizer.kind === 'single' ? optimizer.averages?.(built.state) : undefined;
  return Object.freeze({
    session, optimizer: given as AnyOptimizer as Optimizer | MultiRunOptimizer, runsPerStep: program.runsPerStep, params, loss: opts.loss, inputs, stateVariables, step, steps, onNonFinite: policy,
    flush: async () => (flushRun ? flushRun() : false),
    [STEP_RUNS]: stateRun === undefined ? runFunctions : [...runFunctions, stateRun],
    hyperparameters,
    averages,
    async setHyperparameter(name: string, value: number) {
      const v = hyperNamed('TrainStep.setHyperparameter', name);
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new SymflowError('TrainStep.setHyperparameter', `value of '${v.name}' must be a finite number, got ${String(value)}`);
      await session.setValue(v, value);
    },
    async getHyperparameter(name: string) {
      return (await session.getValue(hyperNamed('TrainStep.getHyperparameter', name))).data[0]!;
    },
  });
}

function singleRun(opt: Optimizer, ctx: RunContext, modelUpdates: readonly Update[]): {
  program: MultiRunProgram; flushRun?: () => Promise<boolean>; state: OptimizerState;
  /** A step's result from its run's outputs in order (loss, the extra outputs, the rate): for `steps`. */
  resultOf(out: readonly HostTensor[]): StepResult;
} {
  const state = opt.init(ctx.params);
  // An optimizer may take over the model's updates (accumulate pools moments over its mini-batches).
  const model = opt.modelUpdates && modelUpdates.length > 0 ? opt.modelUpdates(modelUpdates, state) : { updates: [...modelUpdates], variables: [] };
  // The learning rate the step uses, read where the step reads everything: before it applies anything.
  const lr = opt.learningRate?.(state);
  const run = ctx.run({ outputs: { loss: ctx.loss, outputs: ctx.outputs, lr: lr === undefined ? [] : [lr] }, updates: [...opt.update(ctx.grads, state, ctx.params), ...model.updates] });
  const result = (loss: HostTensor, outputs: HostTensor[], rate: readonly HostTensor[]): StepResult =>
    ({ loss: loss.data[0]!, outputs, runs: 1, ...(rate.length > 0 ? { lr: rate[0]!.data[0]! } : {}) });
  const n = ctx.outputs.length;
  const resultOf = (out: readonly HostTensor[]) => result(out[0]!, out.slice(1, 1 + n), out.slice(1 + n));
  const program: MultiRunProgram = {
    runsPerStep: 1,
    variables: model.variables,
    async step(batch) {
      const { loss, outputs, lr: rate } = await run(batch);
      return result(loss, outputs, rate);
    },
  };
  if (opt.flush === undefined) return { program, state, resultOf };
  const { updates, pending } = opt.flush(state, ctx.params);
  const flushFn = ctx.session.function({ outputs: [pending], updates });
  return { program, state, resultOf, flushRun: async () => (await flushFn())[0]!.data[0] === 1 };
}

/** The variables an update list assigns (in conds too), each once; anything else is left to session.function to refuse. */
function updatedVariables(who: string, updates: readonly Update[]): Variable[] {
  if (!Array.isArray(updates)) throw new SymflowError(who, 'updates must be an array of [variable, newValue] pairs and conds of them');
  const out = new Set<Variable>();
  const walk = (list: readonly Update[]) => {
    for (const u of list) {
      if (Array.isArray(u) && isVariable(u[0])) out.add(u[0]);
      else if ((u as { kind?: unknown })?.kind === 'moments') {
        const m = u as Extract<Update, { kind: 'moments' }>;
        out.add(m.mean);
        out.add(m.variance);
      }
      else if ((u as { kind?: unknown })?.kind === 'condUpdate') {
        const c = u as Extract<Update, { kind: 'condUpdate' }>;
        walk(c.then);
        walk(c.else);
      }
    }
  };
  walk(updates);
  return [...out];
}

/** Whether two batches feed values of the same shapes (one k-step call needs them stacked). */
function sameShapes(a: readonly (HostTensor | DeviceValue)[], b: readonly (HostTensor | DeviceValue)[]): boolean {
  return a.every((x, i) => x.shape.length === b[i]!.shape.length && x.shape.every((d, j) => d === b[i]!.shape[j]));
}

/** A step of `steps` failed: the error says which batch, and that none of the steps applied. */
function stepsError(e: unknown, i: number, k: number): unknown {
  const undone = `none of the ${k} steps was applied`;
  if (e instanceof NonFiniteError) return new NonFiniteError('TrainStep.steps', { ...e.report, message: `batches[${i}]: ${e.report.message}; ${undone}` });
  if (e instanceof SymflowError) return new SymflowError(e.op, `${e.message.slice(e.op.length + 2)} (TrainStep.steps, batches[${i}]; ${undone})`);
  return e;
}
