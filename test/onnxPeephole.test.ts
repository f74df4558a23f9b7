// The onnx backend's rewrites of its lowered graph (src/backend/onnx/peephole.ts): a conv layer's bias Add goes
// into the Conv, only where nothing else reads the pieces and the bias is one value per channel; the values are
// those of the other backends, NaN and Inf included.
import { describe, expect, it } from 'vitest';
import type onnxProto from 'onnx-proto';
import { Session, add, conv2d, gradients, mean, nn, placeholder, relu, square, sum, variable, variablesOf } from '../src/index.js';
import { dropUnreadOutputs, fuseConvBias, type ShapeOf } from '../src/backend/onnx/peephole.js';
import { BACKENDS, rng, values } from './helpers.js';

/** Equal where either is not finite (NaN as NaN), else within |a − e| ≤ 1e-5 + 1e-4·|e|. */
function expectSame(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) expect(a, `element ${i}`).toBe(e);
    else expect(Math.abs(a - e), `element ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(e));
  });
}

type Node = onnxProto.onnx.INodeProto;
const node = (opType: string, input: string[], output: string, perm?: number[]): Node =>
  ({ opType, input, output: [output], attribute: perm ? [{ name: 'perm', type: 7, ints: perm }] : [] });
const shapes: Record<string, (number | null)[]> = { s1: [null, 6, 6, 4], s2: [4], s3: [null, 6, 6, 4], s4: [6, 4], s5: [1, 1, 1, 4] };
const shapeOf: ShapeOf = (n) => shapes[n];
/** x, w → Conv → Transpose NHWC (s1) → Add bias (s3), then `after`. */
const chain = (bias: string, ...after: Node[]): Node[] => [
  node('Conv', ['x', 'w'], 'c'), node('Transpose', ['c'], 's1', [0, 2, 3, 1]), node('Add', ['s1', bias], 's3'), ...after,
];
const ops = (ns: Node[]) => ns.map((n) => n.opType);

describe('fuseConvBias', () => {
  it('moves a per-channel bias into the Conv and drops the Add; the Transpose then names the sum', () => {
    const out = fuseConvBias(chain('s2', node('Relu', ['s3'], 'r')), [], shapeOf);
    expect(ops(out)).toEqual(['Conv', 'Transpose', 'Relu']);
    expect(out[0]!.input).toEqual(['x', 'w', 's2']);
    expect(out[1]!.output).toEqual(['s3']);
  });

  it('takes the bias on either side of the Add', () => {
    const ns = chain('s2');
    ns[2]!.input = ['s2', 's1'];
    expect(ops(fuseConvBias(ns, [], shapeOf))).toEqual(['Conv', 'Transpose']);
  });

  it('leaves the Add where the conv value is read elsewhere, is an output, or the bias is not [C]', () => {
    expect(ops(fuseConvBias(chain('s2', node('Relu', ['s1'], 'r')), [], shapeOf))).toContain('Add');
    expect(ops(fuseConvBias(chain('s2'), ['s1'], shapeOf))).toContain('Add');
    expect(ops(fuseConvBias(chain('s4'), [], shapeOf))).toContain('Add'); // [6, 4] broadcasts over rows too
    expect(ops(fuseConvBias(chain('s5'), [], shapeOf))).toContain('Add'); // rank 4, not a bias vector
    expect(ops(fuseConvBias(chain('unknown'), [], shapeOf))).toContain('Add');
    // A bias computed after the Conv cannot be read by it.
    expect(ops(fuseConvBias([...chain('s2').slice(0, 1), node('Neg', ['b0'], 's2'), ...chain('s2').slice(1)], [], shapeOf))).toContain('Add');
    // A Conv that already has a bias, or a Transpose of another order, is not this pattern.
    const biased = chain('s2');
    biased[0]!.input = ['x', 'w', 'b'];
    expect(ops(fuseConvBias(biased, [], shapeOf))).toContain('Add');
    const other = chain('s2');
    other[1] = node('Transpose', ['c'], 's1', [0, 3, 2, 1]);
    expect(ops(fuseConvBias(other, [], shapeOf))).toContain('Add');
  });

  it('counts reads inside If branches (a branch may read an outer value)', () => {
    const branch: Node = { opType: 'If', input: ['p'], output: ['y'], attribute: [{ name: 'then_branch', type: 5, g: { node: [node('Identity', ['s1'], 'z')] } }] };
    expect(ops(fuseConvBias(chain('s2', branch), [], shapeOf))).toContain('Add');
  });
});

describe('dropUnreadOutputs', () => {
  const pool = (out: string[]): Node => ({ opType: 'MaxPool', input: ['x'], output: out, attribute: [] });
  const graphOf = (nodes: Node[], outs: string[]) => ({ node: nodes, output: outs.map((name) => ({ name })) });
  const ifNode = (outs: string[]): Node => ({
    opType: 'If', input: ['p'], output: outs, attribute: [
      { name: 'then_branch', type: 5, g: graphOf([node('Neg', ['x'], 't0'), node('Neg', ['x'], 't1')], ['t0', 't1']) },
      { name: 'else_branch', type: 5, g: graphOf([pool(['e0', 'e1'])], ['e0', 'e1']) },
    ],
  });

  it("drops MaxPool's Indices where nothing reads them, and keeps them where something does", () => {
    expect(dropUnreadOutputs([pool(['y', 'i']), node('Relu', ['y'], 'r')], ['r'])[0]!.output).toEqual(['y']);
    expect(dropUnreadOutputs([pool(['y', 'i']), node('Relu', ['y'], 'r')], ['i'])[0]!.output).toEqual(['y', 'i']);
    expect(dropUnreadOutputs([pool(['y', 'i']), node('Cast', ['i'], 'c')], ['c'])[0]!.output).toEqual(['y', 'i']);
  });

  it("drops an If's unread output from both branches, and then the MaxPool Indices that only fed it", () => {
    const [n] = dropUnreadOutputs([ifNode(['a', 'b'])], ['a']);
    expect(n!.output).toEqual(['a']);
    const [then, other] = n!.attribute!.map((a) => a.g!);
    expect(then!.output!.map((o) => o.name)).toEqual(['t0']);
    expect(other!.output!.map((o) => o.name)).toEqual(['e0']);
    expect(other!.node![0]!.output).toEqual(['e0']);
    // Both read: nothing changes.
    const [kept] = dropUnreadOutputs([ifNode(['a', 'b'])], ['a', 'b']);
    expect(kept!.output).toEqual(['a', 'b']);
    expect(kept!.attribute![1]!.g!.node![0]!.output).toEqual(['e0', 'e1']);
  });
});

describe('a conv layer with its bias fused on onnx', () => {
  it('gives the values and gradients of cpu and wasm, NaN and ±Inf included', async () => {
    const r = rng(3);
    const data = Array.from({ length: 2 * 5 * 5 * 3 }, () => r() * 2 - 1);
    data[7] = NaN; data[20] = Infinity; data[41] = -Infinity;
    const fv = Array.from({ length: 3 * 3 * 3 * 4 }, () => r() - 0.5);
    const got: number[][][] = [];
    for (const backend of BACKENDS) {
      const s = await Session.create({ backend });
      const x = placeholder([null, 5, 5, 3]);
      const f = variable(fv, { shape: [3, 3, 3, 4] });
      const b = variable([0.5, -1, 2, Infinity], { shape: [4] });
      const y = relu(add(conv2d(x, f), b));
      const l = mean(square(y));
      const outs = await s.run([y, ...gradients(l, [f, b])], [[x, { shape: [2, 5, 5, 3], data: Float32Array.from(data) }]]);
      got.push(outs.map(values));
      await s.dispose();
    }
    for (const k of [1, 2]) got[k]!.forEach((v, i) => expectSame(v, got[0]![i]!));
    // The NaN and infinities reached the outputs (so the test checks their propagation, not only finite sums).
    expect(got[2]![0]!.some(Number.isNaN) && got[2]![0]!.includes(Infinity)).toBe(true);
  });

  it('a Keras-style conv stack trains the same on onnx as on cpu (one sgd-like step by gradients)', async () => {
    const r = rng(9);
    const data = Float32Array.from({ length: 3 * 8 * 8 * 1 }, () => r());
    const res: number[][] = [];
    for (const backend of ['cpu', 'onnx'] as const) {
      const s = await Session.create({ backend });
      const x = placeholder([null, 8, 8, 1]);
      const net = nn.sequential([nn.conv2d(4, 3, { activation: 'relu', seed: 1 }), nn.conv2d(5, 3, { activation: 'relu', seed: 2 })]);
      const l = sum(square(net.apply(x)));
      const gs = gradients(l, variablesOf(l));
      res.push(...(await s.run([l, ...gs], [[x, { shape: [3, 8, 8, 1], data }]])).map(values));
      await s.dispose();
    }
    const half = res.length / 2;
    for (let i = 0; i < half; i++) expectSame(res[half + i]!, res[i]!);
  });
});
