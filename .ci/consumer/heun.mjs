// Runs in a fresh project that installed the packed symflow: one heun step (two runs, and fused into one) on a
// quadratic, on each backend named in argv, checked against the step worked out by hand.
//   node heun.mjs onnx wasm     each must be the backend that runs, and give the hand-computed step
//   node heun.mjs --no-onnx     onnxruntime-node is absent: 'auto' must fall back to wasm, 'onnx' must say why
import { Session, compile, heun, mul, placeholder, square, sum, variable } from 'symflow';

// L(p) = ½ Σ aᵢ pᵢ², a fed as a batch: k = −a·p. With p₀ = [1, 2], a = [1, 4], lr = 0.1:
// k₁ = [−1, −8], p₁ = p₀ + lr·k₁ = [0.9, 1.2], k₂ = [−0.9, −4.8], p = p₀ + lr·(k₁ + k₂)/2 = [0.905, 1.36].
const EXPECTED = [0.905, 1.36];

async function heunStep(backend, fused) {
  const session = await Session.create({ backend });
  const a = placeholder([2], { name: 'a' });
  const p = variable([1, 2], { name: 'p' });
  const train = compile(heun({ lr: 0.1, fused }), session, { loss: mul(0.5, sum(mul(a, square(p)))), inputs: [a] });
  const r = await train.step([[1, 4]]);
  const got = Array.from((await session.getValue(p)).data);
  session.dispose();
  const ok = r.loss === 8.5 && r.runs === (fused ? 1 : 2) && got.every((v, i) => Math.abs(v - EXPECTED[i]) <= 1e-6);
  const what = `${backend === 'auto' ? 'auto → ' : ''}${session.backend}${fused ? ' fused' : ''}: loss ${r.loss}, ${r.runs} run(s), p = [${got.join(', ')}]`;
  if (!ok) throw new Error(`heun step on ${what}; expected loss 8.5 and p = [${EXPECTED.join(', ')}]`);
  // 'auto' in a project with onnxruntime-node and without tfjs-node must pick onnx.
  const wanted = backend === 'auto' && process.argv[2] !== '--no-onnx' ? 'onnx' : backend;
  if (wanted !== 'auto' && session.backend !== wanted) throw new Error(`asked for ${backend}, got ${session.backend}`);
  console.log(`  heun step on ${what}`);
  return session.backend;
}

if (process.argv[2] === '--no-onnx') {
  const picked = await heunStep('auto', false);
  if (picked !== 'wasm') throw new Error(`'auto' without onnxruntime-node picked ${picked}, not wasm`);
  const refused = await Session.create({ backend: 'onnx' }).then(() => 'created', (e) => e.message);
  if (!/onnxruntime-node is not installed.*`ONNXRUNTIME_NODE_INSTALL=skip npm install`/.test(refused)) {
    throw new Error(`backend 'onnx' without onnxruntime-node: ${refused}`);
  }
  console.log(`  'auto' fell back to wasm; 'onnx' refused: ${refused}`);
} else {
  for (const backend of process.argv.slice(2)) for (const fused of [false, true]) await heunStep(backend, fused);
}
