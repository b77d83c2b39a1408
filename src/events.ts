import type { BackpressureError } from './errors.js';
import type { PauseReason } from './flow-controller.js';
import type { TopicPartition } from './topic-partition.js';

/** Where a message came from, in event payloads. */
export interface MessageRef {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface PausedEvent {
  readonly partitions: readonly TopicPartition[];
  readonly reason: PauseReason;
}

export interface ResumedEvent {
  readonly partitions: readonly TopicPartition[];
  /** The reason that cleared last, letting these partitions resume. */
  readonly reason: PauseReason;
}

export interface QueueEvent {
  readonly messages: number;
  readonly bytes: number;
  readonly maxMessages: number;
  readonly maxBytes: number;
}

export interface LatencyEvent {
  readonly percentile: number;
  /** The rolling percentile now; undefined when the window emptied. */
  readonly latencyMs: number | undefined;
  readonly thresholdMs: number;
}

export interface ConcurrencyChangedEvent {
  readonly from: number;
  readonly to: number;
  readonly reason: 'latency-high' | 'healthy' | 'circuit-half-open' | 'circuit-closed';
}

export interface CommitEvent {
  readonly offsets: readonly (TopicPartition & { readonly offset: string })[];
}

export interface RebalanceEvent {
  /** `draining`: a rebalance was noticed and in-flight work is being finished before rejoining. `assigned`: the new assignment is in force. */
  readonly phase: 'draining' | 'assigned';
  readonly assigned: readonly TopicPartition[];
  readonly revoked: readonly TopicPartition[];
  /** Messages of revoked partitions dropped from the queue (redelivered to their new owner). */
  readonly dropped: number;
}

export interface RetryEvent extends MessageRef {
  /** The attempt that failed (1-based). */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: Error;
}

export interface DlqRoutedEvent extends MessageRef {
  readonly dlqTopic: string;
  readonly reason: 'attempts-exhausted' | 'non-retriable' | 'deserialization' | 'shed';
  readonly attempts: number;
  readonly error: Error;
}

export interface DlqFailedEvent extends MessageRef {
  readonly dlqTopic: string;
  readonly error: BackpressureError;
  /** Failed writes in a row for this message. */
  readonly failures: number;
  readonly retryInMs: number;
}

export interface MessageFailedEvent extends MessageRef {
  readonly attempts: number;
  readonly error: Error;
  readonly retryInMs: number;
}

export interface CircuitEvent {
  readonly state: 'open' | 'half-open' | 'closed';
}

export interface ErrorEvent {
  readonly error: BackpressureError | Error;
  /** What the library was doing. */
  readonly during:
    | 'commit'
    | 'pause'
    | 'resume'
    | 'rebalance'
    | 'close'
    | 'consumer-crash'
    | 'handler'
    | 'dead-letter';
}

export interface ConsumerStateEvent {
  readonly state: 'starting' | 'running' | 'closing' | 'closed';
}

/**
 * Every event a {@link BackpressureConsumer} emits, by name, with its one
 * payload object. Subscribe with `consumer.on('flow.paused', (e) => ...)`.
 */
export interface ConsumerEvents {
  /** Partitions stopped fetching because a pause reason arrived. */
  'flow.paused': (event: PausedEvent) => void;
  /** Partitions fetch again: their last pause reason cleared. */
  'flow.resumed': (event: ResumedEvent) => void;
  /** In-flight messages or bytes reached the limit (the high mark). */
  'queue.full': (event: QueueEvent) => void;
  /** In-flight work fell to the low mark after being full. */
  'queue.drained': (event: QueueEvent) => void;
  /** The rolling latency percentile rose above `latency.pauseAboveMs`. */
  'latency.high': (event: LatencyEvent) => void;
  /** The rolling latency percentile fell below `latency.resumeBelowMs`. */
  'latency.normal': (event: LatencyEvent) => void;
  /** The concurrency limit changed (adaptive concurrency or the circuit). */
  'concurrency.changed': (event: ConcurrencyChangedEvent) => void;
  /** Offsets were committed to the group coordinator. */
  'offsets.committed': (event: CommitEvent) => void;
  /** A rebalance is being drained, or a new assignment took effect. */
  'group.rebalance': (event: RebalanceEvent) => void;
  /** A handler attempt failed and will be retried after `delayMs`. */
  'message.retry': (event: RetryEvent) => void;
  /** A message exhausted its attempts with no dead-letter topic configured: its partition holds and it is retried. */
  'message.failed': (event: MessageFailedEvent) => void;
  /** A message was written to the dead-letter topic and acknowledged. */
  'dlq.routed': (event: DlqRoutedEvent) => void;
  /** Writing a dead letter failed; its partition holds at that offset and the write is retried. */
  'dlq.failed': (event: DlqFailedEvent) => void;
  /** The circuit breaker opened: every partition pauses. */
  'circuit.open': (event: CircuitEvent) => void;
  /** The circuit lets one probe through at a time. */
  'circuit.half-open': (event: CircuitEvent) => void;
  /** The circuit closed: full flow again. */
  'circuit.closed': (event: CircuitEvent) => void;
  /** Lifecycle changes. */
  'consumer.state': (event: ConsumerStateEvent) => void;
  /** Something failed that the consumer handles by itself (commit retried later, KafkaJS crash, ...). */
  'consumer.error': (event: ErrorEvent) => void;
}
