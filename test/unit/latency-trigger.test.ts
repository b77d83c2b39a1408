import { describe, expect, it } from 'vitest';
import type { LatencyEvent } from '../../src/consumer/events.js';
import { FlowController } from '../../src/consumer/flow/controller.js';
import { LatencyTrigger } from '../../src/consumer/flow/latency-trigger.js';
import { LatencyWindow } from '../../src/consumer/flow/latency-window.js';

const settings = { percentile: 50, pauseAboveMs: 100, resumeBelowMs: 50, windowMs: 1000 };

/** A real window and flow controller on an injected clock; the port records its calls. */
function setup(windowMs = settings.windowMs) {
  let now = 0;
  const clock = { now: () => now };
  const window = new LatencyWindow(clock, windowMs);
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
  const trigger = new LatencyTrigger({ ...settings, windowMs }, window, flow, (high, event) =>
    events.push([high, event]),
  );
  /** Records `n` handler times of `ms` now. */
  const record = (ms: number, n = 10): void => {
    for (let i = 0; i < n; i += 1) window.record(ms, now);
  };
  return {
    trigger,
    flow,
    calls,
    events,
    record,
    advance: (ms: number) => (now += ms),
  };
}

describe('LatencyTrigger', () => {
  it('pauses every partition once the percentile is above pauseAboveMs, once', () => {
    const t = setup();
    t.record(90);
    t.trigger.check();
    expect(t.calls).toEqual([]);
    t.record(200, 20);
    t.trigger.check();
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    expect(t.flow.globalReasons()).toEqual(['latency']);
    expect(t.events).toHaveLength(1);
    const [high, event] = t.events[0]!;
    expect(high).toBe(true);
    expect(event.percentile).toBe(50);
    expect(event.thresholdMs).toBe(100);
    // Log-scaled bins: within about 5 %.
    expect(event.latencyMs).toBeGreaterThan(190);
    expect(event.latencyMs).toBeLessThan(210);
  });

  it('keeps the pause between the marks (hysteresis) and resumes below resumeBelowMs', () => {
    const t = setup();
    t.record(200);
    t.trigger.check();
    // A new window of times between the marks: still paused.
    t.advance(1000);
    t.record(70);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1']);
    t.advance(1000);
    t.record(20);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events.map(([high, e]) => [high, e.thresholdMs])).toEqual([
      [true, 100],
      [false, 50],
    ]);
    expect(t.flow.globalReasons()).toEqual([]);
  });

  it('an emptied window clears the pause: old samples never hold it forever', () => {
    const t = setup();
    t.record(500);
    t.trigger.check();
    t.advance(5000);
    t.trigger.check();
    expect(t.calls).toEqual(['pause 0,1', 'resume 0,1']);
    expect(t.events[1]![1].latencyMs).toBeUndefined();
  });

  it('an empty window never pauses', () => {
    const t = setup();
    t.trigger.check();
    expect(t.calls).toEqual([]);
    expect(t.events).toEqual([]);
  });

  it('checks a twentieth of the window apart, at least every 50 ms', () => {
    expect(setup(10_000).trigger.intervalMs).toBe(500);
    expect(setup(1000).trigger.intervalMs).toBe(50);
    expect(setup(100).trigger.intervalMs).toBe(50);
  });
});
