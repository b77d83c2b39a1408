/**
 * Counts messages and bytes fetched but not done, against the two limits.
 *
 * A message bigger than the whole byte limit is admitted when nothing else is
 * in flight, so it runs alone instead of deadlocking the consumer.
 */
export class InFlightBudget {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly lowMessages: number;
  readonly lowBytes: number;
  #messages = 0;
  #bytes = 0;
  #peakMessages = 0;
  #peakBytes = 0;
  #waiters: (() => void)[] = [];

  constructor(maxMessages: number, maxBytes: number, resumeThreshold: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
    this.lowMessages = Math.floor(maxMessages * resumeThreshold);
    this.lowBytes = Math.floor(maxBytes * resumeThreshold);
  }

  get messages(): number {
    return this.#messages;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get peakMessages(): number {
    return this.#peakMessages;
  }

  get peakBytes(): number {
    return this.#peakBytes;
  }

  fits(bytes: number): boolean {
    if (this.#messages === 0) return true;
    return this.#messages + 1 <= this.maxMessages && this.#bytes + bytes <= this.maxBytes;
  }

  /** At or above a limit: the queue-full trigger's high mark. */
  full(): boolean {
    return this.#messages >= this.maxMessages || this.#bytes >= this.maxBytes;
  }

  /** At or below both low marks: the queue-full trigger clears. */
  low(): boolean {
    return this.#messages <= this.lowMessages && this.#bytes <= this.lowBytes;
  }

  add(bytes: number): void {
    this.#messages += 1;
    this.#bytes += bytes;
    if (this.#messages > this.#peakMessages) this.#peakMessages = this.#messages;
    if (this.#bytes > this.#peakBytes) this.#peakBytes = this.#bytes;
  }

  release(bytes: number): void {
    this.#messages -= 1;
    this.#bytes -= bytes;
    if (this.#waiters.length > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves on the next release, so a waiting admission can look again. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes every waiter without a release (close, rebalance). */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
