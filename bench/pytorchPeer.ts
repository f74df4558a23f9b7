// The bench's PyTorch peer: the same SGD step (the MLP, or the mnist_cnn model) in a Python process that stays alive and times blocks of steps
// on request, so the bench can alternate blocks of PyTorch and symflow steps and a slow spell of a shared VM hits
// both alike (a separate run each measured 2 ms and 93 ms for the same PyTorch setting minutes apart).
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';

/** The peer's model: the bench MLP, or Keras' mnist_cnn (NCHW, PyTorch's own layout). */
export type PeerModel = 'mlp' | 'cnn';

const MODELS: Record<PeerModel, (batch: number, sizes: readonly number[]) => string> = {
  mlp: (batch, sizes) => `
sizes=${JSON.stringify(sizes)}
layers=[torch.nn.Linear(sizes[i],sizes[i+1]) for i in range(3)]
model=torch.nn.Sequential(layers[0],torch.nn.ReLU(),layers[1],torch.nn.ReLU(),layers[2])
x=torch.rand(${batch},sizes[0]); y=torch.arange(${batch})%sizes[-1]`,
  cnn: (batch) => `
N=torch.nn
model=N.Sequential(N.Conv2d(1,32,3),N.ReLU(),N.Conv2d(32,64,3),N.ReLU(),N.MaxPool2d(2),N.Dropout(0.25),N.Flatten(),N.Linear(9216,128),N.ReLU(),N.Dropout(0.5),N.Linear(128,10))
model.train()
x=torch.rand(${batch},1,28,28); y=torch.arange(${batch})%10`,
};

const script = (threads: number, batch: number, kind: PeerModel, sizes: readonly number[]) => `
import json, sys, time, torch
torch.manual_seed(0)
torch.set_num_threads(${threads})
${MODELS[kind](batch, sizes)}
opt=torch.optim.SGD(model.parameters(),lr=0.01)
loss_fn=torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(); l=loss_fn(model(x),y); l.backward(); opt.step(); return l.item()
for _ in range(10): step()
# Which BLAS the dynamic linker gave torch (Debian's libblas.so.3 may be the reference BLAS, about 20x slower here).
try: blas=next(l.split()[-1] for l in open('/proc/self/maps') if 'libblas' in l or 'openblas' in l).split('/')[-2]
except Exception: blas='unknown'
print(json.dumps({'version': torch.__version__, 'threads': torch.get_num_threads(), 'blas': blas}), flush=True)
for line in sys.stdin:
    ts=[]
    for _ in range(int(line)):
        t=time.perf_counter(); step(); ts.append((time.perf_counter()-t)*1000)
    print(json.dumps(ts), flush=True)
`;

/** A live PyTorch process: `steps(n)` times n more steps, in ms each. */
export interface PytorchPeer {
  readonly threads: number;
  /** Version, thread count and BLAS as the process reports them. */
  readonly about: string;
  steps(n: number): Promise<number[]>;
  close(): void;
}

function python(): string | undefined {
  return ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
}

/**
 * Starts the peer with `threads` intra-op threads (OpenMP and OpenBLAS pinned to the same count), warmed up.
 * `sizes`: the MLP's layer widths (three Linear layers, ReLU between them).
 * @returns the peer, or why there is none (no `import torch` here)
 */
export async function startPytorch(threads: number, batch: number, kind: PeerModel = 'mlp', sizes: readonly number[] = [784, 256, 256, 10]): Promise<PytorchPeer | { why: string }> {
  const exe = python();
  if (exe === undefined) return { why: "skipped: `python3 -c 'import torch'` fails here (install python3-torch to include it)" };
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE pin old OpenBLAS kernels on some machines here; unset both for the peer.
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env['OPENBLAS_CORETYPE'];
  delete env['OPENBLAS_L2_SIZE'];
  const child: ChildProcessWithoutNullStreams = spawn(exe, ['-c', script(threads, batch, kind, sizes)], { env });
  child.stderr.pipe(process.stderr);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`the PyTorch peer (${threads} threads) exited with ${child.exitCode}`);
    return JSON.parse(r.value) as unknown;
  };
  const info = (await next()) as { version: string; threads: number; blas: string };
  return {
    threads,
    about: `PyTorch ${info.version}, torch.get_num_threads() = ${info.threads}, BLAS ${info.blas}`,
    async steps(n) {
      child.stdin.write(`${n}\n`);
      return (await next()) as number[];
    },
    close: () => child.stdin.end(),
  };
}
