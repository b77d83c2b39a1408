import type { Clock } from '../../shared/clock.js';

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
  #waiters: Waiter[] = [];

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
    const waiters = this.#waiters;
    // Usually the one waiter is an admission waiting for a chunk to free:
    // most releases wake nobody, and then allocate nothing. Waking resolves
    // a promise, so nothing re-enters the list while it is walked.
    let kept: Waiter[] | undefined;
    for (let i = 0; i < waiters.length; i += 1) {
      const waiter = waiters[i]!;
      if (waiter.until === undefined || waiter.until()) {
        kept ??= waiters.slice(0, i);
        waiter.wake();
      } else if (kept !== undefined) {
        kept.push(waiter);
      }
    }
    if (kept !== undefined) this.#waiters = kept;
  }

  /**
   * Resolves on a release after which `until()` holds (on the next release
   * when omitted), so a waiting admission can look again. Waiting for a
   * chunk to free (say, down to the low mark) rather than a single slot
   * keeps the waiter from waking once per finished message.
   */
  changed(until?: () => boolean): Promise<void> {
    return new Promise((wake) => this.#waiters.push({ wake, until }));
  }

  /** Like {@link changed}, but gives up after `timeoutMs` (and forgets the waiter). */
  changedWithin(timeoutMs: number, until?: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
        until,
      };
      const timer = setTimeout(() => {
        const at = this.#waiters.indexOf(waiter);
        if (at !== -1) this.#waiters.splice(at, 1);
        resolve();
      }, timeoutMs);
      timer.unref();
      this.#waiters.push(waiter);
    });
  }

  /**
   * Resolves once `condition()` holds, looked at after every release (a
   * wake without a release looks again and keeps waiting); rejects with
   * `signal.reason` if the signal aborts first.
   */
  until(condition: () => boolean, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason as unknown);
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.#waiters.indexOf(waiter);
        if (at !== -1) this.#waiters.splice(at, 1);
        reject(signal!.reason as unknown);
      };
      const waiter: Waiter = {
        until: condition,
        wake: () => {
          if (!condition()) {
            this.#waiters.push(waiter);
            return;
          }
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /**
   * Waits until `condition()` holds, for at most `timeoutMs` by `clock`;
   * true when it held. Looks again at least every 250 ms, so a condition
   * that changes without a release (an abort) is seen.
   */
  async within(condition: () => boolean, timeoutMs: number, clock: Clock): Promise<boolean> {
    const deadline = clock.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - clock.now();
      if (left <= 0) return false;
      await this.changedWithin(Math.min(left, 250), condition);
    }
    return true;
  }

  /** Wakes every waiter without a release (close, rebalance). */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.wake();
  }
}

interface Waiter {
  readonly wake: () => void;
  readonly until: (() => boolean) | undefined;
}
