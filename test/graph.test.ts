import { describe, expect, it } from 'vitest';
import {
  add, argMax, concat, cond, constant, fromJSON, gather, gradients, greater, initializers, layers, matMul, mean, mul,
  oneHot, placeholder, prune, relu, reshape, Session, slice, softmaxCrossEntropy, sparseSoftmaxCrossEntropy, squeeze,
  sum, SymflowError, toIR, toJSON, transpose, variable, variablesOf, where, expandDims,
} from '../src/index.js';
import { BACKENDS, expectClose, values } from './helpers.js';

describe('static shapes and dtypes', () => {
  it('infers shapes with unknown dimensions and broadcasting', () => {
    const x = placeholder([null, 784]);
    const w = variable(initializers.zeros([784, 256]));
    const h = relu(add(matMul(x, w), variable(initializers.zeros([256]))));
    expect(h.shape).toEqual([null, 256]);
    expect(sum(h, 1).shape).toEqual([null]);
    expect(sum(h, [0, 1], true).shape).toEqual([1, 1]);
    expect(transpose(h).shape).toEqual([256, null]);
    expect(reshape(h, [-1, 16, 16]).shape).toEqual([null, 16, 16]);
    expect(expandDims(h, 1).shape).toEqual([null, 1, 256]);
    expect(squeeze(expandDims(h, -1), 2).shape).toEqual([null, 256]);
    expect(concat([h, h], 1).shape).toEqual([null, 512]);
    expect(slice(h, [0, 10], [-1, 5]).shape).toEqual([null, 5]);
    expect(gather(w, constant([1, 2, 3], { dtype: 'int32' })).shape).toEqual([3, 256]);
    expect(argMax(h).dtype).toBe('int32');
    expect(greater(h, 0).dtype).toBe('bool');
    expect(oneHot(placeholder([null], { dtype: 'int32' }), 10).shape).toEqual([null, 10]);
    expect(softmaxCrossEntropy(h, h).shape).toEqual([null]);
  });

  it('errors at build time name the op, the argument and the shapes', () => {
    const cases: [() => unknown, string][] = [
      [() => matMul(placeholder([32, 784]), placeholder([100, 10])), 'matMul: inner dimensions differ: a is [32,784], b is [100,10]'],
      [() => add(placeholder([2, 3]), placeholder([4])), 'add: shapes cannot be broadcast: a is [2,3], b is [4]'],
      [() => add(placeholder([2]), placeholder([2], { dtype: 'int32' })), 'add: dtypes differ: a is float32, b is int32'],
      [() => reshape(placeholder([2, 3]), [4]), 'reshape: cannot reshape x [2,3]'],
      [() => sum(placeholder([2, 3]), 2), 'sum: axes 2 is out of range for rank 2'],
      [() => concat([placeholder([2, 3]), placeholder([2, 4])], 0), 'concat: shapes differ off axis 0: xs[0] is [2,3], xs[1] is [2,4]'],
      [() => where(placeholder([2]), 1, 2), 'where: cond must be bool, got float32'],
      [() => cond(placeholder([2], { dtype: 'bool' }), () => 1, () => 2), 'cond: pred must be a scalar bool tensor, got bool [2]'],
      [() => cond(placeholder([], { dtype: 'bool' }), () => placeholder([2]), () => placeholder([3])), 'cond: branches return different shapes: then is [2], else is [3]'],
      [() => gather(placeholder([3]), placeholder([2])), 'gather: indices must be int32, got float32'],
      [() => sparseSoftmaxCrossEntropy(placeholder([2, 3]), placeholder([2])), 'sparseSoftmaxCrossEntropy: labels must be int32, got float32'],
      [() => placeholder([2, -1]), 'placeholder: shape must be an array of non-negative integers or null'],
      [() => variable([[1, 2], [3]]), 'variable: ragged nested array'],
      [() => mul(placeholder([2], { dtype: 'int32' }), 0.5), 'mul: b is 0.5, not an integer, for an int32 op'],
    ];
    for (const [build, message] of cases) {
      expect(build).toThrow(SymflowError);
      expect(build).toThrow(message);
    }
  });

  it('symbolic tensors are frozen', () => {
    const x = placeholder([2]);
    const y = add(x, 1);
    expect(Object.isFrozen(y)).toBe(true);
    expect(Object.isFrozen(y.shape)).toBe(true);
    expect(Object.isFrozen(y.inputs)).toBe(true);
    expect(() => { (y as unknown as { name: string }).name = 'z'; }).toThrow(TypeError);
  });

  it('gradients are ordinary nodes, and only nodes between xs and ys are visited', () => {
    const x = placeholder([3]);
    const unrelated = variable([1, 2, 3]);
    const y = sum(mul(x, x));
    const side = sum(mul(unrelated, 2));
    const total = add(y, side);
    const before = toIR([total], []).ir;
    const g = gradients(total, x);
    const after = toIR([g], []).ir;
    // The gradient w.r.t. x never touches the unrelated variable's branch.
    expect(Object.values(after.nodes).some((n) => n.name === unrelated.name)).toBe(false);
    expect(Object.keys(before.nodes).length).toBeGreaterThan(0);
  });
});

describe('pruning with immer', () => {
  it('drops what the outputs do not need and what lies upstream of feeds, leaving the input untouched', () => {
    const x = placeholder([2], { name: 'px' });
    const h = mul(x, 2);
    const dead = add(h, 100);
    const y = add(h, 1);
    const { ir } = toIR([y, dead], [h]);
    const pruned = prune({ ...ir, outputs: [y.id] });
    const names = (g: typeof ir) => Object.values(g.nodes).map((n) => n.name).sort();
    expect(names(ir)).toContain(x.name);
    expect(names(ir)).toContain(dead.name);
    expect(names(pruned)).not.toContain(x.name);
    expect(names(pruned)).not.toContain(dead.name);
    expect(names(pruned)).toEqual([h.name, y.name, y.inputs[1]!.name].sort());
    expect(Object.isFrozen(pruned.nodes)).toBe(true);
    // Structural sharing: kept nodes are the very same objects.
    expect(pruned.nodes[y.id]).toBe(ir.nodes[y.id]);
  });
});

describe.each(BACKENDS)('graph JSON round trip on %s', (backend) => {
  it('rebuilds an MLP with a cond and gives the same values and gradients', async () => {
    const s = await Session.create({ backend });
    const x = placeholder([null, 4], { name: 'x' });
    const labels = placeholder([null], { dtype: 'int32', name: 'labels' });
    const h = layers.dense(x, 8, { activation: 'relu', seed: 3, name: 'h' });
    const logits = layers.dense(h, 3, { seed: 4, name: 'out' });
    const loss = mean(sparseSoftmaxCrossEntropy(logits, labels));
    const clipped = cond(greater(loss, 1), () => mul(loss, 0.5), () => loss);
    const params = variablesOf(clipped);
    expect(params.map((p) => p.name)).toEqual([`h/kernel`, 'h/bias', 'out/kernel', 'out/bias'].map((n) => params.find((p) => p.name.startsWith(n))!.name));
    const grads = gradients(clipped, params);
    const json = JSON.parse(JSON.stringify(toJSON([clipped, ...grads])));
    const back = fromJSON(json, { variables: params });
    expect(back.outputs).toHaveLength(1 + params.length);
    const x2 = back.nodes.get(x.name)!;
    const l2 = back.nodes.get(labels.name)!;
    const xs = [[1, 2, 3, 4], [0, -1, 2, 0.5], [3, 3, -3, 1]];
    const ys = [0, 2, 1];
    const original = await s.run([clipped, ...grads], [[x, xs], [labels, ys]]);
    const rebuilt = await s.run(back.outputs, [[x2, xs], [l2, ys]]);
    original.forEach((o, i) => expectClose(values(rebuilt[i]!), values(o), 1e-6, 1e-7));
    // Unbound variables are created from their initializers (same seed, same values).
    const fresh = fromJSON(json);
    expect(fresh.variables.map((v) => v.shape)).toEqual(params.map((v) => v.shape));
    const again = await s.run(fresh.outputs[0]!, [[fresh.nodes.get(x.name)!, xs], [fresh.nodes.get(labels.name)!, ys]]);
    expectClose(values(again), values(original[0]!), 1e-6, 1e-7);
    s.dispose();
  });
});

describe('graph JSON errors', () => {
  const base = () => JSON.parse(JSON.stringify(toJSON([add(placeholder([2], { name: 'in' }), 1)])));
  it('refuses unknown ops and dangling references', () => {
    const unknown = base();
    unknown.nodes[2].op = 'frobnicate';
    expect(() => fromJSON(unknown)).toThrow("fromJSON: node 2 '" + unknown.nodes[2].name + "': unknown op 'frobnicate'");
    const dangling = base();
    dangling.nodes[2].inputs = [0, 7];
    expect(() => fromJSON(dangling)).toThrow('dangling reference to input 7');
    const wrongShape = base();
    wrongShape.nodes[2].shape = [3];
    expect(() => fromJSON(wrongShape)).toThrow(/recorded float32 \[3\] but the op gives float32 \[2\]/);
    expect(() => fromJSON({ format: 'other' } as never)).toThrow('fromJSON: not a symflow graph');
    const literal = JSON.parse(JSON.stringify(toJSON([add(variable([1, 2], { name: 'lit' }), 1)])));
    expect(() => fromJSON(literal)).toThrow(/initialised from a literal value/);
  });
});

describe.each(BACKENDS)('substitute on %s', (backend) => {
  it('evaluates a loss, its gradient and a cond at another point without writing the variable', async () => {
    const { substitute } = await import('../src/index.js');
    const s = await Session.create({ backend });
    const w = variable([1, -2]);
    const loss = sum(cond(greater(sum(w), 0), () => mul(w, w), () => mul(w, 3)));
    const g = gradients(loss, w);
    const shifted = add(w, constant([2, 2]));
    const [loss2, g2] = substitute([loss, g], new Map([[w, shifted]]));
    expect(loss2).not.toBe(loss);
    const at = async (ts: Parameters<Session['run']>[0]) => (await s.run(ts as never)) as unknown as { data: Float32Array }[];
    // At w = [1, −2]: sum < 0, so 3w: loss −3, gradient [3, 3]. At w + 2 = [3, 0]: w², loss 9, gradient [6, 0].
    const r = await at([loss, g, loss2!, g2!]);
    expect(r.map((x) => Array.from(x.data))).toEqual([[-3], [3, 3], [9], [6, 0]]);
    expect(values(await s.getValue(w))).toEqual([1, -2]);
    expect(() => substitute([loss], new Map([[w, constant([1, 2, 3])]]))).toThrow(/replacement for/);
    s.dispose();
  });
});
