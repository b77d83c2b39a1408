// Fault case 9, soak: a consumer (in a child process, so its own memory is
// measured) handles a steady stream for SOAK_MS (60 s in the suite; `npm run
// test:soak` runs ten minutes) while its downstream slows down at random.
// Reported: the slope of RSS and of the heap after a full GC (MB/min), live
// timers, sockets and listeners over time, and the lag. Asserted: the heap
// does not grow (bounded slope), timers, sockets and listeners stay level,
// the lag stays bounded and drains, and every message is handled once.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RateLimitedProducer } from '../../src/index.js';
import { runChild, seconds, slope, sleep, type Child } from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  newProducer,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger } from '../helpers/ledger.js';

const SOAK_MS = Number(process.env['SOAK_MS'] ?? 60_000);
const RATE = Number(process.env['SOAK_RATE'] ?? 400);

const dir = mkdtempSync(join(tmpdir(), 'bp-soak-'));
let child: Child | undefined;

afterAll(async () => {
  await child?.kill();
  await disconnectAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Sample {
  readonly t: number;
  readonly rss: number;
  readonly heap: number;
  readonly timers: number;
  readonly sockets: number;
  readonly processListeners: number;
  readonly consumerListeners: number;
  readonly lag: number;
  readonly inFlight: number;
  readonly slowDowns: number;
  readonly paused: number;
  readonly latencyHigh: number;
  readonly concurrency: number;
  readonly errors: number;
}

const MB = 1024 * 1024;
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

describe('fault: soak', () => {
  it(
    `${seconds(SOAK_MS)} at ${RATE} msg/s with random slow-downs: memory flat, timers and listeners level, lag bounded`,
    async () => {
      const started = Date.now();
      const topic = uniqueName('soak');
      const groupId = uniqueName('g-soak');
      const file = join(dir, 'ledger.log');
      await createTopic(topic, 4);
      const ledger = new Ledger('soak');

      child = runChild(
        new URL('./children/soak-consumer.ts', import.meta.url),
        { FAULT_TOPIC: topic, FAULT_GROUP: groupId, FAULT_LEDGER: file },
        ['--expose-gc'],
      );
      await child.waitForLine((line) => line === 'started');

      // A steady stream through the rate-limited producer.
      const kafkaProducer = newProducer();
      await kafkaProducer.connect();
      const producer = new RateLimitedProducer(kafkaProducer, { messagesPerSecond: RATE });
      let sent = 0;
      const produceUntil = Date.now() + SOAK_MS;
      while (Date.now() < produceUntil) {
        const values = Array.from({ length: 20 }, () => String(sent++));
        await producer.send({
          topic,
          acks: -1,
          messages: values.map((value) => ({ key: `k${Number(value) % 200}`, value })),
        });
        ledger.ingest(file);
      }
      await producer.close();
      ledger.expectOffsets(await endOffsets(topic));
      await waitFor(() => (ledger.ingest(file), ledger.isComplete()), {
        timeoutMs: 120_000,
        intervalMs: 250,
        message: () => `the consumer did not catch up: ${ledger.summary()}\n${child!.stderr()}`,
      });
      await expectCommittedAtEnd(groupId, topic);
      // A few samples with everything drained: the idle heap to compare with.
      const caughtUpAt = child.lines.filter((l) => l.startsWith('{')).length;
      await waitFor(() => child!.lines.filter((l) => l.startsWith('{')).length >= caughtUpAt + 5, {
        timeoutMs: 30_000,
        message: 'no samples after catching up',
      });
      child.process.kill('SIGTERM');
      const exit = await Promise.race([child.exited, sleep(30_000).then(() => 'still running')]);
      expect(exit, child.stderr()).toEqual({ code: 0, signal: null });
      ledger.ingest(file);

      const samples = child.lines
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Sample);
      // Judge the steady state: from the end of the first fifth (JIT, pools and
      // buffers warmed up) to the end of production.
      const steady = samples.filter((s) => s.t >= SOAK_MS / 5 && s.t <= SOAK_MS);
      expect(steady.length).toBeGreaterThan(20);
      const perMinute = (key: 'rss' | 'heap') =>
        slope(steady.map((s) => [s.t / 60_000, s[key] / MB] as const));
      const rssSlope = perMinute('rss');
      const heapSlope = perMinute('heap');
      // The slope over a minute follows the backlog (fetched batches are live
      // memory while a slow-down lasts), so the assertion compares quiet
      // moments instead: the heap once everything drained, against the lowest
      // heap of the first half of the steady state. A leak only grows.
      const idle = samples.slice(-3);
      const firstHalf = steady.slice(0, Math.max(1, Math.floor(steady.length / 2)));
      const growth = (key: 'rss' | 'heap') =>
        (median(idle.map((s) => s[key])) - Math.min(...firstHalf.map((s) => s[key]))) / MB;
      const heapGrowth = growth('heap');
      const rssGrowth = growth('rss');
      const quarter = Math.max(1, Math.floor(steady.length / 4));
      const first = steady.slice(0, quarter);
      const last = steady.slice(-quarter);
      const level = (key: 'timers' | 'sockets' | 'processListeners' | 'consumerListeners') => ({
        first: median(first.map((s) => s[key])),
        last: median(last.map((s) => s[key])),
        max: Math.max(...steady.map((s) => s[key])),
      });
      const timers = level('timers');
      const sockets = level('sockets');
      const listeners = level('processListeners');
      const consumerListeners = level('consumerListeners');
      const maxLag = Math.max(...samples.map((s) => s.lag));
      const end = samples.at(-1)!;

      ledger.note('duration', seconds(SOAK_MS));
      ledger.note('rate', RATE);
      ledger.note('rssSlope', `${rssSlope.toFixed(2)}MB/min`);
      ledger.note('heapSlope', `${heapSlope.toFixed(2)}MB/min`);
      ledger.note('heapGrowthIdle', `${heapGrowth.toFixed(1)}MB`);
      ledger.note('rssGrowthIdle', `${rssGrowth.toFixed(1)}MB`);
      ledger.note(
        'heap',
        `${(first[0]!.heap / MB).toFixed(1)}->${(last.at(-1)!.heap / MB).toFixed(1)}MB`,
      );
      ledger.note(
        'rss',
        `${(first[0]!.rss / MB).toFixed(0)}->${(last.at(-1)!.rss / MB).toFixed(0)}MB`,
      );
      ledger.note('timers', `${timers.first}->${timers.last}(max ${timers.max})`);
      ledger.note('sockets', `${sockets.first}->${sockets.last}`);
      ledger.note('listeners', `${listeners.first}->${listeners.last}`);
      ledger.note('maxLag', maxLag);
      ledger.note('slowDowns', end.slowDowns);
      ledger.note('pauses', end.paused);
      ledger.note('latencyHigh', end.latencyHigh);
      ledger.note('errors', end.errors);
      ledger.note('time', seconds(Date.now() - started));
      ledger.print();

      ledger.assertComplete({ maxDuplicates: 0 });
      // The downstream did slow down, and the consumer noticed.
      expect(end.slowDowns).toBeGreaterThan(0);
      // Memory: the idle heap after a full GC is back where it was. A leak of
      // 100 bytes per message would leave 2.4 MB here in the 60 s form and
      // 24 MB in the 10-minute one.
      expect(heapGrowth).toBeLessThan(4);
      expect(rssGrowth).toBeLessThan(64);
      // Timers, sockets and listeners stay level (transient timers of
      // retries and sleeps come and go; a per-message leak would climb).
      expect(timers.last).toBeLessThanOrEqual(timers.first + 20);
      expect(sockets.last).toBeLessThanOrEqual(sockets.first);
      expect(listeners.last).toBe(listeners.first);
      expect(consumerListeners.last).toBe(consumerListeners.first);
      // Lag stays bounded: at most what 30 s of production can pile up.
      expect(maxLag).toBeLessThan(RATE * 30);
    },
    SOAK_MS + 300_000,
  );
});
