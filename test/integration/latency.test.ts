import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  type BackpressureConsumerOptions,
  type LatencyEvent,
} from '../../src/index.js';
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
 * of probe calls run; fast ones end the pause, and so do slow ones that show
 * the pause cannot lower latency; an empty window never does.
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

/**
 * A downstream whose latency the test sets, recording every call: a call
 * takes `latencyMs`, or `unloadedMs` when it starts with at most
 * `latency.probes` calls in the downstream (itself included), so a pause's
 * probes see what lowering the load does.
 */
function downstream(latencyMs: number, unloadedMs = latencyMs) {
  const d = {
    latencyMs,
    unloadedMs,
    running: 0,
    calls: [] as Call[],
    values: new Set<string>(),
    handler: async (message: { value: Buffer | null }) => {
      const startedAt = Date.now();
      d.running += 1;
      await sleep(d.running <= latency.probes ? d.unloadedMs : d.latencyMs);
      d.running -= 1;
      d.calls.push({ startedAt, endedAt: Date.now() });
      d.values.add(message.value!.toString());
    },
  };
  return d;
}

const latency = { pauseAboveMs: 100, resumeBelowMs: 40, windowMs: 1000, probes: 3 };

/**
 * A 2-partition topic with a backlog of `count` messages, and an unordered
 * consumer (concurrency 16, the latency pause above) over a downstream at
 * 5 ms; not started, so listeners can be attached first.
 */
async function backlogged(name: string, count: number) {
  const topic = uniqueName(name);
  const groupId = uniqueName(`g-${name}`);
  await createTopic(topic, 2);
  await produceMessages(topic, messages(count));
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
  return { topic, groupId, d, consumer };
}

describe('latency pauses against a real broker', () => {
  it('hold while the probes are slow, run at most `probes` calls at once, and resume only after fast probes', async () => {
    const { topic, groupId, d, consumer } = await backlogged('latency-probes', 800);
    const high: number[] = [];
    const normal: { at: number; latencyMs: number; noEffect: true | undefined }[] = [];
    consumer.on('latency.high', () => high.push(Date.now()));
    consumer.on('latency.normal', (e) =>
      normal.push({ at: Date.now(), latencyMs: e.latencyMs, noEffect: e.noEffect }),
    );
    await consumer.start();
    await waitFor(() => d.values.size > 100, { timeoutMs: 30_000, message: 'no progress' });

    // 200 ms under load, 70 ms with only the probes in it: the pause lowers
    // latency, though not below resumeBelowMs, so it holds.
    d.latencyMs = 200;
    d.unloadedMs = 70;
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
    d.unloadedMs = 5;
    await waitFor(() => normal.length > 0, { timeoutMs: 10_000, message: 'never resumed' });
    const resumed = normal[0]!;
    expect(resumed.latencyMs).toBeLessThan(latency.resumeBelowMs);
    expect(resumed.noEffect).toBeUndefined();
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
    const d = downstream(200, 70);
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
    d.unloadedMs = 5;
    await produceMessages(topic, messages(200, 30));
    await waitFor(() => normal.length > 0, { timeoutMs: 20_000, message: 'never resumed' });
    expect(normal[0]).toBeLessThan(latency.resumeBelowMs);
    await waitFor(() => d.values.size >= 230, { timeoutMs: 30_000, message: 'not all handled' });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
  });

  it('ends a pause that cannot lower latency (the downstream is slow at any load) with noEffect, keeps consuming and loses nothing', async () => {
    const { topic, groupId, d, consumer } = await backlogged('latency-no-effect', 600);
    const high: LatencyEvent[] = [];
    const normal: { at: number; event: LatencyEvent }[] = [];
    consumer.on('latency.high', (e) => high.push(e));
    consumer.on('latency.normal', (e) => normal.push({ at: Date.now(), event: e }));
    await consumer.start();
    await waitFor(() => d.values.size > 100, { timeoutMs: 30_000, message: 'no progress' });

    // 200 ms per call whatever the load: above pauseAboveMs, and the probes
    // can do no better.
    d.latencyMs = 200;
    d.unloadedMs = 200;
    await waitFor(() => high.length > 0, { timeoutMs: 10_000, message: 'latency never high' });
    await waitFor(() => normal.length > 0, { timeoutMs: 10_000, message: 'pause never ended' });
    const ended = normal[0]!;
    expect(ended.event.noEffect).toBe(true);
    // A measured latency: the slow probes' median, about the downstream's 200 ms.
    expect(ended.event.latencyMs).toBeGreaterThan(150);
    expect(ended.event.thresholdMs).toBe(ended.event.latencyMs * 1.5);
    expect(consumer.concurrency).toBe(16);
    expect(consumer.partitions().filter((p) => p.reasons.includes('latency'))).toEqual([]);
    // Consumption goes on at full concurrency, and the same latency does not pause again.
    const doneAtEnd = d.values.size;
    await sleep(2000);
    expect(d.values.size).toBeGreaterThan(doneAtEnd);
    await waitFor(() => d.values.size >= 600, { timeoutMs: 60_000, message: 'not all handled' });
    expect(high).toHaveLength(1);
    expect(normal).toHaveLength(1);
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
  });
});
