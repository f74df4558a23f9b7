import { describe, expect, it } from 'vitest';
import {
  NonFiniteError, Session, SymflowError, compile, extragradient, mul, placeholder, square, stopGradient, sub, sum, variable,
} from '../src/index.js';
import { BACKENDS, bits, expectClose, values } from './helpers.js';

describe.each(BACKENDS)('extragradient on %s', (backend) => {
  it('a quadratic by hand: p½ = p − lr·c·p, then p ← p − lr·c·p½ = p·(1 − lr·c + lr²c²)', async () => {
    const s = await Session.create({ backend });
    const c = placeholder([2], { name: 'c' });
    const p = variable([1, -2], { name: 'p' });
    // L = ½ Σ cᵢpᵢ², ∇L = c ⊙ p.
    const train = compile(extragradient({ lr: 0.1 }), s, { loss: mul(0.5, sum(mul(c, square(p)))), inputs: [c], outputs: [mul(p, 10)] });
    expect(train.runsPerStep).toBe(2);
    const r = await train.step([[1, 4]]);
    expect(r).toMatchObject({ loss: 8.5, runs: 2, lr: 0.1 });
    // The extra outputs are read at the starting point.
    expect(values(r.outputs[0]!)).toEqual([10, -20]);
    // c = 1: 1·(1 − 0.1 + 0.01) = 0.91; c = 4: −2·(1 − 0.4 + 0.16) = −1.52 (plain descent would give 0.9, −1.2).
    expectClose(values(await s.getValue(p)), [0.91, -1.52], 1e-6, 1e-7);
    await s.dispose();
  });

  it('a bilinear game min_x max_y x·y: extragradient contracts by 1 − lr² + lr⁴ per step where descent–ascent spirals out', async () => {
    const s = await Session.create({ backend });
    const x = variable([1], { name: 'x' });
    const y = variable([2], { name: 'y' });
    // A loss whose gradient is the game's field (∂/∂x = y, ∂/∂y = −x): x·sg(y) − sg(x)·y.
    const loss = sub(sum(mul(x, stopGradient(y))), sum(mul(stopGradient(x), y)));
    const lr = 0.1;
    const train = compile(extragradient({ lr }), s, { loss, inputs: [] });
    await train.step([]);
    // Half step (1 − 0.2, 2 + 0.1) = (0.8, 2.1); full step from (1, 2): (1 − 0.1·2.1, 2 + 0.1·0.8) = (0.79, 2.08).
    expectClose([...values(await s.getValue(x)), ...values(await s.getValue(y))], [0.79, 2.08], 1e-6, 1e-7);
    for (let k = 1; k < 50; k++) await train.step([]);
    const [px, py] = [values(await s.getValue(x))[0]!, values(await s.getValue(y))[0]!];
    // M = (1 − lr²)·I − lr·J with J the rotation: |M v|² = ((1 − lr²)² + lr²)·|v|² for every v.
    expectClose([px * px + py * py], [5 * (1 - lr * lr + lr ** 4) ** 50], 1e-4);
    await s.dispose();
  });

  it('a step whose second run is not finite changes nothing (the look-ahead run is undone too)', async () => {
    const s = await Session.create({ backend });
    const c = placeholder([], { name: 'c' });
    const p = variable([1, -2], { name: 'p' });
    const train = compile(extragradient({ lr: 0.1 }), s, { loss: mul(0.5, mul(c, sum(square(p)))), inputs: [c] });
    await train.step([1]);
    const before = [bits(await s.getValue(p)), ...(await Promise.all(train.stateVariables.map((v) => s.getValue(v)))).map(bits)];
    // c = 1e20: the look-ahead point p·(1 − 1e19) is finite, the gradient there (≈ 1e39) overflows.
    await expect(train.step([1e20])).rejects.toThrow(NonFiniteError);
    const after = [bits(await s.getValue(p)), ...(await Promise.all(train.stateVariables.map((v) => s.getValue(v)))).map(bits)];
    expect(after).toEqual(before);
    await train.step([1]);
    expectClose(values(await s.getValue(p)), [0.91 * 0.91, -2 * 0.91 * 0.91], 1e-6, 1e-7);
    await s.dispose();
  });
});

describe('extragradient refuses bad arguments', () => {
  it.each([[{ lr: -1 }], [{ lr: NaN }], [{}], [undefined]])('%j', (opts) => {
    expect(() => extragradient(opts as { lr: number })).toThrow(SymflowError);
    expect(() => extragradient(opts as { lr: number })).toThrow(/extragradient: lr must be a finite number >= 0/);
  });
});
