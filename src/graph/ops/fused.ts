// Ops only the rewrite passes make (no public builder): a kernel each backend has for a pattern of primitives.
// Each keeps the semantics of the pattern it replaces, so gradients are never taken of them.
import { SymflowError } from '../errors.js';
import { elementwise } from '../hostEval.js';
import { defineOp } from '../registry.js';
import { add, binary, maximum } from './binary.js';
import { matMul, matMulOp } from './matMul.js';
import { neg, unary } from './unary.js';

// Each record's `compose` is the pattern it stands for: a backend without the kernel may declare that fallback.

/** `add(a, neg(b))` as one kernel (fuseSub). */
export const subtractOp = binary('subtract', elementwise((a, b) => a - b), undefined, (a, b) => add(a, neg(b)));

/** `maximum(x, 0)` on float32 as one kernel (reluKernel); the sign of relu(−0) is unspecified. */
export const reluOp = unary('relu', { float: true, evaluate: elementwise((a) => Math.max(a, 0)), compose: (x) => maximum(x, 0) });

/**
 * `add(matMul(a, b), bias)`, with `activation: 'relu'` a `maximum(·, 0)` after it (fuseMatMul); a rank-1 bias
 * along the last axis. The shape rule is matMul's.
 */
export const fusedMatMulOp = defineOp({
  name: 'fusedMatMul',
  attrs: { transposeA: 'bool', transposeB: 'bool', activation: 'string' },
  infer: ([a, b, bias], { transposeA, transposeB, activation }, ctx) => {
    if (activation !== 'linear' && activation !== 'relu') throw new SymflowError('fusedMatMul', `activation must be 'linear' or 'relu', got ${JSON.stringify(activation)}`);
    const out = matMulOp.infer([a!, b!], { transposeA, transposeB }, ctx);
    ctx.broadcast('fusedMatMul', out.shape, bias!.shape, ['matMul(a, b)', 'bias']);
    return out;
  },
  compose: ([a, b, bias], { transposeA, transposeB, activation }) => {
    const z = add(matMul(a!, b!, { transposeA, transposeB }), bias!);
    return activation === 'relu' ? maximum(z, 0) : z;
  },
});
