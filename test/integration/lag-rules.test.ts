// Burrow's rules and the rate mark against a real broker (issue 19): a
// live consumer stuck on one offset is stalled, a killed one is stopped
// within stoppedAfterMs and never falling behind on the way, an offset
// reset is a rewind, and lag growing at 20 msg/s with a warning rate of
// 10 msg/s is a warning.

import { afterAll, describe, expect, it } from 'vitest';
import {
  LagMonitor,
  type LagMonitorOptions,
  type LagRuleEvent,
} from '../../src/lag/lag-monitor.js';
import { runChild, type Child } from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  getAdmin,
  newConsumer,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { ScheduledProducer, sleep, startGroup } from '../helpers/lag.js';

const INTERVAL_MS = 500;
const monitors: LagMonitor[] = [];
const producers: ScheduledProducer[] = [];
const children: Child[] = [];

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await Promise.all(producers.map((p) => p.stop()));
  await Promise.all(monitors.map((m) => m.stop()));
  await disconnectAll();
});

async function monitorOf(
  groupId: string,
  topic: string,
  extra: Partial<LagMonitorOptions> = {},
): Promise<{ monitor: LagMonitor; rules: (LagRuleEvent & { seenAt: number })[] }> {
  const monitor = new LagMonitor(await getAdmin(), {
    groupId,
    topics: [topic],
    intervalMs: INTERVAL_MS,
    windowMs: 20_000,
    // A mark is required; this one is never reached.
    thresholds: { criticalLag: 1_000_000 },
    ...extra,
  });
  monitors.push(monitor);
  const rules: (LagRuleEvent & { seenAt: number })[] = [];
  monitor.on('lag.rule', (e) => rules.push({ ...e, seenAt: Date.now() }));
  monitor.on('lag.error', (e) => {
    console.warn(`[lag-rules] admin call ${e.during} failed: ${e.error.message}`);
  });
  await monitor.start();
  return { monitor, rules };
}

const groupRules = (rules: readonly LagRuleEvent[]) =>
  rules.filter((e) => e.scope === 'group').map((e) => e.to);

describe('LagMonitor rules against a real broker', () => {
  it('a live consumer stuck on one offset (heartbeating, committing it again) is stalled, never stopped', async () => {
    const topic = await createTopic(uniqueName('lag-stall'), 1);
    const groupId = uniqueName('g-lag-stall');
    const producer = new ScheduledProducer(topic, 1, (ms) => (ms / 1000) * 20);
    producers.push(producer);
    const STUCK_OFFSET = 40;
    const stoppedAfterMs = 6000;
    const { monitor, rules } = await monitorOf(groupId, topic, { stoppedAfterMs });

    const consumer = newConsumer(groupId);
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let released = false;
    let stuckAt: number | undefined;
    await consumer.run({
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
        for (const m of batch.messages) {
          const offset = Number(m.offset);
          if (offset >= STUCK_OFFSET) {
            stuckAt ??= Date.now();
            // A poison message retried forever: the member stays in the
            // group and commits the same offset again and again, as a Java
            // consumer's auto-commit does.
            while (!released) {
              await heartbeat();
              await consumer.commitOffsets([
                { topic, partition: batch.partition, offset: String(offset) },
              ]);
              await sleep(500);
            }
            return;
          }
          resolveOffset(m.offset);
          await commitOffsetsIfNecessary();
        }
      },
    });
    try {
      await waitFor(() => stuckAt, { timeoutMs: 30_000, message: 'the consumer to get stuck' });
      await waitFor(() => groupRules(rules).includes('stalled'), {
        timeoutMs: stoppedAfterMs + 10_000,
        intervalMs: 50,
        message: () => `stalled (rules so far: ${JSON.stringify(groupRules(rules))})`,
      });
      const stalledAt = rules.find((e) => e.scope === 'group' && e.to === 'stalled')!.seenAt;
      // The offset last moved before the consumer got stuck; the rule is
      // due stoppedAfterMs after that at the latest, seen within a round.
      expect(stalledAt - stuckAt!).toBeLessThanOrEqual(stoppedAfterMs + 3 * INTERVAL_MS);
      const snapshot = monitor.snapshot()!;
      expect(snapshot.partitions[0]).toMatchObject({
        owned: true,
        committedOffset: STUCK_OFFSET,
        rules: { stalled: true, stopped: false },
      });
      expect(snapshot.partitions[0]!.lag).toBeGreaterThan(0);
      // Held for a while longer (past stoppedAfterMs again), never stopped.
      await sleep(stoppedAfterMs);
      expect(groupRules(rules).filter((r) => r !== null)).toEqual(['stalled']);
      expect(monitor.snapshot()!.total.rules.stalled).toBe(true);
    } finally {
      released = true;
      await consumer.disconnect();
    }
  });

  it('a killed consumer is stopped within stoppedAfterMs, and never fallingBehind or stalled before', async () => {
    const PARTITIONS = 3;
    const SESSION_MS = 6000;
    const stoppedAfterMs = 9000;
    const topic = await createTopic(uniqueName('lag-stop'), PARTITIONS);
    const groupId = uniqueName('g-lag-stop');
    const producer = new ScheduledProducer(topic, PARTITIONS, (ms) => (ms / 1000) * 30);
    producers.push(producer);
    const { monitor, rules } = await monitorOf(groupId, topic, { stoppedAfterMs });

    const child = runChild(new URL('./children/lag-consumer.ts', import.meta.url), {
      LAG_TOPIC: topic,
      LAG_GROUP: groupId,
      LAG_PARTITIONS: String(PARTITIONS),
      LAG_SESSION_MS: String(SESSION_MS),
    });
    children.push(child);
    await child.waitForLine((l) => l === 'committed', 60_000);
    // Consuming for a while: the monitor learns the group's cadence.
    await sleep(8000);
    expect(monitor.snapshot()!.members).toBe(1);
    expect(groupRules(rules).filter((r) => r !== null)).toEqual([]);

    await child.kill();
    const killedAt = Date.now();
    await waitFor(() => monitor.snapshot()!.total.rules.stopped, {
      timeoutMs: stoppedAfterMs + 15_000,
      intervalMs: 50,
      message: () => `stopped (rules since the kill: ${JSON.stringify(groupRules(rules))})`,
    });
    const stoppedAt = rules.find((e) => e.scope === 'group' && e.to === 'stopped')!.seenAt;
    // The group is stopped once one partition is; the others follow within
    // the same bound (each partition's offset last moved at its own time).
    const deadline = killedAt + stoppedAfterMs + 3 * INTERVAL_MS;
    await waitFor(
      () => monitor.snapshot()!.partitions.every((p) => p.rules.stopped && p.owned === false),
      {
        timeoutMs: Math.max(0, deadline - Date.now()) + INTERVAL_MS,
        intervalMs: 50,
        message: () => `not every partition stopped: ${JSON.stringify(groupRules(rules))}`,
      },
    );
    const since = rules.filter((e) => e.seenAt >= killedAt);
    console.info(
      `[lag-rules] killed consumer: stopped ${((stoppedAt - killedAt) / 1000).toFixed(2)} s after the kill ` +
        `(stoppedAfterMs ${stoppedAfterMs / 1000} s, session ${SESSION_MS / 1000} s); rule changes: ` +
        JSON.stringify(since.map((e) => [e.scope === 'group' ? 'group' : e.scope.partition, e.to])),
    );
    expect(stoppedAt - killedAt).toBeLessThanOrEqual(stoppedAfterMs + 3 * INTERVAL_MS);
    // Between the kill and the stop, nothing but the stop itself.
    expect(since.every((e) => e.to === 'stopped')).toBe(true);
    const snapshot = monitor.snapshot()!;
    expect(snapshot.members).toBe(0);
    expect(snapshot.partitions.every((p) => p.rules.stopped && p.owned === false)).toBe(true);
  });

  it('an offset reset to the start is a rewind, until the group has caught up again', async () => {
    const topic = await createTopic(uniqueName('lag-rewind'), 1);
    const groupId = uniqueName('g-lag-rewind');
    await produceMessages(
      topic,
      Array.from({ length: 300 }, (_, i) => ({ value: `m${i}` })),
    );
    const first = await startGroup(groupId, topic);
    const { monitor, rules } = await monitorOf(groupId, topic);
    await waitFor(() => monitor.snapshot()?.total.lag === 0, {
      timeoutMs: 30_000,
      message: 'the group to catch up',
    });
    await first.disconnect();

    const admin = await getAdmin();
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '0' }] });
    const resetAt = Date.now();
    await waitFor(() => monitor.snapshot()!.total.rules.rewind, {
      timeoutMs: 5000,
      intervalMs: 50,
      message: 'rewind',
    });
    expect(
      rules.find((e) => e.scope === 'group' && e.to === 'rewind')!.seenAt - resetAt,
    ).toBeLessThanOrEqual(3 * INTERVAL_MS);
    expect(monitor.snapshot()!.partitions[0]).toMatchObject({ committedOffset: 0, lag: 300 });
    // Held while the group has lag, also past stoppedAfterMs-like waits: a
    // rewind outranks stopped, as in Burrow.
    await sleep(3000);
    expect(monitor.snapshot()!.total.rules).toMatchObject({ rewind: true, stopped: false });

    const second = await startGroup(groupId, topic);
    await waitFor(() => monitor.snapshot()!.total.lag === 0, {
      timeoutMs: 30_000,
      message: 'the group to catch up after the reset',
    });
    await waitFor(() => !monitor.snapshot()!.total.rules.rewind, { timeoutMs: 5000 });
    expect(groupRules(rules)).toEqual(['rewind', null]);
    await second.disconnect();
  });

  it('lag growing at 20 msg/s with warningRatePerSec 10 is a warning (and not critical at 40)', async () => {
    const PARTITIONS = 3;
    const topic = await createTopic(uniqueName('lag-rate'), PARTITIONS);
    const groupId = uniqueName('g-lag-rate');
    // The group has committed offsets (at the start) and no member.
    const admin = await getAdmin();
    await admin.setOffsets({
      groupId,
      topic,
      partitions: Array.from({ length: PARTITIONS }, (_, partition) => ({
        partition,
        offset: '0',
      })),
    });
    const { monitor } = await monitorOf(groupId, topic, {
      windowMs: 4000,
      thresholds: { warningRatePerSec: 10, criticalRatePerSec: 40 },
    });
    const statuses: string[] = [];
    monitor.on('lag.status', (e) => {
      if (e.scope === 'group') statuses.push(`${e.from}->${e.to}: ${e.reason}`);
    });
    expect(monitor.status()).toBe('ok');
    const producer = new ScheduledProducer(topic, PARTITIONS, (ms) => (ms / 1000) * 20);
    producers.push(producer);
    await waitFor(() => monitor.status() === 'warning', {
      timeoutMs: 15_000,
      intervalMs: 50,
      message: () => `warning (rate ${monitor.snapshot()?.total.rateOfChange})`,
    });
    // The slope settles over a full window; watch it for two more.
    await sleep(8000);
    // Read while the producer still runs: once it stops, the slope falls.
    const snapshot = monitor.snapshot()!;
    const seen = [...statuses];
    await producer.stop();
    expect(snapshot.total.rateOfChange).toBeGreaterThan(15);
    expect(snapshot.total.rateOfChange).toBeLessThan(25);
    expect(snapshot.total.status).toBe('warning');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^ok->warning: lag rate [\d.]+ msg\/s >= warningRatePerSec 10 msg\/s/);
  });
});
