// The op record (issue 11 §1): each op's attribute schema is what fromJSON checks, and a graph survives the JSON
// round trip bit for bit — checked over the fuzzer's random graphs, forward values and symbolic gradients.
import { describe, expect, it } from 'vitest';
import {
  Session, addN, concat, fromJSON, gradients, matMul, placeholder, softmaxCrossEntropy, symbolicShapes, toIR, toJSON, transpose, type Tensor,
} from '../src/index.js';
import { allOps, checkAttrs } from '../src/graph/registry.js';
import { recipeAndInputs } from '../fuzz/check.js';
import { evaluate, SYMFLOW, symflowObjective } from '../fuzz/graphs.js';
import { bits } from './helpers.js';

describe('op records', () => {
  it('every op declares a schema, and fromJSON refuses a missing, extra or mistyped attribute by it', () => {
    const ops = allOps();
    expect(ops.length).toBeGreaterThan(40);
    const sum = ops.find((o) => o.name === 'sum')!;
    expect(sum.attrs).toEqual({ axes: 'ints', keepDims: 'bool' });
    expect(() => checkAttrs(sum, { axes: [0], keepDims: false }, 'node 3')).not.toThrow();
    expect(() => checkAttrs(sum, { axes: [0] }, 'node 3')).toThrow("fromJSON: node 3: op 'sum' takes attributes [axes, keepDims], got [\"axes\"]");
    expect(() => checkAttrs(sum, { axes: [0], keepDims: false, extra: 1 }, 'node 3')).toThrow(/takes attributes \[axes, keepDims\]/);
    expect(() => checkAttrs(sum, { axes: [0.5], keepDims: false }, 'node 3')).toThrow("fromJSON: node 3: attribute 'axes' of op 'sum' must be ints, got [0.5]");
    expect(() => checkAttrs(sum, { axes: [0], keepDims: 1 }, 'node 3')).toThrow("attribute 'keepDims' of op 'sum' must be of kind bool, got 1");
    const pad = ops.find((o) => o.name === 'pad')!;
    expect(() => checkAttrs(pad, { paddings: [[1, 2, 3]], value: 0 }, 'node 1')).toThrow(/attribute 'paddings' of op 'pad' must be of kind pairs/);
  });

  it('one shape rule per op: symbolicShapes runs the records’ rules (copied dims keep their symbol, ctx.equal unifies)', () => {
    const a = placeholder([null, 3]), b = placeholder([null, 3]);
    const sum = addN([a, b]); // its terms' batch dims must be equal
    const p = placeholder([2, null]), q = placeholder([null, 5]);
    const m = matMul(p, q); // the inner dims must be equal
    const t = transpose(sum); // copies a's (now b's too) batch symbol to axis 1
    const c = concat([sum, b], 1); // off-axis dims are copied from the first part
    const l = placeholder([null, 4]), y = placeholder([null, 4]);
    const ce = softmaxCrossEntropy(l, y); // logits and labels have one shape
    const shapes = symbolicShapes(toIR([t, m, c, ce], []).ir);
    const batch = shapes.get(a.id)![0]!;
    expect(typeof batch).toBe('string');
    expect(shapes.get(b.id)![0]).toBe(batch);
    expect(shapes.get(t.id)).toEqual([3, batch]);
    expect(shapes.get(c.id)).toEqual([batch, 6]);
    expect(shapes.get(p.id)![1]).toBe(shapes.get(q.id)![0]);
    expect(shapes.get(m.id)).toEqual([2, 5]);
    expect(shapes.get(y.id)![0]).toBe(shapes.get(l.id)![0]);
    expect(shapes.get(ce.id)).toEqual([shapes.get(l.id)![0]]);
    // The build-time rule is the same one, with its errors as before.
    expect(() => matMul(placeholder([2, 3]), placeholder([4, 5]))).toThrow('matMul: inner dimensions differ: a is [2,3], b is [4,5]');
  });

  it('fromJSON(toJSON(g)) evaluates bit-identically: 60 of the fuzzer\'s random graphs, values and gradients', async () => {
    const session = await Session.create({ backend: 'cpu' });
    let checked = 0;
    for (let index = 0; index < 60; index++) {
      const { recipe, inputs } = recipeAndInputs(7, index);
      if (recipe === undefined || inputs === undefined) continue;
      const phs = recipe.inputs.map((inp) => placeholder(inp.shape, { name: `x${inp.id}` }));
      const vals = evaluate(recipe, SYMFLOW, phs);
      const y = symflowObjective(recipe, vals);
      const fetches: Tensor[] = [y, ...gradients(y, phs, { unconnected: 'zero' })];
      const back = fromJSON(JSON.parse(JSON.stringify(toJSON(fetches))));
      const feedsOf = (ps: readonly Tensor[]) => ps.map((p, k) => [p, { shape: recipe.inputs[k]!.shape, data: inputs[k]! }] as const);
      const original = await session.run(fetches, feedsOf(phs));
      // Nodes come back under the names they had in the JSON.
      const rebuilt = await session.run(back.outputs, feedsOf(phs.map((p) => back.nodes.get(p.name)!)));
      expect(rebuilt.map((t) => bits(t).join(',')), `graph ${index}`).toEqual(original.map((t) => bits(t).join(',')));
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
    await session.dispose();
  });
});
