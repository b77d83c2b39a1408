import fc from 'fast-check';
import type { Admin } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  LagMonitor,
  type LagAdmin,
  type LagMonitorOptions,
  type LagStatusEvent,
} from '../../src/lag/lag-monitor.js';
import type { LagStatus } from '../../src/lag/lag-status.js';
import { analyzePartition, combinePartitions } from '../../src/lag/analysis.js';
import {
  consumeRate,
  lagRateOfChange,
  leastSquaresSlope,
  produceRate,
} from '../../src/lag/rates.js';
import { recommend } from '../../src/lag/recommend.js';
import { NO_RULES } from '../../src/lag/rules.js';
import { LagWindow, lagOf, type LagSample } from '../../src/lag/samples.js';
import { nextStatus, type LagThresholds } from '../../src/lag/thresholds.js';

function fakeClock(start = 0): { now: () => number; set: (t: number) => void } {
  let t = start;
  return {
    now: () => t,
    set: (value) => {
      t = value;
    },
  };
}

/**
 * A partition sampled every `intervalMs` from `startMs`: the end offset and
 * the committed offset are functions of the time in seconds.
 */
function series(
  count: number,
  end: (seconds: number) => number,
  committed: (seconds: number) => number | null,
  { intervalMs = 1000, startMs = 0 }: { intervalMs?: number; startMs?: number } = {},
): LagSample[] {
  return Array.from({ length: count }, (_, i) => {
    const at = startMs + i * intervalMs;
    return { at, endOffset: end(at / 1000), committedOffset: committed(at / 1000) };
  });
}

const statusAfter = (
  lags: readonly number[],
  thresholds: LagThresholds,
  start: LagStatus = 'ok',
): LagStatus[] => {
  const out: LagStatus[] = [];
  let status = start;
  for (const lag of lags) {
    status = nextStatus(
      status,
      { lag, timeLagSeconds: null, rateOfChange: null },
      thresholds,
    ).status;
    out.push(status);
  }
  return out;
};

describe('leastSquaresSlope', () => {
  it('is exact on a linear series', () => {
    const points = Array.from({ length: 20 }, (_, i) => [i * 0.5, 7 + 3.25 * i * 0.5] as const);
    expect(leastSquaresSlope(points)).toBeCloseTo(3.25, 12);
  });

  it('keeps its precision with epoch-millisecond times and offsets near 2^53', () => {
    const t0 = Date.UTC(2030, 0, 1);
    const base = 2 ** 52;
    const points = Array.from({ length: 10 }, (_, i) => [t0 + i * 1000, base + i * 500] as const);
    expect(leastSquaresSlope(points)).toBeCloseTo(0.5, 9);
  });

  it('is null with fewer than two distinct x values', () => {
    expect(leastSquaresSlope([])).toBeNull();
    expect(leastSquaresSlope([[1, 2]])).toBeNull();
    expect(
      leastSquaresSlope([
        [1, 2],
        [1, 5],
      ]),
    ).toBeNull();
  });

  it('property: the slope of a + b*x + noise is b within the noise bound', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: -1e4, max: 1e4, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 3, maxLength: 60 }),
        (a, b, amplitude, unitNoise) => {
          const xs = unitNoise.map((_, i) => i * 0.5);
          const points = xs.map((x, i) => [x, a + b * x + amplitude * unitNoise[i]!] as const);
          // |slope - b| = |sum(dx * e)| / sum(dx^2) <= amplitude * sum(|dx|) / sum(dx^2).
          const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
          const sumAbs = xs.reduce((s, x) => s + Math.abs(x - mean), 0);
          const sumSq = xs.reduce((s, x) => s + (x - mean) ** 2, 0);
          const bound = (amplitude * sumAbs) / sumSq + 1e-9 * (1 + Math.abs(a) + Math.abs(b));
          const slope = leastSquaresSlope(points);
          expect(slope).not.toBeNull();
          expect(Math.abs(slope! - b)).toBeLessThanOrEqual(bound);
        },
      ),
    );
  });
});

describe('rates', () => {
  it('produce rate = slope of end offsets, consume rate = slope of committed, rate of change = their difference', () => {
    const samples = series(
      10,
      (t) => 1000 + 100 * t,
      (t) => 400 + 60 * t,
    );
    expect(produceRate(samples)).toBeCloseTo(100, 9);
    expect(consumeRate(samples)).toBeCloseTo(60, 9);
    expect(lagRateOfChange(samples)).toBeCloseTo(40, 9);
  });

  it('leaves samples without a committed offset out of the consume rate', () => {
    const samples = series(
      6,
      (t) => 100 * t,
      (t) => (t < 2 ? null : 50 * t),
    );
    expect(consumeRate(samples)).toBeCloseTo(50, 9);
    expect(consumeRate(samples.slice(0, 3))).toBeNull();
  });

  it('lag without a committed offset counts from the log-start offset', () => {
    expect(lagOf({ at: 0, endOffset: 500, committedOffset: null, startOffset: 120 })).toBe(380);
    expect(lagOf({ at: 0, endOffset: 500, committedOffset: null })).toBe(500);
    // A committed offset read after the end offset may be ahead of it: never negative.
    expect(lagOf({ at: 0, endOffset: 500, committedOffset: 510 })).toBe(0);
  });
});

describe('LagWindow', () => {
  const sample = (at: number, end = at): LagSample => ({
    at,
    endOffset: end,
    committedOffset: 0,
  });

  it('keeps samples by age and by count', () => {
    const clock = fakeClock();
    const window = new LagWindow(clock, { windowMs: 5000, windowSamples: 4 });
    for (let at = 0; at <= 6000; at += 1000) {
      clock.set(at);
      window.add('t|0', sample(at));
    }
    expect(window.samples('t|0').map((s) => s.at)).toEqual([3000, 4000, 5000, 6000]);
    clock.set(9500);
    expect(window.samples('t|0').map((s) => s.at)).toEqual([5000, 6000]);
    clock.set(20_000);
    expect(window.samples('t|0')).toEqual([]);
  });

  it('ignores a sample not newer than the last one', () => {
    const clock = fakeClock(10);
    const window = new LagWindow(clock, { windowMs: 1000, windowSamples: 10 });
    window.add('k', sample(5));
    window.add('k', sample(5, 99));
    window.add('k', sample(3));
    expect(window.samples('k')).toEqual([sample(5)]);
  });

  it('retain() forgets the keys no longer monitored', () => {
    const window = new LagWindow(fakeClock(), { windowMs: 1000, windowSamples: 10 });
    window.add('a|0', sample(0));
    window.add('b|0', sample(0));
    window.retain((key) => key.startsWith('a|'));
    expect(window.keys()).toEqual(['a|0']);
  });
});

describe('nextStatus (hysteresis)', () => {
  const lagMarks: LagThresholds = { warningLag: 1000, criticalLag: 5000 };

  it('rises at the marks (>=) and falls below mark × clearRatio (default 0.8)', () => {
    expect(statusAfter([999, 1000, 4999, 5000], lagMarks)).toEqual([
      'ok',
      'warning',
      'warning',
      'critical',
    ]);
    // critical holds down to 4000, then warning holds down to 800.
    expect(statusAfter([4000, 3999, 800, 799], lagMarks, 'critical')).toEqual([
      'critical',
      'warning',
      'warning',
      'ok',
    ]);
    // A big drop goes straight to the level the clear marks still hold.
    expect(statusAfter([10], lagMarks, 'critical')).toEqual(['ok']);
  });

  it('does not flap around a mark', () => {
    const around = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? 1020 : 900));
    const statuses = statusAfter(around, lagMarks);
    expect(new Set(statuses)).toEqual(new Set(['warning']));
  });

  it('applies lag and time-lag marks together (either raises; both must clear)', () => {
    const both: LagThresholds = { warningLag: 1000, criticalTimeLagSeconds: 60 };
    const decide = (prev: LagStatus, lag: number, time: number | null) =>
      nextStatus(prev, { lag, timeLagSeconds: time }, both);
    expect(decide('ok', 10, 61)).toMatchObject({ status: 'critical' });
    expect(decide('ok', 10, 61).reason).toBe('time lag 61 s >= criticalTimeLagSeconds 60 s');
    expect(decide('ok', 1500, 5)).toMatchObject({ status: 'warning' });
    expect(decide('critical', 1500, 47)).toMatchObject({ status: 'warning' });
    expect(decide('critical', 10, 49)).toMatchObject({ status: 'critical' });
    // Unknown time lag: only the lag mark applies.
    expect(decide('ok', 10, null)).toMatchObject({ status: 'ok' });
  });

  it('says why, with the measure, the value and the mark', () => {
    expect(nextStatus('ok', { lag: 5200, timeLagSeconds: null }, lagMarks).reason).toBe(
      'lag 5200 >= criticalLag 5000',
    );
    expect(nextStatus('critical', { lag: 700, timeLagSeconds: null }, lagMarks).reason).toBe(
      'lag 700 < 4000 (criticalLag 5000 × clearRatio 0.8)',
    );
  });

  it('rate marks: lag growing at or above the rate mark raises the status like a lag mark', () => {
    const t: LagThresholds = { warningRatePerSec: 10, criticalRatePerSec: 40 };
    const at = (rate: number | null, from: LagStatus = 'ok') =>
      nextStatus(from, { lag: 5, timeLagSeconds: null, rateOfChange: rate }, t);
    expect(at(9.9).status).toBe('ok');
    expect(at(20)).toEqual({
      status: 'warning',
      reason: 'lag rate 20 msg/s >= warningRatePerSec 10 msg/s',
    });
    expect(at(40).status).toBe('critical');
    expect(at(null).status).toBe('ok');
    // Hysteresis: held at 8 (10 x 0.8), left below it.
    expect(at(8.5, 'warning').status).toBe('warning');
    expect(at(7.9, 'warning').status).toBe('ok');
    expect(at(-50, 'critical').status).toBe('ok');
  });

  it('clearRatio 1 turns hysteresis off', () => {
    expect(statusAfter([1000, 999], { warningLag: 1000, clearRatio: 1 })).toEqual([
      'warning',
      'ok',
    ]);
  });

  it('property: for a fixed previous status and marks, the status never decreases as the lag grows', () => {
    const rank = { ok: 0, warning: 1, critical: 2 } as const;
    fc.assert(
      fc.property(
        fc.constantFrom<LagStatus>('ok', 'warning', 'critical'),
        fc.integer({ min: 1, max: 1e6 }),
        fc.integer({ min: 1, max: 1e6 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 3e6 }),
        fc.integer({ min: 0, max: 3e6 }),
        (previous, warningLag, extra, clearRatio, a, b) => {
          const t = { warningLag, criticalLag: warningLag + extra, clearRatio };
          const low = nextStatus(previous, { lag: Math.min(a, b), timeLagSeconds: null }, t);
          const high = nextStatus(previous, { lag: Math.max(a, b), timeLagSeconds: null }, t);
          expect(rank[low.status]).toBeLessThanOrEqual(rank[high.status]);
        },
      ),
    );
  });

  it('property: a lag that stays between the clear mark and above the mark never flaps', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 1e6 }),
        fc.array(fc.double({ min: 0.8, max: 1.5, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (mark, factors) => {
          const lags = [mark, ...factors.map((f) => Math.ceil(mark * f))];
          const statuses = statusAfter(lags, { warningLag: mark });
          expect(statuses.every((s) => s === 'warning')).toBe(true);
        },
      ),
    );
  });
});

describe('recommend', () => {
  it('100 msg/s in, 2 msg/s per consumer: 50 consumers, capped at 12 partitions, 50 partitions needed', () => {
    // 4 members consuming 8 msg/s between them: 2 msg/s each.
    const advice = recommend({
      lag: 5000,
      partitions: 12,
      produceRate: 100,
      consumeRate: 8,
      members: 4,
    });
    expect(advice).toMatchObject({
      consumersNeeded: 12,
      cappedByPartitions: true,
      partitionsNeeded: 50,
      consumeRatePerConsumer: 2,
      produceRate: 100,
      timeToDrainSeconds: null,
    });
  });

  it('not capped: the arithmetic, and partitionsNeeded = the current partition count', () => {
    const advice = recommend({
      lag: 0,
      partitions: 64,
      produceRate: 100,
      consumeRate: 100,
      members: 50,
    });
    expect(advice).toMatchObject({
      consumersNeeded: 50,
      cappedByPartitions: false,
      partitionsNeeded: 64,
      timeToDrainSeconds: 0,
    });
  });

  it('time to drain = lag / (consume rate - produce rate); null when not draining', () => {
    const base = { partitions: 6, members: 3 };
    expect(
      recommend({ ...base, lag: 1000, produceRate: 100, consumeRate: 150 }).timeToDrainSeconds,
    ).toBeCloseTo(20, 12);
    expect(
      recommend({ ...base, lag: 1000, produceRate: 100, consumeRate: 100 }).timeToDrainSeconds,
    ).toBeNull();
    expect(
      recommend({ ...base, lag: 1000, produceRate: null, consumeRate: 150 }).timeToDrainSeconds,
    ).toBeNull();
    expect(
      recommend({ ...base, lag: 0, produceRate: 100, consumeRate: 0 }).timeToDrainSeconds,
    ).toBe(0);
  });

  it('no per-consumer rate (no member, or nothing consumed): consumersNeeded is null', () => {
    const stopped = { lag: 900, partitions: 3, produceRate: 30, consumeRate: 0 };
    for (const members of [0, 2, null]) {
      expect(recommend({ ...stopped, members })).toMatchObject({
        consumersNeeded: null,
        partitionsNeeded: null,
        cappedByPartitions: false,
        consumeRatePerConsumer: null,
      });
    }
  });

  it('nothing produced: one consumer while there is lag, none without', () => {
    const idle = { partitions: 3, produceRate: 0, consumeRate: 0, members: 0 };
    expect(recommend({ ...idle, lag: 10 }).consumersNeeded).toBe(1);
    expect(recommend({ ...idle, lag: 0 }).consumersNeeded).toBe(0);
  });

  it('float noise does not add a consumer (1 msg/s at 1/3 msg/s each is 3)', () => {
    expect(
      recommend({ lag: 0, partitions: 10, produceRate: 1, consumeRate: 1, members: 3 })
        .consumersNeeded,
    ).toBe(3);
  });

  it('property: the uncapped count is the smallest that keeps up', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 64 }),
        (produced, perConsumer, members) => {
          const advice = recommend({
            lag: 0,
            partitions: 1_000_000,
            produceRate: produced,
            consumeRate: perConsumer * members,
            members,
          });
          const n = advice.consumersNeeded!;
          expect(n * perConsumer).toBeGreaterThanOrEqual(produced);
          expect((n - 1) * perConsumer).toBeLessThan(produced);
        },
      ),
    );
  });
});

describe('analyzePartition and combinePartitions', () => {
  it('sums lag and rates, takes the largest time lag with its bounds, ors the rules', () => {
    const a = analyzePartition(
      series(
        6,
        (t) => 100 * t + 200,
        () => 100,
      ),
      { seconds: 6, minSeconds: 5.5, maxSeconds: 6.5, method: 'interpolated' },
      { ...NO_RULES, stopped: true },
    );
    const b = analyzePartition(
      series(
        6,
        (t) => 50 * t + 1000,
        (t) => 50 * t + 1000,
      ),
      { seconds: 0, minSeconds: 0, maxSeconds: 0, method: 'caughtUp' },
      NO_RULES,
    );
    expect(a).toMatchObject({ lag: 600, endOffset: 700, committedOffset: 100, samples: 6 });
    expect(a.timeLagSeconds).toBe(6);
    const group = combinePartitions([a, b]);
    expect(group.lag).toBe(600);
    expect(group.produceRate).toBeCloseTo(150, 9);
    expect(group.consumeRate).toBeCloseTo(50, 9);
    expect(group.rateOfChange).toBeCloseTo(100, 9);
    expect(group.timeLag).toEqual({
      seconds: 6,
      minSeconds: 5.5,
      maxSeconds: 6.5,
      method: 'interpolated',
    });
    expect(group.rules).toEqual({ ...NO_RULES, stopped: true });
    expect(group.partitions).toBe(2);
  });
});

// The monitor is a thin loop around the window; these check its wiring
// without a broker (the integration test checks it against one).
describe('LagMonitor over a scripted admin', () => {
  interface Script {
    end: number[];
    committed: (number | null)[];
    members: number;
    failOffsets?: boolean;
    /** Partitions of topic `t` each member owns (consumer protocol assignments). */
    owns?: number[][];
  }

  /** Kafka's ConsumerProtocolAssignment v0 for topic `t`. */
  function assignment(partitions: number[]): Buffer {
    const topic = Buffer.from('t');
    const b = Buffer.alloc(2 + 4 + 2 + topic.length + 4 + 4 * partitions.length + 4);
    let at = b.writeInt16BE(0, 0);
    at = b.writeInt32BE(1, at);
    at = b.writeInt16BE(topic.length, at);
    at += topic.copy(b, at);
    at = b.writeInt32BE(partitions.length, at);
    for (const p of partitions) at = b.writeInt32BE(p, at);
    b.writeInt32BE(-1, at);
    return b;
  }

  function scriptedAdmin(script: Script): LagAdmin & { calls: string[] } {
    const calls: string[] = [];
    const admin = {
      calls,
      connect: async () => {
        calls.push('connect');
      },
      fetchOffsets: async ({ topics }: { groupId: string; topics?: string[] }) => {
        calls.push('fetchOffsets');
        if (script.failOffsets) throw new Error('coordinator not available');
        return (topics ?? ['t']).map((topic) => ({
          topic,
          partitions: script.committed.map((c, partition) => ({
            partition,
            offset: c === null ? '-1' : String(c),
            metadata: null,
          })),
        }));
      },
      fetchTopicOffsets: async () => {
        calls.push('fetchTopicOffsets');
        return script.end.map((e, partition) => ({
          partition,
          offset: String(e),
          high: String(e),
          low: '0',
        }));
      },
      describeGroups: async (groupIds: string[]) => ({
        groups: groupIds.map((groupId) => ({
          groupId,
          members: script.owns
            ? script.owns.map((p) => ({ memberAssignment: assignment(p) }))
            : Array.from({ length: script.members }, () => ({})),
          protocol: 'range',
          protocolType: 'consumer',
          state: 'Stable',
          errorCode: 0,
        })),
      }),
    };
    return admin as unknown as LagAdmin & { calls: string[] };
  }

  const options = (extra: Partial<LagMonitorOptions> = {}): LagMonitorOptions => ({
    groupId: 'g',
    topics: ['t'],
    intervalMs: 1000,
    windowMs: 10_000,
    thresholds: { warningLag: 100, criticalLag: 300 },
    ...extra,
  });

  it('rejects invalid options with a ConfigError naming the option', () => {
    const admin = scriptedAdmin({ end: [0], committed: [0], members: 1 });
    const optionOf = (o: unknown): string | undefined => {
      try {
        new LagMonitor(admin, o as LagMonitorOptions);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).option;
      }
      return undefined;
    };
    expect(optionOf(options({ thresholds: {} }))).toBe('thresholds');
    expect(optionOf({ groupId: 'g' })).toBe('thresholds');
    expect(optionOf(options({ thresholds: { warningLag: 300, criticalLag: 300 } }))).toBe(
      'thresholds.warningLag',
    );
    expect(optionOf(options({ thresholds: { warningLag: 10, clearRatio: 0 } }))).toBe(
      'thresholds.clearRatio',
    );
    expect(optionOf(options({ thresholds: { warnLag: 10 } as LagThresholds }))).toBe(
      'thresholds.warnLag',
    );
    expect(optionOf(options({ windowMs: 1500 }))).toBe('windowMs');
    expect(optionOf(options({ intervalMs: 2 ** 31 }))).toBe('intervalMs');
    expect(optionOf(options({ windowMs: 2 ** 31 }))).toBe('windowMs');
    expect(optionOf(options({ stoppedAfterMs: 1999 }))).toBe('stoppedAfterMs');
    expect(optionOf(options({ stoppedAfterMs: 2 ** 31 }))).toBe('stoppedAfterMs');
    expect(optionOf(options({ timeLagHistorySize: 8 }))).toBe('timeLagHistorySize');
    expect(optionOf(options({ thresholds: { warningRatePerSec: 0 } }))).toBe(
      'thresholds.warningRatePerSec',
    );
    expect(
      optionOf(options({ thresholds: { warningRatePerSec: 20, criticalRatePerSec: 10 } })),
    ).toBe('thresholds.warningRatePerSec');
    expect(optionOf(options({ ruleMinSamples: 11 }))).toBe('ruleMinSamples');
    expect(optionOf(options({ topics: [] }))).toBe('topics');
    expect(optionOf(options({ groupId: '' }))).toBe('groupId');
    expect(optionOf({ ...options(), interval: 5 })).toBe('interval');
    expect(() => new LagMonitor({} as Admin, options())).toThrow(ConfigError);
    // Defaults: the window is 60 intervals, with room for every sample.
    const monitor = new LagMonitor(admin, {
      groupId: 'g',
      thresholds: { criticalTimeLagSeconds: 30 },
    });
    expect(monitor.options).toMatchObject({
      intervalMs: 5000,
      windowMs: 300_000,
      windowSamples: 61,
      ruleMinSamples: 5,
      stoppedAfterMs: 30_000,
      timeLagHistorySize: 256,
      topics: undefined,
      thresholds: { criticalTimeLagSeconds: 30, clearRatio: 0.8 },
    });
    expect(Object.isFrozen(monitor.options)).toBe(true);
  });

  it('emits samples, status changes in order, rule flags and recommendations', async () => {
    const clock = fakeClock(0);
    const script: Script = { end: [0, 0], committed: [0, null], members: 2 };
    const admin = scriptedAdmin(script);
    const monitor = new LagMonitor(admin, options({ clock }));
    const statuses: LagStatusEvent[] = [];
    const recommendations: (number | null)[] = [];
    let samples = 0;
    monitor.on('lag.status', (e) => statuses.push(e));
    monitor.on('lag.recommendation', (e) => recommendations.push(e.recommendation.consumersNeeded));
    monitor.on('lag.sample', () => {
      samples += 1;
    });
    const status = monitor.status; // detached: usable as a lagSignal.status
    expect(status()).toBe('ok');

    // Both partitions consumed in step for 3 s, then the group stops while
    // 50 msg/s per partition arrive; the 10 s window then holds only the stop.
    for (let s = 0; s <= 15; s += 1) {
      clock.set(s * 1000);
      script.end = [50 * s, 50 * s];
      if (s <= 3) script.committed = [50 * s, 50 * s];
      await monitor.sample();
    }
    expect(samples).toBe(16);
    const group = statuses.filter((e) => e.scope === 'group').map((e) => `${e.from}->${e.to}`);
    expect(group).toEqual(['ok->warning', 'warning->critical']);
    expect(statuses.find((e) => e.to === 'critical' && e.scope === 'group')?.reason).toBe(
      'lag 300 >= criticalLag 300',
    );
    expect(status()).toBe('critical');
    expect(monitor.status({ topic: 't', partition: 0 })).toBe('critical');
    const snapshot = monitor.snapshot()!;
    expect(snapshot.total.lag).toBe(1200);
    expect(snapshot.total.rateOfChange).toBeCloseTo(100, 6);
    expect(snapshot.total.produceRate).toBeCloseTo(100, 6);
    expect(snapshot.total.consumeRate).toBeCloseTo(0, 6);
    expect(snapshot.total.rules).toMatchObject({ stopped: true, stalled: false });
    // Offset 150 (the committed one) was appended between the reads at 3 s
    // and 4 s: 11 to 12 s ago, interpolated as the first of that step's 50.
    expect(snapshot.total.timeLag).toEqual({
      seconds: 11.99,
      minSeconds: 11,
      maxSeconds: 12,
      method: 'interpolated',
    });
    expect(snapshot.partitions.map((p) => p.lag)).toEqual([600, 600]);
    expect(snapshot.members).toBe(2);
    // While consuming in step: 100 msg/s in, 50 msg/s per member -> 2.
    expect(recommendations[0]).toBe(2);
    // Stopped: nothing consumed in the window, so no per-consumer rate to size with.
    expect(snapshot.recommendation).toMatchObject({
      consumersNeeded: null,
      timeToDrainSeconds: null,
      lag: 1200,
      partitions: 2,
    });
    expect(monitor.history().total.at(-1)).toEqual({ at: 15_000, lag: 1200 });
    expect(monitor.history().partitions[0]!.samples).toHaveLength(11);
    expect(admin.calls.filter((c) => c === 'connect')).toHaveLength(1);

    // Resumes and catches up: back to ok, through warning or straight down.
    script.committed = [...script.end];
    clock.set(16_000);
    const resumed = await monitor.sample();
    expect(status()).toBe('ok');
    expect(resumed.total).toMatchObject({ lag: 0, timeLagSeconds: 0, status: 'ok' });
    expect(statuses.at(-1)).toMatchObject({ scope: 'group', from: 'critical', to: 'ok' });
    await monitor.stop();
  });

  it('a live owner makes a stuck partition stalled; once it leaves, stopped (lag.rule events)', async () => {
    const clock = fakeClock(0);
    const script: Script = { end: [0, 0], committed: [0, 0], members: 1, owns: [[0, 1]] };
    const monitor = new LagMonitor(scriptedAdmin(script), options({ clock, stoppedAfterMs: 5000 }));
    const rules: string[] = [];
    monitor.on('lag.rule', (e) => {
      if (e.scope === 'group') rules.push(`${e.from}->${e.to}`);
    });
    for (let s = 0; s <= 20; s += 1) {
      clock.set(s * 1000);
      script.end = [10 * s + 5, 10 * s + 5];
      if (s <= 3) script.committed = [10 * s, 10 * s];
      if (s === 12) script.owns = [[1]];
      if (s === 16) script.owns = [];
      await monitor.sample();
      if (s === 11)
        expect(monitor.snapshot()!.partitions.map((p) => p.owned)).toEqual([true, true]);
    }
    const snapshot = monitor.snapshot()!;
    expect(snapshot.partitions.map((p) => p.rules.stopped)).toEqual([true, true]);
    expect(snapshot.partitions.map((p) => p.owned)).toEqual([false, false]);
    // Moves 1 s apart: stuck after 4 s (twice two intervals). Partition 0's
    // owner left at 12 s: the group is stopped from then on (stopped wins).
    expect(rules).toEqual(['null->stalled', 'stalled->stopped']);
    await monitor.stop();
  });

  it('reports a failed admin call as lag.error, rejects sample() and keeps the last status', async () => {
    const script: Script = { end: [500], committed: [0], members: 1 };
    const monitor = new LagMonitor(scriptedAdmin(script), options({ clock: fakeClock(1) }));
    const errors: string[] = [];
    monitor.on('lag.error', (e) => errors.push(`${e.during}: ${e.error.message}`));
    await monitor.sample();
    expect(monitor.status()).toBe('critical');
    script.failOffsets = true;
    await expect(monitor.sample()).rejects.toThrow('coordinator not available');
    expect(errors).toEqual(['fetchOffsets: coordinator not available']);
    expect(monitor.status()).toBe('critical');
    await monitor.stop();
    await monitor.stop();
    await expect(monitor.sample()).rejects.toMatchObject({ code: 'ERR_STATE' });
  });
});
