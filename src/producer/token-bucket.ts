/**
 * A token bucket with continuous refill, "pay later" as in Guava's
 * `SmoothBursty` RateLimiter: a send may go while the balance is not
 * negative and may take it below zero (so one message larger than the whole
 * bucket still goes, alone), and the next send waits until the debt is
 * repaid. It starts empty and holds at most one second of tokens, so the
 * long-run rate is exact and a burst after an idle period is at most one
 * second's worth.
 * https://github.com/google/guava/blob/master/guava/src/com/google/common/util/concurrent/SmoothRateLimiter.java
 *
 * Our own rather than bottleneck's reservoir: the reservoir is refilled by a
 * heartbeat that restarts its interval from the tick that noticed it, so the
 * rate is quantised and drifts low; and a job's weight is fixed when it is
 * scheduled, while a batch must be sized by the tokens available when it
 * leaves, or it could not grow while it waits.
 */
export class TokenBucket {
  #perMs = 0;
  #capacity = 0;
  #tokens = 0;
  #updatedAt: number;

  constructor(perSecond: number, now: number) {
    this.#updatedAt = now;
    this.setRate(perSecond, now);
  }

  get unlimited(): boolean {
    return this.#perMs === Number.POSITIVE_INFINITY;
  }

  /** A new rate keeps the balance (a debt is repaid at the new rate) within the new capacity. */
  setRate(perSecond: number, now: number): void {
    this.#refill(now);
    this.#perMs = perSecond / 1000;
    this.#capacity = perSecond;
    if (this.unlimited) this.#tokens = 0;
    else this.#tokens = Math.min(this.#tokens, this.#capacity);
  }

  available(now: number): number {
    if (this.unlimited) return Number.POSITIVE_INFINITY;
    this.#refill(now);
    return this.#tokens;
  }

  msUntilReady(now: number): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#perMs;
  }

  take(amount: number, now: number): void {
    if (this.unlimited) return;
    this.#refill(now);
    this.#tokens -= amount;
  }

  #refill(now: number): void {
    if (!this.unlimited && now > this.#updatedAt) {
      this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updatedAt) * this.#perMs);
    }
    this.#updatedAt = Math.max(this.#updatedAt, now);
  }
}
