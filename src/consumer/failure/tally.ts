import type { Delivery } from '../dispatch/delivery.js';
import { FailureEvidence, type EvidenceMark } from './evidence.js';

/** The breaker settings the tally reads (the consumer's resolved `circuitBreaker`). */
export interface TallySettings {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly rollingCountTimeoutMs: number;
}

/**
 * The facts the failure policy needs about messages in flight: which of
 * them can still tell poison from an outage (those that have failed fewer
 * than `maxAttempts` calls), which have used their attempts, and what
 * other calls did since each failing message's first failure (the
 * {@link FailureEvidence}). The runner reports each message's start,
 * calls and end here; the policy reads the answers.
 */
export class FailureTally {
  readonly #maxAttempts: number;
  readonly #evidence: FailureEvidence;
  /**
   * Messages running, or waiting to run again, that have failed fewer than
   * `maxAttempts` calls: while there is one, its next call can still tell
   * poison from an outage, so there is no stall.
   */
  #tellingLive = 0;
  /** Messages started and not ended that have failed `maxAttempts` calls or more. */
  #exhaustedLive = 0;

  constructor(maxAttempts: number, breaker: TallySettings | undefined) {
    this.#maxAttempts = maxAttempts;
    const windowMs = breaker?.rollingCountTimeoutMs ?? 10_000;
    // While the downstream's health is in doubt, a stall lasts six rolling
    // windows (a minute at defaults) before a guess: an outage whose
    // victims have all used their attempts is not taken for poison early.
    // The latest first attempts looked at: five times the calls the breaker
    // wants before it judges.
    this.#evidence = new FailureEvidence(
      breaker?.errorThresholdPercentage ?? 50,
      6 * windowMs,
      5 * (breaker?.volumeThreshold ?? 10),
      windowMs,
    );
  }

  /**
   * Whether a call of this message says anything about the downstream: not
   * once it has failed `maxAttempts` times. Poison fails again, and so does
   * anything in an outage; counting those calls would let poison messages
   * hold the circuit open.
   */
  telling(d: Delivery): boolean {
    return d.failedCalls < this.#maxAttempts;
  }

  /**
   * The message starts a call (alone, or in a batch): until it has used
   * its attempts, its calls tell something, and it counts among the
   * messages that could still tell poison from an outage.
   */
  begin(d: Delivery): void {
    if (d.telling || d.exhausted) return;
    d.telling = true;
    this.#tellingLive += 1;
    if (!this.telling(d)) this.#exhaust(d);
  }

  /**
   * The message waits behind others of its failed batch: until its part
   * runs it can tell nothing, like a message behind another in its lane.
   */
  waiting(d: Delivery): void {
    this.#untell(d);
  }

  /** The message ended (alone, or in a batch): it no longer counts, telling or exhausted. */
  released(d: Delivery): void {
    this.#untell(d);
    if (!d.exhausted) return;
    d.exhausted = false;
    this.#exhaustedLive -= 1;
  }

  /** A call of the message succeeded. */
  succeeded(d: Delivery, now: number): void {
    this.#evidence.succeeded(d.failedCalls === 0, !this.telling(d), now);
  }

  /**
   * A call of the message failed: a retriable failure is evidence, and
   * marks where the message's own evidence begins (unless its batch's
   * did); the message may have used its attempts now.
   */
  failed(d: Delivery, retriable: boolean, now: number): void {
    if (retriable) {
      this.#evidence.failed(d.failedCalls === 0, !this.telling(d), now);
      d.mark ??= this.#evidence.mark();
    }
    d.failedCalls += 1;
    if (!this.telling(d)) this.#exhaust(d);
  }

  /**
   * A batch handler call ended (`first`: the batch's first call). Its
   * outcome is evidence like a message's: a batch that succeeds says the
   * downstream works, one that fails on its first call is a failing sample.
   */
  batchEnded(failed: boolean, first: boolean, now: number): void {
    if (failed) this.#evidence.failed(first, false, now);
    else this.#evidence.succeeded(first, false, now);
  }

  /** Where the evidence of a message failing now would begin (a failed batch's, for its parts). */
  mark(): EvidenceMark {
    return this.#evidence.mark();
  }

  /** Whether others were served since `mark` (see {@link FailureEvidence.served}). */
  served(mark: EvidenceMark | undefined): boolean {
    return mark !== undefined && this.#evidence.served(mark);
  }

  /**
   * Nothing that could tell is left, and the exhausted messages' failures
   * make a stall (see {@link FailureEvidence.stalled}); `short` when a
   * health check will decide.
   */
  stalled(now: number, short: boolean): boolean {
    return this.#tellingLive === 0 && this.#evidence.stalled(this.#exhaustedLive, now, short);
  }

  /** See {@link FailureEvidence.failingLately}. */
  failingLately(now: number): boolean {
    return this.#evidence.failingLately(now);
  }

  /** The circuit opened. */
  circuitOpened(now: number): void {
    this.#evidence.circuitOpened(now);
  }

  /** A guess was made, or the health check asked in its place. */
  guessed(): void {
    this.#evidence.guessed();
  }

  /** A health check passed. */
  healthy(): void {
    this.#evidence.healthy();
  }

  /** The message stopped telling (ended, or used its attempts). */
  #untell(d: Delivery): void {
    if (!d.telling) return;
    d.telling = false;
    this.#tellingLive -= 1;
  }

  /** The message used its attempts: it stops telling and counts among those a stall waits through. */
  #exhaust(d: Delivery): void {
    if (!d.telling) return;
    this.#untell(d);
    d.exhausted = true;
    this.#exhaustedLive += 1;
  }
}
