import type { LagStatus } from '../lag/lag-status.js';
import type { Logger } from '../shared/logger.js';
import type { EmitProducerEvent, ProducerLimitsInForce } from './events.js';
import type { ProducerLimits, ResolvedProducerOptions } from './options.js';

/**
 * The limits in force: the configured ones (changed by `setLimits()`),
 * times `warningRateFactor` while the lag status is not ok. Every change is
 * logged, announced as `producer.throttled`, and handed to `apply` (the
 * dispatcher's buckets and gate).
 */
export class Throttle {
  readonly #factor: number;
  readonly #apply: (limits: ProducerLimitsInForce) => void;
  readonly #emit: EmitProducerEvent;
  readonly #logger: Logger;
  #configured: Required<ProducerLimits>;
  #inForce: ProducerLimitsInForce;
  #lagStatus: LagStatus = 'ok';
  #lagReason: string | undefined;

  constructor(
    options: ResolvedProducerOptions,
    apply: (limits: ProducerLimitsInForce) => void,
    emit: EmitProducerEvent,
    logger: Logger,
  ) {
    this.#factor = options.warningRateFactor;
    this.#apply = apply;
    this.#emit = emit;
    this.#logger = logger;
    this.#configured = {
      messagesPerSecond: options.messagesPerSecond,
      bytesPerSecond: options.bytesPerSecond,
      maxInFlightRequests: options.maxInFlightRequests,
    };
    this.#inForce = Object.freeze({ ...this.#configured });
  }

  get limits(): ProducerLimitsInForce {
    return this.#inForce;
  }

  get lagStatus(): LagStatus {
    return this.#lagStatus;
  }

  /** The reason given with the current lag status. */
  get lagReason(): string | undefined {
    return this.#lagReason;
  }

  /** False while the lag status is critical. */
  get accepting(): boolean {
    return this.#lagStatus !== 'critical';
  }

  /** Replaces the configured limits named in `patch` (already validated). */
  setLimits(patch: Readonly<ProducerLimits>): void {
    this.#configured = { ...this.#configured, ...patch };
    const previous = this.#inForce;
    this.#update();
    this.#logger.info({ previous, limits: this.#inForce }, 'producer limits changed');
    this.#announce('limits', this.#lagStatus, `setLimits(${Object.keys(patch).join(', ')})`);
  }

  /** Applies a new lag status; returns false (and does nothing) when it is the current one. */
  setLagStatus(status: LagStatus, reason: string): boolean {
    if (status === this.#lagStatus) return false;
    const previous = this.#lagStatus;
    this.#lagStatus = status;
    this.#lagReason = reason;
    this.#update();
    this.#logger.info(
      { lagStatus: status, previous, reason, limits: this.#inForce },
      'producer lag status changed',
    );
    this.#announce('lag', previous, reason);
    return true;
  }

  #update(): void {
    const factor = this.#lagStatus === 'ok' ? 1 : this.#factor;
    this.#inForce = Object.freeze({
      messagesPerSecond: this.#configured.messagesPerSecond * factor,
      bytesPerSecond: this.#configured.bytesPerSecond * factor,
      maxInFlightRequests: this.#configured.maxInFlightRequests,
    });
    this.#apply(this.#inForce);
  }

  #announce(cause: 'lag' | 'limits', previousLagStatus: LagStatus, reason: string): void {
    /**
     * The rate in force changed, and why: a new lag status (`cause: 'lag'`;
     * `warning` slows down by `warningRateFactor`, `critical` also stops
     * accepting sends, `ok` restores) or `setLimits()`.
     * @event producer.throttled
     */
    this.#emit('producer.throttled', {
      ...this.#inForce,
      lagStatus: this.#lagStatus,
      previousLagStatus,
      accepting: this.accepting,
      cause,
      reason,
    });
  }
}
