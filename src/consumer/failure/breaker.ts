import CircuitBreaker from 'opossum';
import { CircuitOpenError, isBackpressureError } from '../../errors.js';

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
  /** Woken after #waiters: they ask for a slot after the others, so they do not probe first. */
  #lastWaiters: (() => void)[] = [];

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
      errorFilter: (error: unknown) => error instanceof Uncounted || !isCounted(error),
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
      this.wakeAll();
      onChange(state);
    };
    this.#breaker.on('open', () => move('open'));
    this.#breaker.on('halfOpen', () => move('half-open'));
    this.#breaker.on('close', () => move('closed'));
  }

  get state(): CircuitState {
    return this.#state;
  }

  /**
   * Runs `task` through the breaker; rejects with {@link CircuitOpenError}
   * without running it when open. With `counted` false the call leaves the
   * statistics alone while the circuit is closed, and as a half-open probe
   * its failure is taken as a success (opossum has nothing in between), so
   * it closes the circuit.
   */
  run(task: () => Promise<void>, counted = true): Promise<void> {
    if (this.#breaker === undefined) return task();
    if (!counted && this.#state === 'closed') return task();
    const call = counted ? task : () => task().catch(uncounted);
    return this.#breaker.fire(call).then(undefined, rethrowOpen);
  }

  /**
   * Reports a call that ran outside {@link run} while the circuit was
   * closed, and succeeded. The dispatcher runs a fresh message's first
   * attempt this way: `fire` costs several promises and events per call,
   * most of the cost per message when handlers are fast. opossum opens by
   * failures over fires in its rolling window, so a success counts as a
   * fire; its separate count of successes is a statistic nothing here reads,
   * and each costs an event with two listeners and a latency sample kept for
   * the window. While half-open a success is reported whole, since that is
   * what closes the circuit (as for a call of opossum's own that ends then).
   */
  succeeded(): void {
    const breaker = this.#breaker;
    if (breaker === undefined) return;
    breaker.emit('fire', []);
    if (breaker.halfOpen) breaker.emit('success', undefined, 0);
  }

  /**
   * Reports a call that ran outside {@link run} and failed. It is replayed
   * through opossum as a call that fails at once, so opossum counts it (or
   * not: the error filter applies) and decides whether to open, by its own
   * rule. Resolves once it has. When the circuit is no longer closed by then
   * (opened meanwhile, or a probe is out), opossum refuses the replay and
   * the failure is not counted: the downstream is already known to be down.
   */
  failed(error: unknown): Promise<void> {
    const breaker = this.#breaker;
    if (breaker === undefined) return Promise.resolve();
    return breaker.fire(() => Promise.reject(error)).then(ignore, ignore);
  }

  /**
   * Resolves at the next change of state. Waiters resume in the order they
   * asked, and those that asked with `last` after all the others: a message
   * that failed while the circuit was not closed waits `last`, so on
   * half-open one that has not is the probe. Otherwise the message whose
   * failure opened the circuit would be first in line every time, and one
   * that always fails would keep the circuit from ever closing.
   */
  changed({ last = false }: { readonly last?: boolean } = {}): Promise<void> {
    return new Promise((resolve) => (last ? this.#lastWaiters : this.#waiters).push(resolve));
  }

  /** Wakes everything waiting for a change (used on close). */
  wakeAll(): void {
    const waiters = this.#waiters;
    const lastWaiters = this.#lastWaiters;
    this.#waiters = [];
    this.#lastWaiters = [];
    for (const wake of [...waiters, ...lastWaiters]) wake();
  }

  shutdown(): void {
    this.wakeAll();
    this.#breaker?.shutdown();
  }
}

function ignore(): void {}

function rethrowOpen(error: unknown): never {
  if (error instanceof Uncounted) throw error.error;
  if (
    !isBackpressureError(error) &&
    (error as { code?: unknown } | null)?.code === 'EOPENBREAKER'
  ) {
    throw new CircuitOpenError({ cause: error });
  }
  throw error;
}

/** Carries a failure past opossum's statistics (see `run`'s `counted`). */
class Uncounted extends Error {
  readonly error: unknown;

  constructor(error: unknown) {
    super('uncounted failure');
    this.error = error;
  }
}

/** Marks a failure so opossum's statistics skip it; `run` unwraps it again. */
function uncounted(error: unknown): never {
  throw new Uncounted(error);
}
