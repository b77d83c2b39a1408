/**
 * Retries with backoff, and dead letters for what cannot succeed.
 *
 *   npm run example -- examples/dlq-and-retries.ts
 *
 * Forty payments go through a handler that sees four kinds of trouble:
 *   - flaky:     fails twice with a timeout, then succeeds (retried in place);
 *   - invalid:   fails validation (NonRetriableError: dead-lettered at once);
 *   - malformed: not JSON (the deserializer throws: dead-lettered at once);
 *   - doomed:    fails every attempt with a retriable error (dead-lettered
 *                after `maxAttempts`, while the other payments succeed).
 * Then the dead-letter topic is read back and each letter printed with the
 * headers that say where it came from and why.
 */
import {
  BackpressureConsumer,
  DLQ_HEADERS,
  NonRetriableError,
  RateLimitedProducer,
} from '../src/index.js';
import { createTopics, fresh, kafkaFromEnv, run, sleep, stamp } from './support.js';

type Kind = 'ok' | 'flaky' | 'invalid' | 'malformed' | 'doomed';
interface Payment {
  readonly id: number;
  readonly kind: Kind;
  readonly cents: number;
}

class GatewayTimeout extends Error {
  override readonly name = 'GatewayTimeout';
}

const KINDS: Kind[] = Array.from({ length: 40 }, (_, i): Kind => {
  if (i === 7 || i === 23) return 'flaky';
  if (i === 12 || i === 31) return 'invalid';
  if (i === 18) return 'malformed';
  // Early, so that other payments succeed after its first failure: that is
  // what tells the consumer the payment, not the gateway, is at fault
  // (docs/failures.md, "outage or poison"). Were it the last message, with
  // nothing after it to compare against, it would wait and be retried
  // rather than be dead-lettered.
  if (i === 2) return 'doomed';
  return 'ok';
});

run(async () => {
  const kafka = kafkaFromEnv('dlq-example');
  const topic = fresh('payments');
  const dlqTopic = `${topic}.dlq`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [
    { topic, partitions: 3 },
    { topic: dlqTopic, partitions: 1 },
  ]);

  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic,
    messages: KINDS.map((kind, id) => ({
      key: `account-${id % 10}`,
      value:
        kind === 'malformed'
          ? '{"id": 18, "cents": 12'
          : JSON.stringify({ id, kind, cents: kind === 'invalid' ? -500 : 1000 + id }),
    })),
  });
  console.log(`${stamp()} wrote ${KINDS.length} payments to ${topic}`);

  // Dead letters go through a rate-limited producer: a flood of poison
  // messages cannot flood the dead-letter topic's brokers.
  const rawDlqProducer = kafka.producer();
  await rawDlqProducer.connect();
  const dlqProducer = new RateLimitedProducer(rawDlqProducer, { messagesPerSecond: 50 });
  // Counted by payment, not by delivery: at-least-once means a payment may
  // come twice (a redelivery, or a producer retry of a write that had
  // landed), and the checks below are about payments.
  const handledIds = new Set<number>();
  const deadLetteredValues = new Set<string>();
  const valueAt = new Map<string, string>();
  let deadLettered = 0;

  const consumer = new BackpressureConsumer<Payment>(
    kafka.consumer({ groupId: `${topic}-processor` }),
    {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 8,
      deserialize: (message, { partition }) => {
        const value = message.value?.toString() ?? '';
        valueAt.set(`${partition}@${message.offset}`, value);
        return JSON.parse(value) as Payment;
      },
      retry: {
        maxAttempts: 4, // the first attempt included
        initialDelayMs: 200, // then ~400, ~800 (x2 each time, capped at maxDelayMs)
        maxDelayMs: 2000,
        multiplier: 2,
        jitter: 0.2, // up to 20 % off each delay, so retries of many messages do not line up
        // Everything is retried unless it says otherwise; here a
        // GatewayTimeout always is, and a TypeError (a bug) never is.
        isRetriable: (error) => error instanceof GatewayTimeout || !(error instanceof TypeError),
      },
      deadLetter: {
        producer: dlqProducer,
        topic: (message) => `${message.topic}.dlq`, // the default, spelled out
        includeStack: true,
        maxStackLength: 400,
      },
      handler: async (message, { attempt }) => {
        const payment = message.payload;
        if (payment.cents <= 0) {
          throw new NonRetriableError(`payment ${payment.id}: amount must be positive`);
        }
        if (payment.kind === 'doomed')
          throw new GatewayTimeout(`gateway timed out (attempt ${attempt})`);
        if (payment.kind === 'flaky' && attempt <= 2) {
          throw new GatewayTimeout(`gateway timed out (attempt ${attempt})`);
        }
        await sleep(20);
        handledIds.add(payment.id);
      },
    },
  );

  consumer.on('message.retry', (e) =>
    console.log(
      `${stamp()} retry       p${e.partition}@${e.offset} attempt ${e.attempt} failed (${e.error.message}); next in ${e.delayMs} ms`,
    ),
  );
  consumer.on('dlq.routed', (e) => {
    deadLettered += 1;
    deadLetteredValues.add(
      valueAt.get(`${e.partition}@${e.offset}`) ?? `${e.partition}@${e.offset}`,
    );
    console.log(
      `${stamp()} dead letter p${e.partition}@${e.offset} -> ${e.dlqTopic} (${e.reason} after ${e.attempts} attempt(s)): ${e.error.message}`,
    );
  });
  consumer.on('dlq.failed', (e) =>
    console.log(
      `${stamp()} DLQ write failed for p${e.partition}@${e.offset} (${e.error.message}); partition holds, retry in ${e.retryInMs} ms`,
    ),
  );

  await consumer.start();
  const deadline = Date.now() + 60_000;
  while (handledIds.size + deadLetteredValues.size < KINDS.length && Date.now() < deadline) {
    await sleep(100);
  }
  await consumer.close();
  console.log(
    `${stamp()} ${handledIds.size} payments handled, ${deadLetteredValues.size} dead-lettered (${deadLettered} dead letters written)`,
  );

  // Read the dead letters back. A re-drive tool would use the same headers:
  // fix the cause, then produce `value` back to x-bp-original-topic.
  const reader = kafka.consumer({ groupId: `${topic}-dlq-reader` });
  await reader.connect();
  await reader.subscribe({ topics: [dlqTopic], fromBeginning: true });
  let read = 0;
  await reader.run({
    eachMessage: async ({ message }) => {
      read += 1;
      const header = (name: string) => message.headers?.[name]?.toString() ?? '-';
      console.log(
        `\ndead letter ${read}: key ${message.key?.toString()}, value ${message.value?.toString()}`,
      );
      for (const [label, name] of [
        ['from', DLQ_HEADERS.originalTopic],
        ['partition', DLQ_HEADERS.originalPartition],
        ['offset', DLQ_HEADERS.originalOffset],
        ['group', DLQ_HEADERS.consumerGroup],
        ['reason', DLQ_HEADERS.reason],
        ['error', DLQ_HEADERS.errorName],
        ['message', DLQ_HEADERS.errorMessage],
        ['attempts', DLQ_HEADERS.attempts],
        ['failed at', DLQ_HEADERS.failedAt],
      ] as const) {
        console.log(`  ${label.padEnd(10)} ${header(name)}`);
      }
      const stack = header(DLQ_HEADERS.errorStack);
      if (stack !== '-')
        console.log(`  ${'stack'.padEnd(10)} ${stack.split('\n')[1]?.trim() ?? ''} ...`);
    },
  });
  while (read < deadLettered && Date.now() < deadline + 20_000) await sleep(100);
  await reader.disconnect();

  await dlqProducer.close(); // delivers what it accepted, then disconnects its producer
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic, dlqTopic] }).catch(() => undefined);
  await admin.disconnect();
  if (handledIds.size !== 36 || deadLetteredValues.size !== 4) process.exitCode = 1;
});
