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

export type Deserializer<T> = (
  message: KafkaMessage,
  source: { topic: string; partition: number },
) => T | Promise<T>;

/** Anything that can write records and resolves on the broker's ack: a KafkaJS `Producer` or a `RateLimitedProducer`. */
export interface RecordSender {
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
}
