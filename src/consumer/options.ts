import { ConfigError } from '../errors.js';
import { systemClock, type Clock } from '../shared/clock.js';
import {
  resolveDownstreamLag,
  type DownstreamLagOptions,
  type ResolvedDownstreamLag,
} from './flow/downstream-lag.js';
import type { ShedOptions } from './failure/shedding.js';
import type {
  BatchHandler,
  Deserializer,
  InboundMessage,
  MessageHandler,
  RecordSender,
} from './message.js';
import type { ProgressAdmin } from './kafka/kafkajs.js';
import type {
  AdaptiveConcurrencyOptions,
  BatchOptions,
  CircuitBreakerOptions,
  DeadLetterOptions,
  LatencyOptions,
  RetryOptions,
} from './group-options.js';
import {
  resolveAdaptiveConcurrency,
  resolveBatch,
  resolveCircuitBreaker,
  resolveDeadLetter,
  resolveLatency,
  resolveRetry,
  resolveShed,
} from './option-groups.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import {
  boolean,
  duration,
  integer,
  knownKeys,
  number,
  oneOf,
  optionalFunction,
  plainObject,
  logger as validLogger,
  clock as validClock,
} from '../shared/validate.js';

export type OrderingMode = 'partition' | 'key' | 'unordered';
export const ORDERING_MODES: readonly OrderingMode[] = ['partition', 'key', 'unordered'];

export type {
  BatchFailure,
  BatchHandler,
  BatchResult,
  Deserializer,
  HandlerContext,
  InboundMessage,
  MessageHandler,
  RecordSender,
} from './message.js';

export type {
  AdaptiveConcurrencyOptions,
  BatchOptions,
  CircuitBreakerOptions,
  DeadLetterOptions,
  LatencyOptions,
  RetryOptions,
} from './group-options.js';
export interface BackpressureConsumerOptions<T = Buffer | null> {
  /** Topics to subscribe to (names or patterns). */
  readonly topics: readonly (string | RegExp)[];
  /** Start from the earliest offset when the group has no committed offset. @default false */
  readonly fromBeginning?: boolean;
  /**
   * Runs once per message; resolve when the message is done, throw to retry or dead-letter it.
   * @default none: exactly one of `handler` and `batchHandler` is required
   */
  readonly handler?: MessageHandler<T>;
  /**
   * Runs once per batch of messages, for sinks that are cheaper in bulk
   * (see docs/failures.md, "Batch handlers"); instead of `handler`.
   * @default none: exactly one of `handler` and `batchHandler` is required
   */
  readonly batchHandler?: BatchHandler<T>;
  /** How batches for `batchHandler` are formed. @default each field's own default (see {@link BatchOptions}) */
  readonly batch?: BatchOptions;
  /**
   * Turns the raw message into the handler's `payload`; a throw sends the message to the DLQ at once.
   * @default none: `payload` is the raw `value`
   */
  readonly deserialize?: Deserializer<T>;
  /** @default 'partition' */
  readonly ordering?: OrderingMode;
  /** Handlers running at once, across all partitions. @default 16 */
  readonly concurrency?: number;
  /** Let the concurrency limit follow downstream latency. @default disabled */
  readonly adaptiveConcurrency?: AdaptiveConcurrencyOptions;
  /** Messages fetched but not done, at most. @default 1000 */
  readonly maxInFlight?: number;
  /** Bytes (key + value + headers) fetched but not done, at most. @default 67108864 (64 MiB) */
  readonly maxInFlightBytes?: number;
  /**
   * Fraction of `maxInFlight` / `maxInFlightBytes` below which a queue-full
   * pause ends (the low mark; the high mark is the limit itself). @default 0.5
   */
  readonly resumeThreshold?: number;
  /** Pause on downstream latency. @default disabled */
  readonly latency?: LatencyOptions;
  /** Handler attempts that take longer fail with `HandlerTimeoutError`. @default 30000 */
  readonly handlerTimeoutMs?: number;
  /**
   * Retries in place with backoff.
   * @default each field's own default (see {@link RetryOptions}): 3 attempts, 200 ms doubling up to 30 s
   */
  readonly retry?: RetryOptions;
  /**
   * Dead-letter routing. Without it, a message that exhausts its attempts holds its partition and keeps retrying.
   * @default disabled
   */
  readonly deadLetter?: DeadLetterOptions;
  /** Circuit breaker around the handler. @default enabled with its defaults; `false` disables */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * The longest time between commits while messages complete. Commits also
   * come after `commitEveryMessages` completions, and soon after a
   * partition's first completion since it was assigned.
   * @default 1000
   */
  readonly commitIntervalMs?: number;
  /**
   * Completions that ask for a commit before `commitIntervalMs` is up: the
   * work a crash can make the next owner redo stays near this count.
   * Commits asked for this way start at least 50 ms apart, one at a time.
   * @default 500
   */
  readonly commitEveryMessages?: number;
  /**
   * A KafkaJS admin client (`kafka.admin()`), connected when needed and
   * never disconnected here. With it, a partition's new owner (after a
   * crash, a restart or a rebalance) reads the metadata committed beside
   * the offset and skips the messages above it that were already done;
   * without it, commits still carry that metadata, but the new owner
   * starts from the plain committed offset and redoes them.
   * @default none
   */
  readonly admin?: ProgressAdmin;
  /** On a rebalance noticed while holding the fetch loop, wait this long for in-flight work before rejoining. @default 10000 */
  readonly rebalanceDrainTimeoutMs?: number;
  /** Default for `close()`. @default 30000 */
  readonly closeDrainTimeoutMs?: number;
  /**
   * Partitions whose fetched batches are admitted at once (KafkaJS's
   * `partitionsConsumedConcurrently`). @default min(8, concurrency)
   */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * How often the consumer's own lag (per assigned partition, from each
   * batch's high watermark: no extra request) is emitted as `lag.sample`.
   * @default 5000
   */
  readonly lagSampleIntervalMs?: number;
  /**
   * Opt-in load shedding: messages older than `maxAgeMs` when they come up
   * for processing are dead-lettered or skipped (`action`), with a
   * `message.shed` event, and their offsets count as done. @default disabled
   */
  readonly shed?: ShedOptions;
  /**
   * Pause every partition (reason `downstream-lag`) while the group of the
   * next pipeline stage is too far behind; see {@link DownstreamLagOptions}.
   * @default disabled
   */
  readonly downstreamLag?: DownstreamLagOptions;
  /** A pino-shaped logger (`debug`, `info`, `warn`, `error`). @default silent: nothing goes to the console */
  readonly logger?: Logger;
  /**
   * Time source (milliseconds) for rolling windows, timeouts and flow decisions; inject one in tests.
   * @default performance.now()
   */
  readonly clock?: Clock;
}

export interface ResolvedOptions<T> {
  readonly topics: readonly (string | RegExp)[];
  readonly fromBeginning: boolean;
  /** The per-message handler; with `batchHandler`, a call of it with one message. */
  readonly handler: MessageHandler<T>;
  readonly batchHandler: BatchHandler<T> | undefined;
  /** Set with `batchHandler` only. */
  readonly batch:
    | {
        readonly maxMessages: number;
        readonly maxBytes: number;
        readonly maxWaitMs: number;
      }
    | undefined;
  readonly deserialize: Deserializer<T> | undefined;
  readonly ordering: OrderingMode;
  readonly concurrency: number;
  readonly adaptiveConcurrency:
    | {
        readonly minConcurrency: number;
        readonly maxConcurrency: number;
        readonly targetLatencyMs: number;
        readonly decreaseFactor: number;
        readonly increaseStep: number;
        readonly intervalMs: number;
      }
    | undefined;
  readonly maxInFlight: number;
  readonly maxInFlightBytes: number;
  readonly resumeThreshold: number;
  readonly latency:
    | {
        readonly percentile: number;
        readonly pauseAboveMs: number;
        readonly resumeBelowMs: number;
        readonly probes: number;
        readonly windowMs: number;
      }
    | undefined;
  readonly latencyPercentile: number;
  readonly latencyWindowMs: number;
  readonly handlerTimeoutMs: number;
  readonly retry: {
    readonly maxAttempts: number;
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    readonly multiplier: number;
    readonly jitter: number;
    readonly isRetriable: ((error: Error) => boolean) | undefined;
  };
  readonly deadLetter:
    | {
        readonly producer: RecordSender;
        readonly topic: (message: InboundMessage<unknown>) => string;
        readonly includeStack: boolean;
        readonly maxStackLength: number;
        readonly retryInitialDelayMs: number;
        readonly retryMaxDelayMs: number;
      }
    | undefined;
  readonly circuitBreaker:
    | {
        readonly errorThresholdPercentage: number;
        readonly volumeThreshold: number;
        readonly resetTimeoutMs: number;
        readonly rollingCountTimeoutMs: number;
        readonly rollingCountBuckets: number;
      }
    | undefined;
  readonly commitIntervalMs: number;
  readonly commitEveryMessages: number;
  readonly admin: ProgressAdmin | undefined;
  readonly rebalanceDrainTimeoutMs: number;
  readonly closeDrainTimeoutMs: number;
  readonly partitionsConsumedConcurrently: number;
  readonly lagSampleIntervalMs: number;
  readonly shed: Readonly<ShedOptions> | undefined;
  readonly downstreamLag: ResolvedDownstreamLag | undefined;
  readonly logger: Logger;
  readonly clock: Clock;
}

const TOP_KEYS = [
  'topics',
  'fromBeginning',
  'handler',
  'batchHandler',
  'batch',
  'deserialize',
  'ordering',
  'concurrency',
  'adaptiveConcurrency',
  'maxInFlight',
  'maxInFlightBytes',
  'resumeThreshold',
  'latency',
  'handlerTimeoutMs',
  'retry',
  'deadLetter',
  'circuitBreaker',
  'commitIntervalMs',
  'commitEveryMessages',
  'admin',
  'rebalanceDrainTimeoutMs',
  'closeDrainTimeoutMs',
  'partitionsConsumedConcurrently',
  'lagSampleIntervalMs',
  'shed',
  'downstreamLag',
  'logger',
  'clock',
] as const;

/** Validates every option and returns a frozen copy with defaults filled in. The input is never modified. */
export function resolveOptions<T>(input: BackpressureConsumerOptions<T>): ResolvedOptions<T> {
  const raw = plainObject('options', input);
  if (raw === undefined) throw new ConfigError('options', 'an object', input);
  knownKeys('', raw, TOP_KEYS);

  const topics = raw['topics'];
  if (
    !Array.isArray(topics) ||
    topics.length === 0 ||
    !topics.every((t) => (typeof t === 'string' && t.trim() !== '') || t instanceof RegExp)
  ) {
    throw new ConfigError('topics', 'a non-empty array of topic names or RegExps', topics);
  }

  const concurrency = integer('concurrency', raw['concurrency'], 16, { min: 1, max: 100_000 });
  const maxInFlight = integer('maxInFlight', raw['maxInFlight'], 1000, { min: 1 });
  const maxInFlightBytes = integer('maxInFlightBytes', raw['maxInFlightBytes'], 64 * 1024 * 1024, {
    min: 1,
  });
  const resumeThreshold = number('resumeThreshold', raw['resumeThreshold'], 0.5, {
    min: 0,
    max: 1,
    exclusiveMin: true,
  });
  if (resumeThreshold >= 1)
    throw new ConfigError(
      'resumeThreshold',
      'a fraction below 1 (the low mark must be under the high mark)',
      resumeThreshold,
    );

  const { latency, latencyPercentile, latencyWindowMs } = resolveLatency(raw);
  const adaptiveConcurrency = resolveAdaptiveConcurrency(raw, concurrency);
  const retry = resolveRetry(raw);
  const deadLetter = resolveDeadLetter(raw);
  const circuitBreaker = resolveCircuitBreaker(raw);
  const shed = resolveShed(raw, deadLetter);
  const { handler, batchHandler, batch } = resolveBatch<T>(raw, maxInFlight);
  const logger = validLogger('logger', raw['logger']);
  const clock = validClock('clock', raw['clock']);

  const handlerTimeoutMs = duration('handlerTimeoutMs', raw['handlerTimeoutMs'], 30_000, {
    min: 1,
  });
  const commitIntervalMs = duration('commitIntervalMs', raw['commitIntervalMs'], 1000, { min: 1 });
  const commitEveryMessages = integer('commitEveryMessages', raw['commitEveryMessages'], 500, {
    min: 1,
  });
  const admin = raw['admin'];
  if (
    admin !== undefined &&
    (typeof admin !== 'object' ||
      admin === null ||
      typeof (admin as Partial<ProgressAdmin>).connect !== 'function' ||
      typeof (admin as Partial<ProgressAdmin>).fetchOffsets !== 'function')
  ) {
    throw new ConfigError('admin', 'a KafkaJS Admin (kafka.admin())', admin);
  }
  const rebalanceDrainTimeoutMs = duration(
    'rebalanceDrainTimeoutMs',
    raw['rebalanceDrainTimeoutMs'],
    10_000,
    { min: 0 },
  );
  const closeDrainTimeoutMs = duration('closeDrainTimeoutMs', raw['closeDrainTimeoutMs'], 30_000, {
    min: 0,
  });

  return Object.freeze({
    topics: Object.freeze([...(topics as (string | RegExp)[])]),
    fromBeginning: boolean('fromBeginning', raw['fromBeginning'], false),
    handler,
    batchHandler,
    batch,
    deserialize: optionalFunction<Deserializer<T>>('deserialize', raw['deserialize']),
    ordering: oneOf('ordering', raw['ordering'], ORDERING_MODES, 'partition'),
    concurrency: adaptiveConcurrency ? adaptiveConcurrency.maxConcurrency : concurrency,
    adaptiveConcurrency,
    maxInFlight,
    maxInFlightBytes,
    resumeThreshold,
    latency,
    latencyPercentile,
    latencyWindowMs,
    handlerTimeoutMs,
    retry,
    deadLetter,
    circuitBreaker,
    commitIntervalMs,
    commitEveryMessages,
    admin: admin as ProgressAdmin | undefined,
    rebalanceDrainTimeoutMs,
    closeDrainTimeoutMs,
    // Batches of several partitions admitted side by side: with one, a
    // partition waiting for its share of the budget holds back the others'
    // batches of the same fetch, and key or unordered ordering runs short
    // of keys to fill its concurrency.
    partitionsConsumedConcurrently: integer(
      'partitionsConsumedConcurrently',
      raw['partitionsConsumedConcurrently'],
      Math.min(8, adaptiveConcurrency ? adaptiveConcurrency.maxConcurrency : concurrency),
      { min: 1, max: 1000 },
    ),
    lagSampleIntervalMs: duration('lagSampleIntervalMs', raw['lagSampleIntervalMs'], 5000, {
      min: 10,
    }),
    shed,
    downstreamLag: resolveDownstreamLag(raw['downstreamLag']),
    logger: logger ?? silentLogger,
    clock: clock ?? systemClock,
  });
}
