import type { Producer } from 'kafkajs';
import type { LagStatus } from '../lag/lag-status.js';

/** What the producer needs from KafkaJS: a `Producer` fits; tests pass a fake. */
export type ProducerTarget = Pick<Producer, 'send' | 'disconnect'>;

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
 * Every event a `RateLimitedProducer` emits, with its one payload object:
 * `producer.on('producer.throttled', (e) => ...)`.
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

/**
 * Emits one event with its payload. The producer's parts emit through this,
 * and the facade makes it safe: a listener that throws is logged and cannot
 * corrupt the bookkeeping it was called from.
 */
export type EmitProducerEvent = <K extends keyof RateLimitedProducerEvents>(
  name: K,
  payload: Parameters<RateLimitedProducerEvents[K]>[0],
) => void;
