import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DownstreamLagTrigger,
  DownstreamLagWatch,
  resolveDownstreamLag,
  type DownstreamLagDecision,
  type ResolvedDownstreamLag,
} from '../../src/consumer/flow/downstream-lag.js';
import { ConfigError } from '../../src/errors.js';
import type { LagStatus } from '../../src/lag/lag-status.js';
import { resolveOptions } from '../../src/consumer/options.js';

const ok = () => 'ok' as LagStatus;
const zero = () => 0;

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveDownstreamLag', () => {
  it('is undefined when not set', () => {
    expect(resolveDownstreamLag(undefined)).toBeUndefined();
  });

  it('fills the defaults', () => {
    const r = resolveDownstreamLag({ status: ok, lag: zero, pauseAboveLag: 1000 })!;
    expect(r.status).toMatchObject({ pauseAt: 'critical', resumeAt: 'ok' });
    expect(r.lag).toMatchObject({ pauseAbove: 1000, resumeBelow: 500 });
    expect(r.intervalMs).toBe(1000);
    expect(Object.isFrozen(r)).toBe(true);
    expect(resolveDownstreamLag({ lag: zero, pauseAboveLag: 1 })!.lag!.resumeBelow).toBe(1);
    expect(resolveDownstreamLag({ status: ok })!.lag).toBeUndefined();
  });

  it.each([
    [{}, 'downstreamLag'],
    [{ pauseAboveLag: 10 }, 'downstreamLag'],
    [{ status: 'critical' }, 'downstreamLag.status'],
    [{ lag: 5, pauseAboveLag: 10 }, 'downstreamLag.lag'],
    [{ status: ok, pauseAboveLag: 10 }, 'downstreamLag.pauseAboveLag'],
    [{ status: ok, resumeBelowLag: 10 }, 'downstreamLag.resumeBelowLag'],
    [{ lag: zero }, 'downstreamLag.pauseAboveLag'],
    [{ lag: zero, pauseAboveLag: 0 }, 'downstreamLag.pauseAboveLag'],
    [{ lag: zero, pauseAboveLag: 1.5 }, 'downstreamLag.pauseAboveLag'],
    [{ lag: zero, pauseAboveLag: 10, resumeBelowLag: 11 }, 'downstreamLag.resumeBelowLag'],
    [{ lag: zero, pauseAboveLag: 10, resumeBelowLag: 0 }, 'downstreamLag.resumeBelowLag'],
    [{ lag: zero, pauseAboveLag: 10, pauseAtStatus: 'warning' }, 'downstreamLag.pauseAtStatus'],
    [{ status: ok, pauseAtStatus: 'ok' }, 'downstreamLag.pauseAtStatus'],
    [{ status: ok, resumeAtStatus: 'critical' }, 'downstreamLag.resumeAtStatus'],
    [
      { status: ok, pauseAtStatus: 'warning', resumeAtStatus: 'warning' },
      'downstreamLag.resumeAtStatus',
    ],
    [{ status: ok, intervalMs: 5 }, 'downstreamLag.intervalMs'],
    [{ status: ok, monitor: {} }, 'downstreamLag.monitor'],
    ['critical', 'downstreamLag'],
  ])('rejects %o naming %s', (value, option) => {
    expect(configError(() => resolveDownstreamLag(value)).option).toBe(option);
  });

  it('is resolved as part of the consumer options', () => {
    const o = resolveOptions({
      topics: ['t'],
      handler: () => undefined,
      downstreamLag: { status: ok, pauseAtStatus: 'warning', intervalMs: 250 },
    });
    expect(o.downstreamLag).toMatchObject({ intervalMs: 250, status: { pauseAt: 'warning' } });
    expect(resolveOptions({ topics: ['t'], handler: () => undefined }).downstreamLag).toBe(
      undefined,
    );
  });
});

function trigger(options: Parameters<typeof resolveDownstreamLag>[0]) {
  return new DownstreamLagTrigger(resolveDownstreamLag(options)!);
}

describe('DownstreamLagTrigger', () => {
  it('pauses above the lag mark and resumes only below the low mark', () => {
    const t = trigger({ lag: zero, pauseAboveLag: 100, resumeBelowLag: 40 });
    const step = (lag: number) => t.update({ status: undefined, lag });
    expect(step(100)).toMatchObject({ paused: false, changed: false });
    expect(step(101)).toMatchObject({
      paused: true,
      changed: true,
      reason: 'lag 101 > pauseAboveLag 100',
      lag: 101,
    });
    expect(step(60)).toMatchObject({ paused: true, changed: false });
    expect(step(40)).toMatchObject({ paused: true, changed: false });
    expect(step(39)).toMatchObject({
      paused: false,
      changed: true,
      reason: 'lag 39 < resumeBelowLag 40',
    });
    expect(step(99)).toMatchObject({ paused: false, changed: false });
  });

  it('pauses at the status level and resumes at the resume level', () => {
    const t = trigger({ status: ok, pauseAtStatus: 'critical', resumeAtStatus: 'ok' });
    const step = (status: LagStatus) => t.update({ status, lag: undefined });
    expect(step('warning').paused).toBe(false);
    expect(step('critical')).toMatchObject({
      paused: true,
      changed: true,
      reason: 'status critical >= pauseAtStatus critical',
    });
    // warning is between the marks: the pause holds.
    expect(step('warning')).toMatchObject({ paused: true, changed: false });
    expect(step('ok')).toMatchObject({
      paused: false,
      changed: true,
      reason: 'status ok <= resumeAtStatus ok',
    });
  });

  it('with pauseAtStatus warning, pauses at warning and critical', () => {
    const t = trigger({ status: ok, pauseAtStatus: 'warning' });
    expect(t.update({ status: 'warning', lag: undefined }).paused).toBe(true);
    expect(t.update({ status: 'critical', lag: undefined }).changed).toBe(false);
    expect(t.update({ status: 'ok', lag: undefined }).paused).toBe(false);
  });

  it('holds while either measure holds, and names both on resume', () => {
    const t = trigger({ status: ok, lag: zero, pauseAboveLag: 100 });
    expect(t.update({ status: 'critical', lag: 10 }).paused).toBe(true);
    expect(t.update({ status: 'ok', lag: 500 })).toMatchObject({
      paused: true,
      changed: false,
      reason: 'lag 500 > pauseAboveLag 100',
    });
    expect(t.update({ status: 'ok', lag: 10 })).toMatchObject({
      paused: false,
      changed: true,
      reason: 'status ok <= resumeAtStatus ok and lag 10 < resumeBelowLag 50',
    });
  });

  it('keeps the state and the last values when a measure is unknown', () => {
    const t = trigger({ status: ok, lag: zero, pauseAboveLag: 100 });
    t.update({ status: 'warning', lag: 200 });
    expect(t.update({ status: undefined, lag: undefined })).toMatchObject({
      paused: true,
      changed: false,
      status: 'warning',
      lag: 200,
    });
    expect(t.update({ status: undefined, lag: 0 })).toMatchObject({
      paused: false,
      changed: true,
      status: 'warning',
    });
  });

  it('matches a model: paused iff a latch is set, latches move only at their marks', () => {
    const statuses: LagStatus[] = ['ok', 'warning', 'critical'];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 200 }),
        fc.constantFrom<'warning' | 'critical'>('warning', 'critical'),
        fc.array(
          fc.record({
            status: fc.option(fc.constantFrom(...statuses), { nil: undefined }),
            lag: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
          }),
          { maxLength: 60 },
        ),
        (a, b, pauseAt, readings) => {
          const pauseAbove = Math.max(a, b);
          const resumeBelow = Math.min(a, b);
          const t = trigger({
            status: ok,
            pauseAtStatus: pauseAt,
            lag: zero,
            pauseAboveLag: pauseAbove,
            resumeBelowLag: resumeBelow,
          });
          let byStatus = false;
          let byLag = false;
          const level = (s: LagStatus) => statuses.indexOf(s);
          for (const r of readings) {
            const before = byStatus || byLag;
            if (r.status !== undefined) {
              if (level(r.status) >= level(pauseAt)) byStatus = true;
              else if (r.status === 'ok') byStatus = false;
            }
            if (r.lag !== undefined) {
              if (r.lag > pauseAbove) byLag = true;
              else if (r.lag < resumeBelow) byLag = false;
            }
            const d: DownstreamLagDecision = t.update(r);
            expect(d.paused).toBe(byStatus || byLag);
            expect(d.changed).toBe(d.paused !== before);
            expect(t.paused).toBe(d.paused);
          }
        },
      ),
    );
  });
});

describe('DownstreamLagWatch', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function watch(settings: ResolvedDownstreamLag) {
    const changes: DownstreamLagDecision[] = [];
    const errors: Error[] = [];
    const w = new DownstreamLagWatch(settings, {
      changed: (d) => changes.push(d),
      error: (e) => errors.push(e),
    });
    return { w, changes, errors };
  }

  it('polls at start, then every intervalMs after the previous poll settled', async () => {
    let lag = 0;
    const read = vi.fn(() => lag);
    const { w, changes } = watch(
      resolveDownstreamLag({ lag: read, pauseAboveLag: 10, intervalMs: 100 })!,
    );
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(read).toHaveBeenCalledTimes(1);
    lag = 11;
    await vi.advanceTimersByTimeAsync(99);
    expect(read).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(read).toHaveBeenCalledTimes(2);
    expect(changes.map((c) => c.paused)).toEqual([true]);
    expect(w.paused).toBe(true);
    lag = 0;
    await vi.advanceTimersByTimeAsync(100);
    expect(changes.map((c) => c.paused)).toEqual([true, false]);
    w.stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(read).toHaveBeenCalledTimes(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never overlaps a slow signal', async () => {
    let resolve: ((s: LagStatus) => void) | undefined;
    const read = vi.fn(
      () =>
        new Promise<LagStatus>((r) => {
          resolve = r;
        }),
    );
    const { w, changes } = watch(resolveDownstreamLag({ status: read, intervalMs: 10 })!);
    w.start();
    await vi.advanceTimersByTimeAsync(500);
    expect(read).toHaveBeenCalledTimes(1);
    resolve!('critical');
    await vi.advanceTimersByTimeAsync(0);
    expect(changes).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(read).toHaveBeenCalledTimes(2);
    w.stop();
  });

  it('reports throws, rejections and bad values, keeps the last state and keeps polling', async () => {
    const values: unknown[] = ['critical', 'nope', 'ok'];
    const throwing = [false, true, false];
    let i = 0;
    const status = vi.fn(() => {
      const n = i;
      if (throwing[n]) throw new Error('admin down');
      return values[n] as LagStatus;
    });
    const lag = vi.fn((): number | Promise<number> => {
      if (i === 0) return Number.NaN;
      if (i === 1) return -1;
      return Promise.reject(new Error('x'));
    });
    const { w, changes, errors } = watch(
      resolveDownstreamLag({ status, lag, pauseAboveLag: 5, intervalMs: 10 })!,
    );
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(changes.map((c) => c.paused)).toEqual([true]);
    i = 1;
    await vi.advanceTimersByTimeAsync(10);
    expect(w.paused).toBe(true);
    i = 2;
    await vi.advanceTimersByTimeAsync(10);
    expect(changes.map((c) => c.paused)).toEqual([true, false]);
    expect(errors.map((e) => (e as ConfigError).option ?? e.message)).toEqual([
      'downstreamLag.lag()',
      'admin down',
      'downstreamLag.lag()',
      'x',
    ]);
    w.stop();
  });

  it('goes on polling when a change listener throws', async () => {
    let lag = 50;
    const errors: Error[] = [];
    const w = new DownstreamLagWatch(
      resolveDownstreamLag({ lag: () => lag, pauseAboveLag: 10, intervalMs: 10 })!,
      {
        changed: () => {
          throw new Error('listener');
        },
        error: (e) => errors.push(e),
      },
    );
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    lag = 0;
    await vi.advanceTimersByTimeAsync(10);
    expect(errors.map((e) => e.message)).toEqual(['listener', 'listener']);
    w.stop();
  });

  it('a poll in flight at stop() changes nothing', async () => {
    let resolve: ((n: number) => void) | undefined;
    const { w, changes, errors } = watch(
      resolveDownstreamLag({
        lag: () =>
          new Promise<number>((r) => {
            resolve = r;
          }),
        pauseAboveLag: 1,
      })!,
    );
    w.start();
    w.stop();
    resolve!(100);
    await vi.advanceTimersByTimeAsync(5000);
    expect(changes).toEqual([]);
    expect(errors).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
