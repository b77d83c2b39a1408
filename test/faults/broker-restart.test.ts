// Fault case 2, broker restart: the broker is stopped (SIGTERM) in the middle
// of a stream and started again some seconds later on the same port and data
// directory. The consumer and the rate-limited producer (which also carries
// the dead letters) must recover by themselves: nothing lost, errors reported
// as events, no exception or rejection escaping to the application.
//
// This file runs its own broker: stopping the shared one would break every
// other file.

import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer, NonRetriableError, RateLimitedProducer } from '../../src/index.js';
import {
  faultConsumer,
  ledgerDeadLetters,
  seconds,
  sleep,
  startOwnBroker,
  trapUnhandled,
  type OwnBroker,
  type Trap,
} from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  newKafka,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const MESSAGES = 8000;
const RATE = 400;
const DOWN_MS = 5000;

let broker: OwnBroker | undefined;
let previousBrokers: string | undefined;
let trap: Trap;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  trap = trapUnhandled();
  broker = await startOwnBroker();
  previousBrokers = process.env['KAFKA_BROKERS'];
  // The helpers (createTopic, endOffsets, ...) read this lazily.
  process.env['KAFKA_BROKERS'] = broker.brokers.join(',');
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await disconnectAll();
  await broker?.stop();
  if (previousBrokers === undefined) delete process.env['KAFKA_BROKERS'];
  else process.env['KAFKA_BROKERS'] = previousBrokers;
  trap.dispose();
});

describe('fault: broker restart', () => {
  it('stopped mid-stream and started again: consumer and producer recover, nothing lost, errors as events', async () => {
    const started = Date.now();
    const topic = uniqueName('restart');
    const groupId = uniqueName('g-restart');
    await createTopic(topic, 3);
    await createTopic(`${topic}.dlq`, 1);

    const kafkaProducer: Producer = newKafka('bp-restart-producer').producer({
      allowAutoTopicCreation: false,
    });
    await kafkaProducer.connect();
    const producer = new RateLimitedProducer(kafkaProducer, {
      messagesPerSecond: RATE,
      maxBlockMs: 120_000,
    });
    closers.push(() => producer.close({ timeoutMs: 5000 }));

    const ledger = new Ledger('broker-restart');
    const handledValues = new Set<string>();
    const consumerErrors: string[] = [];
    const producerErrors: string[] = [];
    const dlqFailures: string[] = [];
    producer.on('producer.send-failed', (e) => producerErrors.push(e.error.name));
    producer.on('producer.error', (e) => producerErrors.push(`${e.during}:${e.error.name}`));

    const kafkaConsumer = faultConsumer(groupId);
    const crashes: string[] = [];
    // KafkaJS's own view of its crashes and whether it restarts itself: the
    // library reports them as consumer.error, this keeps the cause chain for
    // the failure message.
    kafkaConsumer.on(kafkaConsumer.events.CRASH, (e) => {
      const chain: string[] = [];
      for (let err: unknown = e.payload.error; err instanceof Error; err = err.cause) {
        const { type, retriable } = err as { type?: string; retriable?: boolean };
        chain.push(`${err.name}(${type ?? ''}${retriable === false ? ', not retriable' : ''})`);
      }
      crashes.push(`${e.payload.restart ? 'restart' : 'NO RESTART'}: ${chain.join(' <- ')}`);
    });
    const consumer = new BackpressureConsumer(kafkaConsumer, {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 16,
      maxInFlight: 500,
      commitIntervalMs: 200,
      deadLetter: { producer, retryInitialDelayMs: 200, retryMaxDelayMs: 2000 },
      handler: async (message) => {
        await sleep(Math.random() * 3);
        const value = message.value!.toString();
        if (isPoison(value)) throw new NonRetriableError(`poison ${value}`);
        handledValues.add(value);
        ledger.handled(offsetId(message.partition, message.offset));
      },
    });
    closers.push(() => consumer.close({ drainTimeoutMs: 2000 }));
    consumer.on('consumer.error', (e) => consumerErrors.push(`${e.during}:${e.error.name}`));
    consumer.on('dlq.failed', (e) => dlqFailures.push(e.error.code));
    await consumer.start();

    // The application's producing loop: records of 10 messages, up to 20
    // outstanding; a send that fails (the broker is gone) is sent again
    // later, as a service would.
    const acked = new Set<string>();
    let failedSends = 0;
    const production = (async () => {
      const records = Array.from({ length: MESSAGES / 10 }, (_, r) =>
        Array.from({ length: 10 }, (_, j) => `m-${r * 10 + j}`),
      );
      let next = 0;
      const worker = async () => {
        while (next < records.length) {
          const values = records[next++]!;
          for (;;) {
            try {
              await producer.send({
                topic,
                acks: -1,
                messages: values.map((value) => ({
                  key: `k${Number(value.slice(2)) % 50}`,
                  value,
                })),
              });
              for (const value of values) acked.add(value);
              break;
            } catch {
              failedSends += 1;
              await sleep(500);
            }
          }
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
    })();

    await waitFor(() => handledValues.size >= 1500, { timeoutMs: 60_000, message: 'no progress' });
    const stopAt = Date.now();
    await broker!.kill('SIGTERM');
    const stoppedMs = Date.now() - stopAt;
    await sleep(DOWN_MS);
    const restartAt = Date.now();
    await broker!.restart();
    const restartMs = Date.now() - restartAt;
    const handledAtRestart = handledValues.size;

    await production;
    expect(acked.size).toBe(MESSAGES);
    // Every record in the log, retried duplicates of a send included, must be
    // handled or dead-lettered.
    ledger.expectOffsets(await endOffsets(topic));
    const poison = [...acked].filter(isPoison);
    await waitFor(() => handledValues.size === MESSAGES - poison.length, {
      timeoutMs: 120_000,
      message: () =>
        `handled ${handledValues.size} of ${MESSAGES - poison.length} after the restart; ` +
        `consumer errors ${summarize(consumerErrors)}; KafkaJS crashes ${crashes.join(' | ')}; ` +
        `dlq failures ${dlqFailures.length}; in flight ${consumer.inFlight}; ` +
        `KafkaJS paused ${JSON.stringify(kafkaConsumer.paused())}; ` +
        `partitions ${JSON.stringify(consumer.partitions())}`,
    });
    await expectCommittedAtEnd(groupId, topic);
    const letters = await ledgerDeadLetters(ledger, `${topic}.dlq`, poison.length);
    const recoveredMs = Date.now() - restartAt;

    expect(consumer.state).toBe('running');
    expect(producer.state).toBe('open');
    // Every acknowledged message arrived (handled or dead-lettered).
    const lettered = new Set(letters.map((l) => l.value!.toString()));
    expect([...acked].filter((v) => !handledValues.has(v) && !lettered.has(v))).toEqual([]);
    expect(new Set(poison)).toEqual(lettered);
    // The outage was visible: as consumer or producer events, never as a throw.
    expect(consumerErrors.length + producerErrors.length + dlqFailures.length).toBeGreaterThan(0);
    trap.assertNone();

    ledger.note('stop', seconds(stoppedMs));
    ledger.note('down', seconds(DOWN_MS));
    ledger.note('restart', seconds(restartMs));
    ledger.note('handledAtRestart', handledAtRestart);
    ledger.note('recovered', seconds(recoveredMs));
    ledger.note('failedSends', failedSends);
    ledger.note('consumerErrors', summarize(consumerErrors));
    ledger.note('kafkajsCrashes', crashes.length);
    ledger.note('producerErrors', summarize(producerErrors));
    ledger.note('dlqFailed', dlqFailures.length);
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    const poisonIds = new Set(
      letters.filter((l) => isPoison(l.value!.toString())).map((l) => l.id),
    );
    ledger.assertComplete({
      // One member keeps its partitions across KafkaJS's reconnects, so work
      // it already holds is not run again; allow one in-flight window.
      maxDuplicates: 500,
      mayDeadLetter: (id, reason) => poisonIds.has(id) && reason === 'non-retriable',
    });
  });
});

/** One message in a hundred cannot be handled (`m-7`, `m-107`, ...). */
function isPoison(value: string): boolean {
  return Number(value.slice(2)) % 100 === 7;
}

function summarize(list: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const item of list) counts.set(item, (counts.get(item) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k}x${n}`).join(',') || 'none';
}
