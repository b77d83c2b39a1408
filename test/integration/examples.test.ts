// The examples that check their own outcome, run as a user runs them (a
// child process with KAFKA_BROKERS) against the suite's broker: each exits
// 0 only when what it demonstrates happened (every payment handled or
// dead-lettered as planned; nothing lost or dead-lettered through the
// outage; the restart after SIGTERM starting at the committed offsets and
// handling nothing twice; every order done). An example that no longer
// compiles or runs fails here too. The demo has its own test (demo.test.ts).
//
// The examples with a `--ci` mode also end with one JSON line of counts,
// and the test checks those as well, so an example that stopped checking
// itself (or stopped printing) still fails here.

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { brokers } from '../helpers/kafka.js';

const ROOT = resolve(import.meta.dirname, '../..');

function runExample(
  file: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  stdout: string;
}> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
      cwd: ROOT,
      env: { ...process.env, KAFKA_BROKERS: brokers().join(','), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-40_000);
      stdout = (stdout + chunk.toString()).slice(-40_000);
    });
    child.stderr.on(
      'data',
      (chunk: Buffer) => (output = (output + chunk.toString()).slice(-40_000)),
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, output, stdout });
    });
  });
}

/** The last non-empty line of stdout, parsed as JSON. */
function lastJsonLine(stdout: string): Record<string, unknown> {
  const line = stdout.trimEnd().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

const EXAMPLES: readonly {
  file: string;
  args?: readonly string[];
  timeoutMs: number;
  /** What the JSON line of a `--ci` run must hold. */
  summary?: (summary: Record<string, unknown>) => void;
}[] = [
  { file: 'examples/dlq-and-retries.ts', timeoutMs: 90_000 },
  { file: 'examples/graceful-shutdown.ts', timeoutMs: 90_000 },
  {
    // Every valid order is one row, whatever the duplicates; the invalid ones dead-lettered alone.
    file: 'examples/bulk-insert.ts',
    args: ['--ci'],
    timeoutMs: 90_000,
    summary: (s) => {
      expect(s['rows']).toBe(4997);
      expect(s['deadLettered']).toBe(3);
      // Batches, not a call per message.
      expect(s['calls']).toBeLessThan(100);
    },
  },
  { file: 'examples/basic-consumer.ts', timeoutMs: 110_000 },
  { file: 'examples/circuit-breaker-http.ts', timeoutMs: 110_000 },
  {
    // Every event crosses both stages; stage 1 paused for stage 2's lag.
    file: 'examples/pipeline.ts',
    args: ['--ci'],
    timeoutMs: 110_000,
    summary: (s) => {
      expect(s['distinct']).toBe(1000);
      expect(s['events']).toBe(1000);
      expect(s['indexed']).toBeGreaterThanOrEqual(1000);
      expect(s['pauses']).toBeGreaterThanOrEqual(1);
    },
  },
  {
    // The producer followed the lag signal; every acknowledged send arrived.
    file: 'examples/rate-limited-producer.ts',
    args: ['--ci'],
    timeoutMs: 150_000,
    summary: (s) => {
      expect(s['slowed']).toBeGreaterThanOrEqual(1);
      expect(s['lost']).toBe(0);
      expect(s['sent']).toBeGreaterThan(0);
      expect(s['received']).toBeGreaterThanOrEqual(s['sent'] as number);
    },
  },
  {
    // Every endpoint answers 200 and /metrics carries the demo group's lag.
    file: 'examples/lag-monitor-service.ts',
    args: ['--ci'],
    timeoutMs: 90_000,
    summary: (s) => {
      expect(s['answered']).toEqual({
        '/health': 200,
        '/status': 200,
        '/lag': 200,
        '/lag/history': 200,
        '/alerts': 200,
        '/recommendations': 200,
        '/metrics': 200,
      });
      expect(s['groupLag']).toBe(true);
      expect(s['lag']).toEqual([expect.any(Number)]);
    },
  },
];

describe('examples', () => {
  for (const { file, args = [], timeoutMs, summary } of EXAMPLES) {
    it(`${[file, ...args].join(' ')} exits 0`, { timeout: timeoutMs + 10_000 }, async () => {
      const result = await runExample(file, args, timeoutMs);
      expect(
        { code: result.code, signal: result.signal },
        `${file} failed; its last output:\n${result.output.slice(-6000)}`,
      ).toEqual({ code: 0, signal: null });
      summary?.(lastJsonLine(result.stdout));
    });
  }
});
