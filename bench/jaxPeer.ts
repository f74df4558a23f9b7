// The bench's jax-js peer: the same MLP SGD step (784-256-256-10, relu, relu, softmax cross-entropy over int labels,
// mean; params ← params − lr·grad) written with @jax-js/jax (`valueAndGrad` under `jit`, compiled to Wasm kernels),
// on its wasm device. Initial weights are a fixed deterministic pattern, not symflow's (only time is compared).
//
// NOTE: jax-js dispatches its wasm kernels to a worker pool only when `SharedArrayBuffer` and a global `Worker`
// exist; Node has no global `Worker`, so here jax-js wasm runs on one thread (as TF.js wasm does under Node).

import type { Array as JaxArray } from '@jax-js/jax';

/** A ready jax-js step: `step()` runs one SGD step and resolves once its results are on the host. */
export interface JaxPeer {
  readonly about: string;
  step(): Promise<void>;
  dispose(): void;
}

/**
 * Builds the jax-js MLP step over one batch (`xs` rows of 784, `ys` labels), runs it once (trace and compile).
 * @returns the peer, or why there is none (the package does not load or the wasm device does not start)
 */
export async function startJax(sizes: readonly number[], xs: Float32Array, ys: Int32Array, lr: number): Promise<JaxPeer | { why: string }> {
  let jax: typeof import('@jax-js/jax');
  try {
    jax = await import('@jax-js/jax');
  } catch (e) {
    return { why: `not runnable: import failed (${(e as Error).message.split('\n')[0]})` };
  }
  const { init, defaultDevice, jit, valueAndGrad, nn, numpy: np, blockUntilReady } = jax;
  try {
    const devices = await init('wasm');
    if (!devices.includes('wasm')) return { why: `not runnable: init('wasm') gave [${devices.join(', ')}]` };
    defaultDevice('wasm');
    const rows = ys.length;
    type Params = JaxArray[];
    // w0 b0 w1 b1 w2 b2, a fixed pattern of scale ~1/sqrt(fan-in).
    let params: Params = [];
    for (let i = 0; i + 1 < sizes.length; i++) {
      const [fanIn, fanOut] = [sizes[i]!, sizes[i + 1]!];
      const w = new Float32Array(fanIn * fanOut).map((_, k) => ((((k * 2654435761) >>> 0) % 2001) / 1000 - 1) / Math.sqrt(fanIn));
      params.push(np.array(w).reshape([fanIn, fanOut]), np.zeros([fanOut]));
    }
    const x = np.array(xs).reshape([rows, sizes[0]!]);
    const y = np.array(ys, { dtype: np.int32 });
    // Every argument is consumed exactly once (jax-js' ownership rules).
    const lossFn = (p: Params, xb: JaxArray, yb: JaxArray): JaxArray => {
      let h = xb;
      const layers = p.length / 2;
      for (let i = 0; i < layers; i++) {
        h = np.matmul(h, p[2 * i]!).add(p[2 * i + 1]!);
        if (i < layers - 1) h = nn.relu(h);
      }
      return nn.logSoftmax(h, -1).mul(nn.oneHot(yb, sizes[sizes.length - 1]!)).sum(-1).mean().neg();
    };
    const stepFn = jit((p: Params, xb: JaxArray, yb: JaxArray): [JaxArray, Params] => {
      const [loss, g] = valueAndGrad(lossFn)(p.map((a) => a.ref), xb, yb);
      return [loss, p.map((a, i) => a.sub(g[i]!.mul(lr)))];
    });
    const step = async () => {
      const [loss, next] = stepFn(params, x.ref, y.ref);
      params = next;
      // Wait for every output (the loss and all updated parameters), then read the loss to the host.
      await blockUntilReady([loss, ...params]);
      const l = (await loss.data())[0]!;
      if (!Number.isFinite(l)) throw new Error(`jax-js step: loss ${l}`);
    };
    await step();
    return {
      about: `@jax-js/jax wasm, jit(valueAndGrad), 1 thread in Node (no global Worker)`,
      step,
      dispose: () => { stepFn.dispose(); x.dispose(); y.dispose(); params.forEach((a) => a.dispose()); },
    };
  } catch (e) {
    return { why: `not runnable: ${(e as Error).message.split('\n')[0]}` };
  }
}
