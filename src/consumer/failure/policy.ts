import type { CircuitState } from './breaker.js';
import { backoffDelay, type BackoffSettings } from './retry.js';

/**
 * What to do with a message whose handler attempt failed. Pure: the runner
 * gathers the facts, this decides, the runner carries it out.
 *
 * The rule: a message is blamed for its failures only on evidence that the
 * downstream serves others. Until it has failed `maxAttempts` times it is
 * retried. Then it is dead-lettered if the first attempts of other messages
 * since its own first failure failed clearly under the breaker's threshold
 * (by a 99% bound, so a handful of lucky calls do not count), or a health
 * check passed since. If not, this may be an outage or a brownout, not the
 * message: it is tried again at its last backoff without being charged,
 * and the breaker decides when calls stop. When only messages that used
 * their attempts are failing, with nothing else ending (as when each head
 * in `partition` ordering is failing), the evidence can no longer change:
 * after a stall (see FailureEvidence.stalled) the health check decides, if
 * there is one and a dead-letter topic to act on its answer; without one
 * the consumer dead-letters the message as a guess, and each further guess
 * needs a stall twice as long until something new succeeds.
 *
 * | situation (checked in this order)                                  | decision                                    |
 * |--------------------------------------------------------------------|---------------------------------------------|
 * | the circuit refused the call (it did not run)                      | wait for the circuit; no attempt charged    |
 * | the error is not retriable                                         | dead-letter (`non-retriable`), or hold      |
 * | attempts used up, the downstream served others since               | dead-letter (`attempts-exhausted`), or hold |
 * | failed `maxAttempts` calls, stalled, a health check and a DLQ      | ask the health check                        |
 * | failed `maxAttempts` calls, stalled, no health check               | dead-letter as a guess, or hold             |
 * | the circuit is not closed (this failure may have opened it)        | wait for it; no attempt charged; blamed     |
 * | attempts left                                                      | retry after backoff                         |
 * | attempts used up, the breaker is off                               | dead-letter (`attempts-exhausted`), or hold |
 * | attempts used up, otherwise (others fail too: outage or brownout)  | retry after the longest backoff, uncharged  |
 *
 * Attempts are charged only for failures while the circuit is closed: an
 * outage does not use up a message's attempts. Failed calls count them all,
 * so that a message failing every half-open probe still comes to a stall.
 * A blamed message failed while the circuit was not closed: it waits behind
 * messages that have not failed, so that the next half-open probe is one
 * of those when there is one.
 */
export interface FailureFacts {
  /** The circuit refused the call: the handler did not run. */
  readonly refused: boolean;
  /** The circuit's state after this failure was counted. */
  readonly circuit: CircuitState;
  readonly breakerEnabled: boolean;
  readonly retriable: boolean;
  /** Charged attempts including this one. */
  readonly attempts: number;
  /** Failed calls including this one, charged or not. */
  readonly failedCalls: number;
  readonly maxAttempts: number;
  /** Others' calls since this message's evidence began say the downstream serves them (see {@link servedOthers}). */
  readonly served: boolean;
  /** Only exhausted messages have been failing, long enough (see {@link stallLength}). */
  readonly stalled: boolean;
  /** A health check is configured. */
  readonly healthCheck: boolean;
  readonly deadLetter: boolean;
}

export type FailureDecision =
  | {
      /** Wait for the circuit to change (`open`) or try again now (`half-open`). */
      readonly kind: 'wait-circuit';
      /** The attempt is not charged; `blame` marks the message as failed while the circuit was not closed. */
      readonly blame: boolean;
    }
  | {
      readonly kind: 'retry';
      readonly delayMs: number;
      /** False when the attempt is given back (the failure looks like an outage, not the message). */
      readonly charged: boolean;
    }
  | {
      readonly kind: 'dead-letter';
      readonly reason: 'attempts-exhausted' | 'non-retriable';
      /** Dead-lettered without evidence: every head was failing and nothing else could run. */
      readonly guess: boolean;
    }
  | { readonly kind: 'check-health' }
  | { readonly kind: 'hold'; readonly delayMs: number };

export interface PolicySettings extends BackoffSettings {
  readonly maxAttempts: number;
}

export function decideFailure(
  facts: FailureFacts,
  retry: PolicySettings,
  random: () => number = Math.random,
): FailureDecision {
  if (facts.refused) return { kind: 'wait-circuit', blame: false };
  if (!facts.retriable) return endOf(facts, retry, 'non-retriable', false);
  const exhausted = facts.attempts >= facts.maxAttempts;
  if (facts.breakerEnabled) {
    if (exhausted && facts.served) return endOf(facts, retry, 'attempts-exhausted', false);
    if (facts.failedCalls >= facts.maxAttempts && facts.stalled) {
      // Without a dead-letter topic there is nothing to do on a healthy answer but hold.
      if (facts.healthCheck && facts.deadLetter) return { kind: 'check-health' };
      return endOf(facts, retry, 'attempts-exhausted', true);
    }
  }
  if (facts.circuit !== 'closed') return { kind: 'wait-circuit', blame: true };
  if (!exhausted) {
    return { kind: 'retry', delayMs: backoffDelay(facts.attempts, retry, random), charged: true };
  }
  if (!facts.breakerEnabled) return endOf(facts, retry, 'attempts-exhausted', false);
  return {
    kind: 'retry',
    delayMs: backoffDelay(facts.maxAttempts, retry, random),
    charged: false,
  };
}

function endOf(
  facts: FailureFacts,
  retry: PolicySettings,
  reason: 'attempts-exhausted' | 'non-retriable',
  guess: boolean,
): FailureDecision {
  if (facts.deadLetter) return { kind: 'dead-letter', reason, guess };
  return { kind: 'hold', delayMs: retry.maxDelayMs };
}

/**
 * Whether the downstream served others since a message's evidence began:
 * a health check passed, or their calls failed at or under the breaker's
 * threshold, and clearly so: the upper bound of a one-sided 99% Wilson
 * interval around the failure rate must be at or under it. A few lucky
 * calls in a brownout above the threshold are not service; no calls at
 * all are not either.
 */
export function servedOthers(
  succeeded: number,
  failed: number,
  healthy: boolean,
  thresholdPercentage: number,
): boolean {
  if (healthy) return true;
  if (succeeded === 0) return false;
  return failureRateBound(failed, succeeded + failed) * 100 <= thresholdPercentage;
}

/** z of a one-sided 99% bound. */
const Z = 2.326;

/** Upper bound of the Wilson score interval of `failed / calls`. */
export function failureRateBound(failed: number, calls: number): number {
  const rate = failed / calls;
  const z2n = (Z * Z) / calls;
  const spread = Z * Math.sqrt((rate * (1 - rate)) / calls + z2n / (4 * calls));
  return (rate + z2n / 2 + spread) / (1 + z2n);
}

/**
 * Quiet failures per failing message that make a stall: each message that
 * already failed every attempt failing twice more, with nothing else
 * ending, is poison's mark (while the downstream is in doubt, time counts
 * too: see FailureEvidence.stalled).
 */
export const SHORT_STALL = 2;

/** Doublings of a stall's length at most: a long outage still gets a guess now and then. */
export const MAX_STALL_DOUBLINGS = 6;

/** A stall's length (in quiet failures, or in time) doubled for each guess since a message with attempts left last succeeded. */
export function stallLength(guessesSinceSuccess: number, length: number): number {
  return length * 2 ** Math.min(guessesSinceSuccess, MAX_STALL_DOUBLINGS);
}
