import type { Consumer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { LagMonitor, type LagSnapshot, type LagStatusEvent } from '../../src/lag/lag-monitor.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  getAdmin,
  getProducer,
  newConsumer,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const PARTITIONS = 3;
const RATE = 100; // msg/s, spread evenly over the partitions
const WARNING_LAG = 300;
const CRITICAL_LAG = 800;
/** Stated tolerance of the time-lag estimate against the truth recorded by the producer. */
const TIME_LAG_TOLERANCE_SECONDS = 1.5;

const monitors: LagMonitor[] = [];
let stopProducing: (() => Promise<void>) | undefined;

afterAll(async () => {
  await stopProducing?.();
  await Promise.all(monitors.map((m) => m.stop()));
  await disconnectAll();
});

interface Appended {
  readonly partition: number;
  readonly first: number;
  readonly last: number;
  /** Midway between the send and its acknowledgement, on performance.now() (the monitor's clock). */
  readonly at: number;
}

/**
 * Produces `RATE` msg/s round-robin over the partitions, catching up on any
 * shortfall every 10 ms, and records when each offset was appended: the
 * truth the time-lag estimate is checked against.
 */
function steadyProducer(topic: string): {
  stop: () => Promise<void>;
  /** When the log-end offset of `partition` reached `endOffset`. */
  reachedAt: (partition: number, endOffset: number) => number | undefined;
} {
  const log: Appended[] = [];
  let running = true;
  let sent = 0;
  const started = performance.now();
  const loop = (async () => {
    const producer = await getProducer();
    while (running) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      if (due > sent) {
        const messages = Array.from({ length: due - sent }, (_, i) => ({
          partition: (sent + i) % PARTITIONS,
          value: `m${sent + i}`,
        }));
        const sentAt = performance.now();
        const result = await producer.send({ topic, messages, acks: -1 });
        const at = (sentAt + performance.now()) / 2;
        for (const r of result) {
          const count = messages.filter((m) => m.partition === r.partition).length;
          const first = Number(r.baseOffset);
          log.push({ partition: r.partition, first, last: first + count - 1, at });
        }
        sent = due;
      }
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
    reachedAt: (partition, endOffset) =>
      log.find(
        (a) => a.partition === partition && a.first <= endOffset - 1 && endOffset - 1 <= a.last,
      )?.at,
  };
}

async function startGroup(groupId: string, topic: string): Promise<Consumer> {
  const consumer = newConsumer(groupId);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  // KafkaJS commits after every batch by default.
  await consumer.run({ eachMessage: async () => {} });
  return consumer;
}

/** The true time lag of a snapshot: per partition, how long ago the record at the committed offset was appended. */
function trueTimeLag(
  snapshot: LagSnapshot,
  reachedAt: (partition: number, endOffset: number) => number | undefined,
): number | undefined {
  let worst = 0;
  for (const p of snapshot.partitions) {
    if (p.lag === 0 || p.committedOffset === null) continue;
    // The log end passed the committed offset when that record was appended.
    const at = reachedAt(p.partition, p.committedOffset + 1);
    if (at === undefined) return undefined;
    worst = Math.max(worst, (snapshot.at - at) / 1000);
  }
  return worst;
}

describe('LagMonitor against a real broker', () => {
  it('a group that stops while a producer keeps going: lag grows, ok -> warning -> critical, stopped fires, back to ok on resume; time lag within ±1.5 s', async () => {
    const topic = await createTopic(uniqueName('lag-mon'), PARTITIONS);
    const groupId = uniqueName('g-lag-mon');
    const producer = steadyProducer(topic);
    stopProducing = producer.stop;

    const first = await startGroup(groupId, topic);
    await waitFor(async () => (await committedOffsets(groupId, topic)).size === PARTITIONS, {
      timeoutMs: 30_000,
      message: 'the group to commit on every partition',
    });

    const admin = await getAdmin();
    const thresholds = { warningLag: WARNING_LAG, criticalLag: CRITICAL_LAG };
    // Short window: the rates follow the stop quickly; the time lag comes
    // from the append history, which outlives the window.
    const monitor = new LagMonitor(admin, {
      groupId,
      topics: [topic],
      intervalMs: 500,
      windowMs: 3000,
      thresholds,
    });
    // Long window, topics discovered from the group's commits.
    const longMonitor = new LagMonitor(admin, {
      groupId,
      intervalMs: 500,
      windowMs: 30_000,
      thresholds,
    });
    monitors.push(monitor, longMonitor);

    const groupEvents: LagStatusEvent[] = [];
    monitor.on('lag.status', (e) => {
      if (e.scope === 'group') groupEvents.push(e);
    });
    const errors: string[] = [];
    for (const m of [monitor, longMonitor]) {
      m.on('lag.error', (e) => errors.push(`${e.during}: ${e.error.message}`));
    }
    const timeLagErrors: Record<'short' | 'long', { estimate: number; truth: number }[]> = {
      short: [],
      long: [],
    };
    /** When the group stopped; nothing is measured before. */
    let stoppedAt = Number.POSITIVE_INFINITY;
    let resumed = false;
    const measure = (name: 'short' | 'long') => (snapshot: LagSnapshot) => {
      // Only while the group is stopped and has fallen at least a second behind.
      if (resumed || snapshot.at < stoppedAt + 1000) return;
      const truth = trueTimeLag(snapshot, producer.reachedAt);
      if (truth === undefined || snapshot.total.timeLagSeconds === null) return;
      timeLagErrors[name].push({ estimate: snapshot.total.timeLagSeconds, truth });
    };
    monitor.on('lag.sample', measure('short'));
    longMonitor.on('lag.sample', measure('long'));

    await Promise.all([monitor.start(), longMonitor.start()]);
    expect(longMonitor.snapshot()?.partitions.map((p) => p.topic)).toEqual(
      Array.from({ length: PARTITIONS }, () => topic),
    );

    // Consuming: the group keeps up.
    await waitFor(() => (monitor.snapshot()?.partitions[0]?.samples ?? 0) >= 4, {
      timeoutMs: 10_000,
      message: 'four samples while consuming',
    });
    const consuming = monitor.snapshot()!;
    expect(monitor.status()).toBe('ok');
    expect(consuming.total.lag).toBeLessThan(WARNING_LAG * 0.8);
    expect(consuming.total.produceRate).toBeGreaterThan(RATE * 0.6);
    expect(consuming.total.consumeRate).toBeGreaterThan(RATE * 0.6);
    expect(consuming.members).toBe(1);
    groupEvents.length = 0;

    // The group stops (KafkaJS commits what it consumed and leaves); production goes on.
    await first.disconnect();
    stoppedAt = performance.now();

    await waitFor(() => monitor.status() === 'critical', {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: () => `critical status (lag ${monitor.snapshot()?.total.lag})`,
    });
    const stalled = monitor.snapshot()!;
    expect(groupEvents.map((e) => `${e.from}->${e.to}`)).toEqual([
      'ok->warning',
      'warning->critical',
    ]);
    const [warning, critical] = groupEvents;
    expect(warning!.lag).toBeGreaterThanOrEqual(WARNING_LAG);
    expect(warning!.lag).toBeLessThan(CRITICAL_LAG);
    expect(warning!.reason).toMatch(/^lag \d+ >= warningLag 300/);
    expect(critical!.lag).toBeGreaterThanOrEqual(CRITICAL_LAG);
    expect(critical!.reason).toMatch(/^lag \d+ >= criticalLag 800/);
    expect(stalled.total.rateOfChange).toBeGreaterThan(RATE * 0.6);
    expect(stalled.total.rateOfChange).toBeLessThan(RATE * 1.5);
    expect(stalled.total.consumeRate).toBe(0);
    expect(stalled.total.rules.stopped || stalled.total.rules.stalled).toBe(true);
    expect(stalled.partitions.every((p) => p.rules.stopped)).toBe(true);
    expect(critical!.reason).toMatch(/rule: stopped/);
    expect(stalled.members).toBe(0);
    // Lag grows with production: about RATE / s since the stop.
    const history = monitor.history().total;
    expect(history.at(-1)!.lag).toBeGreaterThan(history[0]!.lag);

    // The group resumes and works off the backlog: back to ok.
    resumed = true;
    const second = await startGroup(groupId, topic);
    await waitFor(() => monitor.status() === 'ok', {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: () => `ok status again (lag ${monitor.snapshot()?.total.lag})`,
    });
    expect(groupEvents.at(-1)).toMatchObject({ from: expect.any(String), to: 'ok' });
    expect(groupEvents.slice(2).every((e) => e.to !== 'critical')).toBe(true);
    await second.disconnect();

    // Time lag: the truth is when each partition's log end stood at the committed offset.
    const report = (name: 'short' | 'long') => {
      const samples = timeLagErrors[name];
      const errs = samples.map((s) => Math.abs(s.estimate - s.truth));
      return {
        samples: samples.length,
        maxAbsErrorSeconds: Math.max(...errs),
        meanAbsErrorSeconds: errs.reduce((a, b) => a + b, 0) / errs.length,
        maxTruthSeconds: Math.max(...samples.map((s) => s.truth)),
      };
    };
    const short = report('short');
    const long = report('long');
    console.info(
      `[lag-monitor] time-lag error vs truth (±${TIME_LAG_TOLERANCE_SECONDS} s allowed): ` +
        `short window ${JSON.stringify(short)}; long window ${JSON.stringify(long)}`,
    );
    expect(short.samples).toBeGreaterThanOrEqual(5);
    expect(long.samples).toBeGreaterThanOrEqual(5);
    expect(short.maxAbsErrorSeconds).toBeLessThanOrEqual(TIME_LAG_TOLERANCE_SECONDS);
    expect(long.maxAbsErrorSeconds).toBeLessThanOrEqual(TIME_LAG_TOLERANCE_SECONDS);
    expect(errors).toEqual([]);

    await Promise.all([monitor.stop(), longMonitor.stop()]);
    expect(monitor.state).toBe('stopped');
  });
});
