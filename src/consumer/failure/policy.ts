import type { CircuitState } from './breaker.js';
import { backoffDelay, type BackoffSettings } from './retry.js';

/**
 * What to do with a message whose handler attempt failed. Pure: the
 * dispatcher gathers the facts, this decides, the dispatcher carries it out.
 *
 * | situation (checked in this order)                                   | decision                                    |
 * |---------------------------------------------------------------------|---------------------------------------------|
 * | the circuit refused the call (it did not run)                       | wait for the circuit; no attempt charged    |
 * | the circuit is not closed (this failure may have opened it)         | wait for it (open) or try again (half-open); no attempt charged; the message is blamed |
 * | retriable, attempts used up, breaker on, nothing succeeded since it first failed | retry after the longest backoff; no attempt charged (looks like an outage) |
 * | not retriable, or attempts used up                                  | dead-letter, or hold and retry without a DLQ |
 * | otherwise                                                           | retry after backoff                          |
 *
 * A blamed message failed while the downstream was known to be down: its
 * later calls do not count toward the breaker, and it waits behind
 * messages that have not failed, so the next probe is one of those.
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
  readonly maxAttempts: number;
  /** Some handler call succeeded after this message first failed. */
  readonly othersSucceeded: boolean;
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
  | { readonly kind: 'dead-letter'; readonly reason: 'attempts-exhausted' | 'non-retriable' }
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
  if (facts.circuit !== 'closed') return { kind: 'wait-circuit', blame: true };
  const exhausted = facts.attempts >= facts.maxAttempts;
  if (facts.retriable && exhausted && facts.breakerEnabled && !facts.othersSucceeded) {
    return {
      kind: 'retry',
      delayMs: backoffDelay(facts.maxAttempts, retry, random),
      charged: false,
    };
  }
  if (!facts.retriable || exhausted) {
    if (facts.deadLetter) {
      return {
        kind: 'dead-letter',
        reason: facts.retriable ? 'attempts-exhausted' : 'non-retriable',
      };
    }
    return { kind: 'hold', delayMs: retry.maxDelayMs };
  }
  return { kind: 'retry', delayMs: backoffDelay(facts.attempts, retry, random), charged: true };
}
