export { type Flush, type LearningRate, type Optimizer, type OptimizerState, makeOptimizer } from './optimizer.js';
export { perParameter, type RuleInput, type SlotState } from './perParameter.js';
export { sgd, type SgdOptions } from './sgd.js';
export { adam, adamw, type AdamOptions, type AdamWOptions } from './adam.js';
export { adagrad, rmsprop } from './rmsprop.js';
export { accumulate, type AccumulateOptions, type AccumulateState } from './accumulate.js';
export { type ButcherTableau, isFsal, tableaux } from './tableaux.js';
export { heun, neededStages, rungeKutta, type AdaptiveOptions, type Controller, type RungeKuttaOptions } from './rungeKutta.js';
export { sam } from './sam.js';
export {
  compile, defineMultiRun, type AnyOptimizer, type CompileOptions, type MultiRunOptimizer, type MultiRunProgram,
  type NamedResults, type NamedRun, type Run, type RunContext, type RunOutputs, type RunSpec, type StepOptions, type StepResult, type TrainStep,
} from './compile.js';
export { NonFiniteError, type NonFinitePolicy, type NonFiniteReport } from './nonFinite.js';
// gradient transformations and their composition
export {
  applyUpdates, chain, fromTransform, hyperparameter, isHyperparameter, transformOf, type ChainState, type GradientTransformation,
  type Scalar, type TransformLike, type TransformOptimizer, type TransformOptimizerState, type UpdateContext,
} from './transform.js';
export {
  adaptiveGradClip, addDecayedWeights, clipByGlobalNorm, clipByNorm, clipByValue, clipUpdatesByValue, globalNorm, kernelsOnly,
  scale, scaleByAdagrad, scaleByAdam, scaleByLearningRate, scaleByRms, trace, type LearningRateLike, type LearningRateState, type Mask,
  type ScaleByAdamOptions, type SlotsState,
} from './transforms.js';
export {
  applyIfFinite, emaParams, lookahead, masked, partition, type ApplyIfFiniteState, type EmaParamsState, type LookaheadState,
  type MaskedState, type PartitionState,
} from './wrappers.js';
export { atAverages, swapAverages } from './averages.js';
// schedules
export * as schedules from './schedules.js';
export type { Schedule } from './schedules.js';
// …and by name, but `constant` (the graph's constant; the schedule is `schedules.constant`)
export {
  cosineDecay, defineSchedule, exponentialDecay, join, linear, piecewiseConstant, piecewiseValues, polynomial, warmupCosineDecay,
} from './schedules.js';
// lbfgs, extragradient
export { lbfgs, type LbfgsOptions } from './lbfgs.js';
export { extragradient } from './extragradient.js';
