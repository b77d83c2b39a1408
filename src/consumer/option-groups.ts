import { ConfigError } from '../errors.js';
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
} from '../shared/validate.js';
import { singleCall } from './dispatch/batch.js';
import { SHED_ACTIONS } from './failure/shedding.js';
import type {
  BatchHandler,
  InboundMessage,
  MessageHandler,
  RecordSender,
  ResolvedOptions,
} from './options.js';

/**
 * The resolvers of the option groups (latency, adaptive concurrency, retry,
 * dead letters, circuit breaker, shedding): each validates its group,
 * fills its defaults and returns it frozen. `resolveOptions` calls them.
 */

type Raw = Record<string, unknown>;
type Resolved = ResolvedOptions<unknown>;

export function resolveLatency(raw: Raw): {
  latency: Resolved['latency'];
  latencyPercentile: number;
  latencyWindowMs: number;
} {
  const latencyRaw = plainObject('latency', raw['latency']);
  let latency: Resolved['latency'];
  let latencyPercentile = 95;
  let latencyWindowMs = 10_000;
  if (latencyRaw) {
    knownKeys('latency', latencyRaw, [
      'percentile',
      'pauseAboveMs',
      'resumeBelowMs',
      'probes',
      'windowMs',
    ]);
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
      probes: integer('latency.probes', latencyRaw['probes'], 3, { min: 1, max: 1000 }),
      windowMs: latencyWindowMs,
    });
  }

  return { latency, latencyPercentile, latencyWindowMs };
}

export function resolveAdaptiveConcurrency(
  raw: Raw,
  concurrency: number,
): Resolved['adaptiveConcurrency'] {
  const adaptiveRaw = plainObject('adaptiveConcurrency', raw['adaptiveConcurrency']);
  let adaptiveConcurrency: Resolved['adaptiveConcurrency'];
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
        0.5,
        { min: 0, max: 1, exclusiveMin: true },
      ),
      increaseStep: integer('adaptiveConcurrency.increaseStep', adaptiveRaw['increaseStep'], 1, {
        min: 1,
      }),
      intervalMs: duration('adaptiveConcurrency.intervalMs', adaptiveRaw['intervalMs'], 250, {
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

  return adaptiveConcurrency;
}

/**
 * `handler` or `batchHandler` (exactly one), and `batch`, which only a
 * batch handler takes. With a batch handler, `handler` is that handler
 * called on one message: the path a message alone takes.
 */
export function resolveBatch<T>(
  raw: Raw,
  maxInFlight: number,
): {
  handler: MessageHandler<T>;
  batchHandler: BatchHandler<T> | undefined;
  batch: ResolvedOptions<T>['batch'];
} {
  const batchRaw = plainObject('batch', raw['batch']);
  if (raw['batchHandler'] === undefined) {
    if (batchRaw !== undefined) {
      throw new ConfigError('batch', 'no `batch` option without `batchHandler`', batchRaw);
    }
    return {
      handler: requiredFunction<MessageHandler<T>>('handler', raw['handler']),
      batchHandler: undefined,
      batch: undefined,
    };
  }
  if (raw['handler'] !== undefined) {
    throw new ConfigError(
      'handler',
      'no `handler` beside `batchHandler` (they are alternatives: give one)',
      raw['handler'],
    );
  }
  const batchHandler = requiredFunction<BatchHandler<T>>('batchHandler', raw['batchHandler']);
  const options = batchRaw ?? {};
  knownKeys('batch', options, ['maxMessages', 'maxBytes', 'maxWaitMs']);
  const maxMessages = integer('batch.maxMessages', options['maxMessages'], 100, {
    min: 1,
    max: 1_000_000,
  });
  if (maxMessages > maxInFlight) {
    throw new ConfigError(
      'batch.maxMessages',
      `at most \`maxInFlight\` (${maxInFlight}): a batch is made of messages in flight`,
      maxMessages,
    );
  }
  return {
    handler: singleCall(batchHandler),
    batchHandler,
    batch: Object.freeze({
      maxMessages,
      maxBytes: integer('batch.maxBytes', options['maxBytes'], 1024 * 1024, { min: 1 }),
      maxWaitMs: duration('batch.maxWaitMs', options['maxWaitMs'], 10, { min: 0 }),
    }),
  };
}

export function resolveRetry(raw: Raw): Resolved['retry'] {
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
  return Object.freeze({
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
}

export function resolveDeadLetter(raw: Raw): Resolved['deadLetter'] {
  const dlqRaw = plainObject('deadLetter', raw['deadLetter']);
  let deadLetter: Resolved['deadLetter'];
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

  return deadLetter;
}

export function resolveCircuitBreaker(raw: Raw): Resolved['circuitBreaker'] {
  let circuitBreaker: Resolved['circuitBreaker'];
  if (raw['circuitBreaker'] !== false) {
    const cbRaw = plainObject('circuitBreaker', raw['circuitBreaker']) ?? {};
    knownKeys('circuitBreaker', cbRaw, [
      'errorThresholdPercentage',
      'volumeThreshold',
      'resetTimeoutMs',
      'rollingCountTimeoutMs',
      'rollingCountBuckets',
      'healthCheck',
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
      healthCheck: optionalFunction<(signal: AbortSignal) => Promise<boolean>>(
        'circuitBreaker.healthCheck',
        cbRaw['healthCheck'],
      ),
    });
  }

  return circuitBreaker;
}

export function resolveShed(raw: Raw, deadLetter: Resolved['deadLetter']): Resolved['shed'] {
  const shedRaw = plainObject('shed', raw['shed']);
  let shed: Resolved['shed'];
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
      // An age compared with the clock, never a timer: older than 24.8 days is allowed.
      maxAgeMs: duration('shed.maxAgeMs', shedRaw['maxAgeMs'], 0, {
        min: 1,
        max: Number.MAX_SAFE_INTEGER,
      }),
      action,
    });
  }

  return shed;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function isTopicName(name: string): boolean {
  return TOPIC_NAME.test(name) && name !== '.' && name !== '..';
}
