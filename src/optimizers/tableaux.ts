import { SymflowError } from '../graph/errors.js';

/**
 * An explicit Runge–Kutta method as data: `a` is strictly lower triangular (row i has the i coefficients of the
 * earlier stages), `b` the weights of the solution, and for embedded pairs `bStar` the weights of the companion
 * solution whose difference estimates the local error.
 *
 * FSAL ("first same as last"): when the last row of `a` equals `b` (and `b`'s last weight is 0, so the last stage
 * is evaluated at the new point; `c`'s last entry is then 1), the last stage's gradient is the next step's first;
 * `isFsal` tells. The gradient flow is autonomous, so `c` (the stage times, row sums of `a`) is documentation and
 * is checked when given.
 */
export interface ButcherTableau {
  /** The method's name: what `rungeKutta` names the optimizer and its errors after. */
  readonly name: string;
  /** The stage coefficients, s rows; row i holds aᵢ₀ … aᵢ,ᵢ₋₁ (at most i entries; missing trailing ones are 0). Row 0 is `[]`. */
  readonly a: readonly (readonly number[])[];
  /** The s weights of the solution, summing to 1: p₁ = p₀ + lr·Σⱼ bⱼkⱼ. */
  readonly b: readonly number[];
  /** Embedded pairs: the s weights of the companion solution (summing to 1); err = lr·Σⱼ(bⱼ − bStarⱼ)kⱼ. Needed by adaptive mode. */
  readonly bStar?: readonly number[];
  /**
   * A second, lower-order companion (DOP853's 3rd-order weights). When present, a stepper does NOT use RMS(e):
   * with e = lr·Σⱼ(bⱼ − bStarⱼ)kⱼ and e₃ = lr·Σⱼ(bⱼ − bStar3ⱼ)kⱼ (each divided elementwise by the error scale
   * atol + rtol·max(|p|, |p_new|) when there is one), over all n parameter elements,
   * errorNorm = ‖e‖² / √(n·(‖e‖² + 0.01·‖e₃‖²)) (0 when both are 0; ‖·‖ the 2-norm), and the controller's
   * exponent is −1/order, not −1/(errorOrder + 1): the combination behaves like h^order (e ~ h⁶ and e₃ ~ h⁴ give
   * e²/e₃ ~ h⁸ for DOP853; scipy's `DOP853._estimate_error_norm`, error_estimator_order = 7).
   */
  readonly bStar3?: readonly number[];
  /** Stage times: cᵢ = Σⱼ aᵢⱼ (optional; checked when given). */
  readonly c?: readonly number[];
  /** Order of the `b` solution. */
  readonly order: number;
  /** Order of the `bStar` solution (embedded pairs). */
  readonly errorOrder?: number;
  /** Order of the `bStar3` solution. */
  readonly errorOrder3?: number;
}

/** The shipped tableaux. A new method is a new table, not new code. */
export const tableaux = {
  /** Forward Euler: one gradient evaluation per step; `rungeKutta` with it is plain gradient descent. Order 1. */
  euler: { name: 'euler', a: [[]], b: [1], order: 1 },
  /** The explicit midpoint method: the gradient at p − (lr/2)·∇L(p). Order 2, two stages. */
  midpoint: { name: 'midpoint', a: [[], [1 / 2]], b: [0, 1], order: 2 },
  /** Heun's method (explicit trapezoid): the mean of the gradients at p and at the Euler point. Order 2, two stages. */
  heun: { name: 'heun', a: [[], [1]], b: [1 / 2, 1 / 2], order: 2 },
  /** Ralston's method: the second-order two-stage method with the smallest error bound (stage at 2/3). Order 2. */
  ralston: { name: 'ralston', a: [[], [2 / 3]], b: [1 / 4, 3 / 4], order: 2 },
  /** Kutta's third-order method (three stages, weights 1/6, 2/3, 1/6). Order 3. */
  rk3: { name: 'rk3', a: [[], [1 / 2], [-1, 2]], b: [1 / 6, 2 / 3, 1 / 6], order: 3 },
  /** The classical Runge–Kutta method (four stages, weights 1/6, 1/3, 1/3, 1/6). Order 4. */
  rk4: { name: 'rk4', a: [[], [1 / 2], [0, 1 / 2], [0, 0, 1]], b: [1 / 6, 1 / 3, 1 / 3, 1 / 6], order: 4 },
  /**
   * Bogacki–Shampine 3(2), scipy's `RK23`: four stages, FSAL (three new gradients per accepted step when the batch repeats, see `fullBatch`), a 2nd-order
   * companion for error control. Steps with the 3rd-order weights.
   */
  bogackiShampine: {
    name: 'bogackiShampine',
    a: [[], [1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
    b: [2 / 9, 1 / 3, 4 / 9, 0],
    bStar: [7 / 24, 1 / 4, 1 / 3, 1 / 8],
    order: 3,
    errorOrder: 2,
  },
  /**
   * Dormand–Prince 5(4), scipy's `RK45` (and MATLAB's ode45): seven stages, FSAL (six new gradients per accepted
   * step when the batch repeats, see `fullBatch`), a 4th-order companion for error control. Steps with the 5th-order weights.
   */
  dormandPrince: {
    name: 'dormandPrince',
    a: [
      [],
      [1 / 5],
      [3 / 40, 9 / 40],
      [44 / 45, -56 / 15, 32 / 9],
      [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
      [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
      [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    ],
    b: [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    bStar: [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40],
    c: [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
    order: 5,
    errorOrder: 4,
  },
  /**
   * Tsitouras 5(4) (Ch. Tsitouras, "Runge–Kutta pairs of order 5(4) satisfying only the first column simplifying
   * assumption", Comput. Math. Appl. 62 (2011)): FSAL like dormandPrince, with smaller error constants. The
   * coefficients are the paper's, as printed to 17 digits in OrdinaryDiffEq.jl and diffrax (`_solver/tsit5.py`).
   */
  tsit5: {
    name: 'tsit5',
    a: [
      [],
      [0.161],
      [-0.008480655492356989, 0.335480655492357],
      [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
      [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
      [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
      [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774],
    ],
    b: [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774, 0],
    bStar: [0.09468075576583945, 0.009183565540343254, 0.4877705284247616, 1.234297566930479, -2.7077123499835256, 1.866628418170587, 1 / 66],
    c: [0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1],
    order: 5,
    errorOrder: 4,
  },
  /** Cash–Karp 5(4) (J. R. Cash, A. H. Karp, ACM TOMS 16 (1990)); steps with the 5th-order weights. */
  cashKarp: {
    name: 'cashKarp',
    a: [
      [],
      [1 / 5],
      [3 / 40, 9 / 40],
      [3 / 10, -9 / 10, 6 / 5],
      [-11 / 54, 5 / 2, -70 / 27, 35 / 27],
      [1631 / 55296, 175 / 512, 575 / 13824, 44275 / 110592, 253 / 4096],
    ],
    b: [37 / 378, 0, 250 / 621, 125 / 594, 0, 512 / 1771],
    bStar: [2825 / 27648, 0, 18575 / 48384, 13525 / 55296, 277 / 14336, 1 / 4],
    c: [0, 1 / 5, 3 / 10, 3 / 5, 1, 7 / 8],
    order: 5,
    errorOrder: 4,
  },
  /**
   * Dormand–Prince 8(5,3) (E. Hairer, S. P. Nørsett, G. Wanner, Solving ODEs I, §II.10; Hairer's DOP853): 12 stages,
   * an 8th-order step, and two companions of orders 5 and 3 whose combined error norm is `bStar3`'s rule. Values
   * as in scipy's `_ivp/dop853_coefficients.py` (bStar = b − E5, bStar3 = b − E3, rounded to float64).
   */
  dop853: {
    name: 'dop853',
    a: [
      [],
      [0.05260015195876773],
      [0.0197250569845379, 0.0591751709536137],
      [0.02958758547680685, 0, 0.08876275643042054],
      [0.2413651341592667, 0, -0.8845494793282861, 0.924834003261792],
      [0.037037037037037035, 0, 0, 0.17082860872947386, 0.12546768756682242],
      [0.037109375, 0, 0, 0.17025221101954405, 0.06021653898045596, -0.017578125],
      [0.03709200011850479, 0, 0, 0.17038392571223998, 0.10726203044637328, -0.015319437748624402, 0.008273789163814023],
      [0.6241109587160757, 0, 0, -3.3608926294469414, -0.868219346841726, 27.59209969944671, 20.154067550477894, -43.48988418106996],
      [0.47766253643826434, 0, 0, -2.4881146199716677, -0.590290826836843, 21.230051448181193, 15.279233632882423, -33.28821096898486,
        -0.020331201708508627],
      [-0.9371424300859873, 0, 0, 5.186372428844064, 1.0914373489967295, -8.149787010746927, -18.52006565999696, 22.739487099350505,
        2.4936055526796523, -3.0467644718982196],
      [2.273310147516538, 0, 0, -10.53449546673725, -2.0008720582248625, -17.9589318631188, 27.94888452941996, -2.8589982771350235,
        -8.87285693353063, 12.360567175794303, 0.6433927460157636],
    ],
    b: [0.054293734116568765, 0, 0, 0, 0, 4.450312892752409, 1.8915178993145003, -5.801203960010585, 0.3111643669578199,
      -0.1521609496625161, 0.20136540080403034, 0.04471061572777259],
    bStar: [0.04117368912237389, 0, 0, 0, 0, 5.675469339128614, 2.3872768489717506, -7.465581142465571, 0.6614932157077935,
      -0.48634006837553356, 0.11944219431891463, 0.06706592359165889],
    bStar3: [0.2440944881889764, 0, 0, 0, 0, 0, 0, 0, 0.7338466882816118, 0, 0, 0.022058823529411766],
    c: [0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274, 0.2816496580927726, 1 / 3, 1 / 4, 4 / 13, 127 / 195, 3 / 5,
      6 / 7, 1],
    order: 8,
    errorOrder: 5,
    errorOrder3: 3,
  },
} as const satisfies Record<string, ButcherTableau>;

/** Checks that a tableau is explicit and consistent; errors name the field. */
export function checkTableau(t: ButcherTableau): void {
  const bad = (why: string) => new SymflowError('rungeKutta', `tableau '${t?.name ?? '?'}': ${why}`);
  if (t === null || typeof t !== 'object' || !Array.isArray(t.a) || !Array.isArray(t.b)) throw bad('needs arrays a and b');
  const s = t.b.length;
  if (s < 1) throw bad('b is empty');
  if (t.a.length !== s) throw bad(`a has ${t.a.length} rows but b has ${s} weights`);
  t.a.forEach((row, i) => {
    if (!Array.isArray(row) || row.length > i) throw bad(`row ${i} of a must have at most ${i} ${i === 1 ? 'entry' : 'entries'} (explicit methods only)`);
    if (!row.every(Number.isFinite)) throw bad(`row ${i} of a has a non-finite entry`);
  });
  const sum = (w: readonly number[]) => w.reduce((p, q) => p + q, 0);
  if (!t.b.every(Number.isFinite) || Math.abs(sum(t.b) - 1) > 1e-9) throw bad(`weights b must be finite and sum to 1, they sum to ${sum(t.b)}`);
  const weights = (field: 'bStar' | 'bStar3') => {
    const w = t[field];
    if (w === undefined) return;
    if (!Array.isArray(w) || w.length !== s) throw bad(`${field} needs ${s} weights`);
    if (!w.every(Number.isFinite) || Math.abs(sum(w) - 1) > 1e-9) throw bad(`weights ${field} must sum to 1, they sum to ${sum(w)}`);
  };
  weights('bStar');
  weights('bStar3');
  if (t.bStar3 !== undefined && t.bStar === undefined) throw bad('bStar3 needs bStar (it refines the bStar error estimate)');
  if (t.c !== undefined) {
    if (!Array.isArray(t.c) || t.c.length !== s || !t.c.every(Number.isFinite)) throw bad(`c needs ${s} finite stage times`);
    // Row sums in float64 of coefficients as large as DOP853's (~40) carry ~1e-14 of rounding.
    t.a.forEach((row, i) => {
      if (Math.abs(sum(row) - t.c![i]!) > 1e-12) throw bad(`row ${i} of a sums to ${sum(row)}, but c[${i}] is ${t.c![i]}`);
    });
  }
  if (!Number.isInteger(t.order) || t.order < 1) throw bad(`order must be a positive integer, got ${t.order}`);
  for (const field of ['errorOrder', 'errorOrder3'] as const) {
    const q = t[field];
    if (q !== undefined && (!Number.isInteger(q) || q < 1)) throw bad(`${field} must be a positive integer, got ${q}`);
  }
}

/**
 * Whether a tableau is FSAL: its last stage is evaluated at the new point (the last row of `a` is `b` without its
 * last weight, and that weight is 0), so that stage's gradient is the next step's first and a stepper can skip it.
 *
 * ```ts
 * isFsal(tableaux.dormandPrince); // true
 * isFsal(tableaux.rk4);           // false
 * ```
 * @param t a checked tableau
 * @returns true when the last stage equals the next step's first
 */
export function isFsal(t: ButcherTableau): boolean {
  const s = t.b.length;
  const last = t.a[s - 1]!;
  return s > 1 && t.b[s - 1] === 0 && last.length === s - 1 && last.every((v, j) => v === t.b[j]);
}
