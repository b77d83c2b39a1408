// The examples that check their own outcome, run as a user runs them (a
// child process with KAFKA_BROKERS) against the suite's broker: each exits
// 0 only when what it demonstrates happened (every payment handled or
// dead-lettered as planned; nothing lost or dead-lettered through the
// outage; the restart after SIGTERM starting at the committed offsets and
// handling nothing twice; every order done). An example that no longer
// compiles or runs fails here too. The demo has its own test (demo.test.ts).
//
// pipeline.ts, rate-limited-producer.ts and lag-monitor-service.ts print
// what happened but check nothing themselves (the last is tested in
// lag-service.test.ts).

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { brokers } from '../helpers/kafka.js';

const ROOT = resolve(import.meta.dirname, '../..');

function runExample(
  file: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
      cwd: ROOT,
      env: { ...process.env, KAFKA_BROKERS: brokers().join(','), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on(
      'data',
      (chunk: Buffer) => (output = (output + chunk.toString()).slice(-40_000)),
    );
    child.stderr.on(
      'data',
      (chunk: Buffer) => (output = (output + chunk.toString()).slice(-40_000)),
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, output });
    });
  });
}

const EXAMPLES: readonly { file: string; args?: readonly string[]; timeoutMs: number }[] = [
  { file: 'examples/dlq-and-retries.ts', timeoutMs: 90_000 },
  { file: 'examples/graceful-shutdown.ts', timeoutMs: 90_000 },
  { file: 'examples/basic-consumer.ts', timeoutMs: 110_000 },
  { file: 'examples/circuit-breaker-http.ts', timeoutMs: 110_000 },
];

describe('examples', () => {
  for (const { file, args = [], timeoutMs } of EXAMPLES) {
    it(`${file} exits 0`, { timeout: timeoutMs + 10_000 }, async () => {
      const result = await runExample(file, args, timeoutMs);
      expect(
        { code: result.code, signal: result.signal },
        `${file} failed; its last output:\n${result.output.slice(-6000)}`,
      ).toEqual({ code: 0, signal: null });
    });
  }
});
