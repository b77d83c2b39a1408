// Proves the test harness itself: a real broker is reachable, topics can be
// created, and a plain KafkaJS producer/consumer round trip behaves as Kafka
// promises (exactly once per message here, in order within each partition).
// If this file fails, every other integration failure is suspect.

import { afterAll, describe, expect, it } from 'vitest';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  endOffsets,
  getAdmin,
  newConsumer,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

const PARTITIONS = 3;
const COUNT = 300;

interface Received {
  key: string;
  value: string;
  offset: number;
}

afterAll(async () => {
  await disconnectAll();
});

describe('kafka test harness', () => {
  it('round-trips 300 messages through a 3-partition topic', async () => {
    const topic = await createTopic(uniqueName('harness'), PARTITIONS);
    const groupId = uniqueName('harness-group');

    const admin = await getAdmin();
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(metadata.topics).toHaveLength(1);
    expect(metadata.topics[0]?.name).toBe(topic);
    expect(metadata.topics[0]?.partitions).toHaveLength(PARTITIONS);

    const sent = Array.from({ length: COUNT }, (_, i) => ({ key: `k-${i}`, value: `v-${i}` }));
    await produceMessages(topic, sent);

    const ends = await endOffsets(topic);
    expect([...ends.values()].reduce((a, b) => a + b, 0)).toBe(COUNT);

    const byPartition = new Map<number, Received[]>();
    let total = 0;
    const consumer = newConsumer(groupId);
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          const list = byPartition.get(partition) ?? [];
          list.push({
            key: message.key?.toString() ?? '',
            value: message.value?.toString() ?? '',
            offset: Number(message.offset),
          });
          byPartition.set(partition, list);
          total += 1;
        },
      });

      await waitFor(() => total >= COUNT, {
        timeoutMs: 60_000,
        message: () => `all ${COUNT} messages consumed (got ${total})`,
      });
      // The offsets are committed after the batch; wait for them so the
      // committedOffsets helper is exercised against real broker state.
      await waitFor(
        async () => {
          const committed = await committedOffsets(groupId, topic);
          return [...ends].every(([p, end]) => committed.get(p) === end);
        },
        { timeoutMs: 30_000, message: 'committed offsets to reach the end offsets' },
      );
    } finally {
      await consumer.disconnect();
    }

    // Nothing beyond the 300 arrived late (e.g. a redelivery after the wait).
    expect(total).toBe(COUNT);

    const seenKeys = new Set<string>();
    for (let p = 0; p < PARTITIONS; p++) {
      const list = byPartition.get(p) ?? [];
      // With 300 distinct keys the default partitioner fills every partition.
      expect(list.length, `partition ${p} received nothing`).toBeGreaterThan(0);
      expect(list.length).toBe(ends.get(p));
      // Exactly once and in order: offsets 0..n-1 with no gap or repeat...
      expect(list.map((m) => m.offset)).toEqual(list.map((_, i) => i));
      // ...and the produce order survives within the partition.
      const indexes = list.map((m) => Number(m.key.slice(2)));
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
      for (const m of list) {
        expect(m.value).toBe(`v-${m.key.slice(2)}`);
        expect(seenKeys.has(m.key), `duplicate key ${m.key}`).toBe(false);
        seenKeys.add(m.key);
      }
    }
    expect(seenKeys.size).toBe(COUNT);
  });
});
