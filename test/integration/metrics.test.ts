import type { Consumer, Producer } from 'kafkajs';
import * as client from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  LagMonitor,
  NonRetriableError,
  registerMetrics,
  type ConsumerLagEvent,
  type MetricsRegistration,
  type PartitionSnapshot,
} from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  getAdmin,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

const open: { close(): Promise<void> }[] = [];
const registrations: MetricsRegistration[] = [];
let producer: Producer | undefined;

afterAll(async () => {
  for (const r of registrations) r.unregister();
  for (const item of open.reverse()) await item.close().catch(() => undefined);
  await disconnectAll();
});

async function dlqProducer(): Promise<Producer> {
  if (!producer) {
    producer = newKafka('bp-dlq').producer();
    await producer.connect();
    open.push({ close: () => producer!.disconnect() });
  }
  return producer;
}

function kafkaConsumer(groupId: string): Consumer {
  return newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
}

// ---- the scrape, parsed -------------------------------------------------------

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
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The series of `name` whose labels include `labels`. */
function select(series: Series[], name: string, labels: Record<string, string> = {}): Series[] {
  return series.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The one series of `name` with exactly `labels`. */
function value(series: Series[], name: string, labels: Record<string, string>): number {
  const found = select(series, name, labels).filter(
    (s) => Object.keys(s.labels).length === Object.keys(labels).length,
  );
  if (found.length !== 1) {
    throw new Error(`${found.length} series ${name}${JSON.stringify(labels)}`);
  }
  return found[0]!.value;
}

/**
 * Scrapes while the consumer's numbers stand still: they are read before and
 * after the scrape, and the scrape counts only when both reads agree, so
 * every value can be compared exactly.
 */
async function stableScrape<T>(
  registry: client.Registry,
  read: () => T,
): Promise<{ text: string; series: Series[]; numbers: T }> {
  let result: { text: string; series: Series[]; numbers: T } | undefined;
  await waitFor(
    async () => {
      const before = JSON.stringify(read());
      const text = await registry.metrics();
      const numbers = read();
      if (JSON.stringify(numbers) !== before) return false;
      result = { text, series: parse(text), numbers };
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 50, message: 'the consumer never stood still' },
  );
  return result!;
}

const MESSAGES = 600;
const PARTITIONS = 3;
const MAX_IN_FLIGHT = 30;
const CONCURRENCY = 4;
const isPoison = (i: number) => i === 5 || i === 205 || i === 405;
const isTransient = (i: number) => i % 50 === 7;

describe('Prometheus metrics against a real broker', () => {
  it('reports the monitor’s and the consumer’s own numbers during a lag test, and the counts after it', async () => {
    const topic = uniqueName('metrics');
    const groupId = uniqueName('g-metrics');
    await createTopic(topic, PARTITIONS);
    await createTopic(`${topic}.dlq`, 1);
    await produceMessages(
      topic,
      Array.from({ length: MESSAGES }, (_, i) => ({
        partition: i % PARTITIONS,
        value: isPoison(i) ? `poison-${i}` : `m-${i}`,
      })),
    );
    // What is in the topic: under load a produce request can time out after
    // the broker stored it and be retried, so it may hold a few more.
    const records = [...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0);
    expect(records).toBeGreaterThanOrEqual(MESSAGES);

    const monitor = new LagMonitor(await getAdmin(), {
      groupId,
      topics: [topic],
      intervalMs: 1000,
      thresholds: { warningLag: 100, criticalLag: 400 },
    });

    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let attempts = 0;
    let successes = 0;
    let failures = 0;
    const handled = new Set<string>();
    const consumer = new BackpressureConsumer(kafkaConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'unordered',
      concurrency: CONCURRENCY,
      maxInFlight: MAX_IN_FLIGHT,
      commitIntervalMs: 200,
      lagSampleIntervalMs: 100,
      retry: { initialDelayMs: 10, maxDelayMs: 50 },
      deadLetter: { producer: await dlqProducer() },
      handler: async (message, { attempt }) => {
        attempts += 1;
        await released;
        const value = message.value!.toString();
        const i = Number(value.split('-')[1]);
        if (isPoison(i)) {
          failures += 1;
          throw new NonRetriableError(`cannot use ${value}`);
        }
        if (isTransient(i) && attempt === 1) {
          failures += 1;
          throw new Error('transient');
        }
        successes += 1;
        handled.add(value);
      },
    });
    open.push({ close: () => consumer.close({ drainTimeoutMs: 1000 }) });
    let retries = 0;
    consumer.on('message.retry', () => (retries += 1));
    let deadLetters = 0;
    consumer.on('dlq.routed', () => (deadLetters += 1));
    let assignments = 0;
    consumer.on('group.rebalance', (e) => {
      if (e.phase === 'assigned') assignments += 1;
    });
    const samples: ConsumerLagEvent[] = [];
    consumer.on('lag.sample', (e) => samples.push(e));

    // Registry A: the consumer with a monitor of its group (the monitor's lag
    // is reported). Registry B: the consumer alone (its own lag is reported).
    const withMonitor = new client.Registry();
    registrations.push(
      registerMetrics(withMonitor, { consumers: [consumer], monitors: [monitor] }, { client }),
    );
    const consumerOnly = new client.Registry();
    registrations.push(registerMetrics(consumerOnly, { consumers: [consumer] }, { client }));

    await consumer.start();

    // ---- during the lag: handlers held, in-flight at its limit, nothing committed
    await waitFor(() => consumer.inFlight === MAX_IN_FLIGHT && attempts === CONCURRENCY, {
      timeoutMs: 60_000,
      message: () => `inFlight ${consumer.inFlight}, attempts ${attempts}`,
    });
    const snapshot = await monitor.sample();
    const readConsumer = () => ({
      partitions: consumer.partitions(),
      inFlight: consumer.inFlight,
      inFlightBytes: consumer.inFlightBytes,
      active: consumer.activeHandlers,
      concurrency: consumer.concurrency,
      circuit: consumer.circuitState,
    });
    const during = await stableScrape(withMonitor, readConsumer);
    const s = during.series;
    const group = { group: groupId };

    // The monitor's numbers.
    expect(snapshot.total.lag).toBe(records);
    expect(snapshot.partitions).toHaveLength(PARTITIONS);
    for (const p of snapshot.partitions) {
      const labels = { ...group, topic, partition: String(p.partition) };
      expect(value(s, 'kafka_consumer_group_lag', labels)).toBe(p.lag);
      expect(value(s, 'kafka_lag_partition_status', labels)).toBe(
        ['ok', 'warning', 'critical'].indexOf(p.status),
      );
    }
    expect(select(s, 'kafka_consumer_group_lag')).toHaveLength(PARTITIONS);
    expect(value(s, 'kafka_consumer_group_lag_total', group)).toBe(snapshot.total.lag);
    expect(monitor.status()).toBe('critical');
    expect(value(s, 'kafka_lag_status', group)).toBe(2);

    // The consumer's numbers.
    const n = during.numbers;
    expect(n.inFlight).toBe(MAX_IN_FLIGHT);
    expect(value(s, 'kafka_consumer_in_flight_messages', group)).toBe(n.inFlight);
    expect(value(s, 'kafka_consumer_in_flight_bytes', group)).toBe(n.inFlightBytes);
    expect(value(s, 'kafka_consumer_active_handlers', group)).toBe(n.active);
    expect(value(s, 'kafka_consumer_concurrency_limit', group)).toBe(n.concurrency);
    expect(value(s, 'kafka_consumer_circuit_state', group)).toBe(0);
    expect(n.partitions).toHaveLength(PARTITIONS);
    for (const p of n.partitions) {
      expect(
        value(s, 'kafka_consumer_paused', { ...group, topic, partition: String(p.partition) }),
      ).toBe(p.paused ? 1 : 0);
    }
    const reasons = new Map<string, number>();
    for (const p of n.partitions)
      for (const r of p.reasons) reasons.set(r, (reasons.get(r) ?? 0) + 1);
    expect(reasons.get('queue-full')).toBe(PARTITIONS);
    for (const [reason, count] of reasons) {
      expect(value(s, 'kafka_consumer_paused_partitions', { ...group, reason })).toBe(count);
    }
    expect(select(s, 'kafka_consumer_paused_partitions')).toHaveLength(reasons.size);
    expect(select(s, 'kafka_messages_consumed_total')).toEqual([]);

    // Registry B: the consumer's own lag, for each partition that has fetched a batch.
    const own = await stableScrape(consumerOnly, () => consumer.partitions());
    const known = own.numbers.filter(
      (p): p is PartitionSnapshot & { lag: number } => p.lag !== undefined,
    );
    expect(known.length).toBeGreaterThan(0);
    expect(select(own.series, 'kafka_consumer_group_lag')).toHaveLength(known.length);
    for (const p of known) {
      expect(
        value(own.series, 'kafka_consumer_group_lag', {
          ...group,
          topic,
          partition: String(p.partition),
        }),
      ).toBe(p.lag);
      // Nothing is done yet: the lag is everything up to the high watermark.
      expect(p.lag).toBe(p.highWatermark);
    }
    expect(value(own.series, 'kafka_consumer_group_lag_total', group)).toBe(
      known.reduce((sum, p) => sum + p.lag, 0),
    );
    // The lag.sample event carries the same numbers.
    const seen = samples.length;
    await waitFor(() => samples.length > seen, { timeoutMs: 10_000 });
    const sample = samples.at(-1)!;
    expect(sample.groupId).toBe(groupId);
    expect(sample.partitions.map((p) => [p.partition, p.lag])).toEqual(
      known.map((p) => [p.partition, p.lag]).sort((a, b) => a[0]! - b[0]!),
    );
    expect(sample.total).toBe(known.reduce((sum, p) => sum + p.lag, 0));

    const excerpt = during.text
      .split('\n')
      .filter((line) =>
        /^(# TYPE )?(kafka_consumer_group_lag|kafka_consumer_group_lag_total|kafka_lag_status|kafka_lag_partition_status|kafka_consumer_in_flight_messages|kafka_consumer_in_flight_bytes|kafka_consumer_paused|kafka_consumer_paused_partitions|kafka_consumer_circuit_state)[ {]/.test(
          line,
        ),
      )
      .join('\n');
    process.stdout.write(
      `\n---- scrape during the lag test (monitor sampled, handlers held) ----\n${excerpt}\n` +
        `---- consumer-only registry: own lag from batch high watermarks ----\n${select(
          own.series,
          'kafka_consumer_group_lag',
        )
          .map((x) => `${x.name}{partition="${x.labels['partition']}"} ${x.value}`)
          .join('\n')}\n`,
    );

    // ---- after: everything done, committed, the monitor back to ok
    release();
    await waitFor(() => handled.size === MESSAGES - 3, {
      timeoutMs: 60_000,
      message: () => `handled ${handled.size}`,
    });
    await expectCommittedAtEnd(groupId, topic);
    const later = await monitor.sample();
    expect(later.total.lag).toBe(0);
    expect(monitor.status()).toBe('ok');
    const after = await stableScrape(withMonitor, () => ({
      consumed: [...consumer.consumedCounts()],
      inFlight: consumer.inFlight,
      retries,
      deadLetters,
      attempts,
      successes,
      failures,
    }));
    const a = after.series;
    expect(value(a, 'kafka_consumer_group_lag_total', group)).toBe(later.total.lag);
    expect(value(a, 'kafka_lag_status', group)).toBe(0);
    expect(later.total.rateOfChange).not.toBeNull();
    expect(value(a, 'kafka_lag_rate_of_change', group)).toBeCloseTo(later.total.rateOfChange!, 9);
    expect(later.total.rateOfChange!).toBeLessThan(0);
    expect(value(a, 'kafka_consumer_in_flight_messages', group)).toBe(0);
    const done = after.numbers;
    const consumed = consumer.consumedCounts().get(topic)!;
    expect(done.consumed).toEqual([[topic, consumed]]);
    // Every record once (more only after a rebalance, which redelivers).
    if (assignments === 1) expect(consumed).toBe(records);
    expect(consumed).toBeGreaterThanOrEqual(records);
    expect(value(a, 'kafka_messages_consumed_total', { ...group, topic })).toBe(consumed);
    const transient = Array.from({ length: MESSAGES }, (_, i) => i).filter(isTransient).length;
    expect(done.retries).toBeGreaterThanOrEqual(transient);
    expect(value(a, 'kafka_consumer_retries_total', { ...group, topic })).toBe(done.retries);
    expect(done.deadLetters).toBeGreaterThanOrEqual(3);
    expect(
      value(a, 'kafka_consumer_dlq_routed_total', { ...group, topic, reason: 'non-retriable' }),
    ).toBe(done.deadLetters);
    // One histogram observation per handler attempt, by outcome.
    const count = (outcome: string) =>
      value(a, 'kafka_consumer_handler_duration_seconds_count', { ...group, topic, outcome });
    expect(count('success')).toBe(done.successes);
    expect(count('error')).toBe(done.failures);
    expect(done.successes + done.failures).toBe(done.attempts);
    expect(
      value(a, 'kafka_consumer_handler_duration_seconds_bucket', {
        ...group,
        topic,
        outcome: 'success',
        le: '+Inf',
      }),
    ).toBe(done.successes);

    // The consumer's own lag (registry B) agrees: 0 everywhere.
    const ownAfter = parse(await consumerOnly.metrics());
    expect(select(ownAfter, 'kafka_consumer_group_lag').map((x) => x.value)).toEqual([0, 0, 0]);
    expect(value(ownAfter, 'kafka_consumer_group_lag_total', group)).toBe(0);
    process.stdout.write(
      `---- after: consumed ${consumed} of ${records} records, retries ${done.retries}, dead letters ${done.deadLetters}, attempts ${done.attempts}; ` +
        `rate of change ${later.total.rateOfChange!.toFixed(1)} msg/s ----\n`,
    );
  });
});
