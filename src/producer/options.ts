import { ConfigError } from '../errors.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { LagStatus } from '../lag/lag-status.js';
import {
  boolean,
  duration,
  integer,
  MAX_TIMER_MS,
  knownKeys,
  number,
  plainObject,
  requiredFunction,
} from '../shared/validate.js';

/**
 * Where the producer reads the lag of the stage it feeds. `status` is polled
 * every `intervalMs`; a lag monitor's status, or any function (the admin API's
 * end offsets minus a group's committed offsets, compared to thresholds).
 */
export interface ProducerLagSignal {
  /** Returns the current lag status. A throw or rejection is reported as `producer.error` and the last status stays in force. */
  readonly status: () => LagStatus | Promise<LagStatus>;
  /**
   * Milliseconds between two calls of `status`. The next call is scheduled
   * only after the previous one settled, so a slow admin call never overlaps.
   * @default 5000
   */
  readonly intervalMs?: number;
}

/** The limits that can be changed at run time with `setLimits()`. */
export interface ProducerLimits {
  /**
   * Messages per second, averaged by a token bucket that starts empty and
   * holds at most one second of tokens: a burst of at most one second's
   * worth after an idle period (the time from construction to the first send
   * counts as idle). `Infinity` for no limit.
   * @default Infinity
   */
  readonly messagesPerSecond?: number;
  /**
   * Bytes per second (key + value + header keys and values), same bucket
   * rules as `messagesPerSecond`. A message larger than one second's worth is
   * sent alone when the bucket is not in debt, and the debt is repaid before
   * the next send. `Infinity` for no limit.
   * @default Infinity
   */
  readonly bytesPerSecond?: number;
  /**
   * At most this many `producer.send` calls outstanding at once.
   * @default 5
   */
  readonly maxInFlightRequests?: number;
}

export interface RateLimitedProducerOptions extends ProducerLimits {
  /**
   * Messages accepted but not yet handed to `producer.send`. Together with
   * `maxBufferedBytes` this is the bound on waiting work; a `send` that does
   * not fit waits (see `blockOnFull`). A single record larger than the whole
   * buffer is accepted when the buffer is empty, so it can never deadlock.
   * @default 10000
   */
  readonly maxBufferedMessages?: number;
  /**
   * Bytes (key + value + headers) accepted but not yet handed to `producer.send`.
   * @default 33554432 (32 MiB, the Java producer's `buffer.memory`)
   */
  readonly maxBufferedBytes?: number;
  /**
   * How long a `send` waits for buffer space (or for a critical lag status to
   * clear) before it rejects with `ERR_PRODUCER_BUFFER_FULL` (or
   * `ERR_PRODUCER_STOPPED`). `Infinity` waits without limit.
   * @default 60000 (the Java producer's `max.block.ms`)
   */
  readonly maxBlockMs?: number;
  /**
   * `true`: a `send` that does not fit waits up to `maxBlockMs`. `false`:
   * it rejects at once with the same typed error.
   * @default true
   */
  readonly blockOnFull?: boolean;
  /**
   * How long the oldest waiting message may wait for more messages to join
   * its batch, as the Java producer's `linger.ms`. A full batch, `flush()`,
   * `close()` or a blocked `send` end the wait early.
   * @default 0
   */
  readonly lingerMs?: number;
  /**
   * Most messages sent in one `producer.send` call.
   * @default 1000
   */
  readonly maxBatchMessages?: number;
  /**
   * Most bytes sent in one `producer.send` call; a larger single message is sent alone.
   * @default 1048576 (1 MiB, the broker's default `message.max.bytes` is about this)
   */
  readonly maxBatchBytes?: number;
  /**
   * While the lag status is `warning` (and `critical`), the message and byte
   * rates are the configured ones multiplied by this factor. With an
   * unlimited rate there is nothing to multiply: set a rate for warning to
   * have an effect.
   * @default 0.5
   */
  readonly warningRateFactor?: number;
  /**
   * Polls a lag status; see {@link ProducerLagSignal}. `setLagStatus()` pushes one instead.
   * @default disabled: no polling; only `setLagStatus()` changes the status
   */
  readonly lagSignal?: ProducerLagSignal;
  /**
   * Whether `close()` disconnects the KafkaJS producer it was given, once
   * everything accepted has been delivered (or the close timed out).
   * @default true
   */
  readonly disconnectOnClose?: boolean;
  /**
   * How long `close()` waits for accepted messages to be delivered before it
   * rejects the rest with `ERR_CLOSED`. `Infinity` waits without limit.
   * @default 30000
   */
  readonly closeTimeoutMs?: number;
}

export interface RateLimitedProducerDeps {
  /** @default performance.now() */
  readonly clock?: Clock;
  /** @default a logger that drops everything */
  readonly logger?: Logger;
}

/** The options of one `send()` call. */
export interface ProducerSendOptions {
  /**
   * Aborting it takes the send back while none of its messages has been
   * handed to KafkaJS (blocked, or still in the buffer): it is removed and
   * rejects with `signal.reason`, and nothing of it is written. Once part of
   * it was handed over, the abort changes nothing.
   * @default none
   */
  readonly signal?: AbortSignal;
}

export interface ProducerFlushOptions {
  /**
   * Rejects with `ProducerDrainTimeoutError` after this long; the records keep being delivered.
   * @default Infinity: waits until everything accepted is delivered
   */
  readonly timeoutMs?: number;
  /**
   * Aborting it rejects the flush with `signal.reason`; the records keep being delivered.
   * @default none
   */
  readonly signal?: AbortSignal;
}

export interface ProducerCloseOptions {
  /** @default the `closeTimeoutMs` option */
  readonly timeoutMs?: number;
  /**
   * Aborting it ends the wait as the timeout would: what is not delivered yet is rejected, then the close completes.
   * @default none
   */
  readonly signal?: AbortSignal;
}

/** Options after validation and defaults: every field present, frozen. */
export interface ResolvedProducerOptions {
  readonly messagesPerSecond: number;
  readonly bytesPerSecond: number;
  readonly maxInFlightRequests: number;
  readonly maxBufferedMessages: number;
  readonly maxBufferedBytes: number;
  readonly maxBlockMs: number;
  readonly blockOnFull: boolean;
  readonly lingerMs: number;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  readonly warningRateFactor: number;
  readonly lagSignal: Readonly<Required<ProducerLagSignal>> | undefined;
  readonly disconnectOnClose: boolean;
  readonly closeTimeoutMs: number;
}

export const PRODUCER_DEFAULTS = Object.freeze({
  messagesPerSecond: Number.POSITIVE_INFINITY,
  bytesPerSecond: Number.POSITIVE_INFINITY,
  maxInFlightRequests: 5,
  maxBufferedMessages: 10_000,
  maxBufferedBytes: 32 * 1024 * 1024,
  maxBlockMs: 60_000,
  blockOnFull: true,
  lingerMs: 0,
  maxBatchMessages: 1000,
  maxBatchBytes: 1024 * 1024,
  warningRateFactor: 0.5,
  lagSignalIntervalMs: 5000,
  disconnectOnClose: true,
  closeTimeoutMs: 30_000,
});

const LIMIT_KEYS = ['messagesPerSecond', 'bytesPerSecond', 'maxInFlightRequests'] as const;

const OPTION_KEYS: readonly (keyof RateLimitedProducerOptions)[] = [
  ...LIMIT_KEYS,
  'maxBufferedMessages',
  'maxBufferedBytes',
  'maxBlockMs',
  'blockOnFull',
  'lingerMs',
  'maxBatchMessages',
  'maxBatchBytes',
  'warningRateFactor',
  'lagSignal',
  'disconnectOnClose',
  'closeTimeoutMs',
];

export { MAX_TIMER_MS };

/** A duration that becomes a timer: the shared rule bounds it by {@link MAX_TIMER_MS} (`Infinity` sets no timer). */
function timerDuration(
  option: string,
  value: unknown,
  fallback: number,
  { min, allowInfinity = false }: { min: number; allowInfinity?: boolean },
): number {
  return duration(option, value, fallback, { min, allowInfinity });
}

/** The `timeoutMs` of `flush()` or `close()`: at least 0, at most {@link MAX_TIMER_MS}, or `Infinity`. */
export function resolveDrainTimeout(option: string, value: unknown, fallback: number): number {
  return timerDuration(option, value, fallback, { min: 0, allowInfinity: true });
}

export { signal as resolveSignal } from '../shared/validate.js';

/**
 * A rate: a number greater than 0, or `Infinity` for no limit. Zero is
 * refused: a producer that may never send would only fill its buffer and
 * time every caller out; use a critical lag status to stop it on purpose.
 */
function rate(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(option, 'a number greater than 0, or Infinity for no limit', value);
  }
  return value;
}

/**
 * Validates the options of a `RateLimitedProducer` and fills in the defaults.
 * Throws a `ConfigError` naming the first invalid option; never changes `input`.
 */
export function resolveProducerOptions(
  input?: RateLimitedProducerOptions,
): ResolvedProducerOptions {
  const raw = plainObject('options', input) ?? {};
  knownKeys('', raw, OPTION_KEYS);
  const d = PRODUCER_DEFAULTS;

  let lagSignal: ResolvedProducerOptions['lagSignal'];
  const lagRaw = plainObject('lagSignal', raw['lagSignal']);
  if (lagRaw !== undefined) {
    knownKeys('lagSignal', lagRaw, ['status', 'intervalMs']);
    lagSignal = Object.freeze({
      status: requiredFunction<ProducerLagSignal['status']>('lagSignal.status', lagRaw['status']),
      intervalMs: timerDuration(
        'lagSignal.intervalMs',
        lagRaw['intervalMs'],
        d.lagSignalIntervalMs,
        { min: 1 },
      ),
    });
  }

  return Object.freeze({
    messagesPerSecond: rate('messagesPerSecond', raw['messagesPerSecond'], d.messagesPerSecond),
    bytesPerSecond: rate('bytesPerSecond', raw['bytesPerSecond'], d.bytesPerSecond),
    maxInFlightRequests: integer(
      'maxInFlightRequests',
      raw['maxInFlightRequests'],
      d.maxInFlightRequests,
      {
        min: 1,
      },
    ),
    maxBufferedMessages: integer(
      'maxBufferedMessages',
      raw['maxBufferedMessages'],
      d.maxBufferedMessages,
      {
        min: 1,
      },
    ),
    maxBufferedBytes: integer('maxBufferedBytes', raw['maxBufferedBytes'], d.maxBufferedBytes, {
      min: 1,
    }),
    maxBlockMs: timerDuration('maxBlockMs', raw['maxBlockMs'], d.maxBlockMs, {
      min: 0,
      allowInfinity: true,
    }),
    blockOnFull: boolean('blockOnFull', raw['blockOnFull'], d.blockOnFull),
    lingerMs: timerDuration('lingerMs', raw['lingerMs'], d.lingerMs, { min: 0 }),
    maxBatchMessages: integer('maxBatchMessages', raw['maxBatchMessages'], d.maxBatchMessages, {
      min: 1,
    }),
    maxBatchBytes: integer('maxBatchBytes', raw['maxBatchBytes'], d.maxBatchBytes, { min: 1 }),
    warningRateFactor: number('warningRateFactor', raw['warningRateFactor'], d.warningRateFactor, {
      min: 0,
      exclusiveMin: true,
      max: 1,
    }),
    lagSignal,
    disconnectOnClose: boolean('disconnectOnClose', raw['disconnectOnClose'], d.disconnectOnClose),
    closeTimeoutMs: resolveDrainTimeout('closeTimeoutMs', raw['closeTimeoutMs'], d.closeTimeoutMs),
  });
}

/**
 * Validates a `setLimits()` argument: only the keys given are returned, each
 * checked by the same rules as at construction.
 */
export function resolveProducerLimits(input: ProducerLimits): Readonly<ProducerLimits> {
  const raw = plainObject('limits', input);
  if (raw === undefined) throw new ConfigError('limits', 'an object', input);
  knownKeys('limits', raw, LIMIT_KEYS);
  const out: { -readonly [K in keyof ProducerLimits]: ProducerLimits[K] } = {};
  if (raw['messagesPerSecond'] !== undefined) {
    out.messagesPerSecond = rate('limits.messagesPerSecond', raw['messagesPerSecond'], 0);
  }
  if (raw['bytesPerSecond'] !== undefined) {
    out.bytesPerSecond = rate('limits.bytesPerSecond', raw['bytesPerSecond'], 0);
  }
  if (raw['maxInFlightRequests'] !== undefined) {
    out.maxInFlightRequests = integer('limits.maxInFlightRequests', raw['maxInFlightRequests'], 0, {
      min: 1,
    });
  }
  return Object.freeze(out);
}
