// Busy neighbours for the bench's `busy` section: child processes that spin one core each (`for(;;){}`), killed
// for sure afterwards (on return, on error, and on the bench's exit).
import { type ChildProcess, spawn } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

/** Starts `n` spinning node processes and resolves once each of them is running its loop. */
async function startSpinners(n: number): Promise<ChildProcess[]> {
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
  }
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const c = spawn(process.execPath, ['-e', "process.stdout.write('r'); for(;;){}"], { stdio: ['ignore', 'pipe', 'inherit'] });
    live.add(c);
    children.push(c);
  }
  await Promise.all(children.map((c) => new Promise<void>((resolve, reject) => {
    c.stdout!.once('data', () => resolve());
    c.once('error', reject);
    c.once('exit', (code) => reject(new Error(`busy neighbour exited with ${code}`)));
  })));
  return children;
}

/** Runs `f` with `n` spinning neighbours alive (none when n is 0); they are killed when `f` settles. */
export async function withNeighbours<T>(n: number, f: () => Promise<T>): Promise<T> {
  const mine: ChildProcess[] = [];
  try {
    if (n > 0) mine.push(...(await startSpinners(n)));
    // Let the scheduler see them spinning before the clock starts.
    if (n > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    return await f();
  } finally {
    for (const c of mine) { c.kill('SIGKILL'); live.delete(c); }
    await Promise.all(mine.map((c) => c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((resolve) => c.once('exit', resolve))));
  }
}
