// Ops × backends (issue 11 §1): every op a backend runs has a kernel there or a declared fallback (its record's
// composition), never a hole; each fallback is run here and checked against a reference value.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composedKernel, tfKernelFor, tfjsCoverage } from '../src/backend/tfjsKernels.js';
import { onnxCoverage } from '../src/backend/onnx/lower.js';
import type { KernelNode } from '../src/backend/types.js';
import { condOps } from '../src/graph/cond.js';
import { builtinKernelOps } from '../src/graph/opList.js';
import { abs, add, defineOp, div, maximum, mul, placeholder, Session, type Tensor } from '../src/index.js';
import { expectClose, values } from './helpers.js';

type Cell = 'kernel' | 'compose' | undefined;

/** The built-in ops some backend runs by their record's composition, and why (each is checked by its op's tests). */
const DECLARED_FALLBACKS: Record<string, Record<'cpu' | 'wasm' | 'onnx', Cell>> = {
  // --- convolutions (issue 12) ---
  // tfjs-backend-wasm 4.22 registers no Conv2DBackpropFilter: a conv2d of x with dy as the filter (test/conv.test.ts).
  conv2dBackpropFilter: { cpu: 'kernel', wasm: 'compose', onnx: 'kernel' },
  // Nor depthwise backprops: conv2d's with the block-diagonal filter. onnx's grouped Conv cannot be the filter's.
  depthwiseConv2dBackpropInput: { cpu: 'kernel', wasm: 'compose', onnx: 'kernel' },
  depthwiseConv2dBackpropFilter: { cpu: 'kernel', wasm: 'compose', onnx: 'compose' },
};
const coverage = (op: string): Record<'cpu' | 'wasm' | 'onnx', Cell> => ({ cpu: tfjsCoverage(op, 'cpu'), wasm: tfjsCoverage(op, 'wasm'), onnx: onnxCoverage(op) });

// User ops that exercise both columns: a composition only, and a TF.js kernel with the composition elsewhere.
const softsignComposed = defineOp({
  name: 'softsignComposed',
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  compose: ([x]) => div(x!, add(1, abs(x!))),
});
const leaky = defineOp({
  name: 'leakyTable',
  attrs: { alpha: 'number' },
  infer: ([x]) => ({ shape: x!.shape, dtype: x!.dtype }),
  kernels: { tfjs: ([x], { alpha }) => tf.leakyRelu(x!, alpha) },
  compose: ([x], { alpha }) => maximum(x!, mul(alpha, x!)),
});

describe('ops × backends', () => {
  it('every built-in op a backend runs has a kernel on cpu, wasm and onnx, or a fallback declared below (no holes)', () => {
    const ops = builtinKernelOps().map((d) => d.name);
    expect(ops.length).toBeGreaterThan(50);
    expect(ops).toContain('subtract');
    expect(ops).toContain('fusedMatMul');
    const table = Object.fromEntries(ops.map((op) => [op, coverage(op)]));
    const notKernel = Object.entries(table).filter(([, c]) => Object.values(c).some((k) => k !== 'kernel'));
    expect(Object.fromEntries(notKernel)).toEqual(DECLARED_FALLBACKS);
    // Sources and cond's structural ops are bound or planned, never run by a backend table.
    for (const op of ['placeholder', 'constant', 'variable', ...condOps.map((d) => d.name)]) expect(coverage(op)).toEqual({ cpu: undefined, wasm: undefined, onnx: undefined });
  });

  it('user ops: a composition only is the fallback everywhere; a TF.js kernel leaves onnx the composition', () => {
    expect(coverage(softsignComposed.op.name)).toEqual({ cpu: 'compose', wasm: 'compose', onnx: 'compose' });
    expect(coverage(leaky.op.name)).toEqual({ cpu: 'kernel', wasm: 'kernel', onnx: 'compose' });
  });

  it.each(['cpu', 'wasm', 'onnx'] as const)('each fallback cell runs, with the right value, on %s', async (backend) => {
    const s = await Session.create({ backend });
    const pts = [-3, -0.5, 0, 0.25, 2, 40];
    const x = placeholder([null]);
    const cells: [string, Tensor, number[]][] = [
      [softsignComposed.op.name, softsignComposed([x]), pts.map((v) => v / (1 + Math.abs(v)))],
      [leaky.op.name, leaky([x], { alpha: 0.3 }), pts.map((v) => (v > 0 ? v : Math.fround(0.3) * v))],
    ];
    const fallbacks = cells.filter(([op]) => coverage(op)[backend] === 'compose');
    expect(fallbacks.length).toBe(backend.startsWith('onnx') ? 2 : 1);
    const got = await s.run(fallbacks.map(([, t]) => t), [[x, pts]]);
    fallbacks.forEach(([, , want], i) => expectClose(values(got[i]!), want, 1e-6, 1e-7));
    await s.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)('built-in compositions on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  // The IR-only records declare the pattern they stand for as their `compose`: a backend may declare it as its
  // fallback. Here it is forced, and must give the kernel's bits.
  const node = (op: string, attrs: KernelNode['attrs'], inputs: number[][], shape: number[]): KernelNode => ({
    op, name: op, attrs, shape, dtype: 'float32', inputs: inputs.map((_, i) => ({ shape: i === 0 ? [2, 2] : i === 2 ? [2] : [2, 2], dtype: 'float32' })),
  });
  const cases: [string, KernelNode, number[][]][] = [
    ['subtract', node('subtract', {}, [[1, -0, 3, NaN], [0.5, 0, -Infinity, 1]], [2, 2]), [[1, -0, 3, NaN], [0.5, 0, -Infinity, 1]]],
    ['relu', { ...node('relu', {}, [[0]], [2, 2]), inputs: [{ shape: [2, 2], dtype: 'float32' }] }, [[-1, 2, NaN, 0.5]]],
    // NOTE: transposed only on cpu: on wasm a transposed matMul never reaches a kernel (explicitTranspose lowers it
    // first), and TF.js wasm's fused kernel gets transposed cases wrong (transposeA: 12 for 8; transposeB: 0.5 for 0).
    ['fusedMatMul', node('fusedMatMul', { transposeA: false, transposeB: false, activation: 'relu' }, [[], [], []], [2, 2]), [[1, 2, 3, 4], [0.5, -1, 2, 0], [-1, 3]]],
    ['fusedMatMul linear', node('fusedMatMul', { transposeA: true, transposeB: false, activation: 'linear' }, [[], [], []], [2, 2]), [[1, 2, 3, 4], [0.5, -1, 2, 0], [-1, 3]]],
  ];
  it.each(cases.filter(([, n]) => backend === 'cpu' || !(n.attrs['transposeA'] || n.attrs['transposeB'])))('%s', (_op, n, data) => {
    tf.setBackend(backend);
    const opts = { backend };
    const before = tf.memory().numTensors;
    const ins = data.map((d, i) => tf.tensor(d, n.inputs[i]!.shape as number[]));
    const kernel = tfKernelFor(n, opts, backend)(ins);
    const composed = composedKernel(n, opts, backend)!(ins);
    expect(Array.from(composed.dataSync())).toEqual(Array.from(kernel.dataSync()));
    if (n.op === 'fusedMatMul') expect(Array.from(kernel.dataSync())).toEqual(n.attrs['transposeA'] ? [5.5, 2, 8, 1] : [3.5, 2, 8.5, 0]);
    [...ins, kernel, composed].forEach((t) => t.dispose());
    expect(tf.memory().numTensors, 'the composition leaves no intermediates').toBe(before);
  });
});
