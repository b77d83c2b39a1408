import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GradientLimit, type LimitSettings } from '../../src/consumer/flow/adaptive-concurrency.js';
import { capacityModel, fixedModel, type DownstreamModel } from '../helpers/downstream-models.js';

const base: LimitSettings = {
  min: 1,
  max: 32,
  initial: 32,
  targetLatencyMs: 100,
  decreaseFactor: 0.5,
  increaseStep: 1,
};

function gradient(overrides: Partial<LimitSettings> = {}): GradientLimit {
  return new GradientLimit({ ...base, ...overrides });
}

interface Call {
  readonly startedAt: number;
  readonly endsAt: number;
}

interface Run {
  /** [time, limit] after each decision. */
  readonly limits: [number, number][];
  readonly calls: Call[];
  /** Calls that ended within [from, to). */
  ended(from: number, to: number): Call[];
  limitAt(t: number): number;
}

/**
 * Drives a limit against a downstream model with an infinite backlog, on a
 * virtual clock: calls start whenever fewer than the limit run, end when
 * the model says, and the limit decides every `tickMs`.
 */
function simulate(
  limit: GradientLimit,
  phases: readonly { readonly untilMs: number; readonly model: DownstreamModel }[],
  tickMs = 250,
): Run {
  const stepMs = 5;
  const endMs = phases[phases.length - 1]!.untilMs;
  const running: Call[] = [];
  const calls: Call[] = [];
  const limits: [number, number][] = [];
  for (let now = 0; now <= endMs; now += stepMs) {
    for (let i = running.length - 1; i >= 0; i -= 1) {
      const call = running[i]!;
      if (call.endsAt <= now) {
        running.splice(i, 1);
        limit.record(call.endsAt - call.startedAt, call.endsAt);
      }
    }
    const model = phases.find((p) => now < p.untilMs)?.model ?? phases[phases.length - 1]!.model;
    while (running.length < limit.limit) {
      const call = { startedAt: now, endsAt: now + model(running.length + 1) };
      running.push(call);
      calls.push(call);
    }
    if (now % tickMs === 0) {
      limit.update(now, running.length + 1000);
      limits.push([now, limit.limit]);
    }
  }
  return {
    limits,
    calls,
    ended: (from, to) => calls.filter((c) => c.endsAt >= from && c.endsAt < to),
    limitAt: (t) => limits.filter(([at]) => at <= t).pop()![1],
  };
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(0.95 * sorted.length) - 1]!;
}

const healthy = fixedModel(20);

describe('GradientLimit against the two downstream models', () => {
  it('capacity model (8 slots, 300 ms): settles near 8 within 3 s of the spike and keeps p95 ≤ 2× base', () => {
    const spikeAt = 5000;
    const spikeEnd = 25_000;
    const run = simulate(gradient(), [
      { untilMs: spikeAt, model: healthy },
      { untilMs: spikeEnd, model: capacityModel(300, 8) },
      { untilMs: 35_000, model: healthy },
    ]);
    expect(run.limitAt(spikeAt - 1)).toBe(32);
    // It cuts within a second, reaches 8 within 2 s, tries 4 once (latency
    // does not fall there: that is the capacity) and settles.
    const first = run.limits.find(([t, l]) => t >= spikeAt && l < 32)!;
    expect(first[0] - spikeAt).toBeLessThanOrEqual(1000);
    expect(run.limits.find(([t, l]) => t >= spikeAt && l <= 8)![0] - spikeAt).toBeLessThanOrEqual(
      2500,
    );
    for (const [t, l] of run.limits)
      if (t >= first[0] + 1000 && t < spikeEnd) expect(l).toBeGreaterThanOrEqual(4);
    const settled = run.limits.filter(([t]) => t >= spikeAt + 4000 && t < spikeEnd);
    for (const [, l] of settled) {
      expect(l).toBeGreaterThanOrEqual(7);
      expect(l).toBeLessThanOrEqual(12);
    }
    // Calls that started 3 s into the spike: handler p95 within twice the base latency.
    const late = run.calls.filter((c) => c.startedAt >= spikeAt + 3000 && c.endsAt < spikeEnd);
    expect(p95(late.map((c) => c.endsAt - c.startedAt))).toBeLessThanOrEqual(600);
    // Throughput: at least 90 % of the downstream's capacity (8 / 0.3 s).
    const done = run.ended(spikeAt + 3000, spikeEnd).length;
    expect(done / ((spikeEnd - spikeAt - 3000) / 1000)).toBeGreaterThanOrEqual(0.9 * (8 / 0.3));
    // Recovery: the limit grows back to the maximum.
    expect(run.limitAt(35_000)).toBe(32);
  });

  it('fixed model (300 ms whatever the concurrency): recognises it and keeps the throughput', () => {
    const spikeAt = 5000;
    const spikeEnd = 25_000;
    const run = simulate(gradient(), [
      { untilMs: spikeAt, model: healthy },
      { untilMs: spikeEnd, model: fixedModel(300) },
      { untilMs: 30_000, model: healthy },
    ]);
    // A cut is tried, shows no effect, and is taken back within a few round trips.
    expect(Math.min(...run.limits.map(([, l]) => l))).toBeLessThan(32);
    expect(run.limitAt(spikeAt + 2000)).toBe(32);
    const done = run.ended(spikeAt, spikeEnd).length;
    const without = ((spikeEnd - spikeAt) / 300) * 32;
    expect(done).toBeGreaterThanOrEqual(0.9 * without);
    expect(run.limitAt(30_000)).toBe(32);
  });

  it('capacity model with the baseline already high (a downstream always at 300 ms): finds the capacity', () => {
    const run = simulate(gradient(), [{ untilMs: 15_000, model: capacityModel(300, 8) }]);
    for (const [t, l] of run.limits) {
      if (t < 4000) continue;
      expect(l).toBeGreaterThanOrEqual(7);
      expect(l).toBeLessThanOrEqual(12);
    }
  });
});

describe('GradientLimit decisions', () => {
  it('records when it last decided on fresh samples, changed or not', () => {
    const limit = gradient({ initial: 4 });
    expect(limit.decidedAt).toBe(Number.NEGATIVE_INFINITY);
    limit.record(10, 100);
    limit.update(200, 0);
    expect(limit.decidedAt).toBe(Number.NEGATIVE_INFINITY);
    for (let i = 0; i < 3; i += 1) limit.record(10, 300);
    expect(limit.update(400, 0)).toEqual({ changed: false, limit: 4 });
    expect(limit.decidedAt).toBe(400);
    limit.update(500, 0);
    expect(limit.decidedAt).toBe(400);
  });

  it('holds still with no fresh samples, however long', () => {
    const limit = gradient({ initial: 20 });
    // Fewer samples than a decision needs: none is taken.
    limit.record(10, 100);
    limit.record(10, 110);
    expect(limit.update(200, 0)).toEqual({ changed: false, limit: 20 });
    limit.record(10, 120);
    expect(limit.update(250, 0)).toEqual({ changed: false, limit: 20 });
    expect(limit.baselineMs).toBe(10);
    for (let i = 0; i < 10; i += 1) limit.record(2000, 3000);
    const cut = limit.update(3000, 20);
    expect(cut).toMatchObject({ changed: true, reason: 'latency-high', from: 20 });
    const after = limit.limit;
    // Nothing ends any more (a paused consumer): no decision, whatever the clock.
    for (let t = 3250; t < 60_000; t += 250) {
      expect(limit.update(t, 100)).toEqual({ changed: false, limit: after });
    }
    // Calls that ended now but started before the cut are stale: still no decision.
    for (let i = 0; i < 10; i += 1) limit.record(58_000, 60_000);
    expect(limit.update(60_250, 100)).toEqual({ changed: false, limit: after });
  });

  it('cuts at once on a clear rise, in proportion, never deeper than decreaseFactor', () => {
    const limit = gradient({ initial: 40, max: 64, decreaseFactor: 0.5 });
    for (let i = 0; i < 5; i += 1) limit.record(100, 1000);
    limit.update(1000, 0);
    expect(limit.baselineMs).toBe(100);
    // 4× the baseline: the gradient (110 / 400) is deeper than 0.5, so 0.5 applies.
    for (let i = 0; i < 5; i += 1) limit.record(400, 2000);
    expect(limit.update(2000, 40)).toEqual({
      changed: true,
      limit: 20,
      from: 40,
      reason: 'latency-high',
    });
  });

  it('a mild rise (1.6× the baseline) cuts less than decreaseFactor', () => {
    const limit = gradient({ initial: 40, max: 64, decreaseFactor: 0.5, targetLatencyMs: 1 });
    for (let i = 0; i < 5; i += 1) limit.record(100, 1000);
    limit.update(1000, 0);
    for (let i = 0; i < 5; i += 1) limit.record(160, 2000);
    // 40 × 110 / 160 = 27.5
    expect(limit.update(2000, 40)).toMatchObject({ changed: true, limit: 27 });
  });

  it('takes a cut back when latency did not fall after it, and adopts that latency as the baseline', () => {
    const limit = gradient({ initial: 16 });
    for (let i = 0; i < 5; i += 1) limit.record(20, 1000);
    limit.update(1000, 0);
    for (let i = 0; i < 5; i += 1) limit.record(300, 2000);
    expect(limit.update(2000, 16)).toMatchObject({ changed: true, limit: 8 });
    // Until calls started after it end, the cut's effect is unknown.
    expect(limit.cutPending).toBe(true);
    // Calls started after the cut are just as slow.
    for (let i = 0; i < 8; i += 1) limit.record(300, 2400);
    expect(limit.update(2500, 16)).toEqual({
      changed: true,
      limit: 16,
      from: 8,
      reason: 'latency-steady',
    });
    expect(limit.baselineMs).toBe(300);
    expect(limit.cutPending).toBe(false);
  });

  it('grows while latency holds and the limit is in use, not while it is idle', () => {
    const limit = gradient({ initial: 4, max: 6, increaseStep: 1 });
    for (let i = 0; i < 4; i += 1) limit.record(80, 100);
    expect(limit.update(100, 2)).toEqual({ changed: false, limit: 4 });
    for (let i = 0; i < 4; i += 1) limit.record(80, 200);
    expect(limit.update(200, 4)).toMatchObject({ changed: true, limit: 5, reason: 'healthy' });
    for (let i = 0; i < 5; i += 1) limit.record(80, 300);
    expect(limit.update(300, 5)).toMatchObject({ changed: true, limit: 6 });
    for (let i = 0; i < 6; i += 1) limit.record(80, 400);
    expect(limit.update(400, 9)).toEqual({ changed: false, limit: 6 });
  });

  it('grows by √limit while latency is under half the target (back from a slow spell)', () => {
    const limit = gradient({ initial: 9, max: 32 });
    for (let i = 0; i < 9; i += 1) limit.record(5, 100);
    expect(limit.update(100, 100)).toMatchObject({ changed: true, limit: 12 });
    for (let i = 0; i < 9; i += 1) limit.record(5, 200);
    expect(limit.update(200, 100)).toMatchObject({ changed: true, limit: 16 });
  });

  it('below targetLatencyMs every latency is healthy, whatever the baseline', () => {
    const limit = gradient({ initial: 4, targetLatencyMs: 100 });
    for (let i = 0; i < 4; i += 1) limit.record(5, 100);
    limit.update(100, 0);
    for (let i = 0; i < 4; i += 1) limit.record(80, 200);
    expect(limit.update(200, 4)).toMatchObject({ changed: true, limit: 5, reason: 'healthy' });
  });

  it('stays within [min, max] whatever the samples', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 20 }), fc.nat(60)),
          {
            maxLength: 60,
          },
        ),
        (steps) => {
          const limit = gradient({ min: 2, max: 20, initial: 10 });
          let now = 0;
          for (const [samples, inUse] of steps) {
            now += 250;
            for (const ms of samples) limit.record(ms, now);
            limit.update(now, inUse);
            if (limit.limit < 2 || limit.limit > 20) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe('GradientLimit.restart', () => {
  it('drops the samples so far: calls bounded by something else are no evidence', () => {
    const limit = gradient({ initial: 20 });
    for (let i = 0; i < 5; i += 1) limit.record(10, 100);
    limit.update(100, 0);
    for (let i = 0; i < 5; i += 1) limit.record(500, 2000);
    limit.restart(2000);
    expect(limit.update(2250, 20)).toEqual({ changed: false, limit: 20 });
    // Calls that started before the restart still do not count.
    for (let i = 0; i < 5; i += 1) limit.record(500, 2300);
    expect(limit.update(2500, 20)).toEqual({ changed: false, limit: 20 });
    for (let i = 0; i < 5; i += 1) limit.record(10, 2600);
    expect(limit.update(2750, 20)).toMatchObject({ changed: true, limit: 25, reason: 'healthy' });
  });
});
