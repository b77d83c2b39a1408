/**
 * OpenTelemetry for kafkajs-backpressure, built on `@opentelemetry/api` (an
 * optional peer) and the package's diagnostics channels: import
 * `kafkajs-backpressure/otel` and call {@link instrumentOpenTelemetry} once.
 *
 * - A `send <topic>` span (PRODUCER) per `RateLimitedProducer.send()`,
 *   whose context is injected into each message's headers (W3C
 *   `traceparent` with the default propagator).
 * - A `process <topic>` span (CONSUMER) per handler attempt, a child of the
 *   context taken from the message's headers and linked to it; it is the
 *   active span inside the handler.
 * - A `dead-letter <topic>` span for routing a message to its DLQ, a child
 *   of the message's last `process` span; the dead letter's own `send` is a
 *   child of it, so the dead letter carries the original trace.
 * - A `commit` span (CLIENT) per offset commit.
 *
 * Propagation uses the global propagator, and the handler's active span
 * needs a context manager (both are what the OpenTelemetry Node SDK sets up).
 *
 * @module
 */
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { IHeaders } from 'kafkajs';
import {
  TRACING_CHANNELS,
  type CommitTraceContext,
  type DeadLetterTraceContext,
  type HandleTraceContext,
  type ProduceTraceContext,
} from '../shared/tracing.js';

export interface OpenTelemetryOptions {
  /** Where spans go. @default the global tracer provider */
  readonly tracerProvider?: TracerProvider;
  /** Trace commits too (one span per commit, a root span each). @default true */
  readonly commits?: boolean;
}

/** What {@link instrumentOpenTelemetry} returns. */
export interface OpenTelemetryInstrumentation {
  /** Unsubscribes from every channel; spans already started still end. */
  disable(): void;
}

const TRACER_NAME = 'kafkajs-backpressure';

/** Reads Kafka headers (Buffer, string or arrays of them) for propagation. */
const headerGetter: TextMapGetter<IHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    if (value === undefined) return undefined;
    return Array.isArray(value) ? value.map((v) => v.toString()) : value.toString();
  },
};

const headerSetter: TextMapSetter<IHeaders> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/**
 * Subscribes to the package's tracing channels and turns them into spans.
 * Call it once, before consuming; returns a handle to undo it.
 */
export function instrumentOpenTelemetry(
  options: OpenTelemetryOptions = {},
): OpenTelemetryInstrumentation {
  const tracer: Tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(
    TRACER_NAME,
  );
  const undo: (() => void)[] = [];
  const spans = new WeakMap<object, Span>();
  /** The context of each message's last `process` span: the dead letter's parent. */
  const processed = new WeakMap<object, Context>();
  /** A store that makes a context active, as `context.with` does. */
  const activeContext = { run: <T>(ctx: Context, fn: () => T): T => context.with(ctx, fn) };

  const ending = <C extends { error?: unknown }>(channel: TracingChannel<unknown, C>): void => {
    const handlers = {
      error: (c: C) => {
        const span = spans.get(c);
        if (span === undefined) return;
        const error = c.error instanceof Error ? c.error : new Error(String(c.error));
        span.recordException(error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      },
      asyncEnd: (c: C) => {
        spans.get(c)?.end();
        spans.delete(c);
      },
    };
    channel.subscribe(handlers as never);
    undo.push(() => channel.unsubscribe(handlers as never));
  };

  /** Creates the span as the operation starts and makes its context active for it. */
  const starting = <C extends object>(
    channel: TracingChannel<unknown, C>,
    open: (c: C) => Context,
  ): void => {
    channel.start.bindStore(activeContext as never, open as never);
    undo.push(() => channel.start.unbindStore(activeContext as never));
    ending(channel as TracingChannel<unknown, C & { error?: unknown }>);
  };

  starting(tracingChannel<unknown, ProduceTraceContext>(TRACING_CHANNELS.produce), (c) => {
    const parent = context.active();
    const topic = c.record?.topic ?? '';
    const span = tracer.startSpan(
      `send ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'send',
          'messaging.destination.name': topic,
          'messaging.batch.message_count': c.record?.messages?.length ?? 0,
        },
      },
      parent,
    );
    spans.set(c, span);
    const ctx = trace.setSpan(parent, span);
    for (const message of c.record?.messages ?? []) {
      if (message === null || typeof message !== 'object') continue;
      message.headers ??= {};
      propagation.inject(ctx, message.headers, headerSetter);
    }
    return ctx;
  });

  starting(tracingChannel<unknown, HandleTraceContext>(TRACING_CHANNELS.handle), (c) => {
    const { message } = c;
    const producer = propagation.extract(ROOT_CONTEXT, message.headers, headerGetter);
    const producerSpan = trace.getSpanContext(producer);
    const attributes: Attributes = {
      'messaging.system': 'kafka',
      'messaging.operation.type': 'process',
      'messaging.destination.name': message.topic,
      'messaging.destination.partition.id': String(message.partition),
      'messaging.kafka.offset': Number(message.offset),
      'messaging.consumer.group.name': c.groupId,
      'kafkajs_backpressure.attempt': c.attempt,
    };
    const span = tracer.startSpan(
      `process ${message.topic}`,
      {
        kind: SpanKind.CONSUMER,
        attributes,
        ...(producerSpan === undefined ? {} : { links: [{ context: producerSpan }] }),
      },
      producer,
    );
    spans.set(c, span);
    const ctx = trace.setSpan(producer, span);
    processed.set(message, ctx);
    return ctx;
  });

  starting(tracingChannel<unknown, DeadLetterTraceContext>(TRACING_CHANNELS.deadLetter), (c) => {
    const parent = processed.get(c.message) ?? context.active();
    const span = tracer.startSpan(
      `dead-letter ${c.message.topic}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.destination.name': c.message.topic,
          'messaging.destination.partition.id': String(c.message.partition),
          'messaging.kafka.offset': Number(c.message.offset),
          'messaging.consumer.group.name': c.groupId,
          'kafkajs_backpressure.dlq.reason': c.reason,
          'kafkajs_backpressure.attempts': c.attempts,
          'error.type': c.cause.name,
        },
      },
      parent,
    );
    spans.set(c, span);
    return trace.setSpan(parent, span);
  });

  if (options.commits !== false) {
    const commit = tracingChannel<unknown, CommitTraceContext>(TRACING_CHANNELS.commit);
    const onStart = (c: CommitTraceContext): void => {
      spans.set(
        c,
        tracer.startSpan(
          'commit',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'messaging.system': 'kafka',
              'messaging.operation.type': 'settle',
              'messaging.consumer.group.name': c.groupId,
              'kafkajs_backpressure.partitions': c.offsets.length,
            },
          },
          ROOT_CONTEXT,
        ),
      );
    };
    commit.start.subscribe(onStart as never);
    undo.push(() => commit.start.unsubscribe(onStart as never));
    ending(commit);
  }

  let disabled = false;
  return {
    disable: () => {
      if (disabled) return;
      disabled = true;
      for (const step of undo.reverse()) step();
    },
  };
}
