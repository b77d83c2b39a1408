// Helpers for the lag monitor's broker tests: a producer that follows a
// schedule and keeps the broker's append time of every offset (the truth
// time lag is checked against), and a plain KafkaJS group to start and stop.

import type { Consumer, EachMessagePayload } from 'kafkajs';
import type { LagSnapshot } from '../../src/lag/lag-monitor.js';
import { getProducer, newConsumer } from './kafka.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Kafka topic config: the broker stamps each batch with its own clock when it appends it. */
export const LOG_APPEND_TIME = { 'message.timestamp.type': 'LogAppendTime' };

interface Batch {
  readonly first: number;
  readonly last: number;
  /** The broker's LogAppendTime, epoch ms. */
  readonly appendedAt: number;
}

/**
 * Sends to `topic` on a schedule: `due(elapsedMs)` says how many messages
 * should have been sent by then; the loop catches up every 10 ms, spreading
 * messages round-robin over the partitions. Every batch's offsets and
 * LogAppendTime are kept.
 */
export class ScheduledProducer {
  readonly #batches = new Map<number, Batch[]>();
  #running = true;
  #sent = 0;
  readonly #loop: Promise<void>;

  constructor(
    readonly topic: string,
    readonly partitions: number,
    due: (elapsedMs: number) => number,
  ) {
    const started = Date.now();
    this.#loop = (async () => {
      const producer = await getProducer();
      while (this.#running) {
        const target = Math.floor(due(Date.now() - started));
        if (target > this.#sent) {
          const messages = Array.from({ length: target - this.#sent }, (_, i) => ({
            partition: (this.#sent + i) % partitions,
            value: `m${this.#sent + i}`,
          }));
          const result = await producer.send({ topic, messages, acks: -1 });
          for (const r of result) {
            const count = messages.filter((m) => m.partition === r.partition).length;
            const first = Number(r.baseOffset);
            // -1 unless the topic uses LogAppendTime.
            const appendedAt = Number(r.logAppendTime);
            const list = this.#batches.get(r.partition) ?? [];
            list.push({ first, last: first + count - 1, appendedAt });
            this.#batches.set(r.partition, list);
          }
          this.#sent = target;
        }
        await sleep(10);
      }
    })();
  }

  get sent(): number {
    return this.#sent;
  }

  /** The broker's append time (epoch ms) of the record at `offset`; the topic must use LogAppendTime. */
  appendedAt(partition: number, offset: number): number | undefined {
    const at = this.#batches
      .get(partition)
      ?.find((b) => b.first <= offset && offset <= b.last)?.appendedAt;
    return at !== undefined && at > 0 ? at : undefined;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}

/**
 * The true time lag of each partition in a snapshot taken on an epoch-ms
 * clock: the snapshot's time minus the broker's append time of the record
 * at the committed offset; 0 without lag. `undefined` where the record is
 * not one the producer sent.
 */
export function trueTimeLags(
  snapshot: LagSnapshot,
  producer: ScheduledProducer,
): (number | undefined)[] {
  return snapshot.partitions.map((p) => {
    if (p.lag === 0) return 0;
    const at = producer.appendedAt(p.partition, p.committedOffset ?? 0);
    return at === undefined ? undefined : (snapshot.at - at) / 1000;
  });
}

/** A plain KafkaJS group member; KafkaJS commits after every batch. */
export async function startGroup(
  groupId: string,
  topic: string,
  eachMessage: (payload: EachMessagePayload) => Promise<void> = async () => {},
): Promise<Consumer> {
  const consumer = newConsumer(groupId);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({ eachMessage });
  return consumer;
}

/** The monitor's clock for truth checks: epoch ms, the broker's LogAppendTime clock. */
export const wallClock = { now: (): number => Date.now() };
