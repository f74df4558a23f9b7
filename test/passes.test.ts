import { describe, expect, it } from 'vitest';
import {
  add, compile, maximum, reluKernel, constant, constantFold, cse, exp, explicitTranspose, fuseMatMul, fuseSub, neg, gradients, layers, matMul, mean, mul, optimize, placeholder,
  prune, relu, reshape, Session, sgd, simplifyShapes, sparseSoftmaxCrossEntropy, sub, sum, symbolicShapes, toIR, variable, variablesOf,
  type GraphIR, type Tensor,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

const count = (ir: GraphIR, op: string) => Object.values(ir.nodes).filter((n) => n.op === op).length;
const ops = (ir: GraphIR) => Object.values(ir.nodes).map((n) => n.op).sort();

function mlpTraining(): { x: Tensor; y: Tensor; loss: Tensor; grads: Tensor[]; params: ReturnType<typeof variablesOf> } {
  const x = placeholder([null, 6]);
  const y = placeholder([null], { dtype: 'int32' });
  const h = layers.dense(x, 5, { activation: 'relu', seed: 1 });
  const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(h, 3, { seed: 2 }), y));
  const params = variablesOf(loss);
  return { x, y, loss, grads: gradients(loss, params), params };
}

describe('symbolic shapes', () => {
  it('give an unknown batch dimension one symbol through the forward and backward pass', () => {
    const { x, loss, grads } = mlpTraining();
    const { ir } = toIR([loss, ...grads], []);
    const shapes = symbolicShapes(ir);
    const batch = shapes.get(x.id)![0]!;
    expect(typeof batch).toBe('string');
    const matMuls = Object.values(ir.nodes).filter((n) => n.op === 'matMul' && n.shape[0] === null);
    expect(matMuls.length).toBeGreaterThan(0);
    for (const m of matMuls) expect(shapes.get(m.id)![0]).toBe(batch);
  });
});

describe('simplifyShapes', () => {
  it('removes the gradient’s no-op sumToShape over a shared batch dimension, keeps the bias one', () => {
    const x = placeholder([null, 4]);
    const w = variable([[1], [2], [3], [4]]);
    const b = variable([0.5]);
    const z = add(matMul(x, w), b);
    const [gw, gb] = gradients(sum(mul(z, z)), [w, b]);
    const before = prune(toIR([gw!, gb!], []).ir);
    const after = prune(simplifyShapes(before));
    // Before: mul's and add's gradients reduce dy to their inputs' shapes; only the bias reduction is real.
    expect(count(before, 'sumToShape')).toBe(4);
    expect(count(after, 'sumToShape')).toBe(1);
    const kept = Object.values(after.nodes).find((n) => n.op === 'sumToShape')!;
    expect(kept.shape).toEqual([1]);
    expect(before.nodes[kept.id]).toBe(kept); // untouched nodes are shared with the input graph
  });
});

describe('constantFold', () => {
  it('computes all-constant elementwise nodes once, in float32', () => {
    const beta = constant(0.9);
    const oneMinus = sub(1, beta);
    const scaled = mul(oneMinus, constant([1, 2, 3]));
    const x = placeholder([3]);
    const y = add(x, scaled);
    const before = prune(toIR([y], []).ir);
    const after = prune(constantFold(before));
    expect(ops(before)).toEqual(['add', 'add', 'constant', 'constant', 'constant', 'mul', 'neg', 'placeholder']);
    expect(ops(after)).toEqual(['add', 'constant', 'placeholder']);
    const folded = after.nodes[scaled.id]!;
    expect(folded.op).toBe('constant');
    expect(Array.from(folded.attrs['value'] as Float32Array)).toEqual([1, 2, 3].map((v) => Math.fround(Math.fround(1 - Math.fround(0.9)) * v)));
  });
});

describe('cse', () => {
  it('merges repeated subexpressions and equal constants, keeping the oldest node', () => {
    const x = placeholder([2]);
    const a = exp(x);
    const b = exp(x);
    const y = add(mul(a, constant([2, 2])), mul(b, constant([2, 2])));
    const before = prune(toIR([y], []).ir);
    const after = prune(cse(before));
    expect(count(before, 'exp')).toBe(2);
    expect(count(after, 'exp')).toBe(1);
    expect(count(after, 'mul')).toBe(1);
    expect(count(after, 'constant')).toBe(1);
    expect(after.nodes[y.id]!.inputs).toEqual([after.nodes[y.id]!.inputs[0], after.nodes[y.id]!.inputs[0]]);
    expect(Object.keys(after.nodes).map(Number)).toContain(a.id);
  });
});

describe('fuseMatMul', () => {
  it('fuses matMul + bias in a training graph (the relu’s gradient reads the pre-activation)', () => {
    const { loss, grads } = mlpTraining();
    const before = optimize(toIR([loss, ...grads], []).ir);
    const after = prune(fuseMatMul(before));
    expect(count(after, 'fusedMatMul')).toBe(2);
    expect(count(before, 'relu')).toBe(1);
    expect(count(after, 'relu')).toBe(1);
    expect(count(after, 'matMul')).toBe(count(before, 'matMul') - 2);
  });

  it('also fuses the relu in an inference graph', () => {
    const x = placeholder([null, 6]);
    const out = layers.dense(layers.dense(x, 5, { activation: 'relu', seed: 1 }), 3, { seed: 2 });
    const after = prune(fuseMatMul(prune(toIR([out], []).ir)));
    const fused = Object.values(after.nodes).filter((n) => n.op === 'fusedMatMul');
    expect(fused.map((n) => n.attrs['activation']).sort()).toEqual(['linear', 'relu']);
    expect(count(after, 'maximum')).toBe(0);
    expect(count(after, 'add')).toBe(0);
  });

  it.each(BACKENDS)('leaves a reshaped bias unfused, which TF.js wasm’s fused kernel refused (%s)', async (backend) => {
    const x = placeholder([null, 2]);
    const w = variable([[1, 2, 3], [4, 5, 6]]);
    const v = variable([[10, 20, 30]]);
    const y = add(matMul(x, w), reshape(v, [3]));
    expect(count(prune(fuseMatMul(prune(toIR([y], []).ir))), 'fusedMatMul')).toBe(0);
    const s = await Session.create({ backend });
    expect(values(await s.run(y, [[x, [[1, 1], [0, 2]]]]))).toEqual([15, 27, 39, 18, 30, 42]);
    await s.dispose();
  });
});

describe('explicitTranspose', () => {
  it('turns transposed matMuls into explicit transposes placed between the matMul and its inputs', () => {
    const { loss, grads } = mlpTraining();
    const before = optimize(toIR([loss, ...grads], []).ir);
    const transposed = Object.values(before.nodes).filter((n) => n.op === 'matMul' && (n.attrs['transposeA'] || n.attrs['transposeB']));
    expect(transposed.length).toBeGreaterThan(0);
    const after = explicitTranspose(before);
    expect(Object.values(after.nodes).filter((n) => n.op === 'matMul' && (n.attrs['transposeA'] || n.attrs['transposeB']))).toEqual([]);
    expect(count(after, 'transpose')).toBe(count(before, 'transpose') + transposed.reduce((k, n) => k + (n.attrs['transposeA'] ? 1 : 0) + (n.attrs['transposeB'] ? 1 : 0), 0));
    for (const n of Object.values(after.nodes)) for (const i of n.inputs) expect(i).toBeLessThan(n.id);
  });
});

describe('fuseSub', () => {
  it('turns add(a, neg(b)) into one subtract when nothing else reads neg(b)', () => {
    const p = variable([1, 2]);
    const g = placeholder([2]);
    const n = neg(g);
    const shared = add(sum(n), 1);
    const update = sub(p, mul(0.1, g)); // add(p, neg(mul(0.1, g)))
    const before = prune(toIR([update, add(p, n), shared], []).ir);
    const after = prune(fuseSub(before));
    expect(count(before, 'neg')).toBe(2);
    expect(count(after, 'subtract')).toBe(1);
    // neg(g) also feeds sum: that add keeps its neg.
    expect(count(after, 'neg')).toBe(1);
    expect(after.nodes[update.id]!.op).toBe('subtract');
    expect(after.nodes[update.id]!.inputs).toEqual([p.id, update.inputs[1]!.inputs[0]!.id]);
  });
});

describe('reluKernel', () => {
  it('turns maximum(x, 0) into one relu node, and leaves other maximums alone', () => {
    const x = placeholder([null, 3]);
    const r = relu(x);
    const flipped = maximum(0, x);
    const other = maximum(x, 0.5);
    const scalarIn = maximum(placeholder([]), constant([0, 0, 0]));
    const before = prune(toIR([r, flipped, other, scalarIn], []).ir);
    const after = reluKernel(before);
    expect(count(before, 'maximum')).toBe(4);
    expect(count(after, 'relu')).toBe(2);
    expect(after.nodes[r.id]!.op).toBe('relu');
    expect(after.nodes[r.id]!.inputs).toEqual([x.id]);
    expect(after.nodes[flipped.id]!.inputs).toEqual([x.id]);
    expect(after.nodes[other.id]!.op).toBe('maximum');
    // The zero is not a scalar constant here: the result is a broadcast, not a relu of its input.
    expect(after.nodes[scalarIn.id]!.op).toBe('maximum');
    expect(reluKernel(after)).toBe(after);
  });
});

describe.each(BACKENDS)('reluKernel on %s', (backend) => {
  it('gives maximum(x, 0)’s values (NaN stays NaN) and keeps its gradient, 1 at a tie', async () => {
    const x = placeholder([6]);
    const y = relu(x);
    const [g] = gradients(sum(mul(y, constant([1, 2, 3, 4, 5, 6]))), [x]);
    const xs = [-2, -0, 0, 3, Number.NaN, 1e-30];
    const got: number[][] = [];
    for (const optimizeGraphs of [true, false]) {
      const s = await Session.create({ backend, optimize: optimizeGraphs });
      const [yv, gv] = await s.run([y, g!], [[x, xs]]);
      got.push([...values(yv!), ...values(gv!)]);
      s.dispose();
    }
    // ±0 compare equal: only the sign of a zero may differ.
    got[0]!.forEach((v, i) => expect(v === got[1]![i] || (Number.isNaN(v) && Number.isNaN(got[1]![i]!)), `element ${i}: ${v} vs ${got[1]![i]}`).toBe(true));
    expect(got[0]!.slice(0, 6).map((v) => (Number.isNaN(v) ? 'NaN' : v === 0 ? 0 : v))).toEqual([0, 0, 0, 3, 'NaN', 1e-30].map((v) => (typeof v === 'number' ? Math.fround(v) : v)));
    // Ties send the gradient through (greaterEqual), a NaN input does not.
    expect(got[0]!.slice(6)).toEqual([0, 2, 3, 4, 0, 6]);
  });
});

describe('forward values are reused by the gradient', () => {
  it('a 2-layer MLP training graph computes each forward node once: 2 forward and 3 backward matMuls, one softmax CE', () => {
    const { loss, grads } = mlpTraining();
    const ir = optimize(toIR([loss, ...grads], []).ir);
    // Forward: x·W1, h·W2. Backward: dW2 = hᵀ·d, dh = d·W2ᵀ, dW1 = xᵀ·dh (no dx: x is an input).
    expect(count(ir, 'matMul')).toBe(5);
    expect(count(ir, 'softmaxCrossEntropy')).toBe(1);
    expect(count(ir, 'relu')).toBe(1);
    // No two nodes compute the same thing.
    const keys = Object.values(ir.nodes).filter((n) => n.op !== 'variable' && n.op !== 'placeholder').map((n) => `${n.op}|${n.inputs.join(',')}|${JSON.stringify(n.attrs)}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe.each(BACKENDS)('rewrites change no result on %s', (backend) => {
  it('an MLP trained with and without the rewrites ends at the same parameters', async () => {
    const results: number[][][] = [];
    for (const optimizeGraphs of [true, false]) {
      const s = await Session.create({ backend, optimize: optimizeGraphs });
      const { x, y, loss, params } = mlpTraining();
      const train = compile(sgd({ lr: 0.1, momentum: 0.9 }), s, { loss, inputs: [x, y] });
      const xs = Array.from({ length: 8 }, (_, i) => Array.from({ length: 6 }, (_, j) => Math.sin(i * 6 + j)));
      const ys = Array.from({ length: 8 }, (_, i) => i % 3);
      const losses: number[] = [];
      for (let k = 0; k < 5; k++) losses.push((await train.step([xs, ys])).loss);
      results.push([losses, ...(await Promise.all(params.map(async (p) => values(await s.getValue(p)))))]);
      s.dispose();
    }
    results[0]!.forEach((r, i) => expectClose(r, results[1]![i]!, 1e-5, 1e-6));
  });

  it('an inference graph with fused relu layers gives the unfused values', async () => {
    const x = placeholder([null, 6]);
    const out = relu(layers.dense(layers.dense(x, 5, { activation: 'relu', seed: 1 }), 3, { seed: 2 }));
    const xs = Array.from({ length: 4 }, (_, i) => Array.from({ length: 6 }, (_, j) => Math.cos(i + j)));
    const got: number[][] = [];
    for (const optimizeGraphs of [true, false]) {
      const s = await Session.create({ backend, optimize: optimizeGraphs });
      got.push(values(await s.run(out, [[x, xs]])));
      s.dispose();
    }
    expectClose(got[0]!, got[1]!, 1e-6, 1e-6);
  });
});
