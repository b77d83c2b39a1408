import { createRequire } from 'node:module';
import {
  BackpressureConsumer,
  OBSERVE_ATTEMPTS,
  type PartitionSnapshot,
} from '../consumer/backpressure-consumer.js';
import {
  Builder,
  type Emitter,
  type MetricsRegistry,
  type PromClient,
  type Sources,
} from './builder.js';
import { consumerMetrics } from './consumer.js';
import { lagMetrics, monitorMetrics } from './lag.js';
import { producerMetrics } from './producer.js';
import { BackpressureError, ConfigError } from '../errors.js';
import type { ConsumerEvents } from '../consumer/events.js';
import { LagMonitor } from '../lag/lag-monitor.js';
import { RateLimitedProducer } from '../producer/rate-limited-producer.js';
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

export type { MetricsRegistry, PromClient };

export interface MeasuredConsumer extends Emitter<ConsumerEvents> {
  readonly groupId: string;
  readonly inFlight: number;
  readonly inFlightBytes: number;
  readonly activeHandlers: number;
  readonly concurrency: number;
  readonly circuitState: 'closed' | 'open' | 'half-open';
  partitions(): PartitionSnapshot[];
  consumedCounts(): ReadonlyMap<string, number>;
  /** How a `BackpressureConsumer` reports handler durations cheaply; without it `handler.settled` is used. */
  [OBSERVE_ATTEMPTS]?(
    observer: (topic: string, outcome: 'success' | 'error' | 'timeout', durationMs: number) => void,
  ): () => void;
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
   * @default prom-client, `require`d from where this library is installed
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
