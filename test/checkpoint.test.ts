import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Session, adam, checkpointEvery, compile, fit, layers, mean, placeholder, sparseSoftmaxCrossEntropy, variable,
} from '../src/index.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/session/checkpoint.js';
import { BACKENDS } from './helpers.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'symflow-ckpt-'));
const fixture = (name: string) => join(__dirname, 'fixtures', name);
const tsx = (script: string, args: string[]) => run(process.execPath, ['--import', 'tsx', fixture(script), ...args], { cwd: join(__dirname, '..'), maxBuffer: 64 * 2 ** 20 });

function model(session: Session, prefix: string) {
  const x = placeholder([null, 4]);
  const y = placeholder([null], { dtype: 'int32' });
  const h = layers.dense(x, 6, { activation: 'tanh', seed: 3, name: `${prefix}/h` });
  const loss = mean(sparseSoftmaxCrossEntropy(layers.dense(h, 3, { seed: 4, name: `${prefix}/out` }), y));
  const train = compile(adam({ lr: 0.05 }), session, { loss, inputs: [x, y] });
  const batch = (i: number) => [
    Array.from({ length: 5 }, (_, r) => Array.from({ length: 4 }, (_, c) => Math.cos(i * 13 + r * 5 + c))),
    Array.from({ length: 5 }, (_, r) => (i + 2 * r) % 3),
  ];
  return { train, batch };
}

async function bits(session: Session): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of session.variables) out[v.name] = Buffer.from((await session.getValue(v)).data.buffer).toString('hex');
  return out;
}

describe.each(BACKENDS)('checkpoints on %s', (backend) => {
  let s: Session;
  beforeAll(async () => {
    s = await Session.create({ backend });
  });
  afterAll(() => s.dispose());

  it('save and restore cover parameters and optimizer state, bit for bit', async () => {
    const { train, batch } = model(s, `rt_${backend}`);
    for (let i = 0; i < 4; i++) await train.step(batch(i));
    const path = join(dir, `rt_${backend}.ckpt`);
    await s.save(path);
    const saved = await bits(s);
    expect(Object.keys(saved).some((n) => n.startsWith('adam/m/'))).toBe(true);
    expect(Object.keys(saved).some((n) => /^adam\/iterations/.test(n))).toBe(true);
    for (let i = 4; i < 7; i++) await train.step(batch(i));
    expect(await bits(s)).not.toEqual(saved);
    await s.restore(path);
    expect(await bits(s)).toEqual(saved);
  });

  it('refuses a checkpoint of another graph, a corrupt or truncated one, and changes nothing', async () => {
    const other = await Session.create({ backend });
    const a = variable([1, 2, 3], { name: `shape_a_${backend}` });
    await other.getValue(a);
    const path = join(dir, `other_${backend}.ckpt`);
    await other.save(path);
    // Another graph: the same name with another shape, and a variable the file lacks.
    const b = variable([[1, 2, 3]], { name: `shape_b_${backend}` });
    const s2 = await Session.create({ backend });
    await s2.getValue(b);
    const before = await bits(s2);
    await expect(s2.restore(path)).rejects.toThrow(/does not match this graph: 1 variable\(s\) of this session are not in the file: '.*'; the file has 1 variable\(s\) this session does not: '.*'/);
    await expect(s2.restore(path, { variables: [a] })).resolves.toEqual({}); // no meta in a plain save
    expect(await bits(s2)).toEqual({ ...before, [a.name]: Buffer.from(Float32Array.of(1, 2, 3).buffer).toString('hex') });
    const bytes = readFileSync(path);
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length - 40]! ^= 0x01;
    writeFileSync(join(dir, 'corrupt.ckpt'), corrupt);
    writeFileSync(join(dir, 'truncated.ckpt'), bytes.subarray(0, bytes.length - 7));
    await expect(other.restore(join(dir, 'corrupt.ckpt'))).rejects.toThrow('checksum mismatch');
    await expect(other.restore(join(dir, 'truncated.ckpt'))).rejects.toThrow(/checksum mismatch|truncated/);
    await expect(other.restore(join(dir, 'missing.ckpt'))).rejects.toThrow('no such file');
    expect(Array.from((await other.getValue(a)).data)).toEqual([1, 2, 3]);
    other.dispose();
    s2.dispose();
  });
});

describe('the checkpoint format treats files as hostile', () => {
  const good = () => encodeCheckpoint([{ name: 'w', value: { shape: [2], dtype: 'float32', data: Float32Array.of(1, 2) } }]);
  /** Rewrites the header JSON and re-seals the file with a valid checksum (what a crafted file would do). */
  const craft = (edit: (h: { format: string; variables: Record<string, unknown>[] }) => unknown, extraData = 0) => {
    const entries = decodeCheckpoint(good());
    const bytes = encodeCheckpoint(entries);
    const view = new DataView(bytes.buffer);
    const headerLen = view.getUint32(12, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLen)));
    const json = new TextEncoder().encode(JSON.stringify(edit(header) ?? header));
    const data = bytes.subarray(16 + headerLen, bytes.length - 32);
    const out = new Uint8Array(16 + json.length + data.length + extraData + 32);
    out.set(bytes.subarray(0, 16));
    new DataView(out.buffer).setUint32(12, json.length, true);
    out.set(json, 16);
    out.set(data, 16 + json.length);
    out.set(createHash('sha256').update(out.subarray(0, out.length - 32)).digest(), out.length - 32);
    return out;
  };

  it('round-trips, and refuses bad magic, versions, and claims larger than the file', () => {
    expect(Array.from(decodeCheckpoint(good())[0]!.value.data)).toEqual([1, 2]);
    expect(() => decodeCheckpoint(new TextEncoder().encode('not a checkpoint at all, just text........................'))).toThrow('bad magic');
    const v2 = good();
    new DataView(v2.buffer).setUint32(8, 2, true);
    expect(() => decodeCheckpoint(v2)).toThrow('unsupported version 2');
    const started = performance.now();
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['shape'] = [1_000_000, 1_000_000]; }))).toThrow(/claims shape \[1000000,1000000\], more data than the file holds/);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['bytes'] = 4000; }))).toThrow(/inconsistent with its shape/);
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['offset'] = 8; }))).toThrow(/inconsistent|invalid offset/);
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['dtype'] = 'float64'; }))).toThrow('unknown dtype');
    // Any name a variable may have is valid (spaces, quotes, '/', ';' …); control characters, '' and overlong ones are not.
    expect(decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = 'a b; rm -rf /'; }))[0]!.name).toBe('a b; rm -rf /');
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = 'a\u001b[2Jb'; }))).toThrow('invalid name "a\\u001b[2Jb"');
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = ''; }))).toThrow('invalid name ""');
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = 'n'.repeat(4097); }))).toThrow('invalid name "nnnn');
    expect(() => decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = 7; }))).toThrow('invalid name "7"');
    expect(() => decodeCheckpoint(craft((h) => { h.variables.push({ ...h.variables[0] }); }))).toThrow('appears twice');
    expect(() => decodeCheckpoint(craft(() => ({ format: 'symflow-checkpoint', variables: 'nope' })))).toThrow('malformed header');
  });

  it('a __proto__ entry pollutes nothing', () => {
    const entries = decodeCheckpoint(craft((h) => { h.variables[0]!['name'] = '__proto__'; }));
    expect(entries[0]!.name).toBe('__proto__');
    expect(({} as Record<string, unknown>)['shape']).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });
});

describe('checkpoints survive crashes and resume bit-identically in a new process', () => {
  it('killing the process during a save never corrupts the previous checkpoint', async () => {
    const path = join(dir, 'crash.ckpt');
    for (const delay of [30, 120, 260]) {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture('saveLoop.ts'), path, String(4_000_000)], { cwd: join(__dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const entries = decodeCheckpoint(new Uint8Array(readFileSync(path)), path);
      const data = entries[0]!.value.data;
      expect(data.length).toBe(4_000_000);
      // Every element holds the value of one whole save: never a mix of two.
      expect(data.every((v) => v === data[0])).toBe(true);
    }
    // The only files left are the checkpoint and, perhaps, temp files of the killed saves (never the target).
    expect(readdirSync(dir).filter((f) => f.startsWith('crash')).sort()).toEqual(['crash.ckpt']);
  }, 120_000);

  it.each(BACKENDS)('train k steps, save, restore in a new process, train m more = k+m without a break (%s)', async (backend) => {
    const path = join(dir, `resume_${backend}.ckpt`);
    const straight = await tsx('resume.ts', ['straight', backend, '3', '4', path]);
    await tsx('resume.ts', ['first', backend, '3', '4', path]);
    const resumed = await tsx('resume.ts', ['resume', backend, '3', '4', path]);
    const a = JSON.parse(straight.stdout.trim().split('\n').pop()!);
    const b = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
    expect(Object.keys(a).length).toBeGreaterThan(5);
    expect(b).toEqual(a);
  }, 120_000);
});

describe.each(BACKENDS)('checkpointEvery on %s', (backend) => {
  it('saves every n steps at the step boundary and completes after the last save', async () => {
    const s = await Session.create({ backend });
    const { train, batch } = model(s, `every_${backend}`);
    const path = join(dir, `every_${backend}.ckpt`);
    const xs = Array.from({ length: 10 }, (_, i) => batch(i));
    const data = [xs.flatMap((b) => b[0] as number[][]).slice(0, 45), xs.flatMap((b) => b[1] as number[]).slice(0, 45)];
    await lastValueFrom(fit(train, data, { batchSize: 5, shuffle: false }).pipe(checkpointEvery(4, path)));
    // 9 steps: checkpoints after steps 4 and 8; the file holds the state after step 8, not the final one.
    const after = await bits(s);
    const entries = decodeCheckpoint(new Uint8Array(readFileSync(path)), path);
    const iterations = entries.find((e) => /^adam\/iterations/.test(e.name))!;
    expect(Array.from(iterations.value.data)).toEqual([8]);
    expect(entries.map((e) => e.name).sort()).toEqual(Object.keys(after).sort());
    const kernel = entries.find((e) => e.name.startsWith(`every_${backend}/h/kernel`))!;
    expect(Buffer.from(kernel.value.data.buffer).toString('hex')).not.toEqual(after[kernel.name]);
    // Restoring it and taking step 9 again lands exactly on the final state.
    await s.restore(path);
    await train.step([data[0]!.slice(40, 45), data[1]!.slice(40, 45)]);
    expect(await bits(s)).toEqual(after);
    s.dispose();
  });
});

describe('saves land in call order', () => {
  it('a later save is never overwritten by an earlier one still writing', async () => {
    const s = await Session.create({ backend: 'cpu' });
    const big = variable(new Float32Array(2_000_000), { name: 'order_big', shape: [2_000_000] });
    const small = variable(0, { name: 'order_small' });
    const path = join(dir, 'order.ckpt');
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 6; i++) {
      await s.setValue(small, i);
      if (i % 2 === 0) await s.setValue(big, { shape: [2_000_000], data: new Float32Array(2_000_000).fill(i) });
      saves.push(s.save(path, { variables: [big, small] }));
    }
    await Promise.all(saves);
    const entries = decodeCheckpoint(new Uint8Array(readFileSync(path)), path);
    expect(Array.from(entries.find((e) => e.name === small.name)!.value.data)).toEqual([6]);
    s.dispose();
  });
});
