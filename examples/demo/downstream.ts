/**
 * The service the demo's consumer calls: each call takes `workMs` (±10 %),
 * and during an outage every call fails after a short delay, as a service
 * answering 503 would. A call in progress when the outage starts fails too
 * (its connection drops), so nothing succeeds while the service is down.
 */

export class DownstreamUnavailableError extends Error {
  override readonly name = 'DownstreamUnavailableError';
  constructor() {
    super('downstream answered 503 Service Unavailable');
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class Downstream {
  #workMs: number;
  #down = false;
  #active = 0;
  #peak = 0;
  calls = 0;
  failures = 0;

  constructor(workMs: number) {
    this.#workMs = workMs;
  }

  get down(): boolean {
    return this.#down;
  }

  /** Calls running right now. */
  get active(): number {
    return this.#active;
  }

  get peakActive(): number {
    return this.#peak;
  }

  setDown(down: boolean): void {
    this.#down = down;
  }

  async call(signal: AbortSignal): Promise<void> {
    this.calls += 1;
    this.#active += 1;
    this.#peak = Math.max(this.#peak, this.#active);
    try {
      if (this.#down) {
        await sleep(20, signal);
        throw new DownstreamUnavailableError();
      }
      await sleep(this.#workMs * (0.9 + Math.random() * 0.2), signal);
      if (this.#down) throw new DownstreamUnavailableError();
    } catch (error) {
      if (error instanceof DownstreamUnavailableError) this.failures += 1;
      throw error;
    } finally {
      this.#active -= 1;
    }
  }
}
