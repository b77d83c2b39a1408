import Bottleneck from 'bottleneck';
import { EventEmitter } from 'eventemitter3';
import type { Message, Producer, ProducerRecord, RecordMetadata } from 'kafkajs';
import { systemClock, type Clock } from '../shared/clock.js';
import {
  ConfigError,
  ProducerBufferFullError,
  ProducerClosedError,
  ProducerDrainTimeoutError,
  ProducerStoppedError,
  toError,
} from '../errors.js';
import { LAG_STATUSES, type LagStatus } from '../lag/lag-status.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import {
  resolveProducerLimits,
  resolveProducerOptions,
  type ProducerLimits,
  type RateLimitedProducerOptions,
  type ResolvedProducerOptions,
} from './options.js';
import { duration } from '../shared/validate.js';

/**
 * How the limits are enforced, and why bottleneck only does part of it.
 *
 * - Concurrency (`maxInFlightRequests`) goes through bottleneck
 *   (`maxConcurrent`, changed at run time with `updateSettings`), behind the
 *   small {@link ConcurrencyGate} adapter below.
 * - Messages/s and bytes/s are two {@link TokenBucket}s of our own. Bottleneck
 *   cannot express them cleanly: (1) its reservoir is refilled by a heartbeat
 *   (250 ms by default) that restarts the interval from the tick that noticed
 *   it, so the rate is quantised and drifts low: measured with
 *   bottleneck 2.19.5 and a 100 msg/s reservoir (10 every 100 ms), 39 msg/s
 *   with the default heartbeat, 87 with a 100 ms heartbeat, 96 with 10 ms;
 *   (2) a job's weight (here: the batch size) is fixed when it is scheduled,
 *   but a batch must be sized by the tokens available when it is released,
 *   or the batch cannot grow while it waits; (3) a job's weight also counts
 *   against `maxConcurrent`, so one limiter cannot bound messages per second
 *   and requests in flight at once.
 *
 * One dispatcher forms batches: it holds one pending bottleneck job, or more
 * while several full batches wait and the limits let them go now; when
 * bottleneck grants a slot, the job waits for the tokens (and `lingerMs`),
 * takes the largest batch the tokens and batch limits allow, asks for the
 * next slot and sends. Batches are therefore formed as late as
 * possible and grow with the backlog, the way the Java producer's
 * `linger.ms` / `batch.size` batch.
 */

/** What the producer needs from KafkaJS: a `Producer` fits; tests pass a fake. */
export type ProducerTarget = Pick<Producer, 'send' | 'disconnect'>;

export interface RateLimitedProducerDeps {
  /** @default performance.now() */
  readonly clock?: Clock;
  /** @default a logger that drops everything */
  readonly logger?: Logger;
}

export type RateLimitedProducerState = 'open' | 'closing' | 'closed';

/** The limits in force: the configured ones, times `warningRateFactor` while the lag is not ok. */
export interface ProducerLimitsInForce {
  readonly messagesPerSecond: number;
  readonly bytesPerSecond: number;
  readonly maxInFlightRequests: number;
}

export interface ProducerThrottledEvent extends ProducerLimitsInForce {
  readonly lagStatus: LagStatus;
  readonly previousLagStatus: LagStatus;
  /** False while the lag status is critical: new sends wait (up to `maxBlockMs`). */
  readonly accepting: boolean;
  /** `lag`: a new lag status arrived. `limits`: `setLimits()` was called. */
  readonly cause: 'lag' | 'limits';
  /** The reason given with the lag status, or what changed. */
  readonly reason: string;
}

export interface ProducerBufferFullEvent {
  readonly bufferedMessages: number;
  readonly bufferedBytes: number;
  readonly maxBufferedMessages: number;
  readonly maxBufferedBytes: number;
  /** True when the send that did not fit waits (`blockOnFull`); false when it was rejected at once. */
  readonly blocking: boolean;
}

export interface ProducerBufferDrainedEvent {
  /** Milliseconds since `producer.buffer-full`. */
  readonly fullForMs: number;
  /** Sends still waiting for admission (only while a critical lag status stops the producer). */
  readonly blockedSends: number;
}

export interface ProducerSendFailedEvent {
  readonly topic: string;
  /** Messages in the failed `producer.send` call. */
  readonly messages: number;
  readonly bytes: number;
  /** Caller `send()` promises rejected because of it. */
  readonly sends: number;
  /** What KafkaJS threw, after its own retries; the callers receive the same error. */
  readonly error: Error;
}

export interface ProducerErrorEvent {
  readonly error: Error;
  /** What the producer was doing. */
  readonly during: 'lag-signal' | 'close' | 'disconnect' | 'dispatch';
}

/**
 * Every event a {@link RateLimitedProducer} emits, with its one payload
 * object: `producer.on('producer.throttled', (e) => ...)`.
 */
export interface RateLimitedProducerEvents {
  /** The rate in force changed: a new lag status or `setLimits()`. */
  'producer.throttled': (event: ProducerThrottledEvent) => void;
  /** A send did not fit in the buffer. Once per episode, until `producer.buffer-drained`. */
  'producer.buffer-full': (event: ProducerBufferFullEvent) => void;
  /** The buffer emptied after `producer.buffer-full`. */
  'producer.buffer-drained': (event: ProducerBufferDrainedEvent) => void;
  /** A `producer.send` call failed; its callers were rejected with the error. */
  'producer.send-failed': (event: ProducerSendFailedEvent) => void;
  /** Something failed that no caller can receive: the lag signal, the close, the disconnect. */
  'producer.error': (event: ProducerErrorEvent) => void;
}

/** One caller's `send()` once it is accepted into the buffer. */
interface PendingSend {
  readonly topic: string;
  readonly record: ProducerRecord;
  /** Records share a `producer.send` only with the same topic and the same acks, timeout and compression. */
  readonly batchKey: string;
  /** Its messages still in the buffer. */
  queued: number;
  /** `producer.send` calls carrying some of its messages and not answered yet. */
  inFlight: number;
  readonly results: RecordMetadata[];
  settled: boolean;
  readonly resolve: (metadata: RecordMetadata[]) => void;
  readonly reject: (error: unknown) => void;
  /** Resolves once settled either way; `flush()` and `close()` wait on it. */
  readonly done: Promise<void>;
  readonly markDone: () => void;
}

interface QueuedMessage {
  readonly owner: PendingSend;
  readonly message: Message;
  readonly bytes: number;
  enqueuedAt: number;
}

/** A send that did not fit and waits for space (or for the producer to resume). */
interface Waiter {
  readonly pending: PendingSend;
  readonly entries: QueuedMessage[];
  readonly messages: number;
  readonly bytes: number;
  readonly since: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Batch {
  readonly topic: string;
  readonly record: ProducerRecord;
  readonly owners: ReadonlySet<PendingSend>;
  readonly messages: number;
  readonly bytes: number;
}

/** Below this many milliseconds of waiting a send goes now: the bucket accounts for the difference. */
const READY_WITHIN_MS = 1;

/**
 * A token bucket with continuous refill, "pay later" as in Guava's
 * `SmoothBursty` RateLimiter: a send may go while the balance is not
 * negative and may take it below zero (so one message larger than the whole
 * bucket still goes, alone), and the next send waits until the debt is
 * repaid. It starts empty and holds at most one second of tokens, so the
 * long-run rate is exact and a burst after an idle period is at most one
 * second's worth.
 * https://github.com/google/guava/blob/master/guava/src/com/google/common/util/concurrent/SmoothRateLimiter.java
 */
class TokenBucket {
  #perMs = 0;
  #capacity = 0;
  #tokens = 0;
  #updatedAt: number;

  constructor(perSecond: number, now: number) {
    this.#updatedAt = now;
    this.setRate(perSecond, now);
  }

  get unlimited(): boolean {
    return this.#perMs === Number.POSITIVE_INFINITY;
  }

  /** A new rate keeps the balance (a debt is repaid at the new rate) within the new capacity. */
  setRate(perSecond: number, now: number): void {
    this.#refill(now);
    this.#perMs = perSecond / 1000;
    this.#capacity = perSecond;
    if (this.unlimited) this.#tokens = 0;
    else this.#tokens = Math.min(this.#tokens, this.#capacity);
  }

  available(now: number): number {
    if (this.unlimited) return Number.POSITIVE_INFINITY;
    this.#refill(now);
    return this.#tokens;
  }

  msUntilReady(now: number): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#perMs;
  }

  take(amount: number, now: number): void {
    if (this.unlimited) return;
    this.#refill(now);
    this.#tokens -= amount;
  }

  #refill(now: number): void {
    if (!this.unlimited && now > this.#updatedAt) {
      this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updatedAt) * this.#perMs);
    }
    this.#updatedAt = Math.max(this.#updatedAt, now);
  }
}

/**
 * The bottleneck adapter: a concurrency gate whose size can change at run
 * time. Bottleneck's types are hand-kept and it has not changed since 2020,
 * so nothing of it leaks past this class.
 */
class ConcurrencyGate {
  readonly #limiter: Bottleneck;

  constructor(maxConcurrent: number, logger: Logger) {
    this.#limiter = new Bottleneck({ maxConcurrent });
    // Bottleneck reports errors thrown by its own event listeners here; we register none.
    this.#limiter.on('error', (error: unknown) => {
      logger.error({ err: error }, 'bottleneck reported an error');
    });
  }

  /** Runs `task` once a slot is free; the slot is held until the task's promise settles. */
  run(task: () => Promise<void>): Promise<void> {
    return this.#limiter.schedule(task);
  }

  setMaxConcurrent(maxConcurrent: number): void {
    this.#limiter.updateSettings({ maxConcurrent });
  }

  /** Drops a job still waiting for a slot (its `run` promise rejects) and waits for the running one. */
  async stop(): Promise<void> {
    await this.#limiter.stop({ dropWaitingJobs: true });
  }
}

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
 * @example
 * ```ts
 * const producer = kafka.producer();
 * await producer.connect();
 * const limited = new RateLimitedProducer(producer, { messagesPerSecond: 500 });
 * await limited.send({ topic: 'events', messages: [{ value: 'hello' }] });
 * await limited.close(); // delivers what was accepted, then disconnects
 * ```
 */
export class RateLimitedProducer extends EventEmitter<RateLimitedProducerEvents> {
  readonly #producer: ProducerTarget;
  readonly #options: ResolvedProducerOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #gate: ConcurrencyGate;
  readonly #messageBucket: TokenBucket;
  readonly #byteBucket: TokenBucket;

  #configured: Required<ProducerLimits>;
  #inForce: ProducerLimitsInForce;
  #lagStatus: LagStatus = 'ok';
  #lagReason: string | undefined;
  #state: RateLimitedProducerState = 'open';

  #queue: QueuedMessage[] = [];
  #bufferedMessages = 0;
  #bufferedBytes = 0;
  readonly #waiters: Waiter[] = [];
  readonly #unsettled = new Set<PendingSend>();
  #inFlight = 0;
  #fullSince: number | undefined;
  /** `flush()`/`close()` calls under way: while any is, `lingerMs` is not waited. */
  #flushes = 0;

  /** Slots asked of bottleneck that have not formed their batch yet. */
  #slotsRequested = 0;
  #wakeTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #lagTimer: ReturnType<typeof setTimeout> | undefined;
  #closePromise: Promise<void> | undefined;
  #abandon!: () => void;
  /** Resolves when `close()` gives up on what is in flight, so no slot waits on a stalled `send`. */
  readonly #abandoned = new Promise<void>((resolve) => {
    this.#abandon = resolve;
  });

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
    this.#configured = {
      messagesPerSecond: o.messagesPerSecond,
      bytesPerSecond: o.bytesPerSecond,
      maxInFlightRequests: o.maxInFlightRequests,
    };
    this.#inForce = Object.freeze({ ...this.#configured });
    const now = this.#clock.now();
    this.#messageBucket = new TokenBucket(o.messagesPerSecond, now);
    this.#byteBucket = new TokenBucket(o.bytesPerSecond, now);
    this.#gate = new ConcurrencyGate(o.maxInFlightRequests, this.#logger);
    if (o.lagSignal !== undefined) void this.#pollLag();
  }

  /** Messages accepted and not yet handed to `producer.send`. */
  get bufferedMessages(): number {
    return this.#bufferedMessages;
  }

  /** Bytes (key + value + headers) of {@link bufferedMessages}. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** `producer.send` calls not answered yet. */
  get inFlightRequests(): number {
    return this.#inFlight;
  }

  /** `send` calls waiting for buffer space or for a critical lag status to clear. */
  get blockedSends(): number {
    return this.#waiters.length;
  }

  /** `send` calls accepted and not settled yet: what `flush()` would wait for. */
  get pendingSends(): number {
    return this.#unsettled.size;
  }

  get lagStatus(): LagStatus {
    return this.#lagStatus;
  }

  /** False while the lag status is critical. */
  get accepting(): boolean {
    return this.#lagStatus !== 'critical';
  }

  get state(): RateLimitedProducerState {
    return this.#state;
  }

  /** The limits in force now (frozen snapshot). */
  get limits(): ProducerLimitsInForce {
    return this.#inForce;
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
   * {@link ProducerBufferFullError} / {@link ProducerStoppedError} if it was
   * not accepted within `maxBlockMs`, with {@link ProducerClosedError} when
   * the producer is closing, and with a `ConfigError` for a malformed record.
   */
  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    let sizes: number[];
    try {
      sizes = validateRecord(record);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#state !== 'open') {
      return Promise.reject(
        new ProducerClosedError('The producer is closing; the record was not accepted.'),
      );
    }
    if (record.messages.length === 0) return Promise.resolve([]);

    return new Promise<RecordMetadata[]>((resolve, reject) => {
      let markDone!: () => void;
      const done = new Promise<void>((r) => {
        markDone = r;
      });
      const pending: PendingSend = {
        topic: record.topic,
        record,
        batchKey: `${String(record.acks)}|${String(record.timeout)}|${String(record.compression)}`,
        queued: 0,
        inFlight: 0,
        results: [],
        settled: false,
        resolve,
        reject,
        done,
        markDone,
      };
      let bytes = 0;
      const entries = record.messages.map((message, i): QueuedMessage => {
        const size = sizes[i] ?? 0;
        bytes += size;
        return { owner: pending, message, bytes: size, enqueuedAt: 0 };
      });

      if (this.#waiters.length === 0 && this.#canAdmit(entries.length, bytes)) {
        this.#enqueue(pending, entries);
        return;
      }
      const now = this.#clock.now();
      const blocking = this.#options.blockOnFull && this.#options.maxBlockMs > 0;
      if (this.accepting) this.#noteBufferFull(now, blocking);
      if (!blocking) {
        reject(this.#notAcceptedError(0));
        return;
      }
      const waiter: Waiter = {
        pending,
        entries,
        messages: entries.length,
        bytes,
        since: now,
        timer: undefined,
      };
      if (this.#options.maxBlockMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = setTimeout(() => this.#expire(waiter), this.#options.maxBlockMs);
        waiter.timer.unref();
      }
      this.#waiters.push(waiter);
    });
  }

  /**
   * Resolves once every `send` accepted before this call has settled (either
   * way). `lingerMs` is not waited while a flush is under way. Sends still
   * blocked waiting for buffer space are not accepted yet and not waited for.
   * With `timeoutMs`, rejects with {@link ProducerDrainTimeoutError} when the
   * time runs out; the records keep being delivered.
   */
  async flush({ timeoutMs }: { readonly timeoutMs?: number } = {}): Promise<void> {
    const limit = duration('timeoutMs', timeoutMs, Number.POSITIVE_INFINITY, {
      min: 0,
      allowInfinity: true,
    });
    const snapshot = [...this.#unsettled];
    if (snapshot.length === 0) return;
    this.#flushes += 1;
    this.#kick();
    try {
      if (!(await this.#settledWithin(snapshot, limit))) {
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
   * accepted (bounded by `timeoutMs`, default `closeTimeoutMs`; what is left
   * then is rejected with {@link ProducerClosedError} and reported as
   * `producer.error`), stops the lag signal and, with `disconnectOnClose`,
   * disconnects the KafkaJS producer. Idempotent: later calls return the
   * same promise. Never rejects for a timeout: the callers received the errors.
   */
  close({ timeoutMs }: { readonly timeoutMs?: number } = {}): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    let limit: number;
    try {
      limit = duration('timeoutMs', timeoutMs, this.#options.closeTimeoutMs, {
        min: 0,
        allowInfinity: true,
      });
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closePromise = this.#close(limit);
    return this.#closePromise;
  }

  /**
   * Changes limits at run time; the keys given replace the configured ones
   * (the lag factor still applies on top). Emits `producer.throttled`.
   * Throws a `ConfigError` (and changes nothing) if a value is invalid.
   */
  setLimits(limits: ProducerLimits): void {
    const patch = resolveProducerLimits(limits);
    this.#configured = { ...this.#configured, ...patch };
    const previous = this.#inForce;
    this.#applyLimits();
    const changed = Object.keys(patch).join(', ');
    this.#logger.info({ previous, limits: this.#inForce }, 'producer limits changed');
    this.#emitThrottled('limits', this.#lagStatus, `setLimits(${changed})`);
  }

  /**
   * Pushes a lag status: `warning` multiplies the configured rates by
   * `warningRateFactor`; `critical` also stops accepting new sends (they wait
   * as for a full buffer, then reject with {@link ProducerStoppedError});
   * what is already buffered is still delivered; `ok` restores everything.
   * A status equal to the current one changes nothing and emits nothing.
   */
  setLagStatus(status: LagStatus, reason?: string): void {
    if (!(LAG_STATUSES as readonly unknown[]).includes(status)) {
      throw new ConfigError(
        'status',
        `one of ${LAG_STATUSES.map((s) => `"${s}"`).join(', ')}`,
        status,
      );
    }
    this.#applyLagStatus(status, reason ?? `lag status set to ${status}`);
  }

  // ---- admission ----------------------------------------------------------

  #canAdmit(messages: number, bytes: number): boolean {
    if (!this.accepting) return false;
    // A record larger than the whole buffer goes in alone, or it could never go.
    if (this.#bufferedMessages === 0) return true;
    return (
      this.#bufferedMessages + messages <= this.#options.maxBufferedMessages &&
      this.#bufferedBytes + bytes <= this.#options.maxBufferedBytes
    );
  }

  #enqueue(pending: PendingSend, entries: QueuedMessage[]): void {
    const now = this.#clock.now();
    for (const entry of entries) {
      entry.enqueuedAt = now;
      this.#queue.push(entry);
      this.#bufferedBytes += entry.bytes;
    }
    this.#bufferedMessages += entries.length;
    pending.queued = entries.length;
    this.#unsettled.add(pending);
    this.#kick();
    this.#pump();
  }

  /** Admits blocked sends in arrival order while they fit. */
  #admitWaiters(): void {
    while (this.#waiters.length > 0) {
      const waiter = this.#waiters[0];
      if (waiter === undefined || !this.#canAdmit(waiter.messages, waiter.bytes)) break;
      this.#waiters.shift();
      clearTimeout(waiter.timer);
      this.#enqueue(waiter.pending, waiter.entries);
    }
  }

  #expire(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index === -1) return;
    this.#waiters.splice(index, 1);
    const waited = Math.round(this.#clock.now() - waiter.since);
    const error = this.#notAcceptedError(waited);
    this.#logger.debug(
      { code: error.code, waitedMs: waited, topic: waiter.pending.topic },
      'producer send not accepted',
    );
    waiter.pending.reject(error);
    // The expired send may have been the one holding back smaller ones behind it.
    this.#admitWaiters();
  }

  #notAcceptedError(waitedMs: number): ProducerBufferFullError | ProducerStoppedError {
    if (!this.accepting) return new ProducerStoppedError({ waitedMs, reason: this.#lagReason });
    return new ProducerBufferFullError({
      waitedMs,
      bufferedMessages: this.#bufferedMessages,
      bufferedBytes: this.#bufferedBytes,
    });
  }

  #noteBufferFull(now: number, blocking: boolean): void {
    if (this.#fullSince !== undefined) return;
    this.#fullSince = now;
    this.#logger.debug(
      { bufferedMessages: this.#bufferedMessages, bufferedBytes: this.#bufferedBytes },
      'producer buffer full',
    );
    this.#emitSafely(() => {
      /**
       * A send did not fit in the buffer: it waits up to `maxBlockMs`
       * (`blocking`) or was rejected at once. Emitted once until the buffer
       * has drained.
       * @event producer.buffer-full
       */
      this.emit('producer.buffer-full', {
        bufferedMessages: this.#bufferedMessages,
        bufferedBytes: this.#bufferedBytes,
        maxBufferedMessages: this.#options.maxBufferedMessages,
        maxBufferedBytes: this.#options.maxBufferedBytes,
        blocking,
      });
    });
  }

  /** After messages left the buffer: let blocked sends in, and end a full episode once it is empty. */
  #afterBufferShrank(): void {
    this.#admitWaiters();
    if (this.#bufferedMessages === 0 && this.#fullSince !== undefined) {
      const fullForMs = Math.round(this.#clock.now() - this.#fullSince);
      this.#fullSince = undefined;
      this.#emitSafely(() => {
        /**
         * The buffer emptied after `producer.buffer-full`: the producer keeps
         * up with what is sent to it again.
         * @event producer.buffer-drained
         */
        this.emit('producer.buffer-drained', { fullForMs, blockedSends: this.#waiters.length });
      });
    }
  }

  // ---- dispatch -----------------------------------------------------------

  /**
   * Asks bottleneck for slots: one while anything waits and, up to the
   * in-flight limit, one more for each further full batch waiting that the
   * limits let go now. Bottleneck takes a few timer turns to grant a slot.
   * Asked for one after another, those turns left the process idle about a
   * fifth of the time when sending full batches without a rate limit; asked
   * for side by side, more of them pass together (benchmark scenario 5:
   * 0.80 -> 0.85 of plain KafkaJS).
   */
  #pump(): void {
    while (this.#queue.length > 0 && this.#state !== 'closed' && this.#wantsSlot()) {
      this.#slotsRequested += 1;
      this.#gate
        .run(() => this.#useSlot())
        .catch((error: unknown) => {
          // Only a job dropped by the gate's stop() at close lands here (the queue is empty then).
          this.#slotsRequested -= 1;
          if (this.#state === 'open') this.#reportError(error, 'dispatch');
        });
    }
  }

  #wantsSlot(): boolean {
    const asked = this.#slotsRequested;
    if (asked === 0) return true;
    if (asked >= this.#inForce.maxInFlightRequests) return false;
    const o = this.#options;
    const backlog =
      this.#bufferedMessages > asked * o.maxBatchMessages ||
      this.#bufferedBytes > asked * o.maxBatchBytes;
    return backlog && this.#readyInMs(this.#clock.now()) < READY_WITHIN_MS;
  }

  /** Runs inside a bottleneck slot: wait for tokens, form the batch, send it. */
  async #useSlot(): Promise<void> {
    let delivery: Promise<void> | undefined;
    try {
      // One slot at a time waits for tokens (or the linger): another one,
      // granted meanwhile, is not needed and goes back.
      if (this.#wake === undefined || this.#readyInMs(this.#clock.now()) < READY_WITHIN_MS) {
        await this.#waitUntilReady();
        const batch = this.#takeBatch(this.#clock.now());
        if (batch !== undefined) delivery = this.#deliver(batch);
      }
    } catch (error) {
      this.#reportError(error, 'dispatch');
    } finally {
      this.#slotsRequested -= 1;
    }
    this.#pump();
    if (delivery !== undefined) await Promise.race([delivery, this.#abandoned]);
  }

  async #waitUntilReady(): Promise<void> {
    for (;;) {
      if (this.#queue.length === 0) return;
      const delay = this.#readyInMs(this.#clock.now());
      if (delay < READY_WITHIN_MS) return;
      await this.#sleep(delay);
    }
  }

  #readyInMs(now: number): number {
    let delay = Math.max(this.#messageBucket.msUntilReady(now), this.#byteBucket.msUntilReady(now));
    const head = this.#queue[0];
    const o = this.#options;
    // As the Java producer: a full batch, a flush, a close or a blocked send end the linger.
    const lingerWaived =
      this.#flushes > 0 ||
      this.#state !== 'open' ||
      this.#waiters.length > 0 ||
      this.#bufferedMessages >= o.maxBatchMessages ||
      this.#bufferedBytes >= o.maxBatchBytes;
    if (head !== undefined && o.lingerMs > 0 && !lingerWaived) {
      delay = Math.max(delay, head.enqueuedAt + o.lingerMs - now);
    }
    return delay;
  }

  /** Sleeps `ms`, or less when {@link kick} signals that something changed. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        if (this.#wake === wake) {
          this.#wake = undefined;
          this.#wakeTimer = undefined;
        }
        resolve();
      };
      const timer = setTimeout(wake, Math.ceil(ms));
      timer.unref();
      this.#wake = wake;
      this.#wakeTimer = timer;
    });
  }

  #kick(): void {
    this.#wake?.();
  }

  /**
   * Takes the next batch: the head message, then following messages of the
   * same topic and batch key while the batch limits and the tokens allow.
   * Messages of other topics are skipped over (they keep their place); a
   * message of the same topic with other settings ends the batch, so the
   * order within a topic is kept.
   */
  #takeBatch(now: number): Batch | undefined {
    const queue = this.#queue;
    const head = queue[0];
    if (head === undefined) return undefined;
    const o = this.#options;
    const messageTokens = this.#messageBucket.available(now);
    const byteTokens = this.#byteBucket.available(now);
    const taken: QueuedMessage[] = [];
    const skipped: QueuedMessage[] = [];
    let bytes = 0;
    let index = 0;
    for (; index < queue.length; index += 1) {
      const entry = queue[index];
      if (entry === undefined) break;
      if (entry.owner.topic !== head.owner.topic) {
        skipped.push(entry);
        continue;
      }
      if (entry.owner.batchKey !== head.owner.batchKey) break;
      const count = taken.length + 1;
      const size = bytes + entry.bytes;
      // The head always goes (the buckets may go into debt for it); the rest only within the limits.
      if (
        taken.length > 0 &&
        (count > o.maxBatchMessages ||
          count > messageTokens ||
          size > o.maxBatchBytes ||
          size > byteTokens)
      ) {
        break;
      }
      taken.push(entry);
      bytes = size;
    }
    this.#queue = skipped.length === 0 ? queue.slice(index) : skipped.concat(queue.slice(index));

    this.#messageBucket.take(taken.length, now);
    this.#byteBucket.take(bytes, now);
    this.#bufferedMessages -= taken.length;
    this.#bufferedBytes -= bytes;
    const owners = new Set<PendingSend>();
    for (const entry of taken) {
      entry.owner.queued -= 1;
      owners.add(entry.owner);
    }
    for (const owner of owners) owner.inFlight += 1;

    const { acks, timeout, compression } = head.owner.record;
    const record: ProducerRecord = {
      topic: head.owner.topic,
      messages: taken.map((e) => e.message),
    };
    if (acks !== undefined) record.acks = acks;
    if (timeout !== undefined) record.timeout = timeout;
    if (compression !== undefined) record.compression = compression;
    this.#afterBufferShrank();
    return { topic: head.owner.topic, record, owners, messages: taken.length, bytes };
  }

  /** Sends one batch and settles its callers; never rejects. */
  async #deliver(batch: Batch): Promise<void> {
    this.#inFlight += 1;
    let metadata: RecordMetadata[] = [];
    let failure: { error: unknown } | undefined;
    try {
      const result = await this.#producer.send(batch.record);
      if (Array.isArray(result)) metadata = result;
    } catch (error) {
      failure = { error };
    } finally {
      this.#inFlight -= 1;
    }

    if (failure === undefined) {
      for (const owner of batch.owners) {
        owner.inFlight -= 1;
        if (owner.settled) continue;
        owner.results.push(...metadata);
        if (owner.queued === 0 && owner.inFlight === 0) this.#settle(owner, undefined);
      }
      return;
    }

    const error = toError(failure.error);
    let sends = 0;
    for (const owner of batch.owners) {
      owner.inFlight -= 1;
      if (!owner.settled) sends += 1;
    }
    this.#logger.warn(
      { err: error, topic: batch.topic, messages: batch.messages },
      'producer send failed',
    );
    this.#emitSafely(() => {
      /**
       * A `producer.send` call failed after KafkaJS's own retries. Its
       * callers are rejected with the same error; their messages still
       * queued are dropped. Nothing is retried here.
       * @event producer.send-failed
       */
      this.emit('producer.send-failed', {
        topic: batch.topic,
        messages: batch.messages,
        bytes: batch.bytes,
        sends,
        error,
      });
    });
    for (const owner of batch.owners) {
      if (!owner.settled) this.#settle(owner, { error: failure.error });
    }
  }

  /** Settles one caller; on failure its messages still queued are dropped (the caller was told). */
  #settle(pending: PendingSend, failure: { readonly error: unknown } | undefined): void {
    if (pending.settled) return;
    pending.settled = true;
    this.#unsettled.delete(pending);
    if (failure === undefined) {
      pending.resolve(pending.results);
    } else {
      if (pending.queued > 0) this.#dropQueued(pending);
      pending.reject(failure.error);
    }
    pending.markDone();
  }

  #dropQueued(pending: PendingSend): void {
    const kept: QueuedMessage[] = [];
    for (const entry of this.#queue) {
      if (entry.owner === pending) {
        this.#bufferedMessages -= 1;
        this.#bufferedBytes -= entry.bytes;
      } else {
        kept.push(entry);
      }
    }
    this.#queue = kept;
    pending.queued = 0;
    this.#afterBufferShrank();
  }

  // ---- limits and lag -----------------------------------------------------

  #applyLimits(): void {
    const factor = this.#lagStatus === 'ok' ? 1 : this.#options.warningRateFactor;
    const now = this.#clock.now();
    const inForce: ProducerLimitsInForce = Object.freeze({
      messagesPerSecond: this.#configured.messagesPerSecond * factor,
      bytesPerSecond: this.#configured.bytesPerSecond * factor,
      maxInFlightRequests: this.#configured.maxInFlightRequests,
    });
    this.#messageBucket.setRate(inForce.messagesPerSecond, now);
    this.#byteBucket.setRate(inForce.bytesPerSecond, now);
    if (inForce.maxInFlightRequests !== this.#inForce.maxInFlightRequests) {
      this.#gate.setMaxConcurrent(inForce.maxInFlightRequests);
    }
    this.#inForce = inForce;
    this.#kick();
  }

  #applyLagStatus(status: LagStatus, reason: string): void {
    if (this.#state === 'closed' || status === this.#lagStatus) return;
    const previous = this.#lagStatus;
    this.#lagStatus = status;
    this.#lagReason = reason;
    this.#applyLimits();
    this.#logger.info(
      { lagStatus: status, previous, reason, limits: this.#inForce },
      'producer lag status changed',
    );
    this.#emitThrottled('lag', previous, reason);
    if (status !== 'critical') this.#admitWaiters();
  }

  #emitThrottled(cause: 'lag' | 'limits', previousLagStatus: LagStatus, reason: string): void {
    const payload: ProducerThrottledEvent = {
      ...this.#inForce,
      lagStatus: this.#lagStatus,
      previousLagStatus,
      accepting: this.accepting,
      cause,
      reason,
    };
    this.#emitSafely(() => {
      /**
       * The rate in force changed, and why: a new lag status (`cause:
       * 'lag'`; `warning` slows down by `warningRateFactor`, `critical`
       * also stops accepting sends, `ok` restores) or `setLimits()`.
       * @event producer.throttled
       */
      this.emit('producer.throttled', payload);
    });
  }

  /** Polls `lagSignal.status`; the next poll is scheduled only after this one settled. */
  async #pollLag(): Promise<void> {
    this.#lagTimer = undefined;
    const signal = this.#options.lagSignal;
    if (signal === undefined || this.#state !== 'open') return;
    try {
      const status: unknown = await signal.status();
      if (!(LAG_STATUSES as readonly unknown[]).includes(status)) {
        throw new ConfigError(
          'lagSignal.status()',
          `a result of ${LAG_STATUSES.map((s) => `"${s}"`).join(', ')}`,
          status,
        );
      }
      if (this.#state === 'open')
        this.#applyLagStatus(status as LagStatus, `lag signal reported ${String(status)}`);
    } catch (error) {
      if (this.#state === 'open') this.#reportError(error, 'lag-signal');
    }
    if (this.#state !== 'open') return;
    this.#lagTimer = setTimeout(() => void this.#pollLag(), signal.intervalMs);
    this.#lagTimer.unref();
  }

  // ---- close --------------------------------------------------------------

  async #close(timeoutMs: number): Promise<void> {
    this.#state = 'closing';
    clearTimeout(this.#lagTimer);
    this.#lagTimer = undefined;
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.pending.reject(
        new ProducerClosedError(
          'The producer was closed while this send waited to be accepted; nothing was sent.',
        ),
      );
    }
    this.#flushes += 1;
    this.#kick();
    const snapshot = [...this.#unsettled];
    if (!(await this.#settledWithin(snapshot, timeoutMs))) {
      const error = new ProducerDrainTimeoutError('close', timeoutMs, this.#unsettled.size);
      this.#abandonAll(error);
      this.#reportError(error, 'close');
    }
    this.#abandon();
    this.#wake?.();
    clearTimeout(this.#wakeTimer);
    try {
      await this.#gate.stop();
    } catch (error) {
      this.#logger.debug({ err: error }, 'bottleneck stop failed');
    }
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

  /** After a close timeout: rejects every caller not settled yet; their queued messages are never sent. */
  #abandonAll(cause: ProducerDrainTimeoutError): void {
    const pending = [...this.#unsettled];
    this.#queue = [];
    this.#bufferedMessages = 0;
    this.#bufferedBytes = 0;
    for (const p of pending) {
      const mayHaveBeenWritten = p.inFlight > 0;
      p.queued = 0;
      this.#settle(p, {
        error: new ProducerClosedError(
          mayHaveBeenWritten
            ? `close() timed out after ${cause.timeoutMs} ms while this record was being sent; it may or may not have been written.`
            : `close() timed out after ${cause.timeoutMs} ms before this record was sent; it was not written.`,
          { mayHaveBeenWritten, cause },
        ),
      });
    }
    this.#afterBufferShrank();
  }

  /** True when every one of `sends` settled within `timeoutMs`. */
  #settledWithin(sends: readonly PendingSend[], timeoutMs: number): Promise<boolean> {
    const all = Promise.all(sends.map((p) => p.done)).then(() => true);
    if (timeoutMs === Number.POSITIVE_INFINITY) return all;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      void all.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  // ---- reporting ----------------------------------------------------------

  #reportError(error: unknown, during: ProducerErrorEvent['during']): void {
    const err = toError(error);
    this.#logger.warn({ err, during }, 'rate-limited producer error');
    this.#emitSafely(() => {
      /**
       * Something failed that no `send` caller can receive: the lag signal
       * threw (the last status stays in force), `close()` timed out (the
       * callers were rejected), the disconnect failed.
       * @event producer.error
       */
      this.emit('producer.error', { error: err, during });
    });
  }

  /** Listeners run inside the producer's bookkeeping; one that throws must not corrupt it. */
  #emitSafely(emit: () => void): void {
    try {
      emit();
    } catch (error) {
      this.#logger.error({ err: error }, 'a rate-limited producer event listener threw');
    }
  }
}

/** Checks what KafkaJS would reject late (failing a whole batch) and returns each message's size in bytes. */
function validateRecord(record: unknown): number[] {
  if (typeof record !== 'object' || record === null) {
    throw new ConfigError('record', 'a ProducerRecord ({ topic, messages })', record);
  }
  const { topic, messages } = record as Partial<ProducerRecord>;
  if (typeof topic !== 'string' || topic === '')
    throw new ConfigError('record.topic', 'a non-empty string', topic);
  if (!Array.isArray(messages))
    throw new ConfigError('record.messages', 'an array of messages', messages);
  return messages.map((message: unknown, i) => {
    const path = `record.messages[${i}]`;
    if (typeof message !== 'object' || message === null) {
      throw new ConfigError(path, 'a message object ({ key?, value, headers? })', message);
    }
    const { key, value, headers } = message as Partial<Message>;
    if (!isBytes(value) && value !== null) {
      throw new ConfigError(`${path}.value`, 'a Buffer, a string or null', value);
    }
    if (!isBytes(key) && key !== null && key !== undefined) {
      throw new ConfigError(`${path}.key`, 'a Buffer, a string, null or undefined', key);
    }
    let size = sizeOf(key) + sizeOf(value);
    if (headers !== undefined) {
      if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
        throw new ConfigError(`${path}.headers`, 'an object of header values', headers);
      }
      for (const [name, header] of Object.entries(headers)) {
        if (header === undefined) continue;
        const values: unknown[] = Array.isArray(header) ? header : [header];
        for (const v of values) {
          if (!isBytes(v)) {
            throw new ConfigError(
              `${path}.headers.${name}`,
              'a Buffer, a string, or an array of them',
              header,
            );
          }
          size += sizeOf(v);
        }
        size += Buffer.byteLength(name);
      }
    }
    return size;
  });
}

function isBytes(value: unknown): value is string | Buffer {
  return typeof value === 'string' || Buffer.isBuffer(value);
}

function sizeOf(value: string | Buffer | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}
