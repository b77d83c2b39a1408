import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { ConcurrencyChangedEvent } from '../events.js';
import type { CircuitState } from '../failure/breaker.js';
import { AimdLimit } from './adaptive-concurrency.js';
import type { ResolvedOptions } from '../options.js';

/**
 * The concurrency limit in force: the configured one, or what adaptive
 * concurrency makes of it while latency moves, and 1 while the circuit is
 * half-open (one probe at a time).
 */
export class ConcurrencyControl {
  readonly #configured: number;
  readonly #aimd: AimdLimit | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #changed: (event: ConcurrencyChangedEvent) => void;

  constructor(
    options: Pick<ResolvedOptions<unknown>, 'concurrency' | 'adaptiveConcurrency'>,
    dispatcher: Dispatcher,
    changed: (event: ConcurrencyChangedEvent) => void,
  ) {
    this.#configured = options.concurrency;
    const adaptive = options.adaptiveConcurrency;
    this.#aimd = adaptive
      ? new AimdLimit({
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
  }

  /** One adaptive step, from the rolling latency percentile and the work waiting for a slot. */
  adapt(latencyMs: number | undefined, demand: number, circuit: CircuitState): void {
    if (!this.#aimd || circuit !== 'closed') return;
    const decision = this.#aimd.update(latencyMs, demand);
    if (decision.changed) this.#set(decision.limit, decision.reason);
  }

  circuitChanged(state: CircuitState): void {
    if (state === 'half-open') this.#set(1, 'circuit-half-open');
    else if (state === 'closed') this.#set(this.#aimd?.limit ?? this.#configured, 'circuit-closed');
  }

  #set(to: number, reason: ConcurrencyChangedEvent['reason']): void {
    const from = this.#dispatcher.concurrency;
    if (from === to) return;
    this.#dispatcher.concurrency = to;
    this.#changed({ from, to, reason });
  }
}
