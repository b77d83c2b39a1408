// Fault case 5, DLQ down: the dead-letter topic cannot be written for a while
// (it does not exist yet, and the producer may not create it). Poison
// messages then hold their partitions: the committed offset of a partition
// never passes its first poison message, nothing is lost, and once the topic
// exists the dead letters are written and everything is committed.

import { afterAll, describe, expect, it } from 'vitest';
import type { ProducerRecord, RecordMetadata } from 'kafkajs';
import {
  BackpressureConsumer,
  NonRetriableError,
  RateLimitedProducer,
  type RecordSender,
} from '../../src/index.js';
import {
  faultConsumer,
  ledgerDeadLetters,
  seconds,
  sleep,
  trapUnhandled,
} from '../helpers/faults.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  endOffsets,
  getProducer,
  expectCommittedAtEnd,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const PARTITIONS = 3;
const MESSAGES = 3000;
const DOWN_MS = Number(process.env['DLQ_DOWN_MS'] ?? 10_000);

const trap = trapUnhandled();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await disconnectAll();
  trap.dispose();
});

describe('fault: DLQ down', () => {
  it('holds each partition at its first poison message while the DLQ cannot be written, then recovers', async () => {
    const started = Date.now();
    const topic = uniqueName('dlq-down');
    const dlqTopic = `${topic}.dlq`;
    const groupId = uniqueName('g-dlq-down');
    await createTopic(topic, PARTITIONS);
    // Explicit partitions so every message's offset is known: message i is
    // offset floor(i / PARTITIONS) of partition i % PARTITIONS.
    await produceMessages(
      topic,
      Array.from({ length: MESSAGES }, (_, i) => ({
        key: `k${i % 60}`,
        value: `m-${i}`,
        partition: i % PARTITIONS,
      })),
    );
    const isPoison = (i: number) => i >= 300 && i % 97 === 0;
    const firstPoison = new Map<number, number>();
    for (let i = 0; i < MESSAGES; i += 1) {
      const p = i % PARTITIONS;
      if (isPoison(i) && !firstPoison.has(p)) firstPoison.set(p, Math.floor(i / PARTITIONS));
    }
    expect(firstPoison.size).toBe(PARTITIONS);

    // Short KafkaJS retries: each failed dead-letter write takes about a second.
    const kafkaProducer = newKafka('bp-dlq-down', {
      retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 },
    }).producer({ allowAutoTopicCreation: false });
    await kafkaProducer.connect();
    const dlq = new RateLimitedProducer(kafkaProducer, { messagesPerSecond: 1000 });
    closers.push(() => dlq.close({ timeoutMs: 2000 }));

    const ledger = new Ledger('dlq-down');
    const failures: string[] = [];
    const consumer = new BackpressureConsumer(faultConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 16,
      maxInFlight: 300,
      commitIntervalMs: 100,
      circuitBreaker: false,
      deadLetter: { producer: dlq, retryInitialDelayMs: 200, retryMaxDelayMs: 1000 },
      handler: async (message) => {
        await sleep(Math.random() * 2);
        const i = Number(message.value!.toString().slice(2));
        if (isPoison(i)) throw new NonRetriableError(`poison m-${i}`);
        ledger.handled(offsetId(message.partition, message.offset));
      },
    });
    closers.push(() => consumer.close({ drainTimeoutMs: 1000 }));
    consumer.on('dlq.failed', (e) => failures.push(`${e.partition}:${e.offset}`));
    await consumer.start();

    await waitFor(() => failures.length >= PARTITIONS * 2, {
      timeoutMs: 30_000,
      message: 'no dead-letter failures reported',
    });
    // While the DLQ is down: poll the committed offsets; none may pass its
    // partition's first poison message.
    const downUntil = Date.now() + DOWN_MS;
    let polls = 0;
    const highest = new Map<number, number>();
    while (Date.now() < downUntil) {
      const committed = await committedOffsets(groupId, topic);
      for (const [p, offset] of committed) {
        highest.set(p, Math.max(highest.get(p) ?? 0, offset));
        expect(offset, `partition ${p} committed past its poison message`).toBeLessThanOrEqual(
          firstPoison.get(p)!,
        );
      }
      polls += 1;
      await sleep(200);
    }
    const held = consumer.partitions().filter((p) => p.reasons.includes('dlq-unavailable'));
    const handledWhileDown = ledger.accountedCount;

    const upAt = Date.now();
    await createTopic(dlqTopic, 1);
    ledger.expectOffsets(await endOffsets(topic));
    const poisonIds = new Set<string>();
    for (let i = 0; i < MESSAGES; i += 1)
      if (isPoison(i)) poisonIds.add(offsetId(i % PARTITIONS, Math.floor(i / PARTITIONS)));
    await expectCommittedAtEnd(groupId, topic);
    await ledgerDeadLetters(ledger, dlqTopic, poisonIds.size);
    const recoveredMs = Date.now() - upAt;
    await consumer.close();

    ledger.note('down', seconds(DOWN_MS));
    ledger.note('dlqFailed', failures.length);
    ledger.note('heldPartitions', held.length);
    ledger.note('committedWhileDown', [...highest].map(([p, o]) => `${p}@${o}`).join(','));
    ledger.note('firstPoison', [...firstPoison].map(([p, o]) => `${p}@${o}`).join(','));
    ledger.note('handledWhileDown', handledWhileDown);
    ledger.note('polls', polls);
    ledger.note('recovered', seconds(recoveredMs));
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    expect(held.length).toBe(PARTITIONS);
    ledger.assertComplete({
      maxDuplicates: 0,
      mustDeadLetter: poisonIds,
      mayDeadLetter: (id, reason) => poisonIds.has(id) && reason === 'non-retriable',
    });
    trap.assertNone();
  });

  it('keeps the other partitions flowing while work held behind an unwritable dead letter fills the queue past its low mark', async () => {
    // Regression: messages held behind a dead letter that cannot be written
    // cannot drain, yet they counted toward the queue-full low mark. With
    // more of them than the low mark, queue-full never cleared: every
    // partition stayed paused and the batch loop waited for a drain that
    // could not come, so one partition's DLQ trouble stopped them all.
    const topic = uniqueName('dlq-held');
    const groupId = uniqueName('g-dlq-held');
    await createTopic(topic, 2);
    // Partition 0: a poison message first, then 80 messages of the same key,
    // which key ordering keeps waiting behind it. Partition 1: healthy.
    await produceMessages(
      topic,
      Array.from({ length: 81 }, (_, i) => ({ key: 'hot', value: `hot-${i}`, partition: 0 })),
    );
    // Many small record batches: a fetch returns whole batches, and partition
    // 1 must need many fetches (so it must be resumed) to finish.
    for (let b = 0; b < 40; b += 1) {
      await produceMessages(
        topic,
        Array.from({ length: 10 }, (_, i) => ({
          key: `k${i}`,
          value: `ok-${b * 10 + i}`,
          partition: 1,
        })),
      );
    }
    let dlqUp = false;
    const real = await getProducer();
    const flaky: RecordSender = {
      send: (record: ProducerRecord): Promise<RecordMetadata[]> =>
        dlqUp ? real.send(record) : Promise.reject(new Error('DLQ unreachable')),
    };
    const ledger = new Ledger('dlq-held');
    const consumer = new BackpressureConsumer(
      // Small fetches: partition 1 needs many, so it must be resumed to finish.
      faultConsumer(groupId, { maxBytesPerPartition: 2048, maxBytes: 4096 }),
      {
        topics: [topic],
        fromBeginning: true,
        ordering: 'key',
        concurrency: 8,
        maxInFlight: 100,
        commitIntervalMs: 100,
        circuitBreaker: false,
        deadLetter: { producer: flaky, retryInitialDelayMs: 100, retryMaxDelayMs: 300 },
        handler: (message) => {
          if (message.value!.toString() === 'hot-0') throw new NonRetriableError('poison');
          ledger.handled(offsetId(message.partition, message.offset));
        },
      },
    );
    closers.push(() => consumer.close({ drainTimeoutMs: 1000 }));
    await consumer.start();
    const ends = await endOffsets(topic);
    await waitFor(async () => (await committedOffsets(groupId, topic)).get(1) === ends.get(1), {
      timeoutMs: 30_000,
      message: () =>
        `partition 1 stopped while partition 0 was held: ${JSON.stringify(consumer.partitions())}`,
    });
    expect((await committedOffsets(groupId, topic)).get(0) ?? 0).toBe(0);

    await createTopic(`${topic}.dlq`, 1);
    dlqUp = true;
    await expectCommittedAtEnd(groupId, topic);
    await consumer.close();
    ledger.expectOffsets(ends);
    await ledgerDeadLetters(ledger, `${topic}.dlq`, 1);
    ledger.print();
    ledger.assertComplete({ maxDuplicates: 0, mayDeadLetter: (id) => id === offsetId(0, 0) });
  });
});
