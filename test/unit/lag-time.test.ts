import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppendHistory } from '../../src/lag/append-history.js';
import { combineTimeLags, estimateTimeLag } from '../../src/lag/time-lag.js';

/** Records appended at the given times (ms, ascending); reads of the end offset every `intervalMs`. */
function scenario(
  appendTimes: readonly number[],
  intervalMs: number,
  until: number,
  capacity = 256,
) {
  const history = new AppendHistory(capacity);
  const endAt = (at: number) => appendTimes.filter((t) => t <= at).length;
  for (let at = 0; at <= until; at += intervalMs) history.observe(at, endAt(at));
  return { history, endAt };
}

describe('AppendHistory', () => {
  it('places a message after a long idle time within one read interval', () => {
    // One message at 0.5 s, then nothing for an hour, then one at 3600.2 s.
    const { history } = scenario([500, 3_600_200], 1000, 3_602_000);
    expect(history.locate(1)).toEqual({
      kind: 'step',
      step: { after: 3_600_000, until: 3_601_000, fromOffset: 1, toOffset: 2 },
    });
    expect(history.locate(2)).toEqual({ kind: 'none' });
  });

  it('an offset appended before the first read: appended at or before it', () => {
    const history = new AppendHistory(16);
    history.observe(10_000, 50);
    history.observe(11_000, 60);
    expect(history.locate(20)).toEqual({ kind: 'before', at: 10_000 });
    expect(history.locate(55)).toMatchObject({ kind: 'step' });
  });

  it('keeps at most `capacity` steps, merging old ones first, and stays contiguous', () => {
    const times = Array.from({ length: 2000 }, (_, i) => i * 1000 + 300);
    const { history } = scenario(times, 1000, 2_000_000, 32);
    const steps = history.steps();
    expect(steps).toHaveLength(32);
    for (let i = 1; i < steps.length; i += 1) {
      expect(steps[i]!.fromOffset).toBe(steps[i - 1]!.toOffset);
      expect(steps[i]!.after).toBeGreaterThanOrEqual(steps[i - 1]!.until - 1000);
    }
    // The newest steps keep the read interval's precision.
    expect(steps.at(-1)!.until - steps.at(-1)!.after).toBe(1000);
    // Old steps are coarser than new ones.
    expect(steps[0]!.until - steps[0]!.after).toBeGreaterThan(
      steps.at(-2)!.until - steps.at(-2)!.after,
    );
  });

  it('forgets everything when the log end goes back (topic recreated), and drops steps below the log start', () => {
    const history = new AppendHistory(16);
    history.observe(0, 10);
    history.observe(1000, 20);
    history.observe(2000, 30);
    history.observe(3000, 30, 20);
    expect(history.steps().map((s) => s.fromOffset)).toEqual([20]);
    history.observe(4000, 5);
    expect(history.size).toBe(0);
    expect(history.locate(2)).toEqual({ kind: 'before', at: 4000 });
  });
});

describe('estimateTimeLag', () => {
  it('caught up reads 0, exact', () => {
    const { history } = scenario([100, 200], 1000, 5000);
    expect(estimateTimeLag(history, 2, 0, 5000)).toEqual({
      seconds: 0,
      minSeconds: 0,
      maxSeconds: 0,
      method: 'caughtUp',
    });
  });

  it('an idle producer: the age of the one unread message, not the idle time before it', () => {
    // Steady until 10 s, idle until 100 s, one message at 100.4 s, read at 103 s.
    const times = [...Array.from({ length: 100 }, (_, i) => i * 100), 100_400];
    const { history } = scenario(times, 1000, 103_000);
    const t = estimateTimeLag(history, 100, 1, 103_000);
    expect(t.method).toBe('interpolated');
    expect(t.minSeconds).toBe(2);
    expect(t.maxSeconds).toBe(3);
    expect(t.seconds).toBeCloseTo(2.5, 9);
  });

  it('older than the history: a lower bound, never more', () => {
    const history = new AppendHistory(16);
    history.observe(50_000, 1000);
    history.observe(51_000, 1000);
    const t = estimateTimeLag(history, 10, 990, 51_000);
    expect(t).toEqual({ seconds: 1, minSeconds: 1, maxSeconds: null, method: 'lowerBound' });
  });

  it('property: for any append pattern, the truth lies within the bounds and the estimate within one step of it', () => {
    fc.assert(
      fc.property(
        // Gaps between appends: bursts (0-5 ms), steady, and idle spells up to 10 min.
        fc.array(
          fc.oneof(
            fc.integer({ min: 0, max: 5 }),
            fc.integer({ min: 0, max: 2000 }),
            fc.integer({ min: 0, max: 600_000 }),
          ),
          {
            minLength: 1,
            maxLength: 300,
          },
        ),
        fc.integer({ min: 100, max: 5000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 16, max: 64 }),
        (gaps, intervalMs, pick, capacity) => {
          const times: number[] = [];
          let t = intervalMs; // after the first read: every record is in the history
          for (const gap of gaps) times.push((t += gap));
          const now = Math.ceil((t + 1) / intervalMs) * intervalMs;
          const { history, endAt } = scenario(times, intervalMs, now, capacity);
          const end = endAt(now);
          expect(end).toBe(times.length);
          const position = Math.min(end - 1, Math.floor(pick * end));
          const truth = (now - times[position]!) / 1000;
          const est = estimateTimeLag(history, position, end - position, now);
          expect(est.method).toBe('interpolated');
          expect(est.minSeconds).toBeLessThanOrEqual(truth + 1e-9);
          expect(est.maxSeconds!).toBeGreaterThanOrEqual(truth - 1e-9);
          expect(Math.abs(est.seconds - truth)).toBeLessThanOrEqual(
            est.maxSeconds! - est.minSeconds + 1e-9,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('combineTimeLags: the largest estimate and bounds; no upper bound when one partition has none', () => {
    expect(combineTimeLags([])).toBeNull();
    expect(
      combineTimeLags([
        { seconds: 3, minSeconds: 2, maxSeconds: 4, method: 'interpolated' },
        { seconds: 0, minSeconds: 0, maxSeconds: 0, method: 'caughtUp' },
      ]),
    ).toEqual({ seconds: 3, minSeconds: 2, maxSeconds: 4, method: 'interpolated' });
    expect(
      combineTimeLags([
        { seconds: 3, minSeconds: 2, maxSeconds: 4, method: 'interpolated' },
        { seconds: 1, minSeconds: 1, maxSeconds: null, method: 'lowerBound' },
      ]),
    ).toEqual({ seconds: 3, minSeconds: 2, maxSeconds: null, method: 'lowerBound' });
  });
});
