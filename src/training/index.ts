export { fit, progressOf, sessionOf, yieldToEventLoop, type FitProgress, type EpochEvent, type FitOptions, type SkippedEvent, type StepEvent, type TrainEvent, type ValidationOptions } from './fit.js';
export { type Batch, type Column, type DataSource, type PullSource, epochOrder } from './data.js';
export { runningMean } from './operators/runningMean.js';
export { everyN } from './operators/everyN.js';
export { ema } from './operators/ema.js';
export { earlyStopping, type EarlyStoppingOptions } from './operators/earlyStopping.js';
export { trainingState, reduceTrainingState, initialTrainingState, type TrainingState, type EpochRecord } from './operators/trainingState.js';
export { checkpointEvery } from './operators/checkpointEvery.js';
// reduceOnPlateau
export {
  reduceOnPlateau, type HyperparameterTarget, type PlateauMonitor, type PlateauReduction, type ReduceOnPlateauOptions,
} from './operators/reduceOnPlateau.js';
// tensorboard
export {
  tensorboard, type TensorBoardFile, type TensorBoardHistograms, type TensorBoardOptions,
} from './operators/tensorboard.js';
// dashboard
export { dashboard, type Dashboard, type DashboardOptions, type DashboardRuns, type RunStatus } from './dashboard.js';
