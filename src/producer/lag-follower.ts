import { ConfigError } from '../errors.js';
import { LAG_STATUSES, type LagStatus } from '../lag/lag-status.js';
import type { ProducerLagSignal } from './options.js';

/**
 * Polls a lag signal and hands each valid status on. The next poll is
 * scheduled only after the previous one settled, so a slow admin call never
 * overlaps the next; a throw, a rejection or an unknown status is reported
 * and the last status stays in force.
 */
export class LagFollower {
  readonly #signal: Readonly<Required<ProducerLagSignal>>;
  readonly #onStatus: (status: LagStatus) => void;
  readonly #onError: (error: unknown) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(
    signal: Readonly<Required<ProducerLagSignal>>,
    onStatus: (status: LagStatus) => void,
    onError: (error: unknown) => void,
  ) {
    this.#signal = signal;
    this.#onStatus = onStatus;
    this.#onError = onError;
  }

  /** Polls now, then every `intervalMs` after each answer. */
  start(): void {
    void this.#poll();
  }

  /** No status is handed on after this, even from a poll still under way. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    if (this.#stopped) return;
    try {
      const status: unknown = await this.#signal.status();
      if (!isLagStatus(status)) {
        throw new ConfigError(
          'lagSignal.status()',
          `a result of ${LAG_STATUSES.map((s) => `"${s}"`).join(', ')}`,
          status,
        );
      }
      if (!this.#stopped) this.#onStatus(status);
    } catch (error) {
      if (!this.#stopped) this.#onError(error);
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#poll(), this.#signal.intervalMs);
    this.#timer.unref();
  }
}

export function isLagStatus(value: unknown): value is LagStatus {
  return (LAG_STATUSES as readonly unknown[]).includes(value);
}
