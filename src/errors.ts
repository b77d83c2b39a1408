import { brand, brandKey, hasBrand, isInstance } from './shared/brand.js';

/**
 * Every error this library throws or emits is a {@link BackpressureError} with a
 * `code` from one closed list, so callers can `switch (err.code)` instead of
 * matching messages.
 */
export const ERROR_CODES = [
  /** An option (at construction) or an argument (a malformed record) failed validation. Never retriable. */
  'ERR_CONFIG',
  /** The handler did not settle within `handlerTimeoutMs`. */
  'ERR_HANDLER_TIMEOUT',
  /** The handler (or the deserializer) failed; `cause` holds what it threw. */
  'ERR_HANDLER_FAILED',
  /** A call was refused because the circuit breaker is open. */
  'ERR_CIRCUIT_OPEN',
  /** Writing a message to the dead-letter topic failed. */
  'ERR_DLQ_PUBLISH',
  /** A producer `send` waited longer than `maxBlockMs` for buffer space. */
  'ERR_PRODUCER_BUFFER_FULL',
  /** A producer `send` was refused because the producer is stopped by a critical lag signal. */
  'ERR_PRODUCER_STOPPED',
  /** The producer or consumer was closed before the work could finish. */
  'ERR_CLOSED',
  /** `close()` gave up waiting for in-flight work. */
  'ERR_DRAIN_TIMEOUT',
  /** A call was made in a lifecycle state that does not allow it. */
  'ERR_STATE',
  /** Committing offsets to the group coordinator failed. */
  'ERR_COMMIT',
  /** A message was shed (older than `shed.maxAgeMs`): the reason recorded with its dead letter. */
  'ERR_MESSAGE_SHED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface BackpressureErrorOptions {
  readonly cause?: unknown;
  readonly retriable?: boolean;
}

/**
 * Base class of every error the library creates.
 *
 * `instanceof` works across copies of the package (ESM and CommonJS builds,
 * two versions in one tree): each class carries a
 * `Symbol.for('kafkajs-backpressure.<ClassName>')` brand that its
 * `Symbol.hasInstance` checks. A subclass you write is checked the ordinary
 * way.
 */
export class BackpressureError extends Error {
  static {
    brand(this, 'BackpressureError');
  }

  /** True for an instance of this class from any copy of the package. */
  static override [Symbol.hasInstance]<C extends abstract new (...args: never[]) => unknown>(
    this: C,
    value: unknown,
  ): value is InstanceType<C> {
    return isInstance(this, value);
  }

  readonly code: ErrorCode;
  /** True when repeating the same operation later may succeed. */
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: BackpressureErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackpressureError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/**
 * An option was invalid. `option` is the dotted path of the option
 * (`retry.maxAttempts`), `expected` says what would have been accepted and
 * `received` is the value that was passed.
 */
export class ConfigError extends BackpressureError {
  static {
    brand(this, 'ConfigError');
  }

  readonly option: string;
  readonly expected: string;
  readonly received: unknown;

  constructor(option: string, expected: string, received: unknown) {
    super(
      'ERR_CONFIG',
      `Invalid option \`${option}\`: expected ${expected}, received ${describe(received)}.`,
    );
    this.name = 'ConfigError';
    this.option = option;
    this.expected = expected;
    this.received = received;
  }
}

/** The handler did not settle in time. Retriable: the next attempt may be faster. */
export class HandlerTimeoutError extends BackpressureError {
  static {
    brand(this, 'HandlerTimeoutError');
  }

  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super('ERR_HANDLER_TIMEOUT', `Handler did not settle within ${timeoutMs} ms.`, {
      retriable: true,
    });
    this.name = 'HandlerTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Throw this (or wrap an error in it) from a handler to send the message
 * straight to the dead-letter topic without further attempts.
 */
export class NonRetriableError extends BackpressureError {
  static {
    brand(this, 'NonRetriableError');
  }

  constructor(message: string, options: { readonly cause?: unknown } = {}) {
    super('ERR_HANDLER_FAILED', message, { ...options, retriable: false });
    this.name = 'NonRetriableError';
  }
}

/** The circuit breaker is open: the downstream is considered down. */
export class CircuitOpenError extends BackpressureError {
  static {
    brand(this, 'CircuitOpenError');
  }

  constructor(options: BackpressureErrorOptions = {}) {
    super('ERR_CIRCUIT_OPEN', 'Circuit breaker is open; the call was not attempted.', {
      ...options,
      retriable: true,
    });
    this.name = 'CircuitOpenError';
  }
}

/** Writing to the dead-letter topic failed; the message's offset stays uncommitted. */
export class DlqPublishError extends BackpressureError {
  static {
    brand(this, 'DlqPublishError');
  }

  readonly dlqTopic: string;

  constructor(dlqTopic: string, cause: unknown) {
    super(
      'ERR_DLQ_PUBLISH',
      `Could not write to dead-letter topic "${dlqTopic}": ${messageOf(cause)}`,
      {
        cause,
        retriable: true,
      },
    );
    this.name = 'DlqPublishError';
    this.dlqTopic = dlqTopic;
  }
}

/**
 * Why a shed message was dead-lettered: it was older than `shed.maxAgeMs`
 * when it came up for processing. Never thrown; it is the `error` of the
 * `dlq.routed` event and fills the dead letter's `x-bp-error-*` headers.
 */
export class MessageShedError extends BackpressureError {
  static {
    brand(this, 'MessageShedError');
  }

  readonly ageMs: number;
  readonly maxAgeMs: number;

  constructor(ageMs: number, maxAgeMs: number) {
    super(
      'ERR_MESSAGE_SHED',
      `Message shed: ${Math.round(ageMs)} ms old when it came up for processing, older than shed.maxAgeMs (${maxAgeMs} ms).`,
    );
    this.name = 'MessageShedError';
    this.ageMs = ageMs;
    this.maxAgeMs = maxAgeMs;
  }
}

/** True for any error created by this library; narrows to {@link BackpressureError}. */
export function isBackpressureError(value: unknown): value is BackpressureError {
  return hasBrand(value, BACKPRESSURE_ERROR);
}

const BACKPRESSURE_ERROR = brandKey('BackpressureError');

/** Turns anything a handler may throw (strings, `undefined`, objects) into an `Error`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  const error = new Error(`Non-error value thrown: ${describe(value)}`);
  error.name = 'NonErrorThrown';
  return error;
}

export function messageOf(value: unknown): string {
  return value instanceof Error ? value.message : describe(value);
}

/** A short, safe rendering of any value for error messages: `5 (number)`, `"x" (string)`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `a function${value.name ? ` (${value.name})` : ''}`;
  if (typeof value === 'string')
    return `${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)} (string)`;
  if (typeof value === 'symbol') return `${value.toString()} (symbol)`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${String(value)} (${typeof value})`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  try {
    const json = JSON.stringify(value);
    return `${json !== undefined && json.length > 80 ? `${json.slice(0, 80)}…` : json} (object)`;
  } catch {
    return 'an object';
  }
}

/**
 * A producer `send` found no buffer space within `maxBlockMs` (or at once,
 * with `blockOnFull: false`). Nothing of the record was sent. Retriable:
 * space frees as the buffer drains.
 */
export class ProducerBufferFullError extends BackpressureError {
  static {
    brand(this, 'ProducerBufferFullError');
  }

  /** How long the send waited; 0 when it was rejected at once. */
  readonly waitedMs: number;
  readonly bufferedMessages: number;
  readonly bufferedBytes: number;

  constructor(details: {
    readonly waitedMs: number;
    readonly bufferedMessages: number;
    readonly bufferedBytes: number;
  }) {
    super(
      'ERR_PRODUCER_BUFFER_FULL',
      `Producer buffer full (${details.bufferedMessages} messages, ${details.bufferedBytes} bytes waiting); the record was not accepted after ${details.waitedMs} ms.`,
      { retriable: true },
    );
    this.name = 'ProducerBufferFullError';
    this.waitedMs = details.waitedMs;
    this.bufferedMessages = details.bufferedMessages;
    this.bufferedBytes = details.bufferedBytes;
  }
}

/**
 * A producer `send` was refused because a critical lag signal stopped the
 * producer and it did not resume within `maxBlockMs`. Nothing of the record
 * was sent. Retriable: the producer resumes when the lag falls back.
 */
export class ProducerStoppedError extends BackpressureError {
  static {
    brand(this, 'ProducerStoppedError');
  }

  readonly waitedMs: number;
  /** The reason given with the critical lag status, if any. */
  readonly reason: string | undefined;

  constructor(details: { readonly waitedMs: number; readonly reason?: string | undefined }) {
    super(
      'ERR_PRODUCER_STOPPED',
      `Producer stopped by a critical lag signal${details.reason === undefined ? '' : ` (${details.reason})`}; the record was not accepted after ${details.waitedMs} ms.`,
      { retriable: true },
    );
    this.name = 'ProducerStoppedError';
    this.waitedMs = details.waitedMs;
    this.reason = details.reason;
  }
}

/**
 * The producer was closing or closed before the record could be delivered.
 * `mayHaveBeenWritten` is true when the record was already handed to KafkaJS
 * when `close()` gave up on it: the broker may still have stored it.
 */
export class ProducerClosedError extends BackpressureError {
  static {
    brand(this, 'ProducerClosedError');
  }

  readonly mayHaveBeenWritten: boolean;

  constructor(
    message: string,
    options: { readonly mayHaveBeenWritten?: boolean; readonly cause?: unknown } = {},
  ) {
    super('ERR_CLOSED', message, { cause: options.cause, retriable: false });
    this.name = 'ProducerClosedError';
    this.mayHaveBeenWritten = options.mayHaveBeenWritten ?? false;
  }
}

/**
 * `flush()` or `close()` gave up waiting for accepted records. After a
 * `flush()` timeout the records are still being delivered; after a `close()`
 * timeout they were rejected with {@link ProducerClosedError}.
 */
export class ProducerDrainTimeoutError extends BackpressureError {
  static {
    brand(this, 'ProducerDrainTimeoutError');
  }

  readonly operation: 'flush' | 'close';
  readonly timeoutMs: number;
  /** `send` calls not yet settled when the time ran out. */
  readonly pendingSends: number;

  constructor(operation: 'flush' | 'close', timeoutMs: number, pendingSends: number) {
    super(
      'ERR_DRAIN_TIMEOUT',
      `Producer ${operation}() timed out after ${timeoutMs} ms with ${pendingSends} send(s) not yet delivered.`,
      { retriable: operation === 'flush' },
    );
    this.name = 'ProducerDrainTimeoutError';
    this.operation = operation;
    this.timeoutMs = timeoutMs;
    this.pendingSends = pendingSends;
  }
}
