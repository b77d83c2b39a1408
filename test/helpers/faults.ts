// Shared pieces of the fault suite (test/faults): unhandled-rejection traps,
// a dead-letter reader, child processes run through tsx, a broker of the
// test's own, and small random helpers.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Consumer, IHeaders } from 'kafkajs';
import { DLQ_HEADERS } from '../../src/index.js';
import { newKafka, uniqueName, waitFor } from './kafka.js';
import { offsetId, type Ledger } from './ledger.js';

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A random integer in [min, max]. */
export function between(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

// ---------------------------------------------------------------------------
// unhandled rejections and exceptions

export interface Trap {
  /** What escaped so far, rendered. */
  readonly escaped: readonly string[];
  /** Throws when anything escaped. */
  assertNone(): void;
  /** Removes the listeners. */
  dispose(): void;
}

/**
 * Records every unhandled rejection and uncaught exception from now on, so a
 * test can fail on one explicitly (vitest also reports them, but only at the
 * end of the run and without saying which case caused it).
 */
export function trapUnhandled(): Trap {
  const escaped: string[] = [];
  const render = (kind: string, value: unknown) =>
    `${kind}: ${value instanceof Error ? `${value.name}: ${value.message}\n${value.stack ?? ''}` : String(value)}`;
  const onRejection = (reason: unknown) => escaped.push(render('unhandledRejection', reason));
  const onException = (error: unknown) => escaped.push(render('uncaughtException', error));
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    escaped,
    assertNone() {
      if (escaped.length > 0) {
        throw new Error(`${escaped.length} escaped the consumer:\n${escaped.join('\n')}`);
      }
    },
    dispose() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

// ---------------------------------------------------------------------------
// consumers

/** A KafkaJS consumer with timings short enough for fault tests (sessionTimeout >= the broker's 6 s minimum). */
export function faultConsumer(
  groupId: string,
  config: Partial<Parameters<ReturnType<typeof newKafka>['consumer']>[0]> = {},
  brokers?: string[],
): Consumer {
  return newKafka(`bp-${groupId}`, brokers ? { brokers } : {}).consumer({
    groupId,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
    ...config,
  });
}

// ---------------------------------------------------------------------------
// dead letters

export interface DeadLetter {
  /** `partition:offset` of the original message. */
  readonly id: string;
  readonly reason: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
}

const text = (headers: IHeaders, name: string): string => {
  const value = headers[name];
  if (value === undefined) return '';
  return (Array.isArray(value) ? value.join(',') : value).toString();
};

/**
 * Reads a dead-letter topic from the beginning until `expected` letters
 * arrived, then a little longer so that extra letters (duplicates) show up
 * too. Each letter is identified by the original partition and offset that
 * its headers record.
 */
export async function readDeadLetters(
  dlqTopic: string,
  expected: number,
  { settleMs = 1000, timeoutMs = 60_000 }: { settleMs?: number; timeoutMs?: number } = {},
): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  if (expected === 0 && settleMs === 0) return letters;
  const reader = newKafka('bp-dlq-reader').consumer({
    groupId: uniqueName('dlq-reader'),
    maxWaitTimeInMs: 100,
  });
  await reader.connect();
  try {
    await reader.subscribe({ topics: [dlqTopic], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const headers = message.headers ?? {};
        letters.push({
          id: offsetId(
            Number(text(headers, DLQ_HEADERS.originalPartition)),
            text(headers, DLQ_HEADERS.originalOffset),
          ),
          reason: text(headers, DLQ_HEADERS.reason),
          errorName: text(headers, DLQ_HEADERS.errorName),
          errorMessage: text(headers, DLQ_HEADERS.errorMessage),
          key: message.key ?? null,
          value: message.value ?? null,
          headers,
        });
      },
    });
    await waitFor(() => letters.length >= expected, {
      timeoutMs,
      message: () => `${expected} dead letters in ${dlqTopic}, got ${letters.length}`,
    });
    await sleep(settleMs);
  } finally {
    await reader.disconnect();
  }
  return letters;
}

/** Reads the dead-letter topic and enters every letter in the ledger with its reason. */
export async function ledgerDeadLetters(
  ledger: Ledger,
  dlqTopic: string,
  expected: number,
): Promise<DeadLetter[]> {
  const letters = await readDeadLetters(dlqTopic, expected);
  for (const letter of letters) ledger.deadLettered(letter.id, letter.reason);
  return letters;
}

// ---------------------------------------------------------------------------
// child processes

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code and signal once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stdout lines so far. */
  readonly lines: readonly string[];
  /** stderr so far (the last 20 kB). */
  stderr(): string;
  /** Resolves with the first stdout line matching, rejects if the child exits first. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

/**
 * Runs a TypeScript file in a child process through tsx, with the test's
 * environment (KAFKA_BROKERS included) plus `env`, and extra Node flags.
 */
export function runChild(
  script: URL,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Child {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', fileURLToPath(script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  const lineWaiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of lineWaiters) wake();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const wake of lineWaiters) wake();
      resolve({ code, signal });
    }),
  );
  return {
    process: child,
    pid: child.pid!,
    exited,
    lines,
    stderr: () => stderr,
    async waitForLine(match, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(match);
        if (found !== undefined) return found;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`child exited (${child.exitCode ?? child.signalCode}) first:\n${stderr}`);
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(
            `child printed no matching line in ${timeoutMs} ms; last lines:\n` +
              `${lines.slice(-10).join('\n')}\nstderr:\n${stderr}`,
          );
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(left, 1000));
          function done() {
            clearTimeout(timer);
            lineWaiters.delete(done);
            resolve();
          }
          lineWaiters.add(done);
        });
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------
// a broker of the test's own

export interface OwnBroker {
  readonly brokers: string[];
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  readonly pid: number | null;
  stop(options?: { keepData?: boolean }): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<unknown>;
  pause(): void;
  resume(): void;
}

interface KafkaScript {
  startBroker(options?: {
    log?: ((msg: string) => void) | false;
    port?: number;
    dataDir?: string;
  }): Promise<OwnBroker>;
}

/**
 * Starts a broker for one test file (cases that stop or restart the broker
 * must not disturb the shared one). Stop it in afterAll.
 */
export async function startOwnBroker(): Promise<OwnBroker> {
  // A URL: the script is plain JS without declarations (see test/global-setup.ts).
  const url = new URL('../../scripts/kafka.mjs', import.meta.url).href;
  const { startBroker } = (await import(url)) as KafkaScript;
  return startBroker({ log: (msg) => process.stderr.write(`[own broker] ${msg}\n`) });
}

// ---------------------------------------------------------------------------
// figures

/** Least-squares slope of y over x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const denominator = n * sxx - sx * sx;
  return denominator === 0 ? 0 : (n * sxy - sx * sy) / denominator;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
