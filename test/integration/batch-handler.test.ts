import { afterAll, describe, expect, it } from 'vitest';
import type { Consumer, IHeaders, Producer } from 'kafkajs';
import {
  BackpressureConsumer,
  DLQ_HEADERS,
  type BackpressureConsumerOptions,
  type InboundMessage,
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
import { Ledger, offsetId } from '../helpers/ledger.js';

/**
 * Batch handlers against a real broker, in `partition` and `key` ordering:
 * nothing lost, order kept per key, a poison message inside a batch
 * dead-lettered alone with its headers while the rest is handled, a batch
 * that throws once retried whole, an outage of the downstream that opens
 * the circuit and dead-letters nothing, and a close or a rebalance in the
 * middle of batches that loses nothing.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const open: { close(): Promise<void> }[] = [];
let producer: Producer | undefined;

async function dlqProducer(): Promise<Producer> {
  if (!producer) {
    producer = newKafka('bp-batch-dlq').producer();
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
  const out: { value: string | null; headers: IHeaders }[] = [];
  const reader = newKafka('bp-batch-reader').consumer({
    groupId: uniqueName('reader'),
    maxWaitTimeInMs: 200,
  });
  await reader.connect();
  await reader.subscribe({ topics: [topic], fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      out.push({ value: message.value?.toString() ?? null, headers: message.headers ?? {} });
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
const idOf = (m: InboundMessage<unknown>) => `${m.partition}@${m.offset}`;
const indexOf = (m: InboundMessage<unknown>) => Number(m.value!.toString().split('-')[1]);

describe.each(['partition', 'key'] as const)(
  'batch handler against a real broker (%s ordering)',
  (ordering) => {
    it('loses nothing, keeps order per key, dead-letters each poison alone, retries a failed batch whole', async () => {
      const topic = uniqueName(`batch-${ordering}`);
      const groupId = uniqueName(`g-batch-${ordering}`);
      await createTopic(topic, 3);
      await createTopic(`${topic}.dlq`, 1);
      const total = 600;
      const poison = new Set([42, 242, 442]);
      const produced = Array.from({ length: total }, (_, i) => ({
        key: `k${i % 23}`,
        value: poison.has(i) ? `poison-${i}` : `ok-${i}`,
        headers: { 'trace-id': `t-${i}` },
      }));
      await produceMessages(topic, produced);

      /** Per key, the message indices in the order the handler succeeded on them. */
      const handled = new Map<string, number[]>();
      const distinct = new Set<number>();
      const calls: string[][] = [];
      let thrownOnce: string[] | undefined;
      let maxBatch = 0;
      const routed: string[] = [];
      const consumer = start(groupId, {
        topics: [topic],
        fromBeginning: true,
        ordering,
        concurrency: 4,
        commitIntervalMs: 200,
        // Failed calls are many here by design (poison splits); the breaker
        // is the subject of its own tests.
        circuitBreaker: false,
        retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 200 },
        deadLetter: { producer: await dlqProducer() },
        batch: { maxMessages: 50, maxWaitMs: 20 },
        batchHandler: async (messages) => {
          calls.push(messages.map(idOf));
          maxBatch = Math.max(maxBatch, messages.length);
          await sleep(5);
          if (messages.some((m) => m.value!.toString().startsWith('poison'))) {
            throw new Error('poison in batch');
          }
          if (thrownOnce === undefined && messages.length > 1) {
            thrownOnce = messages.map(idOf);
            throw new Error('transient');
          }
          for (const m of messages) {
            const key = m.key!.toString();
            const list = handled.get(key) ?? [];
            list.push(indexOf(m));
            handled.set(key, list);
            distinct.add(indexOf(m));
          }
        },
      });
      consumer.on('dlq.routed', (e) => routed.push(`${e.partition}@${e.offset}`));
      await consumer.start();
      await waitFor(() => distinct.size === total - poison.size && routed.length === poison.size, {
        timeoutMs: 90_000,
        message: () => `handled ${distinct.size}, routed ${routed.length}`,
      });
      await expectCommittedAtEnd(groupId, topic);

      // Batches, not single messages.
      expect(maxBatch).toBeGreaterThan(1);
      // The batch that threw once came back whole, as the very next call of its first message.
      const failed = thrownOnce!;
      const next = calls.slice(calls.findIndex((c) => c.join() === failed.join()) + 1);
      expect(next.find((c) => c.includes(failed[0]!))).toEqual(failed);
      // Order kept per key, among the messages handled.
      for (const [key, list] of handled) {
        const firsts = list.filter((index, i) => list.indexOf(index) === i);
        expect(firsts, `key ${key}`).toEqual([...firsts].sort((a, b) => a - b));
      }
      expect([...distinct].sort((a, b) => a - b)).toEqual(
        produced.map((_, i) => i).filter((i) => !poison.has(i)),
      );

      const letters = await readAll(`${topic}.dlq`, poison.size);
      expect(letters.map((l) => l.value).sort()).toEqual(
        [...poison].map((i) => `poison-${i}`).sort(),
      );
      for (const letter of letters) {
        const i = Number(letter.value!.split('-')[1]);
        expect(header(letter.headers, 'trace-id')).toBe(`t-${i}`);
        expect(header(letter.headers, DLQ_HEADERS.originalTopic)).toBe(topic);
        expect(header(letter.headers, DLQ_HEADERS.consumerGroup)).toBe(groupId);
        expect(header(letter.headers, DLQ_HEADERS.reason)).toBe('attempts-exhausted');
        expect(header(letter.headers, DLQ_HEADERS.errorMessage)).toBe('poison in batch');
        expect(header(letter.headers, DLQ_HEADERS.attempts)).toBe('2');
      }
      // Each poison reached the handler alone before it was dead-lettered.
      for (const id of routed) expect(calls.some((c) => c.length === 1 && c[0] === id)).toBe(true);
      await consumer.close();
    });

    it('an outage: every call fails for seconds, the circuit opens, nothing is dead-lettered, all is handled after', async () => {
      const topic = uniqueName(`batch-outage-${ordering}`);
      const groupId = uniqueName(`g-batch-outage-${ordering}`);
      await createTopic(topic, 3);
      // The DLQ exists, so a message wrongly dead-lettered would land there instead of hanging.
      await createTopic(`${topic}.dlq`, 1);
      const total = 900;
      await produceMessages(
        topic,
        Array.from({ length: total }, (_, i) => ({ key: `k${i % 31}`, value: `m-${i}` })),
      );
      const ledger = new Ledger(`batch-outage-${ordering}`);
      ledger.expectOffsets(await endOffsets(topic));
      const outageMs = 4000;
      let handled = 0;
      let downSince = 0;
      let down = false;
      const calls = { total: 0, failed: 0, whileOpen: 0 };
      const states: string[] = [];
      const routed: string[] = [];
      const consumer = start(groupId, {
        topics: [topic],
        fromBeginning: true,
        ordering,
        concurrency: 2,
        commitIntervalMs: 200,
        retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 200 },
        // A short window, so the breaker opens soon; a stall in doubt lasts
        // six windows (12 s), longer than the outage, so no guess is due.
        circuitBreaker: {
          volumeThreshold: 5,
          errorThresholdPercentage: 50,
          resetTimeoutMs: 500,
          rollingCountTimeoutMs: 2000,
          rollingCountBuckets: 10,
        },
        deadLetter: { producer: await dlqProducer() },
        batch: { maxMessages: 20, maxWaitMs: 10 },
        batchHandler: async (messages) => {
          calls.total += 1;
          if (consumer.circuitState === 'open') calls.whileOpen += 1;
          await sleep(30);
          // The downstream goes down for good once a part of the topic is done.
          if (!down && downSince === 0 && handled >= 150) {
            down = true;
            downSince = Date.now();
          }
          if (down) {
            calls.failed += 1;
            throw new Error('downstream unavailable');
          }
          for (const m of messages) {
            if (ledger.handledCount(offsetId(m.partition, m.offset)) === 0) handled += 1;
            ledger.handled(offsetId(m.partition, m.offset));
          }
        },
      });
      consumer.on('circuit.open', () => states.push('open'));
      consumer.on('circuit.half-open', () => states.push('half-open'));
      consumer.on('circuit.closed', () => states.push('closed'));
      consumer.on('dlq.routed', (e) => routed.push(`${e.partition}@${e.offset}:${e.reason}`));
      await consumer.start();
      await waitFor(() => states.includes('open'), {
        timeoutMs: 30_000,
        message: () => `circuit never opened (handled ${handled}, down ${down})`,
      });
      await sleep(Math.max(0, outageMs - (Date.now() - downSince)));
      const handledInOutage = handled;
      down = false;
      await waitFor(() => ledger.isComplete(), {
        timeoutMs: 60_000,
        message: () => `after the outage: ${ledger.summary()}`,
      });
      await expectCommittedAtEnd(groupId, topic);
      await consumer.close();

      ledger.note('calls', calls.total);
      ledger.note('failedCalls', calls.failed);
      ledger.note('circuit', states.join('>'));
      ledger.print();
      // Some of the topic was left for the outage, and it was a real one.
      expect(handledInOutage).toBeLessThan(total);
      expect(calls.failed).toBeGreaterThan(5);
      expect(calls.whileOpen).toBe(0);
      expect(states.at(-1)).toBe('closed');
      expect(routed).toEqual([]);
      expect([...(await endOffsets(`${topic}.dlq`)).values()]).toEqual([0]);
      ledger.assertComplete({ maxDuplicates: 0 });
    });

    it('a rebalance in the middle of batches loses nothing', async () => {
      const topic = uniqueName(`batch-rebalance-${ordering}`);
      const groupId = uniqueName(`g-batch-rebalance-${ordering}`);
      await createTopic(topic, 4);
      const total = 2000;
      await produceMessages(
        topic,
        Array.from({ length: total }, (_, i) => ({ key: `k${i % 29}`, value: `m-${i}` })),
      );
      const handled = new Set<number>();
      const byMember = new Map<number, number>();
      const options = (member: number): BackpressureConsumerOptions => ({
        topics: [topic],
        fromBeginning: true,
        ordering,
        concurrency: 2,
        commitIntervalMs: 200,
        batch: { maxMessages: 20, maxWaitMs: 10 },
        batchHandler: async (messages) => {
          // Slow enough that the first member is far from done when the second joins.
          await sleep(100);
          byMember.set(member, (byMember.get(member) ?? 0) + messages.length);
          for (const m of messages) handled.add(indexOf(m));
        },
      });
      const first = start(groupId, options(0));
      await first.start();
      await waitFor(() => handled.size >= 60, { timeoutMs: 30_000, message: 'first batches' });
      // A second member joins while the first has batches running.
      const second = start(groupId, options(1));
      await second.start();
      await waitFor(() => handled.size === total, {
        timeoutMs: 90_000,
        message: () => `handled ${handled.size} of ${total}`,
      });
      await expectCommittedAtEnd(groupId, topic);
      expect(byMember.get(1) ?? 0).toBeGreaterThan(0);
      await second.close();
      await first.close();
    });

    it('a close in the middle of batches loses nothing: the next member handles the rest', async () => {
      const topic = uniqueName(`batch-close-${ordering}`);
      const groupId = uniqueName(`g-batch-close-${ordering}`);
      await createTopic(topic, 2);
      const total = 400;
      await produceMessages(
        topic,
        Array.from({ length: total }, (_, i) => ({ key: `k${i % 17}`, value: `m-${i}` })),
      );
      const handled = new Set<number>();
      const options = (slowMs: number): BackpressureConsumerOptions => ({
        topics: [topic],
        fromBeginning: true,
        ordering,
        concurrency: 2,
        commitIntervalMs: 200,
        batch: { maxMessages: 20, maxWaitMs: 10 },
        batchHandler: async (messages, { signal }) => {
          await sleep(slowMs);
          if (signal.aborted) throw signal.reason;
          for (const m of messages) handled.add(indexOf(m));
        },
      });
      const first = start(groupId, options(100));
      await first.start();
      await waitFor(() => handled.size >= 60, { timeoutMs: 30_000, message: 'first batches' });
      // Batches are running: some finish within the drain, the rest are abandoned.
      await first.close({ drainTimeoutMs: 50 });
      expect(handled.size).toBeLessThan(total);
      const second = start(groupId, options(1));
      await second.start();
      await waitFor(() => handled.size === total, {
        timeoutMs: 60_000,
        message: () => `handled ${handled.size} of ${total}`,
      });
      await expectCommittedAtEnd(groupId, topic);
      await second.close();
    });
  },
);
