import { afterAll, describe, expect, it } from 'vitest';
import type { Consumer } from 'kafkajs';
import { BackpressureConsumer, type BackpressureConsumerOptions } from '../../src/index.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import {
  decodeProgress,
  DoneCursor,
  type DoneRanges,
} from '../../src/consumer/offsets/progress-metadata.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A KafkaJS consumer with timings short enough for tests. */
function kafkaConsumer(groupId: string): Consumer {
  return newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    rebalanceTimeout: 20_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
}

function start<T>(groupId: string, options: BackpressureConsumerOptions<T>) {
  const kafka = kafkaConsumer(groupId);
  let joins = 0;
  kafka.on(kafka.events.GROUP_JOIN, () => {
    joins += 1;
  });
  const consumer = new BackpressureConsumer(kafka, options);
  open.push(consumer);
  return { consumer, kafka, joins: () => joins };
}

const open: { close(options?: { drainTimeoutMs?: number }): Promise<void> }[] = [];

afterAll(async () => {
  await Promise.all(open.map((c) => c.close({ drainTimeoutMs: 1000 }).catch(() => undefined)));
  await disconnectAll();
});

function messages(count: number, keys: number, size = 16) {
  return Array.from({ length: count }, (_, i) => ({
    key: `k${i % keys}`,
    value: `${i}:`.padEnd(size, 'x'),
  }));
}

describe('BackpressureConsumer against a real broker', () => {
  it('handles every message at least once and commits the end offsets, with out-of-order completion', async () => {
    const topic = uniqueName('no-loss');
    const groupId = uniqueName('g-no-loss');
    await createTopic(topic, 4);
    const produced = messages(2000, 97);
    await produceMessages(topic, produced);

    const seen = new Map<string, number>();
    let outOfOrder = 0;
    let lastFinished = -1;
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: 64,
      maxInFlight: 200,
      commitIntervalMs: 200,
      handler: async (message) => {
        await sleep(Math.random() * 8);
        const value = message.value!.toString();
        seen.set(value, (seen.get(value) ?? 0) + 1);
        const index = Number(value.split(':')[0]);
        if (index < lastFinished) outOfOrder += 1;
        lastFinished = index;
      },
    });
    await consumer.start();
    await waitFor(() => seen.size === produced.length, {
      timeoutMs: 60_000,
      message: 'not every message was handled',
    });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    for (const m of produced) expect(seen.get(m.value), m.value).toBeGreaterThanOrEqual(1);
    // The test is only meaningful if handlers really finished out of order.
    expect(outOfOrder).toBeGreaterThan(0);
    expect(consumer.peakInFlight).toBeLessThanOrEqual(200);
  });

  it('keeps per-key order in key mode while running far more handlers than partitions', async () => {
    const topic = uniqueName('key-order');
    const groupId = uniqueName('g-key-order');
    await createTopic(topic, 2);
    const produced = messages(3000, 300);
    await produceMessages(topic, produced);

    const perKey = new Map<string, number[]>();
    let active = 0;
    let peakActive = 0;
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 128,
      maxInFlight: 1000,
      commitIntervalMs: 200,
      handler: async (message) => {
        active += 1;
        peakActive = Math.max(peakActive, active);
        await sleep(2 + Math.random() * 10);
        const key = message.key!.toString();
        const list = perKey.get(key) ?? [];
        list.push(Number(message.value!.toString().split(':')[0]));
        perKey.set(key, list);
        active -= 1;
      },
    });
    await consumer.start();
    await waitFor(() => [...perKey.values()].reduce((n, l) => n + l.length, 0) >= produced.length, {
      timeoutMs: 60_000,
      message: 'not every message was handled',
    });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(perKey.size).toBe(300);
    for (const [key, order] of perKey) {
      expect(order, `order of ${key}`).toEqual([...order].sort((a, b) => a - b));
    }
    // Two partitions, yet many handlers ran at once, and never more than the limit.
    expect(peakActive).toBeGreaterThan(20);
    expect(peakActive).toBeLessThanOrEqual(128);
    console.info(`[key-order] peak concurrent handlers: ${peakActive} on 2 partitions`);
  });

  it('holds the concurrency limit when a lane runs its messages in one slot, and lets waiting lanes take turns', async () => {
    // In partition ordering a lane keeps its concurrency slot from one message
    // to the next while nothing else waits for one. With a limit of 1 and
    // three partitions, the lanes must still take turns, one handler at a time.
    const topic = uniqueName('turns');
    const groupId = uniqueName('g-turns');
    await createTopic(topic, 3);
    const produced = messages(900, 90);
    await produceMessages(topic, produced);

    const order: number[] = [];
    let active = 0;
    let peakActive = 0;
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'partition',
      concurrency: 1,
      commitIntervalMs: 200,
      handler: async (message) => {
        active += 1;
        peakActive = Math.max(peakActive, active);
        await new Promise((resolve) => setImmediate(resolve));
        order.push(message.partition);
        active -= 1;
      },
    });
    await consumer.start();
    await waitFor(() => order.length >= produced.length, {
      timeoutMs: 60_000,
      message: 'not every message was handled',
    });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(peakActive).toBe(1);
    // While every partition still had work, no lane kept the slot for itself:
    // between the first message of the last partition to start and the last
    // message of the first partition to finish, runs of one partition are short.
    const partitions = [0, 1, 2];
    const from = Math.max(...partitions.map((p) => order.indexOf(p)));
    const to = Math.min(...partitions.map((p) => order.lastIndexOf(p)));
    expect(to - from).toBeGreaterThan(100);
    let longest = 0;
    let streak = 0;
    for (let i = from; i <= to; i += 1) {
      streak = i > from && order[i] === order[i - 1] ? streak + 1 : 1;
      longest = Math.max(longest, streak);
    }
    expect(longest).toBeLessThanOrEqual(2);
    console.info(
      `[turns] ${to - from + 1} messages while all three had work; longest run of one partition ${longest}`,
    );
  });

  it('in key ordering with partitions consumed side by side, no partition takes the whole budget: keys of all of them run', async () => {
    const topic = uniqueName('key-share');
    const groupId = uniqueName('g-key-share');
    await createTopic(topic, 3);
    const produced = messages(6000, 60);
    await produceMessages(topic, produced);

    const keysOf = new Map<number, Set<string>>();
    let active = 0;
    let peakActive = 0;
    let handled = 0;
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 60,
      maxInFlight: 600,
      partitionsConsumedConcurrently: 3,
      commitIntervalMs: 200,
      handler: async (message) => {
        active += 1;
        peakActive = Math.max(peakActive, active);
        const keys = keysOf.get(message.partition) ?? new Set<string>();
        keys.add(message.key!.toString());
        keysOf.set(message.partition, keys);
        await sleep(10);
        active -= 1;
        handled += 1;
      },
    });
    // Handlers busy, sampled while the first three quarters of the backlog go through.
    const samples: number[] = [];
    const sampler = setInterval(() => {
      if (handled > 0 && handled < produced.length * 0.75) samples.push(active);
    }, 5);
    await consumer.start();
    await waitFor(() => handled >= produced.length, {
      timeoutMs: 90_000,
      message: 'not every message was handled',
    });
    clearInterval(sampler);
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    // One partition refilling the whole budget bounds the handlers at its
    // own keys; with a fair share each, keys of every partition run.
    const mostKeys = Math.max(...[...keysOf.values()].map((k) => k.size));
    const meanActive = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(keysOf.size).toBe(3);
    expect(peakActive).toBeLessThanOrEqual(60);
    expect(samples.length).toBeGreaterThan(20);
    expect(meanActive).toBeGreaterThan(mostKeys * 1.5);
    console.info(
      `[key-share] mean handlers ${meanActive.toFixed(1)} (${samples.length} samples), peak ${peakActive}; ` +
        `keys per partition ${[...keysOf.values()].map((k) => k.size).join('/')}`,
    );
  });

  it('never exceeds maxInFlight / maxInFlightBytes, pauses and resumes, and keeps its membership while slow', async () => {
    const topic = uniqueName('bound');
    const groupId = uniqueName('g-bound');
    // One partition: with several, each holds at most its fair share of a
    // contended budget and pauses as `partition-full` instead (tested below).
    await createTopic(topic, 1);
    const produced = messages(1500, 50, 500);
    await produceMessages(topic, produced);

    let handled = 0;
    let peakMessages = 0;
    let peakBytes = 0;
    const events: string[] = [];
    const maxInFlight = 60;
    const maxInFlightBytes = 20_000;
    const { consumer, joins } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 8,
      maxInFlight,
      maxInFlightBytes,
      commitIntervalMs: 500,
      handler: async () => {
        peakMessages = Math.max(peakMessages, consumer.inFlight);
        peakBytes = Math.max(peakBytes, consumer.inFlightBytes);
        // Slow enough that the backlog piles up for well over a session timeout's worth of heartbeats.
        await sleep(20);
        handled += 1;
      },
    });
    consumer.on('flow.paused', (e) => events.push(`paused:${e.reason}`));
    consumer.on('flow.resumed', (e) => events.push(`resumed:${e.reason}`));
    consumer.on('queue.full', () => events.push('full'));
    consumer.on('queue.drained', () => events.push('drained'));
    await consumer.start();
    await waitFor(() => handled >= produced.length, {
      timeoutMs: 90_000,
      message: 'backlog not handled',
    });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(peakMessages).toBeLessThanOrEqual(maxInFlight);
    expect(peakBytes).toBeLessThanOrEqual(maxInFlightBytes);
    expect(consumer.peakInFlight).toBeLessThanOrEqual(maxInFlight);
    expect(consumer.peakInFlightBytes).toBeLessThanOrEqual(maxInFlightBytes);
    expect(events).toContain('full');
    expect(events).toContain('drained');
    expect(events).toContain('paused:queue-full');
    expect(events).toContain('resumed:queue-full');
    // One join at start, none caused by the slow handler.
    expect(joins()).toBe(1);
    console.info(
      `[bound] peak in-flight ${consumer.peakInFlight}/${maxInFlight} msgs, ${consumer.peakInFlightBytes}/${maxInFlightBytes} bytes; ` +
        `pauses ${events.filter((e) => e.startsWith('paused')).length}; joins ${joins()}`,
    );
  });

  it('keeps its group membership through handlers that take a third of the session timeout, for several session timeouts', async () => {
    const topic = uniqueName('slow');
    const groupId = uniqueName('g-slow');
    await createTopic(topic, 2);
    await produceMessages(topic, messages(40, 40));
    const kafka = newKafka(`bp-${groupId}`).consumer({
      groupId,
      sessionTimeout: 6000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 200,
    });
    let joins = 0;
    kafka.on(kafka.events.GROUP_JOIN, () => {
      joins += 1;
    });
    let handled = 0;
    const consumer = new BackpressureConsumer(kafka, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 4,
      maxInFlight: 8,
      handlerTimeoutMs: 10_000,
      handler: async () => {
        await sleep(2000);
        handled += 1;
      },
    });
    open.push(consumer);
    const startedAt = Date.now();
    await consumer.start();
    await waitFor(() => handled === 40, {
      timeoutMs: 60_000,
      message: 'slow handlers did not finish',
    });
    const tookMs = Date.now() - startedAt;
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
    // 40 messages x 2 s / 4 at once = 20 s: more than three session timeouts.
    expect(tookMs).toBeGreaterThan(3 * 6000);
    expect(joins).toBe(1);
  });

  it('pauses on high downstream latency, shrinks its concurrency, and recovers when latency falls', async () => {
    const topic = uniqueName('latency');
    const groupId = uniqueName('g-latency');
    await createTopic(topic, 3);
    const produced = messages(1500, 100);
    await produceMessages(topic, produced);

    let slow = false;
    let handled = 0;
    const events: string[] = [];
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 32,
      maxInFlight: 200,
      commitIntervalMs: 200,
      latency: { pauseAboveMs: 100, resumeBelowMs: 30, windowMs: 1000 },
      adaptiveConcurrency: { targetLatencyMs: 60, minConcurrency: 2, intervalMs: 200 },
      handler: async () => {
        await sleep(slow ? 150 : 5);
        handled += 1;
      },
    });
    consumer.on('latency.high', () => events.push('latency.high'));
    consumer.on('latency.normal', () => events.push('latency.normal'));
    consumer.on('flow.paused', (e) => events.push(`paused:${e.reason}`));
    consumer.on('flow.resumed', (e) => events.push(`resumed:${e.reason}`));
    const limits: number[] = [];
    consumer.on('concurrency.changed', (e) => limits.push(e.to));
    await consumer.start();
    await waitFor(() => handled > 200, { timeoutMs: 30_000, message: 'no progress' });
    slow = true;
    await waitFor(() => events.includes('latency.high'), {
      timeoutMs: 15_000,
      message: 'latency never high',
    });
    const lowest = () => Math.min(...limits);
    await waitFor(() => limits.length > 0 && lowest() < 32, {
      timeoutMs: 15_000,
      message: 'concurrency never shrank',
    });
    slow = false;
    await waitFor(() => events.includes('latency.normal'), {
      timeoutMs: 15_000,
      message: 'latency never normal',
    });
    await waitFor(() => handled >= produced.length, {
      timeoutMs: 60_000,
      message: 'not all handled',
    });
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(events.indexOf('latency.high')).toBeLessThan(events.indexOf('latency.normal'));
    expect(events).toContain('resumed:latency');
    console.info(`[latency] concurrency limits seen: ${limits.join(' ')}`);
  });

  it('loses nothing when a second member joins mid-stream and later leaves; duplicates stay within the in-flight bound', async () => {
    const topic = uniqueName('rebalance');
    const groupId = uniqueName('g-rebalance');
    await createTopic(topic, 4);
    const produced = messages(4000, 400);
    await produceMessages(topic, produced);

    const counts = new Map<string, number>();
    const handler = async (message: { value: Buffer | null }) => {
      await sleep(3);
      const value = message.value!.toString();
      counts.set(value, (counts.get(value) ?? 0) + 1);
    };
    const maxInFlight = 100;
    const common = {
      topics: [topic],
      fromBeginning: true,
      ordering: 'partition' as const,
      concurrency: 8,
      maxInFlight,
      commitIntervalMs: 300,
      handler,
    };
    const first = start(groupId, common);
    await first.consumer.start();
    await waitFor(() => counts.size > 500, {
      timeoutMs: 30_000,
      message: 'first member made no progress',
    });

    const second = start(groupId, common);
    const rebalances: string[] = [];
    const errors: string[] = [];
    first.consumer.on('consumer.error', (e) => errors.push(`first:${e.during}:${e.error.message}`));
    second.consumer.on('consumer.error', (e) =>
      errors.push(`second:${e.during}:${e.error.message}`),
    );
    first.consumer.on('offsets.committed', (e) =>
      rebalances.push(
        `first:commit:${e.offsets.map((o) => `${o.partition}@${o.offset}`).join('/')}`,
      ),
    );
    second.consumer.on('offsets.committed', (e) =>
      rebalances.push(
        `second:commit:${e.offsets.map((o) => `${o.partition}@${o.offset}`).join('/')}`,
      ),
    );
    first.consumer.on('group.rebalance', (e) =>
      rebalances.push(`first:${e.phase}:${e.assigned.length}`),
    );
    second.consumer.on('group.rebalance', (e) =>
      rebalances.push(`second:${e.phase}:${e.assigned.length}`),
    );
    await second.consumer.start();
    await waitFor(() => counts.size > 2500, {
      timeoutMs: 60_000,
      message: 'no progress with two members',
    });
    await second.consumer.close();
    await waitFor(() => counts.size === produced.length, {
      timeoutMs: 60_000,
      message: 'messages were lost',
    });
    await expectCommittedAtEnd(groupId, topic);
    await first.consumer.close();

    const duplicates = [...counts.values()].reduce((n, c) => n + (c - 1), 0);
    console.info(
      `[rebalance] duplicates ${duplicates}; events ${rebalances.join(', ')}; errors ${errors.join(' | ')}`,
    );
    for (const m of produced) expect(counts.get(m.value), m.value).toBeGreaterThanOrEqual(1);
    // Two rebalances (join and leave); each may redeliver at most what was in flight.
    expect(duplicates).toBeLessThanOrEqual(2 * 2 * maxInFlight);
    expect(rebalances.some((r) => r.startsWith('second:assigned'))).toBe(true);
  });

  it('hands the done-offsets metadata on at a rebalance: in key ordering a member joining and leaving mid-stream redoes only work in flight', async () => {
    const topic = uniqueName('rebalance-meta');
    const groupId = uniqueName('g-rebalance-meta');
    await createTopic(topic, 4);
    const produced = messages(6000, 600);
    await produceMessages(topic, produced);

    // In order of occurrence: `h member partition:offset` and `c member partition:offset:metadata`.
    const log: string[] = [];
    let dropped = 0;
    const admins = [newKafka(`bp-admin-${groupId}`).admin()];
    const member = (name: string) => {
      const m = start(groupId, {
        topics: [topic],
        fromBeginning: true,
        ordering: 'key',
        concurrency: 16,
        admin: admins[0]!,
        // Work is still in flight when a member rejoins, so the hand-over matters.
        rebalanceDrainTimeoutMs: 50,
        handler: async (message) => {
          // Some keys slow: completions run well out of offset order.
          await sleep(message.key!.toString().endsWith('7') ? 100 : Math.random() * 3);
          log.push(`h ${name} ${message.partition}:${message.offset}`);
        },
      });
      m.consumer.on('offsets.committed', (e) => {
        for (const o of e.offsets)
          log.push(`c ${name} ${o.partition}:${o.offset}:${o.metadata ?? ''}`);
      });
      m.consumer.on('group.rebalance', (e) => {
        if (e.phase === 'assigned') dropped += e.dropped;
      });
      return m;
    };
    try {
      const first = member('first');
      await first.consumer.start();
      const handled = () => log.filter((l) => l.startsWith('h ')).length;
      await waitFor(() => handled() > 1000, { timeoutMs: 30_000, message: 'no progress' });
      const second = member('second');
      await second.consumer.start();
      await waitFor(() => log.some((l) => l.startsWith('h second')), {
        timeoutMs: 60_000,
        message: 'the second member never got work',
      });
      await waitFor(() => handled() > 3500, { timeoutMs: 60_000, message: 'no progress with two' });
      await second.consumer.close();
      await waitFor(
        () =>
          new Set(log.filter((l) => l.startsWith('h ')).map((l) => l.split(' ')[2])).size ===
          produced.length,
        {
          timeoutMs: 60_000,
          message: 'messages were lost',
        },
      );
      await expectCommittedAtEnd(groupId, topic);
      await first.consumer.close();
    } finally {
      for (const admin of admins) await admin.disconnect();
    }

    const committed = new Map<number, { position: number; done: DoneRanges }>();
    const seen = new Set<string>();
    const redoneCommitted: string[] = [];
    let duplicates = 0;
    let withMetadata = 0;
    for (const line of log) {
      const [kind, , id = ''] = line.split(' ');
      const [p, o, metadata = ''] = id.split(':') as [string, string, string?];
      const partition = Number(p);
      const offset = Number(o);
      if (kind === 'c') {
        const decoded = decodeProgress(metadata, offset);
        expect(decoded.kind, metadata).not.toBe('ignored');
        if (decoded.kind === 'ranges') withMetadata += 1;
        committed.set(partition, {
          position: offset,
          done: decoded.kind === 'ranges' ? decoded.done : [],
        });
      } else if (seen.has(id)) {
        duplicates += 1;
        const c = committed.get(partition);
        if (c !== undefined && (offset < c.position || new DoneCursor(c.done).has(offset))) {
          redoneCommitted.push(`${id} (commit ${c.position})`);
        }
      } else {
        seen.add(id);
      }
    }
    console.info(
      `[rebalance-meta] duplicates ${duplicates}, in flight at reassignments ${dropped}, commits with metadata ${withMetadata}`,
    );
    // The mechanism ran: out-of-order completions were committed as metadata,
    // and work was in flight when partitions moved.
    expect(withMetadata).toBeGreaterThan(0);
    expect(dropped).toBeGreaterThan(0);
    // Nothing a commit covered, position or metadata, was handled again.
    expect(redoneCommitted).toEqual([]);
    // What was redone was in flight at a reassignment.
    expect(duplicates).toBeLessThanOrEqual(dropped);
  });

  it('commits what finished on close, and a new consumer of the group resumes exactly there', async () => {
    const topic = uniqueName('close');
    const groupId = uniqueName('g-close');
    await createTopic(topic, 2);
    const produced = messages(600, 30);
    await produceMessages(topic, produced);

    const firstRun = new Set<string>();
    const { consumer } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'partition',
      concurrency: 2,
      maxInFlight: 50,
      commitIntervalMs: 60_000,
      handler: async (message) => {
        await sleep(5);
        firstRun.add(message.value!.toString());
      },
    });
    await consumer.start();
    await waitFor(() => firstRun.size >= 150, { timeoutMs: 30_000, message: 'no progress' });
    await consumer.close({ drainTimeoutMs: 10_000 });
    const handledBeforeClose = firstRun.size;
    expect(handledBeforeClose).toBeLessThan(produced.length);

    // Everything handled was committed: the committed offsets cover exactly the handled prefix of each partition.
    const committed = await committedOffsets(groupId, topic);
    const committedTotal = [...committed.values()].reduce((n, o) => n + Math.max(0, o), 0);
    expect(committedTotal).toBe(handledBeforeClose);

    const secondRun: string[] = [];
    const next = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      handler: (message) => {
        secondRun.push(message.value!.toString());
      },
    });
    await next.consumer.start();
    await waitFor(() => secondRun.length >= produced.length - handledBeforeClose, {
      timeoutMs: 30_000,
      message: 'second consumer did not get the rest',
    });
    await sleep(500);
    await next.consumer.close();
    // No message handled twice across the two runs, none missing.
    expect(secondRun.filter((v) => firstRun.has(v))).toEqual([]);
    expect(new Set([...firstRun, ...secondRun]).size).toBe(produced.length);
  });
  it('reports a commit as done only when the broker took it: KafkaJS skips commits while its runner is stopped', async () => {
    const topic = uniqueName('unconfirmed');
    const groupId = uniqueName('g-unconfirmed');
    await createTopic(topic, 1);
    await produceMessages(topic, messages(50, 5));

    const warnings: string[] = [];
    const committedEvents: string[] = [];
    let handled = 0;
    // The last message finishes only after the prompt commit that follows
    // the first completion was confirmed, so the end position is still
    // uncommitted when KafkaJS is stopped below.
    let releaseLast: () => void = () => undefined;
    const lastMayFinish = new Promise<void>((resolve) => (releaseLast = resolve));
    const { consumer, kafka } = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      commitIntervalMs: 60_000,
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (_obj, msg) => warnings.push(msg ?? ''),
        error: () => undefined,
      },
      handler: async (message) => {
        if (message.offset === '49') await lastMayFinish;
        handled += 1;
      },
    });
    consumer.on('offsets.committed', (e) => {
      committedEvents.push(e.offsets.map((o) => `${o.partition}@${o.offset}`).join('/'));
      releaseLast();
    });
    await consumer.start();
    await waitFor(() => handled === 50 && consumer.inFlight === 0, {
      timeoutMs: 30_000,
      message: 'not all handled',
    });
    const before = [...committedEvents];
    const committedBefore = consumer.partitions()[0]?.committedOffset;
    expect(committedBefore).toBeLessThan(50);
    // Stop KafkaJS underneath. While its runner stops (waiting out the
    // fetch in progress), its commitOffsets resolves without sending anything.
    const stopping = kafka.stop();
    await consumer.commit();
    await stopping;
    expect(committedEvents).toEqual(before);
    expect(warnings.some((w) => w.includes('skipped an offset commit'))).toBe(true);
    expect((await committedOffsets(groupId, topic)).get(0)).toBe(committedBefore);
    expect(consumer.partitions()[0]?.committedOffset).toBe(committedBefore);
    await consumer.close();
  });
});
