import type { RecordMetadata } from 'kafkajs';
import type { Clock } from '../shared/clock.js';
import type { BatchOutcome } from './admission.js';
import type { Batch, SendBuffer } from './buffer.js';
import type { ProducerLimitsInForce, ProducerTarget } from './events.js';
import { ConcurrencyGate } from './gate.js';
import type { ResolvedProducerOptions } from './options.js';
import { TokenBucket } from './token-bucket.js';

/** Below this many milliseconds of waiting a batch goes now: the bucket accounts for the difference. */
const READY_WITHIN_MS = 1;

/**
 * How long a partial batch waits for the requests in flight before it takes
 * a free slot anyway. Long enough to gather what a high rate lets go in the
 * meantime (the Java producer's `linger.ms` defaults to 5 ms since Kafka 4.0,
 * KIP-1030), short enough that a request stuck in KafkaJS's retries does not
 * hold back the sends behind it.
 */
export const PARTIAL_BATCH_WAIT_MS = 5;

export interface DispatchHost {
  /** True while `lingerMs` is not waited: a flush or a close is under way, or a send is blocked. */
  lingerWaived(): boolean;
  /** A batch left the buffer. */
  bufferShrank(): void;
  /** A `producer.send` call was answered. */
  answered(batch: Batch, outcome: BatchOutcome): void;
}

/**
 * Moves messages from the buffer to KafkaJS. A batch is cut when the tokens
 * (and `lingerMs`) let it go, as large as the tokens and the batch limits
 * allow, and sent in a free slot of the gate: at once when nothing is in
 * flight or the batch is full, and otherwise once it has waited
 * `PARTIAL_BATCH_WAIT_MS` for the requests in flight. It wakes on a
 * microtask when work arrives or a slot frees, and on one timer when it must
 * wait for tokens, the linger or the requests in flight; nothing else
 * schedules it.
 */
export class Dispatcher {
  readonly #target: ProducerTarget;
  readonly #buffer: SendBuffer;
  readonly #options: ResolvedProducerOptions;
  readonly #clock: Clock;
  readonly #host: DispatchHost;
  readonly #gate: ConcurrencyGate;
  readonly #messageBucket: TokenBucket;
  readonly #byteBucket: TokenBucket;
  #scheduled = false;
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the latest request was handed to KafkaJS. */
  #lastSentAt = Number.NEGATIVE_INFINITY;

  constructor(
    target: ProducerTarget,
    buffer: SendBuffer,
    options: ResolvedProducerOptions,
    clock: Clock,
    host: DispatchHost,
  ) {
    this.#target = target;
    this.#buffer = buffer;
    this.#options = options;
    this.#clock = clock;
    this.#host = host;
    const now = clock.now();
    this.#messageBucket = new TokenBucket(options.messagesPerSecond, now);
    this.#byteBucket = new TokenBucket(options.bytesPerSecond, now);
    this.#gate = new ConcurrencyGate(options.maxInFlightRequests);
  }

  /** `producer.send` calls not answered yet. */
  get inFlight(): number {
    return this.#gate.active;
  }

  setLimits(limits: ProducerLimitsInForce): void {
    const now = this.#clock.now();
    this.#messageBucket.setRate(limits.messagesPerSecond, now);
    this.#byteBucket.setRate(limits.bytesPerSecond, now);
    this.#gate.setLimit(limits.maxInFlightRequests);
    this.schedule();
  }

  /** Something changed (work arrived, a slot freed, a limit or the linger rule): look again soon. */
  schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(this.#run);
  }

  /** No batch leaves after this; requests already sent still settle their callers. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const o = this.#options;
    while (!this.#stopped && this.#buffer.messages > 0) {
      const now = this.#clock.now();
      const wait = this.#readyInMs(now);
      if (wait >= READY_WITHIN_MS) {
        this.#wakeIn(wait);
        return;
      }
      // A partial batch waits a little while a request is in flight, and
      // grows meanwhile (Nagle's rule): a trickle of sends, or a rate that
      // lets one message go every millisecond, becomes fewer and larger
      // requests. Full batches use the further slots side by side at once.
      if (this.#gate.active > 0 && !this.#fullBatchWaiting()) {
        const left = this.#lastSentAt + PARTIAL_BATCH_WAIT_MS - now;
        if (left > 0) {
          this.#wakeIn(left);
          return;
        }
      }
      // Released in #deliver, which schedules the next look.
      if (!this.#gate.tryAcquire()) return;
      const batch = this.#buffer.take({
        maxMessages: o.maxBatchMessages,
        maxBytes: o.maxBatchBytes,
        messageTokens: this.#messageBucket.available(now),
        byteTokens: this.#byteBucket.available(now),
      });
      if (batch === undefined) {
        this.#gate.release();
        return;
      }
      this.#messageBucket.take(batch.messages, now);
      this.#byteBucket.take(batch.bytes, now);
      this.#lastSentAt = now;
      this.#host.bufferShrank();
      void this.#deliver(batch);
    }
  };

  #wakeIn(ms: number): void {
    this.#timer = setTimeout(this.#run, Math.ceil(ms));
    this.#timer.unref();
  }

  /** Sends one batch and hands its outcome over; never rejects. */
  async #deliver(batch: Batch): Promise<void> {
    let outcome: BatchOutcome;
    try {
      const result: unknown = await this.#target.send(batch.record);
      outcome = { metadata: Array.isArray(result) ? (result as RecordMetadata[]) : [] };
    } catch (error) {
      outcome = { error };
    }
    this.#gate.release();
    this.#host.answered(batch, outcome);
    this.schedule();
  }

  #fullBatchWaiting(): boolean {
    const o = this.#options;
    return this.#buffer.messages >= o.maxBatchMessages || this.#buffer.bytes >= o.maxBatchBytes;
  }

  #readyInMs(now: number): number {
    let delay = Math.max(this.#messageBucket.msUntilReady(now), this.#byteBucket.msUntilReady(now));
    const head = this.#buffer.head;
    const o = this.#options;
    if (head !== undefined && o.lingerMs > 0) {
      // As the Java producer: a full batch, a flush, a close or a blocked send end the linger.
      const lingerWaived =
        this.#host.lingerWaived() ||
        this.#buffer.messages >= o.maxBatchMessages ||
        this.#buffer.bytes >= o.maxBatchBytes;
      if (!lingerWaived) delay = Math.max(delay, head.enqueuedAt + o.lingerMs - now);
    }
    return delay;
  }
}
