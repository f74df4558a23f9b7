// k calls of one compiled function as ONE onnxruntime run: an ONNX Loop whose body is the function's planned graph.
// Each call's feeds are one slice of inputs stacked along a new leading axis, the variables the calls write are
// the Loop's carried values, and each call's results are its scan outputs. What k single runs pay k times — the
// trip through the JS binding with every variable in and every new value out, the thread wake-ups — is paid once.
import type ort from 'onnxruntime-node';
import type onnxProto from 'onnx-proto';
import { SymflowError } from '../../graph/errors.js';
import type { DeviceTensor, ProgramSpec, StepsProgram, StepsSpec } from '../types.js';
import type { TypedArray } from '../../graph/hostValue.js';
import { encodeModel, GraphBuilder, tensorProto, valueInfo } from './builder.js';
import type { OnnxRuntime } from './backend.js';
import { emitBlock } from './emit.js';
import { dropUnreadOutputs, fuseConvBias } from './peephole.js';

type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

const asOrt = (t: DeviceTensor) => t as unknown as ort.Tensor;
const asDevice = (t: ort.Tensor) => t as unknown as DeviceTensor;
const unknownZero = (shape: readonly (number | null)[]) => shape.map((d) => (d === 0 ? null : d));

/**
 * The Loop model of `steps` over the program `spec`, its constants initializers of the outer graph.
 * Names: `k<reg>` a stacked input, outer `s<reg>` a fixed input or a constant, `v<i>` a carried variable's value
 * before the first call; in the body, `s<reg>` every value of one call (a stacked input's slice, a carried value,
 * a node's result), so the body is the one-call program's graph with its names unchanged.
 */
export function stepsModel(spec: ProgramSpec, steps: StepsSpec): Uint8Array {
  const root = new GraphBuilder();
  for (const reg of spec.constants) {
    const n = spec.nodeOfReg(reg);
    root.addInitializer(tensorProto(`s${reg}`, n.dtype, n.shape as number[], n.attrs['value'] as TypedArray));
  }
  const body = root.child();
  const carriedIn = steps.carried.map((c, i) => (c.reg === undefined ? `c${i}` : `s${c.reg}`));
  for (const reg of steps.stacked) body.node('Gather', [`k${reg}`, 'iter'], { axis: 0 }, `s${reg}`);
  emitBlock(body, spec.top, spec, new Map(), true, new Map());
  const condOut = body.node('Identity', ['cond_in'], {}, 'cond_out');
  // A value a body node makes is returned under its own name; an Identity (a copy: 0.1 ms of an MLP step for its
  // weights) only where a value is returned twice or is not made in the body (a carried or outer value).
  const made = new Set(body.nodes.flatMap((n) => n.output ?? []));
  const returned = new Set<string>();
  const out = (reg: number, alias: string) => {
    const v = `s${reg}`;
    if (made.has(v) && !returned.has(v)) {
      returned.add(v);
      return v;
    }
    return body.node('Identity', [v], {}, alias);
  };
  const nextOut = steps.carried.map((c, i) => out(c.next, `n${i}`));
  const scanOut = steps.scanned.map((reg, j) => out(reg, `o${j}`));
  const shapeOf = (v: string) => (/^s\d+$/.test(v) ? spec.nodeOfReg(Number(v.slice(1))).shape : undefined);
  const bodyOutputs = [condOut, ...nextOut, ...scanOut];
  body.replaceNodes(dropUnreadOutputs(fuseConvBias(body.nodes, [], shapeOf), bodyOutputs));
  const dtypeOf = (reg: number) => spec.nodeOfReg(reg).dtype;
  const bodyGraph = body.graph('step', [
    valueInfo('iter', 'int64', []),
    valueInfo('cond_in', 'bool', []),
    ...steps.carried.map((c, i) => valueInfo(carriedIn[i]!, c.dtype, unknownZero(c.shape))),
  ], [
    valueInfo(condOut, 'bool', []),
    ...steps.carried.map((c, i) => valueInfo(nextOut[i]!, c.dtype, unknownZero(c.shape))),
    ...steps.scanned.map((reg, j) => valueInfo(scanOut[j]!, dtypeOf(reg), unknownZero(spec.nodeOfReg(reg).shape))),
  ]);
  const finals = steps.carried.map((_, i) => `final${i}`);
  const scans = steps.scanned.map((_, j) => `scan${j}`);
  root.nodes.push({
    opType: 'Loop', name: 'steps', input: ['trip', '', ...steps.carried.map((_, i) => `v${i}`)], output: [...finals, ...scans],
    attribute: [{ name: 'body', type: 5, g: bodyGraph }],
  });
  const inputs: IValueInfoProto[] = [
    valueInfo('trip', 'int64', []),
    ...steps.stacked.map((reg) => valueInfo(`k${reg}`, dtypeOf(reg), [null, ...unknownZero(spec.nodeOfReg(reg).shape)])),
    ...steps.fixed.map((reg) => valueInfo(`s${reg}`, dtypeOf(reg), unknownZero(spec.nodeOfReg(reg).shape))),
    ...steps.carried.map((c, i) => valueInfo(`v${i}`, c.dtype, unknownZero(c.shape))),
  ];
  // Shapes declared (the ONNX checker wants them on a graph's outputs; k and unknown dimensions left open).
  const outputs = [
    ...steps.carried.map((c, i) => valueInfo(finals[i]!, c.dtype, unknownZero(c.shape))),
    ...steps.scanned.map((reg, j) => valueInfo(scans[j]!, dtypeOf(reg), [null, ...unknownZero(spec.nodeOfReg(reg).shape)])),
  ];
  return encodeModel(root.graph('symflow_steps', inputs, outputs));
}

/** Runs a Loop model made by `stepsModel` in `session`: inputs in the spec's order, k steps. */
export function stepsProgram(runtime: OnnxRuntime, steps: StepsSpec, session: Promise<ort.InferenceSession>, fail: (e: unknown) => SymflowError): StepsProgram {
  const stackedNames = steps.stacked.map((reg) => `k${reg}`);
  const fixedNames = steps.fixed.map((reg) => `s${reg}`);
  const finals = steps.carried.map((_, i) => `final${i}`);
  const scans = steps.scanned.map((_, j) => `scan${j}`);
  return {
    async run(stacked, fixed, carried, k) {
      const s = await session.catch((e: unknown) => {
        throw new SymflowError('onnx', `onnxruntime refused the k-step model: ${e instanceof Error ? e.message : String(e)}`);
      });
      const feeds: Record<string, ort.Tensor> = { trip: new runtime.Tensor('int64', BigInt64Array.of(BigInt(k)), []) };
      stackedNames.forEach((n, i) => (feeds[n] = asOrt(stacked[i]!)));
      fixedNames.forEach((n, i) => (feeds[n] = asOrt(fixed[i]!)));
      carried.forEach((t, i) => (feeds[`v${i}`] = asOrt(t)));
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await s.run(feeds, [...finals, ...scans]);
      } catch (e) {
        throw fail(e);
      }
      return { carried: finals.map((n) => asDevice(out[n]!)), scanned: scans.map((n) => asDevice(out[n]!)) };
    },
  };
}
