// The consumer process of the soak case (test/faults/soak.test.ts). It
// handles a steady stream with random slow-downs of its downstream and
// prints one JSON sample a second: memory after a full GC, live timers
// (counted through async_hooks, so unref'd ones too), sockets, listeners,
// lag and in-flight work. SIGTERM closes it; it must then exit by itself.

import { createHook } from 'node:async_hooks';
import { BackpressureConsumer } from '../../../src/index.js';
import { between, faultConsumer, sleep } from '../../helpers/faults.js';
import { LedgerFile, offsetId } from '../../helpers/ledger.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

// Live Timeout objects: created and not yet destroyed. getActiveResourcesInfo()
// leaves unref'd timers out, and the library unrefs all of its own.
const liveTimers = new Set<number>();
createHook({
  init(id, type) {
    if (type === 'Timeout') liveTimers.add(id);
  },
  destroy(id) {
    liveTimers.delete(id);
  },
}).enable();

const ledger = new LedgerFile(env('FAULT_LEDGER'));
let slowUntil = 0;
let slowDowns = 0;
const consumer = new BackpressureConsumer(faultConsumer(env('FAULT_GROUP')), {
  topics: [env('FAULT_TOPIC')],
  fromBeginning: true,
  ordering: 'key',
  concurrency: 16,
  maxInFlight: 500,
  commitIntervalMs: 500,
  handlerTimeoutMs: 2000,
  latency: { pauseAboveMs: 40, resumeBelowMs: 15, windowMs: 2000 },
  adaptiveConcurrency: { minConcurrency: 2, targetLatencyMs: 30, intervalMs: 500 },
  handler: async (message) => {
    await sleep(Date.now() < slowUntil ? between(30, 80) : between(1, 3));
    ledger.handled(offsetId(message.partition, message.offset));
  },
});
const events = { paused: 0, resumed: 0, latencyHigh: 0, concurrencyChanges: 0, errors: 0 };
consumer.on('flow.paused', () => (events.paused += 1));
consumer.on('flow.resumed', () => (events.resumed += 1));
consumer.on('latency.high', () => (events.latencyHigh += 1));
consumer.on('concurrency.changed', () => (events.concurrencyChanges += 1));
consumer.on('consumer.error', (e) => {
  events.errors += 1;
  console.error(`consumer.error during ${e.during}: ${e.error.message}`);
});

// Random slow-downs: every 8 to 20 s, the downstream is slow for 2 to 5 s.
const schedule = setInterval(() => {
  if (Date.now() < slowUntil) return;
  if (Math.random() < 0.15) {
    slowUntil = Date.now() + between(2000, 5000);
    slowDowns += 1;
  }
}, 1000);

const gc = (globalThis as { gc?: () => void }).gc;
const started = Date.now();
const sampler = setInterval(() => {
  gc?.();
  const memory = process.memoryUsage();
  const resources = process.getActiveResourcesInfo();
  const lag = consumer.partitions().reduce((n, p) => n + (p.lag ?? 0), 0);
  console.log(
    JSON.stringify({
      t: Date.now() - started,
      rss: memory.rss,
      heap: memory.heapUsed,
      timers: liveTimers.size,
      sockets: resources.filter((r) => r === 'TCPSocketWrap').length,
      processListeners: process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0),
      consumerListeners: consumer.eventNames().reduce((n, e) => n + consumer.listenerCount(e), 0),
      lag,
      inFlight: consumer.inFlight,
      concurrency: consumer.concurrency,
      slowDowns,
      ...events,
    }),
  );
}, 1000);

process.once('SIGTERM', () => {
  clearInterval(schedule);
  clearInterval(sampler);
  void consumer.close({ drainTimeoutMs: 5000 }).then(() => console.log('closed'));
});

await consumer.start();
console.log('started');
