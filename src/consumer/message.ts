import type { IHeaders, KafkaMessage, ProducerRecord, RecordMetadata } from 'kafkajs';

/** What a handler receives: the KafkaJS message, where it came from, and the deserialized payload. */
export interface InboundMessage<T = Buffer | null> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
  readonly timestamp: string;
  /** `deserialize(message)` when that option is set, the raw `value` otherwise. */
  readonly payload: T;
}

export interface HandlerContext {
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** Aborted when the attempt times out or the consumer closes: pass it to fetch(), database drivers, ... */
  readonly signal: AbortSignal;
}

export type MessageHandler<T> = (
  message: InboundMessage<T>,
  context: HandlerContext,
) => Promise<void> | void;

/** A message a batch handler reports as failed, and why: it follows the retry and dead-letter rules alone. */
export interface BatchFailure<T = Buffer | null> {
  /** The message as the batch handler received it (matched by identity, else by offset). */
  readonly message: InboundMessage<T>;
  /** What went wrong; a `NonRetriableError` (or `retriable: false`) dead-letters it at once. */
  readonly error: unknown;
}

/** What a batch handler may resolve with; resolving with nothing means every message is done. */
export interface BatchResult<T = Buffer | null> {
  /** Messages that failed; every other message of the batch counts as done. */
  readonly failed?: readonly BatchFailure<T>[];
}

/**
 * Runs once per batch: up to `batch.maxMessages` messages (and
 * `batch.maxBytes`) in the order the ordering mode keeps. Resolve with
 * nothing when all are done, with a {@link BatchResult} naming those that
 * failed, or throw to fail the whole batch (retried whole, then split).
 */
export type BatchHandler<T> = (
  messages: readonly InboundMessage<T>[],
  context: HandlerContext,
) => Promise<BatchResult<T> | void> | BatchResult<T> | void;

export type Deserializer<T> = (
  message: KafkaMessage,
  source: { topic: string; partition: number },
) => T | Promise<T>;

/** Anything that can write records and resolves on the broker's ack: a KafkaJS `Producer` or a `RateLimitedProducer`. */
export interface RecordSender {
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
}
