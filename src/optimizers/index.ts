export { type Flush, type LearningRate, type Optimizer, type OptimizerState, makeOptimizer } from './optimizer.js';
export { perParameter, type RuleInput, type SlotState } from './perParameter.js';
export { sgd, type SgdOptions } from './sgd.js';
export { adam, adamw, type AdamOptions, type AdamWOptions } from './adam.js';
export { adagrad, rmsprop } from './rmsprop.js';
export { accumulate, type AccumulateOptions, type AccumulateState } from './accumulate.js';
export { type ButcherTableau, tableaux } from './tableaux.js';
export { heun, rungeKutta, type AdaptiveOptions, type RungeKuttaOptions } from './rungeKutta.js';
export { sam } from './sam.js';
export {
  compile, defineMultiRun, type AnyOptimizer, type CompileOptions, type MultiRunOptimizer, type MultiRunProgram,
  type NamedResults, type NamedRun, type Run, type RunContext, type RunOutputs, type RunSpec, type StepOptions, type StepResult, type TrainStep,
} from './compile.js';
export { NonFiniteError, type NonFinitePolicy, type NonFiniteReport } from './nonFinite.js';
// lbfgs, extragradient
export { lbfgs, type LbfgsOptions } from './lbfgs.js';
export { extragradient } from './extragradient.js';
