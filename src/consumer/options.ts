import type { IHeaders, KafkaMessage, ProducerRecord, RecordMetadata } from 'kafkajs';
import { ConfigError } from '../errors.js';
import { systemClock, type Clock } from '../shared/clock.js';
import {
  resolveDownstreamLag,
  type DownstreamLagOptions,
  type ResolvedDownstreamLag,
} from './flow/downstream-lag.js';
import { SHED_ACTIONS, type ShedOptions } from './failure/shedding.js';
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
  requiredFunction,
  logger as validLogger,
  clock as validClock,
} from '../shared/validate.js';

export type OrderingMode = 'partition' | 'key' | 'unordered';
export const ORDERING_MODES: readonly OrderingMode[] = ['partition', 'key', 'unordered'];

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

export interface RetryOptions {
  /** Attempts in all, the first included. @default 3 */
  readonly maxAttempts?: number;
  /** Delay after the first failure. @default 200 */
  readonly initialDelayMs?: number;
  /** Upper bound of the delay. @default 30000 */
  readonly maxDelayMs?: number;
  /** Growth of the delay per attempt. @default 2 */
  readonly multiplier?: number;
  /** Fraction of each delay that is randomized (0..1). @default 0.5 */
  readonly jitter?: number;
  /**
   * Decides whether an error is worth another attempt. By default everything
   * is retried except a {@link NonRetriableError} or an error with `retriable === false`.
   */
  readonly isRetriable?: (error: Error) => boolean;
}

export interface DeadLetterOptions {
  /** Where dead letters are written: acknowledged by all in-sync replicas before the offset counts as done. */
  readonly producer: RecordSender;
  /**
   * The dead-letter topic, or a function of the message choosing it.
   * @default `${message.topic}.dlq`
   */
  readonly topic?: string | ((message: InboundMessage<unknown>) => string);
  /** Add the error's stack (truncated to `maxStackLength`) as a header. @default false */
  readonly includeStack?: boolean;
  /** @default 2000 */
  readonly maxStackLength?: number;
  /** First delay between attempts to write a dead letter when the write fails. @default 500 */
  readonly retryInitialDelayMs?: number;
  /** @default 30000 */
  readonly retryMaxDelayMs?: number;
}

export interface CircuitBreakerOptions {
  /** Failure percentage over the rolling window that opens the circuit. @default 50 */
  readonly errorThresholdPercentage?: number;
  /** Calls in the window before the circuit may open at all. @default 10 */
  readonly volumeThreshold?: number;
  /** Time open before a probe is let through (half-open). @default 10000 */
  readonly resetTimeoutMs?: number;
  /** Length of the rolling statistics window. @default 10000 */
  readonly rollingCountTimeoutMs?: number;
  /** Buckets in the rolling window. @default 10 */
  readonly rollingCountBuckets?: number;
}

export interface LatencyOptions {
  /** Which percentile of handler time drives the trigger. @default 95 */
  readonly percentile?: number;
  /** Pause every partition while the percentile is above this. */
  readonly pauseAboveMs: number;
  /** Resume once the percentile falls below this (must be lower). @default pauseAboveMs / 2 */
  readonly resumeBelowMs?: number;
  /** Length of the rolling window. @default 10000 */
  readonly windowMs?: number;
}

export interface AdaptiveConcurrencyOptions {
  /** @default 1 */
  readonly minConcurrency?: number;
  /** @default the `concurrency` option */
  readonly maxConcurrency?: number;
  /** Latency (of the `latency.percentile`, default p95) above which the limit shrinks. */
  readonly targetLatencyMs: number;
  /** @default 0.9 */
  readonly decreaseFactor?: number;
  /** @default 1 */
  readonly increaseStep?: number;
  /** How often the limit is reconsidered. @default 1000 */
  readonly intervalMs?: number;
}

export interface BackpressureConsumerOptions<T = Buffer | null> {
  /** Topics to subscribe to (names or patterns). */
  readonly topics: readonly (string | RegExp)[];
  /** Start from the earliest offset when the group has no committed offset. @default false */
  readonly fromBeginning?: boolean;
  /** Runs once per message; resolve when the message is done, throw to retry or dead-letter it. */
  readonly handler: MessageHandler<T>;
  /** Turns the raw message into the handler's `payload`; a throw sends the message to the DLQ at once. */
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
  readonly retry?: RetryOptions;
  /** Dead-letter routing. Without it, a message that exhausts its attempts holds its partition and keeps retrying. */
  readonly deadLetter?: DeadLetterOptions;
  /** Circuit breaker around the handler. @default enabled with its defaults; `false` disables */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /** How often done offsets are committed. @default 5000 */
  readonly commitIntervalMs?: number;
  /** On a rebalance noticed while holding the fetch loop, wait this long for in-flight work before rejoining. @default 10000 */
  readonly rebalanceDrainTimeoutMs?: number;
  /** Default for `close()`. @default 30000 */
  readonly closeDrainTimeoutMs?: number;
  /** KafkaJS workers calling the batch handler at once. @default 1 */
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
  readonly logger?: Logger;
  /** For tests. @default performance.now() */
  readonly clock?: Clock;
}

export interface ResolvedOptions<T> {
  readonly topics: readonly (string | RegExp)[];
  readonly fromBeginning: boolean;
  readonly handler: MessageHandler<T>;
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

  const latencyRaw = plainObject('latency', raw['latency']);
  let latency: ResolvedOptions<T>['latency'];
  let latencyPercentile = 95;
  let latencyWindowMs = 10_000;
  if (latencyRaw) {
    knownKeys('latency', latencyRaw, ['percentile', 'pauseAboveMs', 'resumeBelowMs', 'windowMs']);
    latencyPercentile = number('latency.percentile', latencyRaw['percentile'], 95, {
      min: 0,
      max: 100,
      exclusiveMin: true,
    });
    if (latencyRaw['pauseAboveMs'] === undefined)
      throw new ConfigError('latency.pauseAboveMs', 'a number of milliseconds > 0', undefined);
    const pauseAboveMs = number('latency.pauseAboveMs', latencyRaw['pauseAboveMs'], 0, {
      min: 0,
      exclusiveMin: true,
    });
    const resumeBelowMs = number(
      'latency.resumeBelowMs',
      latencyRaw['resumeBelowMs'],
      pauseAboveMs / 2,
      { min: 0, exclusiveMin: true },
    );
    if (!(resumeBelowMs < pauseAboveMs)) {
      throw new ConfigError(
        'latency.resumeBelowMs',
        `a value below \`latency.pauseAboveMs\` (${pauseAboveMs})`,
        resumeBelowMs,
      );
    }
    latencyWindowMs = duration('latency.windowMs', latencyRaw['windowMs'], 10_000, { min: 10 });
    latency = Object.freeze({
      percentile: latencyPercentile,
      pauseAboveMs,
      resumeBelowMs,
      windowMs: latencyWindowMs,
    });
  }

  const adaptiveRaw = plainObject('adaptiveConcurrency', raw['adaptiveConcurrency']);
  let adaptiveConcurrency: ResolvedOptions<T>['adaptiveConcurrency'];
  if (adaptiveRaw) {
    knownKeys('adaptiveConcurrency', adaptiveRaw, [
      'minConcurrency',
      'maxConcurrency',
      'targetLatencyMs',
      'decreaseFactor',
      'increaseStep',
      'intervalMs',
    ]);
    const minConcurrency = integer(
      'adaptiveConcurrency.minConcurrency',
      adaptiveRaw['minConcurrency'],
      1,
      { min: 1 },
    );
    const maxConcurrency = integer(
      'adaptiveConcurrency.maxConcurrency',
      adaptiveRaw['maxConcurrency'],
      concurrency,
      { min: 1, max: 100_000 },
    );
    if (minConcurrency > maxConcurrency) {
      throw new ConfigError(
        'adaptiveConcurrency.minConcurrency',
        `at most \`adaptiveConcurrency.maxConcurrency\` (${maxConcurrency})`,
        minConcurrency,
      );
    }
    if (adaptiveRaw['targetLatencyMs'] === undefined) {
      throw new ConfigError(
        'adaptiveConcurrency.targetLatencyMs',
        'a number of milliseconds > 0',
        undefined,
      );
    }
    adaptiveConcurrency = Object.freeze({
      minConcurrency,
      maxConcurrency,
      targetLatencyMs: number(
        'adaptiveConcurrency.targetLatencyMs',
        adaptiveRaw['targetLatencyMs'],
        0,
        { min: 0, exclusiveMin: true },
      ),
      decreaseFactor: number(
        'adaptiveConcurrency.decreaseFactor',
        adaptiveRaw['decreaseFactor'],
        0.9,
        { min: 0, max: 1, exclusiveMin: true },
      ),
      increaseStep: integer('adaptiveConcurrency.increaseStep', adaptiveRaw['increaseStep'], 1, {
        min: 1,
      }),
      intervalMs: duration('adaptiveConcurrency.intervalMs', adaptiveRaw['intervalMs'], 1000, {
        min: 10,
      }),
    });
    if (adaptiveConcurrency.decreaseFactor >= 1) {
      throw new ConfigError(
        'adaptiveConcurrency.decreaseFactor',
        'a fraction below 1',
        adaptiveConcurrency.decreaseFactor,
      );
    }
  }

  const retryRaw = plainObject('retry', raw['retry']) ?? {};
  knownKeys('retry', retryRaw, [
    'maxAttempts',
    'initialDelayMs',
    'maxDelayMs',
    'multiplier',
    'jitter',
    'isRetriable',
  ]);
  const initialDelayMs = duration('retry.initialDelayMs', retryRaw['initialDelayMs'], 200, {
    min: 0,
  });
  const maxDelayMs = duration('retry.maxDelayMs', retryRaw['maxDelayMs'], 30_000, { min: 0 });
  if (maxDelayMs < initialDelayMs) {
    throw new ConfigError(
      'retry.maxDelayMs',
      `at least \`retry.initialDelayMs\` (${initialDelayMs})`,
      maxDelayMs,
    );
  }
  const retry = Object.freeze({
    maxAttempts: integer('retry.maxAttempts', retryRaw['maxAttempts'], 3, { min: 1, max: 1000 }),
    initialDelayMs,
    maxDelayMs,
    multiplier: number('retry.multiplier', retryRaw['multiplier'], 2, { min: 1 }),
    jitter: number('retry.jitter', retryRaw['jitter'], 0.5, { min: 0, max: 1 }),
    isRetriable: optionalFunction<(error: Error) => boolean>(
      'retry.isRetriable',
      retryRaw['isRetriable'],
    ),
  });

  const dlqRaw = plainObject('deadLetter', raw['deadLetter']);
  let deadLetter: ResolvedOptions<T>['deadLetter'];
  if (dlqRaw) {
    knownKeys('deadLetter', dlqRaw, [
      'producer',
      'topic',
      'includeStack',
      'maxStackLength',
      'retryInitialDelayMs',
      'retryMaxDelayMs',
    ]);
    const producer = dlqRaw['producer'] as RecordSender | undefined;
    if (typeof producer !== 'object' || producer === null || typeof producer.send !== 'function') {
      throw new ConfigError(
        'deadLetter.producer',
        'an object with a send(record) method (a KafkaJS Producer or RateLimitedProducer)',
        producer,
      );
    }
    const topicOption = dlqRaw['topic'];
    let topic: (message: InboundMessage<unknown>) => string;
    if (topicOption === undefined) topic = (message) => `${message.topic}.dlq`;
    else if (typeof topicOption === 'string') {
      if (!isTopicName(topicOption))
        throw new ConfigError(
          'deadLetter.topic',
          'a valid Kafka topic name ([a-zA-Z0-9._-], 1..249 chars) or a function',
          topicOption,
        );
      topic = () => topicOption;
    } else if (typeof topicOption === 'function') {
      const chooser = topicOption as (message: InboundMessage<unknown>) => unknown;
      // Checked per message: a chooser returning '' must not send to a bogus topic.
      topic = (message) => {
        const chosen = chooser(message);
        if (typeof chosen !== 'string' || !isTopicName(chosen)) {
          throw new ConfigError(
            'deadLetter.topic',
            'the function to return a valid Kafka topic name',
            chosen,
          );
        }
        return chosen;
      };
    } else {
      throw new ConfigError(
        'deadLetter.topic',
        'a topic name or a function of the message',
        topicOption,
      );
    }
    const retryInitial = duration(
      'deadLetter.retryInitialDelayMs',
      dlqRaw['retryInitialDelayMs'],
      500,
      { min: 1 },
    );
    const retryMax = duration('deadLetter.retryMaxDelayMs', dlqRaw['retryMaxDelayMs'], 30_000, {
      min: 1,
    });
    if (retryMax < retryInitial) {
      throw new ConfigError(
        'deadLetter.retryMaxDelayMs',
        `at least \`deadLetter.retryInitialDelayMs\` (${retryInitial})`,
        retryMax,
      );
    }
    deadLetter = Object.freeze({
      producer,
      topic,
      includeStack: boolean('deadLetter.includeStack', dlqRaw['includeStack'], false),
      maxStackLength: integer('deadLetter.maxStackLength', dlqRaw['maxStackLength'], 2000, {
        min: 1,
      }),
      retryInitialDelayMs: retryInitial,
      retryMaxDelayMs: retryMax,
    });
  }

  let circuitBreaker: ResolvedOptions<T>['circuitBreaker'];
  if (raw['circuitBreaker'] !== false) {
    const cbRaw = plainObject('circuitBreaker', raw['circuitBreaker']) ?? {};
    knownKeys('circuitBreaker', cbRaw, [
      'errorThresholdPercentage',
      'volumeThreshold',
      'resetTimeoutMs',
      'rollingCountTimeoutMs',
      'rollingCountBuckets',
    ]);
    const rollingCountTimeoutMs = duration(
      'circuitBreaker.rollingCountTimeoutMs',
      cbRaw['rollingCountTimeoutMs'],
      10_000,
      { min: 10 },
    );
    const rollingCountBuckets = integer(
      'circuitBreaker.rollingCountBuckets',
      cbRaw['rollingCountBuckets'],
      10,
      { min: 1 },
    );
    if (rollingCountTimeoutMs % rollingCountBuckets !== 0) {
      throw new ConfigError(
        'circuitBreaker.rollingCountBuckets',
        `a divisor of \`circuitBreaker.rollingCountTimeoutMs\` (${rollingCountTimeoutMs})`,
        rollingCountBuckets,
      );
    }
    circuitBreaker = Object.freeze({
      errorThresholdPercentage: number(
        'circuitBreaker.errorThresholdPercentage',
        cbRaw['errorThresholdPercentage'],
        50,
        {
          min: 0,
          max: 100,
          exclusiveMin: true,
        },
      ),
      volumeThreshold: integer('circuitBreaker.volumeThreshold', cbRaw['volumeThreshold'], 10, {
        min: 1,
      }),
      resetTimeoutMs: duration('circuitBreaker.resetTimeoutMs', cbRaw['resetTimeoutMs'], 10_000, {
        min: 1,
      }),
      rollingCountTimeoutMs,
      rollingCountBuckets,
    });
  }

  const shedRaw = plainObject('shed', raw['shed']);
  let shed: ResolvedOptions<T>['shed'];
  if (shedRaw) {
    knownKeys('shed', shedRaw, ['maxAgeMs', 'action']);
    if (shedRaw['maxAgeMs'] === undefined) {
      throw new ConfigError(
        'shed.maxAgeMs',
        'an integer number of milliseconds, at least 1',
        undefined,
      );
    }
    if (shedRaw['action'] === undefined) {
      throw new ConfigError(
        'shed.action',
        `one of ${SHED_ACTIONS.map((a) => `"${a}"`).join(', ')} (no default: dropping data must be a choice)`,
        undefined,
      );
    }
    const action = oneOf('shed.action', shedRaw['action'], SHED_ACTIONS, 'dead-letter');
    if (action === 'dead-letter' && !deadLetter) {
      throw new ConfigError(
        'shed.action',
        '"skip", or "dead-letter" together with the `deadLetter` option',
        action,
      );
    }
    shed = Object.freeze({
      maxAgeMs: duration('shed.maxAgeMs', shedRaw['maxAgeMs'], 0, { min: 1 }),
      action,
    });
  }

  const logger = validLogger('logger', raw['logger']);
  const clock = validClock('clock', raw['clock']);

  const handlerTimeoutMs = duration('handlerTimeoutMs', raw['handlerTimeoutMs'], 30_000, {
    min: 1,
  });
  const commitIntervalMs = duration('commitIntervalMs', raw['commitIntervalMs'], 5000, { min: 1 });
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
    handler: requiredFunction<MessageHandler<T>>('handler', raw['handler']),
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
    rebalanceDrainTimeoutMs,
    closeDrainTimeoutMs,
    partitionsConsumedConcurrently: integer(
      'partitionsConsumedConcurrently',
      raw['partitionsConsumedConcurrently'],
      1,
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

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function isTopicName(name: string): boolean {
  return TOPIC_NAME.test(name) && name !== '.' && name !== '..';
}
