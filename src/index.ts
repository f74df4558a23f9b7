/**
 * symflow: static symbolic dataflow graphs with explicit session runs.
 *
 * The curated public API. Graph code (ops, gradients, cond) never touches a kernel library; sessions run
 * graphs on a backend.
 */
export { Tensor, Variable, isTensor, isVariable, type DType, type Dim, type Shape, type InitSpec } from './graph/tensor.js';
export { SymflowError } from './graph/errors.js';
export type { HostTensor, Value, NestedArray, TypedArray } from './graph/hostValue.js';
export { toNested } from './graph/hostValue.js';
export { placeholder, constant, variable } from './graph/sources.js';
export { graph, nameScope } from './graph/names.js';
export { initializers } from './graph/initializers.js';
export type { TensorLike } from './graph/convert.js';
export * from './graph/ops/index.js';
export { gradients, type GradientsOptions } from './graph/gradients.js';
export { customGradient, type GradRule } from './graph/customGradient.js';
export { defineOp, type OpDefinition, type UserOp, type AttrSchemaOf } from './defineOp.js';
export type { AttrKind, AttrsOf, Inferred, OpDef, ShapeCtx } from './graph/registry.js';
export type { NodeTypes, OnnxAttr, OnnxBuilder, OnnxElem, OnnxLowering, OpKernels, TfjsKernel } from './backend/opKernels.js';
export { cond, type CondUpdate, type MomentsUpdate, type Update, type UpdatePair } from './graph/cond.js';
export { movingMoments } from './graph/moments.js';
export { bernoulli, dropout, learningPhase, randomNormal, randomUniform, type RandomOptions, type ShapeOrLike } from './graph/random.js';
export { Session, DeviceValue, Snapshot, type SessionOptions, type RunOptions, type FunctionSpec, type SessionFunction, type FeedValue, type Feeds } from './session/session.js';
export type { BackendChoice, BackendName, OnnxLogLevel } from './backend/index.js';
export { toJSON, fromJSON, type GraphJSON, type GraphFromJSON, type FromJSONOptions } from './graph/serialize.js';
export { layers, type DenseOptions, type DenseLayer, type Activation } from './graph/layers.js';
export { variablesOf } from './graph/traverse.js';
export { prune } from './graph/passes/prune.js';
export { simplifyShapes } from './graph/passes/simplify.js';
export { constantFold } from './graph/passes/constantFold.js';
export { cse } from './graph/passes/cse.js';
export { fuseMatMul } from './graph/passes/fuseMatMul.js';
export { fuseSub } from './graph/passes/fuseSub.js';
export { reluKernel } from './graph/passes/reluKernel.js';
export { explicitTranspose } from './graph/passes/explicitTranspose.js';
export { symbolicShapes, type SymDim } from './graph/passes/symbolicShapes.js';
export { optimize } from './session/compileFunction.js';
export { toIR, type GraphIR, type NodeIR } from './graph/ir.js';
export * from './optimizers/index.js';
// `clipByValue(x, lo, hi)` is the op, `clipByValue(maxDelta)` the gradient transformation: one function for both.
export { clipByValue } from './optimizers/transforms.js';
export * from './training/index.js';
export { substitute } from './graph/substitute.js';
export * from './graph/layers/index.js';
// graph pictures
export { toDot, toSvg, dotToSvg, planToDot, planToSvg, functionToDot, functionToSvg, type DotOptions } from './session/planDot.js';
// portable steps
export { exportOnnx, type OnnxExportSidecar, type OnnxExportInput, type OnnxExportSource, type OnnxExecutionProvider, type OnnxExecutionProviderOptions, type OnnxBatchInput, type OnnxVariableInput, type OnnxRandomInput, type OnnxAxisOf, type OnnxConstantSource, type OnnxOutputSource, type OnnxInputSource, type OnnxExportOutput, type OnnxFunctionOutput, type OnnxExportUpdate, type OnnxGuard } from './backend/onnx/export.js';
