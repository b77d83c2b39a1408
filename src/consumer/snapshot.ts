import { byTopicPartition, type TopicPartition } from '../shared/topic-partition.js';
import type { Partitions } from './admission/partitions.js';
import type { ConsumerLagEvent, PartitionLagSample } from './events.js';
import type { FlowController, PauseReason } from './flow/controller.js';

/** A snapshot of one assigned partition, for dashboards and the demo. */
export interface PartitionSnapshot extends TopicPartition {
  /** Log-end offset minus the commit position, from the last fetched batch (no extra request). */
  readonly lag: number | undefined;
  readonly highWatermark: number | undefined;
  readonly commitPosition: number | undefined;
  readonly committedOffset: number | undefined;
  readonly inFlight: number;
  readonly paused: boolean;
  readonly reasons: readonly PauseReason[];
  /**
   * Time lag, in ms: now (wall clock) minus the Kafka timestamp of the
   * oldest message not done yet, the one the commit position waits for.
   * Exact, and free: the consumer holds that message. 0 when caught up;
   * undefined while the partition is behind but nothing of it is in flight
   * (paused, or not fetched yet).
   */
  readonly timeLagMs: number | undefined;
}

/** Every assigned partition as the consumer sees it at `now` (wall clock, ms). */
export function partitionSnapshots(
  partitions: Partitions,
  flow: FlowController,
  now: number,
): PartitionSnapshot[] {
  return [...partitions.values()].map((s) => {
    const position = s.tracker.commitPosition();
    const lag =
      s.highWatermark === undefined
        ? undefined
        : Math.max(0, s.highWatermark - (position ?? s.fetchedFrom ?? s.highWatermark));
    const oldest = s.tracker.oldestPendingTimestamp();
    return {
      topic: s.topic,
      partition: s.partition,
      highWatermark: s.highWatermark,
      commitPosition: position,
      committedOffset: s.tracker.committedOffset,
      lag,
      inFlight: s.tracker.pendingCount,
      paused: flow.isPaused(s.topic, s.partition),
      reasons: flow.reasonsFor(s),
      timeLagMs: oldest !== undefined ? Math.max(0, now - oldest) : lag === 0 ? 0 : undefined,
    };
  });
}

/** The `lag.sample` event: the partitions whose lag is known, in topic and partition order. */
export function lagSample(
  groupId: string,
  snapshots: readonly PartitionSnapshot[],
): ConsumerLagEvent {
  const partitions: PartitionLagSample[] = [];
  let total = 0;
  for (const p of snapshots) {
    if (p.lag === undefined || p.highWatermark === undefined) continue;
    partitions.push({
      topic: p.topic,
      partition: p.partition,
      lag: p.lag,
      highWatermark: p.highWatermark,
      commitPosition: p.commitPosition,
      timeLagSeconds: p.timeLagMs === undefined ? undefined : p.timeLagMs / 1000,
    });
    total += p.lag;
  }
  partitions.sort(byTopicPartition);
  return { groupId, partitions, total };
}
