import type { Admin, Consumer, EachBatchPayload } from 'kafkajs';
import { ConfigError, toError } from '../../errors.js';
import { byTopic, tpKey, type TopicPartition } from '../../shared/topic-partition.js';
import type {
  ClientHooks,
  ClientRun,
  CommitOffset,
  CommittedOffset,
  ConsumerClient,
  FetchedBatch,
} from './port.js';

/** The admin calls the consumer makes to read its group's committed metadata. */
export type ProgressAdmin = Pick<Admin, 'connect' | 'fetchOffsets'>;

/**
 * The KafkaJS implementation of the client port. What is KafkaJS-specific
 * lives here: its instrumentation events become hooks, its heartbeat errors
 * become a `rebalancing` answer, and its commits are confirmed by event.
 */
export class KafkaJsClient implements ConsumerClient {
  readonly #consumer: Consumer;
  readonly #admin: ProgressAdmin | undefined;
  #adminConnected = false;
  /** Offsets the broker accepted, as KafkaJS reports them, by partition key. */
  readonly #confirmed = new Map<string, string>();
  readonly #unsubscribe: (() => void)[] = [];
  #hooks: ClientHooks | undefined;

  /**
   * @param admin reads the metadata committed beside each offset, which a
   *   KafkaJS consumer does not expose; without one, commits still carry it
   *   but a new owner starts from the plain offset.
   */
  constructor(consumer: Consumer, admin?: ProgressAdmin) {
    this.#consumer = consumer;
    this.#admin = admin;
  }

  async start(run: ClientRun): Promise<void> {
    const consumer = this.#consumer;
    const hooks = run.hooks;
    this.#hooks = hooks;
    const { GROUP_JOIN, REBALANCING, CRASH, COMMIT_OFFSETS } = consumer.events;
    this.#unsubscribe.push(
      consumer.on(GROUP_JOIN, (event) => {
        const assigned: TopicPartition[] = [];
        for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
          for (const partition of partitions) assigned.push({ topic, partition });
        }
        hooks.assigned(event.payload.groupId, assigned);
      }),
      // KafkaJS noticed the rebalance itself (between batches) and is about
      // to rejoin; it cannot be held back from here.
      consumer.on(REBALANCING, () => hooks.rebalancing()),
      // KafkaJS's commitOffsets resolves without committing when its runner
      // is not running (restarting after a crash, stopping): only this
      // event, emitted after the broker accepted a commit, confirms one.
      consumer.on(COMMIT_OFFSETS, (event) => {
        for (const { topic, partitions } of event.payload.topics) {
          for (const { partition, offset } of partitions) {
            this.#confirmed.set(tpKey(topic, partition), String(offset));
          }
        }
      }),
      consumer.on(CRASH, (event) => hooks.crashed(toError(event.payload.error))),
    );
    // close() may come while KafkaJS connects, subscribes or joins. The step
    // under way finishes and no further one is taken: otherwise the consumer
    // joined the group after close() had returned, holding partitions nobody
    // processed, with its sockets keeping the process alive.
    await consumer.connect();
    if (run.stopping()) return;
    await consumer.subscribe({ topics: [...run.topics], fromBeginning: run.fromBeginning });
    if (run.stopping()) return;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: run.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.#eachBatch(payload, hooks),
    });
  }

  async #eachBatch(payload: EachBatchPayload, hooks: ClientHooks): Promise<void> {
    const { batch } = payload;
    let rebalance: unknown;
    const fetched: FetchedBatch = {
      topic: batch.topic,
      partition: batch.partition,
      highWatermark: Number(batch.highWatermark),
      messages: batch.messages,
      lastOffset: Number(batch.lastOffset()),
      resolve: (offset) => payload.resolveOffset(offset),
      active: () => payload.isRunning() && !payload.isStale(),
      heartbeat: async () => {
        try {
          await payload.heartbeat();
        } catch (error) {
          // Once a rebalance is known, the drain keeps heartbeating: the
          // coordinator keeps the session alive on heartbeats it answers
          // with REBALANCE_IN_PROGRESS, so a long drain keeps the membership.
          if (rebalance === undefined && !isRebalance(error)) throw error;
          rebalance ??= error;
        }
        return rebalance === undefined ? 'ok' : 'rebalancing';
      },
    };
    await hooks.batch(fetched);
    // KafkaJS rejoins when this error leaves eachBatch; the core has drained
    // and committed by now.
    if (rebalance !== undefined) throw rebalance;
  }

  pause(partitions: readonly TopicPartition[]): void {
    // KafkaJS throws from pause/resume before run() has set up the group and
    // after it stopped; those moments have nothing to pause.
    try {
      this.#consumer.pause(byTopic(partitions));
    } catch (error) {
      this.#hooks?.failed(toError(error), 'pause');
    }
  }

  resume(partitions: readonly TopicPartition[]): void {
    try {
      this.#consumer.resume(byTopic(partitions));
    } catch (error) {
      this.#hooks?.failed(toError(error), 'resume');
    }
  }

  async commit(offsets: readonly CommitOffset[]): Promise<readonly CommitOffset[]> {
    for (const { topic, partition } of offsets) this.#confirmed.delete(tpKey(topic, partition));
    await this.#consumer.commitOffsets(
      offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        // Null overwrites the metadata of an earlier commit, as it must.
        metadata: o.metadata ?? null,
      })),
    );
    return offsets.filter((o) => this.#confirmed.get(tpKey(o.topic, o.partition)) === o.offset);
  }

  async fetchCommitted(
    groupId: string,
    partitions: readonly TopicPartition[],
  ): Promise<readonly CommittedOffset[] | undefined> {
    const admin = this.#admin;
    if (admin === undefined) return undefined;
    if (!this.#adminConnected) {
      // The caller's admin, connected or not; connecting twice is harmless. Never disconnected here.
      await admin.connect();
      this.#adminConnected = true;
    }
    const wanted = new Set(partitions.map((tp) => tpKey(tp.topic, tp.partition)));
    const topics = [...new Set(partitions.map((tp) => tp.topic))];
    const answer = await admin.fetchOffsets({ groupId, topics });
    const committed: CommittedOffset[] = [];
    for (const { topic, partitions: entries } of answer) {
      for (const { partition, offset, metadata } of entries) {
        if (wanted.has(tpKey(topic, partition))) {
          committed.push({ topic, partition, offset, metadata: metadata ?? null });
        }
      }
    }
    return committed;
  }

  async disconnect(): Promise<void> {
    try {
      await this.#consumer.disconnect();
    } finally {
      for (const off of this.#unsubscribe) off();
      this.#unsubscribe.length = 0;
    }
  }
}

/** The heartbeat errors that mean the group is rebalancing or our generation is over. */
function isRebalance(error: unknown): boolean {
  const type = (error as { type?: unknown } | null)?.type;
  return (
    type === 'REBALANCE_IN_PROGRESS' ||
    type === 'NOT_COORDINATOR_FOR_GROUP' ||
    type === 'ILLEGAL_GENERATION'
  );
}

/** The client port for what the caller passed: a KafkaJS consumer is wrapped, a port is used as it is. */
export function clientOf(consumer: unknown, admin: ProgressAdmin | undefined): ConsumerClient {
  const c = consumer as Partial<Consumer & ConsumerClient> | null;
  if (typeof c === 'object' && c !== null) {
    if (typeof c.run === 'function') return new KafkaJsClient(c as Consumer, admin);
    if (
      typeof c.start === 'function' &&
      typeof c.commit === 'function' &&
      typeof c.pause === 'function' &&
      typeof c.resume === 'function' &&
      typeof c.disconnect === 'function'
    ) {
      return c as ConsumerClient;
    }
  }
  throw new ConfigError(
    'consumer',
    'a KafkaJS Consumer (kafka.consumer({ groupId })) or a ConsumerClient',
    consumer,
  );
}
