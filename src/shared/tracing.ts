import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import type { RecordMetadata, ProducerRecord } from 'kafkajs';
import type { DlqRoutedEvent } from '../consumer/events.js';
import type { CommitOffset } from '../consumer/kafka/port.js';
import type { InboundMessage } from '../consumer/options.js';

/**
 * `node:diagnostics_channel` tracing channels, one per operation worth a
 * span: a handler attempt, a commit, a dead-letter write, a producer send.
 * Each is a `TracingChannel`: subscribers see `start`, `end` (the call
 * returned), then `asyncStart` and `asyncEnd` when the operation settled,
 * with `error` before them when it failed. The context object is the same
 * through the five events; `result` or `error` is set on it at the end.
 *
 * Without a subscriber nothing is built: every call site checks
 * `hasSubscribers` first, so the per-message path allocates nothing for
 * tracing. Channel names live in Node's process-wide registry, so two
 * copies of the package publish on the same channels.
 */
export const TRACING_CHANNELS = Object.freeze({
  /** One handler attempt: {@link HandleTraceContext}. */
  handle: 'kafkajs-backpressure:consumer.handle',
  /** One offset commit sent to the group coordinator: {@link CommitTraceContext}. */
  commit: 'kafkajs-backpressure:consumer.commit',
  /** Routing one message to its dead-letter topic, until written: {@link DeadLetterTraceContext}. */
  deadLetter: 'kafkajs-backpressure:consumer.dead-letter',
  /** One `RateLimitedProducer.send()` call: {@link ProduceTraceContext}. */
  produce: 'kafkajs-backpressure:producer.send',
});

/** Set on every trace context when the operation ended. */
interface TraceOutcome<R> {
  /** What the operation resolved with; set before `asyncStart`. */
  result?: R;
  /** What it failed with; set before the `error` event. */
  error?: unknown;
}

/**
 * A handler attempt. `start` runs synchronously right before the handler is
 * called, within `start.runStores`: a store bound to `start` (as the
 * OpenTelemetry integration binds its context) is active in the handler.
 * `asyncEnd` comes when the attempt ends: the handler settled, timed out
 * (`error` is the `HandlerTimeoutError`) or was abandoned on close.
 */
export interface HandleTraceContext extends TraceOutcome<undefined> {
  /** The message as the handler receives it (its `headers` carry any trace context). */
  readonly message: InboundMessage<unknown>;
  /** A batch handler's call: every message of the batch (`message` is the first). */
  readonly messages?: readonly InboundMessage<unknown>[];
  readonly groupId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** An offset commit. `result` is the offsets the broker confirmed. */
export interface CommitTraceContext extends TraceOutcome<readonly CommitOffset[]> {
  readonly groupId: string;
  readonly offsets: readonly CommitOffset[];
}

/**
 * Routing a message to its dead-letter topic, from the decision to the
 * broker's ack (write retries included). Runs within the attempt's
 * context; the dead letter's own `send` is traced as `produce` inside it.
 * `result` is true once written, false when the message was abandoned
 * (revoked or closed) before.
 */
export interface DeadLetterTraceContext extends TraceOutcome<boolean> {
  readonly message: InboundMessage<unknown>;
  readonly groupId: string;
  readonly reason: DlqRoutedEvent['reason'];
  /** Why the message is dead-lettered. */
  readonly cause: Error;
  readonly attempts: number;
}

/**
 * A `RateLimitedProducer.send()`. `start` comes before the record is
 * validated and buffered, within `start.runStores`: a subscriber may add
 * headers to its messages there (the OpenTelemetry integration injects
 * `traceparent`); they count toward the byte limits like any header.
 */
export interface ProduceTraceContext extends TraceOutcome<RecordMetadata[]> {
  readonly record: ProducerRecord;
}

export const handleChannel: TracingChannel<unknown, HandleTraceContext> = tracingChannel(
  TRACING_CHANNELS.handle,
);
export const commitChannel: TracingChannel<unknown, CommitTraceContext> = tracingChannel(
  TRACING_CHANNELS.commit,
);
export const deadLetterChannel: TracingChannel<unknown, DeadLetterTraceContext> = tracingChannel(
  TRACING_CHANNELS.deadLetter,
);
export const produceChannel: TracingChannel<unknown, ProduceTraceContext> = tracingChannel(
  TRACING_CHANNELS.produce,
);

/** Publishes the end of a traced operation that settled outside `tracePromise`. */
export function traceEnded<C extends TraceOutcome<unknown>>(
  channel: TracingChannel<unknown, C>,
  context: C,
  failed: boolean,
  error: unknown,
): void {
  if (failed) {
    context.error = error;
    channel.error.publish(context);
  }
  channel.asyncStart.publish(context);
  channel.asyncEnd.publish(context);
}
