// The op record (issue 11 §1): each op's attribute schema is what fromJSON checks, and a graph survives the JSON
// round trip bit for bit — checked over the fuzzer's random graphs, forward values and symbolic gradients.
import { describe, expect, it } from 'vitest';
import { Session, fromJSON, gradients, placeholder, toJSON, type Tensor } from '../src/index.js';
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
