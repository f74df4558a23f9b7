/**
 * @internal For bench/profile.ts only (not exported from the package): onnxruntime-node's native session, called
 * without its JS wrapper, so that the bench can tell the wrapper's cost (a `setImmediate` hop, argument checks, a
 * `Tensor` per output) from the native run's (wrapping each feed's buffer, the run, copying each output into a new
 * ArrayBuffer).
 */
import { createRequire } from 'node:module';
import type ort from 'onnxruntime-node';

interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, null>, options?: object): Record<string, unknown>;
  endProfiling(): string;
  dispose(): void;
}

/** A native onnxruntime session of `bytes` with `options` (as `InferenceSession.create` takes them). */
export function nativeSession(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): {
  run(feeds: Record<string, ort.Tensor>, outputNames: readonly string[]): void;
  /** Ends onnxruntime's profiler (when `enableProfiling`), returning its trace file's path. */
  endProfiling(): string;
  release(): void;
} {
  // The binding onnxruntime-node's own backend loads (dist/binding.js): the same native module, not a second copy.
  const { binding } = createRequire(import.meta.url)('onnxruntime-node/dist/binding.js') as { binding: { InferenceSession: new () => NativeSession } };
  const s = new binding.InferenceSession();
  s.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, options);
  const fetchesOf = new Map<readonly string[], Record<string, null>>();
  return {
    run(feeds, outputNames) {
      let fetches = fetchesOf.get(outputNames);
      if (fetches === undefined) fetchesOf.set(outputNames, (fetches = Object.fromEntries(outputNames.map((n) => [n, null]))));
      s.run(feeds, fetches);
    },
    endProfiling: () => s.endProfiling(),
    release: () => s.dispose(),
  };
}
