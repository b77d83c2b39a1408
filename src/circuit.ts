import CircuitBreaker from 'opossum';
import { CircuitOpenError, isBackpressureError } from './errors.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitSettings {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeoutMs: number;
  readonly rollingCountTimeoutMs: number;
  readonly rollingCountBuckets: number;
}

/**
 * The opossum breaker behind the few calls the dispatcher needs. opossum's
 * own timeout is off (the dispatcher times attempts itself, so a timeout
 * counts once), and errors marked not retriable do not count as downstream
 * failures: a poison message says nothing about the downstream's health.
 */
export class Circuit {
  readonly #breaker: CircuitBreaker<[() => Promise<void>], void> | undefined;
  #state: CircuitState = 'closed';
  #waiters: (() => void)[] = [];

  constructor(
    settings: CircuitSettings | undefined,
    onChange: (state: CircuitState) => void,
    isCounted: (error: unknown) => boolean,
  ) {
    if (settings === undefined) return;
    this.#breaker = new CircuitBreaker((task: () => Promise<void>) => task(), {
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingCountTimeoutMs,
      rollingCountBuckets: settings.rollingCountBuckets,
      errorFilter: (error: unknown) => !isCounted(error),
      // Latency is measured by the dispatcher's own window. opossum's
      // percentiles would copy and sort every call's latency in the rolling
      // window at each snapshot and each failure: a cost per message for
      // figures nobody reads.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    const move = (state: CircuitState) => {
      if (this.#state === state) return;
      this.#state = state;
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
      onChange(state);
    };
    this.#breaker.on('open', () => move('open'));
    this.#breaker.on('halfOpen', () => move('half-open'));
    this.#breaker.on('close', () => move('closed'));
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Runs `task` through the breaker; rejects with {@link CircuitOpenError} without running it when open. */
  run(task: () => Promise<void>): Promise<void> {
    if (this.#breaker === undefined) return task();
    return this.#breaker.fire(task).then(undefined, rethrowOpen);
  }

  /** Resolves at the next change of state. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes everything waiting for a change (used on close). */
  wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  shutdown(): void {
    this.wakeAll();
    this.#breaker?.shutdown();
  }
}

function rethrowOpen(error: unknown): never {
  if (
    !isBackpressureError(error) &&
    (error as { code?: unknown } | null)?.code === 'EOPENBREAKER'
  ) {
    throw new CircuitOpenError({ cause: error });
  }
  throw error;
}
