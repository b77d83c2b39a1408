import { systemClock, type Clock } from '../../shared/clock.js';
import { OffsetTracker } from '../offsets/tracker.js';
import { tpKey, type TopicPartition } from '../../shared/topic-partition.js';
import type { Unit } from '../dispatch/batch.js';
import { LaneQueue } from '../dispatch/lanes.js';
import type { OrderingMode } from '../options.js';

/**
 * Everything the core keeps about one assigned partition. One object per
 * partition, handed along with each of its messages, so no stage looks a
 * partition up by key per message.
 */
export class PartitionState implements TopicPartition {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  readonly tracker = new OffsetTracker();
  /** Its messages waiting to run, in the order the ordering mode allows. */
  readonly lanes: LaneQueue<Unit>;
  /** Done messages of this partition's topic (shared per topic, outlives the partition). */
  readonly consumed: { count: number };
  /** Set when the partition is taken away: its work is no longer ours to commit. */
  revoked = false;
  /** From the last batch: the log-end offset the broker reported. */
  highWatermark: number | undefined = undefined;
  /** The first offset of the first batch: where the partition stands for its lag until a message is admitted. */
  fetchedFrom: number | undefined = undefined;
  /** Messages admitted and not settled. */
  inFlight = 0;
  /** Bytes of those messages. */
  bytes = 0;
  /** Its messages occupying a worker right now. */
  running = 0;
  /** Paused for holding its share of a contended in-flight budget. */
  shareFull = false;
  /** Messages of this partition holding it at a failure (dead letter not written, or attempts exhausted without a DLQ). */
  holding = 0;
  /** With `batchHandler`: since when its runnable messages wait for a batch to fill (consumer clock). */
  lingerSince: number | undefined = undefined;
  /** In the dispatcher's ring of partitions with runnable messages. */
  inRing = false;
  /**
   * When its work last ran dry (or it was assigned), while that is less
   * than {@link ACTIVE_WINDOW_MS} ago and nothing was admitted since; else undefined.
   */
  idleSince: number | undefined = undefined;
  /** Set while the last owner's committed metadata is read: its first batch waits for it. */
  restoring: Promise<void> | undefined = undefined;

  constructor(topic: string, partition: number, mode: OrderingMode, consumed: { count: number }) {
    this.topic = topic;
    this.partition = partition;
    this.key = tpKey(topic, partition);
    this.lanes = new LaneQueue<Unit>(mode);
    this.consumed = consumed;
  }
}

export interface Reassignment {
  readonly assigned: readonly TopicPartition[];
  readonly revoked: readonly TopicPartition[];
  /** Messages of revoked partitions still in flight: skipped as they come up, redelivered to the new owner. */
  readonly dropped: number;
}

/**
 * How long a partition still counts toward the concurrency share after its
 * work ran dry, or after it was assigned. Between two fetches a partition
 * has nothing in flight for a moment; without this window a slow partition
 * whose batch lands in such a moment takes most of the slots, and keeps
 * them for as long as its handlers run.
 */
export const ACTIVE_WINDOW_MS = 1000;

/** The assigned partitions, with the counts that fair shares are computed from. */
export class Partitions {
  readonly #mode: OrderingMode;
  readonly #clock: Clock;
  readonly #byKey = new Map<string, PartitionState>();
  readonly #consumed = new Map<string, { count: number }>();
  /** Assigned partitions with messages in flight. */
  #busy = 0;
  /** Partitions idle for less than ACTIVE_WINDOW_MS, with the time each went idle, oldest first. */
  readonly #cooling: [PartitionState, number][] = [];
  /** How many partitions have `idleSince` set. */
  #coolingCount = 0;
  /** Partitions with `holding` above zero. */
  #holding = 0;
  /** Partitions paused for holding their share of a contended budget. */
  #fullShares = 0;

  constructor(mode: OrderingMode, clock: Clock = systemClock) {
    this.#mode = mode;
    this.#clock = clock;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /**
   * Partitions sharing the concurrency now: those with messages in flight,
   * and those whose work ran dry (or that were assigned) less than
   * {@link ACTIVE_WINDOW_MS} ago.
   */
  get busy(): number {
    if (this.#coolingCount > 0) this.#expire();
    return this.#busy + this.#coolingCount;
  }

  #expire(): void {
    const cooling = this.#cooling;
    const now = this.#clock.now();
    let ended = 0;
    while (ended < cooling.length) {
      const [state, since] = cooling[ended]!;
      if (state.idleSince === since) {
        if (now - since < ACTIVE_WINDOW_MS) break;
        state.idleSince = undefined;
        this.#coolingCount -= 1;
      }
      ended += 1;
    }
    if (ended > 0) cooling.splice(0, ended);
  }

  #cool(state: PartitionState): void {
    const now = this.#clock.now();
    if (state.idleSince === undefined) this.#coolingCount += 1;
    state.idleSince = now;
    this.#cooling.push([state, now]);
  }

  #warm(state: PartitionState): void {
    if (state.idleSince === undefined) return;
    // Its entry in #cooling no longer matches and is passed over.
    state.idleSince = undefined;
    this.#coolingCount -= 1;
  }

  get holding(): number {
    return this.#holding;
  }

  /** Partitions whose in-flight work waits for something other than capacity: held at a failure, or paused at their share. */
  get waiting(): number {
    return this.#holding + this.#fullShares;
  }

  /** Marks a partition paused at its share of the budget (`partition-full`), or no longer. */
  shareFull(state: PartitionState, on: boolean): void {
    if (state.shareFull === on) return;
    state.shareFull = on;
    if (!state.revoked) this.#fullShares += on ? 1 : -1;
  }

  values(): IterableIterator<PartitionState> {
    return this.#byKey.values();
  }

  /** The partition's state, made on its first batch or assignment. */
  of(topic: string, partition: number): PartitionState {
    const key = tpKey(topic, partition);
    let state = this.#byKey.get(key);
    if (state === undefined) {
      let consumed = this.#consumed.get(topic);
      if (consumed === undefined) {
        consumed = { count: 0 };
        this.#consumed.set(topic, consumed);
      }
      state = new PartitionState(topic, partition, this.#mode, consumed);
      this.#byKey.set(key, state);
    }
    return state;
  }

  /** Messages done since start, per topic (a revoked partition's count stays). */
  consumedCounts(): ReadonlyMap<string, number> {
    return new Map([...this.#consumed].map(([topic, c]) => [topic, c.count]));
  }

  /** Counts an admitted message. */
  admitted(state: PartitionState, bytes: number): void {
    if (state.inFlight === 0 && !state.revoked) {
      this.#busy += 1;
      this.#warm(state);
    }
    state.inFlight += 1;
    state.bytes += bytes;
  }

  /** Counts a settled message (done or abandoned). */
  settled(state: PartitionState, bytes: number): void {
    state.inFlight -= 1;
    state.bytes -= bytes;
    if (state.inFlight === 0 && !state.revoked) {
      this.#busy -= 1;
      this.#cool(state);
    }
  }

  /** Counts a message holding its partition at a failure; true when the partition's first one arrived or its last left. */
  hold(state: PartitionState, delta: 1 | -1): boolean {
    state.holding += delta;
    const changed = (delta === 1 && state.holding === 1) || (delta === -1 && state.holding === 0);
    // A revoked partition left the count when it was revoked.
    if (changed && !state.revoked) this.#holding += delta;
    return changed;
  }

  /**
   * Replaces the assignment. Work of a partition no longer owned is skipped
   * as it comes up and never committed: its new owner starts from the last
   * commit (kafkajs#1046).
   */
  assign(partitions: readonly TopicPartition[]): Reassignment {
    const keys = new Set(partitions.map((tp) => tpKey(tp.topic, tp.partition)));
    const revoked: TopicPartition[] = [];
    let dropped = 0;
    for (const [key, state] of this.#byKey) {
      if (keys.has(key)) continue;
      if (state.inFlight > 0) this.#busy -= 1;
      this.#warm(state);
      if (state.holding > 0) this.#holding -= 1;
      if (state.shareFull) this.#fullShares -= 1;
      state.revoked = true;
      dropped += state.tracker.pendingCount;
      this.#byKey.delete(key);
      revoked.push({ topic: state.topic, partition: state.partition });
    }
    for (const tp of partitions) {
      const state = this.of(tp.topic, tp.partition);
      // New to this member: it will have work soon, and counts from now.
      if (state.inFlight === 0 && state.tracker.nextOffset === undefined) this.#cool(state);
    }
    return { assigned: partitions, revoked, dropped };
  }

  /**
   * Work that waits for something other than capacity (a failure, or a
   * slow partition at its share): its messages and bytes, left out of the
   * queue-full low mark.
   */
  held(): { messages: number; bytes: number } {
    let messages = 0;
    let bytes = 0;
    if (this.waiting === 0) return { messages, bytes };
    for (const state of this.#byKey.values()) {
      if (state.holding === 0 && !state.shareFull) continue;
      messages += state.inFlight;
      bytes += state.bytes;
    }
    return { messages, bytes };
  }
}
