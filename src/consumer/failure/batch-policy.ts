import type { CircuitState } from './breaker.js';
import { backoffDelay, type BackoffSettings } from './retry.js';

/**
 * What to do with a batch (two messages or more) whose handler call
 * failed. Pure, like the message policy beside it (policy.ts), and read
 * the same way:
 *
 * | situation (checked in this order)               | decision                                          |
 * |-------------------------------------------------|---------------------------------------------------|
 * | the circuit refused the call (it did not run)   | wait for the circuit; no attempt charged          |
 * | the circuit is not closed                       | wait for it (open) or try again (half-open); no attempt charged; the batch is blamed |
 * | not retriable, or its attempts are used up      | split it in two halves, run one after the other   |
 * | otherwise                                       | retry the whole batch after backoff               |
 *
 * Splitting never dead-letters anything, so it needs no proof that the
 * downstream is up: the halves are tried once each, a failing half is
 * split again, and a message left alone follows the message policy, where
 * its siblings' successes are the evidence that tells poison from outage.
 * One poison message among n costs about 2·log2(n) calls instead of n.
 */
export interface BatchFailureFacts {
  readonly refused: boolean;
  /** The circuit's state after this failure was counted. */
  readonly circuit: CircuitState;
  readonly retriable: boolean;
  /** Charged calls of this batch, this one included. */
  readonly attempts: number;
  /** Calls the batch gets before it is split: `retry.maxAttempts` as formed, 1 for a half. */
  readonly maxAttempts: number;
}

export type BatchFailureDecision =
  | { readonly kind: 'wait-circuit'; readonly blame: boolean }
  | { readonly kind: 'retry'; readonly delayMs: number }
  | { readonly kind: 'split' };

export function decideBatchFailure(
  facts: BatchFailureFacts,
  retry: BackoffSettings,
  random: () => number = Math.random,
): BatchFailureDecision {
  if (facts.refused) return { kind: 'wait-circuit', blame: false };
  if (facts.circuit !== 'closed') return { kind: 'wait-circuit', blame: true };
  if (!facts.retriable || facts.attempts >= facts.maxAttempts) return { kind: 'split' };
  return { kind: 'retry', delayMs: backoffDelay(facts.attempts, retry, random) };
}
