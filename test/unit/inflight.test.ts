import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { InFlightBudget } from '../../src/consumer/admission/budget.js';

/** Settles the microtask queue far enough for an already-resolved promise's callbacks to run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
}

function watch(promise: Promise<void>): { readonly settled: boolean } {
  const state = { settled: false };
  void promise.then(() => {
    state.settled = true;
  });
  return state;
}

describe('InFlightBudget', () => {
  describe('marks', () => {
    it('derives the low marks from the resume threshold, rounded down', () => {
      const budget = new InFlightBudget(10, 1000, 0.5);
      expect(budget.maxMessages).toBe(10);
      expect(budget.maxBytes).toBe(1000);
      expect(budget.lowMessages).toBe(5);
      expect(budget.lowBytes).toBe(500);
      const odd = new InFlightBudget(7, 999, 0.3);
      expect(odd.lowMessages).toBe(2);
      expect(odd.lowBytes).toBe(299);
    });

    it('starts empty: not full, low, zero counters', () => {
      const budget = new InFlightBudget(10, 1000, 0.5);
      expect(budget.messages).toBe(0);
      expect(budget.bytes).toBe(0);
      expect(budget.full()).toBe(false);
      expect(budget.low()).toBe(true);
    });

    it('is full at the message limit, and low again only at the low mark (hysteresis)', () => {
      const budget = new InFlightBudget(4, 1_000_000, 0.5);
      for (let i = 0; i < 3; i += 1) budget.add(1);
      expect(budget.full()).toBe(false);
      budget.add(1);
      expect(budget.full()).toBe(true);
      expect(budget.low()).toBe(false);
      budget.release(1);
      // Below the high mark but above the low mark: neither.
      expect(budget.full()).toBe(false);
      expect(budget.low()).toBe(false);
      budget.release(1);
      expect(budget.messages).toBe(2);
      expect(budget.low()).toBe(true);
    });

    it('is full at the byte limit, and low only when bytes are at their low mark too', () => {
      const budget = new InFlightBudget(100, 1000, 0.5);
      budget.add(600);
      expect(budget.full()).toBe(false);
      budget.add(400);
      expect(budget.bytes).toBe(1000);
      expect(budget.full()).toBe(true);
      budget.release(400);
      // 1 message is far below its low mark, but 600 bytes are above 500.
      expect(budget.low()).toBe(false);
      budget.add(0);
      budget.release(600);
      expect(budget.bytes).toBe(0);
      expect(budget.low()).toBe(true);
    });

    it('low needs both marks: a message count above its mark keeps it not low', () => {
      const budget = new InFlightBudget(4, 1000, 0.5);
      for (let i = 0; i < 3; i += 1) budget.add(0);
      expect(budget.bytes).toBe(0);
      expect(budget.low()).toBe(false);
    });
  });

  describe('fits()', () => {
    it('accepts a message while both limits hold after adding it', () => {
      const budget = new InFlightBudget(3, 100, 0.5);
      budget.add(40);
      expect(budget.fits(60)).toBe(true);
      expect(budget.fits(61)).toBe(false);
      budget.add(10);
      budget.add(10);
      // Three messages in flight: a fourth does not fit even with no bytes.
      expect(budget.fits(0)).toBe(false);
    });

    it('admits a message larger than the whole byte limit alone when nothing is in flight', () => {
      const budget = new InFlightBudget(10, 100, 0.5);
      expect(budget.fits(1_000_000)).toBe(true);
      budget.add(1_000_000);
      expect(budget.full()).toBe(true);
      // Nothing else fits beside it.
      expect(budget.fits(0)).toBe(false);
      expect(budget.fits(1)).toBe(false);
      budget.release(1_000_000);
      expect(budget.fits(1_000_000)).toBe(true);
    });

    it('does not admit an oversize message beside another one', () => {
      const budget = new InFlightBudget(10, 100, 0.5);
      budget.add(1);
      expect(budget.fits(1_000)).toBe(false);
    });

    it('with a limit of one message, admits exactly one at a time', () => {
      const budget = new InFlightBudget(1, 100, 0.5);
      expect(budget.lowMessages).toBe(0);
      expect(budget.fits(10)).toBe(true);
      budget.add(10);
      expect(budget.full()).toBe(true);
      expect(budget.fits(10)).toBe(false);
      budget.release(10);
      expect(budget.low()).toBe(true);
    });
  });

  describe('peaks', () => {
    it('records the highest message and byte counts seen, independently', () => {
      const budget = new InFlightBudget(100, 10_000, 0.5);
      budget.add(100);
      budget.add(100);
      budget.add(100);
      budget.release(100);
      budget.release(100);
      budget.add(5000);
      expect(budget.peakMessages).toBe(3);
      expect(budget.peakBytes).toBe(5100);
      budget.release(5000);
      budget.release(100);
      expect(budget.messages).toBe(0);
      expect(budget.bytes).toBe(0);
      expect(budget.peakMessages).toBe(3);
      expect(budget.peakBytes).toBe(5100);
    });
  });

  describe('waiting for space', () => {
    it('changed() resolves on the next release, not before', async () => {
      const budget = new InFlightBudget(1, 100, 0.5);
      budget.add(10);
      const waiter = watch(budget.changed());
      await flush();
      expect(waiter.settled).toBe(false);
      budget.add(5);
      await flush();
      expect(waiter.settled).toBe(false);
      budget.release(10);
      await flush();
      expect(waiter.settled).toBe(true);
    });

    it('a release wakes every waiter, once', async () => {
      const budget = new InFlightBudget(1, 100, 0.5);
      budget.add(10);
      budget.add(10);
      const waiters = [watch(budget.changed()), watch(budget.changed()), watch(budget.changed())];
      budget.release(10);
      await flush();
      expect(waiters.every((w) => w.settled)).toBe(true);
      // Waiters registered after the release wait for the next one.
      const later = watch(budget.changed());
      await flush();
      expect(later.settled).toBe(false);
      budget.release(10);
      await flush();
      expect(later.settled).toBe(true);
    });

    it('wakeAll() resolves every waiter without a release', async () => {
      const budget = new InFlightBudget(1, 100, 0.5);
      budget.add(10);
      const waiters = [watch(budget.changed()), watch(budget.changed())];
      budget.wakeAll();
      await flush();
      expect(waiters.every((w) => w.settled)).toBe(true);
      expect(budget.messages).toBe(1);
      expect(budget.bytes).toBe(10);
      // wakeAll with nobody waiting is harmless, and does not pre-resolve later waiters.
      budget.wakeAll();
      const later = watch(budget.changed());
      await flush();
      expect(later.settled).toBe(false);
      budget.wakeAll();
      await flush();
      expect(later.settled).toBe(true);
    });
  });

  describe('waiting for a chunk', () => {
    it('changed(until) sleeps through releases until the condition holds', async () => {
      const budget = new InFlightBudget(10, 10_000, 0.5);
      for (let i = 0; i < 10; i += 1) budget.add(10);
      const other = watch(budget.changed());
      const chunk = watch(budget.changed(() => budget.low()));
      for (let i = 0; i < 4; i += 1) budget.release(10);
      await flush();
      expect(other.settled).toBe(true);
      expect(chunk.settled).toBe(false);
      budget.release(10); // 5 left: the low mark
      await flush();
      expect(chunk.settled).toBe(true);
    });

    it('changedWithin gives up after its timeout and forgets the waiter', async () => {
      vi.useFakeTimers();
      try {
        const budget = new InFlightBudget(10, 10_000, 0.5);
        for (let i = 0; i < 10; i += 1) budget.add(10);
        let calls = 0;
        const until = () => {
          calls += 1;
          return false;
        };
        const timedOut = watch(budget.changedWithin(100, until));
        await vi.advanceTimersByTimeAsync(99);
        expect(timedOut.settled).toBe(false);
        await vi.advanceTimersByTimeAsync(1);
        expect(timedOut.settled).toBe(true);
        // Forgotten: later releases no longer evaluate its condition.
        budget.release(10);
        expect(calls).toBe(0);
        const woken = watch(budget.changedWithin(100, () => budget.low()));
        for (let i = 0; i < 4; i += 1) budget.release(10);
        await flush();
        expect(woken.settled).toBe(true);
        // Its timer was cleared on wake-up.
        expect(vi.getTimerCount()).toBe(0);
      } finally {
        vi.useRealTimers();
      }
    });
  });

  describe('property: counters and marks follow a model', () => {
    it('holds for random add / release sequences', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 20 }),
          fc.integer({ min: 1, max: 5000 }),
          fc.double({ min: 0.01, max: 0.99, noNaN: true }),
          fc.array(fc.record({ add: fc.boolean(), bytes: fc.nat(3000) }), { maxLength: 200 }),
          (maxMessages, maxBytes, threshold, steps) => {
            const budget = new InFlightBudget(maxMessages, maxBytes, threshold);
            const inFlight: number[] = [];
            let peakMessages = 0;
            let peakBytes = 0;
            for (const step of steps) {
              const bytes = inFlight.reduce((a, b) => a + b, 0);
              // Admission as the consumer does it: only what fits.
              if (step.add) {
                const fits = budget.fits(step.bytes);
                expect(fits).toBe(
                  inFlight.length === 0 ||
                    (inFlight.length + 1 <= maxMessages && bytes + step.bytes <= maxBytes),
                );
                if (fits) {
                  budget.add(step.bytes);
                  inFlight.push(step.bytes);
                }
              } else if (inFlight.length > 0) {
                budget.release(inFlight.shift()!);
              }
              const total = inFlight.reduce((a, b) => a + b, 0);
              peakMessages = Math.max(peakMessages, inFlight.length);
              peakBytes = Math.max(peakBytes, total);
              expect(budget.messages).toBe(inFlight.length);
              expect(budget.bytes).toBe(total);
              expect(budget.peakMessages).toBe(peakMessages);
              expect(budget.peakBytes).toBe(peakBytes);
              // Bounded memory: never above the limits, except one oversize message alone.
              expect(budget.messages).toBeLessThanOrEqual(maxMessages);
              if (budget.messages > 1) expect(budget.bytes).toBeLessThanOrEqual(maxBytes);
              expect(budget.full()).toBe(inFlight.length >= maxMessages || total >= maxBytes);
              expect(budget.low()).toBe(
                inFlight.length <= Math.floor(maxMessages * threshold) &&
                  total <= Math.floor(maxBytes * threshold),
              );
              // The two marks never hold at once.
              expect(budget.full() && budget.low()).toBe(false);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});

describe('InFlightBudget.until', () => {
  it('resolves only once the condition holds, also after a wake without a release', async () => {
    const budget = new InFlightBudget(10, 1000, 0.5);
    budget.add(1);
    budget.add(1);
    const idle = watch(budget.until(() => budget.messages === 0));
    budget.wakeAll();
    await flush();
    expect(idle.settled).toBe(false);
    budget.release(1);
    await flush();
    expect(idle.settled).toBe(false);
    budget.release(1);
    await flush();
    expect(idle.settled).toBe(true);
  });

  it('rejects with the signal’s reason when it aborts first, and forgets the waiter', async () => {
    const budget = new InFlightBudget(10, 1000, 0.5);
    budget.add(1);
    const controller = new AbortController();
    const waiting = budget.until(() => budget.messages === 0, controller.signal);
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    budget.release(1);
    await expect(budget.until(() => true, controller.signal)).rejects.toThrow('gave up');
  });
});
