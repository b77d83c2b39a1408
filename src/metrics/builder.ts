import type { EventEmitter } from 'eventemitter3';
import { ConfigError } from '../errors.js';
import type { LagMonitor } from '../lag/lag-monitor.js';
import type { RateLimitedProducer } from '../producer/rate-limited-producer.js';
import type { MeasuredConsumer } from './metrics.js';

/**
 * The plumbing every metrics module shares: the structural prom-client
 * types, a builder that registers and unregisters metrics, and `Rows` for
 * gauges computed at scrape time. prom-client's types are described here
 * instead of imported, so the published declarations type-check for users
 * without prom-client too.
 */

export type Labels = Record<string, string>;

/** The part of a prom-client `Registry` used here; a `Registry` (or `register`) fits. */
export interface MetricsRegistry {
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
  /**
   * Registers a metric object (prom-client's metric constructors call it,
   * and so does the library's handler-duration histogram). Optional in the
   * type so that a registry is checked for prom-client first: without
   * prom-client installed, `registerMetrics` says so.
   */
  registerMetric?(metric: never): void;
}

/** The options passed to the metric constructors (a subset of prom-client's). */
export interface MetricConfig {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registers: MetricsRegistry[];
  readonly collect?: () => void;
  readonly buckets?: number[];
}

export type Ctor<T> = new (config: MetricConfig) => T;

export interface GaugeLike {
  set(labels: Labels, value: number): void;
  reset(): void;
}

export interface CounterLike {
  inc(labels: Labels, value?: number): void;
}

export interface HistogramLike {
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
export interface Emitter<Events extends EventEmitter.ValidEventTypes> {
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

/** The sources of one registration, checked. */
export interface Sources {
  readonly consumers: readonly MeasuredConsumer[];
  readonly monitors: readonly LagMonitor[];
  readonly producers: readonly (readonly [string, RateLimitedProducer])[];
}

export class Rows {
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

export class Builder {
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

  /** A metric object of the library's own, registered as it is. */
  custom<M extends { readonly name: string }>(metric: M): M {
    const registry = this.#registry;
    if (typeof registry.registerMetric !== 'function') {
      throw new ConfigError(
        'registry',
        'a prom-client Registry with registerMetric() (new client.Registry()) to measure consumers',
        registry,
      );
    }
    this.#claim(metric.name);
    registry.registerMetric(metric as never);
    return metric;
  }

  /** Runs `cleanup` when the registration ends. */
  onUnregister(cleanup: () => void): void {
    this.#cleanups.push(cleanup);
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
