import type { KafkaMessage } from 'kafkajs';
import type { TopicPartition } from '../../shared/topic-partition.js';

/**
 * The narrow port between the consumer's core and a Kafka client. The core
 * talks to Kafka only through it: the KafkaJS adapter (`kafkajs.ts`) is one
 * implementation, the fake client in `test/helpers` another. A client's
 * own events, error types and heartbeat rules stay behind it.
 */

/** A fetched record as the core reads it (KafkaJS's message shape, which other clients can fill). */
export type RawMessage = Pick<KafkaMessage, 'offset' | 'key' | 'value' | 'headers' | 'timestamp'>;

/** One partition's fetched records, handed to the core while the client waits for it. */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  /** The partition's log-end offset when fetched. */
  readonly highWatermark: number;
  readonly messages: readonly RawMessage[];
  /** The last offset the fetch covered (control records and aborted transactions included). */
  readonly lastOffset: number;
  /** The next fetch of this partition may start after `offset`: it is ours now, whatever becomes of it. */
  resolve(offset: string): void;
  /** False once the client stopped or this batch's partition assignment is stale: admit no more from it. */
  active(): boolean;
  /**
   * Keeps the membership alive while the batch waits for capacity.
   * `rebalancing` when the group has started a rebalance: the core drains
   * and returns, and the client rejoins after the batch handler returned.
   */
  heartbeat(): Promise<'ok' | 'rebalancing'>;
}

export interface CommitOffset extends TopicPartition {
  /** The next offset to consume, as Kafka commits it. */
  readonly offset: string;
  /** The offsets above it already done (see `offsets/progress-metadata.ts`); none when undefined. */
  readonly metadata?: string | undefined;
}

/** An offset the group committed, with the metadata stored beside it. */
export interface CommittedOffset extends TopicPartition {
  /** The committed offset; negative when the group has none for the partition. */
  readonly offset: string;
  readonly metadata: string | null;
}

/** What the client reports about the group and itself while it runs. */
export interface ClientHooks {
  /** Called for every fetched batch; the client fetches this partition again only after it settles. */
  batch(batch: FetchedBatch): Promise<void>;
  /** A new assignment is in force (after every join). */
  assigned(groupId: string, partitions: readonly TopicPartition[]): void;
  /** The client noticed a rebalance on its own and is about to rejoin: commit what is done now. */
  rebalancing(): void;
  /** The client crashed; it may restart by itself. */
  crashed(error: Error): void;
  /** A pause or resume call failed (the client was between runs). */
  failed(error: Error, during: 'pause' | 'resume'): void;
}

export interface ClientRun {
  readonly topics: readonly (string | RegExp)[];
  readonly fromBeginning: boolean;
  /** Batches of different partitions the client may hand over at once. */
  readonly partitionsConsumedConcurrently: number;
  readonly hooks: ClientHooks;
  /** True once close() began: the client takes no further start-up step. */
  stopping(): boolean;
}

export interface ConsumerClient {
  /** Connects, subscribes and starts fetching. Resolves once the client runs (or stopped starting). */
  start(run: ClientRun): Promise<void>;
  pause(partitions: readonly TopicPartition[]): void;
  resume(partitions: readonly TopicPartition[]): void;
  /**
   * Commits the offsets and resolves with those the broker confirmed. A
   * client that skips a commit (not running) leaves it out; a refused commit rejects.
   */
  commit(offsets: readonly CommitOffset[]): Promise<readonly CommitOffset[]>;
  /**
   * Reads what the group committed for these partitions, metadata included.
   * Optional: without it (or when it resolves undefined) a partition starts
   * from its plain committed offset.
   */
  fetchCommitted?(
    groupId: string,
    partitions: readonly TopicPartition[],
  ): Promise<readonly CommittedOffset[] | undefined>;
  disconnect(): Promise<void>;
}
