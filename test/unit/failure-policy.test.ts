import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FailureEvidence } from '../../src/consumer/failure/evidence.js';
import {
  decideFailure,
  failureRateBound,
  MAX_STALL_DOUBLINGS,
  servedOthers,
  stallLength,
  type FailureFacts,
  type PolicySettings,
} from '../../src/consumer/failure/policy.js';
import { backoffDelay } from '../../src/consumer/failure/retry.js';

const retry: PolicySettings = {
  maxAttempts: 3,
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
  jitter: 0,
};

/** A retriable failure of a first attempt while the circuit is closed and the breaker on. */
const base: FailureFacts = {
  refused: false,
  circuit: 'closed',
  breakerEnabled: true,
  retriable: true,
  attempts: 1,
  failedCalls: 1,
  maxAttempts: 3,
  served: false,
  stalled: false,
  healthCheck: false,
  deadLetter: true,
};

const decide = (facts: Partial<FailureFacts>, random?: () => number) =>
  decideFailure({ ...base, ...facts }, retry, random);

const exhausted = { attempts: 3, failedCalls: 3 } as const;
const dead = (reason: string, guess = false) => ({ kind: 'dead-letter', reason, guess });

// One block per row of the table in policy.ts, in its order.
describe('decideFailure', () => {
  describe('row 1: the circuit refused the call', () => {
    it('waits for the circuit, no attempt charged, not blamed', () => {
      expect(decide({ refused: true })).toEqual({ kind: 'wait-circuit', blame: false });
    });

    it('comes first: whatever else the facts say', () => {
      expect(
        decide({ refused: true, circuit: 'open', retriable: false, ...exhausted, served: true }),
      ).toEqual({ kind: 'wait-circuit', blame: false });
    });
  });

  describe('row 2: not retriable', () => {
    it('dead-letters at once, on the first attempt, whatever the circuit', () => {
      for (const circuit of ['closed', 'open', 'half-open'] as const) {
        expect(decide({ retriable: false, circuit })).toEqual(dead('non-retriable'));
      }
    });

    it('without a dead-letter topic, holds and retries after the longest delay', () => {
      expect(decide({ retriable: false, deadLetter: false })).toEqual({
        kind: 'hold',
        delayMs: retry.maxDelayMs,
      });
    });
  });

  describe('row 3: exhausted, others served since', () => {
    it('dead-letters, on evidence', () => {
      expect(decide({ ...exhausted, served: true })).toEqual(dead('attempts-exhausted'));
      expect(decide({ ...exhausted, served: true, circuit: 'half-open' })).toEqual(
        dead('attempts-exhausted'),
      );
    });

    it('counts charged attempts only: failures during an outage do not use them up', () => {
      expect(decide({ attempts: 1, failedCalls: 3, served: true })).toMatchObject({
        kind: 'retry',
        charged: true,
      });
      expect(decide({ attempts: 2, failedCalls: 2, served: true })).toMatchObject({
        kind: 'retry',
        charged: true,
      });
    });

    it('holds without a dead-letter topic', () => {
      expect(decide({ ...exhausted, served: true, deadLetter: false })).toEqual({
        kind: 'hold',
        delayMs: retry.maxDelayMs,
      });
    });
  });

  describe('rows 4 and 5: exhausted and stalled', () => {
    it('asks the health check when there is one', () => {
      expect(decide({ ...exhausted, stalled: true, healthCheck: true })).toEqual({
        kind: 'check-health',
      });
      expect(
        decide({ ...exhausted, stalled: true, healthCheck: true, circuit: 'half-open' }),
      ).toEqual({ kind: 'check-health' });
    });

    it('guesses without one: dead-letters, marked as a guess', () => {
      expect(decide({ ...exhausted, stalled: true })).toEqual(dead('attempts-exhausted', true));
      expect(decide({ ...exhausted, stalled: true, circuit: 'half-open' })).toEqual(
        dead('attempts-exhausted', true),
      );
    });

    it('a stall does not matter before maxAttempts calls failed', () => {
      expect(decide({ attempts: 2, failedCalls: 2, stalled: true })).toMatchObject({
        kind: 'retry',
        charged: true,
      });
    });

    it('counts every failed call, charged or not: failing half-open probes come to a stall too', () => {
      expect(decide({ attempts: 1, failedCalls: 3, stalled: true, circuit: 'half-open' })).toEqual(
        dead('attempts-exhausted', true),
      );
    });
  });

  describe('row 6: the circuit is not closed', () => {
    it.each(['open', 'half-open'] as const)(
      '%s: waits for it, and blames the message',
      (circuit) => {
        expect(decide({ circuit })).toEqual({ kind: 'wait-circuit', blame: true });
        expect(decide({ circuit, ...exhausted })).toEqual({ kind: 'wait-circuit', blame: true });
      },
    );
  });

  describe('row 7: attempts left', () => {
    it('retries after the backoff of this attempt, charging it', () => {
      expect(decide({ attempts: 1 })).toEqual({ kind: 'retry', delayMs: 100, charged: true });
      expect(decide({ attempts: 2, failedCalls: 2 })).toEqual({
        kind: 'retry',
        delayMs: 200,
        charged: true,
      });
    });

    it('draws the jitter from the injected random source', () => {
      const jittered: PolicySettings = { ...retry, jitter: 0.5 };
      const facts = { ...base, attempts: 2, failedCalls: 2 };
      expect(decideFailure(facts, jittered, () => 0)).toMatchObject({ delayMs: 200 });
      expect(decideFailure(facts, jittered, () => 1)).toMatchObject({ delayMs: 100 });
    });
  });

  describe('row 8: exhausted, no breaker', () => {
    it('dead-letters: without a breaker nothing is told apart', () => {
      expect(decide({ ...exhausted, breakerEnabled: false })).toEqual(dead('attempts-exhausted'));
      expect(
        decide({ attempts: 1, failedCalls: 1, maxAttempts: 1, breakerEnabled: false }),
      ).toEqual(dead('attempts-exhausted'));
    });
  });

  describe('row 9: exhausted, others failing too', () => {
    it('retries after the longest backoff, without charging the attempt', () => {
      expect(decide(exhausted)).toEqual({
        kind: 'retry',
        delayMs: backoffDelay(3, retry),
        charged: false,
      });
      expect(backoffDelay(3, retry)).toBe(400);
    });

    it('uses the delay of the last attempt even when more calls failed', () => {
      expect(decide({ attempts: 3, failedCalls: 9 })).toMatchObject({
        kind: 'retry',
        delayMs: 400,
        charged: false,
      });
    });
  });

  const facts: fc.Arbitrary<FailureFacts> = fc
    .record({
      refused: fc.boolean(),
      circuit: fc.constantFrom('closed' as const, 'open' as const, 'half-open' as const),
      breakerEnabled: fc.boolean(),
      retriable: fc.boolean(),
      attempts: fc.integer({ min: 1, max: 12 }),
      extraFailures: fc.integer({ min: 0, max: 5 }),
      maxAttempts: fc.integer({ min: 1, max: 10 }),
      served: fc.boolean(),
      stalled: fc.boolean(),
      healthCheck: fc.boolean(),
      deadLetter: fc.boolean(),
    })
    .map(({ extraFailures, ...f }) => {
      const attempts = Math.min(f.attempts, f.maxAttempts + 2);
      // Without a breaker there is no circuit to be anything but closed, and
      // every failure is charged.
      const circuit = f.breakerEnabled ? f.circuit : ('closed' as const);
      const failedCalls = attempts + (f.breakerEnabled ? extraFailures : 0);
      return { ...f, circuit, attempts, failedCalls };
    });

  it('property: a retriable message is dead-lettered only on evidence, a stall, or without a breaker', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const decision = decideFailure(f, retry);
        if (decision.kind !== 'dead-letter') return;
        expect(f.refused).toBe(false);
        expect(f.deadLetter).toBe(true);
        if (!f.retriable) return;
        expect(f.failedCalls).toBeGreaterThanOrEqual(f.maxAttempts);
        const onEvidence = f.served && f.attempts >= f.maxAttempts;
        expect(!f.breakerEnabled || onEvidence || (f.stalled && !f.healthCheck)).toBe(true);
        expect(decision.guess).toBe(f.breakerEnabled && !onEvidence);
      }),
    );
  });

  it('property: no livelock: an exhausted message that is not refused ends, or waits on evidence that can still change', () => {
    fc.assert(
      fc.property(facts, (f) => {
        if (f.refused || f.failedCalls < f.maxAttempts) return;
        const decision = decideFailure({ ...f, stalled: true }, retry);
        // Stalled, nothing can change by waiting: it ends, or the health check decides.
        expect(['dead-letter', 'hold', 'check-health']).toContain(decision.kind);
      }),
    );
  });

  it('property: an attempt is charged only below maxAttempts', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const decision = decideFailure(f, retry);
        if (decision.kind === 'retry' && decision.charged) {
          expect(f.attempts).toBeLessThan(f.maxAttempts);
        }
      }),
    );
  });
});

describe('servedOthers: the evidence that the downstream works', () => {
  it('no calls, or no successes, are not service', () => {
    expect(servedOthers(0, 0, false, 50)).toBe(false);
    expect(servedOthers(0, 7, false, 50)).toBe(false);
  });

  it('a passed health check is', () => {
    expect(servedOthers(0, 0, true, 50)).toBe(true);
  });

  it('takes a clear rate: a few lucky calls are not enough, many are', () => {
    expect(servedOthers(1, 0, false, 50)).toBe(false);
    expect(servedOthers(10, 0, false, 50)).toBe(true);
    // A third failing (poison among valid messages), with enough calls.
    expect(servedOthers(20, 10, false, 50)).toBe(false);
    expect(servedOthers(200, 100, false, 50)).toBe(true);
  });

  it('a brownout above the threshold is never service, however many calls got through', () => {
    for (const calls of [10, 100, 1000, 100_000]) {
      expect(servedOthers(0.4 * calls, 0.6 * calls, false, 50)).toBe(false);
    }
  });

  it('property: the bound lies above the observed rate and below 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (n, r) => {
          const failed = Math.round(n * r);
          const bound = failureRateBound(failed, n);
          expect(bound).toBeGreaterThanOrEqual(failed / n - 1e-12);
          expect(bound).toBeLessThanOrEqual(1 + 1e-12);
        },
      ),
    );
  });
});

describe('FailureEvidence: counts, marks and stalls', () => {
  const first = true;
  const retry = false;

  it('judges by the first attempts that ended after the mark', () => {
    const e = new FailureEvidence(50, 4, 20, 1000);
    for (let i = 0; i < 50; i += 1) e.succeeded(first, false, 0);
    e.failed(first, false, 0);
    const mark = e.mark();
    expect(e.served(mark)).toBe(false);
    for (let i = 0; i < 20; i += 1) e.succeeded(first, false, 0);
    expect(e.served(mark)).toBe(true);
    for (let i = 0; i < 40; i += 1) e.failed(first, false, 0);
    expect(e.served(mark)).toBe(false);
  });

  it('retries do not count toward the rate, their successes or their failures', () => {
    const e = new FailureEvidence(50, 4, 20, 1000);
    e.failed(first, false, 0);
    const mark = e.mark();
    for (let i = 0; i < 20; i += 1) e.succeeded(first, false, 0);
    for (let i = 0; i < 100; i += 1) e.failed(retry, false, 0);
    for (let i = 0; i < 100; i += 1) e.failed(retry, true, 0);
    expect(e.served(mark)).toBe(true);
    const later = e.mark();
    for (let i = 0; i < 100; i += 1) e.succeeded(retry, false, 0);
    expect(e.served(later)).toBe(false);
  });

  it('a health check passed after the mark is service; one before it is not', () => {
    const e = new FailureEvidence(50, 4, 20, 1000);
    e.healthy();
    const mark = e.mark();
    expect(e.served(mark)).toBe(false);
    e.healthy();
    expect(e.served(mark)).toBe(true);
  });

  const LONG = 5000;
  /** Evidence whose downstream is in doubt from `now` 0 on: the circuit opened, nothing came after. */
  const inDoubt = () => {
    const e = new FailureEvidence(50, LONG, 20, 1000);
    e.circuitOpened(0);
    return e;
  };
  const quiet = (e: FailureEvidence, n: number, now = 0) => {
    for (let i = 0; i < n; i += 1) e.failed(retry, true, now);
  };

  it('a stall: exhausted messages failing twice each in a row; anything else ending restarts the count', () => {
    const e = new FailureEvidence(50, LONG, 20, 1000);
    expect(e.inDoubt(0)).toBe(false);
    quiet(e, 1);
    expect(e.stalled(1, 0)).toBe(false);
    e.succeeded(retry, true, 0);
    quiet(e, 1);
    e.failed(retry, false, 0);
    quiet(e, 1);
    expect(e.stalled(1, 0)).toBe(false);
    quiet(e, 1);
    expect(e.stalled(1, 0)).toBe(true);
  });

  it('a stall is per failing message: twice as long with two of them', () => {
    const e = new FailureEvidence(50, LONG, 20, 1000);
    quiet(e, 3);
    expect(e.stalled(1, 0)).toBe(true);
    expect(e.stalled(2, 0)).toBe(false);
    quiet(e, 1);
    expect(e.stalled(2, 0)).toBe(true);
  });

  it('while in doubt a stall is also timed: quiet for longStallMs since its first failure', () => {
    const e = inDoubt();
    quiet(e, 2, 100);
    expect(e.stalled(1, 100)).toBe(false);
    expect(e.stalled(1, 100 + LONG - 1)).toBe(false);
    expect(e.stalled(1, 100 + LONG)).toBe(true);
    // Time alone is not enough: each failing message must have failed twice.
    expect(e.stalled(2, 100 + LONG)).toBe(false);
    // Anything else ending starts the clock again.
    e.failed(retry, false, 200);
    quiet(e, 2, 300);
    expect(e.stalled(1, 100 + LONG)).toBe(false);
    expect(e.stalled(1, 300 + LONG)).toBe(true);
    // A health check decides after the short stall.
    e.succeeded(first, false, 400);
    quiet(e, 2, 400);
    expect(e.stalled(1, 400, true)).toBe(true);
  });

  it('in doubt while the latest first attempts fail above the threshold or have stopped', () => {
    // At the start nothing says the downstream fails: a lone poison message is not held long.
    const e = new FailureEvidence(50, LONG, 20, 1000);
    for (let i = 0; i < 20; i += 1) e.succeeded(first, false, 0);
    expect(e.inDoubt(0)).toBe(false);
    // 11 of the latest 20 failing: above the threshold.
    for (let i = 0; i < 11; i += 1) e.failed(first, false, 0);
    expect(e.failingLately(0)).toBe(true);
    expect(e.inDoubt(0)).toBe(true);
    quiet(e, 2);
    expect(e.stalled(1, 0)).toBe(false);
    // 10 of 20 is at the threshold, not above it.
    for (let i = 0; i < 9; i += 1) e.succeeded(first, false, 0);
    expect(e.inDoubt(0)).toBe(true);
    e.succeeded(first, false, 0);
    expect(e.inDoubt(0)).toBe(false);
    quiet(e, 2);
    expect(e.stalled(1, 0)).toBe(true);
    // Once the latest are older than recentMs, every message in flight has
    // been failing a while: in doubt, though the breaker is not told so.
    expect(e.inDoubt(1001)).toBe(true);
    expect(e.failingLately(1001)).toBe(false);
    expect(e.stalled(1, 1001)).toBe(false);
  });

  it('an opened circuit puts the downstream in doubt for recentMs, and until enough first attempts came after', () => {
    const e = new FailureEvidence(50, LONG, 20, 1000);
    for (let i = 0; i < 20; i += 1) e.succeeded(first, false, 0);
    e.circuitOpened(500);
    expect(e.failingLately(500)).toBe(true);
    // A flapping downstream serves between failures: good first attempts right after an opening do not count.
    for (let i = 0; i < 20; i += 1) e.succeeded(first, false, 1400);
    expect(e.failingLately(1500)).toBe(true);
    expect(e.failingLately(1501)).toBe(false);
    e.circuitOpened(2000);
    for (let i = 0; i < 19; i += 1) e.succeeded(first, false, 3500);
    expect(e.failingLately(3500)).toBe(true);
    e.succeeded(first, false, 3500);
    expect(e.failingLately(3500)).toBe(false);
  });

  it('each guess doubles the next stall, up to a cap; a success of a message with attempts left resets it', () => {
    const e = inDoubt();
    let now = 0;
    /** One quiet failure every 100 ms until a stall; returns how long it took. */
    const quietUntilStalled = () => {
      const from = now;
      for (;;) {
        e.failed(retry, true, now);
        if (e.stalled(1, now)) break;
        now += 100;
      }
      e.guessed();
      now += 100;
      return now - 100 - from;
    };
    const lengths = Array.from({ length: MAX_STALL_DOUBLINGS + 2 }, quietUntilStalled);
    expect(lengths).toEqual(
      Array.from({ length: MAX_STALL_DOUBLINGS + 2 }, (_, i) => stallLength(i, LONG)),
    );
    expect(lengths.at(-1)).toBe(LONG * 2 ** MAX_STALL_DOUBLINGS);
    // An exhausted message's success ends the stall but does not reset the doubling.
    e.succeeded(retry, true, now);
    expect(quietUntilStalled()).toBe(LONG * 2 ** MAX_STALL_DOUBLINGS);
    e.succeeded(first, false, now);
    expect(quietUntilStalled()).toBe(LONG);
  });
});
