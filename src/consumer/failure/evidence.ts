import { servedOthers, SHORT_STALL, stallLength } from './policy.js';

/** Where a failing message's evidence begins: the running counts then. */
export interface EvidenceMark {
  readonly succeeded: number;
  readonly failed: number;
  readonly healthy: number;
}

/**
 * What the downstream has been doing, as running counts of handler calls,
 * so that the failure policy can tell a poison message from an outage. A
 * failing message takes a mark when it first fails; the counts since the
 * mark are its evidence.
 *
 * The rate counts first attempts only, successes and retriable failures
 * alike. A first attempt is a fair sample of what the downstream does with
 * a message; a retry is not (it is the call of a message known to fail, so
 * poison would weigh as often as it is retried). Failures of exhausted
 * messages in a row, with nothing else ending, are a stall: the evidence
 * can no longer change. A call that succeeds costs three assignments here.
 */
export class FailureEvidence {
  #succeeded = 0;
  #failed = 0;
  #healthy = 0;
  /** Failures of exhausted messages since anything else ended, or since the last guess. */
  #quiet = 0;
  /** When the first of those failures ended (consumer clock). */
  #quietSince = 0;
  #guessesSinceSuccess = 0;
  /** The latest first attempts, failed or not, oldest overwritten first. */
  readonly #recent: Uint8Array;
  /** When each of the latest first attempts ended (consumer clock). */
  readonly #recentTimes: Float64Array;
  #recentAt = 0;
  #recentFailed = 0;
  #recentCalls = 0;
  readonly #threshold: number;
  readonly #longStallMs: number;
  readonly #recentMs: number;
  /** The circuit has opened since the start: an empty record of first attempts is a bad sign, not a blank. */
  #opened = false;
  /** When the circuit last opened (consumer clock). */
  #openedAt = -Infinity;

  /**
   * @param threshold the breaker's failure percentage
   * @param longStallMs how long failures must have been quiet to make a
   *   stall while the downstream's health is in doubt
   * @param recentCalls how many of the latest first attempts are looked at
   * @param recentMs how old the oldest of them may be and still count
   */
  constructor(threshold: number, longStallMs: number, recentCalls: number, recentMs: number) {
    this.#threshold = threshold;
    this.#longStallMs = longStallMs;
    this.#recent = new Uint8Array(recentCalls);
    this.#recentTimes = new Float64Array(recentCalls);
    this.#recentMs = recentMs;
  }

  /**
   * A call succeeded: `first` attempt or not, of a message that had used
   * its attempts (`exhausted`) or not. Any success ends a stall: messages
   * are getting done.
   */
  succeeded(first: boolean, exhausted: boolean, now: number): void {
    this.#quiet = 0;
    if (first) {
      this.#succeeded += 1;
      this.#remember(0, now);
    }
    if (!exhausted) this.#guessesSinceSuccess = 0;
  }

  /** A call failed with a retriable error (see {@link succeeded}). */
  failed(first: boolean, exhausted: boolean, now: number): void {
    if (first) {
      this.#failed += 1;
      this.#remember(1, now);
    }
    if (!exhausted) this.#quiet = 0;
    else if (this.#quiet++ === 0) this.#quietSince = now;
  }

  #remember(failed: 0 | 1, now: number): void {
    const recent = this.#recent;
    const at = this.#recentAt;
    if (this.#recentCalls === recent.length) this.#recentFailed -= recent[at]!;
    else this.#recentCalls += 1;
    recent[at] = failed;
    this.#recentTimes[at] = now;
    this.#recentFailed += failed;
    this.#recentAt = at + 1 === recent.length ? 0 : at + 1;
  }

  /** The counts now: a message failing for the first time takes this (after its failure is counted). */
  mark(): EvidenceMark {
    return {
      succeeded: this.#succeeded,
      failed: this.#failed,
      healthy: this.#healthy,
    };
  }

  /**
   * The circuit opened: the latest first attempts no longer say the
   * downstream works, however well they went before.
   */
  circuitOpened(now: number): void {
    this.#opened = true;
    this.#openedAt = now;
    this.#recent.fill(0);
    this.#recentAt = 0;
    this.#recentCalls = 0;
    this.#recentFailed = 0;
  }

  /** A health check passed. */
  healthy(): void {
    this.#healthy += 1;
  }

  /** Whether others were served since `mark` (the message's own first failure came before it). */
  served(mark: EvidenceMark): boolean {
    return servedOthers(
      this.#succeeded - mark.succeeded,
      this.#failed - mark.failed,
      this.#healthy > mark.healthy,
      this.#threshold,
    );
  }

  /**
   * Whether the failures of the `exhausted` messages that have used their
   * attempts and not ended make a stall: {@link SHORT_STALL} quiet failures
   * each (in a row, nothing else ending between them), and while the
   * downstream's health is in doubt (see {@link inDoubt}) also quiet for
   * `longStallMs`. Both twice as long after each guess while nothing new
   * succeeds. `short` asks for the short one regardless (a health check
   * decides then, not a guess). Counted per message, so that a burst of
   * many failing together (an outage's victims woken at once) is not taken
   * for a few failing again and again; timed while in doubt, because an
   * open circuit lets a failing message call only once per trial.
   */
  stalled(exhausted: number, now: number, short = false): boolean {
    const guesses = this.#guessesSinceSuccess;
    if (this.#quiet < stallLength(guesses, SHORT_STALL * Math.max(1, exhausted))) return false;
    if (short || !this.inDoubt(now)) return true;
    return now - this.#quietSince >= stallLength(guesses, this.#longStallMs);
  }

  /**
   * Whether the downstream looks to be failing: the latest first attempts
   * failed at a rate above the threshold (the breaker's own rule, on a fair
   * sample: poison weighs in them only as often as it arrives), or the
   * circuit opened within the last `recentMs` (a downstream that flaps
   * serves between its failures), or it opened before and too few first
   * attempts came after. Not at the start, before there are enough to say
   * anything. While it does, the breaker counts the calls of messages that
   * used their attempts too.
   */
  failingLately(now: number): boolean {
    if (now - this.#openedAt <= this.#recentMs) return true;
    const calls = this.#recentCalls;
    if (calls < this.#recent.length) return this.#opened;
    return this.#recentFailed * 100 > this.#threshold * calls;
  }

  /**
   * Whether the downstream's health is in doubt: it looks to be failing
   * (see {@link failingLately}), or the latest first attempts have stopped
   * (the oldest ended over `recentMs` ago: every message in flight has been
   * failing for a while, as in an outage that has not opened the circuit).
   * While it is, a stall is long.
   */
  inDoubt(now: number): boolean {
    if (this.failingLately(now)) return true;
    const calls = this.#recentCalls;
    // The slot written next holds the oldest.
    return (
      calls === this.#recent.length && now - this.#recentTimes[this.#recentAt]! > this.#recentMs
    );
  }

  /** A guess was made, or the health check asked in its place: the next stall is twice as long. */
  guessed(): void {
    this.#quiet = 0;
    this.#guessesSinceSuccess += 1;
  }
}
