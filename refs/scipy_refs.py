"""Reference step-size sequences from scipy.integrate's RK23 and RK45 for symflow's adaptive Runge-Kutta tests.

Writes test/refs/scipyRk.json. Each problem is a deterministic gradient flow y' = -grad L(y) (no batch, no noise),
stored with every coefficient, so a test rebuilds the same loss from the file alone (the tests never run Python).
Run with `npm run refs`.

For each problem x method x (rtol, atol) x first step (a given number, or scipy's own choice), the solver object is
stepped with `solver.step()` (t_bound = 1e9, so no step is ever truncated) and every accepted step is recorded with
the attempts rejected before it. The rejected attempts are seen by wrapping the solver's `_estimate_error_norm`
(called exactly once per attempt, in `_step_impl`), the function evaluations by `solver.nfev`.

Each case is also replayed with an independent float32 implementation of the same controller (numpy float32 for
the state, the stages, h and the error norm: what a float32 graph computes) and the largest relative deviation of
its h sequence from scipy's float64 one is recorded, so the file says for which cases a float32 stepper can be held
to the sequence, and how tightly.
"""
import json
import math
import os
import shutil
import sys

try:
    import scipy
    from scipy.integrate import RK23, RK45
    from scipy.integrate._ivp.common import norm as rms_norm, select_initial_step
except ImportError:  # Debian's /usr/bin/python3 has no scipy: look for an interpreter that has it (a pyenv one)
    here = os.path.realpath(sys.executable)
    candidates = [shutil.which('python3', path=p) for p in os.environ.get('PATH', '').split(os.pathsep)]
    candidates += [os.path.expanduser('~/.pyenv/shims/python3')]
    for c in candidates:
        if c and os.path.exists(c) and os.path.realpath(c) != here and not os.environ.get('SCIPY_REFS_REEXEC'):
            os.environ['SCIPY_REFS_REEXEC'] = '1'
            os.execv(c, [c, *sys.argv])
    raise

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'refs')
T_BOUND = 1e9
STEPS = 30
SCIPY_SAFETY, SCIPY_MIN_FACTOR, SCIPY_MAX_FACTOR = 0.9, 0.2, 10.0


# --------------------------------------------------------------------------------------------------------------
# Problems. `grad(y, xp)` is written once for both float64 and float32 (xp = the dtype to compute in).
# --------------------------------------------------------------------------------------------------------------
def quadratic_problem():
    a = [1.0, 4.0, 16.0, 0.25]
    y0 = [1.0, -0.5, 0.25, 2.0]

    def grad(y, dt):
        return np.asarray(a, dtype=dt) * y

    return {
        'name': 'quadratic',
        'loss': 'L(y) = 0.5 * sum_i a[i] * y[i]^2',
        'gradient': 'dL/dy[i] = a[i] * y[i]',
        'a': a,
        'y0': y0,
    }, grad


def rosenbrock_problem():
    b = 10.0
    y0 = [-1.2, 1.0]

    def grad(y, dt):
        one, bb, two, four = dt(1), dt(b), dt(2), dt(4)
        r = y[1] - y[0] * y[0]
        return np.array([-two * (one - y[0]) - four * bb * y[0] * r, two * bb * r], dtype=dt)

    return {
        'name': 'rosenbrock',
        'loss': 'L(y) = (1 - y[0])^2 + b * (y[1] - y[0]^2)^2',
        'gradient': 'dL/dy[0] = -2 (1 - y[0]) - 4 b y[0] (y[1] - y[0]^2); dL/dy[1] = 2 b (y[1] - y[0]^2)',
        'b': b,
        'y0': y0,
    }, grad


def logistic_problem():
    rng = np.random.default_rng(14)
    n, d = 16, 3
    # Data rounded to float32 once, so the float32 graph and the float64 reference see the same numbers.
    x = rng.standard_normal((n, d)).astype(np.float32).astype(np.float64)
    true_w = np.array([1.5, -2.0, 0.5])
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-(x @ true_w))), 1.0, -1.0)
    y0 = [0.5, 0.5, -0.5]

    def grad(w, dt):
        xx, ll = x.astype(dt), label.astype(dt)
        m = ll * (xx @ w)
        # d/dw mean(softplus(-m)) = -mean(label * x * sigmoid(-m))
        s = dt(1) / (dt(1) + np.exp(m))
        return -(xx * (ll * s)[:, None]).sum(axis=0) / dt(n)

    return {
        'name': 'logistic',
        'loss': 'L(w) = mean_i softplus(-label[i] * (x[i] . w)), softplus(z) = log(1 + exp(z))',
        'gradient': 'dL/dw = -mean_i label[i] * x[i] * sigmoid(-label[i] * (x[i] . w))',
        'x': x.tolist(),
        'label': label.tolist(),
        'y0': y0,
    }, grad


PROBLEMS = [quadratic_problem(), rosenbrock_problem(), logistic_problem()]
METHODS = {'RK23': RK23, 'RK45': RK45}
TOLERANCES = [(1e-2, 1e-5), (1e-3, 1e-6), (1e-5, 1e-8)]
# A float32 replay within this of scipy's h (and with the same rejections) marks a case `reproducible`: 5x under
# the 1e-4 a float32 stepper is to be held to, since another float32 implementation rounds differently.
REPRODUCIBLE = 2e-5
FIRST_STEPS = [0.01, None]


def method_record(cls):
    s = cls.n_stages
    return {
        'order': cls.order,
        'errorEstimatorOrder': cls.error_estimator_order,
        'nStages': s,
        'C': cls.C.tolist(),
        'A': [row[:i].tolist() for i, row in enumerate(cls.A)],
        'B': cls.B.tolist(),
        'E': cls.E.tolist(),
    }


# --------------------------------------------------------------------------------------------------------------
# scipy run, instrumented.
# --------------------------------------------------------------------------------------------------------------
def select_initial_step_record(cls, fun, y0, rtol, atol):
    """select_initial_step's value at y0, and its intermediate quantities (Hairer-Norsett-Wanner II.4)."""
    y0 = np.asarray(y0, dtype=np.float64)
    f0 = fun(0.0, y0)
    order = cls.error_estimator_order
    h = select_initial_step(fun, 0.0, y0, T_BOUND, np.inf, f0, 1, order, rtol, atol)
    scale = atol + np.abs(y0) * rtol
    d0, d1 = rms_norm(y0 / scale), rms_norm(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = fun(h0, y0 + h0 * f0)
    d2 = rms_norm((f1 - f0) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if d1 <= 1e-15 and d2 <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / (order + 1))
    mine = min(100 * h0, h1)
    assert mine == h, (mine, h)
    return {'h': float(h), 'd0': float(d0), 'd1': float(d1), 'd2': float(d2), 'h0': float(h0), 'h1': float(h1)}


def run_scipy(cls, fun, y0, rtol, atol, first_step):
    solver = cls(fun, 0.0, np.asarray(y0, dtype=np.float64), T_BOUND, rtol=rtol, atol=atol, first_step=first_step)
    attempts = []
    inner = solver._estimate_error_norm

    def spy(K, h, scale):
        e = inner(K, h, scale)
        attempts.append((float(h), float(e)))
        return e

    solver._estimate_error_norm = spy
    init = {'h': float(solver.h_abs), 'nfev': int(solver.nfev)}
    steps = []
    for _ in range(STEPS):
        t_old = solver.t
        attempts.clear()
        msg = solver.step()
        assert msg is None and solver.status == 'running', msg
        h = solver.t - t_old
        assert attempts[-1][0] == h and attempts[-1][1] < 1, (attempts, h)
        assert all(e >= 1 for _, e in attempts[:-1])
        steps.append({
            'h': float(h),
            't': float(solver.t),
            'y': solver.y.tolist(),
            'nfev': int(solver.nfev),
            'rejections': len(attempts) - 1,
            'errorNorm': attempts[-1][1],
            'rejected': [{'h': hh, 'errorNorm': e} for hh, e in attempts[:-1]],
            'hNext': float(solver.h_abs),
        })
    return init, steps


# --------------------------------------------------------------------------------------------------------------
# Independent float32 replay of the same controller: what a float32 graph that follows the formulas computes.
# --------------------------------------------------------------------------------------------------------------
def run_float32(cls, grad, y0, rtol, atol, h_first, n):
    f32 = np.float32
    A = [np.asarray(row[:i], dtype=f32) for i, row in enumerate(cls.A)]
    B, E = cls.B.astype(f32), cls.E.astype(f32)
    s = cls.n_stages
    expo = -1.0 / (cls.error_estimator_order + 1)
    y = np.asarray(y0, dtype=f32)
    fun = lambda v: -grad(v, f32)
    f = fun(y)
    h = f32(h_first)
    hs, rej = [], []
    while len(hs) < n:
        rejected = False
        count = 0
        while True:
            K = [f]
            for i in range(1, s):
                K.append(fun(y + h * sum((A[i][j] * K[j] for j in range(i)), np.zeros_like(y))))
            y_new = y + h * sum((B[j] * K[j] for j in range(s)), np.zeros_like(y))
            f_new = fun(y_new)
            K.append(f_new)
            err = h * sum((E[j] * K[j] for j in range(s + 1)), np.zeros_like(y))
            scale = f32(atol) + np.maximum(np.abs(y), np.abs(y_new)) * f32(rtol)
            en = f32(np.sqrt(np.mean(np.square(err / scale, dtype=f32), dtype=f32)))
            if en < 1:
                factor = f32(SCIPY_MAX_FACTOR) if en == 0 else min(f32(SCIPY_MAX_FACTOR), f32(SCIPY_SAFETY * en ** expo))
                if rejected:
                    factor = min(f32(1), factor)
                hs.append(float(h))
                rej.append(count)
                y, f, h = y_new, f_new, f32(h * factor)
                break
            h = f32(h * max(f32(SCIPY_MIN_FACTOR), f32(SCIPY_SAFETY * en ** expo)))
            rejected = True
            count += 1
    return hs, rej


def main():
    cases = []
    problems = []
    for meta, grad in PROBLEMS:
        problems.append(meta)
        fun = lambda t, y, grad=grad: -grad(y, np.float64)
        for mname, cls in METHODS.items():
            for rtol, atol in TOLERANCES:
                sis = select_initial_step_record(cls, fun, meta['y0'], rtol, atol)
                for first in FIRST_STEPS:
                    init, steps = run_scipy(cls, fun, meta['y0'], rtol, atol, first)
                    if first is None:
                        assert init['h'] == sis['h']
                    hs, rej = run_float32(cls, grad, meta['y0'], rtol, atol, init['h'], STEPS)
                    rel = [abs(a - s['h']) / s['h'] for a, s in zip(hs, steps)]
                    same_rej = rej == [s['rejections'] for s in steps]
                    cases.append({
                        'problem': meta['name'],
                        'method': mname,
                        'rtol': rtol,
                        'atol': atol,
                        'firstStep': first,
                        'selectInitialStep': sis,
                        'init': init,
                        'float32': {
                            'maxRelDeviationH': max(rel),
                            'sameRejections': same_rej,
                            'reproducible': bool(same_rej and max(rel) < REPRODUCIBLE),
                        },
                        'steps': steps,
                    })
                    print(f"{meta['name']:10s} {mname} rtol={rtol:g} first={first}: t={steps[-1]['t']:.4g} "
                          f"rejections={sum(s['rejections'] for s in steps)} nfev={steps[-1]['nfev']} "
                          f"float32 max rel dev h={max(rel):.2e} same rejections={same_rej}")
    doc = {
        'description': (
            'scipy.integrate RK23 (Bogacki-Shampine 3(2)) and RK45 (Dormand-Prince 5(4)) stepped one accepted step at '
            'a time on deterministic gradient flows dy/dt = -grad L(y), in float64. Controller (scipy '
            '_ivp/rk.py _step_impl): attempt h; y_new = y + h*sum_j B[j] K[j]; K[s] = f(y_new) (FSAL, computed on '
            'every attempt); err = h * sum_j E[j] K[j] over all s+1 rows; scale = atol + max(|y|, |y_new|) * rtol; '
            'errorNorm = RMS(err / scale). errorNorm < 1 accepts and sets hNext = h * min(maxFactor, safety * '
            'errorNorm^(-1/(errorEstimatorOrder+1))) (maxFactor when errorNorm == 0), capped at factor 1 when an '
            'attempt of this step was rejected; errorNorm >= 1 rejects and retries with h * max(minFactor, safety * '
                        'errorNorm^exponent). '
            'Float32 (why only some cases are float32 references): a float32 graph rounds each stage K[j] to ~6e-8 '
            'relative, and err = h*sum E[j] K[j] is a sum of O(h|K|) terms that cancel down to errorNorm*scale, so the '
            'relative rounding of errorNorm is about 6e-8 * h|K| / (errorNorm * (atol + rtol|y|)); h inherits '
            '1/(q+1) of it. That is small when rtol >> 6e-8 and errorNorm is not << 1 (a tiny errorNorm that is not '
            'capped by maxFactor, e.g. RK45 after a first step of 0.01, is mostly rounding), and when |grad L| stays '
            '>> 6e-8 * |Hessian| * |y| (near a minimum away from the origin, as in the logistic and Rosenbrock '
            'problems, the gradient itself is rounding). Once h reaches the stability limit the elementary controller '
            'oscillates and no longer forgets a perturbation, so small differences grow over the steps. Rather than '
            'trust the estimate, every case records an independent float32 replay of the same formulas '
            '(float32.maxRelDeviationH over all recorded steps, float32.sameRejections); float32.reproducible '
            '(deviation < 2e-5 and the same rejections) marks the cases a float32 stepper can be held to 1e-4 '
            'relative on h: all are the quadratic (its minimum is at the origin, where float32 resolves y to the '
            'end). The others are float64 references of the semantics only (rtol 1e-5 loses ~100x against rtol 1e-3 '
            'and flips accept/reject decisions).'
        ),
        'generator': 'refs/scipy_refs.py',
        'scipy': scipy.__version__,
        'numpy': np.__version__,
        'dtype': 'float64',
        'conventions': {
            'flow': 'dy/dt = -grad L(y), t starts at 0, y(0) = problem.y0',
            'tBound': T_BOUND,
            'h': 'step size actually taken, t_new - t_old (time units of the flow = symflow lr)',
            't': 'time after the step',
            'y': 'state after the step',
            'nfev': 'solver.nfev after the step: evaluations of -grad L since construction, including the one at y0 '
                    'and, for firstStep null, the one select_initial_step makes; each attempt costs nStages',
            'rejections': 'attempts rejected (errorNorm >= 1) before the accepted one within this step() call',
            'rejected': 'those attempts: their h and errorNorm, in order',
            'errorNorm': 'errorNorm of the accepted attempt (< 1)',
            'hNext': 'the h the next step() will attempt first (solver.h_abs after the step)',
            'init': 'solver.h_abs (the first attempt) and solver.nfev right after construction',
            'firstStep': 'the first_step passed to the solver; null means scipy chose it with select_initial_step',
            'selectInitialStep': 'select_initial_step(fun, 0, y0, tBound, inf, f0, 1, errorEstimatorOrder, rtol, atol) '
                                 'and its quantities: scale = atol + |y0| rtol, d0 = RMS(y0/scale), d1 = RMS(f0/scale), '
                                 'h0 = 0.01 d0/d1 (1e-6 if d0 or d1 < 1e-5), d2 = RMS((f(y0 + h0 f0) - f0)/scale)/h0, '
                                 'h1 = (0.01/max(d1, d2))^(1/(errorEstimatorOrder+1)) (max(1e-6, 1e-3 h0) if both '
                                 '<= 1e-15), h = min(100 h0, h1)',
        },
        'controller': {
            'safety': SCIPY_SAFETY,
            'minFactor': SCIPY_MIN_FACTOR,
            'maxFactor': SCIPY_MAX_FACTOR,
            'errorExponent': '-1 / (errorEstimatorOrder + 1)',
            'norm': 'RMS over all components',
        },
        'methods': {name: method_record(cls) for name, cls in METHODS.items()},
        'problems': problems,
        'cases': cases,
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, 'scipyRk.json')
    # One line per step keeps the file readable in a diff: the numbers are most of it.
    lines = {}
    for i, case in enumerate(cases):
        lines[i] = [json.dumps(st) for st in case['steps']]
        case['steps'] = f'@@steps{i}@@'
    text = json.dumps(doc, indent=1)
    for i, ls in lines.items():
        text = text.replace(f'"@@steps{i}@@"', '[\n   ' + ',\n   '.join(ls) + '\n  ]')
    with open(path, 'w') as fh:
        fh.write(text + '\n')
    print('wrote', os.path.relpath(path))


if __name__ == '__main__':
    main()
