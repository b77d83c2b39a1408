import type { LagMonitor, LagMonitorEvents, LagSnapshot } from '../lag/lag-monitor.js';
import { lagStatusLevel } from '../lag/lag-status.js';
import { Rows, type Builder, type Sources } from './builder.js';

/** Lag metrics: the group lag of monitors and consumers, and the monitors' own analysis. */

function monitoredGroups(monitors: readonly LagMonitor[]): Set<string> {
  return new Set(monitors.map((m) => m.options.groupId));
}

/**
 * The lag gauges. A group watched by a monitor is reported from the
 * monitor (end offsets minus committed offsets, the number lag dashboards
 * and alerts mean); a group only a consumer of ours reads is reported from
 * the consumer's batches (high watermark minus the done position, no
 * request). Never both, so the series of a group never double.
 */
export function lagMetrics(b: Builder, src: Sources): void {
  const covered = monitoredGroups(src.monitors);
  const fill = (perPartition: boolean): Rows => {
    const rows = new Rows();
    for (const monitor of src.monitors) {
      const snapshot = monitor.snapshot();
      if (snapshot === undefined) continue;
      const group = snapshot.groupId;
      if (!perPartition) rows.add({ group }, snapshot.total.lag);
      else
        for (const p of snapshot.partitions)
          rows.add({ group, topic: p.topic, partition: String(p.partition) }, p.lag);
    }
    for (const consumer of src.consumers) {
      const group = consumer.groupId;
      if (group === '' || covered.has(group)) continue;
      let total = 0;
      let known = false;
      for (const p of consumer.partitions()) {
        if (p.lag === undefined) continue;
        known = true;
        total += p.lag;
        if (perPartition)
          rows.add({ group, topic: p.topic, partition: String(p.partition) }, p.lag);
      }
      if (!perPartition && known) rows.add({ group }, total);
    }
    return rows;
  };
  b.gauge(
    'kafka_consumer_group_lag',
    'Messages behind the log end, per partition: from a lag monitor (committed offsets) or else from the consumer’s own batches.',
    ['group', 'topic', 'partition'],
    () => fill(true),
  );
  b.gauge(
    'kafka_consumer_group_lag_total',
    'Messages behind the log end, summed over the group’s partitions.',
    ['group'],
    () => fill(false),
  );
  b.gauge(
    'kafka_consumer_group_lag_seconds',
    'Time lag per partition, in seconds: from a lag monitor, the age of the record at the committed offset read from the end offsets’ history (a lower bound when the record is older than the history); or else from the consumer, exact: the age of the oldest message not done.',
    ['group', 'topic', 'partition'],
    () => {
      const rows = new Rows('max');
      for (const monitor of src.monitors) {
        const snapshot = monitor.snapshot();
        if (snapshot === undefined) continue;
        for (const p of snapshot.partitions) {
          rows.add(
            { group: snapshot.groupId, topic: p.topic, partition: String(p.partition) },
            p.timeLagSeconds,
          );
        }
      }
      for (const consumer of src.consumers) {
        const group = consumer.groupId;
        if (group === '' || covered.has(group)) continue;
        for (const p of consumer.partitions()) {
          if (p.timeLagMs === undefined) continue;
          rows.add({ group, topic: p.topic, partition: String(p.partition) }, p.timeLagMs / 1000);
        }
      }
      return rows;
    },
  );
}

export function monitorMetrics(b: Builder, monitors: readonly LagMonitor[]): void {
  const perGroup = (
    pick: (
      snapshot: NonNullable<ReturnType<LagMonitor['snapshot']>>,
      monitor: LagMonitor,
    ) => number | null,
  ) => {
    const rows = new Rows('max');
    for (const monitor of monitors) {
      const snapshot = monitor.snapshot();
      if (snapshot !== undefined) rows.add({ group: snapshot.groupId }, pick(snapshot, monitor));
    }
    return rows;
  };
  const perPartition = (pick: (p: LagSnapshot['partitions'][number]) => number | null) => {
    const rows = new Rows('max');
    for (const monitor of monitors) {
      const snapshot = monitor.snapshot();
      if (snapshot === undefined) continue;
      for (const p of snapshot.partitions) {
        rows.add(
          { group: snapshot.groupId, topic: p.topic, partition: String(p.partition) },
          pick(p),
        );
      }
    }
    return rows;
  };
  b.gauge(
    'kafka_consumer_group_lag_seconds_min',
    'The time lag per partition is at least this many seconds (the bound the time-lag marks use).',
    ['group', 'topic', 'partition'],
    () => perPartition((p) => p.timeLag?.minSeconds ?? null),
  );
  b.gauge(
    'kafka_lag_status',
    'Lag status of the group: 0 ok, 1 warning, 2 critical.',
    ['group'],
    () => perGroup((_, monitor) => lagStatusLevel(monitor.status())),
  );
  b.gauge(
    'kafka_lag_partition_status',
    'Lag status per partition: 0 ok, 1 warning, 2 critical.',
    ['group', 'topic', 'partition'],
    () => perPartition((p) => lagStatusLevel(p.status)),
  );
  b.gauge(
    'kafka_lag_rate_of_change',
    'Least-squares slope of the group’s total lag over the window, messages per second (positive: growing).',
    ['group'],
    () => perGroup((s) => s.total.rateOfChange),
  );
  b.gauge(
    'kafka_lag_produce_rate',
    'Messages per second appended to the group’s partitions (slope of the end offsets).',
    ['group'],
    () => perGroup((s) => s.total.produceRate),
  );
  b.gauge(
    'kafka_lag_consume_rate',
    'Messages per second committed by the group (slope of the committed offsets).',
    ['group'],
    () => perGroup((s) => s.total.consumeRate),
  );
  b.gauge(
    'kafka_lag_rule',
    'Burrow’s evaluation rules (rewind, stopped, stalled, fallingBehind): 1 while the rule holds for any partition.',
    ['group', 'rule'],
    () => {
      const rows = new Rows('max');
      for (const monitor of monitors) {
        const snapshot = monitor.snapshot();
        if (snapshot === undefined) continue;
        for (const [rule, on] of Object.entries(snapshot.total.rules)) {
          rows.add({ group: snapshot.groupId, rule }, on ? 1 : 0);
        }
      }
      return rows;
    },
  );
  b.gauge(
    'kafka_lag_consumers_needed',
    'Recommended consumers for the measured produce and per-consumer consume rates, capped at the partition count.',
    ['group'],
    () => perGroup((s) => s.recommendation.consumersNeeded),
  );
  b.gauge(
    'kafka_lag_partitions_needed',
    'Partitions needed for the uncapped consumer recommendation.',
    ['group'],
    () => perGroup((s) => s.recommendation.partitionsNeeded),
  );
  b.gauge(
    'kafka_lag_time_to_drain_seconds',
    'Seconds until the lag is 0 at the current rates (absent while not draining).',
    ['group'],
    () => perGroup((s) => s.recommendation.timeToDrainSeconds),
  );
  const errors = b.counter(
    'kafka_lag_monitor_errors_total',
    'Admin calls of the lag monitor that failed.',
    ['group', 'during'],
  );
  const on = b.subscriber<LagMonitorEvents>();
  for (const monitor of monitors) {
    on(monitor, 'lag.error', (e) => errors.inc({ group: e.groupId, during: e.during }));
  }
}
