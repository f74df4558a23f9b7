/**
 * Dropout's mask draw (random.ts `drawMask`) as a WebAssembly SIMD loop: four lowbias32 hashes per instruction
 * instead of one. The draw runs on the host before every training run and was most of dropout's cost on the
 * onnx backend (two [128, 256] masks took ~0.25 ms of a ~1.7 ms MLP step). It computes exactly what the scalar
 * loop computes, bit for bit (test/randomMask.test.ts compares them): every operation is a 32-bit integer one.
 * Built from its bytes here (a few hundred, no file to load); where WebAssembly SIMD is missing the scalar loop runs.
 */

/** Signed LEB128, as i32.const takes its immediate. */
function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const uleb = (v: number): number[] => (v < 0x80 ? [v] : [(v & 0x7f) | 0x80, ...uleb(v >>> 7)]);
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

// The instructions used (core opcodes, and SIMD ones after the 0xfd prefix).
const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i], tee = (i: number) => [0x22, i];
const i32 = (v: number) => [0x41, ...sleb(v)];
const simd = (op: number) => [0xfd, ...uleb(op)];
const [splat, xor, and, shrS, shrU, add, sub, mul] = [0x11, 0x51, 0x4e, 0xac, 0xad, 0xae, 0xb1, 0xb5].map((op) => simd(op));

// mask(n, k0, k1, threshold, valueBits): writes n int32 at address 0 (rounded up to whole vectors): element i is
// valueBits where lowbias32(i·k0 + k1) >>> 8 < threshold, else 0 — random.ts's scalar loop, four lanes at a time.
// Params 0–4; locals: 5 byte offset, 6 end, 7 x (the four hash inputs), 8 their step, 9 h, 10–13 splatted constants.
const [N, K0, K1, THR, VB, I, END, X, STEP, H, C1, C2, VTHR, VVB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const lanes = [0, 1, 2, 3].flatMap((v) => [v, 0, 0, 0]);
const body = [
  ...vec([[2, 0x7f], [7, 0x7b]]), // 2 i32 locals, 7 v128 locals
  ...get(N), ...i32(2), 0x74, ...set(END), // end = n·4 bytes
  ...get(K0), ...i32(2), 0x74, ...splat, ...set(STEP), // 4·k0 in each lane
  ...get(K1), ...splat, ...get(K0), ...splat, ...simd(0x0c), ...lanes, ...mul, ...add, ...set(X), // k1 + (0..3)·k0
  ...i32(0x7feb352d), ...splat, ...set(C1), ...i32(0x846ca68b | 0), ...splat, ...set(C2),
  ...get(THR), ...splat, ...set(VTHR), ...get(VB), ...splat, ...set(VVB),
  0x02, 0x40, 0x03, 0x40, // block, loop
  ...get(I), ...get(END), 0x4f, 0x0d, 1, // i ≥ end: out
  ...get(I), // the store's address
  ...get(X), ...get(X), ...i32(16), ...shrU, ...xor, // h = x ^ x >>> 16
  ...get(C1), ...mul, ...tee(H), ...get(H), ...i32(15), ...shrU, ...xor, // h = imul(h, C1); h ^= h >>> 15
  ...get(C2), ...mul, ...tee(H), ...get(H), ...i32(16), ...shrU, ...xor, // h = imul(h, C2); h ^= h >>> 16
  ...i32(8), ...shrU, ...get(VTHR), ...sub, ...i32(31), ...shrS, ...get(VVB), ...and, // (h >>> 8) − t < 0 ? v : 0
  ...simd(0x0b), 4, 0, // v128.store align 16, offset 0
  ...get(X), ...get(STEP), ...add, ...set(X),
  ...get(I), ...i32(16), 0x6a, ...set(I),
  0x0c, 0, 0x0b, 0x0b, // br loop; end loop; end block
  0x0b,
];
const BYTES = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vec([[0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]])),
  ...section(3, vec([[0]])),
  ...section(5, vec([[0, 1]])),
  ...section(7, vec([[...name('mem'), 2, 0], [...name('mask'), 0, 0]])),
  ...section(10, vec([[...uleb(body.length), ...body]])),
]);

interface MaskModule {
  mem: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  mask: (n: number, k0: number, k1: number, threshold: number, valueBits: number) => void;
}

// The few pieces of the WebAssembly API used (this project's TypeScript lib has no DOM types, which declare it).
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let instance: MaskModule | null | undefined;

/** The compiled module, or null where WebAssembly SIMD is not available (compiled once, on first use). */
function maskModule(): MaskModule | null {
  if (instance !== undefined) return instance;
  try {
    instance = wasm?.validate(BYTES) ? (new wasm.Instance(new wasm.Module(BYTES)).exports as MaskModule) : null;
  } catch {
    instance = null;
  }
  return instance;
}

// The elements drawn per call: the module's memory grows to one chunk (256 KiB) and no further, as WebAssembly
// memory never shrinks; a larger mask is drawn chunk by chunk.
const CHUNK = 65536;

/**
 * Fills `out` (as int32 bit patterns) with `valueBits` where element i's 24 hash bits are below `threshold`, else 0.
 * @returns false where WebAssembly SIMD is missing (nothing written: the caller runs the scalar loop)
 */
export function maskSimd(out: Int32Array, k0: number, k1: number, threshold: number, valueBits: number): boolean {
  const m = maskModule();
  if (m === null) return false;
  const missing = Math.ceil(((Math.min(out.length, CHUNK) + 3) * 4 - m.mem.buffer.byteLength) / 65536);
  if (missing > 0) m.mem.grow(missing);
  for (let start = 0; start < out.length; start += CHUNK) {
    const n = Math.min(CHUNK, out.length - start);
    // Element start + j hashes (start + j)·k0 + k1 = j·k0 + (start·k0 + k1): the chunk's own k1.
    m.mask(n, k0, (Math.imul(start, k0) + k1) | 0, threshold, valueBits);
    out.set(new Int32Array(m.mem.buffer, 0, n), start);
  }
  return true;
}
