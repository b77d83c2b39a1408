import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  DLQ_HEADERS,
  NonRetriableError,
  RateLimitedProducer,
} from '../../src/index.js';
import {
  instrumentOpenTelemetry,
  type OpenTelemetryInstrumentation,
} from '../../src/otel/index.js';
import {
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  newConsumer,
  newKafka,
  newProducer,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

/**
 * The OpenTelemetry integration (kafkajs-backpressure/otel) with the SDK's
 * in-memory exporter, against the real broker: produce -> process ->
 * dead-letter -> send to the DLQ is one trace, and the dead letter carries it.
 */

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();
let instrumentation: OpenTelemetryInstrumentation;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  instrumentation = instrumentOpenTelemetry({ tracerProvider: provider });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  instrumentation.disable();
  await provider.shutdown();
  context.disable();
  propagation.disable();
  await disconnectAll();
});

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe('OpenTelemetry integration against a real broker', () => {
  it('produce -> process -> dead-letter -> DLQ send form one trace; the dead letter carries it', async () => {
    const topic = await createTopic(uniqueName('otel'), 1);
    const dlq = await createTopic(`${topic}.dlq`, 1);
    const groupId = uniqueName('g-otel');

    const kafkaProducer = newProducer();
    await kafkaProducer.connect();
    const producer = new RateLimitedProducer(kafkaProducer, { disconnectOnClose: false });
    cleanups.push(() => producer.close());

    // The service's own request span is the root of the trace.
    const tracer = provider.getTracer('test');
    const root = tracer.startSpan('http POST /orders');
    await context.with(trace.setSpan(context.active(), root), () =>
      producer.send({
        topic,
        messages: [
          { key: 'a', value: 'ok' },
          { key: 'b', value: 'poison' },
        ],
      }),
    );
    root.end();

    const activeInHandler: (string | undefined)[] = [];
    const consumer = new BackpressureConsumer(
      newKafka(`bp-${groupId}`).consumer({ groupId, maxWaitTimeInMs: 200 }),
      {
        topics: [topic],
        fromBeginning: true,
        commitIntervalMs: 100,
        deadLetter: { producer },
        handler: async (message) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          activeInHandler.push(trace.getActiveSpan()?.spanContext().spanId);
          if (message.value!.toString() === 'poison') throw new NonRetriableError('bad order');
        },
      },
    );
    cleanups.push(() => consumer.close({ drainTimeoutMs: 1000 }));
    await consumer.start();
    await expectCommittedAtEnd(groupId, topic);

    const spans = () => exporter.getFinishedSpans();
    await waitFor(() => spans().some((s) => s.name === `send ${dlq}`), {
      message: 'the DLQ send span',
    });
    const traceId = root.spanContext().traceId;
    const inTrace = spans().filter((s) => s.spanContext().traceId === traceId);
    const one = (name: string) => {
      const found = inTrace.filter((s) => s.name === name);
      expect(found, name).toHaveLength(1);
      return found[0]!;
    };

    const send = one(`send ${topic}`);
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(send)).toBe(root.spanContext().spanId);

    const processed = inTrace.filter((s) => s.name === `process ${topic}`);
    expect(processed).toHaveLength(2);
    for (const span of processed) {
      expect(span.kind).toBe(SpanKind.CONSUMER);
      // A child of the producer's context from the headers, and linked to it.
      expect(parentOf(span)).toBe(send.spanContext().spanId);
      expect(span.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
      expect(span.attributes['messaging.consumer.group.name']).toBe(groupId);
    }
    // The process span is the active span inside the handler.
    expect(activeInHandler.sort()).toEqual(processed.map((s) => s.spanContext().spanId).sort());

    const failed = processed.find((s) => s.attributes['messaging.kafka.offset'] === 1)!;
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.events.some((e) => e.name === 'exception')).toBe(true);
    const succeeded = processed.find((s) => s.attributes['messaging.kafka.offset'] === 0)!;
    expect(succeeded.status.code).not.toBe(SpanStatusCode.ERROR);

    const deadLetter = one(`dead-letter ${topic}`);
    expect(parentOf(deadLetter)).toBe(failed.spanContext().spanId);
    expect(deadLetter.attributes['kafkajs_backpressure.dlq.reason']).toBe('non-retriable');
    const dlqSend = one(`send ${dlq}`);
    expect(parentOf(dlqSend)).toBe(deadLetter.spanContext().spanId);

    // The dead letter on the broker carries the trace: its traceparent is the DLQ send's.
    const reader = newConsumer(uniqueName('g-otel-dlq-reader'));
    await reader.connect();
    await reader.subscribe({ topics: [dlq], fromBeginning: true });
    const letters: { traceparent: string; offset: string }[] = [];
    await reader.run({
      eachMessage: async ({ message }) => {
        letters.push({
          traceparent: message.headers?.['traceparent']?.toString() ?? '',
          offset: message.headers?.[DLQ_HEADERS.originalOffset]?.toString() ?? '',
        });
      },
    });
    await waitFor(() => letters.length > 0, { message: 'the dead letter read back' });
    await reader.disconnect();
    expect(letters).toEqual([
      { traceparent: `00-${traceId}-${dlqSend.spanContext().spanId}-01`, offset: '1' },
    ]);

    // Commits are spans of their own, outside the message traces.
    expect(spans().some((s) => s.name === 'commit' && s.kind === SpanKind.CLIENT)).toBe(true);
  });
});
