import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Session } from '../src/index.js';

const run = promisify(execFile);

// onnxruntime logs from native code, straight to fd 2: only a child process shows what a user's terminal gets.
async function failingRun(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'onnxFailure.ts'), ...args], { cwd: join(__dirname, '..') });
}

describe('onnxruntime log lines', () => {
  it('a failing onnx run prints no [E:onnxruntime:…] line by default; the error carries the message', async () => {
    const { stdout, stderr } = await failingRun();
    expect(stdout).toMatch(/^reshape: failed at node 'reshape[^']*' on backend onnx: .*Input shape:\{3\}, requested shape:\{2,2\}/);
    expect(stderr).not.toContain('onnxruntime');
  });

  it("onnxLogs: 'error' turns them back on", async () => {
    const { stdout, stderr } = await failingRun('error');
    expect(stdout).toMatch(/^reshape: failed at node/);
    expect(stderr).toMatch(/\[E:onnxruntime:.*Reshape node\. Name:'reshape[^']*#\d+'/);
  });

  it('onnxLogs is validated', async () => {
    await expect(Session.create({ backend: 'onnx', onnxLogs: 'loud' as never })).rejects.toThrow(
      /Session\.create: onnxLogs must be one of 'verbose', 'info', 'warning', 'error', 'fatal', got "loud"/,
    );
  });
});
