import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byTopic, byTopicPartition, parseTpKey, tpKey } from '../../src/shared/topic-partition.js';

describe('tpKey / parseTpKey', () => {
  it('round-trips any Kafka topic name and partition', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/),
        fc.nat(100_000),
        (topic, partition) => {
          expect(parseTpKey(tpKey(topic, partition))).toEqual({ topic, partition });
        },
      ),
    );
  });

  it('does not confuse topic and partition digits', () => {
    expect(tpKey('t1', 1)).not.toBe(tpKey('t', 11));
  });
});

describe('byTopic', () => {
  it('groups partitions by topic in first-seen order, partitions sorted numerically', () => {
    expect(
      byTopic([
        { topic: 'b', partition: 10 },
        { topic: 'a', partition: 2 },
        { topic: 'b', partition: 9 },
        { topic: 'b', partition: 1 },
      ]),
    ).toEqual([
      { topic: 'b', partitions: [1, 9, 10] },
      { topic: 'a', partitions: [2] },
    ]);
    expect(byTopic([])).toEqual([]);
  });
});

describe('byTopicPartition', () => {
  it('orders by topic, then by partition number (not as strings)', () => {
    const sorted = [
      { topic: 'b', partition: 0 },
      { topic: 'a', partition: 10 },
      { topic: 'a', partition: 2 },
    ].sort(byTopicPartition);
    expect(sorted).toEqual([
      { topic: 'a', partition: 2 },
      { topic: 'a', partition: 10 },
      { topic: 'b', partition: 0 },
    ]);
  });
});
