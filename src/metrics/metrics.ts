import { createRequire } from 'node:module';
import type { EventEmitter } from 'eventemitter3';
import { BackpressureConsumer, type PartitionSnapshot } from '../consumer.js';
import { BackpressureError, ConfigError } from '../errors.js';
import type { ConsumerEvents } from '../events.js';
import type { PauseReason } from '../flow-controller.js';
import { LagMonitor, type LagMonitorEvents, type LagSnapshot } from '../lag/lag-monitor.js';
import { lagStatusLevel } from '../lag/lag-status.js';
import {
  RateLimitedProducer,
  type RateLimitedProducerEvents,
} from '../producer/rate-limited-producer.js';
import { knownKeys, plainObject } from '../shared/validate.js';

/**
 * Prometheus metrics through prom-client, which stays an optional peer: this
 * module never imports it at load time. `registerMetrics` takes the classes
 * from `options.client` when given, and otherwise `require`s prom-client on
 * first use, so importing the library without prom-client installed works
 * and only calling `registerMetrics` needs it.
 *
 * The prom-client types are described structurally below instead of being
 * imported, so the published declarations type-check for users without
 * prom-client too.
 */

type Labels = Record<string, string>;

/** The part of a prom-client `Registry` used here; a `Registry` (or `register`) fits. */
export interface MetricsRegistry {
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

/** The options passed to the metric constructors (a subset of prom-client's). */
interface MetricConfig {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registers: MetricsRegistry[];
  readonly collect?: () => void;
  readonly buckets?: number[];
}

type Ctor<T> = new (config: MetricConfig) => T;

interface GaugeLike {
  set(labels: Labels, value: number): void;
  reset(): void;
}

interface CounterLike {
  inc(labels: Labels, value?: number): void;
}

interface HistogramLike {
  observe(labels: Labels, value: number): void;
}

/**
 * The prom-client classes used: `import * as client from 'prom-client'`
 * fits. The constructor parameter is `never` because prom-client's
 * configuration types name its `Registry` class, which cannot be spelled
 * here without importing prom-client; what is passed is checked where the
 * classes are called (see `MetricConfig`).
 */
export interface PromClient {
  readonly Gauge: new (config: never) => GaugeLike;
  readonly Counter: new (config: never) => CounterLike;
  readonly Histogram: new (config: never) => HistogramLike;
}

/** Subscribing and unsubscribing, as every emitter of the library does. */
interface Emitter<Events extends EventEmitter.ValidEventTypes> {
  on<K extends EventEmitter.EventNames<Events>>(
    event: K,
    listener: EventEmitter.EventListener<Events, K>,
  ): unknown;
  off<K extends EventEmitter.EventNames<Events>>(
    event: K,
    listener?: EventEmitter.EventListener<Events, K>,
  ): unknown;
}

/**
 * What the metrics read from a consumer: any `BackpressureConsumer`, whatever
 * its payload type (spelled out rather than picked from the class, whose
 * `on()` returns the consumer's own type and so would tie it to one payload).
 */
export interface MeasuredConsumer extends Emitter<ConsumerEvents> {
  readonly groupId: string;
  readonly inFlight: number;
  readonly inFlightBytes: number;
  readonly activeHandlers: number;
  readonly concurrency: number;
  readonly circuitState: 'closed' | 'open' | 'half-open';
  partitions(): PartitionSnapshot[];
  consumedCounts(): ReadonlyMap<string, number>;
}

export interface MetricsSources {
  /** Consumers whose state and events become metrics, labelled by their group. */
  readonly consumers?: readonly MeasuredConsumer[];
  /** Lag monitors; for their groups, the monitors' lag (committed offsets) is the one reported. */
  readonly monitors?: readonly LagMonitor[];
  /** Rate-limited producers, labelled `producer` by their index, or by their key when given as an object. */
  readonly producers?:
    readonly RateLimitedProducer[] | Readonly<Record<string, RateLimitedProducer>>;
}

export interface RegisterMetricsOptions {
  /**
   * The prom-client module (`import * as client from 'prom-client'`). By
   * default prom-client is loaded with `require` from where this library is
   * installed; pass it when a bundler hides it, or to be sure the metric
   * classes come from the same copy as your registry.
   */
  readonly client?: PromClient;
  /**
   * Upper bounds (seconds) of the handler duration histogram's buckets,
   * increasing.
   * @default [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
   */
  readonly handlerDurationBuckets?: readonly number[];
}

export interface MetricsRegistration {
  /** Removes every metric this call registered and every listener it added. Idempotent. */
  unregister(): void;
  /** The names of the metrics registered. */
  readonly names: readonly string[];
}

export const DEFAULT_HANDLER_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

const CIRCUIT_LEVEL = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * Registers metrics of the given consumers, lag monitors and rate-limited
 * producers on `registry`. Gauges are read from the objects' getters when
 * the registry is scraped; counters and the histogram follow their events
 * from now on. Call it once per registry with every source (a second call
 * with a name already registered throws `ERR_CONFIG`); `unregister()` undoes
 * it. See the README's Metrics section for every name, type and label.
 *
 * ```ts
 * import * as client from 'prom-client';
 * const registry = new client.Registry();
 * registerMetrics(registry, { consumers: [consumer], monitors: [monitor] }, { client });
 * app.get('/metrics', async () => registry.metrics());
 * ```
 */
export function registerMetrics(
  registry: MetricsRegistry,
  sources: MetricsSources,
  options: RegisterMetricsOptions = {},
): MetricsRegistration {
  if (
    typeof registry !== 'object' ||
    registry === null ||
    typeof registry.getSingleMetric !== 'function' ||
    typeof registry.removeSingleMetric !== 'function'
  ) {
    throw new ConfigError('registry', 'a prom-client Registry (new client.Registry())', registry);
  }
  const src = resolveSources(sources);
  const opts = plainObject('options', options) ?? {};
  knownKeys('', opts, ['client', 'handlerDurationBuckets']);
  const buckets = resolveBuckets(opts['handlerDurationBuckets']);
  const client = resolveClient(opts['client']);

  const b = new Builder(client, registry);
  try {
    if (src.consumers.length > 0 || src.monitors.length > 0) lagMetrics(b, src);
    if (src.monitors.length > 0) monitorMetrics(b, src.monitors);
    if (src.consumers.length > 0) consumerMetrics(b, src.consumers, buckets);
    if (src.producers.length > 0) producerMetrics(b, src.producers);
  } catch (error) {
    b.unregister();
    throw error;
  }
  return { unregister: () => b.unregister(), names: b.names };
}

// ---------------------------------------------------------------- plumbing

interface Sources {
  readonly consumers: readonly MeasuredConsumer[];
  readonly monitors: readonly LagMonitor[];
  readonly producers: readonly (readonly [string, RateLimitedProducer])[];
}

function resolveSources(value: unknown): Sources {
  const raw = plainObject('sources', value);
  if (raw === undefined) {
    throw new ConfigError('sources', 'an object with consumers, monitors and/or producers', value);
  }
  knownKeys('sources', raw, ['consumers', 'monitors', 'producers']);
  const list = <T>(key: string, kind: new (...args: never[]) => T, what: string): T[] => {
    const v = raw[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => x instanceof kind)) {
      throw new ConfigError(`sources.${key}`, `an array of ${what}`, v);
    }
    return [...(v as T[])];
  };
  const consumers = list('consumers', BackpressureConsumer, 'BackpressureConsumer');
  const monitors = list('monitors', LagMonitor, 'LagMonitor');
  let producers: (readonly [string, RateLimitedProducer])[];
  const p = raw['producers'];
  if (p === undefined) producers = [];
  else if (Array.isArray(p)) {
    producers = list('producers', RateLimitedProducer, 'RateLimitedProducer').map(
      (producer, i) => [String(i), producer] as const,
    );
  } else {
    const record = plainObject('sources.producers', p) ?? {};
    producers = Object.entries(record).map(([name, producer]) => {
      if (!(producer instanceof RateLimitedProducer)) {
        throw new ConfigError(`sources.producers.${name}`, 'a RateLimitedProducer', producer);
      }
      return [name, producer] as const;
    });
  }
  if (consumers.length + monitors.length + producers.length === 0) {
    throw new ConfigError(
      'sources',
      'at least one consumer, monitor or producer (nothing to measure)',
      value,
    );
  }
  return { consumers, monitors, producers };
}

function resolveBuckets(value: unknown): number[] {
  if (value === undefined) return [...DEFAULT_HANDLER_DURATION_BUCKETS];
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every(
      (v, i) =>
        typeof v === 'number' &&
        Number.isFinite(v) &&
        v > 0 &&
        (i === 0 || v > (value[i - 1] as number)),
    )
  ) {
    throw new ConfigError(
      'handlerDurationBuckets',
      'a non-empty array of increasing finite numbers of seconds > 0',
      value,
    );
  }
  return [...(value as number[])];
}

function resolveClient(value: unknown): PromClient {
  if (value !== undefined) {
    if (!isPromClient(value)) {
      throw new ConfigError(
        'client',
        'the prom-client module (import * as client from "prom-client")',
        value,
      );
    }
    return value;
  }
  let loaded: unknown;
  try {
    loaded = createRequire(import.meta.url)('prom-client');
  } catch (error) {
    throw new BackpressureError(
      'ERR_CONFIG',
      'registerMetrics needs prom-client, an optional peer dependency: `npm install prom-client`, or pass the module as `options.client`.',
      { cause: error },
    );
  }
  if (!isPromClient(loaded)) {
    throw new ConfigError('client', 'prom-client 15 (Gauge, Counter, Histogram)', loaded);
  }
  return loaded;
}

function isPromClient(value: unknown): value is PromClient {
  const v = value as Partial<Record<keyof PromClient, unknown>> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.Gauge === 'function' &&
    typeof v.Counter === 'function' &&
    typeof v.Histogram === 'function'
  );
}

/** Sums (or takes the largest of) values with the same labels before setting a gauge. */
class Rows {
  readonly #rows = new Map<string, { labels: Labels; value: number }>();
  readonly #combine: 'sum' | 'max';

  constructor(combine: 'sum' | 'max' = 'sum') {
    this.#combine = combine;
  }

  add(labels: Labels, value: number | null | undefined): void {
    if (value === null || value === undefined || Number.isNaN(value)) return;
    const key = JSON.stringify(labels);
    const row = this.#rows.get(key);
    if (row === undefined) this.#rows.set(key, { labels, value });
    else row.value = this.#combine === 'sum' ? row.value + value : Math.max(row.value, value);
  }

  /** Replaces every series of the gauge: series of gone partitions or groups disappear. */
  setOn(gauge: GaugeLike): void {
    gauge.reset();
    for (const { labels, value } of this.#rows.values()) gauge.set(labels, value);
  }
}

class Builder {
  readonly names: string[] = [];
  readonly #client: PromClient;
  readonly #registry: MetricsRegistry;
  readonly #cleanups: (() => void)[] = [];
  #done = false;

  constructor(client: PromClient, registry: MetricsRegistry) {
    this.#client = client;
    this.#registry = registry;
  }

  #claim(name: string): void {
    if (this.#registry.getSingleMetric(name) !== undefined) {
      throw new ConfigError(
        'registry',
        `a registry without a metric named ${name} (call registerMetrics once per registry with every source, or unregister() first)`,
        name,
      );
    }
    this.names.push(name);
  }

  /** A gauge whose series are computed at every scrape. */
  gauge(name: string, help: string, labelNames: readonly string[], fill: () => Rows): void {
    this.#claim(name);
    const gauge = new (this.#client.Gauge as Ctor<GaugeLike>)({
      name,
      help,
      labelNames,
      registers: [this.#registry],
      collect: () => fill().setOn(gauge),
    });
  }

  counter(
    name: string,
    help: string,
    labelNames: readonly string[],
    collect?: () => void,
  ): CounterLike {
    this.#claim(name);
    return new (this.#client.Counter as Ctor<CounterLike>)({
      name,
      help,
      labelNames,
      registers: [this.#registry],
      ...(collect === undefined ? {} : { collect }),
    });
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: number[],
  ): HistogramLike {
    this.#claim(name);
    return new (this.#client.Histogram as Ctor<HistogramLike>)({
      name,
      help,
      labelNames,
      registers: [this.#registry],
      buckets,
    });
  }

  /**
   * A subscriber for one kind of emitter: `on(emitter, event, listener)`
   * subscribes for as long as the registration lasts.
   */
  subscriber<Events extends EventEmitter.ValidEventTypes>() {
    return <K extends EventEmitter.EventNames<Events>>(
      emitter: Emitter<Events>,
      event: K,
      listener: EventEmitter.EventListener<Events, K>,
    ): void => {
      emitter.on(event, listener);
      this.#cleanups.push(() => emitter.off(event, listener));
    };
  }

  unregister(): void {
    if (this.#done) return;
    this.#done = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    for (const name of this.names) this.#registry.removeSingleMetric(name);
  }
}

// ---------------------------------------------------------------- lag

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
function lagMetrics(b: Builder, src: Sources): void {
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
}

function monitorMetrics(b: Builder, monitors: readonly LagMonitor[]): void {
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
    'kafka_consumer_group_lag_seconds',
    'Estimated time lag per partition, in seconds: the age of the record at the committed offset, read from the end offsets’ history (a lower bound when the record is older than the history).',
    ['group', 'topic', 'partition'],
    () => perPartition((p) => p.timeLagSeconds),
  );
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

// ---------------------------------------------------------------- consumers

function consumerMetrics(
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

  const duration = b.histogram(
    'kafka_consumer_handler_duration_seconds',
    'Time of each handler attempt, by outcome (success, error, timeout).',
    ['group', 'topic', 'outcome'],
    buckets,
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
    on(c, 'handler.settled', (e) =>
      duration.observe(
        { group: c.groupId, topic: e.topic, outcome: e.outcome },
        e.durationMs / 1000,
      ),
    );
    on(c, 'message.retry', (e) => retries.inc({ group: c.groupId, topic: e.topic }));
    on(c, 'dlq.routed', (e) => routed.inc({ group: c.groupId, topic: e.topic, reason: e.reason }));
    on(c, 'dlq.failed', (e) => dlqFailures.inc({ group: c.groupId, topic: e.topic }));
    on(c, 'message.shed', (e) => shed.inc({ group: c.groupId, topic: e.topic, action: e.action }));
  }
}

// ---------------------------------------------------------------- producers

function producerMetrics(
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
