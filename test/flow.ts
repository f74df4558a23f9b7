// The linear gradient flow both Runge–Kutta order tests integrate (test/optimizers.rungeKutta.test.ts,
// test/tableaux.test.ts).
import { expect } from 'vitest';
import { type ButcherTableau, compile, constant, mul, rungeKutta, type Session, square, sum, variable } from '../src/index.js';

/** p0ᵢ = 0.5 + frac(i·0.6180339887), rounded to float32 (what the variable holds). */
const N_FLOW = 4096;
const P0 = Float32Array.from({ length: N_FLOW }, (_, i) => {
  const x = i * 0.6180339887;
  return 0.5 + (x - Math.floor(x));
});

/**
 * Integrates the linear gradient flow dp/dt = −a·p (loss 0.5·Σ aᵢpᵢ²) to time T with N = T/h full-batch steps and
 * returns |mean over i of (p_N,i / exact_i − 1)|, exact_i = p0ᵢ·e^(−aᵢT). Float32 round-off is unbiased and averages
 * out over the 4096 components; the truncation error is the same in every component with the same aᵢ.
 */
export async function flowError(s: Session, tableau: ButcherTableau, spectrum: 'decay' | 'symmetric', h: number, T: number): Promise<number> {
  const a = Array.from({ length: N_FLOW }, (_, i) => (spectrum === 'decay' || i % 2 === 0 ? 1 : -1));
  const p = variable(P0, { name: 'flow' });
  const loss = mul(0.5, sum(mul(constant(a), square(p))));
  const train = compile(rungeKutta({ tableau, lr: h }), s, { loss, inputs: [] });
  const steps = Math.round(T / h);
  expect(Math.abs(steps * h - T)).toBeLessThan(1e-12);
  for (let i = 0; i < steps; i++) await train.step([]);
  const got = (await s.getValue(p)).data;
  let acc = 0;
  for (let i = 0; i < N_FLOW; i++) acc += got[i]! / (P0[i]! * Math.exp(-a[i]! * T)) - 1;
  return Math.abs(acc / N_FLOW);
}
