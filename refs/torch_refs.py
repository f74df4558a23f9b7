"""Reference trajectories from PyTorch for symflow's optimizer tests.

Writes test/refs/lbfgs.json, test/refs/adamwClipCosine.json and test/refs/sgdNesterovGroups.json. Every problem
is deterministic: its data is generated here from fixed seeds and stored in the JSON with the initial parameters,
so a test rebuilds the same problem from the file alone (the tests never run Python). Run with `npm run refs`.

Conventions shared by the files:
  * matrices are nested lists, row-major; a dense kernel has shape [in, out] (Keras' layout: y = x @ W + b),
    not torch.nn.Linear's [out, in] — the models are written by hand with that layout;
  * `steps[k]` is the state AFTER optimizer step k + 1 (k from 0); `init` is the state before the first step;
  * numbers are float64 renderings of the float32 (or float64, where a file says so) torch values.
"""
import json
import math
import os
import shutil
import sys

try:
    import torch
except ImportError:  # a pyenv python3 without torch ahead of Debian's python3-torch on PATH
    system = shutil.which('python3', path='/usr/bin')
    if system and os.path.realpath(system) != os.path.realpath(sys.executable):
        os.execv(system, [system, *sys.argv])
    raise

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'refs')


def tolist(t):
    return t.detach().double().tolist()


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')
    print('wrote', os.path.relpath(path))


# --------------------------------------------------------------------------------------------------------------
# (a) L-BFGS: L2-regularised logistic regression, full batch.
#     loss(w, b) = mean_i softplus(-y_i (x_i . w + b)) + l2/2 * |w|^2,  y_i in {-1, +1}
# --------------------------------------------------------------------------------------------------------------
def logistic_data(dtype):
    g = torch.Generator().manual_seed(13)
    n, d = 60, 6
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    true_w = torch.tensor([1.5, -2.0, 0.5, 3.0, -1.0, 2.5], dtype=torch.float64)
    logits = x @ true_w + 0.3
    # Labels drawn from the model's own probabilities: not separable, so the optimum is finite.
    u = torch.rand(n, generator=g, dtype=torch.float64)
    y = torch.where(u < torch.sigmoid(logits), 1.0, -1.0).to(torch.float64)
    w0 = torch.tensor([0.5, 0.5, -0.5, -1.0, 1.0, 0.0], dtype=torch.float64)
    b0 = torch.tensor([0.0], dtype=torch.float64)
    # Round the data to float32 once, so the float32 graph and a float64 replay see the same numbers.
    x, y, w0, b0 = (t.float().to(dtype) for t in (x, y, w0, b0))
    return x, y, w0, b0


def lbfgs_case(name, options, steps, dtype):
    x, y, w0, b0 = logistic_data(dtype)
    l2 = 0.003
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=options['lr'], max_iter=options['maxIter'], max_eval=options['maxEval'],
                            tolerance_grad=options['tolerance'], tolerance_change=options['toleranceChange'],
                            history_size=options['historySize'],
                            line_search_fn='strong_wolfe' if options['lineSearch'] == 'strongWolfe' else None)

    def loss_fn():
        z = x @ w + b
        return torch.nn.functional.softplus(-y * z).mean() + 0.5 * l2 * (w * w).sum()

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        before = opt.state[w].get('func_evals', 0)
        loss = float(opt.step(closure))
        evals = opt.state[w]['func_evals'] - before
        out.append({'loss': loss, 'evals': evals, 'w': tolist(w), 'b': tolist(b)})
    with torch.no_grad():
        final = float(loss_fn())
    return {'name': name, 'options': options, 'init': {'w': tolist(w0), 'b': tolist(b0)}, 'steps': out,
            'finalLoss': final}, (x, y, l2)


def lbfgs_refs():
    base = {'lr': 1, 'tolerance': 1e-7, 'toleranceChange': 1e-9}
    cases_spec = [
        # One L-BFGS iteration per step: twelve steps that all still make progress.
        ('strongWolfe', 12, {**base, 'historySize': 5, 'maxIter': 1, 'maxEval': 2, 'lineSearch': 'strongWolfe'}),
        # Several iterations per step, capped by maxEval. Four steps only: by the fifth the loss is within float32
        # resolution of the optimum (changes of ~1e-8 on 0.157), where a float32 graph's Armijo test compares
        # rounding noise and no float32 implementation follows the float64 path.
        ('strongWolfeInner', 4, {**base, 'historySize': 4, 'maxIter': 3, 'maxEval': 5, 'lineSearch': 'strongWolfe'}),
        # Trial steps too short for the curvature condition: the line search extrapolates (cubic steps within
        # [t + 0.01·(t − t_prev), 10·t]) before it brackets.
        ('strongWolfeExtrapolate', 12, {**base, 'lr': 0.1, 'historySize': 5, 'maxIter': 1, 'maxEval': 2, 'lineSearch': 'strongWolfe'}),
        # Fixed steps: evaluate, move, evaluate, move (the last iteration moves without evaluating).
        ('none', 12, {**base, 'historySize': 4, 'maxIter': 2, 'maxEval': 3, 'lineSearch': 'none'}),
    ]
    cases = []
    for name, steps, options in cases_spec:
        case, (x, y, l2) = lbfgs_case(name, options, steps, torch.float64)
        case32, _ = lbfgs_case(name, options, steps, torch.float32)
        # How far torch's own float32 run strays from the float64 reference (documents the tolerance).
        dev = 0.0
        for s64, s32 in zip(case['steps'], case32['steps']):
            for a, e in zip(s32['w'] + s32['b'], s64['w'] + s64['b']):
                dev = max(dev, abs(a - e) / max(abs(e), 1e-3))
        case['torchFloat32MaxRelDeviation'] = dev
        cases.append(case)
    write('lbfgs.json', {
        'description': 'torch.optim.LBFGS on L2-regularised logistic regression, full batch; one entry of steps per '
                       'opt.step(closure). loss = mean(softplus(-y*(x@w + b))) + l2/2*sum(w^2). Computed in float64 '
                       'from float32-rounded data and initial values (see dtype).',
        'torch': torch.__version__,
        'dtype': 'float64',
        'problem': {'kind': 'logisticRegression', 'x': tolist(x), 'y': tolist(y), 'l2': l2},
        'cases': cases,
    })


# --------------------------------------------------------------------------------------------------------------
# (b), (c): a 3-4-2 tanh MLP, full-batch MSE.  h = tanh(x @ W1 + b1); pred = h @ W2 + b2;
#           loss = mean over every element of (pred - t)^2
# --------------------------------------------------------------------------------------------------------------
def mlp_problem(seed, target_scale):
    g = torch.Generator().manual_seed(seed)
    n = 16
    x = torch.randn(n, 3, generator=g)
    t = target_scale * torch.stack([torch.sin(x[:, 0] + x[:, 1]), x[:, 2] * x[:, 0]], dim=1)
    params = {
        'W1': 0.5 * torch.randn(3, 4, generator=g),
        'b1': 0.1 * torch.randn(4, generator=g),
        'W2': 0.5 * torch.randn(4, 2, generator=g),
        'b2': 0.1 * torch.randn(2, generator=g),
    }
    return x, t, params


def mlp_loss(x, t, p):
    h = torch.tanh(x @ p['W1'] + p['b1'])
    return ((h @ p['W2'] + p['b2'] - t) ** 2).mean()


ORDER = ['W1', 'b1', 'W2', 'b2']


def adamw_refs():
    x, t, init = mlp_problem(21, 3.0)
    p = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    hp = {'lr': 0.05, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8, 'weightDecay': 0.1, 'clipNorm': 1.0,
          'warmupSteps': 5, 'totalSteps': 20}
    opt = torch.optim.AdamW([p[k] for k in ORDER], lr=hp['lr'], betas=(hp['beta1'], hp['beta2']), eps=hp['eps'],
                            weight_decay=hp['weightDecay'])

    def factor(k):  # k: 0-based step index (LambdaLR's epoch counter before the step)
        if k < hp['warmupSteps']:
            return (k + 1) / hp['warmupSteps']
        return 0.5 * (1 + math.cos(math.pi * (k - hp['warmupSteps']) / (hp['totalSteps'] - hp['warmupSteps'])))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    steps = []
    for k in range(hp['totalSteps']):
        opt.zero_grad()
        loss = mlp_loss(x, t, p)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_([p[n] for n in ORDER], hp['clipNorm']))
        lr = opt.param_groups[0]['lr']
        opt.step()
        sched.step()
        steps.append({'lr': lr, 'loss': float(loss), 'gradNorm': norm, 'clipped': norm > hp['clipNorm'],
                      'params': {n: tolist(p[n]) for n in ORDER}})
    write('adamwClipCosine.json', {
        'description': 'torch.optim.AdamW + clip_grad_norm_(params, clipNorm) + LambdaLR(linear warmup then cosine) '
                       'on a 3-4-2 tanh MLP, full-batch MSE, float32. steps[k]: lr used by step k, loss and '
                       'pre-clip global gradient norm at the parameters step k started from, parameters after it.',
        'torch': torch.__version__,
        'dtype': 'float32',
        'model': 'h = tanh(x @ W1 + b1); pred = h @ W2 + b2; loss = mean((pred - t)^2) over all n*2 elements',
        'paramOrder': ORDER,
        'hyper': hp,
        'lrFactor': 'k < warmupSteps: (k + 1) / warmupSteps; else 0.5 * (1 + cos(pi * (k - warmupSteps) / '
                    '(totalSteps - warmupSteps))); lr_k = lr * factor(k), k = 0-based step index',
        'data': {'x': tolist(x), 't': tolist(t)},
        'init': {n: tolist(init[n]) for n in ORDER},
        'steps': steps,
    })


def sgd_refs():
    x, t, init = mlp_problem(22, 1.0)
    p = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    hp = {'kernelLr': 0.1, 'biasLr': 0.01, 'momentum': 0.9, 'nesterov': True, 'weightDecay': 0, 'steps': 20}
    opt = torch.optim.SGD([{'params': [p['W1'], p['W2']], 'lr': hp['kernelLr']},
                           {'params': [p['b1'], p['b2']], 'lr': hp['biasLr']}],
                          lr=hp['kernelLr'], momentum=hp['momentum'], nesterov=True, weight_decay=0)
    steps = []
    for _ in range(hp['steps']):
        opt.zero_grad()
        loss = mlp_loss(x, t, p)
        loss.backward()
        opt.step()
        steps.append({'loss': float(loss), 'params': {n: tolist(p[n]) for n in ORDER}})
    write('sgdNesterovGroups.json', {
        'description': 'torch.optim.SGD, two param groups (kernels W1, W2 at kernelLr; biases b1, b2 at biasLr), '
                       'momentum, nesterov=True, no weight decay, on a 3-4-2 tanh MLP, full-batch MSE, float32. '
                       'steps[k]: loss at the parameters step k started from, parameters after it.',
        'torch': torch.__version__,
        'dtype': 'float32',
        'model': 'h = tanh(x @ W1 + b1); pred = h @ W2 + b2; loss = mean((pred - t)^2) over all n*2 elements',
        'paramOrder': ORDER,
        'groups': {'kernels': ['W1', 'W2'], 'biases': ['b1', 'b2']},
        'hyper': hp,
        'data': {'x': tolist(x), 't': tolist(t)},
        'init': {n: tolist(init[n]) for n in ORDER},
        'steps': steps,
    })


if __name__ == '__main__':
    torch.set_num_threads(1)
    lbfgs_refs()
    adamw_refs()
    sgd_refs()
