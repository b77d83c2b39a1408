import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decideFailure,
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
  maxAttempts: 3,
  othersSucceeded: true,
  deadLetter: true,
};

const decide = (facts: Partial<FailureFacts>, random?: () => number) =>
  decideFailure({ ...base, ...facts }, retry, random);

// One block per row of the table in policy.ts, in its order.
describe('decideFailure', () => {
  describe('row 1: the circuit refused the call', () => {
    it('waits for the circuit, no attempt charged, not blamed', () => {
      expect(decide({ refused: true })).toEqual({ kind: 'wait-circuit', blame: false });
    });

    it('comes first: whatever else the facts say', () => {
      expect(
        decide({ refused: true, circuit: 'open', retriable: false, attempts: 3, deadLetter: true }),
      ).toEqual({ kind: 'wait-circuit', blame: false });
    });
  });

  describe('row 2: the circuit is not closed', () => {
    it.each(['open', 'half-open'] as const)(
      '%s: waits for it, and blames the message',
      (circuit) => {
        expect(decide({ circuit })).toEqual({ kind: 'wait-circuit', blame: true });
      },
    );

    it('comes before exhaustion and non-retriable errors: nothing is dead-lettered while it is not closed', () => {
      expect(decide({ circuit: 'open', attempts: 3 })).toEqual({
        kind: 'wait-circuit',
        blame: true,
      });
      expect(decide({ circuit: 'half-open', retriable: false })).toEqual({
        kind: 'wait-circuit',
        blame: true,
      });
    });
  });

  describe('row 3: retriable, attempts used up, breaker on, nothing succeeded since', () => {
    it('retries after the longest backoff, without charging the attempt', () => {
      expect(decide({ attempts: 3, othersSucceeded: false })).toEqual({
        kind: 'retry',
        delayMs: backoffDelay(3, retry),
        charged: false,
      });
      expect(backoffDelay(3, retry)).toBe(400);
    });

    it('uses the delay of the last attempt even when more were counted', () => {
      expect(decide({ attempts: 7, othersSucceeded: false })).toMatchObject({
        kind: 'retry',
        delayMs: 400,
        charged: false,
      });
    });

    it('does not apply once another call succeeded: the message is the problem', () => {
      expect(decide({ attempts: 3, othersSucceeded: true })).toEqual({
        kind: 'dead-letter',
        reason: 'attempts-exhausted',
      });
    });

    it('does not apply without a breaker', () => {
      expect(decide({ attempts: 3, othersSucceeded: false, breakerEnabled: false })).toEqual({
        kind: 'dead-letter',
        reason: 'attempts-exhausted',
      });
    });

    it('does not apply to a non-retriable error', () => {
      expect(decide({ retriable: false, othersSucceeded: false })).toEqual({
        kind: 'dead-letter',
        reason: 'non-retriable',
      });
    });

    it('does not apply before the attempts are used up', () => {
      expect(decide({ attempts: 2, othersSucceeded: false })).toEqual({
        kind: 'retry',
        delayMs: 200,
        charged: true,
      });
    });
  });

  describe('row 4: not retriable, or attempts used up', () => {
    it('dead-letters a non-retriable error at once, on the first attempt', () => {
      expect(decide({ retriable: false, attempts: 1 })).toEqual({
        kind: 'dead-letter',
        reason: 'non-retriable',
      });
    });

    it('dead-letters once the last attempt failed, not before', () => {
      expect(decide({ attempts: 2 })).toMatchObject({ kind: 'retry', charged: true });
      expect(decide({ attempts: 3 })).toEqual({
        kind: 'dead-letter',
        reason: 'attempts-exhausted',
      });
      expect(decide({ attempts: 4 })).toEqual({
        kind: 'dead-letter',
        reason: 'attempts-exhausted',
      });
    });

    it('without a dead-letter topic, holds and retries after the longest delay', () => {
      expect(decide({ attempts: 3, deadLetter: false })).toEqual({
        kind: 'hold',
        delayMs: retry.maxDelayMs,
      });
      expect(decide({ retriable: false, deadLetter: false })).toEqual({
        kind: 'hold',
        delayMs: retry.maxDelayMs,
      });
    });

    it('maxAttempts 1: the first failure is the last', () => {
      expect(decide({ attempts: 1, maxAttempts: 1 })).toEqual({
        kind: 'dead-letter',
        reason: 'attempts-exhausted',
      });
    });
  });

  describe('row 5: otherwise', () => {
    it('retries after the backoff of this attempt, charging it', () => {
      expect(decide({ attempts: 1 })).toEqual({ kind: 'retry', delayMs: 100, charged: true });
      expect(decide({ attempts: 2 })).toEqual({ kind: 'retry', delayMs: 200, charged: true });
    });

    it('draws the jitter from the injected random source', () => {
      const jittered: PolicySettings = { ...retry, jitter: 0.5 };
      const facts = { ...base, attempts: 2 };
      expect(decideFailure(facts, jittered, () => 0)).toMatchObject({ delayMs: 200 });
      expect(decideFailure(facts, jittered, () => 1)).toMatchObject({ delayMs: 100 });
    });
  });

  const facts: fc.Arbitrary<FailureFacts> = fc
    .record({
      refused: fc.boolean(),
      circuit: fc.constantFrom('closed' as const, 'open' as const, 'half-open' as const),
      breakerEnabled: fc.boolean(),
      retriable: fc.boolean(),
      attempts: fc.integer({ min: 1, max: 12 }),
      maxAttempts: fc.integer({ min: 1, max: 10 }),
      othersSucceeded: fc.boolean(),
      deadLetter: fc.boolean(),
    })
    .map((f) => ({ ...f, attempts: Math.min(f.attempts, f.maxAttempts + 2) }));

  it('property: no valid message is dead-lettered while the downstream looks down', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const decision = decideFailure(f, retry);
        if (decision.kind !== 'dead-letter') return;
        expect(f.refused).toBe(false);
        expect(f.circuit).toBe('closed');
        expect(f.deadLetter).toBe(true);
        // A retriable message goes only when something else got through since it failed.
        if (f.retriable) expect(!f.breakerEnabled || f.othersSucceeded).toBe(true);
      }),
    );
  });

  it('property: no livelock: with the circuit closed and others succeeding, a failure past its attempts ends', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const decision = decideFailure(
          { ...f, refused: false, circuit: 'closed', othersSucceeded: true },
          retry,
        );
        const exhausted = !f.retriable || f.attempts >= f.maxAttempts;
        if (exhausted) expect(['dead-letter', 'hold']).toContain(decision.kind);
        else expect(decision).toMatchObject({ kind: 'retry', charged: true });
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
