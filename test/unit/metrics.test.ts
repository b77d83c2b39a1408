import type { Consumer } from 'kafkajs';
import * as client from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { BackpressureConsumer } from '../../src/consumer/backpressure-consumer.js';
import { BackpressureError, ConfigError } from '../../src/errors.js';
import { LagMonitor, type LagAdmin } from '../../src/lag/lag-monitor.js';
import { registerMetrics, type MetricsRegistration } from '../../src/metrics/metrics.js';
import { RateLimitedProducer } from '../../src/producer/rate-limited-producer.js';

// ---- a scrape, parsed -------------------------------------------------------

interface Series {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parse(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k!] = v!;
    }
    const raw = m[3]!;
    out.push({
      name: m[1]!,
      labels,
      value: raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? -Infinity : Number(raw),
    });
  }
  return out;
}

function typesOf(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  return types;
}

function value(series: Series[], name: string, labels: Record<string, string> = {}): number {
  const found = series.filter(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1) {
    throw new Error(
      `${found.length} series ${name}${JSON.stringify(labels)} in:\n${series
        .filter((s) => s.name === name)
        .map((s) => JSON.stringify(s))
        .join('\n')}`,
    );
  }
  return found[0]!.value;
}

// ---- sources without a broker -----------------------------------------------

/** An admin whose offsets the test sets; the monitor's clock is the test's too. */
function fakeMonitor(groupId = 'g') {
  const state = {
    end: [100, 200],
    committed: [40, 200] as (number | null)[],
    now: 0,
  };
  const admin = {
    connect: async () => undefined,
    fetchOffsets: async () => [
      {
        topic: 'orders',
        partitions: state.committed.map((c, partition) => ({
          partition,
          offset: c === null ? '-1' : String(c),
          metadata: null,
        })),
      },
    ],
    fetchTopicOffsets: async () =>
      state.end.map((e, partition) => ({
        partition,
        offset: String(e),
        high: String(e),
        low: '0',
      })),
    describeGroups: async () => ({ groups: [{ members: [{}, {}] }] }),
  } as unknown as LagAdmin;
  const monitor = new LagMonitor(admin, {
    groupId,
    topics: ['orders'],
    intervalMs: 1000,
    ruleMinSamples: 3,
    // No move of partition 0 is ever seen: it is stopped after this long.
    stoppedAfterMs: 2000,
    thresholds: { warningLag: 50, criticalLag: 500 },
    clock: { now: () => state.now },
  });
  return { monitor, state };
}

function fakeProducer() {
  return new RateLimitedProducer(
    { send: async () => [], disconnect: async () => undefined },
    { messagesPerSecond: 100, warningRateFactor: 0.5 },
  );
}

const registrations: MetricsRegistration[] = [];
const producers: RateLimitedProducer[] = [];
afterEach(async () => {
  for (const r of registrations.splice(0)) r.unregister();
  await Promise.all(producers.splice(0).map((p) => p.close()));
});

function register(...args: Parameters<typeof registerMetrics>): MetricsRegistration {
  const r = registerMetrics(...args);
  registrations.push(r);
  return r;
}

describe('registerMetrics: lag monitor', () => {
  it('reports the monitor’s own numbers, with the documented names, types and labels', async () => {
    const { monitor, state } = fakeMonitor();
    const registry = new client.Registry();
    register(registry, { monitors: [monitor] }, { client });

    // Before the first round: no series, only the families.
    expect(parse(await registry.metrics())).toEqual([]);

    // Partition 0 is stopped (committed offset fixed while the end grows);
    // partition 1 keeps up.
    for (let i = 0; i < 5; i += 1) {
      state.now = i * 1000;
      state.end = [100 + 50 * i, 200 + 10 * i];
      state.committed = [40, 200 + 10 * i];
      await monitor.sample();
    }
    const snapshot = monitor.snapshot()!;
    const text = await registry.metrics();
    const s = parse(text);
    const types = typesOf(text);

    expect(snapshot.total.lag).toBe(260);
    for (const p of snapshot.partitions) {
      const labels = { group: 'g', topic: 'orders', partition: String(p.partition) };
      expect(value(s, 'kafka_consumer_group_lag', labels)).toBe(p.lag);
      expect(value(s, 'kafka_consumer_group_lag_seconds', labels)).toBeCloseTo(
        p.timeLagSeconds!,
        9,
      );
      expect(value(s, 'kafka_lag_partition_status', labels)).toBe(
        ['ok', 'warning', 'critical'].indexOf(p.status),
      );
    }
    expect(value(s, 'kafka_consumer_group_lag_total', { group: 'g' })).toBe(260);
    expect(monitor.status()).toBe('warning');
    expect(value(s, 'kafka_lag_status', { group: 'g' })).toBe(1);
    expect(value(s, 'kafka_lag_rate_of_change', { group: 'g' })).toBeCloseTo(
      snapshot.total.rateOfChange!,
      9,
    );
    expect(snapshot.total.rateOfChange).toBeCloseTo(50, 9);
    expect(value(s, 'kafka_lag_produce_rate', { group: 'g' })).toBeCloseTo(60, 9);
    expect(value(s, 'kafka_lag_consume_rate', { group: 'g' })).toBeCloseTo(10, 9);
    expect(value(s, 'kafka_lag_rule', { group: 'g', rule: 'stopped' })).toBe(1);
    expect(value(s, 'kafka_lag_rule', { group: 'g', rule: 'rewind' })).toBe(0);
    expect(value(s, 'kafka_lag_consumers_needed', { group: 'g' })).toBe(
      snapshot.recommendation.consumersNeeded,
    );
    expect(value(s, 'kafka_lag_partitions_needed', { group: 'g' })).toBe(
      snapshot.recommendation.partitionsNeeded,
    );
    // Not draining (consume rate below the produce rate): no series.
    expect(s.filter((x) => x.name === 'kafka_lag_time_to_drain_seconds')).toEqual([]);

    expect(types.get('kafka_consumer_group_lag')).toBe('gauge');
    expect(types.get('kafka_lag_status')).toBe('gauge');
    expect(types.get('kafka_lag_monitor_errors_total')).toBe('counter');

    // The status falls back: the gauge follows at the next scrape.
    state.now = 5000;
    state.committed = [350, 240];
    state.end = [350, 240];
    await monitor.sample();
    expect(monitor.status()).toBe('ok');
    const after = parse(await registry.metrics());
    expect(value(after, 'kafka_lag_status', { group: 'g' })).toBe(0);
    expect(value(after, 'kafka_consumer_group_lag_total', { group: 'g' })).toBe(0);
  });

  it('counts admin failures from lag.error', async () => {
    const { monitor } = fakeMonitor();
    const registry = new client.Registry();
    register(registry, { monitors: [monitor] }, { client });
    monitor.emit('lag.error', { groupId: 'g', error: new Error('x'), during: 'fetchOffsets' });
    monitor.emit('lag.error', { groupId: 'g', error: new Error('x'), during: 'fetchOffsets' });
    const s = parse(await registry.metrics());
    expect(value(s, 'kafka_lag_monitor_errors_total', { group: 'g', during: 'fetchOffsets' })).toBe(
      2,
    );
  });
});

describe('registerMetrics: rate-limited producer', () => {
  it('reports throttle state, rate in force, buffer and counts throttle changes', async () => {
    const producer = fakeProducer();
    producers.push(producer);
    const registry = new client.Registry();
    register(registry, { producers: { dlq: producer } }, { client });

    let s = parse(await registry.metrics());
    expect(value(s, 'kafka_producer_throttle_state', { producer: 'dlq' })).toBe(0);
    expect(value(s, 'kafka_producer_rate_limit', { producer: 'dlq', unit: 'messages' })).toBe(100);
    expect(value(s, 'kafka_producer_rate_limit', { producer: 'dlq', unit: 'bytes' })).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(value(s, 'kafka_producer_buffered_messages', { producer: 'dlq' })).toBe(0);

    producer.setLagStatus('warning', 'test');
    producer.setLagStatus('critical', 'test');
    s = parse(await registry.metrics());
    expect(value(s, 'kafka_producer_throttle_state', { producer: 'dlq' })).toBe(2);
    expect(value(s, 'kafka_producer_rate_limit', { producer: 'dlq', unit: 'messages' })).toBe(50);
    expect(
      value(s, 'kafka_producer_throttle_changes_total', {
        producer: 'dlq',
        cause: 'lag',
        lag_status: 'warning',
      }),
    ).toBe(1);
    expect(
      value(s, 'kafka_producer_throttle_changes_total', {
        producer: 'dlq',
        cause: 'lag',
        lag_status: 'critical',
      }),
    ).toBe(1);
    producer.setLagStatus('ok');
  });

  it('labels producers given as an array by their index', async () => {
    const a = fakeProducer();
    const b = fakeProducer();
    producers.push(a, b);
    const registry = new client.Registry();
    register(registry, { producers: [a, b] }, { client });
    b.setLagStatus('warning');
    const s = parse(await registry.metrics());
    expect(value(s, 'kafka_producer_throttle_state', { producer: '0' })).toBe(0);
    expect(value(s, 'kafka_producer_throttle_state', { producer: '1' })).toBe(1);
  });
});

describe('registerMetrics: registration', () => {
  it('loads prom-client by itself when no client is passed', async () => {
    const producer = fakeProducer();
    producers.push(producer);
    const registry = new client.Registry();
    register(registry, { producers: [producer] });
    expect(await registry.metrics()).toContain('kafka_producer_throttle_state{producer="0"} 0');
  });

  it('unregister() removes every metric and every listener, and is idempotent', async () => {
    const producer = fakeProducer();
    producers.push(producer);
    const { monitor } = fakeMonitor();
    const registry = new client.Registry();
    const before = producer.listenerCount('producer.throttled');
    const r = registerMetrics(registry, { producers: [producer], monitors: [monitor] }, { client });
    expect(r.names.length).toBeGreaterThan(10);
    expect(
      registry
        .getMetricsAsArray()
        .map((m) => m.name)
        .sort(),
    ).toEqual([...r.names].sort());
    expect(producer.listenerCount('producer.throttled')).toBe(before + 1);
    r.unregister();
    r.unregister();
    expect(registry.getMetricsAsArray()).toEqual([]);
    expect(producer.listenerCount('producer.throttled')).toBe(before);
    expect(monitor.listenerCount('lag.error')).toBe(0);
    // Registering again works after unregister().
    register(registry, { producers: [producer] }, { client });
  });

  it('refuses a second registration of the same names, leaving the first intact', async () => {
    const producer = fakeProducer();
    producers.push(producer);
    const registry = new client.Registry();
    const first = register(registry, { producers: [producer] }, { client });
    const error = (() => {
      try {
        registerMetrics(registry, { producers: [producer] }, { client });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe('registry');
    expect(
      registry
        .getMetricsAsArray()
        .map((m) => m.name)
        .sort(),
    ).toEqual([...first.names].sort());
    expect(producer.listenerCount('producer.throttled')).toBe(1);
  });

  it('registers the families of the sources given, and only those', () => {
    const producer = fakeProducer();
    producers.push(producer);
    const registry = new client.Registry();
    const r = register(registry, { producers: [producer] }, { client });
    expect(r.names.every((n) => n.startsWith('kafka_producer_'))).toBe(true);
  });

  it('accepts consumers of any payload type (a deserializer changes the type parameter)', () => {
    const fake = { run: () => undefined } as unknown as Consumer;
    const typed = new BackpressureConsumer<{ id: string }>(fake, {
      topics: ['t'],
      deserialize: (m) => ({ id: m.key!.toString() }),
      handler: (message) => void message.payload.id,
    });
    const raw = new BackpressureConsumer(fake, { topics: ['t'], handler: () => undefined });
    const registry = new client.Registry();
    // Type-checked by `npm run typecheck`: both kinds in one array.
    const r = register(registry, { consumers: [typed, raw] }, { client });
    expect(r.names).toContain('kafka_consumer_paused');
  });

  it('counts nothing for a consumer that has not joined its group yet', async () => {
    const fake = { run: () => undefined } as unknown as Consumer;
    const consumer = new BackpressureConsumer(fake, { topics: ['t'], handler: () => undefined });
    const registry = new client.Registry();
    const r = register(registry, { consumers: [consumer] }, { client });
    expect(r.names).toContain('kafka_messages_consumed_total');
    expect(r.names).toContain('kafka_consumer_handler_duration_seconds');
    expect(parse(await registry.metrics())).toEqual([]);
    expect(typesOf(await registry.metrics()).get('kafka_consumer_handler_duration_seconds')).toBe(
      'histogram',
    );
  });

  it.each([
    ['registry', () => registerMetrics({} as never, { producers: [] })],
    ['registry', () => registerMetrics(null as never, {})],
    ['sources', () => registerMetrics(new client.Registry(), {})],
    ['sources', () => registerMetrics(new client.Registry(), undefined as never)],
    [
      'sources.consumers',
      () => registerMetrics(new client.Registry(), { consumers: [{}] as never }),
    ],
    ['sources.monitors', () => registerMetrics(new client.Registry(), { monitors: {} as never })],
    [
      'sources.producers.x',
      () => registerMetrics(new client.Registry(), { producers: { x: {} } as never }),
    ],
    ['sources.other', () => registerMetrics(new client.Registry(), { other: [] } as never)],
  ])('rejects a bad %s', (option, call) => {
    try {
      call();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe(option);
      return;
    }
    throw new Error('expected a ConfigError');
  });

  it.each([
    [{ client: {} }, 'client'],
    [{ handlerDurationBuckets: [] }, 'handlerDurationBuckets'],
    [{ handlerDurationBuckets: [0.1, 0.1] }, 'handlerDurationBuckets'],
    [{ handlerDurationBuckets: [0, 1] }, 'handlerDurationBuckets'],
    [{ handlerDurationBuckets: [1, Number.POSITIVE_INFINITY] }, 'handlerDurationBuckets'],
    [{ prefix: 'x' }, 'prefix'],
  ])('rejects options %o naming %s', (options, option) => {
    const producer = fakeProducer();
    producers.push(producer);
    const registry = new client.Registry();
    try {
      registerMetrics(registry, { producers: [producer] }, options as never);
    } catch (error) {
      expect(error).toBeInstanceOf(BackpressureError);
      expect((error as ConfigError).option).toBe(option);
      expect(registry.getMetricsAsArray()).toEqual([]);
      return;
    }
    throw new Error('expected a ConfigError');
  });
});
