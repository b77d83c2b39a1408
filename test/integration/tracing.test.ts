import { AsyncLocalStorage } from 'node:async_hooks';
import { tracingChannel } from 'node:diagnostics_channel';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  NonRetriableError,
  RateLimitedProducer,
  TRACING_CHANNELS,
  type CommitTraceContext,
  type DeadLetterTraceContext,
  type HandleTraceContext,
  type ProduceTraceContext,
} from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  newKafka,
  newProducer,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

/**
 * The diagnostics_channel tracing channels, with a plain subscriber against
 * the real broker: every event of every channel recorded in order, and a
 * store bound to `handle`'s start seen from inside the handler.
 */

type Event = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error';
const EVENTS: Event[] = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];

let sequence = 0;

function record<C extends object>(name: string) {
  const channel = tracingChannel<unknown, C>(name);
  const seen: { event: Event; context: C; at: number }[] = [];
  const handlers = Object.fromEntries(
    EVENTS.map((event) => [event, (context: C) => seen.push({ event, context, at: ++sequence })]),
  ) as unknown as Parameters<typeof channel.subscribe>[0];
  channel.subscribe(handlers);
  return { channel, seen, stop: () => channel.unsubscribe(handlers) };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await disconnectAll();
});

describe('tracing channels against a real broker', () => {
  it('publish produce, handle, dead-letter and commit, each start to asyncEnd, with their payloads', async () => {
    const topic = await createTopic(uniqueName('trace'), 1);
    const dlq = await createTopic(`${topic}.dlq`, 1);
    const groupId = uniqueName('g-trace');

    const produce = record<ProduceTraceContext>(TRACING_CHANNELS.produce);
    const handle = record<HandleTraceContext>(TRACING_CHANNELS.handle);
    const deadLetter = record<DeadLetterTraceContext>(TRACING_CHANNELS.deadLetter);
    const commit = record<CommitTraceContext>(TRACING_CHANNELS.commit);
    cleanups.push(produce.stop, handle.stop, deadLetter.stop, commit.stop);
    // A store bound to the handle channel is active inside the handler.
    const store = new AsyncLocalStorage<string>();
    handle.channel.start.bindStore(store, (c) => `${c.message.offset}/${c.attempt}`);
    cleanups.push(() => void handle.channel.start.unbindStore(store));

    const kafkaProducer = newProducer();
    await kafkaProducer.connect();
    const producer = new RateLimitedProducer(kafkaProducer, { disconnectOnClose: false });
    cleanups.push(() => producer.close());
    await producer.send({
      topic,
      messages: [
        { value: 'ok-0' },
        { value: 'poison-1', headers: { trace: 'x' } },
        { value: 'ok-2' },
      ],
    });

    const inside: (string | undefined)[] = [];
    const consumer = new BackpressureConsumer(
      newKafka(`bp-${groupId}`).consumer({ groupId, maxWaitTimeInMs: 200 }),
      {
        topics: [topic],
        fromBeginning: true,
        commitIntervalMs: 100,
        deadLetter: { producer },
        handler: async (message) => {
          await Promise.resolve();
          inside.push(store.getStore());
          if (message.value!.toString().startsWith('poison')) {
            throw new NonRetriableError('cannot parse');
          }
        },
      },
    );
    cleanups.push(() => consumer.close({ drainTimeoutMs: 1000 }));
    await consumer.start();
    await expectCommittedAtEnd(groupId, topic);
    await waitFor(() => deadLetter.seen.some((e) => e.event === 'asyncEnd'), {
      message: 'the dead letter traced to its end',
    });

    // The handler ran inside the bound store, on every attempt.
    expect(inside).toEqual(['0/1', '1/1', '2/1']);

    // handle: one attempt per message, start then end then asyncStart/asyncEnd; the poison one with error.
    const handled = handle.seen.filter((e) => e.context.message.topic === topic);
    for (const offset of ['0', '1', '2']) {
      const events = handled.filter((e) => e.context.message.offset === offset);
      const expected: Event[] =
        offset === '1'
          ? ['start', 'end', 'error', 'asyncStart', 'asyncEnd']
          : ['start', 'end', 'asyncStart', 'asyncEnd'];
      expect(events.map((e) => e.event)).toEqual(expected);
      expect(events[0]?.context.groupId).toBe(groupId);
      expect(events[0]?.context.attempt).toBe(1);
    }
    const poison = handled.find((e) => e.context.message.offset === '1')!.context;
    expect(poison.error).toBeInstanceOf(NonRetriableError);
    expect(poison.message.headers['trace']?.toString()).toBe('x');

    // dead-letter: the poison message, its reason, written.
    const routed = deadLetter.seen.filter((e) => e.context.message.topic === topic);
    expect(routed.map((e) => e.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
    expect(routed[0]?.context).toMatchObject({
      groupId,
      reason: 'non-retriable',
      attempts: 1,
      result: true,
    });
    expect(routed[0]?.context.cause).toBeInstanceOf(NonRetriableError);

    // produce: the three records sent by the test, then the dead letter, each acknowledged.
    const sends = produce.seen.filter((e) => e.event === 'asyncEnd').map((e) => e.context);
    expect(sends.map((c) => c.record.topic)).toEqual([topic, dlq]);
    expect(sends[1]?.record.messages[0]?.value?.toString()).toBe('poison-1');
    expect(sends.every((c) => Array.isArray(c.result) && c.error === undefined)).toBe(true);
    // The dead letter's send happened within its dead-letter trace.
    const dlqSend = produce.seen.filter((e) => e.context.record.topic === dlq);
    expect(dlqSend[0]!.at).toBeGreaterThan(routed[0]!.at);
    expect(dlqSend.at(-1)!.at).toBeLessThan(routed.at(-1)!.at);

    // commit: the group's offsets, the last one at the end of the topic, confirmed by the broker.
    const commits = commit.seen.filter(
      (e) => e.event === 'asyncEnd' && e.context.groupId === groupId,
    );
    expect(commits.length).toBeGreaterThan(0);
    const last = commits.at(-1)!.context;
    expect(last.offsets).toEqual([{ topic, partition: 0, offset: '3' }]);
    expect(last.result).toEqual(last.offsets);
  });

  it('a failed send publishes error with what it rejected with', async () => {
    const produce = record<ProduceTraceContext>(TRACING_CHANNELS.produce);
    cleanups.push(produce.stop);
    const kafkaProducer = newProducer();
    await kafkaProducer.connect();
    const producer = new RateLimitedProducer(kafkaProducer, { disconnectOnClose: false });
    cleanups.push(() => producer.close());
    const reason = new Error('caller gave up');
    const sent = producer.send(
      { topic: uniqueName('never'), messages: [{ value: 'x' }] },
      { signal: AbortSignal.abort(reason) },
    );
    await expect(sent).rejects.toBe(reason);
    expect(produce.seen.map((e) => e.event)).toEqual([
      'start',
      'end',
      'error',
      'asyncStart',
      'asyncEnd',
    ]);
    expect(produce.seen[0]?.context.error).toBe(reason);
  });
});
