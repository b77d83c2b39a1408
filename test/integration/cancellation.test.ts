import type { Consumer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer, LagMonitor, RateLimitedProducer } from '../../src/index.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  getAdmin,
  newKafka,
  newProducer,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

/**
 * `{ signal }` on every lifecycle method and `await using` scopes, against
 * the real broker (issue 17). The fake-client versions, which pin down the
 * exact interleavings, are in test/unit/cancellation.test.ts.
 */

const open: BackpressureConsumer[] = [];

afterAll(async () => {
  await Promise.all(open.map((c) => c.close({ drainTimeoutMs: 1000 }).catch(() => undefined)));
  await disconnectAll();
});

function kafkaConsumer(groupId: string): Consumer {
  return newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    rebalanceTimeout: 20_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
}

/** Members of the group as the coordinator sees them. */
async function members(groupId: string): Promise<number> {
  const admin = await getAdmin();
  const { groups } = await admin.describeGroups([groupId]);
  return groups[0]?.members.length ?? 0;
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved' as const,
    (error: unknown) => error,
  );

describe('cancellation against a real broker', () => {
  it('start(): an abort once KafkaJS connected stops before subscribing, disconnects and rejects with the reason', async () => {
    const topic = await createTopic(uniqueName('abort-start'), 1);
    const groupId = uniqueName('g-abort-start');
    const kafka = kafkaConsumer(groupId);
    const consumer = new BackpressureConsumer(kafka, { topics: [topic], handler: async () => {} });
    open.push(consumer);
    const controller = new AbortController();
    const reason = new Error('deploy cancelled');
    let joined = false;
    kafka.on(kafka.events.CONNECT, () => controller.abort(reason));
    kafka.on(kafka.events.GROUP_JOIN, () => (joined = true));
    expect(await outcome(consumer.start({ signal: controller.signal }))).toBe(reason);
    expect(consumer.state).toBe('closed');
    expect(joined).toBe(false);
    expect(await members(groupId)).toBe(0);
  });

  it('start(): an abort once the consumer joined the group leaves the group cleanly', async () => {
    const topic = await createTopic(uniqueName('abort-join'), 2);
    const groupId = uniqueName('g-abort-join');
    const kafka = kafkaConsumer(groupId);
    const consumer = new BackpressureConsumer(kafka, { topics: [topic], handler: async () => {} });
    open.push(consumer);
    const controller = new AbortController();
    let joined = false;
    kafka.on(kafka.events.GROUP_JOIN, () => {
      joined = true;
      controller.abort(new Error('joined, now go'));
    });
    const result = await outcome(consumer.start({ signal: controller.signal }));
    expect(joined).toBe(true);
    expect((result as Error).message).toBe('joined, now go');
    expect(consumer.state).toBe('closed');
    // Disconnected: the member left, so the group is empty at once (no session timeout).
    expect(await members(groupId)).toBe(0);
  });

  it('close(): an abort abandons in-flight work as the drain timeout does; it is redelivered to the next consumer', async () => {
    const topic = await createTopic(uniqueName('abort-close'), 1);
    const groupId = uniqueName('g-abort-close');
    await produceMessages(
      topic,
      Array.from({ length: 3 }, (_, i) => ({ value: String(i) })),
    );
    const abandonedWith: unknown[] = [];
    const consumer = new BackpressureConsumer(kafkaConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: 4,
      handler: async (message, { signal }) => {
        if (message.offset === '0') return;
        // Hangs until the work is abandoned.
        await new Promise<void>((resolve) =>
          signal.addEventListener(
            'abort',
            () => {
              abandonedWith.push(signal.reason);
              resolve();
            },
            { once: true },
          ),
        );
        throw signal.reason;
      },
    });
    open.push(consumer);
    await consumer.start();
    await waitFor(() => consumer.activeHandlers === 2 && consumer.inFlight === 2, {
      message: 'two handlers hanging',
    });
    // Offset 0 is done: wait for the commit, so what follows tests the abort only.
    await consumer.commit();
    const controller = new AbortController();
    const closed = consumer.close({ drainTimeoutMs: 600_000, signal: controller.signal });
    const reason = new Error('shutdown hook deadline');
    controller.abort(reason);
    await closed;
    expect(consumer.state).toBe('closed');
    expect(abandonedWith).toEqual([reason, reason]);
    expect((await committedOffsets(groupId, topic)).get(0)).toBe(1);

    // The next member of the group handles what was abandoned.
    const seen: string[] = [];
    const next = new BackpressureConsumer(kafkaConsumer(groupId), {
      topics: [topic],
      handler: async (message) => {
        seen.push(message.offset);
      },
    });
    open.push(next);
    await next.start();
    await waitFor(() => seen.length >= 2, { message: 'offsets 1 and 2 redelivered' });
    expect(seen.sort()).toEqual(['1', '2']);
    await next.close();
    await expectCommittedAtEnd(groupId, topic);
  });

  it('onIdle() and onDrained(): an abort rejects the wait; the consumer goes on', async () => {
    const topic = await createTopic(uniqueName('abort-wait'), 1);
    const groupId = uniqueName('g-abort-wait');
    await produceMessages(
      topic,
      Array.from({ length: 4 }, (_, i) => ({ value: String(i) })),
    );
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const consumer = new BackpressureConsumer(kafkaConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: 4,
      maxInFlight: 4,
      handler: () => gate,
    });
    open.push(consumer);
    await consumer.start();
    await waitFor(() => consumer.inFlight === 4, { message: 'four messages in flight' });

    const idle = new AbortController();
    const drained = new AbortController();
    const idleWait = outcome(consumer.onIdle({ signal: idle.signal }));
    const drainedWait = outcome(consumer.onDrained({ signal: drained.signal }));
    idle.abort('idle: gave up');
    drained.abort('drained: gave up');
    expect(await idleWait).toBe('idle: gave up');
    expect(await drainedWait).toBe('drained: gave up');
    expect(consumer.state).toBe('running');
    expect(consumer.inFlight).toBe(4);

    release();
    await consumer.onIdle({ signal: AbortSignal.timeout(30_000) });
    await consumer.close();
    await expectCommittedAtEnd(groupId, topic);
  });

  it('LagMonitor: start(), sample() and stop() reject or return on an abort', async () => {
    const topic = await createTopic(uniqueName('abort-monitor'), 1);
    const groupId = uniqueName('g-abort-monitor');
    await produceMessages(topic, [{ value: 'a' }, { value: 'b' }]);
    const admin = await getAdmin();
    const options = {
      groupId,
      topics: [topic],
      intervalMs: 60_000,
      thresholds: { warningLag: 100, criticalLag: 1000 },
    };

    const sampler = new LagMonitor(admin, options);
    const sampling = new AbortController();
    const sampled = outcome(sampler.sample({ signal: sampling.signal }));
    sampling.abort('sample: not needed');
    expect(await sampled).toBe('sample: not needed');
    // The round ran to its end all the same.
    await waitFor(() => sampler.snapshot(), { message: 'the aborted round still completes' });
    expect(sampler.snapshot()?.total.lag).toBe(2);
    const stopping = new AbortController();
    stopping.abort();
    await sampler.stop({ signal: stopping.signal });
    expect(sampler.state).toBe('stopped');

    const starter = new LagMonitor(admin, options);
    const starting = new AbortController();
    const started = outcome(starter.start({ signal: starting.signal }));
    starting.abort('start: not needed');
    expect(await started).toBe('start: not needed');
    expect(starter.state).toBe('stopped');
    await starter.stop();
    await expect(starter.sample()).rejects.toMatchObject({ code: 'ERR_STATE' });
  });
});

describe('await using against a real broker', () => {
  it('leaving the scope closes the consumer, the producer and the monitor', async () => {
    const topic = await createTopic(uniqueName('using'), 2);
    const out = await createTopic(uniqueName('using-out'), 1);
    const groupId = uniqueName('g-using');
    await produceMessages(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 4}`, value: String(i) })),
    );
    const kafkaProducer = newProducer();
    await kafkaProducer.connect();
    let disconnected = false;
    kafkaProducer.on(kafkaProducer.events.DISCONNECT, () => (disconnected = true));
    const admin = await getAdmin();

    let outer: {
      consumer: BackpressureConsumer;
      producer: RateLimitedProducer;
      monitor: LagMonitor;
    };
    {
      await using producer = new RateLimitedProducer(kafkaProducer, { disconnectOnClose: true });
      await using consumer = new BackpressureConsumer(kafkaConsumer(groupId), {
        topics: [topic],
        fromBeginning: true,
        commitIntervalMs: 100,
        handler: async (message) => {
          await producer.send({ topic: out, messages: [{ value: message.value }] });
        },
      });
      await using monitor = new LagMonitor(admin, {
        groupId,
        topics: [topic],
        intervalMs: 200,
        thresholds: { warningLag: 100, criticalLag: 1000 },
      });
      outer = { consumer, producer, monitor };
      await consumer.start();
      await monitor.start();
      await waitFor(() => monitor.snapshot()?.total.lag === 0 && consumer.inFlight === 0, {
        message: 'everything consumed and committed, as the monitor sees it',
      });
      expect(consumer.state).toBe('running');
      expect(producer.state).toBe('open');
      expect(monitor.state).toBe('running');
    }
    expect(outer.monitor.state).toBe('stopped');
    expect(outer.consumer.state).toBe('closed');
    expect(outer.producer.state).toBe('closed');
    expect(disconnected).toBe(true);
    expect(await members(groupId)).toBe(0);
    await expectCommittedAtEnd(groupId, topic);
    const ends = await (await getAdmin()).fetchTopicOffsets(out);
    expect(Number(ends[0]?.high)).toBeGreaterThanOrEqual(20);
  });
});
