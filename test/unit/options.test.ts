import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/shared/clock.js';
import { BackpressureConsumer } from '../../src/consumer/backpressure-consumer.js';
import {
  BackpressureError,
  CircuitOpenError,
  ConfigError,
  DlqPublishError,
  ERROR_CODES,
  HandlerTimeoutError,
  NonRetriableError,
  ProducerBufferFullError,
  ProducerClosedError,
  ProducerDrainTimeoutError,
  ProducerStoppedError,
  describe as describeValue,
  isBackpressureError,
  messageOf,
  toError,
} from '../../src/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import {
  resolveOptions,
  type BackpressureConsumerOptions,
  type InboundMessage,
  type ResolvedOptions,
} from '../../src/consumer/options.js';
import {
  below,
  boolean,
  duration,
  integer,
  knownKeys,
  nonEmptyString,
  number,
  oneOf,
  optionalFunction,
  plainObject,
  requiredFunction,
} from '../../src/shared/validate.js';

const handler = async (): Promise<void> => {};
const producer = { send: async () => [] };
const base = { topics: ['orders'], handler } as const;

/** resolveOptions on input the type system would refuse: what JavaScript callers can pass. */
function resolveUnknown(input: unknown): ResolvedOptions<unknown> {
  return resolveOptions(input as BackpressureConsumerOptions<unknown>);
}

/**
 * A real KafkaJS consumer that is never connected: constructing a
 * BackpressureConsumer must validate everything without a broker.
 */
const kafka = new Kafka({
  clientId: 'options-test',
  brokers: ['127.0.0.1:9'],
  logLevel: logLevel.NOTHING,
});
function kafkaConsumer(): Consumer {
  return kafka.consumer({ groupId: 'options-test' });
}

/** The constructor on input the type system would refuse. */
function constructUnknown(
  input: unknown,
  consumer: unknown = kafkaConsumer(),
): BackpressureConsumer<unknown> {
  return new BackpressureConsumer(
    consumer as Consumer,
    input as BackpressureConsumerOptions<unknown>,
  );
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw, but the call returned');
}

function message(topic = 'orders'): InboundMessage<unknown> {
  return {
    topic,
    partition: 0,
    offset: '0',
    key: null,
    value: null,
    headers: {},
    timestamp: '0',
    payload: null,
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** A structuredClone-able picture of an options object: functions and RegExps by identity markers. */
function snapshot(value: unknown, seen = new Map<unknown, string>()): unknown {
  if (typeof value === 'function') {
    if (!seen.has(value)) seen.set(value, `fn#${seen.size}`);
    return seen.get(value);
  }
  if (value instanceof RegExp) return `re:${value.source}/${value.flags}`;
  if (Array.isArray(value)) return value.map((v) => snapshot(v, seen));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, snapshot(v, seen)]));
  }
  return value;
}

describe('resolveOptions', () => {
  describe('defaults', () => {
    it('fills every documented default', () => {
      const o = resolveOptions(base);
      expect(o.topics).toEqual(['orders']);
      expect(o.fromBeginning).toBe(false);
      expect(o.handler).toBe(handler);
      expect(o.deserialize).toBeUndefined();
      expect(o.ordering).toBe('partition');
      expect(o.concurrency).toBe(16);
      expect(o.adaptiveConcurrency).toBeUndefined();
      expect(o.maxInFlight).toBe(1000);
      expect(o.maxInFlightBytes).toBe(64 * 1024 * 1024);
      expect(o.resumeThreshold).toBe(0.5);
      expect(o.latency).toBeUndefined();
      expect(o.latencyPercentile).toBe(95);
      expect(o.latencyWindowMs).toBe(10_000);
      expect(o.handlerTimeoutMs).toBe(30_000);
      expect(o.retry).toEqual({
        maxAttempts: 3,
        initialDelayMs: 200,
        maxDelayMs: 30_000,
        multiplier: 2,
        jitter: 0.5,
        isRetriable: undefined,
      });
      expect(o.deadLetter).toBeUndefined();
      expect(o.circuitBreaker).toEqual({
        errorThresholdPercentage: 50,
        volumeThreshold: 10,
        resetTimeoutMs: 10_000,
        rollingCountTimeoutMs: 10_000,
        rollingCountBuckets: 10,
      });
      expect(o.commitIntervalMs).toBe(1000);
      expect(o.commitEveryMessages).toBe(500);
      expect(o.admin).toBeUndefined();
      expect(o.rebalanceDrainTimeoutMs).toBe(10_000);
      expect(o.closeDrainTimeoutMs).toBe(30_000);
      // min(8, concurrency): the default concurrency is 16.
      expect(o.partitionsConsumedConcurrently).toBe(8);
      expect(o.logger).toBe(silentLogger);
      expect(o.clock).toBe(systemClock);
    });

    it('fills nested defaults of latency, adaptiveConcurrency and deadLetter', () => {
      const o = resolveOptions({
        ...base,
        concurrency: 40,
        latency: { pauseAboveMs: 300 },
        adaptiveConcurrency: { targetLatencyMs: 150 },
        deadLetter: { producer },
      });
      expect(o.latency).toEqual({
        percentile: 95,
        pauseAboveMs: 300,
        resumeBelowMs: 150,
        probes: 3,
        windowMs: 10_000,
      });
      expect(o.adaptiveConcurrency).toEqual({
        minConcurrency: 1,
        maxConcurrency: 40,
        targetLatencyMs: 150,
        decreaseFactor: 0.5,
        increaseStep: 1,
        intervalMs: 250,
      });
      expect(o.concurrency).toBe(40);
      expect(o.deadLetter).toMatchObject({
        producer,
        includeStack: false,
        maxStackLength: 2000,
        retryInitialDelayMs: 500,
        retryMaxDelayMs: 30_000,
      });
      expect(o.deadLetter!.topic(message('payments'))).toBe('payments.dlq');
    });

    it('keeps given values', () => {
      const logger = { debug() {}, info() {}, warn() {}, error() {} };
      const clock = { now: () => 42 };
      const deserialize = (): string => 'x';
      const isRetriable = (): boolean => true;
      const o = resolveOptions({
        topics: ['a', /^b-.*/],
        handler,
        deserialize,
        fromBeginning: true,
        ordering: 'key',
        concurrency: 3,
        maxInFlight: 10,
        maxInFlightBytes: 4096,
        resumeThreshold: 0.25,
        latency: { percentile: 99, pauseAboveMs: 100, resumeBelowMs: 20, windowMs: 5000 },
        handlerTimeoutMs: 1234,
        retry: {
          maxAttempts: 7,
          initialDelayMs: 0,
          maxDelayMs: 0,
          multiplier: 1,
          jitter: 0,
          isRetriable,
        },
        deadLetter: {
          producer,
          topic: 'dead.letters',
          includeStack: true,
          maxStackLength: 10,
          retryInitialDelayMs: 5,
          retryMaxDelayMs: 5,
        },
        circuitBreaker: false,
        commitIntervalMs: 1,
        rebalanceDrainTimeoutMs: 0,
        closeDrainTimeoutMs: 0,
        partitionsConsumedConcurrently: 4,
        logger,
        clock,
      });
      expect(o.topics).toEqual(['a', /^b-.*/]);
      expect(o.deserialize).toBe(deserialize);
      expect(o.fromBeginning).toBe(true);
      expect(o.ordering).toBe('key');
      expect(o.concurrency).toBe(3);
      expect(o.maxInFlight).toBe(10);
      expect(o.maxInFlightBytes).toBe(4096);
      expect(o.resumeThreshold).toBe(0.25);
      expect(o.latency).toEqual({
        percentile: 99,
        pauseAboveMs: 100,
        resumeBelowMs: 20,
        probes: 3,
        windowMs: 5000,
      });
      expect(o.latencyPercentile).toBe(99);
      expect(o.latencyWindowMs).toBe(5000);
      expect(o.handlerTimeoutMs).toBe(1234);
      expect(o.retry).toEqual({
        maxAttempts: 7,
        initialDelayMs: 0,
        maxDelayMs: 0,
        multiplier: 1,
        jitter: 0,
        isRetriable,
      });
      expect(o.deadLetter!.topic(message())).toBe('dead.letters');
      expect(o.deadLetter).toMatchObject({ includeStack: true, maxStackLength: 10 });
      expect(o.circuitBreaker).toBeUndefined();
      expect(o.commitIntervalMs).toBe(1);
      expect(o.rebalanceDrainTimeoutMs).toBe(0);
      expect(o.closeDrainTimeoutMs).toBe(0);
      expect(o.partitionsConsumedConcurrently).toBe(4);
      expect(o.logger).toBe(logger);
      expect(o.clock).toBe(clock);
    });

    it('makes adaptiveConcurrency.maxConcurrency the concurrency limit', () => {
      const o = resolveOptions({
        ...base,
        concurrency: 8,
        adaptiveConcurrency: { targetLatencyMs: 50, minConcurrency: 2, maxConcurrency: 64 },
      });
      expect(o.concurrency).toBe(64);
      expect(o.adaptiveConcurrency).toMatchObject({ minConcurrency: 2, maxConcurrency: 64 });
    });

    it('accepts the edges of each range', () => {
      expect(() =>
        resolveOptions({
          ...base,
          concurrency: 100_000,
          maxInFlight: 1,
          maxInFlightBytes: 1,
          resumeThreshold: 0.999,
          latency: { pauseAboveMs: 0.5, percentile: 100, windowMs: 10 },
          adaptiveConcurrency: {
            targetLatencyMs: 1,
            minConcurrency: 5,
            maxConcurrency: 5,
            decreaseFactor: 0.01,
          },
          retry: { maxAttempts: 1000, jitter: 1 },
          circuitBreaker: {
            errorThresholdPercentage: 100,
            rollingCountTimeoutMs: 10,
            rollingCountBuckets: 10,
          },
          deadLetter: { producer, topic: 'a'.repeat(249) },
          partitionsConsumedConcurrently: 1000,
        }),
      ).not.toThrow();
    });
  });

  describe('partitionsConsumedConcurrently default', () => {
    it('follows the concurrency up to 8, so key and unordered ordering fill their concurrency without tuning', () => {
      expect(resolveOptions({ ...base, concurrency: 1 }).partitionsConsumedConcurrently).toBe(1);
      expect(resolveOptions({ ...base, concurrency: 3 }).partitionsConsumedConcurrently).toBe(3);
      expect(resolveOptions({ ...base, concurrency: 256 }).partitionsConsumedConcurrently).toBe(8);
      expect(
        resolveOptions({
          ...base,
          adaptiveConcurrency: { targetLatencyMs: 50, maxConcurrency: 4 },
        }).partitionsConsumedConcurrently,
      ).toBe(4);
    });
  });

  describe('immutability', () => {
    it('returns a frozen result with frozen nested objects', () => {
      const o = resolveOptions({
        ...base,
        latency: { pauseAboveMs: 100 },
        adaptiveConcurrency: { targetLatencyMs: 100 },
        deadLetter: { producer },
      });
      expect(Object.isFrozen(o)).toBe(true);
      for (const part of [
        o.topics,
        o.retry,
        o.latency,
        o.adaptiveConcurrency,
        o.deadLetter,
        o.circuitBreaker,
      ]) {
        expect(Object.isFrozen(part)).toBe(true);
      }
      expect(() => {
        (o as { concurrency: number }).concurrency = 99;
      }).toThrow(TypeError);
      expect(() => {
        (o.retry as { maxAttempts: number }).maxAttempts = 99;
      }).toThrow(TypeError);
      expect(() => (o.topics as string[]).push('x')).toThrow(TypeError);
    });

    it('never modifies the caller object (deep-frozen input, unchanged snapshot)', () => {
      const input = {
        topics: ['orders', /^audit\./],
        handler,
        concurrency: 4,
        latency: { pauseAboveMs: 500 },
        adaptiveConcurrency: { targetLatencyMs: 200 },
        retry: { maxAttempts: 5 },
        deadLetter: { producer, topic: (m: InboundMessage<unknown>) => `${m.topic}.dead` },
        circuitBreaker: { volumeThreshold: 20 },
        logger: { debug() {}, info() {}, warn() {}, error() {} },
      };
      const before = snapshot(input);
      // The snapshot is plain data.
      expect(structuredClone(before)).toEqual(before);
      deepFreeze(input);
      // Any write to the input would throw in strict mode.
      const o = resolveOptions(input);
      expect(snapshot(input)).toEqual(before);
      // Nothing of the input's own objects is handed out to be mutated later.
      expect(o.topics).not.toBe(input.topics);
      expect(o.retry).not.toBe(input.retry);
      expect(o.latency).not.toBe(input.latency);
      expect(o.adaptiveConcurrency).not.toBe(input.adaptiveConcurrency);
      expect(o.deadLetter).not.toBe(input.deadLetter);
      expect(o.circuitBreaker).not.toBe(input.circuitBreaker);
      expect(o.deadLetter!.topic(message('x'))).toBe('x.dead');
    });

    it('does not share state between two resolutions of the same input', () => {
      const input = { ...base, retry: { maxAttempts: 2 } };
      const a = resolveOptions(input);
      const b = resolveOptions(input);
      expect(a).not.toBe(b);
      expect(a.retry).toEqual(b.retry);
      expect(input).toEqual({ ...base, retry: { maxAttempts: 2 } });
    });
  });

  describe('invalid options: a ConfigError naming the option and the received value', () => {
    interface Row {
      readonly name: string;
      /** Merged over a valid base, or used as is when `raw` is set. */
      readonly patch?: Record<string, unknown>;
      readonly raw?: unknown;
      readonly option: string;
      readonly received: unknown;
      /** How the received value must appear in the message. */
      readonly shows: string;
    }

    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const rows: readonly Row[] = [
      // The options object itself
      { name: 'options null', raw: null, option: 'options', received: null, shows: 'null' },
      {
        name: 'options a string',
        raw: 'orders',
        option: 'options',
        received: 'orders',
        shows: '"orders" (string)',
      },
      {
        name: 'options undefined',
        raw: undefined,
        option: 'options',
        received: undefined,
        shows: 'undefined',
      },
      { name: 'options a number', raw: 42, option: 'options', received: 42, shows: '42 (number)' },
      {
        name: 'options an array',
        raw: [],
        option: 'options',
        received: [],
        shows: 'an array of length 0',
      },
      // Unknown keys
      {
        name: 'typo maxInflight',
        patch: { maxInflight: 10 },
        option: 'maxInflight',
        received: 10,
        shows: '10 (number)',
      },
      {
        name: 'typo in latency',
        patch: { latency: { pauseAboveMs: 100, windowMS: 5 } },
        option: 'latency.windowMS',
        received: 5,
        shows: '5 (number)',
      },
      {
        name: 'typo in retry',
        patch: { retry: { attempts: 3 } },
        option: 'retry.attempts',
        received: 3,
        shows: '3 (number)',
      },
      {
        name: 'unknown key in circuitBreaker',
        patch: { circuitBreaker: { timeout: 100 } },
        option: 'circuitBreaker.timeout',
        received: 100,
        shows: '100 (number)',
      },
      {
        name: 'unknown key in deadLetter',
        patch: { deadLetter: { producer, topics: 'x' } },
        option: 'deadLetter.topics',
        received: 'x',
        shows: '"x" (string)',
      },
      // Topics
      {
        name: 'topics missing',
        raw: { handler },
        option: 'topics',
        received: undefined,
        shows: 'undefined',
      },
      {
        name: 'topics empty',
        patch: { topics: [] },
        option: 'topics',
        received: [],
        shows: 'an array of length 0',
      },
      {
        name: "topics ['']",
        patch: { topics: [''] },
        option: 'topics',
        received: [''],
        shows: 'an array of length 1',
      },
      {
        name: 'topics blank',
        patch: { topics: ['ok', '  '] },
        option: 'topics',
        received: ['ok', '  '],
        shows: 'an array of length 2',
      },
      {
        name: 'topics numbers',
        patch: { topics: [1, 2] },
        option: 'topics',
        received: [1, 2],
        shows: 'an array of length 2',
      },
      {
        name: 'topics a string',
        patch: { topics: 'orders' },
        option: 'topics',
        received: 'orders',
        shows: '"orders" (string)',
      },
      // Handler and functions
      {
        name: 'handler missing',
        raw: { topics: ['orders'] },
        option: 'handler',
        received: undefined,
        shows: 'undefined',
      },
      {
        name: 'handler a string',
        patch: { handler: 'handle' },
        option: 'handler',
        received: 'handle',
        shows: '"handle" (string)',
      },
      {
        name: 'handler an object',
        patch: { handler: { run: 1 } },
        option: 'handler',
        received: { run: 1 },
        shows: '{"run":1} (object)',
      },
      {
        name: 'deserialize not a function',
        patch: { deserialize: 'json' },
        option: 'deserialize',
        received: 'json',
        shows: '"json" (string)',
      },
      // Limits
      {
        name: 'concurrency 0',
        patch: { concurrency: 0 },
        option: 'concurrency',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'concurrency -1',
        patch: { concurrency: -1 },
        option: 'concurrency',
        received: -1,
        shows: '-1 (number)',
      },
      {
        name: 'concurrency 1.5',
        patch: { concurrency: 1.5 },
        option: 'concurrency',
        received: 1.5,
        shows: '1.5 (number)',
      },
      {
        name: 'concurrency a string',
        patch: { concurrency: '4' },
        option: 'concurrency',
        received: '4',
        shows: '"4" (string)',
      },
      {
        name: 'concurrency above 100000',
        patch: { concurrency: 100_001 },
        option: 'concurrency',
        received: 100_001,
        shows: '100001 (number)',
      },
      {
        name: 'maxInFlight 0',
        patch: { maxInFlight: 0 },
        option: 'maxInFlight',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'maxInFlight 2.5',
        patch: { maxInFlight: 2.5 },
        option: 'maxInFlight',
        received: 2.5,
        shows: '2.5 (number)',
      },
      {
        name: 'maxInFlight Infinity',
        patch: { maxInFlight: Infinity },
        option: 'maxInFlight',
        received: Infinity,
        shows: 'Infinity (number)',
      },
      {
        name: 'maxInFlightBytes -1',
        patch: { maxInFlightBytes: -1 },
        option: 'maxInFlightBytes',
        received: -1,
        shows: '-1 (number)',
      },
      {
        name: 'maxInFlightBytes NaN',
        patch: { maxInFlightBytes: NaN },
        option: 'maxInFlightBytes',
        received: NaN,
        shows: 'NaN (number)',
      },
      {
        name: 'resumeThreshold 0',
        patch: { resumeThreshold: 0 },
        option: 'resumeThreshold',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'resumeThreshold 1',
        patch: { resumeThreshold: 1 },
        option: 'resumeThreshold',
        received: 1,
        shows: '1 (number)',
      },
      {
        name: 'resumeThreshold 1.5',
        patch: { resumeThreshold: 1.5 },
        option: 'resumeThreshold',
        received: 1.5,
        shows: '1.5 (number)',
      },
      {
        name: 'partitionsConsumedConcurrently 0',
        patch: { partitionsConsumedConcurrently: 0 },
        option: 'partitionsConsumedConcurrently',
        received: 0,
        shows: '0 (number)',
      },
      // Latency
      {
        name: 'latency missing pauseAboveMs',
        patch: { latency: {} },
        option: 'latency.pauseAboveMs',
        received: undefined,
        shows: 'undefined',
      },
      {
        name: 'latency pauseAboveMs 0',
        patch: { latency: { pauseAboveMs: 0 } },
        option: 'latency.pauseAboveMs',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'latency resumeBelowMs = pauseAboveMs',
        patch: { latency: { pauseAboveMs: 100, resumeBelowMs: 100 } },
        option: 'latency.resumeBelowMs',
        received: 100,
        shows: '100 (number)',
      },
      {
        name: 'latency resumeBelowMs > pauseAboveMs',
        patch: { latency: { pauseAboveMs: 100, resumeBelowMs: 150 } },
        option: 'latency.resumeBelowMs',
        received: 150,
        shows: '150 (number)',
      },
      {
        name: 'latency probes 0',
        patch: { latency: { pauseAboveMs: 100, probes: 0 } },
        option: 'latency.probes',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'latency percentile 0',
        patch: { latency: { pauseAboveMs: 100, percentile: 0 } },
        option: 'latency.percentile',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'latency percentile 101',
        patch: { latency: { pauseAboveMs: 100, percentile: 101 } },
        option: 'latency.percentile',
        received: 101,
        shows: '101 (number)',
      },
      {
        name: 'latency windowMs 5',
        patch: { latency: { pauseAboveMs: 100, windowMs: 5 } },
        option: 'latency.windowMs',
        received: 5,
        shows: '5 (number)',
      },
      {
        name: 'latency not an object',
        patch: { latency: 100 },
        option: 'latency',
        received: 100,
        shows: '100 (number)',
      },
      // Adaptive concurrency
      {
        name: 'adaptive min > max',
        patch: {
          adaptiveConcurrency: { targetLatencyMs: 100, minConcurrency: 10, maxConcurrency: 5 },
        },
        option: 'adaptiveConcurrency.minConcurrency',
        received: 10,
        shows: '10 (number)',
      },
      {
        name: 'adaptive min > default max (concurrency)',
        patch: { concurrency: 4, adaptiveConcurrency: { targetLatencyMs: 100, minConcurrency: 5 } },
        option: 'adaptiveConcurrency.minConcurrency',
        received: 5,
        shows: '5 (number)',
      },
      {
        name: 'adaptive decreaseFactor 1',
        patch: { adaptiveConcurrency: { targetLatencyMs: 100, decreaseFactor: 1 } },
        option: 'adaptiveConcurrency.decreaseFactor',
        received: 1,
        shows: '1 (number)',
      },
      {
        name: 'adaptive decreaseFactor 0',
        patch: { adaptiveConcurrency: { targetLatencyMs: 100, decreaseFactor: 0 } },
        option: 'adaptiveConcurrency.decreaseFactor',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'adaptive missing targetLatencyMs',
        patch: { adaptiveConcurrency: {} },
        option: 'adaptiveConcurrency.targetLatencyMs',
        received: undefined,
        shows: 'undefined',
      },
      {
        name: 'adaptive increaseStep 0',
        patch: { adaptiveConcurrency: { targetLatencyMs: 100, increaseStep: 0 } },
        option: 'adaptiveConcurrency.increaseStep',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'adaptive minConcurrency 0',
        patch: { adaptiveConcurrency: { targetLatencyMs: 100, minConcurrency: 0 } },
        option: 'adaptiveConcurrency.minConcurrency',
        received: 0,
        shows: '0 (number)',
      },
      // Ordering
      {
        name: "ordering 'fifo'",
        patch: { ordering: 'fifo' },
        option: 'ordering',
        received: 'fifo',
        shows: '"fifo" (string)',
      },
      {
        name: 'ordering a number',
        patch: { ordering: 1 },
        option: 'ordering',
        received: 1,
        shows: '1 (number)',
      },
      // Retry
      {
        name: 'retry.maxAttempts 0',
        patch: { retry: { maxAttempts: 0 } },
        option: 'retry.maxAttempts',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'retry.maxAttempts -1',
        patch: { retry: { maxAttempts: -1 } },
        option: 'retry.maxAttempts',
        received: -1,
        shows: '-1 (number)',
      },
      {
        name: 'retry.maxAttempts 1.5',
        patch: { retry: { maxAttempts: 1.5 } },
        option: 'retry.maxAttempts',
        received: 1.5,
        shows: '1.5 (number)',
      },
      {
        name: 'retry.maxDelayMs < initialDelayMs',
        patch: { retry: { initialDelayMs: 1000, maxDelayMs: 500 } },
        option: 'retry.maxDelayMs',
        received: 500,
        shows: '500 (number)',
      },
      {
        name: 'retry.maxDelayMs < default initialDelayMs',
        patch: { retry: { maxDelayMs: 100 } },
        option: 'retry.maxDelayMs',
        received: 100,
        shows: '100 (number)',
      },
      {
        name: 'retry.jitter 2',
        patch: { retry: { jitter: 2 } },
        option: 'retry.jitter',
        received: 2,
        shows: '2 (number)',
      },
      {
        name: 'retry.jitter -0.1',
        patch: { retry: { jitter: -0.1 } },
        option: 'retry.jitter',
        received: -0.1,
        shows: '-0.1 (number)',
      },
      {
        name: 'retry.multiplier 0.5',
        patch: { retry: { multiplier: 0.5 } },
        option: 'retry.multiplier',
        received: 0.5,
        shows: '0.5 (number)',
      },
      {
        name: 'retry.isRetriable not a function',
        patch: { retry: { isRetriable: true } },
        option: 'retry.isRetriable',
        received: true,
        shows: 'true (boolean)',
      },
      {
        name: 'retry an array',
        patch: { retry: [3] },
        option: 'retry',
        received: [3],
        shows: 'an array of length 1',
      },
      // Durations
      {
        name: 'handlerTimeoutMs 0',
        patch: { handlerTimeoutMs: 0 },
        option: 'handlerTimeoutMs',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'handlerTimeoutMs 1.5',
        patch: { handlerTimeoutMs: 1.5 },
        option: 'handlerTimeoutMs',
        received: 1.5,
        shows: '1.5 (number)',
      },
      {
        name: 'commitIntervalMs 0',
        patch: { commitIntervalMs: 0 },
        option: 'commitIntervalMs',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'commitEveryMessages 0',
        patch: { commitEveryMessages: 0 },
        option: 'commitEveryMessages',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'admin that is not a KafkaJS admin',
        patch: { admin: 'localhost:9092' as never },
        option: 'admin',
        received: 'localhost:9092',
        shows: 'localhost:9092',
      },
      {
        name: 'closeDrainTimeoutMs -1',
        patch: { closeDrainTimeoutMs: -1 },
        option: 'closeDrainTimeoutMs',
        received: -1,
        shows: '-1 (number)',
      },
      {
        name: 'rebalanceDrainTimeoutMs Infinity',
        patch: { rebalanceDrainTimeoutMs: Infinity },
        option: 'rebalanceDrainTimeoutMs',
        received: Infinity,
        shows: 'Infinity (number)',
      },
      // Dead letter
      {
        name: 'deadLetter without producer',
        patch: { deadLetter: {} },
        option: 'deadLetter.producer',
        received: undefined,
        shows: 'undefined',
      },
      {
        name: 'deadLetter.producer without send',
        patch: { deadLetter: { producer: {} } },
        option: 'deadLetter.producer',
        received: {},
        shows: '{} (object)',
      },
      {
        name: 'deadLetter.producer.send not a function',
        patch: { deadLetter: { producer: { send: 1 } } },
        option: 'deadLetter.producer',
        received: { send: 1 },
        shows: '{"send":1} (object)',
      },
      {
        name: "deadLetter.topic ''",
        patch: { deadLetter: { producer, topic: '' } },
        option: 'deadLetter.topic',
        received: '',
        shows: '"" (string)',
      },
      {
        name: "deadLetter.topic 'bad topic!'",
        patch: { deadLetter: { producer, topic: 'bad topic!' } },
        option: 'deadLetter.topic',
        received: 'bad topic!',
        shows: '"bad topic!" (string)',
      },
      {
        name: "deadLetter.topic '..'",
        patch: { deadLetter: { producer, topic: '..' } },
        option: 'deadLetter.topic',
        received: '..',
        shows: '".." (string)',
      },
      {
        name: 'deadLetter.topic 250 chars',
        patch: { deadLetter: { producer, topic: 'a'.repeat(250) } },
        option: 'deadLetter.topic',
        received: 'a'.repeat(250),
        shows: `"${'a'.repeat(80)}…" (string)`,
      },
      {
        name: 'deadLetter.topic a number',
        patch: { deadLetter: { producer, topic: 7 } },
        option: 'deadLetter.topic',
        received: 7,
        shows: '7 (number)',
      },
      {
        name: 'deadLetter retryMaxDelayMs < retryInitialDelayMs',
        patch: { deadLetter: { producer, retryInitialDelayMs: 100, retryMaxDelayMs: 50 } },
        option: 'deadLetter.retryMaxDelayMs',
        received: 50,
        shows: '50 (number)',
      },
      {
        name: 'deadLetter.includeStack a string',
        patch: { deadLetter: { producer, includeStack: 'yes' } },
        option: 'deadLetter.includeStack',
        received: 'yes',
        shows: '"yes" (string)',
      },
      // Circuit breaker
      {
        name: 'circuitBreaker.errorThresholdPercentage 0',
        patch: { circuitBreaker: { errorThresholdPercentage: 0 } },
        option: 'circuitBreaker.errorThresholdPercentage',
        received: 0,
        shows: '0 (number)',
      },
      {
        name: 'circuitBreaker.errorThresholdPercentage 101',
        patch: { circuitBreaker: { errorThresholdPercentage: 101 } },
        option: 'circuitBreaker.errorThresholdPercentage',
        received: 101,
        shows: '101 (number)',
      },
      {
        name: 'rollingCountBuckets not dividing rollingCountTimeoutMs',
        patch: { circuitBreaker: { rollingCountTimeoutMs: 10_000, rollingCountBuckets: 3 } },
        option: 'circuitBreaker.rollingCountBuckets',
        received: 3,
        shows: '3 (number)',
      },
      {
        name: 'rollingCountBuckets not dividing the default window',
        patch: { circuitBreaker: { rollingCountBuckets: 7 } },
        option: 'circuitBreaker.rollingCountBuckets',
        received: 7,
        shows: '7 (number)',
      },
      {
        name: 'circuitBreaker true',
        patch: { circuitBreaker: true },
        option: 'circuitBreaker',
        received: true,
        shows: 'true (boolean)',
      },
      {
        name: 'circuitBreaker null',
        patch: { circuitBreaker: null },
        option: 'circuitBreaker',
        received: null,
        shows: 'null',
      },
      {
        name: 'circuitBreaker.volumeThreshold 0',
        patch: { circuitBreaker: { volumeThreshold: 0 } },
        option: 'circuitBreaker.volumeThreshold',
        received: 0,
        shows: '0 (number)',
      },
      // Logger and clock
      {
        name: 'logger missing methods',
        patch: { logger: { info: logger.info } },
        option: 'logger',
        received: { info: logger.info },
        shows: '{} (object)',
      },
      {
        name: 'logger with a non-function method',
        patch: { logger: { ...logger, warn: 'no' } },
        option: 'logger',
        received: { ...logger, warn: 'no' },
        shows: '{"warn":"no"} (object)',
      },
      {
        name: 'logger a string',
        patch: { logger: 'pino' },
        option: 'logger',
        received: 'pino',
        shows: '"pino" (string)',
      },
      {
        name: 'logger null',
        patch: { logger: null },
        option: 'logger',
        received: null,
        shows: 'null',
      },
      {
        name: 'clock without now',
        patch: { clock: {} },
        option: 'clock',
        received: {},
        shows: '{} (object)',
      },
      {
        name: 'clock.now a number',
        patch: { clock: { now: 5 } },
        option: 'clock',
        received: { now: 5 },
        shows: '{"now":5} (object)',
      },
      {
        name: 'clock null',
        patch: { clock: null },
        option: 'clock',
        received: null,
        shows: 'null',
      },
      // Booleans
      {
        name: 'fromBeginning a string',
        patch: { fromBeginning: 'yes' },
        option: 'fromBeginning',
        received: 'yes',
        shows: '"yes" (string)',
      },
    ];

    it('has a large table', () => {
      expect(rows.length).toBeGreaterThanOrEqual(35);
      expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
      console.info(
        `[fault:bad-options] table rows=${rows.length}, each rejected by resolveOptions and by the constructor`,
      );
    });

    it.each(rows)('$name -> `$option`', (row) => {
      const input = 'raw' in row ? row.raw : { ...base, ...row.patch };
      const error = thrownBy(() => resolveUnknown(input));
      expect(error).toBeInstanceOf(ConfigError);
      const configError = error as ConfigError;
      expect(configError).toBeInstanceOf(BackpressureError);
      expect(configError).toBeInstanceOf(Error);
      expect(configError.name).toBe('ConfigError');
      expect(configError.code).toBe('ERR_CONFIG');
      expect(configError.retriable).toBe(false);
      expect(configError.option).toBe(row.option);
      expect(configError.received).toEqual(row.received);
      expect(configError.message).toContain(`\`${row.option}\``);
      expect(configError.message).toContain(row.shows);
      expect(configError.expected.length).toBeGreaterThan(0);
      expect(configError.message).toContain(configError.expected);
    });

    // The same table through the public constructor: what users call.
    it.each(rows)('new BackpressureConsumer: $name -> `$option`', (row) => {
      const input = 'raw' in row ? row.raw : { ...base, ...row.patch };
      const error = thrownBy(() => constructUnknown(input));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe(row.option);
      expect((error as ConfigError).received).toEqual(row.received);
      expect((error as ConfigError).message).toContain(`\`${row.option}\``);
    });

    it.each([
      ['undefined', undefined],
      ['null', null],
      ['a plain object', {}],
      ['a producer-like object', { send: async () => [], connect: async () => undefined }],
      ['a string', 'consumer'],
    ])('new BackpressureConsumer with %s as the KafkaJS consumer -> `consumer`', (_, consumer) => {
      // Passed explicitly: an `undefined` argument would take the default.
      const error = thrownBy(
        () =>
          new BackpressureConsumer(
            consumer as Consumer,
            base as BackpressureConsumerOptions<unknown>,
          ),
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe('consumer');
    });
  });

  describe('dead-letter topic chosen by a function', () => {
    it('accepts the function and passes it each message', () => {
      const seen: string[] = [];
      const o = resolveOptions({
        ...base,
        deadLetter: {
          producer,
          topic: (m) => {
            seen.push(m.topic);
            return `${m.topic}-dead`;
          },
        },
      });
      expect(seen).toEqual([]);
      expect(o.deadLetter!.topic(message('orders'))).toBe('orders-dead');
      expect(seen).toEqual(['orders']);
    });

    it.each([
      { returned: '', shows: '"" (string)' },
      { returned: 'bad topic!', shows: '"bad topic!" (string)' },
      { returned: '.', shows: '"." (string)' },
      { returned: 42, shows: '42 (number)' },
      { returned: undefined, shows: 'undefined' },
    ])(
      'checks the returned name per message: $returned throws ConfigError',
      ({ returned, shows }) => {
        const chooser = ((): unknown => returned) as unknown as (
          m: InboundMessage<unknown>,
        ) => string;
        const o = resolveOptions({ ...base, deadLetter: { producer, topic: chooser } });
        const error = thrownBy(() => o.deadLetter!.topic(message()));
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).code).toBe('ERR_CONFIG');
        expect((error as ConfigError).option).toBe('deadLetter.topic');
        expect((error as ConfigError).received).toBe(returned);
        expect((error as ConfigError).message).toContain('deadLetter.topic');
        expect((error as ConfigError).message).toContain(shows);
      },
    );

    it('decides per message: a chooser may be valid for one and invalid for another', () => {
      const o = resolveOptions({
        ...base,
        deadLetter: { producer, topic: (m) => (m.topic === 'ok' ? 'ok.dlq' : '') },
      });
      expect(o.deadLetter!.topic(message('ok'))).toBe('ok.dlq');
      expect(() => o.deadLetter!.topic(message('other'))).toThrow(ConfigError);
    });
  });

  describe('consistency of limits', () => {
    // REAL BUG (reported): `concurrency` is capped at 100_000, but
    // `adaptiveConcurrency.maxConcurrency` has no upper bound and becomes the
    // resolved `concurrency`, so the cap can be bypassed.
    it('bounds adaptiveConcurrency.maxConcurrency like concurrency (at most 100000)', () => {
      const error = thrownBy(() =>
        resolveOptions({
          ...base,
          adaptiveConcurrency: { targetLatencyMs: 100, maxConcurrency: 1_000_000 },
        }),
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe('adaptiveConcurrency.maxConcurrency');
    });
  });

  describe('fuzz: only ConfigError, and valid results keep their invariants', () => {
    const topicName = fc
      .stringMatching(/^[a-zA-Z0-9._-]{1,20}$/)
      .filter((t) => t !== '.' && t !== '..');
    const fraction = fc.double({ min: 0.001, max: 0.999, noNaN: true });

    /** Options that must be accepted. */
    const validOptions = fc.record(
      {
        topics: fc.array(topicName, { minLength: 1, maxLength: 3 }),
        handler: fc.constant(handler),
        fromBeginning: fc.boolean(),
        ordering: fc.constantFrom('partition', 'key', 'unordered'),
        concurrency: fc.integer({ min: 1, max: 100_000 }),
        maxInFlight: fc.integer({ min: 1, max: 1_000_000 }),
        maxInFlightBytes: fc.integer({ min: 1, max: 2 ** 40 }),
        resumeThreshold: fraction,
        latency: fc
          .record({
            pauseAboveMs: fc.double({ min: 1, max: 1e6, noNaN: true }),
            share: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
            percentile: fc.double({ min: 0.1, max: 100, noNaN: true }),
            windowMs: fc.integer({ min: 10, max: 1e7 }),
          })
          .map(({ pauseAboveMs, share, percentile, windowMs }) => ({
            pauseAboveMs,
            resumeBelowMs: pauseAboveMs * share,
            percentile,
            windowMs,
          })),
        adaptiveConcurrency: fc
          .record({
            minConcurrency: fc.integer({ min: 1, max: 50 }),
            extra: fc.integer({ min: 0, max: 1000 }),
            targetLatencyMs: fc.double({ min: 0.1, max: 1e5, noNaN: true }),
            decreaseFactor: fraction,
            increaseStep: fc.integer({ min: 1, max: 10 }),
            intervalMs: fc.integer({ min: 10, max: 60_000 }),
          })
          .map(({ extra, ...rest }) => ({ ...rest, maxConcurrency: rest.minConcurrency + extra })),
        handlerTimeoutMs: fc.integer({ min: 1, max: 1e7 }),
        retry: fc
          .record({
            maxAttempts: fc.integer({ min: 1, max: 1000 }),
            initialDelayMs: fc.integer({ min: 0, max: 10_000 }),
            extra: fc.integer({ min: 0, max: 100_000 }),
            multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
            jitter: fc.double({ min: 0, max: 1, noNaN: true }),
          })
          .map(({ extra, ...rest }) => ({ ...rest, maxDelayMs: rest.initialDelayMs + extra })),
        deadLetter: fc.record({
          producer: fc.constant(producer),
          topic: fc.oneof(
            topicName,
            fc.constant((m: InboundMessage<unknown>) => `${m.topic}.x`),
          ),
          includeStack: fc.boolean(),
          maxStackLength: fc.integer({ min: 1, max: 10_000 }),
        }),
        circuitBreaker: fc.oneof(
          fc.constant(false as const),
          fc
            .record({
              errorThresholdPercentage: fc.double({ min: 0.1, max: 100, noNaN: true }),
              volumeThreshold: fc.integer({ min: 1, max: 1000 }),
              resetTimeoutMs: fc.integer({ min: 1, max: 1e6 }),
              rollingCountBuckets: fc.integer({ min: 1, max: 20 }),
              perBucketMs: fc.integer({ min: 10, max: 10_000 }),
            })
            .map(({ perBucketMs, ...rest }) => ({
              ...rest,
              rollingCountTimeoutMs: rest.rollingCountBuckets * perBucketMs,
            })),
        ),
        commitIntervalMs: fc.integer({ min: 1, max: 1e6 }),
        rebalanceDrainTimeoutMs: fc.integer({ min: 0, max: 1e6 }),
        closeDrainTimeoutMs: fc.integer({ min: 0, max: 1e6 }),
        partitionsConsumedConcurrently: fc.integer({ min: 1, max: 1000 }),
        logger: fc.constant({ debug() {}, info() {}, warn() {}, error() {} }),
        clock: fc.constant({ now: () => 0 }),
      },
      { requiredKeys: ['topics', 'handler'] },
    );

    const PATHS = [
      'topics',
      'handler',
      'deserialize',
      'fromBeginning',
      'ordering',
      'concurrency',
      'maxInFlight',
      'maxInFlightBytes',
      'resumeThreshold',
      'latency',
      'latency.percentile',
      'latency.pauseAboveMs',
      'latency.resumeBelowMs',
      'latency.probes',
      'latency.windowMs',
      'adaptiveConcurrency',
      'adaptiveConcurrency.minConcurrency',
      'adaptiveConcurrency.maxConcurrency',
      'adaptiveConcurrency.targetLatencyMs',
      'adaptiveConcurrency.decreaseFactor',
      'adaptiveConcurrency.increaseStep',
      'adaptiveConcurrency.intervalMs',
      'handlerTimeoutMs',
      'retry',
      'retry.maxAttempts',
      'retry.initialDelayMs',
      'retry.maxDelayMs',
      'retry.multiplier',
      'retry.jitter',
      'retry.isRetriable',
      'deadLetter',
      'deadLetter.producer',
      'deadLetter.topic',
      'deadLetter.includeStack',
      'deadLetter.maxStackLength',
      'deadLetter.retryInitialDelayMs',
      'deadLetter.retryMaxDelayMs',
      'circuitBreaker',
      'circuitBreaker.errorThresholdPercentage',
      'circuitBreaker.volumeThreshold',
      'circuitBreaker.resetTimeoutMs',
      'circuitBreaker.rollingCountTimeoutMs',
      'circuitBreaker.rollingCountBuckets',
      'commitIntervalMs',
      'rebalanceDrainTimeoutMs',
      'closeDrainTimeoutMs',
      'partitionsConsumedConcurrently',
      'logger',
      'clock',
    ] as const;

    const plausibleNumber = fc.oneof(
      fc.integer({ min: -10, max: 200_000 }),
      fc.double(),
      fc.constantFrom(
        0,
        1,
        -1,
        0.5,
        0.999,
        1.5,
        2,
        10,
        100,
        1000,
        10_000,
        2 ** 53,
        Infinity,
        -Infinity,
        NaN,
      ),
    );
    const anyValue = fc.oneof(
      fc.anything(),
      plausibleNumber,
      fc.constantFrom(null, undefined, '', 'x', true, false, [], {}, () => {}),
    );
    const mutation = fc.tuple(fc.constantFrom(...PATHS, 'maxInflight', 'retry.attempts'), anyValue);

    /** Sets a dotted path on a copy, copying each object on the way so the generated value is untouched. */
    function withPath(
      root: Record<string, unknown>,
      path: string,
      value: unknown,
    ): Record<string, unknown> {
      const [head, ...rest] = path.split('.');
      const copy = { ...root };
      if (rest.length === 0) {
        copy[head!] = value;
      } else {
        const child = copy[head!];
        const childObject =
          typeof child === 'object' && child !== null && !Array.isArray(child)
            ? (child as Record<string, unknown>)
            : {};
        copy[head!] = withPath(childObject, rest.join('.'), value);
      }
      return copy;
    }

    function checkInvariants(o: ResolvedOptions<unknown>): void {
      expect(Object.isFrozen(o)).toBe(true);
      expect(o.topics.length).toBeGreaterThan(0);
      expect(typeof o.handler).toBe('function');
      expect(['partition', 'key', 'unordered']).toContain(o.ordering);
      for (const limit of [
        o.concurrency,
        o.maxInFlight,
        o.maxInFlightBytes,
        o.partitionsConsumedConcurrently,
      ]) {
        expect(Number.isInteger(limit)).toBe(true);
        expect(limit).toBeGreaterThanOrEqual(1);
      }
      expect(o.resumeThreshold).toBeGreaterThan(0);
      expect(o.resumeThreshold).toBeLessThan(1);
      // The low marks the in-flight budget derives are strictly below the high marks.
      expect(Math.floor(o.maxInFlight * o.resumeThreshold)).toBeLessThan(o.maxInFlight);
      expect(Math.floor(o.maxInFlightBytes * o.resumeThreshold)).toBeLessThan(o.maxInFlightBytes);
      if (o.latency) {
        expect(o.latency.pauseAboveMs).toBeGreaterThan(0);
        expect(o.latency.resumeBelowMs).toBeGreaterThanOrEqual(0);
        expect(o.latency.resumeBelowMs).toBeLessThan(o.latency.pauseAboveMs);
        expect(o.latency.percentile).toBeGreaterThan(0);
        expect(o.latency.percentile).toBeLessThanOrEqual(100);
        expect(o.latency.windowMs).toBeGreaterThanOrEqual(10);
        expect(o.latencyPercentile).toBe(o.latency.percentile);
        expect(o.latencyWindowMs).toBe(o.latency.windowMs);
      }
      if (o.adaptiveConcurrency) {
        const a = o.adaptiveConcurrency;
        expect(a.minConcurrency).toBeGreaterThanOrEqual(1);
        expect(a.minConcurrency).toBeLessThanOrEqual(a.maxConcurrency);
        expect(o.concurrency).toBe(a.maxConcurrency);
        expect(a.decreaseFactor).toBeGreaterThan(0);
        expect(a.decreaseFactor).toBeLessThan(1);
        expect(a.increaseStep).toBeGreaterThanOrEqual(1);
        expect(a.targetLatencyMs).toBeGreaterThan(0);
        expect(a.intervalMs).toBeGreaterThanOrEqual(10);
      }
      expect(o.retry.maxAttempts).toBeGreaterThanOrEqual(1);
      expect(o.retry.maxAttempts).toBeLessThanOrEqual(1000);
      expect(o.retry.initialDelayMs).toBeGreaterThanOrEqual(0);
      expect(o.retry.maxDelayMs).toBeGreaterThanOrEqual(o.retry.initialDelayMs);
      expect(o.retry.multiplier).toBeGreaterThanOrEqual(1);
      expect(o.retry.jitter).toBeGreaterThanOrEqual(0);
      expect(o.retry.jitter).toBeLessThanOrEqual(1);
      if (o.deadLetter) {
        expect(typeof o.deadLetter.producer.send).toBe('function');
        expect(typeof o.deadLetter.topic).toBe('function');
        expect(o.deadLetter.retryMaxDelayMs).toBeGreaterThanOrEqual(
          o.deadLetter.retryInitialDelayMs,
        );
      }
      if (o.circuitBreaker) {
        const c = o.circuitBreaker;
        expect(c.errorThresholdPercentage).toBeGreaterThan(0);
        expect(c.errorThresholdPercentage).toBeLessThanOrEqual(100);
        expect(c.rollingCountTimeoutMs % c.rollingCountBuckets).toBe(0);
      }
      for (const method of ['debug', 'info', 'warn', 'error'] as const) {
        expect(typeof o.logger[method]).toBe('function');
      }
      expect(typeof o.clock.now).toBe('function');
      for (const duration of [o.handlerTimeoutMs, o.commitIntervalMs]) {
        expect(Number.isInteger(duration) && duration >= 1).toBe(true);
      }
    }

    it('accepts every generated valid option set', () => {
      fc.assert(
        fc.property(validOptions, (options) => {
          checkInvariants(resolveUnknown(options));
        }),
        { numRuns: 300 },
      );
    });

    it('throws nothing but ConfigError for arbitrary values at known keys', () => {
      fc.assert(
        fc.property(
          validOptions,
          fc.array(mutation, { minLength: 1, maxLength: 3 }),
          (valid, mutations) => {
            let input: Record<string, unknown> = valid;
            for (const [path, value] of mutations) input = withPath(input, path, value);
            let resolved: ResolvedOptions<unknown>;
            try {
              resolved = resolveUnknown(input);
            } catch (error) {
              expect(error).toBeInstanceOf(ConfigError);
              const e = error as ConfigError;
              expect(e.code).toBe('ERR_CONFIG');
              expect(e.message).toContain(e.option);
              return;
            }
            checkInvariants(resolved);
          },
        ),
        { numRuns: 1000 },
      );
    });

    it('the constructor yields a usable consumer or a ConfigError, nothing else', async () => {
      const outcomes = { consumers: 0, configErrors: 0, options: new Set<string>() };
      await fc.assert(
        fc.asyncProperty(
          validOptions,
          fc.array(mutation, { minLength: 0, maxLength: 3 }),
          async (valid, mutations) => {
            let input: Record<string, unknown> = valid;
            for (const [path, value] of mutations) input = withPath(input, path, value);
            let consumer: BackpressureConsumer<unknown>;
            try {
              consumer = constructUnknown(input);
            } catch (error) {
              expect(error).toBeInstanceOf(ConfigError);
              expect((error as ConfigError).message).toContain((error as ConfigError).option);
              outcomes.configErrors += 1;
              outcomes.options.add((error as ConfigError).option);
              return;
            }
            const resolved = resolveUnknown(input);
            expect(consumer.state).toBe('idle');
            expect(consumer.inFlight).toBe(0);
            expect(consumer.concurrency).toBe(resolved.concurrency);
            expect(consumer.circuitState).toBe('closed');
            expect(consumer.partitions()).toEqual([]);
            // Never started: close() still releases what construction made (the breaker's timers).
            await consumer.close();
            expect(consumer.state).toBe('closed');
            outcomes.consumers += 1;
          },
        ),
        { numRuns: 500 },
      );
      console.info(
        `[fault:bad-options] fuzz runs=500 consumers=${outcomes.consumers} ` +
          `configErrors=${outcomes.configErrors} distinctOptionsNamed=${outcomes.options.size}`,
      );
    });

    it('throws nothing but ConfigError for arbitrary whole values', () => {
      fc.assert(
        fc.property(fc.anything(), (input) => {
          const error = thrownBy(() => resolveUnknown(input));
          expect(error).toBeInstanceOf(ConfigError);
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('durations that become timers', () => {
  // Each of these ends up in setTimeout or setInterval (directly or in
  // opossum); Node runs a delay above 2^31-1 ms after 1 ms instead.
  const timers: [string, Record<string, unknown>][] = [
    ['handlerTimeoutMs', { handlerTimeoutMs: 2 ** 31 }],
    ['commitIntervalMs', { commitIntervalMs: 2 ** 31 }],
    ['rebalanceDrainTimeoutMs', { rebalanceDrainTimeoutMs: 2 ** 31 }],
    ['closeDrainTimeoutMs', { closeDrainTimeoutMs: 2 ** 31 }],
    ['lagSampleIntervalMs', { lagSampleIntervalMs: 2 ** 31 }],
    ['retry.initialDelayMs', { retry: { initialDelayMs: 2 ** 31 } }],
    ['retry.maxDelayMs', { retry: { maxDelayMs: 2 ** 31 } }],
    ['circuitBreaker.resetTimeoutMs', { circuitBreaker: { resetTimeoutMs: 2 ** 31 } }],
    [
      'circuitBreaker.rollingCountTimeoutMs',
      { circuitBreaker: { rollingCountTimeoutMs: 2 ** 31, rollingCountBuckets: 1 } },
    ],
    ['deadLetter.retryInitialDelayMs', { deadLetter: { producer, retryInitialDelayMs: 2 ** 31 } }],
    ['deadLetter.retryMaxDelayMs', { deadLetter: { producer, retryMaxDelayMs: 2 ** 31 } }],
    [
      'adaptiveConcurrency.intervalMs',
      { adaptiveConcurrency: { targetLatencyMs: 100, intervalMs: 2 ** 31 } },
    ],
  ];
  for (const [option, patch] of timers) {
    it(`${option} above 2^31-1 is a ConfigError; 2^31-1 itself is accepted`, () => {
      const error = thrownBy(() => resolveUnknown({ ...base, ...patch }));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ option, received: 2 ** 31 });
    });
  }

  it('accepts 2^31-1 for a timer option', () => {
    expect(resolveUnknown({ ...base, commitIntervalMs: 2 ** 31 - 1 }).commitIntervalMs).toBe(
      2 ** 31 - 1,
    );
  });

  it('shed.maxAgeMs is an age, not a timer: above 2^31-1 is accepted', () => {
    const o = resolveUnknown({ ...base, shed: { maxAgeMs: 2 ** 32, action: 'skip' } });
    expect(o.shed?.maxAgeMs).toBe(2 ** 32);
  });
});

describe('close() options', () => {
  for (const bad of [-1, Number.NaN, 1.5, 2 ** 31]) {
    it(`drainTimeoutMs ${String(bad)} rejects that call only; a later valid close() closes`, async () => {
      const consumer = constructUnknown(base);
      await expect(consumer.close({ drainTimeoutMs: bad })).rejects.toMatchObject({
        code: 'ERR_CONFIG',
        option: 'drainTimeoutMs',
      });
      expect(consumer.state).toBe('idle');
      await consumer.close({ drainTimeoutMs: 0 });
      expect(consumer.state).toBe('closed');
      // Once closing, every call returns the same close.
      await expect(consumer.close({ drainTimeoutMs: -1 })).resolves.toBeUndefined();
    });
  }
});

describe('errors', () => {
  describe('error classes', () => {
    const instances: readonly BackpressureError[] = [
      new BackpressureError('ERR_STATE', 'bad state'),
      new ConfigError('concurrency', 'an integer', -1),
      new HandlerTimeoutError(100),
      new NonRetriableError('no'),
      new CircuitOpenError(),
      new DlqPublishError('orders.dlq', new Error('broker down')),
      new ProducerBufferFullError({ waitedMs: 5, bufferedMessages: 2, bufferedBytes: 10 }),
      new ProducerStoppedError({ waitedMs: 5, reason: 'lag' }),
      new ProducerClosedError('closed'),
      new ProducerDrainTimeoutError('flush', 100, 3),
    ];

    it.each(instances.map((e) => [e.name, e] as const))(
      '%s is an Error with a listed code',
      (_, error) => {
        expect(error).toBeInstanceOf(Error);
        expect(error).toBeInstanceOf(BackpressureError);
        expect(isBackpressureError(error)).toBe(true);
        expect(ERROR_CODES).toContain(error.code);
        expect(typeof error.retriable).toBe('boolean');
        expect(error.message.length).toBeGreaterThan(0);
        expect(error.stack).toBeDefined();
      },
    );

    it('every class has its own name', () => {
      expect(new Set(instances.map((e) => e.name)).size).toBe(instances.length);
    });

    it('sets retriable as documented', () => {
      expect(new BackpressureError('ERR_STATE', 'x').retriable).toBe(false);
      expect(new BackpressureError('ERR_COMMIT', 'x', { retriable: true }).retriable).toBe(true);
      expect(new ConfigError('a', 'b', 1).retriable).toBe(false);
      expect(new HandlerTimeoutError(1).retriable).toBe(true);
      expect(new NonRetriableError('x').retriable).toBe(false);
      expect(new CircuitOpenError().retriable).toBe(true);
      expect(new DlqPublishError('t', 'x').retriable).toBe(true);
      expect(new ProducerDrainTimeoutError('flush', 1, 1).retriable).toBe(true);
      expect(new ProducerDrainTimeoutError('close', 1, 1).retriable).toBe(false);
      expect(new ProducerClosedError('x').retriable).toBe(false);
    });

    it('carries cause when given, and no cause property otherwise', () => {
      const root = new Error('root');
      expect(new BackpressureError('ERR_COMMIT', 'x', { cause: root }).cause).toBe(root);
      expect(new NonRetriableError('x', { cause: root }).cause).toBe(root);
      expect(new DlqPublishError('t', root).cause).toBe(root);
      expect('cause' in new BackpressureError('ERR_COMMIT', 'x')).toBe(false);
    });

    it('ConfigError exposes option, expected and received', () => {
      const error = new ConfigError('retry.maxAttempts', 'an integer >= 1', 0);
      expect(error.option).toBe('retry.maxAttempts');
      expect(error.expected).toBe('an integer >= 1');
      expect(error.received).toBe(0);
      expect(error.message).toBe(
        'Invalid option `retry.maxAttempts`: expected an integer >= 1, received 0 (number).',
      );
    });

    it('DlqPublishError names the topic and the cause message', () => {
      const error = new DlqPublishError('orders.dlq', new Error('broker down'));
      expect(error.dlqTopic).toBe('orders.dlq');
      expect(error.message).toContain('orders.dlq');
      expect(error.message).toContain('broker down');
      expect(new DlqPublishError('t', 'plain').message).toContain('"plain" (string)');
    });

    it('HandlerTimeoutError reports its timeout', () => {
      const error = new HandlerTimeoutError(2500);
      expect(error.timeoutMs).toBe(2500);
      expect(error.message).toContain('2500');
    });
  });

  describe('isBackpressureError', () => {
    it('is false for anything the library did not create', () => {
      expect(isBackpressureError(new Error('x'))).toBe(false);
      expect(isBackpressureError(new TypeError('x'))).toBe(false);
      expect(isBackpressureError(null)).toBe(false);
      expect(isBackpressureError(undefined)).toBe(false);
      expect(isBackpressureError('ERR_CONFIG')).toBe(false);
      // Duck-typed look-alikes are not ours.
      expect(isBackpressureError({ code: 'ERR_CONFIG', message: 'x', name: 'ConfigError' })).toBe(
        false,
      );
    });
  });

  describe('toError', () => {
    it('returns errors unchanged', () => {
      const error = new RangeError('r');
      expect(toError(error)).toBe(error);
      const ours = new CircuitOpenError();
      expect(toError(ours)).toBe(ours);
    });

    it('wraps strings', () => {
      const error = toError('boom');
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe('NonErrorThrown');
      expect(error.message).toContain('"boom" (string)');
    });

    it('wraps undefined and null', () => {
      expect(toError(undefined).message).toContain('undefined');
      expect(toError(null).message).toContain('null');
      expect(toError(undefined)).toBeInstanceOf(Error);
    });

    it('wraps plain objects, numbers and circular objects', () => {
      expect(toError({ status: 503 }).message).toContain('{"status":503} (object)');
      expect(toError(42).message).toContain('42 (number)');
      const circular: Record<string, unknown> = {};
      circular['self'] = circular;
      expect(toError(circular).message).toContain('an object');
    });

    it('property: always returns an Error, never throws', () => {
      fc.assert(
        fc.property(fc.anything(), (value) => {
          expect(toError(value)).toBeInstanceOf(Error);
          expect(typeof messageOf(value)).toBe('string');
        }),
      );
    });
  });

  describe('messageOf', () => {
    it("uses an Error's message, or describes anything else", () => {
      expect(messageOf(new Error('plain'))).toBe('plain');
      expect(messageOf('text')).toBe('"text" (string)');
      expect(messageOf(undefined)).toBe('undefined');
    });
  });

  describe('describe', () => {
    it('renders each kind of value with its type', () => {
      expect(describeValue(null)).toBe('null');
      expect(describeValue(undefined)).toBe('undefined');
      expect(describeValue(5)).toBe('5 (number)');
      expect(describeValue(-0.5)).toBe('-0.5 (number)');
      expect(describeValue(NaN)).toBe('NaN (number)');
      expect(describeValue(true)).toBe('true (boolean)');
      expect(describeValue(10n)).toBe('10 (bigint)');
      expect(describeValue('x')).toBe('"x" (string)');
      expect(describeValue('')).toBe('"" (string)');
      expect(describeValue([1, 2, 3])).toBe('an array of length 3');
      expect(describeValue({ a: 1 })).toBe('{"a":1} (object)');
      function named(): void {}
      expect(describeValue(named)).toBe('a function (named)');
      const anonymous = [(): void => {}][0]!;
      expect(anonymous.name).toBe('');
      expect(describeValue(anonymous)).toBe('a function');
    });

    it('escapes quotes and control characters in strings', () => {
      expect(describeValue('a"b\n')).toBe('"a\\"b\\n" (string)');
    });

    it('truncates long strings and objects to 80 characters', () => {
      const long = 'x'.repeat(200);
      expect(describeValue(long)).toBe(`"${'x'.repeat(80)}…" (string)`);
      const big = { data: 'y'.repeat(200) };
      const rendered = describeValue(big);
      expect(rendered.endsWith('… (object)')).toBe(true);
      expect(rendered.length).toBeLessThanOrEqual(80 + '… (object)'.length);
    });

    it('survives values JSON cannot render', () => {
      const circular: Record<string, unknown> = {};
      circular['self'] = circular;
      expect(describeValue(circular)).toBe('an object');
      expect(describeValue({ n: 1n })).toBe('an object');
    });

    // REAL BUG (reported): a symbol falls through to JSON.stringify, which returns
    // undefined, so the message says "undefined (object)" instead of the symbol.
    it('renders symbols as symbols', () => {
      const rendered = describeValue(Symbol('fifo'));
      expect(rendered).toContain('Symbol(fifo)');
      expect(rendered).not.toContain('object');
    });
  });

  describe('the list of codes is closed', () => {
    it('has no duplicates', () => {
      expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    });

    it('contains every ERR_ code used anywhere in src/', () => {
      const srcDir = new URL('../../src/', import.meta.url);
      const used = new Set<string>();
      for (const file of readdirSync(srcDir)) {
        if (!file.endsWith('.ts')) continue;
        const text = readFileSync(new URL(file, srcDir), 'utf8');
        for (const match of text.matchAll(/['"`](ERR_[A-Z0-9_]+)['"`]/g)) used.add(match[1]!);
      }
      expect(used.size).toBeGreaterThan(0);
      for (const code of used) expect(ERROR_CODES).toContain(code);
    });
  });
});

describe('validate helpers', () => {
  const configErrorOf = (fn: () => unknown): ConfigError => {
    const error = thrownBy(fn);
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  };

  it('integer: fallback on undefined, range and integrality checked', () => {
    expect(integer('n', undefined, 7)).toBe(7);
    expect(integer('n', 3, 7, { min: 1, max: 3 })).toBe(3);
    expect(configErrorOf(() => integer('n', 4, 7, { min: 1, max: 3 })).expected).toBe(
      'an integer between 1 and 3',
    );
    expect(configErrorOf(() => integer('n', 0, 7, { min: 1 })).expected).toBe('an integer >= 1');
    expect(configErrorOf(() => integer('n', 1.5, 7)).option).toBe('n');
    configErrorOf(() => integer('n', '1', 7));
    configErrorOf(() => integer('n', null, 7));
  });

  it('number: finite, inclusive or exclusive minimum, maximum', () => {
    expect(number('x', undefined, 0.5)).toBe(0.5);
    expect(number('x', 0, 1)).toBe(0);
    configErrorOf(() => number('x', 0, 1, { exclusiveMin: true }));
    expect(number('x', 1, 0, { max: 1 })).toBe(1);
    configErrorOf(() => number('x', 1.01, 0, { max: 1 }));
    configErrorOf(() => number('x', Infinity, 0));
    configErrorOf(() => number('x', NaN, 0));
    expect(configErrorOf(() => number('x', -1, 0, { min: 0, max: 1 })).expected).toBe(
      'a finite number at least 0 and at most 1',
    );
    expect(configErrorOf(() => number('x', 0, 0, { exclusiveMin: true })).expected).toBe(
      'a finite number greater than 0',
    );
  });

  it('duration: integer milliseconds, optionally Infinity', () => {
    expect(duration('d', undefined, 5)).toBe(5);
    expect(duration('d', 1, 5)).toBe(1);
    configErrorOf(() => duration('d', 0, 5));
    expect(duration('d', 0, 5, { min: 0 })).toBe(0);
    configErrorOf(() => duration('d', Infinity, 5));
    expect(duration('d', Infinity, 5, { allowInfinity: true })).toBe(Infinity);
    expect(configErrorOf(() => duration('d', 1.5, 5, { allowInfinity: true })).expected).toContain(
      'or Infinity',
    );
  });

  it('duration: at most 2^31-1 ms unless told otherwise (a longer Node timer fires after 1 ms)', () => {
    expect(duration('d', 2 ** 31 - 1, 5)).toBe(2 ** 31 - 1);
    expect(configErrorOf(() => duration('d', 2 ** 31, 5)).expected).toContain('2147483647');
    expect(duration('d', 2 ** 31, 5, { max: Number.MAX_SAFE_INTEGER })).toBe(2 ** 31);
    expect(duration('d', Infinity, 5, { allowInfinity: true })).toBe(Infinity);
  });

  it('boolean, oneOf, functions, plainObject', () => {
    expect(boolean('b', undefined, true)).toBe(true);
    expect(boolean('b', false, true)).toBe(false);
    configErrorOf(() => boolean('b', 0, true));
    expect(oneOf('o', undefined, ['a', 'b'], 'a')).toBe('a');
    expect(oneOf('o', 'b', ['a', 'b'], 'a')).toBe('b');
    expect(configErrorOf(() => oneOf('o', 'c', ['a', 'b'], 'a')).expected).toBe('one of "a", "b"');
    const f = (): void => {};
    expect(optionalFunction('f', undefined)).toBeUndefined();
    expect(optionalFunction('f', f)).toBe(f);
    configErrorOf(() => optionalFunction('f', {}));
    expect(requiredFunction('f', f)).toBe(f);
    configErrorOf(() => requiredFunction('f', undefined));
    expect(plainObject('p', undefined)).toBeUndefined();
    expect(plainObject('p', { a: 1 })).toEqual({ a: 1 });
    configErrorOf(() => plainObject('p', null));
    configErrorOf(() => plainObject('p', []));
    configErrorOf(() => plainObject('p', 'x'));
  });

  it('nonEmptyString: fallback only for undefined, blank rejected', () => {
    expect(nonEmptyString('s', undefined, 'def')).toBe('def');
    expect(nonEmptyString('s', 'v')).toBe('v');
    configErrorOf(() => nonEmptyString('s', ''));
    configErrorOf(() => nonEmptyString('s', '   ', 'def'));
    configErrorOf(() => nonEmptyString('s', undefined));
  });

  it('knownKeys names the full path of an unknown key', () => {
    expect(() => knownKeys('', { a: 1 }, ['a'])).not.toThrow();
    const top = configErrorOf(() => knownKeys('', { b: 2 }, ['a']));
    expect(top.option).toBe('b');
    expect(top.received).toBe(2);
    const nested = configErrorOf(() => knownKeys('retry', { tries: 1 }, ['maxAttempts']));
    expect(nested.option).toBe('retry.tries');
    expect(nested.expected).toContain('maxAttempts');
  });

  it('below: strict ordering between two options', () => {
    expect(() => below('low', 1, 'high', 2)).not.toThrow();
    const error = configErrorOf(() => below('low', 2, 'high', 2));
    expect(error.option).toBe('low');
    expect(error.received).toBe(2);
    expect(error.message).toContain('`high`');
    configErrorOf(() => below('low', NaN, 'high', 2));
  });
});
