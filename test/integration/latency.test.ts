import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer, type BackpressureConsumerOptions } from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

/**
 * Latency pauses end on evidence (issue #21): while paused, a bounded number
 * of probe calls run, and only fast ones end the pause; an empty window
 * never does.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const open: BackpressureConsumer<Buffer | null>[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.close({ drainTimeoutMs: 1000 }).catch(() => undefined)));
  await disconnectAll();
});

function start(groupId: string, options: BackpressureConsumerOptions<Buffer | null>) {
  const kafka = newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    rebalanceTimeout: 20_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
  const consumer = new BackpressureConsumer(kafka, options);
  open.push(consumer);
  return consumer;
}

function messages(count: number, from = 0) {
  return Array.from({ length: count }, (_, i) => ({
    key: `k${(from + i) % 13}`,
    value: `${from + i}`,
  }));
}

interface Call {
  readonly startedAt: number;
  readonly endedAt: number;
}

/** A downstream whose latency the test sets, recording every call. */
function downstream(latencyMs: number) {
  const d = {
    latencyMs,
    running: 0,
    calls: [] as Call[],
    values: new Set<string>(),
    handler: async (message: { value: Buffer | null }) => {
      const startedAt = Date.now();
      d.running += 1;
      await sleep(d.latencyMs);
      d.running -= 1;
      d.calls.push({ startedAt, endedAt: Date.now() });
      d.values.add(message.value!.toString());
    },
  };
  return d;
}

const latency = { pauseAboveMs: 100, resumeBelowMs: 40, windowMs: 1000, probes: 3 };

describe('latency pauses against a real broker', () => {
  it('hold while the probes are slow, run at most `probes` calls at once, and resume only after fast probes', async () => {
    const topic = uniqueName('latency-probes');
    const groupId = uniqueName('g-latency-probes');
    await createTopic(topic, 2);
    await produceMessages(topic, messages(800));
    const d = downstream(5);
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: 16,
      maxInFlight: 300,
      commitIntervalMs: 200,
      latency,
      handler: d.handler,
    });
    const high: number[] = [];
    const normal: { at: number; latencyMs: number }[] = [];
    consumer.on('latency.high', () => high.push(Date.now()));
    consumer.on('latency.normal', (e) => normal.push({ at: Date.now(), latencyMs: e.latencyMs }));
    await consumer.start();
    await waitFor(() => d.values.size > 100, { timeoutMs: 30_000, message: 'no progress' });

    d.latencyMs = 200;
    await waitFor(() => high.length > 0, { timeoutMs: 10_000, message: 'latency never high' });
    const pausedAt = high[0]!;
    // Four windows of slow probes: the pause holds, and the calls at once stay at the probes
    // once those started before the pause have ended.
    await sleep(400);
    let peak = 0;
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      peak = Math.max(peak, d.running);
      await sleep(10);
    }
    expect(normal).toEqual([]);
    expect(peak).toBeLessThanOrEqual(latency.probes);
    expect(consumer.concurrency).toBe(latency.probes);
    const slowProbes = d.calls.filter((c) => c.startedAt >= pausedAt);
    expect(slowProbes.length).toBeGreaterThan(0);

    d.latencyMs = 5;
    await waitFor(() => normal.length > 0, { timeoutMs: 10_000, message: 'never resumed' });
    const resumed = normal[0]!;
    expect(resumed.latencyMs).toBeLessThan(latency.resumeBelowMs);
    // What ended the pause: the last `probes` calls before it, all started after the pause, all fast.
    const evidence = d.calls.filter((c) => c.endedAt <= resumed.at).slice(-latency.probes);
    expect(evidence).toHaveLength(latency.probes);
    for (const call of evidence) {
      expect(call.startedAt).toBeGreaterThanOrEqual(pausedAt);
      expect(call.endedAt - call.startedAt).toBeLessThan(latency.resumeBelowMs + 20);
    }
    expect(high).toHaveLength(1);

    await waitFor(() => d.values.size >= 800, { timeoutMs: 60_000, message: 'not all handled' });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
  });

  it('never resumes on an empty window: with nothing to probe it waits, and fetches probes once messages arrive', async () => {
    const topic = uniqueName('latency-empty');
    const groupId = uniqueName('g-latency-empty');
    await createTopic(topic, 2);
    await produceMessages(topic, messages(30));
    const d = downstream(200);
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: 16,
      commitIntervalMs: 200,
      latency,
      handler: d.handler,
    });
    const normal: number[] = [];
    let high = 0;
    consumer.on('latency.high', () => (high += 1));
    consumer.on('latency.normal', (e) => normal.push(e.latencyMs));
    await consumer.start();
    await waitFor(() => high > 0, { timeoutMs: 30_000, message: 'latency never high' });
    await waitFor(() => d.values.size >= 30, { timeoutMs: 30_000, message: 'backlog not handled' });
    // Nothing left to handle and nothing new: five windows with no sample at all.
    await sleep(5000);
    expect(normal).toEqual([]);
    expect(consumer.latencyPercentile()).toBeUndefined();
    const held = consumer.partitions().filter((p) => p.reasons.includes('latency'));
    // Every partition held, but at most one let out to fetch probes.
    expect(held.length).toBeGreaterThanOrEqual(1);

    d.latencyMs = 5;
    await produceMessages(topic, messages(200, 30));
    await waitFor(() => normal.length > 0, { timeoutMs: 20_000, message: 'never resumed' });
    expect(normal[0]).toBeLessThan(latency.resumeBelowMs);
    await waitFor(() => d.values.size >= 230, { timeoutMs: 30_000, message: 'not all handled' });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
  });
});
