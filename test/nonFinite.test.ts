import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  NonFiniteError, Session, accumulate, adam, add, compile, cond, div, fit, greater, heun, matMul, mean, mul, placeholder, rungeKutta, sam,
  pow, sgd, sqrt, square, sub, sum, tableaux, variable, type AnyOptimizer, type NonFinitePolicy,
} from '../src/index.js';
import { BACKENDS, bits } from './helpers.js';

/**
 * A batch that makes the loss, a gradient or a new value NaN or infinite never reaches the parameters: the check
 * is compiled into the step's runs, and a refused step leaves every variable bit-identical.
 *
 * The model: a linear fit plus s^c, with s = 0 at the start and c fed per batch. Good batches have c = 1 (the
 * term is s, its gradient 1). A batch with c = 0.5 at s = 0 has a finite loss (0^0.5 = 0) and an infinite gradient
 * (0.5·0^−0.5 = +∞).
 */
function model() {
  const x = placeholder([null, 2], { name: 'x' });
  const y = placeholder([null, 1], { name: 'y' });
  const c = placeholder([], { name: 'c' });
  const w = variable([[0.5], [-0.25]], { name: 'w' });
  const b = variable(0.125, { name: 'b' });
  const s = variable(0, { name: 's' });
  const loss = add(mean(square(sub(add(matMul(x, w), b), y))), pow(s, c));
  return { x, y, c, w, b, s, loss };
}

const X = [[1, 2], [3, -1], [0.5, 0.5], [-2, 1]];
const Y = [[1], [0], [2], [-1]];
const XN = [[1, 2], [NaN, -1], [0.5, 0.5], [-2, 1]];

async function setup(backend: (typeof BACKENDS)[number], make: () => AnyOptimizer, onNonFinite?: NonFinitePolicy) {
  const session = await Session.create({ backend });
  const m = model();
  const train = compile(make(), session, { loss: m.loss, inputs: [m.x, m.y, m.c], params: [m.w, m.b, m.s], ...(onNonFinite ? { onNonFinite } : {}) });
  return { session, m, train };
}

async function state(s: Session): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of s.variables) out[v.name.replace(/_\d+/g, '')] = bits(await s.getValue(v)).join(',');
  return out;
}

const optimizers: [string, () => AnyOptimizer][] = [
  ['sgd', () => sgd({ lr: 0.1, momentum: 0.9 })],
  ['adam', () => adam({ lr: 0.01 })],
  ['heun', () => heun({ lr: 0.1 })],
  ['heun fused', () => heun({ lr: 0.1, fused: true })],
  ['rk4', () => rungeKutta({ tableau: tableaux.rk4, lr: 0.1 })],
  ['adaptive RK45', () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.1, adaptive: { tol: 1e-3 } })],
  ['sam(adam)', () => sam({ inner: adam({ lr: 0.01 }), rho: 0.05 })],
  ['soft batch accumulate(adam, 2)', () => accumulate(adam({ lr: 0.01 }), { steps: 2 })],
];

describe.each(BACKENDS)('non-finite steps on %s', (backend) => {
  describe.each(optimizers)('%s', (name, make) => {
    it('a NaN in the batch (non-finite loss) is refused by default, naming the loss; nothing changes', async () => {
      const { session, train } = await setup(backend, make);
      await train.step([X, Y, 1]);
      const before = await state(session);
      const tensors = session.numTensors();
      const e = await train.step([XN, Y, 1]).then(() => undefined, (err: unknown) => err);
      expect(session.numTensors(), 'tensors after a refused step (its diagnostic runs are released)').toBe(tensors);
      expect(e).toBeInstanceOf(NonFiniteError);
      expect((e as NonFiniteError).report.what).toBe('loss');
      expect((e as Error).message).toMatch(/TrainStep\.step: the loss is NaN on this batch; the step was refused and every variable is as it was/);
      expect(await state(session)).toEqual(before);
      // And training goes on: the next good step equals the same step on a twin that never saw the bad batch.
      const twin = await setup(backend, make);
      await twin.train.step([X, Y, 1]);
      await twin.train.step([X, Y, 1]);
      await train.step([X, Y, 1]);
      expect(await state(session)).toEqual(await state(twin.session));
      await session.dispose();
      await twin.session.dispose();
    });

    it('a finite loss with an infinite gradient is refused, naming the parameter', async () => {
      const { session, m, train } = await setup(backend, make);
      // s = 0 and c = 0.5: the loss term 0^0.5 = 0 is finite, its gradient 0.5·0^−0.5 is +∞.
      const before = await state(session);
      const e = await train.step([X, Y, 0.5]).then(() => undefined, (err: unknown) => err);
      expect(e, 'refused').toBeInstanceOf(NonFiniteError);
      const report = (e as NonFiniteError).report;
      expect(report.what).toBe('gradient');
      expect(report.variable).toBe(m.s.name);
      expect(Number.isFinite(report.loss)).toBe(true);
      expect((e as Error).message).toContain(`the gradient of '${m.s.name}' is not finite`);
      expect(await state(session)).toEqual(before);
      await session.dispose();
    });

    it("'skip' refuses and reports in the result; 'apply' writes the non-finite values as before", async () => {
      const skip = await setup(backend, make, 'skip');
      const before = await state(skip.session);
      const r = await skip.train.step([X, Y, 0.5]);
      expect(r.skipped?.what).toBe('gradient');
      expect(await state(skip.session)).toEqual(before);
      const apply = await setup(backend, make, 'apply');
      if (name.startsWith('adaptive')) {
        // No check: the infinite error norm is rejected until the step gives up, as before.
        await expect(apply.train.step([X, Y, 0.5])).rejects.toThrow(/rejected 21 times/);
      } else {
        // Soft batch applies on every 2nd step: two steps so the inner optimizer writes the parameters.
        await apply.train.step([X, Y, 0.5]);
        await apply.train.step([X, Y, 0.5]);
        const s = (await apply.session.getValue(apply.m.s)).data[0]!;
        expect(Number.isFinite(s)).toBe(false);
      }
      await skip.session.dispose();
      await apply.session.dispose();
    });
  });

  it('a new value that overflows although loss and gradients are finite is refused, naming the variable', async () => {
    const { session, m, train } = await setup(backend, () => sgd({ lr: 3e38 }));
    const before = await state(session);
    const e = await train.step([X, Y, 1]).then(() => undefined, (err: unknown) => err);
    expect((e as NonFiniteError).report.what).toBe('value');
    expect([m.w.name, m.b.name, m.s.name]).toContain((e as NonFiniteError).report.variable);
    expect(await state(session)).toEqual(before);
    await session.dispose();
  });

  it('values whose sum overflows but every element is finite are applied (the exact check behind the fast one)', async () => {
    const session = await Session.create({ backend });
    const x = placeholder([null, 1], { name: 'x' });
    const w = variable([3e38, 3e38, 3e38, 3e38], { name: 'big' });
    // The loss is finite and tiny in w's scale; lr = 0 keeps w = 3e38 each, whose sum is +∞ in float32.
    const loss = mean(mul(sum(mul(w, 1e-38)), x));
    const train = compile(sgd({ lr: 0 }), session, { loss, inputs: [x] });
    const r = await train.step([[[1], [2]]]);
    expect(r.skipped).toBeUndefined();
    const iterations = train.stateVariables.find((v) => v.name.startsWith('sgd/iterations'))!;
    expect(Array.from((await session.getValue(iterations)).data)).toEqual([1]);
    expect(Array.from((await session.getValue(w)).data)).toEqual([3e38, 3e38, 3e38, 3e38].map((v) => Math.fround(v)));
    await session.dispose();
  });

  it('adaptive RK45: a non-finite loss at the start is refused at once, not retried; a non-finite stage is still a rejected step', async () => {
    const { session, train } = await setup(backend, () => rungeKutta({ tableau: tableaux.dormandPrince, lr: 0.1, adaptive: { tol: 1e-3 } }), 'skip');
    const before = await state(session);
    const r = await train.step([XN, Y, 1]);
    expect(r.skipped?.what).toBe('loss');
    expect(r.runs).toBe(1);
    expect(await state(session)).toEqual(before);
    // sqrt(w) at w = 0.01 has gradient 5: an Euler stage with lr = 1 lands at w < 0, where sqrt is NaN.
    const s2 = await Session.create({ backend });
    const v = variable(0.01, { name: 'v' });
    const z = placeholder([], { name: 'z' });
    const loss = mul(sqrt(v), z);
    const rk = compile(rungeKutta({ tableau: tableaux.dormandPrince, lr: 1, adaptive: { tol: 1e-3 } }), s2, { loss, inputs: [z] });
    const res = await rk.step([1]);
    expect(res.rejections).toBeGreaterThan(0);
    expect(res.lr).toBeLessThan(1);
    expect(Number.isFinite((await s2.getValue(v)).data[0]!)).toBe(true);
    await session.dispose();
    await s2.dispose();
  });

  it("fit's 'skip' catches a finite loss with an infinite gradient (it checked only the loss)", async () => {
    const { session, m, train } = await setup(backend, () => adam({ lr: 0.01 }));
    const before = await state(session);
    // c is a scalar fed per batch, so the batches come as an Observable.
    const batches = [[X, Y, 0.5], [X, Y, 0.5]];
    const es = await lastValueFrom(fit(train, from(batches) as never, { onNonFinite: 'skip' }).pipe(toArray()));
    const skipped = es.filter((e) => e.type === 'skipped');
    expect(skipped).toHaveLength(2);
    expect(skipped[0]).toMatchObject({ reason: 'gradient', variable: m.s.name });
    expect(await state(session)).toEqual(before);
    const err = await lastValueFrom(fit(train, from(batches) as never).pipe(toArray())).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(new RegExp(`fit: non-finite gradient of '${m.s.name}' at epoch 0, batch 0; the step was undone`));
    expect(await state(session)).toEqual(before);
    await session.dispose();
  });

  it("a step compiled with 'apply' still lets fit skip a non-finite loss: checked on the host, the step undone", async () => {
    const { session, train } = await setup(backend, () => heun({ lr: 0.1 }), 'apply');
    const before = await state(session);
    const es = await lastValueFrom(fit(train, from([[XN, Y, 1]]) as never, { onNonFinite: 'skip' }).pipe(toArray()));
    expect(es.map((e) => e.type)).toEqual(['skipped', 'epoch']);
    expect(es[0]).toMatchObject({ reason: 'loss' });
    expect(await state(session)).toEqual(before);
    // Directly: both runs of the heun step ran (then the step was undone), and say so.
    const r = await train.step([XN, Y, 1], { onNonFinite: 'skip' });
    expect(r.skipped?.what).toBe('loss');
    expect(r.runs).toBe(2);
    expect(await state(session)).toEqual(before);
    await session.dispose();
  });

  it('session.function({applyIfFinite}): every new value counts, a tensor cond\'s too; an untaken branch does not', async () => {
    const session = await Session.create({ backend });
    const z = placeholder([], { name: 'z' });
    const w = variable([1, 2], { name: 'w' });
    const u = variable([5, 6], { name: 'u' });
    // w's new value is a tensor cond (not a cond of updates): its NaN must be seen like any other value.
    const viaCond = session.function({ inputs: [z], updates: [[w, cond(greater(z, 0), () => mul(w, z), () => add(w, 1))]], applyIfFinite: true });
    const [refused] = await viaCond([Infinity]);
    expect(Array.from(refused!.data)).toEqual([0]);
    expect(Array.from((await session.getValue(w)).data)).toEqual([1, 2]);
    const [applied] = await viaCond([3]);
    expect(Array.from(applied!.data)).toEqual([1]);
    expect(Array.from((await session.getValue(w)).data)).toEqual([3, 6]);
    // A cond of updates: the untaken branch would write NaN into u, the taken one is finite, so it applies.
    const lazy = session.function({
      inputs: [z],
      updates: [cond(greater(z, 0), () => [[u, add(u, z)]], () => [[u, div(u, 0)], [w, mul(w, NaN)]])],
      applyIfFinite: true,
    });
    expect(Array.from((await lazy([1]))[0]!.data)).toEqual([1]);
    expect(Array.from((await session.getValue(u)).data)).toEqual([6, 7]);
    expect(Array.from((await lazy([-1]))[0]!.data)).toEqual([0]);
    expect(Array.from((await session.getValue(u)).data)).toEqual([6, 7]);
    expect(Array.from((await session.getValue(w)).data)).toEqual([3, 6]);
    await session.dispose();
  });

  it('a soft batch refuses a NaN mini-batch on an accumulate-only step: the accumulators stay as they were', async () => {
    const { session, train } = await setup(backend, () => accumulate(sgd({ lr: 0.1 }), { steps: 3 }), 'skip');
    await train.step([X, Y, 1]);
    const before = await state(session);
    const r = await train.step([XN, Y, 1]);
    expect(r.skipped?.what).toBe('loss');
    expect(await state(session)).toEqual(before);
    await session.dispose();
  });
});
