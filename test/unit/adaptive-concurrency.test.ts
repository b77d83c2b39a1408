import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AimdLimit, type AimdSettings } from '../../src/consumer/flow/adaptive-concurrency.js';

const base: AimdSettings = {
  min: 1,
  max: 100,
  initial: 10,
  targetLatencyMs: 100,
  decreaseFactor: 0.5,
  increaseStep: 1,
};

function aimd(overrides: Partial<AimdSettings> = {}): AimdLimit {
  return new AimdLimit({ ...base, ...overrides });
}

describe('AimdLimit', () => {
  it('starts at the initial limit', () => {
    expect(aimd({ initial: 7 }).limit).toBe(7);
  });

  describe('multiplicative decrease', () => {
    it('shrinks by the factor when latency is above the target', () => {
      const limit = aimd({ initial: 40, decreaseFactor: 0.5 });
      expect(limit.update(150, 40)).toEqual({
        changed: true,
        limit: 20,
        from: 40,
        reason: 'latency-high',
      });
      expect(limit.limit).toBe(20);
      expect(limit.update(101, 0)).toMatchObject({ changed: true, limit: 10, from: 20 });
    });

    it('rounds down (floor) the shrunk limit', () => {
      const limit = aimd({ initial: 15, decreaseFactor: 0.9 });
      // 15 * 0.9 = 13.5
      expect(limit.update(500, 15)).toMatchObject({ changed: true, limit: 13 });
      // 13 * 0.9 = 11.7
      expect(limit.update(500, 15)).toMatchObject({ changed: true, limit: 11 });
    });

    it('always shrinks by at least one when above the minimum', () => {
      const limit = aimd({ initial: 3, decreaseFactor: 0.99, min: 1 });
      expect(limit.update(500, 3)).toMatchObject({ changed: true, limit: 2 });
      expect(limit.update(500, 3)).toMatchObject({ changed: true, limit: 1 });
    });

    it('shrinks regardless of how many slots are in use', () => {
      const limit = aimd({ initial: 20 });
      expect(limit.update(1000, 0).limit).toBe(10);
    });

    it('never goes below min, and reports no change once there', () => {
      const limit = aimd({ initial: 50, min: 4, decreaseFactor: 0.5 });
      const seen: number[] = [];
      for (let i = 0; i < 20; i += 1) seen.push(limit.update(10_000, 50).limit);
      expect(Math.min(...seen)).toBe(4);
      expect(limit.limit).toBe(4);
      expect(limit.update(10_000, 50)).toEqual({ changed: false, limit: 4 });
    });

    it('lands exactly on min when the factor would go below it', () => {
      const limit = aimd({ initial: 10, min: 8, decreaseFactor: 0.5 });
      expect(limit.update(200, 10)).toEqual({
        changed: true,
        limit: 8,
        from: 10,
        reason: 'latency-high',
      });
    });
  });

  describe('additive increase', () => {
    it('grows by the step when latency is healthy and the limit is fully in use', () => {
      const limit = aimd({ initial: 10, increaseStep: 2 });
      expect(limit.update(50, 10)).toEqual({
        changed: true,
        limit: 12,
        from: 10,
        reason: 'healthy',
      });
      expect(limit.update(50, 12)).toMatchObject({ changed: true, limit: 14 });
    });

    it('treats latency equal to the target as healthy', () => {
      const limit = aimd({ initial: 10 });
      expect(limit.update(100, 10)).toMatchObject({ changed: true, limit: 11, reason: 'healthy' });
    });

    it('also grows when more than the limit is in use', () => {
      const limit = aimd({ initial: 10 });
      expect(limit.update(1, 12)).toMatchObject({ changed: true, limit: 11 });
    });

    it('does not grow when the limit is not the bottleneck', () => {
      const limit = aimd({ initial: 10 });
      expect(limit.update(1, 9)).toEqual({ changed: false, limit: 10 });
      expect(limit.update(1, 0)).toEqual({ changed: false, limit: 10 });
      expect(limit.limit).toBe(10);
    });

    it('never goes above max, and reports no change once there', () => {
      const limit = aimd({ initial: 10, max: 13, increaseStep: 2 });
      expect(limit.update(1, 10).limit).toBe(12);
      expect(limit.update(1, 12)).toEqual({
        changed: true,
        limit: 13,
        from: 12,
        reason: 'healthy',
      });
      expect(limit.update(1, 13)).toEqual({ changed: false, limit: 13 });
      for (let i = 0; i < 10; i += 1) limit.update(1, 1000);
      expect(limit.limit).toBe(13);
    });
  });

  describe('without samples', () => {
    it('changes nothing when latency is undefined, whatever the load', () => {
      const limit = aimd({ initial: 10 });
      expect(limit.update(undefined, 10)).toEqual({ changed: false, limit: 10 });
      expect(limit.update(undefined, 1000)).toEqual({ changed: false, limit: 10 });
      expect(limit.update(undefined, 0)).toEqual({ changed: false, limit: 10 });
      expect(limit.limit).toBe(10);
    });
  });

  describe('property: stays within [min, max] and moves only in the allowed direction', () => {
    it('holds for random latencies and loads', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 50 }),
          fc.integer({ min: 0, max: 200 }),
          fc.double({ min: 0.05, max: 0.99, noNaN: true }),
          fc.integer({ min: 1, max: 5 }),
          fc.array(
            fc.record({
              latency: fc.option(fc.double({ min: 0, max: 400, noNaN: true }), { nil: undefined }),
              inUse: fc.nat(300),
            }),
            { maxLength: 200 },
          ),
          (min, extra, decreaseFactor, increaseStep, steps) => {
            const max = min + extra;
            const limit = new AimdLimit({
              min,
              max,
              initial: max,
              targetLatencyMs: 100,
              decreaseFactor,
              increaseStep,
            });
            for (const { latency, inUse } of steps) {
              const from = limit.limit;
              const decision = limit.update(latency, inUse);
              expect(decision.limit).toBe(limit.limit);
              expect(limit.limit).toBeGreaterThanOrEqual(min);
              expect(limit.limit).toBeLessThanOrEqual(max);
              expect(Number.isInteger(limit.limit)).toBe(true);
              expect(decision.changed).toBe(limit.limit !== from);
              if (decision.changed) expect(decision.from).toBe(from);
              if (latency === undefined) {
                expect(limit.limit).toBe(from);
              } else if (latency > 100) {
                expect(limit.limit).toBe(
                  Math.max(min, Math.min(from - 1, Math.floor(from * decreaseFactor))),
                );
                if (decision.changed) expect(decision.reason).toBe('latency-high');
              } else if (inUse >= from) {
                expect(limit.limit).toBe(Math.min(max, from + increaseStep));
                if (decision.changed) expect(decision.reason).toBe('healthy');
              } else {
                expect(limit.limit).toBe(from);
              }
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  describe('scenario: a downstream with a fixed capacity', () => {
    /**
     * The downstream serves `capacity` requests at once at `baseMs`; every
     * request above that queues and adds latency. The consumer keeps every
     * slot busy (a backlog), so the limit is always in use.
     */
    function simulate(capacity: number, settings: AimdSettings, rounds: number): number[] {
      const limit = new AimdLimit(settings);
      const history: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const concurrency = limit.limit;
        const latency = concurrency <= capacity ? 40 : 40 + (concurrency - capacity) * 70;
        limit.update(latency, concurrency);
        history.push(limit.limit);
      }
      return history;
    }

    for (const { capacity, initial } of [
      { capacity: 20, initial: 1 },
      { capacity: 20, initial: 200 },
      { capacity: 64, initial: 5 },
      { capacity: 3, initial: 100 },
    ]) {
      it(`settles near a capacity of ${capacity} starting from ${initial}`, () => {
        const decreaseFactor = 0.9;
        const history = simulate(
          capacity,
          { min: 1, max: 200, initial, targetLatencyMs: 100, decreaseFactor, increaseStep: 1 },
          1000,
        );
        const settled = history.slice(-300);
        // It oscillates between one cut below capacity + 1 and one step above capacity.
        const low = Math.floor((capacity + 1) * decreaseFactor);
        expect(Math.min(...settled)).toBeGreaterThanOrEqual(low);
        expect(Math.max(...settled)).toBeLessThanOrEqual(capacity + 1);
        // It keeps probing: it reaches capacity and above, and it does come back down.
        expect(Math.max(...settled)).toBe(capacity + 1);
        expect(Math.min(...settled)).toBeLessThan(capacity + 1);
        const mean = settled.reduce((sum, v) => sum + v, 0) / settled.length;
        // Within 15%, or within one step for a tiny capacity where one step is a lot.
        expect(Math.abs(mean - capacity)).toBeLessThanOrEqual(Math.max(0.15 * capacity, 1));
      });
    }
  });
});
