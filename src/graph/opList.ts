// The op set: every built-in op record, by an explicit list (nothing registers itself on import). A new op is a
// record in src/graph/ops/ and one entry here; the backend tables are typed over these names, so TypeScript
// points at each table that still lacks it.
import { condOps } from './cond.js';
import { customGradientOp } from './customGradient.js';
import { addOp, divOp, maximumOp, minimumOp, mulOp, powOp } from './ops/binary.js';
import { broadcastLikeOp, sumToShapeOp } from './ops/broadcast.js';
import { castOp } from './ops/cast.js';
import { equalOp, greaterEqualOp, greaterOp, lessEqualOp, lessOp, logicalAndOp, logicalNotOp, logicalOrOp, notEqualOp } from './ops/compare.js';
import { concatOp } from './ops/concat.js';
import { fillLikeOp, shapeSizeOp } from './ops/fill.js';
import { fusedMatMulOp, reluOp, subtractOp } from './ops/fused.js';
import { gatherOp, unsortedSegmentSumOp } from './ops/gather.js';
import { addNOp, identityOp, stopGradientOp } from './ops/identity.js';
import { argMaxOp, oneHotOp } from './ops/indexing.js';
import { matMulOp } from './ops/matMul.js';
import { maxOp, sumOp } from './ops/reduce.js';
import { expandDimsOp, reshapeLikeOp, reshapeOp, squeezeOp } from './ops/reshape.js';
import { padOp, sliceOp } from './ops/slice.js';
import { softmaxCrossEntropyOp } from './ops/softmaxCrossEntropy.js';
import { transposeOp } from './ops/transpose.js';
import { absOp, cosOp, expOp, floorOp, logOp, negOp, sigmoidOp, signOp, sinOp, sqrtOp, tanhOp } from './ops/unary.js';
import { whereOp } from './ops/where.js';
import type { OpDef } from './registry.js';
import { learningPhaseOp, randomOp } from './random.js';
import { constantOp, placeholderOp, variableOp } from './sources.js';
// --- activations and scans (issue 12) ---
import { erfOp, softplusOp } from './ops/activations.js';
import { cumsumOp } from './ops/scan.js';
// --- pooling (issue 12) ---
import { avgPoolGradOp, avgPoolOp, maxPoolGradOp, maxPoolOp } from './ops/pool.js';
// --- convolutions (issue 12) ---
import { conv2dBackpropFilterOp, conv2dBackpropInputOp, conv2dOp, depthwiseConv2dBackpropFilterOp, depthwiseConv2dBackpropInputOp, depthwiseConv2dOp } from './ops/conv.js';

// Functions, not constants: op modules import the registry, which reads this list, so the list is made on first
// use, when every module of the cycle has been evaluated.

/** The ops a backend runs, node by node: each backend table has an entry (kernel or declared fallback) for each. */
const kernelOps = () => [
  addOp, subtractOp, mulOp, divOp, maximumOp, minimumOp, powOp,
  negOp, expOp, logOp, sqrtOp, absOp, signOp, sigmoidOp, tanhOp, sinOp, cosOp, floorOp, reluOp,
  greaterOp, lessOp, equalOp, notEqualOp, greaterEqualOp, lessEqualOp, logicalAndOp, logicalOrOp, logicalNotOp,
  castOp, whereOp, matMulOp, fusedMatMulOp, transposeOp, reshapeOp, reshapeLikeOp, expandDimsOp, squeezeOp,
  concatOp, sliceOp, padOp, gatherOp, unsortedSegmentSumOp, sumOp, maxOp, argMaxOp, oneHotOp,
  fillLikeOp, shapeSizeOp, identityOp, stopGradientOp, addNOp, broadcastLikeOp, sumToShapeOp, softmaxCrossEntropyOp,
  customGradientOp,
  // --- activations and scans (issue 12) ---
  erfOp, softplusOp, cumsumOp,
  // --- pooling (issue 12) ---
  maxPoolOp, avgPoolOp, maxPoolGradOp, avgPoolGradOp,
  // --- convolutions (issue 12) ---
  conv2dOp, conv2dBackpropInputOp, conv2dBackpropFilterOp, depthwiseConv2dOp, depthwiseConv2dBackpropInputOp, depthwiseConv2dBackpropFilterOp,
] as const;

/**
 * The sources: bound before a run (fed, read from the session, embedded, drawn on the host), never run by a
 * kernel. The learning phase is bound when a function is compiled.
 */
const sourceOps = () => [placeholderOp, constantOp, variableOp, randomOp, learningPhaseOp] as const;

/** An op a backend table must cover. */
export type KernelOpName = ReturnType<typeof kernelOps>[number]['name'];
/** A source op's name. */
export type SourceOpName = ReturnType<typeof sourceOps>[number]['name'];
/** Every built-in op's name (cond's structural ops included: the plan runs those). */
export type OpName = KernelOpName | SourceOpName | (typeof condOps)[number]['name'];

// Every kernel op must carry its literal name (a record typed with a plain string would make the tables untyped).
const literalNames: string extends KernelOpName ? never : true = true;
void literalNames;

let kernelList: readonly OpDef[] | undefined;
let all: readonly OpDef[] | undefined;

/** The ops backends run node by node (all built-ins but the sources and cond's structural ops). */
export function builtinKernelOps(): readonly OpDef[] {
  kernelList ??= kernelOps() as readonly OpDef[];
  return kernelList;
}

/** Every built-in op record: sources, kernel ops, and cond's structural ops. */
export function builtinOps(): readonly OpDef[] {
  all ??= [...sourceOps(), ...builtinKernelOps(), ...condOps] as readonly OpDef[];
  return all;
}
