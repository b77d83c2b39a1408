/**
 * Type tests of the public API (what `src/index.ts` exports). The
 * `expectTypeOf` assertions and `@ts-expect-error` lines are checked by the
 * compiler in `npm run typecheck` (test/tsconfig.json covers test/); at run
 * time they do nothing, and the code in `typeOnly` callbacks never runs (it
 * would need a broker). The one runtime test pins the list of value exports.
 */
import type { Admin, Consumer, KafkaMessage } from 'kafkajs';
import * as client from 'prom-client';
import { describe, expect, expectTypeOf, it } from 'vitest';
import * as api from '../../src/index.js';
import {
  BackpressureConsumer,
  BackpressureError,
  LagMonitor,
  RateLimitedProducer,
  type CloseOptions,
  type LagAdmin,
  type ProgressAdmin,
  type LagMonitorCallOptions,
  type LagMonitorOptions,
  type ProducerCloseOptions,
  type ProducerFlushOptions,
  type ProducerSendOptions,
  type ProducerTarget,
  type StartOptions,
  type WaitOptions,
  ConfigError,
  ERROR_CODES,
  isBackpressureError,
  registerMetrics,
  type BackpressureConsumerOptions,
  type CircuitState,
  type ClientHooks,
  type ClientRun,
  type CircuitEvent,
  type CommitEvent,
  type CommitOffset,
  type CommittedOffset,
  type ConcurrencyChangedEvent,
  type ConsumerLagEvent,
  type ConsumerStateEvent,
  type DlqFailedEvent,
  type DownstreamLagEvent,
  type ErrorEvent,
  type LatencyEvent,
  type MessageFailedEvent,
  type PauseReason,
  type QueueEvent,
  type RebalanceEvent,
  type ResumedEvent,
  type ShedEvent,
  type ConsumerClient,
  type ConsumerEvents,
  type ConsumerState,
  type DlqRoutedEvent,
  type ErrorCode,
  type FetchedBatch,
  type HandlerSettledEvent,
  type InboundMessage,
  type MeasuredConsumer,
  type MetricsRegistration,
  type PausedEvent,
  type RawMessage,
  type RetryEvent,
  type TopicPartition,
} from '../../src/index.js';

/** Type-checks `check` without running it. */
const typeOnly = (check: () => unknown): void => {
  void check;
};

declare const kafkaConsumer: Consumer;
declare const port: ConsumerClient;

interface Order {
  readonly id: number;
}

describe('public API types', () => {
  it("the handler's payload follows deserialize", () => {
    typeOnly(() => {
      const plain = new BackpressureConsumer(kafkaConsumer, {
        topics: ['orders'],
        handler: (message, context) => {
          expectTypeOf(message).toEqualTypeOf<InboundMessage<Buffer | null>>();
          expectTypeOf(message.payload).toEqualTypeOf<Buffer | null>();
          expectTypeOf(context.attempt).toBeNumber();
          expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
        },
      });
      expectTypeOf(plain).toEqualTypeOf<BackpressureConsumer<Buffer | null>>();

      const typed = new BackpressureConsumer(port, {
        topics: ['orders'],
        deserialize: (m) => JSON.parse(String(m.value)) as Order,
        handler: async (message) => {
          expectTypeOf(message.payload).toEqualTypeOf<Order>();
        },
      });
      expectTypeOf(typed).toEqualTypeOf<BackpressureConsumer<Order>>();

      // An async deserializer gives the awaited type.
      new BackpressureConsumer(port, {
        topics: [/^orders\./],
        deserialize: async (m: KafkaMessage, source) => {
          expectTypeOf(source).toEqualTypeOf<{ topic: string; partition: number }>();
          return { id: Number(m.offset) };
        },
        handler: (message) => {
          expectTypeOf(message.payload).toEqualTypeOf<{ id: number }>();
        },
      });

      new BackpressureConsumer<Order>(port, {
        topics: ['orders'],
        // @ts-expect-error the deserializer must produce the declared payload
        deserialize: () => 'not an order',
        handler: () => undefined,
      });
    });
  });

  it("a batch handler's messages follow deserialize, and it may name failed messages", () => {
    typeOnly(() => {
      const typed = new BackpressureConsumer(port, {
        topics: ['orders'],
        deserialize: (m) => JSON.parse(String(m.value)) as Order,
        batch: { maxMessages: 500, maxBytes: 1_000_000, maxWaitMs: 20 },
        batchHandler: async (messages, context) => {
          expectTypeOf(messages).toEqualTypeOf<readonly InboundMessage<Order>[]>();
          expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
          return { failed: [{ message: messages[0]!, error: new Error('refused') }] };
        },
      });
      expectTypeOf(typed).toEqualTypeOf<BackpressureConsumer<Order>>();
      new BackpressureConsumer(port, {
        topics: ['orders'],
        batchHandler: () => undefined,
        // @ts-expect-error maxMessages is a number
        batch: { maxMessages: '500' },
      });
    });
  });

  it('each event name has its payload type, and unknown names are rejected', () => {
    typeOnly(() => {
      const consumer = new BackpressureConsumer(port, { topics: ['t'], handler: () => undefined });
      consumer.on('flow.paused', (event) => {
        expectTypeOf(event).toEqualTypeOf<PausedEvent>();
        expectTypeOf(event.partitions).toEqualTypeOf<readonly TopicPartition[]>();
      });
      consumer.on('message.retry', (event) => {
        expectTypeOf(event).toEqualTypeOf<RetryEvent>();
        expectTypeOf(event.error).toEqualTypeOf<Error>();
      });
      consumer.on('dlq.routed', (event) => {
        expectTypeOf(event.reason).toEqualTypeOf<DlqRoutedEvent['reason']>();
        expectTypeOf(event.reason).toEqualTypeOf<
          'attempts-exhausted' | 'non-retriable' | 'deserialization' | 'shed'
        >();
      });
      consumer.on('circuit.open', (event) => {
        expectTypeOf(event.state).toEqualTypeOf<'open' | 'half-open' | 'closed'>();
      });
      consumer.on('offsets.committed', (event) => {
        expectTypeOf(event).toEqualTypeOf<CommitEvent>();
        expectTypeOf(event.offsets[0]!.offset).toBeString();
      });
      consumer.once('handler.settled', (event) => {
        expectTypeOf(event).toEqualTypeOf<HandlerSettledEvent>();
        expectTypeOf(event.outcome).toEqualTypeOf<'success' | 'error' | 'timeout'>();
      });
      // @ts-expect-error not an event of the consumer
      consumer.on('flow.pause', () => undefined);
      // @ts-expect-error the payload of flow.paused has no `state`
      consumer.on('flow.paused', (event) => event.state);
      // @ts-expect-error emit checks the payload against the event's type
      consumer.emit('circuit.open', { state: 'broken' });
    });
    // Every listener takes exactly one payload object.
    expectTypeOf<Parameters<ConsumerEvents['consumer.error']>>().toEqualTypeOf<
      [event: Parameters<ConsumerEvents['consumer.error']>[0]]
    >();
    expectTypeOf<keyof ConsumerEvents>().toExtend<string>();
    expectTypeOf<'flow.paused'>().toExtend<keyof ConsumerEvents>();
  });

  it('the event map: every name and its one payload', () => {
    type Payloads = { [K in keyof ConsumerEvents]: Parameters<ConsumerEvents[K]>[0] };
    expectTypeOf<Payloads>().toEqualTypeOf<{
      'flow.paused': PausedEvent;
      'flow.resumed': ResumedEvent;
      'queue.full': QueueEvent;
      'queue.drained': QueueEvent;
      'latency.high': LatencyEvent;
      'latency.normal': LatencyEvent;
      'concurrency.changed': ConcurrencyChangedEvent;
      'offsets.committed': CommitEvent;
      'group.rebalance': RebalanceEvent;
      'message.retry': RetryEvent;
      'message.failed': MessageFailedEvent;
      'dlq.routed': DlqRoutedEvent;
      'dlq.failed': DlqFailedEvent;
      'circuit.open': CircuitEvent;
      'circuit.half-open': CircuitEvent;
      'circuit.closed': CircuitEvent;
      'consumer.state': ConsumerStateEvent;
      'consumer.error': ErrorEvent;
      'lag.sample': ConsumerLagEvent;
      'message.shed': ShedEvent;
      'downstream.lag-high': DownstreamLagEvent;
      'downstream.lag-normal': DownstreamLagEvent;
      'handler.settled': HandlerSettledEvent;
    }>();
    expectTypeOf<PausedEvent['reason']>().toEqualTypeOf<PauseReason>();
    expectTypeOf<ResumedEvent['reason']>().toEqualTypeOf<PauseReason>();
    expectTypeOf<ErrorEvent['error']>().toEqualTypeOf<BackpressureError | Error>();
    expectTypeOf<DlqFailedEvent['error']>().toEqualTypeOf<BackpressureError>();
  });

  it("the consumer's getters and methods keep their types", () => {
    expectTypeOf<BackpressureConsumer['state']>().toEqualTypeOf<ConsumerState>();
    expectTypeOf<ConsumerState>().toEqualTypeOf<
      'idle' | 'starting' | 'running' | 'closing' | 'closed'
    >();
    expectTypeOf<BackpressureConsumer['circuitState']>().toEqualTypeOf<CircuitState>();
    expectTypeOf<BackpressureConsumer['start']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<BackpressureConsumer['close']>()
      .parameter(0)
      .toEqualTypeOf<
        { readonly drainTimeoutMs?: number; readonly signal?: AbortSignal } | undefined
      >();
    expectTypeOf<BackpressureConsumer['onIdle']>().returns.toEqualTypeOf<Promise<void>>();
    // KafkaJS consumers and any other client behind the port are accepted.
    expectTypeOf<ConstructorParameters<typeof BackpressureConsumer>[0]>().toEqualTypeOf<
      Consumer | ConsumerClient
    >();
  });

  it('every async lifecycle method takes an optional { signal }', () => {
    type SignalOnly = { readonly signal?: AbortSignal } | undefined;
    expectTypeOf<BackpressureConsumer['start']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<BackpressureConsumer['onIdle']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<BackpressureConsumer['onDrained']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<StartOptions>().toEqualTypeOf<{ readonly signal?: AbortSignal }>();
    expectTypeOf<WaitOptions>().toEqualTypeOf<{ readonly signal?: AbortSignal }>();
    expectTypeOf<CloseOptions['signal']>().toEqualTypeOf<AbortSignal | undefined>();
    expectTypeOf<LagMonitor['start']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<LagMonitor['stop']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<LagMonitor['sample']>().parameter(0).toEqualTypeOf<SignalOnly>();
    expectTypeOf<LagMonitorCallOptions>().toEqualTypeOf<{ readonly signal?: AbortSignal }>();
    expectTypeOf<ProducerSendOptions['signal']>().toEqualTypeOf<AbortSignal | undefined>();
    expectTypeOf<ProducerFlushOptions['signal']>().toEqualTypeOf<AbortSignal | undefined>();
    expectTypeOf<ProducerCloseOptions['signal']>().toEqualTypeOf<AbortSignal | undefined>();
    typeOnly(() => {
      const consumer = {} as BackpressureConsumer;
      // @ts-expect-error a signal is an AbortSignal
      void consumer.start({ signal: 'stop' });
      // @ts-expect-error unknown keys are refused
      void consumer.onIdle({ timeoutMs: 5 });
    });
  });

  it('consumer, producer and monitor are AsyncDisposable (await using)', () => {
    expectTypeOf<BackpressureConsumer>().toExtend<AsyncDisposable>();
    expectTypeOf<RateLimitedProducer>().toExtend<AsyncDisposable>();
    expectTypeOf<LagMonitor>().toExtend<AsyncDisposable>();
    expectTypeOf<BackpressureConsumer[typeof Symbol.asyncDispose]>().toEqualTypeOf<
      () => Promise<void>
    >();
    typeOnly(async () => {
      await using consumer = new BackpressureConsumer({} as Consumer, {
        topics: ['t'],
        handler: async () => {},
      });
      await using monitor = new LagMonitor({} as LagAdmin, {} as LagMonitorOptions);
      await using producer = new RateLimitedProducer({} as ProducerTarget);
      expectTypeOf(consumer).toEqualTypeOf<BackpressureConsumer>();
      expectTypeOf(monitor).toEqualTypeOf<LagMonitor>();
      expectTypeOf(producer).toEqualTypeOf<RateLimitedProducer>();
    });
  });

  it('instanceof narrows through the brand-checking Symbol.hasInstance', () => {
    typeOnly(() => {
      const value: unknown = undefined;
      if (value instanceof ConfigError) expectTypeOf(value).toEqualTypeOf<ConfigError>();
      if (value instanceof LagMonitor) expectTypeOf(value).toEqualTypeOf<LagMonitor>();
    });
  });

  it('errors carry a closed code union and their own fields', () => {
    expectTypeOf<ErrorCode>().toEqualTypeOf<(typeof ERROR_CODES)[number]>();
    expectTypeOf<'ERR_CONFIG'>().toExtend<ErrorCode>();
    expectTypeOf<'ERR_NOPE'>().not.toExtend<ErrorCode>();
    expectTypeOf<BackpressureError['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<BackpressureError['retriable']>().toEqualTypeOf<boolean>();
    expectTypeOf<BackpressureError>().toExtend<Error>();
    expectTypeOf<ConfigError>().toExtend<BackpressureError>();
    expectTypeOf<ConfigError['option']>().toEqualTypeOf<string>();
    expectTypeOf<ConfigError['expected']>().toEqualTypeOf<string>();
    expectTypeOf<ConfigError['received']>().toEqualTypeOf<unknown>();
    expectTypeOf(isBackpressureError).guards.toEqualTypeOf<BackpressureError>();
    typeOnly(() => {
      const error = new ConfigError('concurrency', 'an integer', 'x');
      // @ts-expect-error fields are read-only
      error.option = 'other';
      // A switch over the codes can be exhaustive.
      const describe = (code: ErrorCode): string => {
        switch (code) {
          case 'ERR_CONFIG':
          case 'ERR_HANDLER_TIMEOUT':
          case 'ERR_HANDLER_FAILED':
          case 'ERR_CIRCUIT_OPEN':
          case 'ERR_DLQ_PUBLISH':
          case 'ERR_PRODUCER_BUFFER_FULL':
          case 'ERR_PRODUCER_STOPPED':
          case 'ERR_CLOSED':
          case 'ERR_DRAIN_TIMEOUT':
          case 'ERR_STATE':
          case 'ERR_COMMIT':
          case 'ERR_MESSAGE_SHED':
            return code;
          default: {
            const never: never = code;
            return never;
          }
        }
      };
      return describe;
    });
  });

  it('registerMetrics takes consumers of different payload types and a prom-client Registry', () => {
    typeOnly(() => {
      const raw = new BackpressureConsumer(port, { topics: ['a'], handler: () => undefined });
      const orders = new BackpressureConsumer(port, {
        topics: ['b'],
        deserialize: () => ({ id: 1 }) as Order,
        handler: () => undefined,
      });
      const registration = registerMetrics(
        new client.Registry(),
        { consumers: [raw, orders] },
        { client, handlerDurationBuckets: [0.01, 0.1, 1] },
      );
      expectTypeOf(registration).toEqualTypeOf<MetricsRegistration>();
      registerMetrics(client.register, { consumers: [orders] });
      // @ts-expect-error an unknown source
      registerMetrics(client.register, { consumer: [orders] });
    });
    expectTypeOf<BackpressureConsumer<Order>>().toExtend<MeasuredConsumer>();
    expectTypeOf<BackpressureConsumer<string>>().toExtend<MeasuredConsumer>();
  });

  it('the client port keeps its shape', () => {
    expectTypeOf<ConsumerClient['start']>().toEqualTypeOf<(run: ClientRun) => Promise<void>>();
    expectTypeOf<ConsumerClient['commit']>().toEqualTypeOf<
      (offsets: readonly CommitOffset[]) => Promise<readonly CommitOffset[]>
    >();
    expectTypeOf<ConsumerClient['pause']>().toEqualTypeOf<
      (partitions: readonly TopicPartition[]) => void
    >();
    expectTypeOf<ConsumerClient['resume']>().toEqualTypeOf<
      (partitions: readonly TopicPartition[]) => void
    >();
    expectTypeOf<ConsumerClient['disconnect']>().toEqualTypeOf<() => Promise<void>>();
    expectTypeOf<keyof ConsumerClient>().toEqualTypeOf<
      'start' | 'pause' | 'resume' | 'commit' | 'disconnect' | 'fetchCommitted'
    >();
    expectTypeOf<NonNullable<ConsumerClient['fetchCommitted']>>().returns.toEqualTypeOf<
      Promise<readonly CommittedOffset[] | undefined>
    >();
    expectTypeOf<keyof ClientHooks>().toEqualTypeOf<
      'batch' | 'assigned' | 'rebalancing' | 'crashed' | 'failed'
    >();
    expectTypeOf<ClientHooks['batch']>().toEqualTypeOf<(batch: FetchedBatch) => Promise<void>>();
    expectTypeOf<FetchedBatch['heartbeat']>().returns.toEqualTypeOf<
      Promise<'ok' | 'rebalancing'>
    >();
    expectTypeOf<FetchedBatch['messages']>().toEqualTypeOf<readonly RawMessage[]>();
    expectTypeOf<CommitOffset>().toEqualTypeOf<{
      readonly topic: string;
      readonly partition: number;
      readonly offset: string;
      readonly metadata?: string | undefined;
    }>();
    // A class of its own can implement the port.
    class Client implements ConsumerClient {
      async start(): Promise<void> {}
      pause(): void {}
      resume(): void {}
      async commit(offsets: readonly CommitOffset[]): Promise<readonly CommitOffset[]> {
        return offsets;
      }
      async disconnect(): Promise<void> {}
    }
    expectTypeOf<Client>().toExtend<ConsumerClient>();
  });

  it('the admin option takes a KafkaJS Admin and needs only what it calls', () => {
    expectTypeOf<Admin>().toExtend<ProgressAdmin>();
    expectTypeOf<BackpressureConsumerOptions['admin']>().toEqualTypeOf<ProgressAdmin | undefined>();
    expectTypeOf<keyof ProgressAdmin>().toEqualTypeOf<'connect' | 'fetchOffsets'>();
  });

  it('options reject unknown keys and wrong values, and are read-only', () => {
    typeOnly(() => {
      const ok: BackpressureConsumerOptions = {
        topics: ['t'],
        handler: () => undefined,
        ordering: 'key',
        circuitBreaker: false,
        retry: { maxAttempts: 5 },
      };
      // @ts-expect-error options are read-only
      ok.concurrency = 2;
      const unknownKey: BackpressureConsumerOptions = {
        topics: ['t'],
        handler: () => undefined,
        // @ts-expect-error an unknown option
        concurency: 4,
      };
      const unknownNested: BackpressureConsumerOptions = {
        topics: ['t'],
        handler: () => undefined,
        // @ts-expect-error an unknown key of a group
        retry: { maxAttempts: 5, backoff: 2 },
      };
      const badOrdering: BackpressureConsumerOptions = {
        topics: ['t'],
        handler: () => undefined,
        // @ts-expect-error not an ordering mode
        ordering: 'strict',
      };
      const badBreaker: BackpressureConsumerOptions = {
        topics: ['t'],
        handler: () => undefined,
        // @ts-expect-error the breaker is configured with an object or disabled with false
        circuitBreaker: true,
      };
      // @ts-expect-error topics are required (handler or batchHandler: checked at construction)
      const missing: BackpressureConsumerOptions = { handler: () => undefined };
      new BackpressureConsumer(port, {
        topics: ['t'],
        handler: () => undefined,
        // @ts-expect-error unknown keys are caught at the constructor call too
        maxInflight: 10,
      });
      return [ok, unknownKey, unknownNested, badOrdering, badBreaker, missing];
    });
  });

  it('exports exactly these values', () => {
    expect(Object.keys(api).sort()).toEqual([
      'BackpressureConsumer',
      'BackpressureError',
      'CircuitOpenError',
      'ConfigError',
      'DEFAULT_HANDLER_DURATION_BUCKETS',
      'DLQ_HEADERS',
      'DLQ_HEADER_PREFIX',
      'DlqPublishError',
      'ERROR_CODES',
      'HandlerTimeoutError',
      'LagMonitor',
      'MessageShedError',
      'NonRetriableError',
      'ProducerBufferFullError',
      'ProducerClosedError',
      'ProducerDrainTimeoutError',
      'ProducerStoppedError',
      'RateLimitedProducer',
      'TRACING_CHANNELS',
      'isBackpressureError',
      'registerMetrics',
    ]);
  });
});
