import type { RecordMetadata } from 'kafkajs';
import {
  ProducerBufferFullError,
  ProducerClosedError,
  ProducerStoppedError,
  toError,
} from '../errors.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { SendBuffer, type Batch, type PendingSend, type QueuedMessage } from './buffer.js';
import type { EmitProducerEvent } from './events.js';
import type { ResolvedProducerOptions } from './options.js';

/** A send that did not fit and waits for space (or for the producer to resume). */
interface BlockedSend {
  readonly pending: PendingSend;
  readonly entries: QueuedMessage[];
  readonly messages: number;
  readonly bytes: number;
  readonly since: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export interface AdmissionHost {
  readonly options: ResolvedProducerOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly emit: EmitProducerEvent;
  /** False while a critical lag status stops new sends. */
  accepting(): boolean;
  /** The reason given with the critical lag status. */
  lagReason(): string | undefined;
  /** Messages entered the buffer: the dispatcher has work. */
  queued(): void;
}

/** The outcome of one `producer.send` call. */
export type BatchOutcome =
  | { readonly metadata: RecordMetadata[] }
  | { readonly error: unknown; readonly metadata?: undefined };

/**
 * Who is let in, who waits, and how every caller's promise settles: the
 * bounded buffer, the sends blocked outside it (in arrival order, each up
 * to `maxBlockMs`), the sends accepted and not settled yet, and the
 * buffer-full episodes.
 */
export class Admission {
  readonly buffer = new SendBuffer();
  readonly #host: AdmissionHost;
  readonly #blocked: BlockedSend[] = [];
  readonly #unsettled = new Set<PendingSend>();
  #fullSince: number | undefined;

  constructor(host: AdmissionHost) {
    this.#host = host;
  }

  /** Sends waiting for buffer space or for a critical lag status to clear. */
  get blocked(): number {
    return this.#blocked.length;
  }

  /** Sends accepted and not settled yet. */
  get unsettled(): number {
    return this.#unsettled.size;
  }

  /** The sends accepted and not settled yet, as of now: what a flush waits for. */
  snapshot(): PendingSend[] {
    return [...this.#unsettled];
  }

  /** Accepts a send into the buffer if it fits and nobody waits before it; otherwise blocks or refuses it. */
  offer(pending: PendingSend, entries: QueuedMessage[], bytes: number): void {
    if (this.#blocked.length === 0 && this.#fits(entries.length, bytes)) {
      this.#enqueue(pending, entries);
      return;
    }
    const { options, clock } = this.#host;
    const now = clock.now();
    const blocking = options.blockOnFull && options.maxBlockMs > 0;
    if (this.#host.accepting()) this.#noteBufferFull(now, blocking);
    if (!blocking) {
      this.fail(pending, this.#notAcceptedError(0));
      return;
    }
    const blocked: BlockedSend = {
      pending,
      entries,
      messages: entries.length,
      bytes,
      since: now,
      timer: undefined,
    };
    if (options.maxBlockMs !== Number.POSITIVE_INFINITY) {
      blocked.timer = setTimeout(() => this.#expire(blocked), options.maxBlockMs);
      blocked.timer.unref();
    }
    this.#blocked.push(blocked);
  }

  /** Lets blocked sends in, in arrival order, while they fit. */
  admitBlocked(): void {
    while (this.#blocked.length > 0) {
      const next = this.#blocked[0];
      if (next === undefined || !this.#fits(next.messages, next.bytes)) break;
      this.#blocked.shift();
      clearTimeout(next.timer);
      this.#enqueue(next.pending, next.entries);
    }
  }

  /** After messages left the buffer: let blocked sends in, and end a full episode once it is empty. */
  bufferShrank(): void {
    this.admitBlocked();
    if (this.buffer.messages === 0 && this.#fullSince !== undefined) {
      const fullForMs = Math.round(this.#host.clock.now() - this.#fullSince);
      this.#fullSince = undefined;
      /**
       * The buffer emptied after `producer.buffer-full`: the producer keeps
       * up with what is sent to it again.
       * @event producer.buffer-drained
       */
      this.#host.emit('producer.buffer-drained', { fullForMs, blockedSends: this.#blocked.length });
    }
  }

  /**
   * A caller aborted its send. Blocked or still wholly in the buffer, it is
   * removed and rejects with `reason`; once any of its messages was handed to
   * KafkaJS the abort changes nothing (what was sent cannot be taken back,
   * and the caller learns the broker's answer). Returns whether it was removed.
   */
  abort(pending: PendingSend, reason: unknown): boolean {
    if (pending.settled || pending.handedOver) return false;
    const index = this.#blocked.findIndex((b) => b.pending === pending);
    if (index !== -1) {
      const [blocked] = this.#blocked.splice(index, 1);
      clearTimeout(blocked?.timer);
      this.fail(pending, reason);
      // It may have been the one holding back smaller ones behind it.
      this.admitBlocked();
      return true;
    }
    this.fail(pending, reason);
    return true;
  }

  /** Rejects every blocked send with the error `make` returns; they were never accepted. */
  rejectBlocked(make: () => Error): void {
    for (const blocked of this.#blocked.splice(0)) {
      clearTimeout(blocked.timer);
      this.fail(blocked.pending, make());
    }
  }

  /** Settles the callers whose messages one `producer.send` call carried. */
  answered(batch: Batch, outcome: BatchOutcome): void {
    if (outcome.metadata !== undefined) {
      for (const owner of batch.owners) {
        owner.inFlight -= 1;
        if (owner.settled) continue;
        for (const m of outcome.metadata) owner.results.push(m);
        if (owner.queued === 0 && owner.inFlight === 0) this.#succeed(owner);
      }
      return;
    }
    const error = toError(outcome.error);
    let sends = 0;
    for (const owner of batch.owners) {
      owner.inFlight -= 1;
      if (!owner.settled) sends += 1;
    }
    this.#host.logger.warn(
      { err: error, topic: batch.topic, messages: batch.messages },
      'producer send failed',
    );
    /**
     * A `producer.send` call failed after KafkaJS's own retries. Its callers
     * are rejected with the same error; their messages still queued are
     * dropped. Nothing is retried here.
     * @event producer.send-failed
     */
    this.#host.emit('producer.send-failed', {
      topic: batch.topic,
      messages: batch.messages,
      bytes: batch.bytes,
      sends,
      error,
    });
    for (const owner of batch.owners) {
      if (!owner.settled) this.fail(owner, outcome.error);
    }
  }

  /**
   * Rejects every send accepted and not settled with a
   * {@link ProducerClosedError} that says `why` (with `cause`) and whether
   * part of it may have been written, and empties the buffer: what was still
   * in it is never sent.
   */
  abandonAll(why: string, cause: unknown): void {
    const pending = [...this.#unsettled];
    this.buffer.clear();
    for (const p of pending) {
      const written = p.inFlight > 0;
      const error = new ProducerClosedError(
        written
          ? `${why} while this record was being sent; it may or may not have been written.`
          : `${why} before this record was sent; it was not written.`,
        { mayHaveBeenWritten: written, cause },
      );
      this.fail(p, error);
    }
    this.bufferShrank();
  }

  /** Settles one caller with an error; its messages still queued are dropped (the caller was told). */
  fail(pending: PendingSend, error: unknown): void {
    if (pending.settled) return;
    pending.settled = true;
    pending.detach?.();
    this.#unsettled.delete(pending);
    if (pending.queued > 0 && this.buffer.remove(pending) > 0) this.bufferShrank();
    pending.reject(error);
    pending.markDone();
  }

  #succeed(pending: PendingSend): void {
    pending.settled = true;
    pending.detach?.();
    this.#unsettled.delete(pending);
    pending.resolve(pending.results);
    pending.markDone();
  }

  #fits(messages: number, bytes: number): boolean {
    if (!this.#host.accepting()) return false;
    const buffer = this.buffer;
    // A record larger than the whole buffer goes in alone, or it could never go.
    if (buffer.messages === 0) return true;
    const o = this.#host.options;
    return (
      buffer.messages + messages <= o.maxBufferedMessages &&
      buffer.bytes + bytes <= o.maxBufferedBytes
    );
  }

  #enqueue(pending: PendingSend, entries: QueuedMessage[]): void {
    this.buffer.add(pending, entries, this.#host.clock.now());
    this.#unsettled.add(pending);
    this.#host.queued();
  }

  #expire(blocked: BlockedSend): void {
    const index = this.#blocked.indexOf(blocked);
    if (index === -1) return;
    this.#blocked.splice(index, 1);
    const waited = Math.round(this.#host.clock.now() - blocked.since);
    const error = this.#notAcceptedError(waited);
    this.#host.logger.debug(
      { code: error.code, waitedMs: waited, topic: blocked.pending.topic },
      'producer send not accepted',
    );
    this.fail(blocked.pending, error);
    // The expired send may have been the one holding back smaller ones behind it.
    this.admitBlocked();
  }

  #notAcceptedError(waitedMs: number): ProducerBufferFullError | ProducerStoppedError {
    if (!this.#host.accepting()) {
      return new ProducerStoppedError({ waitedMs, reason: this.#host.lagReason() });
    }
    return new ProducerBufferFullError({
      waitedMs,
      bufferedMessages: this.buffer.messages,
      bufferedBytes: this.buffer.bytes,
    });
  }

  #noteBufferFull(now: number, blocking: boolean): void {
    if (this.#fullSince !== undefined) return;
    this.#fullSince = now;
    const { buffer } = this;
    const o = this.#host.options;
    this.#host.logger.debug(
      { bufferedMessages: buffer.messages, bufferedBytes: buffer.bytes },
      'producer buffer full',
    );
    /**
     * A send did not fit in the buffer: it waits up to `maxBlockMs`
     * (`blocking`) or was rejected at once. Emitted once until the buffer
     * has drained.
     * @event producer.buffer-full
     */
    this.#host.emit('producer.buffer-full', {
      bufferedMessages: buffer.messages,
      bufferedBytes: buffer.bytes,
      maxBufferedMessages: o.maxBufferedMessages,
      maxBufferedBytes: o.maxBufferedBytes,
      blocking,
    });
  }
}
