import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, type BackoffSettings } from '../../src/consumer/failure/retry.js';

const noJitter: BackoffSettings = {
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
  jitter: 0,
};

describe('backoffDelay', () => {
  describe('exponential growth', () => {
    it('starts at initialDelayMs after the first failure and multiplies per attempt', () => {
      const delays = [1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, noJitter, () => 0.5));
      expect(delays).toEqual([100, 200, 400, 800, 1600]);
    });

    it('follows a non-integer multiplier, rounded to whole milliseconds', () => {
      const settings = { ...noJitter, multiplier: 1.5 };
      expect([1, 2, 3, 4].map((a) => backoffDelay(a, settings))).toEqual([100, 150, 225, 338]);
    });

    it('stays constant with a multiplier of 1', () => {
      const settings = { ...noJitter, multiplier: 1 };
      expect([1, 5, 50].map((a) => backoffDelay(a, settings))).toEqual([100, 100, 100]);
    });
  });

  describe('cap', () => {
    it('never exceeds maxDelayMs', () => {
      // Attempt 7: 100 * 2^6 = 6400; attempt 8: 12800, above the cap.
      expect(backoffDelay(7, noJitter)).toBe(6400);
      expect(backoffDelay(8, noJitter)).toBe(10_000);
      expect(backoffDelay(30, noJitter)).toBe(10_000);
    });

    it('stays at the cap for absurd attempt counts (no Infinity or NaN)', () => {
      expect(backoffDelay(10_000, noJitter)).toBe(10_000);
      expect(backoffDelay(Number.MAX_SAFE_INTEGER, noJitter)).toBe(10_000);
    });

    it('caps the initial delay too when it is above maxDelayMs', () => {
      expect(backoffDelay(1, { ...noJitter, initialDelayMs: 500, maxDelayMs: 300 })).toBe(300);
    });

    it('is 0 when the initial delay is 0', () => {
      expect(backoffDelay(5, { ...noJitter, initialDelayMs: 0 })).toBe(0);
    });
  });

  describe('jitter', () => {
    const step4 = 800; // attempt 4 with the settings above

    it('jitter 0 ignores the random source', () => {
      for (const r of [0, 0.5, 0.999]) expect(backoffDelay(4, noJitter, () => r)).toBe(step4);
    });

    it('jitter 1: random 0 gives the full step, random 1 gives 0, random 0.5 half', () => {
      const settings = { ...noJitter, jitter: 1 };
      expect(backoffDelay(4, settings, () => 0)).toBe(step4);
      expect(backoffDelay(4, settings, () => 1)).toBe(0);
      expect(backoffDelay(4, settings, () => 0.5)).toBe(step4 / 2);
    });

    it('jitter 0.5: the delay stays between half and all of the step', () => {
      const settings = { ...noJitter, jitter: 0.5 };
      expect(backoffDelay(4, settings, () => 0)).toBe(step4);
      expect(backoffDelay(4, settings, () => 1)).toBe(step4 / 2);
      expect(backoffDelay(4, settings, () => 0.5)).toBe(step4 * 0.75);
    });

    it('jitter applies after the cap', () => {
      const settings = { ...noJitter, jitter: 0.5 };
      expect(backoffDelay(20, settings, () => 1)).toBe(5000);
      expect(backoffDelay(20, settings, () => 0)).toBe(10_000);
    });

    it('uses Math.random by default, within bounds', () => {
      const settings = { ...noJitter, jitter: 1 };
      for (let i = 0; i < 100; i += 1) {
        const delay = backoffDelay(3, settings);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(400);
      }
    });

    it('calls the random source once per delay', () => {
      let calls = 0;
      backoffDelay(2, { ...noJitter, jitter: 0.5 }, () => {
        calls += 1;
        return 0.3;
      });
      expect(calls).toBe(1);
    });
  });

  describe('property', () => {
    it('is an integer within [step * (1 - jitter), step], never above the cap, and never negative', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 60 }),
          fc.integer({ min: 0, max: 5000 }),
          fc.integer({ min: 0, max: 100_000 }),
          fc.double({ min: 1, max: 5, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          (attempt, initialDelayMs, extra, multiplier, jitter, random) => {
            const settings = {
              initialDelayMs,
              maxDelayMs: initialDelayMs + extra,
              multiplier,
              jitter,
            };
            const delay = backoffDelay(attempt, settings, () => random);
            const step = Math.min(
              settings.maxDelayMs,
              initialDelayMs * multiplier ** (attempt - 1),
            );
            expect(Number.isInteger(delay)).toBe(true);
            expect(delay).toBeGreaterThanOrEqual(0);
            expect(delay).toBeLessThanOrEqual(settings.maxDelayMs);
            // Rounding to whole ms moves it by at most half a millisecond.
            expect(delay).toBeGreaterThanOrEqual(Math.floor(step * (1 - jitter)));
            expect(delay).toBeLessThanOrEqual(Math.ceil(step));
          },
        ),
      );
    });

    it('without jitter, never decreases from one attempt to the next', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 1000 }),
          fc.integer({ min: 0, max: 100_000 }),
          fc.double({ min: 1, max: 4, noNaN: true }),
          (initialDelayMs, extra, multiplier) => {
            const settings = {
              initialDelayMs,
              maxDelayMs: initialDelayMs + extra,
              multiplier,
              jitter: 0,
            };
            let previous = 0;
            for (let attempt = 1; attempt <= 40; attempt += 1) {
              const delay = backoffDelay(attempt, settings);
              expect(delay).toBeGreaterThanOrEqual(previous);
              previous = delay;
            }
          },
        ),
      );
    });
  });
});
