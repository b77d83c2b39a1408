import { EventEmitter } from 'eventemitter3';
import { BackpressureError, ConfigError } from '../errors.js';
import { parseTpKey, type TopicPartition } from '../shared/topic-partition.js';
import { abortable, signal as validSignal } from '../shared/validate.js';
import { AdminCallError, poll, type AdminCall, type Poll } from './admin-poller.js';
import { combinePartitions } from './analysis.js';
import type { LagStatus } from './lag-status.js';
import {
  resolveLagMonitorOptions,
  type LagAdmin,
  type LagMonitorOptions,
  type ResolvedLagMonitorOptions,
} from './options.js';
import { recommend, type LagRecommendation } from './recommend.js';
import { PartitionTracks } from './partition-tracks.js';
import { LagWindow } from './samples.js';
import type { LagHistory, LagMonitorEvents, LagMonitorState, LagSnapshot } from './snapshot.js';
import { windowHistory } from './window-history.js';
import { FIRST_VERDICT, step, type Verdict } from './verdict.js';

export type { LagAdmin, LagMonitorOptions, ResolvedLagMonitorOptions } from './options.js';

/** Options of the lag monitor's async methods (`start()`, `stop()`, `sample()`). */
export interface LagMonitorCallOptions {
  /**
   * `start()`: aborting it before the first round finished stops the
   * monitor and rejects with `signal.reason`. `stop()`: aborting it ends the
   * wait for a round in progress (sampling has stopped already). `sample()`:
   * aborting it rejects with `signal.reason`. A round under way still
   * finishes in the background; `await stop()` waits for it.
   * @default none
   */
  readonly signal?: AbortSignal;
}
export type {
  GroupLag,
  LagErrorEvent,
  LagHistory,
  LagMonitorEvents,
  LagMonitorState,
  LagRecommendationEvent,
  LagRuleEvent,
  LagSnapshot,
  LagStatusEvent,
  PartitionHistory,
  PartitionLag,
} from './snapshot.js';
import { brand, isInstance } from '../shared/brand.js';

/**
 * Watches the lag of any consumer group through the KafkaJS admin client:
 * every `intervalMs` it reads the group's committed offsets, the
 * partitions' end offsets and the group's members, and derives per
 * partition and for the group the lag, time lag (with its bounds), rates,
 * Burrow's rules, a status with hysteresis, and sizing recommendations.
 * The reference is docs/lag-monitor.md.
 *
 * ```ts
 * const monitor = new LagMonitor(kafka.admin(), {
 *   groupId: 'orders-service',
 *   thresholds: { warningLag: 10_000, criticalLag: 100_000, criticalTimeLagSeconds: 300 },
 * });
 * await monitor.start();
 * const producer = new RateLimitedProducer(p, { lagSignal: { status: monitor.status } });
 * ```
 */
export class LagMonitor extends EventEmitter<LagMonitorEvents> {
  static {
    brand(this, 'LagMonitor');
  }

  /** True for a LagMonitor from any copy of the package (ESM and CommonJS, two versions). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(this, value);
  }

  readonly #admin: LagAdmin;
  readonly #options: ResolvedLagMonitorOptions;
  readonly #window: LagWindow;
  readonly #tracks: PartitionTracks;
  #group: Verdict = FIRST_VERDICT;
  #state: LagMonitorState = 'idle';
  #connected = false;
  #members: number | null = null;
  #snapshot: LagSnapshot | undefined;
  #announced: LagRecommendation | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Rounds run one after another; this is the tail of the chain. */
  #rounds: Promise<unknown> = Promise.resolve();

  /**
   * @param admin A KafkaJS admin client you created; connected or not (it is
   * connected when needed). The monitor never disconnects it.
   */
  constructor(admin: LagAdmin, options: LagMonitorOptions) {
    super();
    if (
      typeof admin !== 'object' ||
      admin === null ||
      !(['connect', 'fetchOffsets', 'fetchTopicOffsets', 'describeGroups'] as const).every(
        (m) => typeof admin[m] === 'function',
      )
    ) {
      throw new ConfigError('admin', 'a KafkaJS Admin (kafka.admin())', admin);
    }
    this.#admin = admin;
    this.#options = resolveLagMonitorOptions(options);
    this.#window = new LagWindow(this.#options.clock, this.#options);
    this.#tracks = new PartitionTracks(this.#window);
  }

  /**
   * The group's status (or one partition's), from the last round; `ok`
   * before the first. A bound function: pass `monitor.status` as a
   * rate-limited producer's `lagSignal.status`.
   */
  readonly status = (partition?: TopicPartition): LagStatus => {
    if (partition === undefined) return this.#group.status;
    return this.#tracks.status(partition);
  };

  /**
   * The group's total lag (or one partition's) in messages, from the last
   * round; undefined before the first (or for a partition not watched). A
   * bound function: pass `monitor.lag` as a consumer's `downstreamLag.lag`.
   */
  readonly lag = (partition?: TopicPartition): number | undefined => {
    const snapshot = this.#snapshot;
    if (snapshot === undefined) return undefined;
    if (partition === undefined) return snapshot.total.lag;
    return snapshot.partitions.find(
      (p) => p.topic === partition.topic && p.partition === partition.partition,
    )?.lag;
  };

  get state(): LagMonitorState {
    return this.#state;
  }

  /** The options in force, defaults filled in (frozen). */
  get options(): ResolvedLagMonitorOptions {
    return this.#options;
  }

  /**
   * Runs a first round (connecting the admin client if needed), then one
   * every `intervalMs`. Resolves after the first round, which may have
   * failed (reported as `lag.error`; sampling goes on). With `signal`, see
   * {@link LagMonitorCallOptions.signal}.
   */
  async start(options: LagMonitorCallOptions = {}): Promise<void> {
    const signal = validSignal('signal', options.signal);
    signal?.throwIfAborted();
    if (this.#state !== 'idle') {
      throw new BackpressureError(
        'ERR_STATE',
        `start() called while ${this.#state}; a lag monitor starts once.`,
      );
    }
    this.#state = 'running';
    try {
      await abortable(this.#tick(), signal);
    } catch (error) {
      if (signal?.aborted !== true) throw error;
      this.#halt();
      throw signal.reason;
    }
  }

  /**
   * Stops sampling; waits for a round in progress (or until `signal`
   * aborts). Idempotent. The admin client stays connected.
   */
  async stop(options: LagMonitorCallOptions = {}): Promise<void> {
    const signal = validSignal('signal', options.signal);
    this.#halt();
    if (signal?.aborted === true) return;
    try {
      await abortable(this.#rounds, signal);
    } catch {
      // Aborted: the round finishes in the background.
    }
  }

  /** `await using monitor = new LagMonitor(...)`: `stop()` with its defaults. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #halt(): void {
    this.#state = 'stopped';
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Runs one sampling round now (after any round in progress) and resolves
   * with its snapshot. Works without `start()`. Rejects with the admin error
   * when the committed offsets could not be read (also emitted as
   * `lag.error`). With `signal`, rejects with its reason when it aborts
   * first (the round still runs).
   */
  async sample(options: LagMonitorCallOptions = {}): Promise<LagSnapshot> {
    const signal = validSignal('signal', options.signal);
    signal?.throwIfAborted();
    if (this.#state === 'stopped') {
      throw new BackpressureError('ERR_STATE', 'sample() called after stop().');
    }
    const round = this.#rounds.then(() => this.#round());
    this.#rounds = round.catch(() => undefined);
    return abortable(round, signal);
  }

  /** The last snapshot; undefined before the first successful round. */
  snapshot(): LagSnapshot | undefined {
    return this.#snapshot;
  }

  /** The last recommendation; undefined before the first successful round. */
  recommendations(): LagRecommendation | undefined {
    return this.#snapshot?.recommendation;
  }

  /** The samples in the window, per partition and as total lag per round. */
  history(): LagHistory {
    const o = this.#options;
    return windowHistory(this.#window, o.groupId, o.clock.now(), o.windowMs);
  }

  // ---------------------------------------------------------------- rounds

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (this.#state !== 'running') return;
    try {
      await this.sample();
    } catch {
      // Already reported as lag.error; the next round tries again.
    }
    if (this.#state !== 'running') return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  async #round(): Promise<LagSnapshot> {
    const o = this.#options;
    let polled: Poll;
    try {
      polled = await poll(
        this.#admin,
        {
          groupId: o.groupId,
          topics: o.topics,
          clock: o.clock,
          onError: (error, during, topic) => this.#reportError(error, during, topic),
        },
        !this.#connected,
      );
    } catch (error) {
      if (error instanceof AdminCallError) throw this.#reportError(error.error, error.during);
      throw error;
    }
    this.#connected = true;
    if (polled.members !== null) this.#members = polled.members;

    // Topics no longer watched (discovery dropped them) are forgotten; a
    // topic that failed this round keeps its history.
    const watched = new Set(polled.topics);
    const keep = (key: string): boolean => watched.has(parseTpKey(key).topic);
    this.#tracks.retain(keep);

    return this.#evaluate(polled);
  }

  #evaluate(polled: Poll): LagSnapshot {
    const o = this.#options;
    const stopped = this.#state === 'stopped';
    const { partitions, statusChanges, ruleChanges } = this.#tracks.evaluate(polled, o);

    const group = combinePartitions(partitions);
    const stepped = step(o.groupId, 'group', this.#group, group, o.thresholds);
    this.#group = stepped.next;
    if (stepped.status) statusChanges.push(stepped.status);
    if (stepped.rule) ruleChanges.push(stepped.rule);
    const status = stepped.next.status;

    const members = this.#members;
    const recommendation = recommend({
      lag: group.lag,
      partitions: partitions.length,
      produceRate: group.produceRate,
      consumeRate: group.consumeRate,
      members,
    });
    const previous = this.#announced;
    // The first announcement waits for a measurable one; after that every
    // change counts, also to null (no longer measurable).
    const announce =
      previous === undefined
        ? recommendation.consumersNeeded !== null
        : previous.consumersNeeded !== recommendation.consumersNeeded ||
          previous.partitionsNeeded !== recommendation.partitionsNeeded;
    if (announce) this.#announced = recommendation;

    const snapshot: LagSnapshot = Object.freeze({
      groupId: o.groupId,
      at: polled.at,
      members,
      total: { ...group, status },
      partitions: Object.freeze(partitions),
      recommendation,
    });
    this.#snapshot = snapshot;
    o.logger.debug(
      {
        groupId: o.groupId,
        lag: group.lag,
        timeLagSeconds: group.timeLagSeconds,
        status,
        rule: stepped.next.rule,
      },
      'lag sample',
    );
    if (stopped) return snapshot;

    this.#emitSafely(() => {
      /**
       * A sampling round finished: per partition and in total, lag, time
       * lag, rates, rules, statuses and the recommendation.
       * @event lag.sample
       */
      this.emit('lag.sample', snapshot);
    });
    for (const change of statusChanges) {
      const level = change.to === 'ok' ? 'info' : 'warn';
      o.logger[level](
        { groupId: o.groupId, scope: change.scope, from: change.from, to: change.to },
        `lag status ${change.from} -> ${change.to}: ${change.reason}`,
      );
      this.#emitSafely(() => {
        /**
         * The status of the group (`scope: 'group'`) or of one partition
         * changed; `reason` names the measure and the mark it crossed.
         * @event lag.status
         */
        this.emit('lag.status', change);
      });
    }
    for (const change of ruleChanges) {
      this.#emitSafely(() => {
        /**
         * The Burrow rule in force for the group or one partition changed
         * (`to: null`: none holds any more).
         * @event lag.rule
         */
        this.emit('lag.rule', change);
      });
    }
    if (announce) {
      this.#emitSafely(() => {
        /**
         * `consumersNeeded` or `partitionsNeeded` differs from the last
         * recommendation announced (the first one is announced too).
         * @event lag.recommendation
         */
        this.emit('lag.recommendation', { groupId: o.groupId, previous, recommendation });
      });
    }
    return snapshot;
  }

  #reportError(error: Error, during: AdminCall, topic?: string): Error {
    const o = this.#options;
    o.logger.warn(
      { err: error, groupId: o.groupId, during, topic },
      'lag monitor admin call failed',
    );
    if (this.#state === 'stopped') return error;
    this.#emitSafely(() => {
      /**
       * An admin call failed. `fetchTopicOffsets` leaves that topic out of
       * the round; any other call ends the round. Sampling goes on.
       * @event lag.error
       */
      this.emit('lag.error', {
        groupId: o.groupId,
        error,
        during,
        ...(topic === undefined ? {} : { topic }),
      });
    });
    return error;
  }

  /** Listeners run inside the round; one that throws must not end the sampling. */
  #emitSafely(emit: () => void): void {
    try {
      emit();
    } catch (error) {
      this.#options.logger.error({ err: error }, 'a lag monitor event listener threw');
    }
  }
}
