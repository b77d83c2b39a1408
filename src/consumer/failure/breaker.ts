import CircuitBreaker from 'opossum';
import { CircuitOpenError, isBackpressureError } from '../../errors.js';
import { OutcomeWindow } from './outcome-window.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitSettings {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeoutMs: number;
  readonly rollingCountTimeoutMs: number;
  readonly rollingCountBuckets: number;
  /** Asked instead of a message in the half-open state, and when every message that could run is failing. */
  readonly healthCheck?: ((signal: AbortSignal) => Promise<boolean>) | undefined;
}

/**
 * The circuit breaker around the handler, built on opossum's public API.
 *
 * opossum holds the circuit's state and its timing: `open()` starts its
 * reset timer, the timer moves it to half-open, and a half-open probe runs
 * through `fire()`, which lets one call through and closes or reopens the
 * circuit by that call's outcome. While the circuit is closed, outcomes
 * are counted here instead, in a rolling window with opossum's rule
 * (failures over calls above `errorThresholdPercentage`, once the window
 * holds `volumeThreshold` calls), and the verdict reaches opossum through
 * `open()`: going through `fire()` for every message costs several
 * promises and events each, more than the rest of a fast message's path.
 */
export class Circuit {
  readonly #breaker: CircuitBreaker<[() => Promise<void>, boolean], void> | undefined;
  readonly #window: OutcomeWindow | undefined;
  readonly #settings: CircuitSettings | undefined;
  #state: CircuitState = 'closed';
  #waiters: (() => void)[] = [];
  /** Woken after #waiters: they ask for a slot after the others, so they do not probe first. */
  #lastWaiters: (() => void)[] = [];

  /** Closed by a probe that told nothing: until a call succeeds, one counted failure reopens. */
  #onTrial = false;
  /** Closes on trial so far: tells one trial from the next. */
  #trials = 0;

  /** The health check running now, shared by everyone who asks meanwhile. */
  #checking: Promise<boolean> | undefined;
  readonly #checkTimeoutMs: number;

  /**
   * @param isCounted whether a failure says something about the downstream
   *   (a poison message's non-retriable error does not)
   * @param checkTimeoutMs how long a health check may take before it counts as failed
   */
  constructor(
    settings: CircuitSettings | undefined,
    onChange: (state: CircuitState) => void,
    isCounted: (error: unknown) => boolean,
    checkTimeoutMs = 30_000,
  ) {
    this.#settings = settings;
    this.#checkTimeoutMs = checkTimeoutMs;
    if (settings === undefined) return;
    this.#window = new OutcomeWindow(settings.rollingCountTimeoutMs, settings.rollingCountBuckets);
    this.#breaker = new CircuitBreaker((task: () => Promise<void>, _telling: boolean) => task(), {
      // Attempts are timed by the dispatcher, so a timeout counts once.
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      // Only probes run through opossum; one failed probe reopens.
      volumeThreshold: 1,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingCountTimeoutMs,
      rollingCountBuckets: settings.rollingCountBuckets,
      // A probe that says nothing about the downstream is taken as a
      // success: it closes the circuit, so that fetching resumes and fresh
      // messages, whose calls do tell, run again. That is a probe by a
      // message that has failed all its attempts (it only probes when no
      // other waits to), or one failing with an error that is not the
      // downstream's (a poison message's non-retriable error).
      // (opossum passes the call's arguments after the error; its types show only the error.)
      // Such a close is on trial: the first counted failure after it opens
      // the circuit again at once, before the window has its volume, so
      // an outage costs no more calls per probe than the slots hold.
      errorFilter: ((error: unknown, _task: unknown, telling: unknown) => {
        // A failed health check always tells, whatever isRetriable says of its error.
        const told = error instanceof HealthCheckFailed || (telling !== false && isCounted(error));
        if (!told) {
          this.#onTrial = true;
          this.#trials += 1;
        }
        return !told;
      }) as (error: unknown) => boolean,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    const move = (state: CircuitState) => {
      if (this.#state === state) return;
      this.#state = state;
      // A fresh start: the outcomes that opened the circuit are history.
      if (state === 'closed') this.#window?.clear();
      else if (state === 'open') this.#onTrial = false;
      this.wakeAll();
      onChange(state);
    };
    this.#breaker.on('open', () => move('open'));
    this.#breaker.on('halfOpen', () => {
      move('half-open');
      if (settings.healthCheck !== undefined) this.#probeHealth();
    });
    this.#breaker.on('close', () => move('closed'));
  }

  get state(): CircuitState {
    return this.#state;
  }

  get enabled(): boolean {
    return this.#breaker !== undefined;
  }

  /**
   * Closed by a probe that told nothing about the downstream (it failed for
   * the message's own reasons, or was a message that failed all its
   * attempts), and no call has succeeded since: the downstream has not
   * been shown to work.
   */
  get onTrial(): boolean {
    return this.#onTrial;
  }

  /** How many closes on trial there have been (the current one's number while {@link onTrial}). */
  get trials(): number {
    return this.#trials;
  }

  /** A health check is configured: it is the half-open probe. */
  get checksHealth(): boolean {
    return this.#settings?.healthCheck !== undefined;
  }

  /**
   * Asks the health check once, or joins the check running now. False when
   * it answers false, throws, or has not answered within the timeout.
   */
  checkHealth(): Promise<boolean> {
    const check = this.#settings?.healthCheck;
    if (check === undefined) return Promise.resolve(false);
    this.#checking ??= runCheck(check, this.#checkTimeoutMs).finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  /** Opens the circuit now (a health check said the downstream is down). */
  open(): void {
    if (this.#state === 'closed') this.#breaker?.open();
  }

  /** The half-open probe is the health check: it closes or reopens the circuit. */
  #probeHealth(): void {
    const probe = async () => {
      if (!(await this.checkHealth())) throw new HealthCheckFailed();
    };
    this.#breaker!.fire(probe, true).catch(() => undefined);
  }

  /**
   * Counts the outcome of a call that ran while the circuit was closed;
   * `failed` only for failures that count against the downstream. Opens
   * the circuit, synchronously, when the rule says so.
   */
  record(failed: boolean, now: number): void {
    const window = this.#window;
    if (window === undefined || this.#state !== 'closed') return;
    window.record(failed, now);
    if (!failed) {
      if (this.#onTrial) {
        // The trial is over: what waited for it runs.
        this.#onTrial = false;
        this.wakeAll();
      }
      return;
    }
    if (this.#onTrial) return this.#breaker!.open();
    const settings = this.#settings!;
    if (window.calls < settings.volumeThreshold) return;
    if ((window.failures / window.calls) * 100 > settings.errorThresholdPercentage) {
      this.#breaker!.open();
    }
  }

  /**
   * Runs a half-open probe through opossum. Rejects with
   * {@link CircuitOpenError}, without running `task`, when the circuit is
   * open or another probe is out. `telling` false: its failure is taken as
   * a success (see the constructor).
   */
  probe(task: () => Promise<void>, telling: boolean): Promise<void> {
    const breaker = this.#breaker;
    if (breaker === undefined) return task();
    return breaker.fire(task, telling).then(undefined, rethrowOpen);
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
    for (const wake of waiters) wake();
    for (const wake of lastWaiters) wake();
  }

  shutdown(): void {
    this.wakeAll();
    this.#breaker?.shutdown();
  }
}

/** The half-open probe's failure when it is the health check: always counted. */
class HealthCheckFailed extends Error {
  constructor() {
    super('the health check failed');
    this.name = 'HealthCheckFailed';
  }
}

async function runCheck(
  check: (signal: AbortSignal) => Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`the health check took over ${timeoutMs} ms`));
      resolve(false);
    }, timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(() => check(controller.signal))
        .then(
          (healthy) => healthy === true,
          () => false,
        ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
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
