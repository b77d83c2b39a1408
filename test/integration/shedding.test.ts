import type { Consumer, IHeaders, Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  DLQ_HEADERS,
  type BackpressureConsumerOptions,
  type DlqRoutedEvent,
  type MeasuredConsumer,
  type ShedEvent,
} from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

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

async function readAll(topic: string, expected: number) {
  const out: {
    where: string;
    key: string | null;
    value: string | null;
    headers: IHeaders;
  }[] = [];
  const reader = newKafka('bp-reader').consumer({
    groupId: uniqueName('reader'),
    maxWaitTimeInMs: 200,
  });
  await reader.connect();
  await reader.subscribe({ topics: [topic], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ partition, message }) => {
      out.push({
        where: `${partition}:${message.offset}`,
        key: message.key?.toString() ?? null,
        value: message.value?.toString() ?? null,
        headers: message.headers ?? {},
      });
    },
  });
  try {
    await waitFor(() => out.length >= expected, {
      timeoutMs: 30_000,
      message: `expected ${expected} messages in ${topic}, got ${out.length}`,
    });
    // Anything beyond the expected count would show up here.
    await sleep(500);
  } finally {
    await reader.disconnect();
  }
  return out;
}

const header = (headers: IHeaders, name: string) => headers[name]?.toString();
const where = (e: { partition: number; offset: string }) => `${e.partition}:${e.offset}`;

/**
 * Assignments the consumer went through. At-least-once allows redelivery
 * after a rebalance (a loaded machine can cost a member its session), so
 * counts are exact only when the first assignment was the only one.
 */
function assignments(consumer: MeasuredConsumer): () => number {
  let count = 0;
  consumer.on('group.rebalance', (e) => {
    if (e.phase === 'assigned') count += 1;
  });
  return () => count;
}

const MAX_AGE_MS = 60_000;
const HOUR_MS = 3_600_000;

/**
 * 300 messages over 3 partitions; every third one was written an hour ago
 * (CreateTime). Returns the records actually in the topic by
 * partition:offset: on a loaded machine a produce request can time out and
 * be retried by KafkaJS after the broker stored it, so a value can be there
 * twice, at two offsets. Each of those offsets must be shed or handled.
 */
async function produceMixed(topic: string) {
  const now = Date.now();
  const messages = Array.from({ length: 300 }, (_, i) => {
    const old = i % 3 === 0;
    return {
      key: `k${i % 17}`,
      value: `${old ? 'old' : 'new'}-${i}`,
      timestamp: String(old ? now - HOUR_MS : now),
    };
  });
  await produceMessages(topic, messages);
  const total = [...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0);
  const records = await readAll(topic, total);
  expect(records).toHaveLength(total);
  expect(new Set(records.map((r) => r.value))).toEqual(new Set(messages.map((m) => m.value)));
  const offsets = (prefix: string) =>
    new Set(records.filter((r) => r.value!.startsWith(prefix)).map((r) => r.where));
  return { old: offsets('old-'), fresh: offsets('new-'), total };
}

describe('load shedding against a real broker', () => {
  it('dead-letters messages older than maxAgeMs with reason shed and an event, handles the rest, commits to the end', async () => {
    const topic = uniqueName('shed');
    const groupId = uniqueName('g-shed');
    await createTopic(topic, 3);
    await createTopic(`${topic}.dlq`, 1);
    const { old, fresh } = await produceMixed(topic);

    const handled: string[] = [];
    const shed: ShedEvent[] = [];
    const routed: DlqRoutedEvent[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 8,
      commitIntervalMs: 200,
      deadLetter: { producer: await dlqProducer() },
      shed: { maxAgeMs: MAX_AGE_MS, action: 'dead-letter' },
      handler: (message) => {
        handled.push(where(message));
      },
    });
    consumer.on('message.shed', (e) => shed.push(e));
    consumer.on('dlq.routed', (e) => routed.push(e));
    const assigned = assignments(consumer);
    await consumer.start();

    await waitFor(
      () => new Set(handled).size === fresh.size && new Set(shed.map(where)).size === old.size,
      {
        timeoutMs: 60_000,
        message: () => `handled ${handled.length}/${fresh.size}, shed ${shed.length}/${old.size}`,
      },
    );
    await expectCommittedAtEnd(groupId, topic);

    // Every old message shed, never handled; every fresh one handled.
    expect(new Set(handled)).toEqual(fresh);
    expect(new Set(shed.map(where))).toEqual(old);
    if (assigned() === 1) {
      expect(shed).toHaveLength(old.size);
      expect(handled).toHaveLength(fresh.size);
    }
    for (const e of shed) {
      expect(e.action).toBe('dead-letter');
      expect(e.maxAgeMs).toBe(MAX_AGE_MS);
      expect(e.ageMs).toBeGreaterThan(HOUR_MS - 1);
      expect(e.topic).toBe(topic);
    }
    // Each shed event came after its dead letter was acknowledged.
    expect(routed).toHaveLength(shed.length);
    expect(new Set(routed.map(where))).toEqual(old);
    expect(routed.every((e) => e.reason === 'shed' && e.dlqTopic === `${topic}.dlq`)).toBe(true);
    expect(routed.every((e) => e.error.name === 'MessageShedError' && e.attempts === 0)).toBe(true);

    const letters = await readAll(`${topic}.dlq`, routed.length);
    const origin = (headers: IHeaders) =>
      `${header(headers, DLQ_HEADERS.originalPartition)}:${header(headers, DLQ_HEADERS.originalOffset)}`;
    expect(new Set(letters.map((l) => origin(l.headers)))).toEqual(old);
    for (const letter of letters) {
      expect(letter.value).toMatch(/^old-/);
      expect(header(letter.headers, DLQ_HEADERS.reason)).toBe('shed');
      expect(header(letter.headers, DLQ_HEADERS.errorName)).toBe('MessageShedError');
      expect(header(letter.headers, DLQ_HEADERS.errorMessage)).toContain(
        `shed.maxAgeMs (${MAX_AGE_MS} ms)`,
      );
      expect(header(letter.headers, DLQ_HEADERS.originalTopic)).toBe(topic);
      expect(header(letter.headers, DLQ_HEADERS.consumerGroup)).toBe(groupId);
      expect(header(letter.headers, DLQ_HEADERS.attempts)).toBe('0');
      const age = Date.now() - Number(header(letter.headers, DLQ_HEADERS.originalTimestamp));
      expect(age).toBeGreaterThan(HOUR_MS);
    }
  });

  it('skips old messages with an event, writes no dead letter, and still commits to the end', async () => {
    const topic = uniqueName('shed-skip');
    const groupId = uniqueName('g-shed-skip');
    await createTopic(topic, 3);
    const { old, fresh, total } = await produceMixed(topic);

    const handled: string[] = [];
    const shed: ShedEvent[] = [];
    const consumer = start(groupId, {
      topics: [topic],
      fromBeginning: true,
      concurrency: 8,
      commitIntervalMs: 200,
      shed: { maxAgeMs: MAX_AGE_MS, action: 'skip' },
      handler: (message) => {
        handled.push(where(message));
      },
    });
    consumer.on('message.shed', (e) => shed.push(e));
    let routed = 0;
    consumer.on('dlq.routed', () => (routed += 1));
    const assigned = assignments(consumer);
    await consumer.start();

    await waitFor(
      () => new Set(handled).size === fresh.size && new Set(shed.map(where)).size === old.size,
      {
        timeoutMs: 60_000,
        message: () => `handled ${handled.length}/${fresh.size}, shed ${shed.length}/${old.size}`,
      },
    );
    await expectCommittedAtEnd(groupId, topic);
    expect(new Set(handled)).toEqual(fresh);
    expect(new Set(shed.map(where))).toEqual(old);
    expect(shed.every((e) => e.action === 'skip' && e.ageMs > HOUR_MS - 1)).toBe(true);
    expect(routed).toBe(0);
    // Shed offsets count as done, like handled ones.
    expect(consumer.consumedCounts().get(topic)).toBe(handled.length + shed.length);
    if (assigned() === 1) {
      expect(shed).toHaveLength(old.size);
      expect(consumer.consumedCounts().get(topic)).toBe(total);
    }
    process.stdout.write(
      `shedding (skip): ${shed.length} shed events for ${old.size} old records, ${handled.length} handled of ${fresh.size}, ${total} records, ${assigned()} assignment(s)\n`,
    );
  });
});
