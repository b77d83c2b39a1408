import { afterAll, describe, expect, it } from 'vitest';
import type { Consumer, IHeaders, Producer, ProducerRecord, RecordMetadata } from 'kafkajs';
import {
  BackpressureConsumer,
  DLQ_HEADERS,
  NonRetriableError,
  RateLimitedProducer,
  type BackpressureConsumerOptions,
  type RecordSender,
} from '../../src/index.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  endOffsets,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const open: { close(): Promise<void> }[] = [];
let producer: Producer | undefined;

async function dlqProducer(): Promise<Producer> {
  if (!producer) {
    producer = newKafka('bp-dlq').producer();
    await producer.connect();
    open.push({ close: () => producer!.disconnect() });
  }
  return producer;
}

afterAll(async () => {
  for (const item of open.reverse()) await item.close().catch(() => undefined);
  await disconnectAll();
});

function kafkaConsumer(groupId: string): Consumer {
  return newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
}

function start<T>(groupId: string, options: BackpressureConsumerOptions<T>) {
  const consumer = new BackpressureConsumer(kafkaConsumer(groupId), options);
  open.unshift({ close: () => consumer.close({ drainTimeoutMs: 1000 }) });
  return consumer;
}

/** Reads every message of a topic from the beginning. */
async function readAll(topic: string, expected: number) {
  const out: { key: string | null; value: string | null; headers: IHeaders; partition: number }[] =
    [];
  const reader = newKafka('bp-reader').consumer({
    groupId: uniqueName('reader'),
    maxWaitTimeInMs: 200,
  });
  await reader.connect();
  await reader.subscribe({ topics: [topic], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message, partition }) => {
      out.push({
        key: message.key?.toString() ?? null,
        value: message.value?.toString() ?? null,
        headers: message.headers ?? {},
        partition,
      });
    },
  });
  try {
    await waitFor(() => out.length >= expected, {
      timeoutMs: 30_000,
      message: `expected ${expected} messages in ${topic}, got ${out.length}`,
    });
    await sleep(300);
  } finally {
    await reader.disconnect();
  }
  return out;
}

const header = (headers: IHeaders, name: string) => headers[name]?.toString();

describe('failure handling against a real broker', () => {
  it('dead-letters the 1% poison messages with every header, handles the rest and commits to the end', async () => {
    const topic = uniqueName('poison');
    const groupId = uniqueName('g-poison');
    await createTopic(topic, 3);
    await createTopic(`${topic}.dlq`, 1);
    const produced = Array.from({ length: 1000 }, (_, i) => ({
      key: `k${i % 37}`,
      value: i % 100 === 7 ? `poison-${i}` : `ok-${i}`,
      headers: { 'trace-id': `t-${i}` },
    }));
    await produceMessages(topic, produced);

    const handled = new Set<string>();
    const routed: string[] = [];
    const limited = new RateLimitedProducer(await dlqProducer(), {
      messagesPerSecond: 100,
      disconnectOnClose: false,
    });
    open.unshift({ close: () => limited.close() });
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 16,
      commitIntervalMs: 200,
      // Dead letters go through the rate-limited producer, as a service would wire it.
      deadLetter: { producer: limited, includeStack: true, maxStackLength: 300 },
      handler: (message) => {
        const value = message.value!.toString();
        if (value.startsWith('poison')) throw new NonRetriableError(`cannot parse ${value}`);
        handled.add(value);
      },
    });
    consumer.on('dlq.routed', (e) => routed.push(e.offset));
    await consumer.start();
    await waitFor(() => handled.size === 990 && routed.length === 10, {
      timeoutMs: 60_000,
      message: 'not all handled or routed',
    });
    await expectCommittedAtEnd(groupId, topic);

    const letters = await readAll(`${topic}.dlq`, 10);
    expect(letters).toHaveLength(10);
    const byValue = new Map(produced.map((m, i) => [m.value, i]));
    for (const letter of letters) {
      expect(letter.value).toMatch(/^poison-/);
      const i = byValue.get(letter.value!)!;
      expect(letter.key).toBe(produced[i]!.key);
      expect(header(letter.headers, 'trace-id')).toBe(`t-${i}`);
      expect(header(letter.headers, DLQ_HEADERS.originalTopic)).toBe(topic);
      const partition = Number(header(letter.headers, DLQ_HEADERS.originalPartition));
      expect(partition).toBeGreaterThanOrEqual(0);
      expect(partition).toBeLessThan(3);
      expect(Number(header(letter.headers, DLQ_HEADERS.originalOffset))).toBeGreaterThanOrEqual(0);
      expect(Number(header(letter.headers, DLQ_HEADERS.originalTimestamp))).toBeGreaterThan(
        Date.now() - 600_000,
      );
      expect(header(letter.headers, DLQ_HEADERS.consumerGroup)).toBe(groupId);
      expect(header(letter.headers, DLQ_HEADERS.reason)).toBe('non-retriable');
      expect(header(letter.headers, DLQ_HEADERS.errorName)).toBe('NonRetriableError');
      expect(header(letter.headers, DLQ_HEADERS.errorMessage)).toBe(`cannot parse ${letter.value}`);
      expect(header(letter.headers, DLQ_HEADERS.errorStack)!.length).toBeLessThanOrEqual(300);
      expect(header(letter.headers, DLQ_HEADERS.attempts)).toBe('1');
      expect(Date.parse(header(letter.headers, DLQ_HEADERS.failedAt)!)).toBeGreaterThan(
        Date.now() - 600_000,
      );
    }
    await consumer.close();
  });

  it('retries a transient failure with growing backoff and never dead-letters it', async () => {
    const topic = uniqueName('transient');
    const groupId = uniqueName('g-transient');
    await createTopic(topic, 1);
    await produceMessages(topic, [
      { key: 'a', value: 'flaky' },
      { key: 'b', value: 'fine' },
    ]);

    let calls = 0;
    const retries: { attempt: number; delayMs: number }[] = [];
    const routed: string[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      commitIntervalMs: 200,
      retry: { maxAttempts: 5, initialDelayMs: 100, multiplier: 3, jitter: 0 },
      deadLetter: { producer: await dlqProducer() },
      handler: (message) => {
        if (message.value!.toString() === 'flaky' && ++calls <= 2)
          throw new Error(`transient ${calls}`);
      },
    });
    consumer.on('message.retry', (e) => retries.push({ attempt: e.attempt, delayMs: e.delayMs }));
    consumer.on('dlq.routed', (e) => routed.push(e.offset));
    await consumer.start();
    await expectCommittedAtEnd(groupId, topic);
    expect(calls).toBe(3);
    expect(retries).toEqual([
      { attempt: 1, delayMs: 100 },
      { attempt: 2, delayMs: 300 },
    ]);
    expect(routed).toEqual([]);
    await consumer.close();
  });

  it('opens the circuit on an outage, pauses every partition, dead-letters nothing, and handles everything after', async () => {
    const topic = uniqueName('outage');
    const groupId = uniqueName('g-outage');
    await createTopic(topic, 3);
    // The DLQ exists, so a message wrongly dead-lettered would show up as routed instead of hanging.
    await createTopic(`${topic}.dlq`, 1);
    const produced = Array.from({ length: 1500 }, (_, i) => ({
      key: `k${i % 20}`,
      value: `m-${i}`,
    }));
    await produceMessages(topic, produced);

    let down = false;
    let downSince = 0;
    let recoveredAt = 0;
    const handled = new Set<string>();
    const states: string[] = [];
    const pausedFor = new Set<string>();
    const routed: string[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 8,
      commitIntervalMs: 200,
      retry: { maxAttempts: 2, initialDelayMs: 50 },
      circuitBreaker: {
        volumeThreshold: 5,
        errorThresholdPercentage: 50,
        resetTimeoutMs: 1000,
        rollingCountTimeoutMs: 2000,
        rollingCountBuckets: 10,
      },
      deadLetter: { producer: await dlqProducer() },
      handler: async (message) => {
        await sleep(20);
        if (down) throw new Error('downstream unavailable');
        handled.add(message.value!.toString());
      },
    });
    consumer.on('circuit.open', () => states.push('open'));

    consumer.on('circuit.half-open', () => states.push('half-open'));
    consumer.on('circuit.closed', () => states.push('closed'));
    // A partition already paused for another reason (a full queue) does not
    // pause again, so look at the state rather than at flow.paused events.
    consumer.on('circuit.open', () => {
      for (const p of consumer.partitions()) {
        if (p.paused && p.reasons.includes('circuit')) pausedFor.add(`${p.topic}:${p.partition}`);
      }
    });
    consumer.on('dlq.routed', (e) => routed.push(e.offset));
    await consumer.start();
    await waitFor(() => handled.size > 100, {
      timeoutMs: 30_000,
      message: 'no progress before the outage',
    });
    down = true;
    downSince = Date.now();

    await waitFor(() => states.includes('open'), {
      timeoutMs: 20_000,
      message: 'circuit never opened',
    });
    await sleep(Math.max(0, 4000 - (Date.now() - downSince)));
    down = false;
    const upAt = Date.now();
    await waitFor(() => handled.size === produced.length, {
      timeoutMs: 60_000,
      message: 'not everything handled after the outage',
    });
    recoveredAt = Date.now();
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(pausedFor.size).toBe(3);
    expect(states).toContain('half-open');
    expect(states.at(-1)).toBe('closed');
    expect(routed).toEqual([]);
    console.info(
      `[outage] circuit ${states.join(' -> ')}; all handled ${recoveredAt - upAt} ms after the downstream came back`,
    );
  });

  it('times out a handler that never settles, retries it, dead-letters it, and the partition moves on', async () => {
    const topic = uniqueName('timeout');
    const groupId = uniqueName('g-timeout');
    await createTopic(topic, 1);
    await createTopic(`${topic}.dlq`, 1);
    await produceMessages(topic, [
      { key: 'a', value: 'before' },
      { key: 'b', value: 'hang' },
      { key: 'c', value: 'after' },
    ]);
    const handled: string[] = [];
    let hangs = 0;
    const aborted: boolean[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      handlerTimeoutMs: 300,
      commitIntervalMs: 200,
      retry: { maxAttempts: 2, initialDelayMs: 50 },
      circuitBreaker: false,
      deadLetter: { producer: await dlqProducer() },
      handler: (message, { signal }) => {
        const value = message.value!.toString();
        if (value === 'hang') {
          hangs += 1;
          signal.addEventListener('abort', () => aborted.push(true));
          return new Promise<void>(() => undefined);
        }
        handled.push(value);
      },
    });
    const reasons: string[] = [];
    consumer.on('dlq.routed', (e) => reasons.push(`${e.reason}:${e.error.name}:${e.attempts}`));
    await consumer.start();
    await expectCommittedAtEnd(groupId, topic);
    expect(handled).toEqual(['before', 'after']);
    expect(hangs).toBe(2);
    expect(aborted).toHaveLength(2);
    expect(reasons).toEqual(['attempts-exhausted:HandlerTimeoutError:2']);
    const [letter] = await readAll(`${topic}.dlq`, 1);
    expect(letter!.value).toBe('hang');
    await consumer.close();
  });

  it('holds the partition at a message whose dead letter cannot be written, and moves on once the DLQ recovers', async () => {
    const topic = uniqueName('dlq-down');
    const groupId = uniqueName('g-dlq-down');
    await createTopic(topic, 2);
    await createTopic(`${topic}.dlq`, 1);
    const produced = Array.from({ length: 200 }, (_, i) => ({
      key: null,
      value: i === 20 ? 'poison' : `ok-${i}`,
      partition: i % 2,
    }));
    await produceMessages(topic, produced);
    const real = await dlqProducer();
    let dlqUp = false;
    // A sender that fails like an unreachable DLQ until told otherwise.
    const flakyDlq: RecordSender = {
      send: (record: ProducerRecord): Promise<RecordMetadata[]> =>
        dlqUp ? real.send(record) : Promise.reject(new Error('DLQ broker unreachable')),
    };
    const failures: number[] = [];
    const handled = new Set<string>();
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'partition',
      commitIntervalMs: 100,
      circuitBreaker: false,
      deadLetter: { producer: flakyDlq, retryInitialDelayMs: 100, retryMaxDelayMs: 400 },
      handler: (message) => {
        if (message.value!.toString() === 'poison') throw new NonRetriableError('poison');
        handled.add(message.value!.toString());
      },
    });
    consumer.on('dlq.failed', (e) => failures.push(e.failures));
    await consumer.start();
    // The other partition finishes; the poisoned one holds at offset 10 (message 20 is the 11th of partition 0).
    await waitFor(() => failures.length >= 5, {
      timeoutMs: 20_000,
      message: 'DLQ failures not reported',
    });
    const poisonPartition = 0;
    const poisonOffset = 10;
    for (let i = 0; i < 10; i += 1) {
      const committed = await committedOffsets(groupId, topic);
      expect(committed.get(poisonPartition) ?? -1).toBeLessThanOrEqual(poisonOffset);
      await sleep(150);
    }
    const ends = await endOffsets(topic);
    await waitFor(async () => (await committedOffsets(groupId, topic)).get(1) === ends.get(1), {
      timeoutMs: 20_000,
      message: 'the healthy partition did not keep flowing',
    });
    expect(consumer.partitions().find((p) => p.partition === poisonPartition)?.reasons).toContain(
      'dlq-unavailable',
    );

    dlqUp = true;
    await expectCommittedAtEnd(groupId, topic);
    const [letter] = await readAll(`${topic}.dlq`, 1);
    expect(letter!.value).toBe('poison');
    expect(header(letter!.headers, DLQ_HEADERS.originalOffset)).toBe(String(poisonOffset));
    expect(handled.size).toBe(199);
    await consumer.close();
  });
  it('runs a message bigger than maxInFlightBytes alone, and dead-letters one that fails to deserialize', async () => {
    const topic = uniqueName('bad-input');
    const groupId = uniqueName('g-bad-input');
    await createTopic(topic, 1);
    await createTopic(`${topic}.dlq`, 1);
    const huge = 'h'.repeat(200_000);
    await produceMessages(topic, [
      { key: 'a', value: JSON.stringify({ n: 1 }) },
      { key: 'b', value: JSON.stringify({ n: 2, pad: huge }) },
      { key: 'c', value: 'not json' },
      { key: 'd', value: JSON.stringify({ n: 4 }) },
    ]);
    const handled: number[] = [];
    let inFlightWithHuge = -1;
    const routed: string[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      maxInFlightBytes: 10_000,
      commitIntervalMs: 200,
      deadLetter: { producer: await dlqProducer() },
      deserialize: (message) =>
        JSON.parse(message.value!.toString()) as { n: number; pad?: string },
      handler: (message) => {
        if (message.payload.pad) inFlightWithHuge = consumer.inFlight;
        handled.push(message.payload.n);
      },
    });
    consumer.on('dlq.routed', (e) => routed.push(`${e.offset}:${e.reason}:${e.attempts}`));
    await consumer.start();
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();

    expect(handled.sort()).toEqual([1, 2, 4]);
    // Bigger than the whole byte bound: admitted only when nothing else was in flight.
    expect(inFlightWithHuge).toBe(1);
    expect(routed).toEqual(['2:deserialization:0']);
    const [letter] = await readAll(`${topic}.dlq`, 1);
    expect(letter!.value).toBe('not json');
    expect(header(letter!.headers, DLQ_HEADERS.errorName)).toBe('SyntaxError');
  });

  it('marks a dead letter made on a guess with x-bp-guess: true, and one made on evidence not at all', async () => {
    // On a guess: `partition` ordering, one partition whose head always
    // fails, no health check. Nothing else can run, so nothing can tell
    // poison from an outage; after a stall the consumer guesses. Nothing
    // ran before, so the downstream is not in doubt and the stall is short.
    const guessTopic = uniqueName('guess');
    const guessGroup = uniqueName('g-guess');
    await createTopic(guessTopic, 1);
    await createTopic(`${guessTopic}.dlq`, 1);
    await produceMessages(
      guessTopic,
      Array.from({ length: 21 }, (_, i) => ({
        key: `k${i}`,
        value: i === 0 ? 'poison-0' : `ok-${i}`,
      })),
    );
    const guessHandled = new Set<string>();
    const guessRouted: { offset: string; reason: string; guess: boolean | undefined }[] = [];
    const guessing = start(guessGroup, {
      topics: [guessTopic],
      fromBeginning: true,
      ordering: 'partition',
      commitIntervalMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 10 },
      deadLetter: { producer: await dlqProducer() },
      handler: (message) => {
        const value = message.value!.toString();
        if (value.startsWith('poison')) throw new Error(`always fails: ${value}`);
        guessHandled.add(value);
      },
    });
    guessing.on('dlq.routed', (e) =>
      guessRouted.push({ offset: e.offset, reason: e.reason, guess: e.guess }),
    );
    await guessing.start();
    await waitFor(() => guessHandled.size === 20 && guessRouted.length === 1, {
      timeoutMs: 30_000,
      message: () => `guess: handled ${guessHandled.size}, routed ${guessRouted.length}`,
    });
    await expectCommittedAtEnd(guessGroup, guessTopic);
    await guessing.close();
    expect(guessRouted).toEqual([{ offset: '0', reason: 'attempts-exhausted', guess: true }]);
    const [guessed] = await readAll(`${guessTopic}.dlq`, 1);
    expect(guessed!.value).toBe('poison-0');
    expect(header(guessed!.headers, DLQ_HEADERS.originalOffset)).toBe('0');
    expect(header(guessed!.headers, DLQ_HEADERS.reason)).toBe('attempts-exhausted');
    expect(header(guessed!.headers, DLQ_HEADERS.guess)).toBe('true');

    // On evidence: `key` ordering, the other keys succeed while the poison
    // message fails its attempts, so it is blamed on their evidence.
    const evidenceTopic = uniqueName('evidence');
    const evidenceGroup = uniqueName('g-evidence');
    await createTopic(evidenceTopic, 1);
    await createTopic(`${evidenceTopic}.dlq`, 1);
    await produceMessages(
      evidenceTopic,
      Array.from({ length: 200 }, (_, i) => ({
        key: `k${i % 50}`,
        value: i === 3 ? 'poison-3' : `ok-${i}`,
      })),
    );
    const evidenceHandled = new Set<string>();
    const evidenceRouted: { offset: string; reason: string; guess: boolean | undefined }[] = [];
    const blaming = start(evidenceGroup, {
      topics: [evidenceTopic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 4,
      commitIntervalMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 10 },
      deadLetter: { producer: await dlqProducer() },
      handler: async (message) => {
        const value = message.value!.toString();
        // Slow enough that the others are still running while it fails.
        await sleep(5);
        if (value.startsWith('poison')) throw new Error(`always fails: ${value}`);
        evidenceHandled.add(value);
      },
    });
    blaming.on('dlq.routed', (e) =>
      evidenceRouted.push({ offset: e.offset, reason: e.reason, guess: e.guess }),
    );
    await blaming.start();
    await waitFor(() => evidenceHandled.size === 199 && evidenceRouted.length === 1, {
      timeoutMs: 30_000,
      message: () => `evidence: handled ${evidenceHandled.size}, routed ${evidenceRouted.length}`,
    });
    await expectCommittedAtEnd(evidenceGroup, evidenceTopic);
    await blaming.close();
    expect(evidenceRouted).toEqual([
      { offset: '3', reason: 'attempts-exhausted', guess: undefined },
    ]);
    const [blamed] = await readAll(`${evidenceTopic}.dlq`, 1);
    expect(blamed!.value).toBe('poison-3');
    expect(header(blamed!.headers, DLQ_HEADERS.reason)).toBe('attempts-exhausted');
    expect(blamed!.headers).not.toHaveProperty(DLQ_HEADERS.guess);
  });

  it('with a health check and no dead-letter topic, holds a stalled head visibly while the other partitions go on, then moves on once it succeeds', async () => {
    // docs/failures.md: without `deadLetter`, a message that exhausts its
    // attempts holds its partition (reason `message-failed`) and is tried
    // again every `retry.maxDelayMs`, a `message.failed` event each time;
    // a stall does not ask the health check then (a healthy answer would
    // have nowhere to send the message).
    const topic = uniqueName('hold-check');
    const groupId = uniqueName('g-hold-check');
    await createTopic(topic, 3);
    const perPartition = 30;
    const poisonOffset = 5;
    const batch = (from: number, count: number, partitions: number[]) =>
      Array.from({ length: count * partitions.length }, (_, i) => {
        const partition = partitions[i % partitions.length]!;
        const n = from + Math.floor(i / partitions.length);
        const poison = partition === 0 && n === poisonOffset;
        return { partition, key: `k${n}`, value: poison ? 'poison' : `ok-${partition}-${n}` };
      });
    await produceMessages(topic, batch(0, perPartition, [0, 1, 2]));
    let ends = await endOffsets(topic);
    const ledger = new Ledger('hold-check');
    ledger.expectOffsets(ends);
    const othersDone = () =>
      [1, 2].every((p) => {
        for (let o = 0; o < ends.get(p)!; o += 1)
          if (ledger.handledCount(offsetId(p, o)) === 0) return false;
        return true;
      });
    let fails = true;
    let poisonCalls = 0;
    let checks = 0;
    const failed: { partition: number; offset: string; retryInMs: number }[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'partition',
      commitIntervalMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 200 },
      circuitBreaker: {
        healthCheck: async () => {
          checks += 1;
          return true;
        },
      },
      handler: async (message) => {
        if (message.value!.toString() === 'poison' && fails) {
          // Its first failure comes once the other partitions are done, so
          // no success follows it: its failures are a stall, the case a
          // health check would decide if there were a DLQ.
          if ((poisonCalls += 1) === 1) await waitFor(othersDone, { timeoutMs: 20_000 });
          throw new Error('not yet');
        }
        ledger.handled(offsetId(message.partition, message.offset));
      },
    });
    consumer.on('message.failed', (e) =>
      failed.push({ partition: e.partition, offset: e.offset, retryInMs: e.retryInMs }),
    );
    await consumer.start();

    const heldAtPoison = async () => {
      const committed = await committedOffsets(groupId, topic);
      return (
        committed.get(0) === poisonOffset &&
        committed.get(1) === ends.get(1) &&
        committed.get(2) === ends.get(2)
      );
    };
    // The other partitions reach their end; the held one commits up to the
    // failing message and no further, and says why.
    await waitFor(heldAtPoison, {
      timeoutMs: 30_000,
      message: 'partitions 1 and 2 at their end, partition 0 at the poison',
    });
    await waitFor(
      () =>
        failed.length >= 3 &&
        consumer
          .partitions()
          .find((p) => p.partition === 0)
          ?.reasons.includes('message-failed'),
      { timeoutMs: 10_000, message: () => `held visibly (${failed.length} message.failed)` },
    );
    // The other partitions keep going while it holds.
    await produceMessages(topic, batch(perPartition, 20, [1, 2]));
    ends = await endOffsets(topic);
    ledger.expectOffsets(ends);
    await waitFor(heldAtPoison, {
      timeoutMs: 30_000,
      message: 'the new messages of partitions 1 and 2 committed while partition 0 holds',
    });
    for (let i = 0; i < 5; i += 1) {
      expect((await committedOffsets(groupId, topic)).get(0)).toBe(poisonOffset);
      await sleep(100);
    }
    for (const p of consumer.partitions().filter((p) => p.partition !== 0)) {
      expect(p.reasons).not.toContain('message-failed');
    }
    expect(failed.every((e) => e.partition === 0 && e.offset === String(poisonOffset))).toBe(true);
    expect(failed[0]!.retryInMs).toBe(200);
    // Not skipped: nothing behind it ran.
    for (let offset = poisonOffset; offset < ends.get(0)!; offset += 1) {
      expect(ledger.handledCount(offsetId(0, offset)), `0:${offset}`).toBe(0);
    }

    fails = false;
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
    ledger.note('message.failed', failed.length);
    ledger.note('poisonCalls', poisonCalls);
    ledger.print();
    ledger.assertComplete({ maxDuplicates: 0 });
    expect(checks).toBe(0);
  });
});
