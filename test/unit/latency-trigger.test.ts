import { describe, expect, it } from 'vitest';
import type { LatencyEvent } from '../../src/consumer/events.js';
import { FlowController } from '../../src/consumer/flow/controller.js';
import { LatencyTrigger } from '../../src/consumer/flow/latency-trigger.js';

const settings = {
  percentile: 50,
  pauseAboveMs: 100,
  resumeBelowMs: 50,
  probes: 3,
  windowMs: 1000,
};

/** A real flow controller on an injected clock; the port records its calls. */
function setup(overrides: Partial<typeof settings> = {}) {
  let now = 0;
  const clock = { now: () => now };
  const calls: string[] = [];
  const flow = new FlowController(
    {
      pause: (ps) => calls.push(`pause ${ps.map((p) => p.partition).join(',')}`),
      resume: (ps) => calls.push(`resume ${ps.map((p) => p.partition).join(',')}`),
    },
    { paused: () => undefined, resumed: () => undefined },
  );
  flow.assign([
    { topic: 't', partition: 0 },
    { topic: 't', partition: 1 },
  ]);
  calls.length = 0;
  const events: [boolean, LatencyEvent][] = [];
  const probing: (number | undefined)[] = [];
  let demand = 10;
  let baseline: number | undefined;
  let limitSettling = false;
  const trigger = new LatencyTrigger({ ...settings, ...overrides }, clock, flow, {
    probing: (n) => probing.push(n),
    demand: () => demand,
    baselineMs: () => baseline,
    limitSettling: () => limitSettling,
    changed: (high, event) => events.push([high, event]),
  });
  /** `n` calls of `ms` end now. */
  const record = (ms: number, n = 10): void => {
    for (let i = 0; i < n; i += 1) trigger.record(ms, now);
  };
  return {
    trigger,
    flow,
    calls,
    events,
    probing,
    record,
    setDemand: (n: number) => (demand = n),
    setBaseline: (ms: number | undefined) => (baseline = ms),
    setLimitSettling: (settling: boolean) => (limitSettling = settling),
    advance: (ms: number) => (now += ms),
  };
}

/** Paused at time 1000 on 200 ms calls. */
function paused(overrides: Partial<typeof settings> = {}) {
  const t = setup(overrides);
  t.advance(1000);
  t.record(200);
  t.trigger.check();
  expect(t.calls).toEqual(['pause 0,1']);
  return t;
}

describe('LatencyTrigger', () => {
  it('pauses every partition once the percentile is above pauseAboveMs, once, and caps the calls to the probes', () => {
    const t = setup();
    t.record(90);
    t.trigger.check();
    expect(t.calls).toEqual([]);
    t.record(200, 20);
    t.trigger.check();
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    expect(t.flow.globalReasons()).toEqual(['latency']);
    expect(t.probing).toEqual([3]);
    expect(t.events).toHaveLength(1);
    const [high, event] = t.events[0]!;
    expect(high).toBe(true);
    expect(event.percentile).toBe(50);
    expect(event.thresholdMs).toBe(100);
    // Log-scaled bins: within about 5 %.
    expect(event.latencyMs).toBeGreaterThan(190);
    expect(event.latencyMs).toBeLessThan(210);
  });

  it('never resumes on an empty window, however long it waits', () => {
    const t = paused();
    for (let i = 0; i < 100; i += 1) {
      t.advance(500);
      t.trigger.check();
    }
    expect(t.flow.globalReasons()).toEqual(['latency']);
    expect(t.events).toHaveLength(1);
  });

  it('resumes once `probes` calls in a row that started after the pause ended fast, and reports the slowest of them', () => {
    const t = paused();
    t.advance(100);
    // Calls that started before the pause (they ran under the old concurrency) prove nothing.
    t.record(20, 1);
    t.trigger.record(150, 1100);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    // Two fast probes, then a slow one: the count starts again.
    t.advance(100);
    t.record(20, 2);
    t.record(80, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    t.record(30, 1);
    t.record(40, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    t.record(10, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.probing).toEqual([3, undefined]);
    expect(t.events[1]).toEqual([false, { percentile: 50, latencyMs: 40, thresholdMs: 50 }]);
  });

  it('slow probes clearly faster than at the pause hold it (a downstream in trouble stays protected), until they show the pause cannot help', () => {
    // Paused on 200 ms; the limit learned 20 ms without queueing.
    const t = paused();
    t.setBaseline(20);
    // 120 ms: above resumeBelowMs, well below the 200 ms that caused the
    // pause (the pause is lowering latency) and far above the baseline.
    for (let i = 0; i < 20; i += 1) {
      t.advance(300);
      t.record(120, 3);
      t.trigger.check();
    }
    expect(t.calls).toEqual(['pause 0,1']);
    expect(t.events).toHaveLength(1);
    // The downstream's latency without queueing has become 120 ms (the limit
    // learned it): the probes are at it, the pause can do no better.
    t.setBaseline(115);
    t.advance(300);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events[1]).toEqual([
      false,
      { percentile: 50, latencyMs: 120, thresholdMs: 180, noEffect: true },
    ]);
  });

  it('starts afresh after a resume: the samples that caused the pause do not pause again', () => {
    const t = paused({ probes: 1 });
    t.advance(100);
    t.record(10, 1);
    t.trigger.check();
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    t.record(20, 5);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
  });

  it('with nothing admitted to probe with, lets one partition fetch, in turn, and pauses it again once work arrives', () => {
    const t = paused();
    t.setDemand(0);
    t.advance(500);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0']);
    expect(t.flow.isPaused('t', 0)).toBe(false);
    expect(t.flow.reasonsFor({ topic: 't', partition: 0 })).toEqual([]);
    expect(t.flow.reasonsFor({ topic: 't', partition: 1 })).toEqual(['latency']);
    // Nothing came from it for a while: the next partition takes its turn.
    t.advance(2000);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0', 'pause 0', 'resume 1']);
    // A batch was admitted: the partition pauses again and the probes run from it.
    t.setDemand(5);
    t.advance(500);
    t.trigger.check();
    expect(t.calls.at(-1)).toBe('pause 1');
    t.record(10, 3);
    t.trigger.check();
    expect(t.calls.at(-1)).toBe('resume 0,1');
    expect(t.flow.globalReasons()).toEqual([]);
  });

  it('an empty window never pauses', () => {
    const t = setup();
    t.trigger.check();
    expect(t.calls).toEqual([]);
    expect(t.events).toEqual([]);
  });

  it('checks a twentieth of the window apart, at least every 50 ms', () => {
    expect(setup({ windowMs: 10_000 }).trigger.intervalMs).toBe(500);
    expect(setup({ windowMs: 1000 }).trigger.intervalMs).toBe(50);
    expect(setup({ windowMs: 100 }).trigger.intervalMs).toBe(50);
  });
});

describe('LatencyTrigger on a recovered downstream', () => {
  it('does not pause on the window alone when the calls since the last check are fast', () => {
    const t = setup({ windowMs: 10_000 });
    t.record(20, 100);
    t.trigger.check();
    t.advance(6000);
    // Slow calls, but the window's median is still fast.
    t.record(200, 60);
    t.trigger.check();
    // The fast calls age out: the window's median is slow now, but the
    // downstream has recovered since the last check.
    t.advance(4500);
    t.record(20, 10);
    t.trigger.check();
    expect(t.calls).toEqual([]);
    // Slow again, in the window and since the last check: pause.
    t.record(200, 10);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
  });
});

describe('LatencyTrigger on a downstream the pause cannot help (issue 21)', () => {
  /** Paused at time 1000 on calls of `ms`. */
  function pausedOn(ms: number) {
    const t = setup();
    t.advance(1000);
    t.record(ms);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    return t;
  }

  it('fixed model: probes as slow as at the pause end it with noEffect, and the same latency does not pause again', () => {
    const t = pausedOn(300);
    expect(t.events[0]![1].thresholdMs).toBe(100);
    // Two slow probes are not yet `probes` of them.
    t.advance(300);
    t.record(300, 2);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    t.record(300, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.probing).toEqual([3, undefined]);
    expect(t.events[1]).toEqual([
      false,
      { percentile: 50, latencyMs: 300, thresholdMs: 450, noEffect: true },
    ]);
    expect(t.trigger.markMs).toBe(450);
    // The downstream stays at 300 ms under full load: no pause, however long.
    for (let i = 0; i < 60; i += 1) {
      t.advance(500);
      t.record(300, 50);
      t.trigger.check();
    }
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events).toHaveLength(2);
  });

  it('capacity model: probes at the limit’s learned baseline end it with noEffect, even far below the latency that caused it', () => {
    // Paused on 1,200 ms (32 calls queueing in 8 slots of 300 ms); the limit
    // has learned the downstream's 300 ms without queueing.
    const t = pausedOn(1200);
    t.setBaseline(300);
    t.advance(400);
    t.record(300, 1);
    t.record(305, 1);
    t.record(320, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events[1]).toEqual([
      false,
      { percentile: 50, latencyMs: 305, thresholdMs: 457.5, noEffect: true },
    ]);
    // At the limit's 8 slots the latency stays near the baseline: no pause.
    for (let i = 0; i < 40; i += 1) {
      t.advance(500);
      t.record(330, 14);
      t.trigger.check();
    }
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
  });

  it('without a learned baseline, probes far below the latency at the pause hold it', () => {
    const t = pausedOn(1200);
    for (let i = 0; i < 20; i += 1) {
      t.advance(400);
      t.record(300, 3);
      t.trigger.check();
    }
    expect(t.calls).toEqual(['pause 0,1']);
    // The limit learns 300 ms: the same probes end it.
    t.setBaseline(300);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events[1]![1].noEffect).toBe(true);
  });

  it('decides on the median of the latest `probes` slow probes in a row, started after the pause', () => {
    const t = pausedOn(300);
    // Started before the pause: stale, whatever their latency.
    t.advance(100);
    t.trigger.record(300, 1100);
    t.trigger.record(300, 1100);
    t.trigger.record(300, 1100);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    // A fast probe between slow ones starts the slow count again: were it
    // not so, 300, 120 and 900 would end the pause (median 300).
    t.advance(1000);
    t.record(300, 2);
    t.record(10, 1);
    t.record(120, 1);
    t.record(900, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    // One outlier among three: the median (120 ms) shows the pause helps.
    t.record(100, 1);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    // The latest three: 100, 300, 300: the median is 300, as at the pause.
    t.record(300, 2);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events[1]![1]).toMatchObject({ latencyMs: 300, noEffect: true });
  });

  it('re-arms the mark once the calls are fast again: the next rise above pauseAboveMs pauses', () => {
    const t = pausedOn(300);
    t.advance(400);
    t.record(300, 3);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.trigger.markMs).toBe(450);
    // 200 ms: under the raised mark, no pause.
    t.advance(500);
    t.record(200, 20);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    // The downstream recovers: the mark comes back down.
    t.advance(500);
    t.record(10, 200);
    t.trigger.check();
    expect(t.trigger.markMs).toBe(100);
    // Latency rises again above pauseAboveMs: a pause, at the configured mark.
    t.advance(2000);
    t.record(200, 400);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1', 'pause 0,1']);
    expect(t.events[2]![1].thresholdMs).toBe(100);
  });

  it('a downstream that gets really worse (above 1.5 × the latency the pause could not lower) pauses again; fast probes then reset the mark', () => {
    const t = pausedOn(300);
    t.advance(400);
    t.record(300, 3);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.trigger.markMs).toBe(450);
    t.advance(500);
    t.record(1000, 50);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1', 'pause 0,1']);
    expect(t.events[2]![0]).toBe(true);
    expect(t.events[2]![1].thresholdMs).toBe(450);
    // Fast probes end this one: the mark is the configured one again.
    t.advance(1000);
    t.record(20, 3);
    t.trigger.check();
    expect(t.calls.at(-1)).toBe('resume 0,1');
    expect(t.events[3]![1]).toEqual({ percentile: 50, latencyMs: 20, thresholdMs: 50 });
    expect(t.trigger.markMs).toBe(100);
  });
});

describe('LatencyTrigger beside the adaptive limit', () => {
  it('a due pause waits while the adaptive limit is still acting on the rise, and comes once it has', () => {
    const t = setup();
    t.setLimitSettling(true);
    t.advance(1000);
    for (let i = 0; i < 10; i += 1) {
      t.record(300, 5);
      t.trigger.check();
      t.advance(200);
    }
    expect(t.calls).toEqual([]);
    t.setLimitSettling(false);
    t.record(300, 5);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
  });

  it('waits at most 5 s for the limit, checks without calls included', () => {
    const t = setup();
    t.setLimitSettling(true);
    t.advance(1000);
    t.record(300, 5);
    t.trigger.check();
    // Checks with no call ended do not restart the wait.
    for (let i = 0; i < 40; i += 1) {
      t.advance(100);
      t.trigger.check();
    }
    t.record(300, 5);
    t.trigger.check();
    expect(t.calls).toEqual([]);
    t.advance(1000);
    t.record(300, 5);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
  });
});
