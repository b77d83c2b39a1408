import { describe, expect, it } from 'vitest';
import type { Dispatcher } from '../../src/consumer/dispatch/dispatcher.js';
import type { LatencyEvent } from '../../src/consumer/events.js';
import { ConcurrencyControl } from '../../src/consumer/flow/concurrency.js';
import { FlowController } from '../../src/consumer/flow/controller.js';
import { LatencyTrigger } from '../../src/consumer/flow/latency-trigger.js';
import { capacityModel, fixedModel, type DownstreamModel } from '../helpers/downstream-models.js';

/**
 * The adaptive limit and the latency pause together, with issue 21's
 * settings (concurrency 32, `adaptiveConcurrency: { targetLatencyMs: 100,
 * minConcurrency: 2 }`, `latency: { pauseAboveMs: 100, resumeBelowMs: 50 }`),
 * against the two downstream models on a virtual clock with an endless
 * backlog: a 5 ms downstream slows for 20 s, then recovers.
 */

interface Call {
  readonly startedAt: number;
  readonly endsAt: number;
}

const spikeAt = 5000;
const spikeEnd = 25_000;
const endMs = 35_000;

function simulate(spike: DownstreamModel, windowMs = 10_000) {
  let now = 0;
  const clock = { now: () => now };
  const dispatcher = { concurrency: 32 } as unknown as Dispatcher;
  const control = new ConcurrencyControl(
    {
      concurrency: 32,
      clock,
      adaptiveConcurrency: {
        minConcurrency: 2,
        maxConcurrency: 32,
        targetLatencyMs: 100,
        decreaseFactor: 0.5,
        increaseStep: 1,
        intervalMs: 250,
      },
    },
    dispatcher,
    () => undefined,
  );
  const flow = new FlowController(
    { pause: () => undefined, resume: () => undefined },
    { paused: () => undefined, resumed: () => undefined },
  );
  flow.assign(Array.from({ length: 6 }, (_, partition) => ({ topic: 't', partition })));
  const events: { at: number; high: boolean; event: LatencyEvent }[] = [];
  const trigger = new LatencyTrigger(
    { percentile: 95, pauseAboveMs: 100, resumeBelowMs: 50, probes: 3, windowMs },
    clock,
    flow,
    {
      probing: (n) => control.latencyPaused(n),
      demand: () => 1_000_000,
      baselineMs: () => control.baselineMs,
      limitSettling: (since) => control.limitSettling(since),
      changed: (high, event) => events.push({ at: now, high, event }),
    },
  );
  const fast = fixedModel(5);
  const running: Call[] = [];
  const calls: Call[] = [];
  const limits: [number, number][] = [];
  for (; now <= endMs; now += 5) {
    for (let i = running.length - 1; i >= 0; i -= 1) {
      const call = running[i]!;
      if (call.endsAt > now) continue;
      running.splice(i, 1);
      trigger.record(call.endsAt - call.startedAt, call.endsAt);
      control.record(call.endsAt - call.startedAt, call.endsAt);
    }
    const model = now >= spikeAt && now < spikeEnd ? spike : fast;
    while (running.length < dispatcher.concurrency) {
      const call = { startedAt: now, endsAt: now + model(running.length + 1) };
      running.push(call);
      calls.push(call);
    }
    if (now % 250 === 0) control.adapt(now, running.length + 1_000_000);
    if (now % trigger.intervalMs === 0) trigger.check();
    limits.push([now, dispatcher.concurrency]);
  }
  const ended = (from: number, to: number) =>
    calls.filter((c) => c.endsAt >= from && c.endsAt < to).length;
  const p95 = (from: number) => {
    const sorted = calls
      .filter((c) => c.startedAt >= from && c.endsAt < spikeEnd)
      .map((c) => c.endsAt - c.startedAt)
      .sort((a, b) => a - b);
    return sorted[Math.ceil(0.95 * sorted.length) - 1]!;
  };
  return { events, trigger, dispatcher, ended, p95, limits };
}

describe('adaptive limit + latency pause, issue 21 settings', () => {
  it('capacity model (8 slots of 300 ms): the pause ends on noEffect, p95 ≤ 600 ms and ≥ 90% of capacity from 3 s into the spike', () => {
    const run = simulate(capacityModel(300, 8));
    const inSpike = run.events.filter((e) => e.at >= spikeAt && e.at < spikeEnd);
    // The pause comes (once the window's fast calls have aged out), finds it
    // cannot help, and ends; the same latency does not pause again.
    expect(inSpike.map((e) => e.high)).toEqual([true, false]);
    expect(inSpike[1]!.event.noEffect).toBe(true);
    expect(inSpike[1]!.at - inSpike[0]!.at).toBeLessThanOrEqual(3000);
    expect(run.p95(spikeAt + 3000)).toBeLessThanOrEqual(600);
    const settledRate = run.ended(spikeAt + 3000, spikeEnd) / ((spikeEnd - spikeAt - 3000) / 1000);
    expect(settledRate).toBeGreaterThanOrEqual(0.9 * (8 / 0.3));
    // After the recovery: the mark is the configured one, full concurrency again.
    expect(run.trigger.markMs).toBe(100);
    expect(run.dispatcher.concurrency).toBe(32);
  });

  it('fixed model (300 ms at any load): the pause ends on noEffect and throughput stays ≥ 90% of 32 calls at 300 ms', () => {
    const run = simulate(fixedModel(300));
    const inSpike = run.events.filter((e) => e.at >= spikeAt && e.at < spikeEnd);
    expect(inSpike.map((e) => e.high)).toEqual([true, false]);
    expect(inSpike[1]!.event).toMatchObject({ noEffect: true });
    const rate = run.ended(spikeAt, spikeEnd) / ((spikeEnd - spikeAt) / 1000);
    expect(rate).toBeGreaterThanOrEqual(0.9 * (32 / 0.3));
    expect(run.trigger.markMs).toBe(100);
    expect(run.dispatcher.concurrency).toBe(32);
  });

  it('capacity model with a 1 s window: the pause waits for the limit to measure its cuts, then ends on noEffect; targets met', () => {
    // A short window carries the slow calls within a second, while the limit
    // is still cutting: a pause then would freeze it before it learned the
    // downstream's 300 ms, and the probes (3 at once) would hold the spike.
    const run = simulate(capacityModel(300, 8), 1000);
    const inSpike = run.events.filter((e) => e.at >= spikeAt && e.at < spikeEnd);
    expect(inSpike.map((e) => e.high)).toEqual([true, false]);
    expect(inSpike[1]!.event.noEffect).toBe(true);
    expect(run.p95(spikeAt + 3000)).toBeLessThanOrEqual(600);
    const settledRate = run.ended(spikeAt + 3000, spikeEnd) / ((spikeEnd - spikeAt - 3000) / 1000);
    expect(settledRate).toBeGreaterThanOrEqual(0.9 * (8 / 0.3));
  });
});
