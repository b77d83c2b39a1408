import { lagStatusLevel } from '../lag/lag-status.js';
import type {
  RateLimitedProducer,
  RateLimitedProducerEvents,
} from '../producer/rate-limited-producer.js';
import { Rows, type Builder } from './builder.js';

/** Producer metrics: limits and buffers read at scrape time, throttle changes and failures counted. */

export function producerMetrics(
  b: Builder,
  producers: readonly (readonly [string, RateLimitedProducer])[],
): void {
  const each = (pick: (p: RateLimitedProducer) => number) => () => {
    const rows = new Rows();
    for (const [producer, p] of producers) rows.add({ producer }, pick(p));
    return rows;
  };
  b.gauge(
    'kafka_producer_throttle_state',
    'Lag-driven throttle of the producer: 0 full rate (ok), 1 slowed (warning), 2 stopped (critical).',
    ['producer'],
    each((p) => lagStatusLevel(p.lagStatus)),
  );
  b.gauge(
    'kafka_producer_rate_limit',
    'Rate in force per second (configured rate times the lag factor); +Inf when unlimited.',
    ['producer', 'unit'],
    () => {
      const rows = new Rows();
      for (const [producer, p] of producers) {
        rows.add({ producer, unit: 'messages' }, p.limits.messagesPerSecond);
        rows.add({ producer, unit: 'bytes' }, p.limits.bytesPerSecond);
      }
      return rows;
    },
  );
  b.gauge(
    'kafka_producer_buffered_messages',
    'Messages accepted and not yet handed to KafkaJS.',
    ['producer'],
    each((p) => p.bufferedMessages),
  );
  b.gauge(
    'kafka_producer_buffered_bytes',
    'Bytes of the buffered messages.',
    ['producer'],
    each((p) => p.bufferedBytes),
  );
  b.gauge(
    'kafka_producer_in_flight_requests',
    'producer.send calls not answered yet.',
    ['producer'],
    each((p) => p.inFlightRequests),
  );
  b.gauge(
    'kafka_producer_blocked_sends',
    'send() calls waiting for buffer space or for a critical lag status to clear.',
    ['producer'],
    each((p) => p.blockedSends),
  );
  const throttled = b.counter(
    'kafka_producer_throttle_changes_total',
    'Changes of the rate in force, by cause (lag, limits) and the lag status after it.',
    ['producer', 'cause', 'lag_status'],
  );
  const failed = b.counter(
    'kafka_producer_send_failures_total',
    'producer.send calls that failed after KafkaJS’s own retries.',
    ['producer'],
  );
  const on = b.subscriber<RateLimitedProducerEvents>();
  for (const [producer, p] of producers) {
    on(p, 'producer.throttled', (e) =>
      throttled.inc({ producer, cause: e.cause, lag_status: e.lagStatus }),
    );
    on(p, 'producer.send-failed', () => failed.inc({ producer }));
  }
}
