import type { Admin } from 'kafkajs';
import { ConfigError } from '../errors.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import {
  below,
  duration,
  MAX_TIMER_MS,
  integer,
  knownKeys,
  nonEmptyString,
  number,
  plainObject,
  clock as validClock,
  logger as validLogger,
} from '../shared/validate.js';
import { DEFAULT_CLEAR_RATIO, MARK_KEYS, type LagThresholds } from './thresholds.js';

/** The admin calls the monitor makes; a KafkaJS `Admin` (`kafka.admin()`) has them all. */
export type LagAdmin = Pick<
  Admin,
  'connect' | 'fetchOffsets' | 'fetchTopicOffsets' | 'describeGroups'
>;

export { MAX_TIMER_MS };

export interface LagMonitorOptions {
  /** The consumer group to watch. It needs no member of ours: any group works. */
  readonly groupId: string;
  /**
   * Topics to watch.
   * @default the topics the group has committed offsets for, found again every round
   */
  readonly topics?: readonly string[];
  /**
   * Milliseconds between the end of one sampling round and the start of the
   * next (rounds never overlap). At least 10, at most 2^31 - 1. It is the
   * resolution of the time lag and of the stop rules.
   * @default 5000
   */
  readonly intervalMs?: number;
  /**
   * Samples older than this leave the window. Rates and the falling-behind
   * rule are computed over it. At least 2 × `intervalMs`, at most 2^31 - 1.
   * @default 60 × intervalMs (300000 at the default interval)
   */
  readonly windowMs?: number;
  /**
   * At most this many samples per partition in the window. 2 to 100000.
   * @default floor(windowMs / intervalMs) + 1
   */
  readonly windowSamples?: number;
  /**
   * The falling-behind rule needs at least this many moves of the committed
   * offset in the window. 2 to min(floor(windowMs / intervalMs), windowSamples).
   * @default min(5, floor(windowMs / intervalMs), windowSamples)
   */
  readonly ruleMinSamples?: number;
  /**
   * A partition with lag whose committed offset has not moved for this
   * long is `stopped` (or `stalled`, when a live member owns it), whatever
   * its commit cadence; a group committing often is flagged sooner (see
   * docs/lag-monitor.md). Keep it longer than the group's commit
   * interval. At least 2 × `intervalMs`, at most 2^31 - 1.
   * @default max(30000, 2 × intervalMs)
   */
  readonly stoppedAfterMs?: number;
  /**
   * Steps of end-offset history kept per partition for the time lag. Recent
   * steps keep the sampling interval's precision; older ones are merged in
   * proportion to their age once the history is full. 16 to 100000.
   * @default 256
   */
  readonly timeLagHistorySize?: number;
  /** Marks for the status; at least one of the six marks is required. */
  readonly thresholds: LagThresholds;
  /**
   * A pino-shaped logger (`debug`, `info`, `warn`, `error`).
   * @default silent: nothing goes to the console
   */
  readonly logger?: Logger;
  /**
   * Monotonic clock (milliseconds) for sample times and the window; inject one in tests.
   * @default performance.now()
   */
  readonly clock?: Clock;
}

export interface ResolvedLagMonitorOptions {
  readonly groupId: string;
  readonly topics: readonly string[] | undefined;
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly windowSamples: number;
  readonly ruleMinSamples: number;
  readonly stoppedAfterMs: number;
  readonly timeLagHistorySize: number;
  readonly thresholds: Readonly<LagThresholds> & { readonly clearRatio: number };
  readonly logger: Logger;
  readonly clock: Clock;
}

export const LAG_MONITOR_DEFAULTS = Object.freeze({
  intervalMs: 5000,
  /** Multiplied by `intervalMs`. */
  windowIntervals: 60,
  ruleMinSamples: 5,
  stoppedAfterMs: 30_000,
  timeLagHistorySize: 256,
  clearRatio: DEFAULT_CLEAR_RATIO,
});

const OPTION_KEYS: readonly (keyof LagMonitorOptions)[] = [
  'groupId',
  'topics',
  'intervalMs',
  'windowMs',
  'windowSamples',
  'ruleMinSamples',
  'stoppedAfterMs',
  'timeLagHistorySize',
  'thresholds',
  'logger',
  'clock',
];

/** A duration that becomes a timer (the shared rule bounds it by {@link MAX_TIMER_MS}). */
function boundedDuration(option: string, value: unknown, fallback: number, min: number): number {
  return duration(option, value, fallback, { min });
}

function resolveThresholds(
  value: unknown,
): Readonly<LagThresholds> & { readonly clearRatio: number } {
  const raw = plainObject('thresholds', value);
  if (raw === undefined) {
    throw new ConfigError(
      'thresholds',
      `an object with at least one of ${MARK_KEYS.join(', ')}`,
      value,
    );
  }
  knownKeys('thresholds', raw, [...MARK_KEYS, 'clearRatio']);
  const marks: Partial<Record<(typeof MARK_KEYS)[number], number>> = {};
  for (const key of MARK_KEYS) {
    if (raw[key] === undefined) continue;
    marks[key] = key.endsWith('Lag')
      ? integer(`thresholds.${key}`, raw[key], 0, { min: 1 })
      : number(`thresholds.${key}`, raw[key], 0, { min: 0, exclusiveMin: true });
  }
  if (Object.keys(marks).length === 0) {
    throw new ConfigError(
      'thresholds',
      `at least one of ${MARK_KEYS.join(', ')} (a monitor without a mark reports ok forever)`,
      raw,
    );
  }
  for (const [low, high] of [
    ['warningLag', 'criticalLag'],
    ['warningTimeLagSeconds', 'criticalTimeLagSeconds'],
    ['warningRatePerSec', 'criticalRatePerSec'],
  ] as const) {
    const l = marks[low];
    const h = marks[high];
    if (l !== undefined && h !== undefined) below(`thresholds.${low}`, l, `thresholds.${high}`, h);
  }
  return Object.freeze({
    ...marks,
    clearRatio: number('thresholds.clearRatio', raw['clearRatio'], DEFAULT_CLEAR_RATIO, {
      min: 0,
      exclusiveMin: true,
      max: 1,
    }),
  });
}

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

  const intervalMs = boundedDuration('intervalMs', raw['intervalMs'], d.intervalMs, 10);
  const windowMs = boundedDuration(
    'windowMs',
    raw['windowMs'],
    Math.min(MAX_TIMER_MS, d.windowIntervals * intervalMs),
    2 * intervalMs,
  );
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
  const stoppedAfterMs = boundedDuration(
    'stoppedAfterMs',
    raw['stoppedAfterMs'],
    Math.max(d.stoppedAfterMs, 2 * intervalMs),
    2 * intervalMs,
  );
  const timeLagHistorySize = integer(
    'timeLagHistorySize',
    raw['timeLagHistorySize'],
    d.timeLagHistorySize,
    { min: 16, max: 100_000 },
  );
  const thresholds = resolveThresholds(raw['thresholds']);
  const logger = validLogger('logger', raw['logger']);
  const clock = validClock('clock', raw['clock']);

  return Object.freeze({
    groupId,
    topics,
    intervalMs,
    windowMs,
    windowSamples,
    ruleMinSamples,
    stoppedAfterMs,
    timeLagHistorySize,
    thresholds,
    logger: logger ?? silentLogger,
    clock: clock ?? systemClock,
  });
}
