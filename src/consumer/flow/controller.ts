import { parseTpKey, tpKey, type TopicPartition } from '../../shared/topic-partition.js';

/**
 * Why a partition is paused. Several can hold at once; a partition resumes
 * only when the last one clears.
 */
export type PauseReason =
  | 'queue-full'
  | 'partition-full'
  | 'latency'
  | 'circuit'
  | 'manual'
  | 'dlq-unavailable'
  | 'message-failed'
  | 'downstream-lag'
  | 'closing';

export interface FlowPort {
  pause(partitions: readonly TopicPartition[]): void;
  resume(partitions: readonly TopicPartition[]): void;
}

export interface FlowChange {
  readonly partitions: readonly TopicPartition[];
  /** The reason whose arrival (pause) or departure (resume) caused the change. */
  readonly reason: PauseReason;
}

export interface FlowListener {
  paused(change: FlowChange): void;
  resumed(change: FlowChange): void;
}

/**
 * The one place that decides pause and resume. Triggers add or remove
 * reasons, globally (every assigned partition) or for one partition; the
 * controller works out which partitions changed state and only then calls the
 * port, so pause and resume are idempotent and never race each other.
 *
 * Pure: it knows nothing of KafkaJS, timers or thresholds; hysteresis lives
 * in the triggers that call it.
 */
export class FlowController {
  readonly #port: FlowPort;
  readonly #listener: FlowListener;
  readonly #global = new Set<PauseReason>();
  readonly #local = new Map<string, Set<PauseReason>>();
  readonly #assigned = new Set<string>();
  /** A global reason that does not hold one partition (see {@link exempt}). */
  readonly #exempt = new Map<PauseReason, string>();
  /** Partitions the port was last told to pause. */
  readonly #paused = new Set<string>();

  constructor(port: FlowPort, listener: FlowListener) {
    this.#port = port;
    this.#listener = listener;
  }

  hasReason(reason: PauseReason, partition?: TopicPartition): boolean {
    const key = partition && tpKey(partition.topic, partition.partition);
    if (this.#global.has(reason) && (key === undefined || this.#exempt.get(reason) !== key)) {
      return true;
    }
    return key !== undefined && (this.#local.get(key)?.has(reason) ?? false);
  }

  /** Reasons currently holding a partition (global and its own), for diagnostics. */
  reasonsFor(partition: TopicPartition): PauseReason[] {
    const key = tpKey(partition.topic, partition.partition);
    const global = [...this.#global].filter((reason) => this.#exempt.get(reason) !== key);
    return [...new Set([...global, ...(this.#local.get(key) ?? [])])];
  }

  assignedPartitions(): TopicPartition[] {
    return [...this.#assigned].map(parseTpKey);
  }

  globalReasons(): PauseReason[] {
    return [...this.#global];
  }

  isPaused(topic: string, partition: number): boolean {
    return this.#paused.has(tpKey(topic, partition));
  }

  pausedPartitions(): TopicPartition[] {
    return [...this.#paused].map(parseTpKey);
  }

  add(reason: PauseReason, partition?: TopicPartition): void {
    if (partition === undefined) {
      if (this.#global.has(reason)) return;
      this.#global.add(reason);
    } else {
      const key = tpKey(partition.topic, partition.partition);
      const set = this.#local.get(key) ?? new Set<PauseReason>();
      if (set.has(reason)) return;
      set.add(reason);
      this.#local.set(key, set);
    }
    this.#apply(reason);
  }

  remove(reason: PauseReason, partition?: TopicPartition): void {
    if (partition === undefined) {
      if (!this.#global.delete(reason)) return;
    } else {
      const key = tpKey(partition.topic, partition.partition);
      const set = this.#local.get(key);
      if (!set?.delete(reason)) return;
      if (set.size === 0) this.#local.delete(key);
    }
    this.#apply(reason);
  }

  /**
   * Lets one partition out of a global reason (the latency pause lets one
   * fetch when it has nothing left to probe with), or none with undefined.
   */
  exempt(reason: PauseReason, partition: TopicPartition | undefined): void {
    const key = partition && tpKey(partition.topic, partition.partition);
    if (this.#exempt.get(reason) === key) return;
    if (key === undefined) this.#exempt.delete(reason);
    else this.#exempt.set(reason, key);
    if (this.#global.has(reason)) this.#apply(reason);
  }

  /**
   * Replaces the assignment after a rebalance. Per-partition reasons of
   * partitions no longer owned are dropped; every owned partition is told its
   * state again, because the client's pause flags may not match ours after a
   * rejoin.
   */
  assign(partitions: readonly TopicPartition[]): void {
    const keys = new Set(partitions.map((p) => tpKey(p.topic, p.partition)));
    for (const key of [...this.#assigned]) {
      if (!keys.has(key)) {
        this.#assigned.delete(key);
        this.#local.delete(key);
        this.#paused.delete(key);
      }
    }
    for (const key of keys) this.#assigned.add(key);
    const pause: TopicPartition[] = [];
    const resume: TopicPartition[] = [];
    for (const key of this.#assigned) {
      if (this.#shouldPause(key)) {
        this.#paused.add(key);
        pause.push(parseTpKey(key));
      } else {
        this.#paused.delete(key);
        resume.push(parseTpKey(key));
      }
    }
    if (pause.length > 0) this.#port.pause(pause);
    if (resume.length > 0) this.#port.resume(resume);
  }

  #shouldPause(key: string): boolean {
    for (const reason of this.#global) if (this.#exempt.get(reason) !== key) return true;
    return (this.#local.get(key)?.size ?? 0) > 0;
  }

  #apply(reason: PauseReason): void {
    const pause: TopicPartition[] = [];
    const resume: TopicPartition[] = [];
    for (const key of this.#assigned) {
      const should = this.#shouldPause(key);
      if (should && !this.#paused.has(key)) {
        this.#paused.add(key);
        pause.push(parseTpKey(key));
      } else if (!should && this.#paused.has(key)) {
        this.#paused.delete(key);
        resume.push(parseTpKey(key));
      }
    }
    if (pause.length > 0) {
      this.#port.pause(pause);
      this.#listener.paused({ partitions: pause, reason });
    }
    if (resume.length > 0) {
      this.#port.resume(resume);
      this.#listener.resumed({ partitions: resume, reason });
    }
  }
}
