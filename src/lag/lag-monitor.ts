import { EventEmitter } from 'eventemitter3';
import type { Admin } from 'kafkajs';
import { systemClock, type Clock } from '../shared/clock.js';
import { BackpressureError, ConfigError, toError } from '../errors.js';
import type { LagStatus } from './lag-status.js';
import {
  DEFAULT_CLEAR_RATIO,
  LagWindow,
  analyzePartition,
  combinePartitions,
  lagOf,
  nextStatus,
  recommend,
  type GroupAnalysis,
  type LagRecommendation,
  type LagRules,
  type LagSample,
  type LagThresholds,
  type PartitionAnalysis,
} from './lag-window.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { parseTpKey, tpKey, type TopicPartition } from '../shared/topic-partition.js';
import {
  below,
  duration,
  integer,
  knownKeys,
  nonEmptyString,
  number,
  plainObject,
  logger as validLogger,
  clock as validClock,
} from '../shared/validate.js';

/** The admin calls the monitor makes; a KafkaJS `Admin` (`kafka.admin()`) has them all. */
export type LagAdmin = Pick<
  Admin,
  'connect' | 'fetchOffsets' | 'fetchTopicOffsets' | 'describeGroups'
>;

export interface LagMonitorOptions {
  /** The consumer group to watch. It needs no member of ours: any group works. */
  readonly groupId: string;
  /**
   * Topics to watch. Omitted: the topics the group has committed offsets
   * for, found again every round.
   */
  readonly topics?: readonly string[];
  /**
   * Milliseconds between the end of one sampling round and the start of the
   * next (rounds never overlap).
   * @default 5000
   */
  readonly intervalMs?: number;
  /**
   * Samples older than this leave the window. Rates, time lag and rules are
   * computed over the window; it must be longer than the group's commit
   * interval, or a healthy group looks stalled between two commits.
   * @default 60 × intervalMs (300000 at the default interval)
   */
  readonly windowMs?: number;
  /**
   * At most this many samples per partition in the window.
   * @default floor(windowMs / intervalMs) + 1
   */
  readonly windowSamples?: number;
  /**
   * The stalled, stopped and falling-behind rules need at least this many
   * samples in a partition's window. At most floor(windowMs / intervalMs)
   * and at most `windowSamples`, so that a full window can hold them.
   * @default min(5, floor(windowMs / intervalMs), windowSamples)
   */
  readonly ruleMinSamples?: number;
  /** Marks for the status; at least one of the four marks is required. */
  readonly thresholds: LagThresholds;
  /** A pino-shaped logger. */
  readonly logger?: Logger;
  /** Monotonic clock for sample times and the window (tests). */
  readonly clock?: Clock;
}

export interface ResolvedLagMonitorOptions {
  readonly groupId: string;
  readonly topics: readonly string[] | undefined;
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly windowSamples: number;
  readonly ruleMinSamples: number;
  readonly thresholds: Readonly<LagThresholds> & { readonly clearRatio: number };
  readonly logger: Logger;
  readonly clock: Clock;
}

export const LAG_MONITOR_DEFAULTS = Object.freeze({
  intervalMs: 5000,
  /** Multiplied by `intervalMs`. */
  windowIntervals: 60,
  ruleMinSamples: 5,
  clearRatio: DEFAULT_CLEAR_RATIO,
});

const OPTION_KEYS: readonly (keyof LagMonitorOptions)[] = [
  'groupId',
  'topics',
  'intervalMs',
  'windowMs',
  'windowSamples',
  'ruleMinSamples',
  'thresholds',
  'logger',
  'clock',
];

const MARK_KEYS = [
  'warningLag',
  'criticalLag',
  'warningTimeLagSeconds',
  'criticalTimeLagSeconds',
] as const;

/**
 * Validates the options of a `LagMonitor` and fills in the defaults. Throws a
 * `ConfigError` naming the first invalid option; never changes `input`.
 *
 * At least one mark is required: a monitor without one would report `ok`
 * forever, which a producer's lag signal cannot tell from a healthy group.
 */
export function resolveLagMonitorOptions(input: LagMonitorOptions): ResolvedLagMonitorOptions {
  const raw = plainObject('options', input);
  if (raw === undefined)
    throw new ConfigError('options', 'an object with at least groupId and thresholds', input);
  knownKeys('', raw, OPTION_KEYS);
  const d = LAG_MONITOR_DEFAULTS;

  const groupId = nonEmptyString('groupId', raw['groupId']);
  let topics: readonly string[] | undefined;
  const topicsRaw = raw['topics'];
  if (topicsRaw !== undefined) {
    if (
      !Array.isArray(topicsRaw) ||
      topicsRaw.length === 0 ||
      !topicsRaw.every((t) => typeof t === 'string' && t.trim() !== '')
    ) {
      throw new ConfigError(
        'topics',
        'a non-empty array of topic names (omit it to follow the topics the group has committed offsets for)',
        topicsRaw,
      );
    }
    topics = Object.freeze([...new Set(topicsRaw as string[])]);
  }

  const intervalMs = duration('intervalMs', raw['intervalMs'], d.intervalMs, { min: 10 });
  const windowMs = duration('windowMs', raw['windowMs'], d.windowIntervals * intervalMs, {
    min: 1,
  });
  if (windowMs < 2 * intervalMs) {
    throw new ConfigError(
      'windowMs',
      `at least twice \`intervalMs\` (${2 * intervalMs}), so the window holds two samples`,
      windowMs,
    );
  }
  const intervalsPerWindow = Math.floor(windowMs / intervalMs);
  const windowSamples = integer('windowSamples', raw['windowSamples'], intervalsPerWindow + 1, {
    min: 2,
    max: 100_000,
  });
  const ruleCap = Math.min(intervalsPerWindow, windowSamples);
  const ruleMinSamples = integer(
    'ruleMinSamples',
    raw['ruleMinSamples'],
    Math.min(d.ruleMinSamples, ruleCap),
    { min: 2, max: ruleCap },
  );

  const thresholdsRaw = plainObject('thresholds', raw['thresholds']);
  if (thresholdsRaw === undefined) {
    throw new ConfigError(
      'thresholds',
      `an object with at least one of ${MARK_KEYS.join(', ')}`,
      undefined,
    );
  }
  knownKeys('thresholds', thresholdsRaw, [...MARK_KEYS, 'clearRatio']);
  const lagMark = (key: 'warningLag' | 'criticalLag'): number | undefined =>
    thresholdsRaw[key] === undefined
      ? undefined
      : integer(`thresholds.${key}`, thresholdsRaw[key], 0, { min: 1 });
  const timeMark = (key: 'warningTimeLagSeconds' | 'criticalTimeLagSeconds'): number | undefined =>
    thresholdsRaw[key] === undefined
      ? undefined
      : number(`thresholds.${key}`, thresholdsRaw[key], 0, { min: 0, exclusiveMin: true });
  const warningLag = lagMark('warningLag');
  const criticalLag = lagMark('criticalLag');
  const warningTime = timeMark('warningTimeLagSeconds');
  const criticalTime = timeMark('criticalTimeLagSeconds');
  if ([warningLag, criticalLag, warningTime, criticalTime].every((m) => m === undefined)) {
    throw new ConfigError(
      'thresholds',
      `at least one of ${MARK_KEYS.join(', ')} (a monitor without a mark reports ok forever)`,
      thresholdsRaw,
    );
  }
  if (warningLag !== undefined && criticalLag !== undefined) {
    below('thresholds.warningLag', warningLag, 'thresholds.criticalLag', criticalLag);
  }
  if (warningTime !== undefined && criticalTime !== undefined) {
    below(
      'thresholds.warningTimeLagSeconds',
      warningTime,
      'thresholds.criticalTimeLagSeconds',
      criticalTime,
    );
  }
  const thresholds = Object.freeze({
    ...(warningLag === undefined ? {} : { warningLag }),
    ...(criticalLag === undefined ? {} : { criticalLag }),
    ...(warningTime === undefined ? {} : { warningTimeLagSeconds: warningTime }),
    ...(criticalTime === undefined ? {} : { criticalTimeLagSeconds: criticalTime }),
    clearRatio: number('thresholds.clearRatio', thresholdsRaw['clearRatio'], d.clearRatio, {
      min: 0,
      exclusiveMin: true,
      max: 1,
    }),
  });

  const logger = validLogger('logger', raw['logger']);
  const clock = validClock('clock', raw['clock']);

  return Object.freeze({
    groupId,
    topics,
    intervalMs,
    windowMs,
    windowSamples,
    ruleMinSamples,
    thresholds,
    logger: logger ?? silentLogger,
    clock: clock ?? systemClock,
  });
}

// ---------------------------------------------------------------- data

/** One partition in a {@link LagSnapshot}. */
export interface PartitionLag extends TopicPartition, PartitionAnalysis {
  readonly status: LagStatus;
}

/** The group in a {@link LagSnapshot}: totals over its partitions, and its own status. */
export interface GroupLag extends GroupAnalysis {
  readonly status: LagStatus;
}

/** The result of one sampling round. */
export interface LagSnapshot {
  readonly groupId: string;
  /** When the end offsets were read, on the monitor's clock (ms). */
  readonly at: number;
  /** Active members from `describeGroups`; `null` until one call succeeded. */
  readonly members: number | null;
  readonly total: GroupLag;
  /** Sorted by topic, then partition. */
  readonly partitions: readonly PartitionLag[];
  readonly recommendation: LagRecommendation;
}

/** A partition's samples in the window, with each sample's lag. */
export interface PartitionHistory extends TopicPartition {
  readonly samples: readonly (LagSample & { readonly lag: number })[];
}

/** The window, for a `/lag/history` endpoint. Times on the monitor's clock; `now - at` is a sample's age. */
export interface LagHistory {
  readonly groupId: string;
  readonly now: number;
  readonly windowMs: number;
  readonly partitions: readonly PartitionHistory[];
  /** Total lag per round, oldest first. */
  readonly total: readonly { readonly at: number; readonly lag: number }[];
}

// ---------------------------------------------------------------- events

export interface LagStatusEvent {
  readonly groupId: string;
  /** The whole group, or one partition. */
  readonly scope: 'group' | TopicPartition;
  readonly from: LagStatus;
  readonly to: LagStatus;
  /** Which measure crossed which mark, e.g. `lag 812 >= criticalLag 800`; active rules appended. */
  readonly reason: string;
  readonly lag: number;
  readonly timeLagSeconds: number | null;
  readonly rules: LagRules;
}

export interface LagRecommendationEvent {
  readonly groupId: string;
  /** The last recommendation announced; undefined the first time. */
  readonly previous: LagRecommendation | undefined;
  readonly recommendation: LagRecommendation;
}

export interface LagErrorEvent {
  readonly groupId: string;
  readonly error: Error;
  /** The admin call that failed. */
  readonly during: 'connect' | 'fetchOffsets' | 'fetchTopicOffsets' | 'describeGroups';
  /** For `fetchTopicOffsets`: the topic left out of this round. */
  readonly topic?: string;
}

/** Every event a {@link LagMonitor} emits, by name, with its one payload object. */
export interface LagMonitorEvents {
  /** A sampling round finished; the payload is the new snapshot. */
  'lag.sample': (snapshot: LagSnapshot) => void;
  /** The status of the group or of a partition changed. */
  'lag.status': (event: LagStatusEvent) => void;
  /** `consumersNeeded` or `partitionsNeeded` changed. */
  'lag.recommendation': (event: LagRecommendationEvent) => void;
  /** An admin call failed; sampling goes on. */
  'lag.error': (event: LagErrorEvent) => void;
}

export type LagMonitorState = 'idle' | 'running' | 'stopped';

const RULE_NAMES = ['stopped', 'stalled', 'rewind', 'fallingBehind'] as const;

function withRules(reason: string, rules: LagRules): string {
  const active = RULE_NAMES.filter((r) => rules[r]);
  return active.length === 0 ? reason : `${reason}; rules: ${active.join(', ')}`;
}

interface Sampled extends TopicPartition {
  readonly sample: LagSample;
}

function byTopicPartition(a: TopicPartition, b: TopicPartition): number {
  return a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1;
}

/**
 * Watches the lag of any consumer group through the KafkaJS admin client:
 * every `intervalMs` it reads the group's committed offsets and the
 * partitions' end offsets, keeps them in a sliding window, and derives per
 * partition and for the group the lag, time lag, rates, Burrow's rules, a
 * status with hysteresis, and sizing recommendations (see `lag-window.ts`
 * for the arithmetic).
 *
 * ```ts
 * const monitor = new LagMonitor(kafka.admin(), {
 *   groupId: 'orders-service',
 *   thresholds: { warningLag: 10_000, criticalLag: 100_000, criticalTimeLagSeconds: 300 },
 * });
 * await monitor.start();
 * const producer = new RateLimitedProducer(p, { lagSignal: { status: monitor.status } });
 * // Or pause the stage that feeds this group while it is behind:
 * const upstream = new BackpressureConsumer(c, {
 *   topics: ['raw'], handler,
 *   downstreamLag: { lag: monitor.lag, pauseAboveLag: 50_000, status: monitor.status },
 * });
 * ```
 */
export class LagMonitor extends EventEmitter<LagMonitorEvents> {
  readonly #admin: LagAdmin;
  readonly #options: ResolvedLagMonitorOptions;
  readonly #window: LagWindow;
  readonly #partitionStatus = new Map<string, LagStatus>();
  #groupStatus: LagStatus = 'ok';
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
  }

  /**
   * The group's status (or one partition's), from the last round; `ok`
   * before the first. A bound function: pass `monitor.status` as a
   * rate-limited producer's `lagSignal.status`.
   */
  readonly status = (partition?: TopicPartition): LagStatus => {
    if (partition === undefined) return this.#groupStatus;
    return this.#partitionStatus.get(tpKey(partition.topic, partition.partition)) ?? 'ok';
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

  get options(): ResolvedLagMonitorOptions {
    return this.#options;
  }

  /**
   * Runs a first round (connecting the admin client if needed), then one
   * every `intervalMs`. Resolves after the first round, which may have
   * failed (reported as `lag.error`; sampling goes on).
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') {
      throw new BackpressureError(
        'ERR_STATE',
        `start() called while ${this.#state}; a lag monitor starts once.`,
      );
    }
    this.#state = 'running';
    await this.#tick();
  }

  /** Stops sampling; waits for a round in progress. Idempotent. The admin client stays connected. */
  async stop(): Promise<void> {
    this.#state = 'stopped';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#rounds;
  }

  /**
   * Runs one sampling round now (after any round in progress) and resolves
   * with its snapshot. Works without `start()`. Rejects with the admin error
   * when the committed offsets could not be read (also emitted as
   * `lag.error`).
   */
  sample(): Promise<LagSnapshot> {
    if (this.#state === 'stopped') {
      return Promise.reject(new BackpressureError('ERR_STATE', 'sample() called after stop().'));
    }
    const round = this.#rounds.then(() => this.#round());
    this.#rounds = round.catch(() => undefined);
    return round;
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
    const partitions: PartitionHistory[] = [];
    const totals = new Map<number, number>();
    for (const key of this.#window.keys()) {
      const samples = this.#window.samples(key);
      const first = samples[0];
      if (first === undefined) continue;
      const { topic, partition } = parseTpKey(key);
      partitions.push({ topic, partition, samples: samples.map((s) => ({ ...s, lag: lagOf(s) })) });
      for (const s of samples) totals.set(s.at, (totals.get(s.at) ?? 0) + lagOf(s));
    }
    return {
      groupId: this.#options.groupId,
      now: this.#options.clock.now(),
      windowMs: this.#options.windowMs,
      partitions: partitions.sort(byTopicPartition),
      total: [...totals].sort(([a], [b]) => a - b).map(([at, lag]) => ({ at, lag })),
    };
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
    const admin = this.#admin;
    if (!this.#connected) {
      await this.#call('connect', () => admin.connect());
      this.#connected = true;
    }

    // Committed offsets first: the end offsets read after them are never
    // older, so the race between the two reads can only overstate the lag.
    const committed = await this.#call('fetchOffsets', () =>
      admin.fetchOffsets(
        o.topics === undefined
          ? { groupId: o.groupId }
          : { groupId: o.groupId, topics: [...o.topics] },
      ),
    );
    const committedByKey = new Map<string, number | null>();
    for (const { topic, partitions } of committed) {
      for (const { partition, offset } of partitions) {
        const n = Number(offset);
        // KafkaJS reports "no committed offset" as '-1'.
        committedByKey.set(tpKey(topic, partition), Number.isFinite(n) && n >= 0 ? n : null);
      }
    }
    const topics = o.topics ?? [...new Set(committed.map((t) => t.topic))].sort();

    const startedAt = o.clock.now();
    const ends = await Promise.all(
      topics.map(async (topic) => {
        try {
          return { topic, offsets: await admin.fetchTopicOffsets(topic) };
        } catch (error) {
          // One missing topic must not blind the monitor to the others.
          this.#reportError(error, 'fetchTopicOffsets', topic);
          return { topic, offsets: undefined };
        }
      }),
    );
    // The broker read the end offsets somewhere during the request.
    const at = (startedAt + o.clock.now()) / 2;

    try {
      const { groups } = await admin.describeGroups([o.groupId]);
      this.#members = groups[0]?.members.length ?? 0;
    } catch (error) {
      this.#reportError(error, 'describeGroups');
    }

    const sampled: Sampled[] = [];
    for (const { topic, offsets } of ends) {
      for (const { partition, high, low } of offsets ?? []) {
        const key = tpKey(topic, partition);
        const sample: LagSample = {
          at,
          endOffset: Number(high),
          committedOffset: committedByKey.get(key) ?? null,
          startOffset: Number(low),
        };
        this.#window.add(key, sample);
        sampled.push({ topic, partition, sample });
      }
    }
    // Topics no longer watched (discovery dropped them) leave the window;
    // a topic that failed this round keeps its history.
    const watched = new Set(topics);
    this.#window.retain((key) => watched.has(parseTpKey(key).topic));
    for (const key of [...this.#partitionStatus.keys()]) {
      if (!watched.has(parseTpKey(key).topic)) this.#partitionStatus.delete(key);
    }

    return this.#evaluate(at, sampled.sort(byTopicPartition));
  }

  #evaluate(at: number, sampled: readonly Sampled[]): LagSnapshot {
    const o = this.#options;
    const stopped = this.#state === 'stopped';
    const changes: LagStatusEvent[] = [];

    const partitions: PartitionLag[] = sampled.map(({ topic, partition, sample }) => {
      const key = tpKey(topic, partition);
      const samples = this.#window.samples(key);
      // A round slower than the whole window leaves only this round's sample.
      const analysis = analyzePartition(samples.length > 0 ? samples : [sample], o.ruleMinSamples);
      const from = this.#partitionStatus.get(key) ?? 'ok';
      const decision = nextStatus(from, analysis, o.thresholds);
      this.#partitionStatus.set(key, decision.status);
      if (decision.status !== from) {
        changes.push({
          groupId: o.groupId,
          scope: { topic, partition },
          from,
          to: decision.status,
          reason: withRules(decision.reason, analysis.rules),
          lag: analysis.lag,
          timeLagSeconds: analysis.timeLagSeconds,
          rules: analysis.rules,
        });
      }
      return { topic, partition, ...analysis, status: decision.status };
    });

    const group = combinePartitions(partitions);
    const from = this.#groupStatus;
    const decision = nextStatus(from, group, o.thresholds);
    this.#groupStatus = decision.status;
    if (decision.status !== from) {
      changes.push({
        groupId: o.groupId,
        scope: 'group',
        from,
        to: decision.status,
        reason: withRules(decision.reason, group.rules),
        lag: group.lag,
        timeLagSeconds: group.timeLagSeconds,
        rules: group.rules,
      });
    }

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
      at,
      members,
      total: { ...group, status: decision.status },
      partitions: Object.freeze(partitions),
      recommendation,
    });
    this.#snapshot = snapshot;
    o.logger.debug(
      {
        groupId: o.groupId,
        lag: group.lag,
        timeLagSeconds: group.timeLagSeconds,
        status: decision.status,
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
    for (const change of changes) {
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

  /** Runs one admin call; a failure is reported and ends the round. */
  async #call<T>(during: LagErrorEvent['during'], call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.#reportError(error, during);
    }
  }

  #reportError(error: unknown, during: LagErrorEvent['during'], topic?: string): Error {
    const err = toError(error);
    const o = this.#options;
    o.logger.warn({ err, groupId: o.groupId, during, topic }, 'lag monitor admin call failed');
    if (this.#state === 'stopped') return err;
    this.#emitSafely(() => {
      /**
       * An admin call failed. `fetchTopicOffsets` leaves that topic out of
       * the round; any other call ends the round. Sampling goes on.
       * @event lag.error
       */
      this.emit('lag.error', {
        groupId: o.groupId,
        error: err,
        during,
        ...(topic === undefined ? {} : { topic }),
      });
    });
    return err;
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
