// The time lag against a real broker (issue 20): for steady, bursty,
// stopping and sporadic producers, every estimate is checked against the
// truth (the round's time minus the broker's LogAppendTime of the record
// at the committed offset). Where the estimate claims bounds, the truth
// lies inside them and the estimate within max(1 s, 10%) of it; a lower
// bound never exceeds the truth; a caught-up partition reads 0; and a
// healthy group fed sporadically never leaves `ok`.

import type { Consumer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { LagMonitor, type LagMonitorOptions, type LagSnapshot } from '../../src/lag/lag-monitor.js';
import { createTopic, disconnectAll, getAdmin, uniqueName, waitFor } from '../helpers/kafka.js';
import {
  LOG_APPEND_TIME,
  ScheduledProducer,
  sleep,
  startGroup,
  trueTimeLags,
  wallClock,
} from '../helpers/lag.js';

const PARTITIONS = 3;
const INTERVAL_MS = 500;
/** Slack for the read time: the end offsets are read somewhere during a request of a few ms. */
const EPSILON_S = 0.1;

const monitors: LagMonitor[] = [];
const producers: ScheduledProducer[] = [];
const groups = new Set<Consumer>();

afterAll(async () => {
  await Promise.all(producers.map((p) => p.stop()));
  await Promise.all(monitors.map((m) => m.stop()));
  await Promise.all([...groups].map((g) => g.disconnect()));
  await disconnectAll();
});

interface Check {
  readonly partition: number;
  readonly lag: number;
  readonly truth: number;
  readonly seconds: number;
  readonly min: number;
  readonly max: number | null;
  readonly method: string;
}

async function watch(
  groupId: string,
  topic: string,
  producer: ScheduledProducer,
  extra: Partial<LagMonitorOptions> = {},
): Promise<{ monitor: LagMonitor; checks: Check[]; statuses: string[] }> {
  const monitor = new LagMonitor(await getAdmin(), {
    groupId,
    topics: [topic],
    intervalMs: INTERVAL_MS,
    // Far shorter than the idle spells below: the time lag must not depend on it.
    windowMs: 5000,
    clock: wallClock,
    thresholds: { criticalLag: 1_000_000 },
    ...extra,
  });
  monitors.push(monitor);
  const checks: Check[] = [];
  const statuses: string[] = [];
  monitor.on('lag.sample', (snapshot: LagSnapshot) => {
    const truths = trueTimeLags(snapshot, producer);
    snapshot.partitions.forEach((p, i) => {
      const truth = truths[i];
      if (truth === undefined || p.timeLag === null) return;
      checks.push({
        partition: p.partition,
        lag: p.lag,
        truth,
        seconds: p.timeLag.seconds,
        min: p.timeLag.minSeconds,
        max: p.timeLag.maxSeconds,
        method: p.timeLag.method,
      });
    });
  });
  monitor.on('lag.status', (e) =>
    statuses.push(
      `${String(e.scope === 'group' ? 'group' : e.scope.partition)} ${e.from}->${e.to}: ${e.reason}`,
    ),
  );
  await monitor.start();
  return { monitor, checks, statuses };
}

/** Asserts every check against the truth and returns the figures for the report. */
function verify(name: string, checks: readonly Check[]) {
  expect(checks.length).toBeGreaterThan(20);
  const exact = checks.filter((c) => c.method === 'interpolated');
  const bounds = checks.filter((c) => c.method === 'lowerBound');
  const caughtUp = checks.filter((c) => c.lag === 0);
  for (const c of caughtUp) expect(c).toMatchObject({ seconds: 0, truth: 0, method: 'caughtUp' });
  for (const c of exact) {
    expect(c.truth, JSON.stringify(c)).toBeGreaterThanOrEqual(c.min - EPSILON_S);
    expect(c.truth, JSON.stringify(c)).toBeLessThanOrEqual(c.max! + EPSILON_S);
    expect(Math.abs(c.seconds - c.truth), JSON.stringify(c)).toBeLessThanOrEqual(
      Math.max(1, 0.1 * c.truth),
    );
  }
  for (const c of bounds)
    expect(c.seconds, JSON.stringify(c)).toBeLessThanOrEqual(c.truth + EPSILON_S);
  const errors = exact.map((c) => Math.abs(c.seconds - c.truth));
  const report = {
    checks: checks.length,
    caughtUp: caughtUp.length,
    interpolated: exact.length,
    lowerBound: bounds.length,
    maxAbsErrorS: round(Math.max(0, ...errors)),
    meanAbsErrorS: round(errors.reduce((a, b) => a + b, 0) / Math.max(1, errors.length)),
    maxBoundWidthS: round(Math.max(0, ...exact.map((c) => c.max! - c.min))),
    maxTruthS: round(Math.max(...checks.map((c) => c.truth))),
    lowerBoundShortfallMaxS: round(Math.max(0, ...bounds.map((c) => c.truth - c.seconds))),
  };
  console.info(`[lag-time] ${name}: ${JSON.stringify(report)}`);
  return report;
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/** Consume `consumeMs`, stop for `stopMs`, consume again until caught up and `tailMs` more. */
async function stopAndResume(
  groupId: string,
  topic: string,
  monitor: LagMonitor,
  { consumeMs, stopMs, tailMs }: { consumeMs: number; stopMs: number; tailMs: number },
): Promise<void> {
  const first = await startGroup(groupId, topic);
  groups.add(first);
  await sleep(consumeMs);
  await first.disconnect();
  groups.delete(first);
  await sleep(stopMs);
  const second = await startGroup(groupId, topic);
  groups.add(second);
  await sleep(tailMs);
  await second.disconnect();
  groups.delete(second);
  expect(monitor.snapshot()).toBeDefined();
}

describe('time lag against the truth from record timestamps', () => {
  it('steady producer (30 msg/s): interpolated within one read interval, caught up reads 0', async () => {
    const topic = await createTopic(uniqueName('lag-t-steady'), PARTITIONS, {
      configs: LOG_APPEND_TIME,
    });
    const groupId = uniqueName('g-lag-t-steady');
    const producer = new ScheduledProducer(topic, PARTITIONS, (ms) => (ms / 1000) * 30);
    producers.push(producer);
    const { monitor, checks } = await watch(groupId, topic, producer);
    await stopAndResume(groupId, topic, monitor, { consumeMs: 6000, stopMs: 10_000, tailMs: 6000 });
    const report = verify('steady', checks);
    expect(report.interpolated).toBeGreaterThan(30);
    expect(report.maxTruthS).toBeGreaterThan(8);
    // Only records appended before the monitor's first read can be bounds.
    expect(report.lowerBound).toBeLessThan(10);
  });

  it('bursty producer (150 msg/s for 1 s of every 5 s): no error from the idle spells between bursts', async () => {
    const topic = await createTopic(uniqueName('lag-t-bursty'), PARTITIONS, {
      configs: LOG_APPEND_TIME,
    });
    const groupId = uniqueName('g-lag-t-bursty');
    const producer = new ScheduledProducer(
      topic,
      PARTITIONS,
      (ms) => 150 * (Math.floor(ms / 5000) + Math.min(1, (ms % 5000) / 1000)),
    );
    producers.push(producer);
    const { monitor, checks } = await watch(groupId, topic, producer);
    await stopAndResume(groupId, topic, monitor, { consumeMs: 6000, stopMs: 12_000, tailMs: 6000 });
    const report = verify('bursty', checks);
    expect(report.interpolated).toBeGreaterThan(30);
    expect(report.caughtUp).toBeGreaterThan(0);
  });

  it('producer stops while the group is stopped: exact long after the window, a lower bound for a monitor started late, 0 once caught up', async () => {
    const topic = await createTopic(uniqueName('lag-t-stopping'), PARTITIONS, {
      configs: LOG_APPEND_TIME,
    });
    const groupId = uniqueName('g-lag-t-stopping');
    const producer = new ScheduledProducer(
      topic,
      PARTITIONS,
      (ms) => (Math.min(ms, 8000) / 1000) * 30,
    );
    producers.push(producer);
    const { monitor, checks } = await watch(groupId, topic, producer);
    const first = await startGroup(groupId, topic);
    groups.add(first);
    await sleep(4000);
    await first.disconnect();
    groups.delete(first);
    // The producer stops at 8 s; at 18 s the last append is twice the window old.
    await sleep(14_000);
    const late = await watch(groupId, topic, producer);
    await sleep(4000);
    const stopped = monitor.snapshot()!;
    expect(stopped.total.timeLag?.method).toBe('interpolated');
    expect(late.monitor.snapshot()!.total.timeLag?.method).toBe('lowerBound');
    const second = await startGroup(groupId, topic);
    groups.add(second);
    await waitFor(() => monitor.snapshot()!.total.lag === 0, {
      timeoutMs: 20_000,
      message: 'caught up',
    });
    await waitFor(() => late.monitor.snapshot()!.total.lag === 0, {
      timeoutMs: 5000,
      message: 'caught up (late monitor)',
    });
    await second.disconnect();
    groups.delete(second);
    expect(monitor.snapshot()!.total).toMatchObject({ lag: 0, timeLagSeconds: 0 });
    expect(late.monitor.snapshot()!.total).toMatchObject({ lag: 0, timeLagSeconds: 0 });
    const report = verify('stopping', checks);
    expect(report.maxTruthS).toBeGreaterThan(15);
    const lateReport = verify('stopping, monitor started 10 s after the last append', late.checks);
    expect(lateReport.lowerBound).toBeGreaterThan(0);
  });

  it('sporadic producer (one message every 4 s), healthy group taking 1.5 s a message: exact, and never leaves ok', async () => {
    const topic = await createTopic(uniqueName('lag-t-sporadic'), PARTITIONS, {
      configs: LOG_APPEND_TIME,
    });
    const groupId = uniqueName('g-lag-t-sporadic');
    const producer = new ScheduledProducer(topic, PARTITIONS, (ms) => Math.floor(ms / 4000) + 1);
    producers.push(producer);
    const { monitor, checks, statuses } = await watch(groupId, topic, producer, {
      windowMs: 10_000,
      thresholds: { warningTimeLagSeconds: 3, criticalTimeLagSeconds: 4.5 },
    });
    const rules: unknown[] = [];
    monitor.on('lag.rule', (e) => rules.push(e.to));
    const group = await startGroup(groupId, topic, () => sleep(1500));
    groups.add(group);
    await sleep(30_000);
    await group.disconnect();
    groups.delete(group);
    const report = verify('sporadic', checks);
    expect(report.interpolated).toBeGreaterThan(5);
    expect(statuses).toEqual([]);
    expect(monitor.status()).toBe('ok');
    expect(rules).toEqual([]);
  });
});
