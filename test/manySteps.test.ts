import ort from 'onnxruntime-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { add, adam, compile, dense, dropout, matMul, mean, placeholder, relu, Session, sgd, softmaxCrossEntropy, square, sub, variable } from '../src/index.js';
import { BACKENDS, bits, rng } from './helpers.js';

// A small MLP with dropout: the draws of each step are keyed by the step counter, so k steps in one call must draw
// what k single steps draw.
function mlp(seed: number) {
  const r = rng(seed);
  const x = placeholder([null, 6], { name: 'x' });
  const y = placeholder([null, 3], { name: 'y' });
  const w1 = variable({ shape: [6, 8], data: Float32Array.from({ length: 48 }, () => r() - 0.5) }, { name: 'w1' });
  const b1 = variable({ shape: [8], data: new Float32Array(8) }, { name: 'b1' });
  const w2 = variable({ shape: [8, 3], data: Float32Array.from({ length: 24 }, () => r() - 0.5) }, { name: 'w2' });
  const h = dropout(relu(add(matMul(x, w1), b1)), 0.25);
  const loss = mean(softmaxCrossEntropy(y, matMul(h, w2)));
  return { x, y, loss, params: [w1, b1, w2] };
}

function batches(k: number, rows: number, seed: number) {
  const r = rng(seed);
  return Array.from({ length: k }, () => {
    const xs = { shape: [rows, 6], data: Float32Array.from({ length: rows * 6 }, () => r() * 2 - 1) };
    const ys = { shape: [rows, 3], data: new Float32Array(rows * 3) };
    for (let i = 0; i < rows; i++) ys.data[i * 3 + Math.floor(r() * 3)] = 1;
    return [xs, ys];
  });
}

describe.each(BACKENDS)('TrainStep.steps on %s', (backend) => {
  it('k steps in one call equal k single steps bit for bit (adam, dropout)', async () => {
    const data = batches(8, 5, 7);
    const m = mlp(1);
    const run = async (fused: boolean) => {
      const s = await Session.create({ backend, seed: 3 });
      const train = compile(adam({ lr: 0.01 }), s, { loss: m.loss, inputs: [m.x, m.y] });
      const calls = vi.spyOn(ort.InferenceSession.prototype, 'run');
      const results = fused ? await train.steps(data) : await (async () => { const out = []; for (const b of data) out.push(await train.step(b)); return out; })();
      // On onnx the 8 steps are one onnxruntime run; elsewhere there is no runtime call to count.
      if (backend === 'onnx') expect(calls).toHaveBeenCalledTimes(fused ? 1 : 8);
      calls.mockRestore();
      const values = await Promise.all([...m.params, ...train.stateVariables].map((v) => s.getValue(v)));
      return { losses: results.map((r) => r.loss), values: values.map(bits), step: s.step, lr: results.map((r) => r.lr) };
    };
    const one = await run(false), many = await run(true);
    expect(many.step).toBe(8);
    expect(many.losses).toEqual(one.losses);
    expect(many.lr).toEqual(one.lr);
    expect(many.values).toEqual(one.values);
  });
});
