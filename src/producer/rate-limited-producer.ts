import { EventEmitter } from 'eventemitter3';
import type { ProducerRecord, RecordMetadata } from 'kafkajs';
import { ConfigError, ProducerClosedError, ProducerDrainTimeoutError, toError } from '../errors.js';
import { LAG_STATUSES, type LagStatus } from '../lag/lag-status.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { Admission } from './admission.js';
import { createPendingSend, type PendingSend, type QueuedMessage } from './buffer.js';
import { Dispatcher } from './dispatcher.js';
import type {
  EmitProducerEvent,
  ProducerErrorEvent,
  ProducerLimitsInForce,
  ProducerTarget,
  RateLimitedProducerEvents,
  RateLimitedProducerState,
} from './events.js';
export type {
  ProducerCloseOptions,
  ProducerFlushOptions,
  ProducerSendOptions,
  RateLimitedProducerDeps,
} from './options.js';
import { isLagStatus, LagFollower } from './lag-follower.js';
import { Throttle } from './throttle.js';
import { drain } from './drain.js';
import {
  resolveDrainTimeout,
  resolveProducerLimits,
  resolveProducerOptions,
  resolveSignal,
  type ProducerCloseOptions,
  type ProducerFlushOptions,
  type ProducerLimits,
  type ProducerSendOptions,
  type RateLimitedProducerDeps,
  type RateLimitedProducerOptions,
  type ResolvedProducerOptions,
} from './options.js';
import { validateRecord } from './record.js';

export type {
  ProducerBufferDrainedEvent,
  ProducerBufferFullEvent,
  ProducerErrorEvent,
  ProducerLimitsInForce,
  ProducerSendFailedEvent,
  ProducerTarget,
  ProducerThrottledEvent,
  RateLimitedProducerEvents,
  RateLimitedProducerState,
} from './events.js';
import { brand, isInstance } from '../shared/brand.js';
import { produceChannel } from '../shared/tracing.js';

/**
 * A KafkaJS producer behind limits: messages per second, bytes per second,
 * requests in flight, and a bounded buffer of waiting messages. A `send` that
 * does not fit waits up to `maxBlockMs` and then rejects with a typed error,
 * as the Java producer does with `buffer.memory` and `max.block.ms`. The rate
 * can follow a lag signal: slower at `warning`, no new sends at `critical`.
 *
 * Every `send` promise settles: with the broker's metadata, with the error
 * KafkaJS threw, or with a typed error of this library. Nothing is retried
 * here: KafkaJS already retries each `send` (its `retry` option), so a
 * failure that reaches us is final for that call.
 *
 * Inside, `Admission` (buffer, blocked sends, settling callers),
 * `Dispatcher` (token buckets, the concurrency gate, batches) and
 * `LagFollower` do the work; this class wires them and holds the lifecycle.
 *
 * @example
 * ```ts
 * const producer = kafka.producer();
 * await producer.connect();
 * await using limited = new RateLimitedProducer(producer, { messagesPerSecond: 500 });
 * await limited.send({ topic: 'events', messages: [{ value: 'hello' }] });
 * // leaving the scope closes it: delivers what was accepted, then disconnects
 * ```
 */
export class RateLimitedProducer extends EventEmitter<RateLimitedProducerEvents> {
  static {
    brand(this, 'RateLimitedProducer');
  }

  /** True for a RateLimitedProducer from any copy of the package (ESM and CommonJS, two versions). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(this, value);
  }

  readonly #producer: ProducerTarget;
  readonly #options: ResolvedProducerOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #admission: Admission;
  readonly #dispatcher: Dispatcher;
  readonly #lag: LagFollower | undefined;

  readonly #throttle: Throttle;
  #state: RateLimitedProducerState = 'open';
  /** `flush()`/`close()` calls under way: while any is, `lingerMs` is not waited. */
  #flushes = 0;
  #closePromise: Promise<void> | undefined;
  /** Aborted by a signal given to any `close()` call: ends the close's wait. */
  readonly #closeCut = new AbortController();
  readonly #closeListeners: (() => void)[] = [];

  constructor(
    producer: ProducerTarget,
    options: RateLimitedProducerOptions = {},
    deps: RateLimitedProducerDeps = {},
  ) {
    super();
    if (
      typeof producer !== 'object' ||
      producer === null ||
      typeof producer.send !== 'function' ||
      typeof producer.disconnect !== 'function'
    ) {
      throw new ConfigError(
        'producer',
        'a KafkaJS Producer (an object with send and disconnect)',
        producer,
      );
    }
    this.#producer = producer;
    this.#options = resolveProducerOptions(options);
    this.#clock = deps.clock ?? systemClock;
    this.#logger = deps.logger ?? silentLogger;
    const o = this.#options;
    const emit: EmitProducerEvent = (name, payload) => this.#emitSafely(name, payload);
    this.#admission = new Admission({
      options: o,
      clock: this.#clock,
      logger: this.#logger,
      emit,
      accepting: () => this.accepting,
      lagReason: () => this.#throttle.lagReason,
      queued: () => this.#dispatcher.schedule(),
    });
    this.#dispatcher = new Dispatcher(producer, this.#admission.buffer, o, this.#clock, {
      lingerWaived: () =>
        this.#flushes > 0 || this.#state !== 'open' || this.#admission.blocked > 0,
      bufferShrank: () => this.#admission.bufferShrank(),
      answered: (batch, outcome) => this.#admission.answered(batch, outcome),
    });
    this.#throttle = new Throttle(
      o,
      (limits) => this.#dispatcher.setLimits(limits),
      emit,
      this.#logger,
    );
    if (o.lagSignal !== undefined) {
      this.#lag = new LagFollower(
        o.lagSignal,
        (status) => this.#applyLagStatus(status, `lag signal reported ${status}`),
        (error) => this.#reportError(error, 'lag-signal'),
      );
      this.#lag.start();
    }
  }

  /** Messages accepted and not yet handed to `producer.send`. */
  get bufferedMessages(): number {
    return this.#admission.buffer.messages;
  }

  /** Bytes (key + value + headers) of {@link bufferedMessages}. */
  get bufferedBytes(): number {
    return this.#admission.buffer.bytes;
  }

  /** `producer.send` calls not answered yet. */
  get inFlightRequests(): number {
    return this.#dispatcher.inFlight;
  }

  /** `send` calls waiting for buffer space or for a critical lag status to clear. */
  get blockedSends(): number {
    return this.#admission.blocked;
  }

  /** `send` calls accepted and not settled yet: what `flush()` would wait for. */
  get pendingSends(): number {
    return this.#admission.unsettled;
  }

  get lagStatus(): LagStatus {
    return this.#throttle.lagStatus;
  }

  /** False while the lag status is critical. */
  get accepting(): boolean {
    return this.#throttle.accepting;
  }

  get state(): RateLimitedProducerState {
    return this.#state;
  }

  /** The limits in force now (frozen snapshot). */
  get limits(): ProducerLimitsInForce {
    return this.#throttle.limits;
  }

  /**
   * Queues a record and resolves once the broker acknowledged every one of
   * its messages, with the `RecordMetadata` of each `producer.send` call that
   * carried them (batching may put other callers' messages, and partitions,
   * in the same call). Same shape as KafkaJS `producer.send`; `acks`,
   * `timeout` and `compression` are kept: records are batched only with
   * records that have the same ones.
   *
   * Rejects with the KafkaJS error if a `producer.send` carrying its messages
   * failed (its other queued messages are then dropped, never sent), with
   * `ProducerBufferFullError` / `ProducerStoppedError` if it was not
   * accepted within `maxBlockMs`, with {@link ProducerClosedError} when the
   * producer is closing, with `signal.reason` when aborted before any of it
   * was handed to KafkaJS, and with a `ConfigError` for a malformed record.
   */
  send(record: ProducerRecord, options: ProducerSendOptions = {}): Promise<RecordMetadata[]> {
    return produceChannel.hasSubscribers
      ? produceChannel.tracePromise(() => this.#send(record, options), { record })
      : this.#send(record, options);
  }

  #send(record: ProducerRecord, options: ProducerSendOptions): Promise<RecordMetadata[]> {
    let sizes: number[];
    let signal: AbortSignal | undefined;
    try {
      sizes = validateRecord(record);
      signal = resolveSignal('options.signal', (options as { signal?: unknown } | null)?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    if (this.#state !== 'open') {
      return Promise.reject(
        new ProducerClosedError('The producer is closing; the record was not accepted.'),
      );
    }
    if (record.messages.length === 0) return Promise.resolve([]);

    return new Promise<RecordMetadata[]>((resolve, reject) => {
      const pending = createPendingSend(record, resolve, reject);
      let bytes = 0;
      const entries = record.messages.map((message, i): QueuedMessage => {
        const size = sizes[i] ?? 0;
        bytes += size;
        return { owner: pending, message, bytes: size, enqueuedAt: 0 };
      });
      if (signal !== undefined) this.#listen(pending, signal);
      this.#admission.offer(pending, entries, bytes);
    });
  }

  /**
   * Resolves once every `send` accepted before this call has settled (either
   * way). `lingerMs` is not waited while a flush is under way. Sends still
   * blocked waiting for buffer space are not accepted yet and not waited for.
   * With `timeoutMs`, rejects with {@link ProducerDrainTimeoutError} when the
   * time runs out; with `signal`, rejects with its reason when it aborts. In
   * both cases the records keep being delivered.
   */
  async flush(options: ProducerFlushOptions = {}): Promise<void> {
    const limit = resolveDrainTimeout('timeoutMs', options.timeoutMs, Number.POSITIVE_INFINITY);
    const signal = resolveSignal('signal', options.signal);
    signal?.throwIfAborted();
    const snapshot = this.#admission.snapshot();
    if (snapshot.length === 0) return;
    this.#flushes += 1;
    this.#dispatcher.schedule();
    try {
      const outcome = await drain(snapshot, limit, signal);
      if (outcome === 'aborted') throw (signal as AbortSignal).reason;
      if (outcome === 'timeout') {
        throw new ProducerDrainTimeoutError(
          'flush',
          limit,
          snapshot.filter((p) => !p.settled).length,
        );
      }
    } finally {
      this.#flushes -= 1;
    }
  }

  /**
   * Stops accepting sends, rejects those still blocked, delivers everything
   * accepted (bounded by `timeoutMs`, default `closeTimeoutMs`, and by
   * `signal`; what is left then is rejected with {@link ProducerClosedError},
   * and a timeout is reported as `producer.error`), stops the lag signal
   * and, with `disconnectOnClose`, disconnects the KafkaJS producer.
   * Idempotent: later calls return the same promise (a signal given to them
   * still cuts the wait short). Never rejects for a timeout or an abort: the
   * callers received the errors.
   */
  close(options: ProducerCloseOptions = {}): Promise<void> {
    let limit: number;
    let signal: AbortSignal | undefined;
    try {
      signal = resolveSignal('signal', options.signal);
      limit = resolveDrainTimeout('timeoutMs', options.timeoutMs, this.#options.closeTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal !== undefined && this.#state !== 'closed') this.#cutCloseOn(signal);
    this.#closePromise ??= this.#close(limit);
    return this.#closePromise;
  }

  /** `await using producer = new RateLimitedProducer(...)`: `close()` with its defaults. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Changes limits at run time; the keys given replace the configured ones
   * (the lag factor still applies on top). Emits `producer.throttled`.
   * Throws a `ConfigError` (and changes nothing) if a value is invalid.
   */
  setLimits(limits: ProducerLimits): void {
    this.#throttle.setLimits(resolveProducerLimits(limits));
  }

  /**
   * Pushes a lag status: `warning` multiplies the configured rates by
   * `warningRateFactor`; `critical` also stops accepting new sends (they wait
   * as for a full buffer, then reject with `ProducerStoppedError`); what is
   * already buffered is still delivered; `ok` restores everything. A status
   * equal to the current one changes nothing and emits nothing.
   */
  setLagStatus(status: LagStatus, reason?: string): void {
    if (!isLagStatus(status)) {
      throw new ConfigError(
        'status',
        `one of ${LAG_STATUSES.map((s) => `"${s}"`).join(', ')}`,
        status,
      );
    }
    this.#applyLagStatus(status, reason ?? `lag status set to ${status}`);
  }

  // ---- signals -------------------------------------------------------------

  #listen(pending: PendingSend, signal: AbortSignal): void {
    const onAbort = (): void => {
      if (this.#admission.abort(pending, signal.reason)) {
        this.#logger.debug({ topic: pending.topic }, 'producer send aborted before it was sent');
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    pending.detach = () => signal.removeEventListener('abort', onAbort);
  }

  #cutCloseOn(signal: AbortSignal): void {
    const cut = this.#closeCut;
    if (signal.aborted) {
      cut.abort(signal.reason);
      return;
    }
    const onAbort = (): void => cut.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    this.#closeListeners.push(() => signal.removeEventListener('abort', onAbort));
  }

  // ---- lag ---------------------------------------------------------------

  #applyLagStatus(status: LagStatus, reason: string): void {
    if (this.#state === 'closed' || !this.#throttle.setLagStatus(status, reason)) return;
    if (status !== 'critical') this.#admission.admitBlocked();
  }

  // ---- close ---------------------------------------------------------------

  async #close(timeoutMs: number): Promise<void> {
    this.#state = 'closing';
    this.#lag?.stop();
    this.#admission.rejectBlocked(
      () =>
        new ProducerClosedError(
          'The producer was closed while this send waited to be accepted; nothing was sent.',
        ),
    );
    this.#flushes += 1;
    this.#dispatcher.schedule();
    const cut = this.#closeCut.signal;
    const outcome = await drain(this.#admission.snapshot(), timeoutMs, cut);
    if (outcome === 'timeout') {
      const error = new ProducerDrainTimeoutError('close', timeoutMs, this.#admission.unsettled);
      this.#admission.abandonAll(`close() timed out after ${timeoutMs} ms`, error);
      this.#reportError(error, 'close');
    } else if (outcome === 'aborted') {
      this.#logger.info({ pendingSends: this.#admission.unsettled }, 'producer close aborted');
      this.#admission.abandonAll('close() was aborted', cut.reason);
    }
    for (const remove of this.#closeListeners.splice(0)) remove();
    this.#dispatcher.stop();
    if (this.#options.disconnectOnClose) {
      try {
        await this.#producer.disconnect();
      } catch (error) {
        this.#reportError(error, 'disconnect');
      }
    }
    this.#state = 'closed';
    this.#flushes -= 1;
    this.#logger.info({}, 'producer closed');
  }

  // ---- reporting -----------------------------------------------------------

  #reportError(error: unknown, during: ProducerErrorEvent['during']): void {
    const err = toError(error);
    this.#logger.warn({ err, during }, 'rate-limited producer error');
    /**
     * Something failed that no `send` caller can receive: the lag signal
     * threw (the last status stays in force), `close()` timed out (the
     * callers were rejected), the disconnect failed.
     * @event producer.error
     */
    this.#emitSafely('producer.error', { error: err, during });
  }

  /** Listeners run inside the producer's bookkeeping; one that throws must not corrupt it. */
  #emitSafely<K extends keyof RateLimitedProducerEvents>(
    name: K,
    payload: Parameters<RateLimitedProducerEvents[K]>[0],
  ): void {
    try {
      (this.emit as (n: K, p: typeof payload) => boolean)(name, payload);
    } catch (error) {
      this.#logger.error({ err: error }, 'a rate-limited producer event listener threw');
    }
  }
}
