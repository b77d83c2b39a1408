import type {
  ClientHooks,
  ClientRun,
  CommitOffset,
  CommittedOffset,
  ConsumerClient,
  FetchedBatch,
  RawMessage,
} from '../../src/consumer/kafka/port.js';
import type { TopicPartition } from '../../src/shared/topic-partition.js';

/** A record for {@link FakeClient.deliver}: offsets follow on from the partition's last one. */
export interface FakeRecord {
  readonly key?: string | null;
  readonly value?: string;
  readonly timestamp?: number;
}

const tp = (topic: string, partition: number) => `${topic}|${partition}`;

/**
 * A second implementation of the client port, for driving the consumer's
 * core deterministically: the test decides what is assigned, what each
 * fetch returns, when a rebalance starts and whether commits are
 * confirmed. Offsets are numbered per partition from 0.
 */
export class FakeClient implements ConsumerClient {
  #hooks: ClientHooks | undefined;
  #run: ClientRun | undefined;
  readonly #next = new Map<string, number>();
  /** Offsets resolved by the core, per partition: where the next fetch would start. */
  readonly resolved = new Map<string, number>();
  /** Every commit the core sent, in order. */
  readonly commits: CommitOffset[][] = [];
  /** The last committed offset per partition (`topic|partition`). */
  readonly committed = new Map<string, number>();
  /** The metadata committed with it (null when none). */
  readonly committedMetadata = new Map<string, string | null>();
  /** Whether the core may read committed metadata (the port's optional `fetchCommitted`). */
  readable = true;
  /** Calls of `fetchCommitted`, with the partitions asked for. */
  readonly fetches: TopicPartition[][] = [];
  readonly paused = new Set<string>();
  /** Partitions assigned now. */
  assignment: TopicPartition[] = [];
  /** While true, heartbeats answer that the group is rebalancing. */
  rebalancing = false;
  /** While set, commits wait for it before they are answered (a slow broker). */
  commitGate: Promise<void> | undefined = undefined;
  /** While false, commits resolve without being confirmed (the client was not running). */
  confirmCommits = true;
  disconnected = false;
  heartbeats = 0;

  async start(run: ClientRun): Promise<void> {
    this.#run = run;
    this.#hooks = run.hooks;
    await Promise.resolve();
  }

  get hooks(): ClientHooks {
    if (this.#hooks === undefined) throw new Error('FakeClient: start() has not run');
    return this.#hooks;
  }

  get partitionsConsumedConcurrently(): number {
    return this.#run?.partitionsConsumedConcurrently ?? 0;
  }

  /**
   * A client for the member that takes over from `previous` (after a crash
   * or a rebalance): it sees the group's commits, and its fetches start at
   * the committed offsets.
   */
  static succeeding(previous: FakeClient): FakeClient {
    const next = new FakeClient();
    for (const [key, offset] of previous.committed) {
      next.committed.set(key, offset);
      next.#next.set(key, offset);
    }
    for (const [key, metadata] of previous.committedMetadata) {
      next.committedMetadata.set(key, metadata);
    }
    return next;
  }

  fetchCommitted(
    _groupId: string,
    partitions: readonly TopicPartition[],
  ): Promise<readonly CommittedOffset[] | undefined> {
    this.fetches.push([...partitions]);
    if (!this.readable) return Promise.resolve(undefined);
    return Promise.resolve(
      partitions.map((p) => ({
        topic: p.topic,
        partition: p.partition,
        offset: String(this.committed.get(tp(p.topic, p.partition)) ?? -1),
        metadata: this.committedMetadata.get(tp(p.topic, p.partition)) ?? null,
      })),
    );
  }

  assign(groupId: string, partitions: readonly TopicPartition[]): void {
    this.assignment = [...partitions];
    this.hooks.assigned(groupId, partitions);
  }

  /**
   * Hands the core one batch of `records` for the partition, as a fetch
   * would, and resolves when the core's batch handler returns.
   */
  deliver(
    topic: string,
    partition: number,
    records: readonly FakeRecord[] | number,
    options: { highWatermark?: number } = {},
  ): Promise<void> {
    const key = tp(topic, partition);
    const list: readonly FakeRecord[] =
      typeof records === 'number'
        ? Array.from({ length: records }, (): FakeRecord => ({}))
        : records;
    const first = this.#next.get(key) ?? 0;
    const messages: RawMessage[] = list.map((r, i) => ({
      offset: String(first + i),
      key: r.key === undefined || r.key === null ? null : Buffer.from(r.key),
      value: Buffer.from(r.value ?? `v${first + i}`),
      headers: {},
      timestamp: String(r.timestamp ?? Date.now()),
    }));
    const last = first + list.length - 1;
    this.#next.set(key, last + 1);
    const batch: FetchedBatch = {
      topic,
      partition,
      highWatermark: options.highWatermark ?? last + 1,
      messages,
      lastOffset: last,
      resolve: (offset) => {
        const value = Number(offset);
        if (value > (this.resolved.get(key) ?? -1)) this.resolved.set(key, value);
      },
      active: () => this.assignment.some((a) => a.topic === topic && a.partition === partition),
      heartbeat: () => {
        this.heartbeats += 1;
        return Promise.resolve(this.rebalancing ? 'rebalancing' : 'ok');
      },
    };
    return this.hooks.batch(batch);
  }

  pause(partitions: readonly TopicPartition[]): void {
    for (const p of partitions) this.paused.add(tp(p.topic, p.partition));
  }

  resume(partitions: readonly TopicPartition[]): void {
    for (const p of partitions) this.paused.delete(tp(p.topic, p.partition));
  }

  async commit(offsets: readonly CommitOffset[]): Promise<readonly CommitOffset[]> {
    this.commits.push([...offsets]);
    if (this.commitGate !== undefined) await this.commitGate;
    if (!this.confirmCommits) return [];
    for (const o of offsets) {
      this.committed.set(tp(o.topic, o.partition), Number(o.offset));
      this.committedMetadata.set(tp(o.topic, o.partition), o.metadata ?? null);
    }
    return offsets;
  }

  disconnect(): Promise<void> {
    this.disconnected = true;
    return Promise.resolve();
  }
}
