import { byTopicPartition, parseTpKey } from '../shared/topic-partition.js';
import { lagOf, type LagWindow } from './samples.js';
import type { LagHistory, PartitionHistory } from './snapshot.js';

/** The window as data, for a `/lag/history` endpoint: per partition its samples, and the total lag per round. */
export function windowHistory(
  window: LagWindow,
  groupId: string,
  now: number,
  windowMs: number,
): LagHistory {
  const partitions: PartitionHistory[] = [];
  const totals = new Map<number, number>();
  for (const key of window.keys()) {
    const samples = window.samples(key);
    if (samples.length === 0) continue;
    const { topic, partition } = parseTpKey(key);
    partitions.push({ topic, partition, samples: samples.map((s) => ({ ...s, lag: lagOf(s) })) });
    for (const s of samples) totals.set(s.at, (totals.get(s.at) ?? 0) + lagOf(s));
  }
  partitions.sort(byTopicPartition);
  return {
    groupId,
    now,
    windowMs,
    partitions,
    total: [...totals].sort(([a], [b]) => a - b).map(([at, lag]) => ({ at, lag })),
  };
}
