/**
 * Calls and failures over a rolling window of `bucketCount` time slices,
 * the statistic a circuit breaker opens by. Recording costs a division and
 * two additions; slices expire as time moves past them, with no timer.
 * Times are on the caller's clock (milliseconds).
 */
export class OutcomeWindow {
  readonly #bucketMs: number;
  readonly #calls: Uint32Array;
  readonly #failures: Uint32Array;
  /** The slice number (time / bucketMs) that the newest slice holds. */
  #current = Number.NEGATIVE_INFINITY;
  #totalCalls = 0;
  #totalFailures = 0;

  constructor(windowMs: number, bucketCount: number) {
    this.#bucketMs = windowMs / bucketCount;
    this.#calls = new Uint32Array(bucketCount);
    this.#failures = new Uint32Array(bucketCount);
  }

  /** Calls in the window, as of the last record. */
  get calls(): number {
    return this.#totalCalls;
  }

  get failures(): number {
    return this.#totalFailures;
  }

  record(failed: boolean, now: number): void {
    const slice = Math.floor(now / this.#bucketMs);
    if (slice > this.#current) this.#advance(slice);
    // A clock that went back (it should not) keeps counting in the newest slice.
    const at = this.#current % this.#calls.length;
    this.#calls[at] = this.#calls[at]! + 1;
    this.#totalCalls += 1;
    if (failed) {
      this.#failures[at] = this.#failures[at]! + 1;
      this.#totalFailures += 1;
    }
  }

  /** Calls and failures as of `now`, with expired slices dropped. */
  read(now: number): { calls: number; failures: number } {
    const slice = Math.floor(now / this.#bucketMs);
    if (slice > this.#current) this.#advance(slice);
    return { calls: this.#totalCalls, failures: this.#totalFailures };
  }

  clear(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#totalCalls = 0;
    this.#totalFailures = 0;
    this.#current = Number.NEGATIVE_INFINITY;
  }

  #advance(slice: number): void {
    const n = this.#calls.length;
    // Nothing recorded yet (or since clear()): every slice is empty already.
    const expired =
      this.#current === Number.NEGATIVE_INFINITY ? 0 : Math.min(n, slice - this.#current);
    for (let i = 1; i <= expired; i += 1) {
      const at = (this.#current + i) % n;
      this.#totalCalls -= this.#calls[at]!;
      this.#totalFailures -= this.#failures[at]!;
      this.#calls[at] = 0;
      this.#failures[at] = 0;
    }
    this.#current = slice;
  }
}
