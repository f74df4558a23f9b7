import { SymflowError } from '../graph/errors.js';

/**
 * An explicit Runge–Kutta method as data: `a` is strictly lower triangular (row i has the i coefficients of the
 * earlier stages), `b` the weights of the solution, and for embedded pairs `bStar` the weights of the companion
 * solution whose difference estimates the local error.
 */
export interface ButcherTableau {
  readonly name: string;
  readonly a: readonly (readonly number[])[];
  readonly b: readonly number[];
  readonly bStar?: readonly number[];
  /** Order of the `b` solution. */
  readonly order: number;
  /** Order of the `bStar` solution (embedded pairs). */
  readonly errorOrder?: number;
}

/** The shipped tableaux. A new method is a new table, not new code. */
export const tableaux = {
  euler: { name: 'euler', a: [[]], b: [1], order: 1 },
  midpoint: { name: 'midpoint', a: [[], [1 / 2]], b: [0, 1], order: 2 },
  heun: { name: 'heun', a: [[], [1]], b: [1 / 2, 1 / 2], order: 2 },
  ralston: { name: 'ralston', a: [[], [2 / 3]], b: [1 / 4, 3 / 4], order: 2 },
  rk3: { name: 'rk3', a: [[], [1 / 2], [-1, 2]], b: [1 / 6, 2 / 3, 1 / 6], order: 3 },
  rk4: { name: 'rk4', a: [[], [1 / 2], [0, 1 / 2], [0, 0, 1]], b: [1 / 6, 1 / 3, 1 / 3, 1 / 6], order: 4 },
  bogackiShampine: {
    name: 'bogackiShampine',
    a: [[], [1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
    b: [2 / 9, 1 / 3, 4 / 9, 0],
    bStar: [7 / 24, 1 / 4, 1 / 3, 1 / 8],
    order: 3,
    errorOrder: 2,
  },
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
    order: 5,
    errorOrder: 4,
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
  if (t.bStar !== undefined) {
    if (!Array.isArray(t.bStar) || t.bStar.length !== s) throw bad(`bStar needs ${s} weights`);
    if (!t.bStar.every(Number.isFinite) || Math.abs(sum(t.bStar) - 1) > 1e-9) throw bad(`weights bStar must sum to 1, they sum to ${sum(t.bStar)}`);
  }
  if (!Number.isInteger(t.order) || t.order < 1) throw bad(`order must be a positive integer, got ${t.order}`);
}
