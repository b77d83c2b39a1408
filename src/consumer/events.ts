import type { BackpressureError } from '../errors.js';
import type { PauseReason } from './flow/controller.js';
import type { LagStatus } from '../lag/lag-status.js';
import type { ShedAction } from './failure/shedding.js';
import type { TopicPartition } from '../shared/topic-partition.js';

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
  /**
   * What was measured: on `latency.high` the rolling percentile; on
   * `latency.normal` the slowest of the fast probes that ended the pause,
   * or, with `noEffect`, the median of the slow probes that ended it.
   */
  readonly latencyMs: number;
  /**
   * On `latency.high` the pause mark in force (`latency.pauseAboveMs`, or
   * higher after a pause that could not help); on `latency.normal`
   * `latency.resumeBelowMs`, or, with `noEffect`, the pause mark now in
   * force: 1.5 × `latencyMs` (at least `pauseAboveMs`).
   */
  readonly thresholdMs: number;
  /**
   * Only on `latency.normal`: the pause ended because it could not lower
   * latency, not because the probes were fast. The probes (`latency.probes`
   * in a row, started after the pause, all at or above `resumeBelowMs`)
   * were as slow as the latency that caused the pause (the downstream is
   * slow at any load), or within 1.1 × the adaptive limit's baseline (they
   * already see the downstream's latency without queueing, and the limit
   * keeps it there). Partitions resume at the adaptive limit, and the pause
   * mark rises to `thresholdMs` until calls are fast again.
   */
  readonly noEffect?: true;
}

export interface ConcurrencyChangedEvent {
  readonly from: number;
  readonly to: number;
  /**
   * `latency-high`: the adaptive limit cut on a clear latency rise.
   * `healthy`: it grew while latency held. `latency-steady`: a cut did not
   * lower latency, so the limit went back (the downstream is slow, not
   * overloaded). `latency-paused` / `latency-resumed`: a latency pause
   * capped the limit to its probes, or ended. `circuit-*`: the breaker.
   */
  readonly reason:
    | 'latency-high'
    | 'healthy'
    | 'latency-steady'
    | 'latency-paused'
    | 'latency-resumed'
    | 'circuit-half-open'
    | 'circuit-closed';
}

export interface CommitEvent {
  /**
   * What the broker accepted: per partition the next offset to consume and,
   * when offsets above it are already done (`key` and `unordered` ordering),
   * the metadata that marks them, so that a crash or a new owner skips them.
   */
  readonly offsets: readonly (TopicPartition & {
    readonly offset: string;
    readonly metadata?: string | undefined;
  })[];
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
  /**
   * True when it was dead-lettered without evidence that the downstream
   * works: every message that could run was failing and no health check is
   * configured, so the consumer guessed that this one is poison (see the
   * failure rule in docs/failures.md). Absent otherwise.
   */
  readonly guess?: true;
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
    | 'dead-letter'
    | 'downstream-lag';
}

/** One assigned partition in a {@link ConsumerLagEvent}. */
export interface PartitionLagSample extends TopicPartition {
  /** `highWatermark` minus `commitPosition`, at least 0. */
  readonly lag: number;
  /** The log-end offset reported with this partition's last fetched batch. */
  readonly highWatermark: number;
  /** The next offset to commit (every offset below it is done); undefined before the first message. */
  readonly commitPosition: number | undefined;
  /**
   * Now minus the Kafka timestamp of the oldest message not done yet, in
   * seconds: exact, read from the message the consumer holds. 0 when
   * caught up; undefined while behind with nothing in flight.
   */
  readonly timeLagSeconds: number | undefined;
}

/**
 * The consumer's own lag, from the high watermark each fetched batch
 * carries: no extra request. A paused partition fetches nothing, so its
 * high watermark (and lag) is the one of its last batch until it resumes.
 */
export interface ConsumerLagEvent {
  readonly groupId: string;
  /** Assigned partitions that have fetched at least one batch, by topic then partition. */
  readonly partitions: readonly PartitionLagSample[];
  /** Sum of `partitions[].lag`. */
  readonly total: number;
}

export interface ShedEvent extends MessageRef {
  /** The message's Kafka timestamp (ms since the epoch, as KafkaJS gives it). */
  readonly timestamp: string;
  /** How old it was when it came up for processing, in ms. */
  readonly ageMs: number;
  readonly maxAgeMs: number;
  /** `dead-letter`: written to the DLQ and acknowledged (a `dlq.routed` with reason `shed` came first). `skip`: dropped. */
  readonly action: ShedAction;
}

export interface DownstreamLagEvent {
  /** The downstream status last read; undefined without a `status` signal or before a good read. */
  readonly status: LagStatus | undefined;
  /** The downstream lag last read (messages); undefined without a `lag` signal or before a good read. */
  readonly lag: number | undefined;
  /** Which measure crossed which mark, e.g. `lag 5123 > pauseAboveLag 5000`. */
  readonly reason: string;
}

export interface HandlerSettledEvent extends MessageRef {
  readonly attempt: number;
  /** Wall time of the attempt (handler call to settle or timeout), on the consumer's clock. */
  readonly durationMs: number;
  /** `success`: resolved. `error`: threw or rejected. `timeout`: `handlerTimeoutMs` passed first. */
  readonly outcome: 'success' | 'error' | 'timeout';
  /**
   * Messages in the call: 1 for `handler`; with `batchHandler`, the
   * batch's size (`offset` is then its first message's).
   */
  readonly messages: number;
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
  /**
   * The rolling latency percentile rose above the pause mark
   * (`latency.pauseAboveMs`, or higher after a pause that could not help):
   * every partition pauses and `latency.probes` calls run at once.
   */
  'latency.high': (event: LatencyEvent) => void;
  /**
   * A latency pause ended: `latency.probes` calls in a row ended below
   * `latency.resumeBelowMs`, or (`noEffect`) as many ended slow and showed
   * the pause could not lower latency.
   */
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
  /** The consumer's own lag per assigned partition, every `lagSampleIntervalMs`. */
  'lag.sample': (event: ConsumerLagEvent) => void;
  /** A message older than `shed.maxAgeMs` was dead-lettered or skipped instead of handled; its offset counts as done. */
  'message.shed': (event: ShedEvent) => void;
  /** The next stage's lag crossed its high mark: every partition pauses with reason `downstream-lag`. */
  'downstream.lag-high': (event: DownstreamLagEvent) => void;
  /** The next stage's lag fell below its low mark: the `downstream-lag` reason clears. */
  'downstream.lag-normal': (event: DownstreamLagEvent) => void;
  /**
   * A handler attempt settled (not emitted for calls the open circuit
   * refused). Emitted only while someone listens, so it costs nothing
   * otherwise; `registerMetrics` builds its duration histogram from it.
   */
  'handler.settled': (event: HandlerSettledEvent) => void;
}
