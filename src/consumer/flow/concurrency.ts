import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { ConcurrencyChangedEvent } from '../events.js';
import type { CircuitState } from '../failure/breaker.js';
import { GradientLimit } from './adaptive-concurrency.js';
import type { ResolvedOptions } from '../options.js';

/**
 * The concurrency limit in force: the configured one, or what adaptive
 * concurrency makes of it while latency moves; 1 while the circuit is
 * half-open (one probe at a time); and the probe count while a latency pause
 * holds. The dispatcher applies a lowered limit to admitted work at once:
 * no new call starts until the running ones are under it.
 */
export class ConcurrencyControl {
  readonly #configured: number;
  readonly #limit: GradientLimit | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #changed: (event: ConcurrencyChangedEvent) => void;
  readonly #clock: ResolvedOptions<unknown>['clock'];
  #circuit: CircuitState = 'closed';
  /** Calls allowed at once while a latency pause holds, or undefined. */
  #probes: number | undefined;

  constructor(
    options: Pick<ResolvedOptions<unknown>, 'concurrency' | 'adaptiveConcurrency' | 'clock'>,
    dispatcher: Dispatcher,
    changed: (event: ConcurrencyChangedEvent) => void,
  ) {
    this.#configured = options.concurrency;
    const adaptive = options.adaptiveConcurrency;
    this.#limit = adaptive
      ? new GradientLimit({
          min: adaptive.minConcurrency,
          max: adaptive.maxConcurrency,
          initial: adaptive.maxConcurrency,
          targetLatencyMs: adaptive.targetLatencyMs,
          decreaseFactor: adaptive.decreaseFactor,
          increaseStep: adaptive.increaseStep,
        })
      : undefined;
    this.#dispatcher = dispatcher;
    this.#changed = changed;
    this.#clock = options.clock;
  }

  /** The adaptive limit's baseline: the latency the downstream shows without queueing, if learned. */
  get baselineMs(): number | undefined {
    return this.#limit?.baselineMs;
  }

  /**
   * The adaptive limit is still acting on a latency rise: it has not yet
   * decided on calls that ended since `since`, or it made a cut whose
   * effect it has not measured. False without the limit, or while the
   * circuit (not the limit) bounds the calls.
   */
  limitSettling(since: number): boolean {
    const limit = this.#limit;
    if (!limit || this.#circuit !== 'closed') return false;
    return limit.cutPending || limit.decidedAt < since;
  }

  /** A handler call ended after `durationMs`, at `now`. */
  record(durationMs: number, now: number): void {
    this.#limit?.record(durationMs, now);
  }

  /**
   * One adaptive step from the calls that ended since the last one.
   * Holds still with the circuit not closed or a latency pause in force:
   * the limit is not what bounds the calls then.
   */
  adapt(now: number, demand: number): void {
    if (!this.#limit || this.#circuit !== 'closed' || this.#probes !== undefined) return;
    const decision = this.#limit.update(now, demand);
    if (decision.changed) this.#apply(decision.reason);
  }

  circuitChanged(state: CircuitState): void {
    this.#circuit = state;
    // Calls under the breaker's limits say nothing of the adaptive one.
    this.#limit?.restart(this.#clock.now());
    if (state === 'half-open') this.#apply('circuit-half-open');
    else if (state === 'closed') this.#apply('circuit-closed');
  }

  /** A latency pause began (`probes` calls at once from now) or ended (undefined). */
  latencyPaused(probes: number | undefined): void {
    this.#probes = probes;
    // Probes ran under the pause's cap, not under the limit: they are not its evidence.
    this.#limit?.restart(this.#clock.now());
    this.#apply(probes === undefined ? 'latency-resumed' : 'latency-paused');
  }

  #apply(reason: ConcurrencyChangedEvent['reason']): void {
    let to = this.#limit?.limit ?? this.#configured;
    if (this.#circuit === 'half-open') to = 1;
    if (this.#probes !== undefined) to = Math.min(to, this.#probes);
    const from = this.#dispatcher.concurrency;
    if (from === to) return;
    this.#dispatcher.concurrency = to;
    this.#changed({ from, to, reason });
  }
}
