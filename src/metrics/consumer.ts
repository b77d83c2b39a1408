import { OBSERVE_ATTEMPTS } from '../consumer/backpressure-consumer.js';
import type { ConsumerEvents } from '../consumer/events.js';
import type { PauseReason } from '../consumer/flow/controller.js';
import { Rows, type Builder } from './builder.js';
import { DurationHistogram } from './duration-histogram.js';
import type { MeasuredConsumer } from './metrics.js';

/** Consumer metrics: state read at scrape time, counters and durations from the consumer. */

const CIRCUIT_LEVEL = { closed: 0, 'half-open': 1, open: 2 } as const;

export function consumerMetrics(
  b: Builder,
  consumers: readonly MeasuredConsumer[],
  buckets: number[],
): void {
  const perGroup = (pick: (c: MeasuredConsumer) => number, combine: 'sum' | 'max') => {
    const rows = new Rows(combine);
    for (const c of consumers) if (c.groupId !== '') rows.add({ group: c.groupId }, pick(c));
    return rows;
  };

  // Done counts live on the consumer; the counter is advanced by what was
  // added since the last scrape, so it only ever grows.
  const seen = new Map<MeasuredConsumer, Map<string, number>>();
  const consumed = b.counter(
    'kafka_messages_consumed_total',
    'Messages done: handled, dead-lettered or shed.',
    ['group', 'topic'],
    () => {
      for (const c of consumers) {
        const group = c.groupId;
        if (group === '') continue;
        const last = seen.get(c) ?? new Map<string, number>();
        seen.set(c, last);
        for (const [topic, count] of c.consumedCounts()) {
          const delta = count - (last.get(topic) ?? 0);
          if (delta > 0) consumed.inc({ group, topic }, delta);
          last.set(topic, count);
        }
      }
    },
  );

  b.gauge(
    'kafka_consumer_paused',
    'Whether the partition is paused (1) or fetching (0).',
    ['group', 'topic', 'partition'],
    () => {
      const rows = new Rows('max');
      for (const c of consumers) {
        if (c.groupId === '') continue;
        for (const p of c.partitions()) {
          rows.add(
            { group: c.groupId, topic: p.topic, partition: String(p.partition) },
            p.paused ? 1 : 0,
          );
        }
      }
      return rows;
    },
  );
  b.gauge(
    'kafka_consumer_paused_partitions',
    'Assigned partitions held by each pause reason (a partition can have several).',
    ['group', 'reason'],
    () => {
      const rows = new Rows('sum');
      for (const c of consumers) {
        if (c.groupId === '') continue;
        for (const p of c.partitions()) {
          for (const reason of p.reasons as readonly PauseReason[]) {
            rows.add({ group: c.groupId, reason }, 1);
          }
        }
      }
      return rows;
    },
  );
  b.gauge('kafka_consumer_in_flight_messages', 'Messages fetched and not done.', ['group'], () =>
    perGroup((c) => c.inFlight, 'sum'),
  );
  b.gauge(
    'kafka_consumer_in_flight_bytes',
    'Bytes (key + value + headers) of the messages in flight.',
    ['group'],
    () => perGroup((c) => c.inFlightBytes, 'sum'),
  );
  b.gauge('kafka_consumer_active_handlers', 'Handler calls running now.', ['group'], () =>
    perGroup((c) => c.activeHandlers, 'sum'),
  );
  b.gauge(
    'kafka_consumer_concurrency_limit',
    'The concurrency limit in force (adaptive concurrency and the circuit change it).',
    ['group'],
    () => perGroup((c) => c.concurrency, 'sum'),
  );
  b.gauge(
    'kafka_consumer_circuit_state',
    'Circuit breaker around the handler: 0 closed, 1 half-open, 2 open.',
    ['group'],
    () => perGroup((c) => CIRCUIT_LEVEL[c.circuitState], 'max'),
  );

  const duration = b.custom(
    new DurationHistogram(
      'kafka_consumer_handler_duration_seconds',
      'Time of each handler attempt, by outcome (success, error, timeout).',
      buckets,
    ),
  );
  const retries = b.counter(
    'kafka_consumer_retries_total',
    'Handler attempts that failed and were retried.',
    ['group', 'topic'],
  );
  const routed = b.counter(
    'kafka_consumer_dlq_routed_total',
    'Messages written to a dead-letter topic and acknowledged, by reason.',
    ['group', 'topic', 'reason'],
  );
  const dlqFailures = b.counter(
    'kafka_consumer_dlq_failures_total',
    'Failed writes to a dead-letter topic (each is retried; the partition holds meanwhile).',
    ['group', 'topic'],
  );
  const shed = b.counter(
    'kafka_consumer_shed_total',
    'Messages shed (older than shed.maxAgeMs), by action.',
    ['group', 'topic', 'action'],
  );
  const on = b.subscriber<ConsumerEvents>();
  for (const c of consumers) {
    // Durations come through the consumer's attempt observer: no event
    // payload per message, and the consumer's path stays the same.
    const group = () => c.groupId;
    const record = duration.recorder(group);
    const observe = c[OBSERVE_ATTEMPTS];
    if (typeof observe === 'function') {
      const stop = observe.call(c, record);
      b.onUnregister(stop);
    } else {
      on(c, 'handler.settled', (e) => record(e.topic, e.outcome, e.durationMs));
    }
    b.onUnregister(() => duration.forget(group));
    on(c, 'message.retry', (e) => retries.inc({ group: c.groupId, topic: e.topic }));
    on(c, 'dlq.routed', (e) => routed.inc({ group: c.groupId, topic: e.topic, reason: e.reason }));
    on(c, 'dlq.failed', (e) => dlqFailures.inc({ group: c.groupId, topic: e.topic }));
    on(c, 'message.shed', (e) => shed.inc({ group: c.groupId, topic: e.topic, action: e.action }));
  }
}
