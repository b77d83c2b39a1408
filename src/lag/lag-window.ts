import type { Clock } from '../shared/clock.js';
import type { LagStatus } from './lag-status.js';

/**
 * The arithmetic of the lag monitor, with no I/O: a sliding window of
 * samples per partition, and everything derived from it (rates, time lag,
 * Burrow's evaluation rules, a status with hysteresis, recommendations).
 *
 * Offsets follow Kafka's convention: the end offset (high watermark) is the
 * offset the next produced message will get, the committed offset is the
 * next offset the group will consume. Rates are in messages per second,
 * times on the injected clock in milliseconds, time lags in seconds.
 * `null` means "not measurable from this window" (too few samples), so the
 * results serialise to JSON as they are.
 */

/** One observation of one partition. */
export interface LagSample {
  /** When it was taken, on the monitor's clock, in ms. */
  readonly at: number;
  /** The log-end offset (high watermark). */
  readonly endOffset: number;
  /** The group's committed offset; `null` when the group has none for this partition. */
  readonly committedOffset: number | null;
  /**
   * The log-start offset. Only read for a partition without a committed
   * offset: its lag is then everything still retained (what a consumer
   * starting from the earliest offset would have to read).
   * @default 0
   */
  readonly startOffset?: number;
}

/** Burrow's evaluation rules over the window; defined in docs/lag-monitor.md ("Burrow's rules"). */
export interface LagRules {
  /** The committed offset did not move across the window, every sample had lag, and the lag did not grow. */
  readonly stalled: boolean;
  /** The committed offset did not move (or there is none) across the window, every sample had lag, and the lag grew. */
  readonly stopped: boolean;
  /** The committed offset went backwards between two samples of the window. */
  readonly rewind: boolean;
  /** The committed offset moved, yet the lag never fell between two samples and grew over the window. */
  readonly fallingBehind: boolean;
}

export const NO_RULES: LagRules = Object.freeze({
  stalled: false,
  stopped: false,
  rewind: false,
  fallingBehind: false,
});

/** What one partition's window says. */
export interface PartitionAnalysis {
  /** From the newest sample. */
  readonly endOffset: number;
  readonly committedOffset: number | null;
  /** End offset minus committed offset (never negative). */
  readonly lag: number;
  /** Estimated from the end offsets' history (docs/lag-monitor.md, "Time lag"). `null` only for an empty window. */
  readonly timeLagSeconds: number | null;
  /** Least-squares slope of the lag, msg/s: positive while the backlog grows. */
  readonly rateOfChange: number | null;
  /** Least-squares slope of the end offsets, msg/s. */
  readonly produceRate: number | null;
  /** Least-squares slope of the committed offsets (samples that have one), msg/s. */
  readonly consumeRate: number | null;
  readonly rules: LagRules;
  /** Samples in the window. */
  readonly samples: number;
}

/** The group: sums over its partitions, the largest time lag, the union of the rules. */
export interface GroupAnalysis {
  readonly lag: number;
  readonly timeLagSeconds: number | null;
  readonly rateOfChange: number | null;
  readonly produceRate: number | null;
  readonly consumeRate: number | null;
  readonly rules: LagRules;
  readonly partitions: number;
}

// ---------------------------------------------------------------- window

export interface LagWindowOptions {
  /** Samples older than this (relative to `clock.now()`) leave the window. */
  readonly windowMs: number;
  /** At most this many samples per partition; the oldest leave first. */
  readonly windowSamples: number;
}

/**
 * Per-key (one key per partition) samples, bounded by age and by count.
 * Samples must be added in time order; one not newer than the last is
 * ignored, so a slow round finishing late cannot reorder the history.
 */
export class LagWindow {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #windowSamples: number;
  readonly #series = new Map<string, LagSample[]>();

  constructor(clock: Clock, options: LagWindowOptions) {
    this.#clock = clock;
    this.#windowMs = options.windowMs;
    this.#windowSamples = options.windowSamples;
  }

  add(key: string, sample: LagSample): void {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = [];
      this.#series.set(key, series);
    }
    const last = series.at(-1);
    if (last !== undefined && !(sample.at > last.at)) return;
    series.push(sample);
    this.#trim(series);
  }

  /** The samples of `key` inside the window, oldest first. */
  samples(key: string): readonly LagSample[] {
    const series = this.#series.get(key);
    if (series === undefined) return [];
    this.#trim(series);
    return series.slice();
  }

  keys(): string[] {
    return [...this.#series.keys()];
  }

  /** Forgets every key for which `keep` is false (partitions no longer monitored). */
  retain(keep: (key: string) => boolean): void {
    for (const key of [...this.#series.keys()]) if (!keep(key)) this.#series.delete(key);
  }

  clear(): void {
    this.#series.clear();
  }

  #trim(series: LagSample[]): void {
    const oldest = this.#clock.now() - this.#windowMs;
    let drop = Math.max(0, series.length - this.#windowSamples);
    while (drop < series.length && series[drop]!.at < oldest) drop += 1;
    if (drop > 0) series.splice(0, drop);
  }
}

// ---------------------------------------------------------------- math

/**
 * Lag of one sample: end offset minus committed offset, or minus the
 * log-start offset when the group has no committed offset. Never negative:
 * a committed offset read after the end offset may be ahead of it.
 */
export function lagOf(sample: LagSample): number {
  const position = sample.committedOffset ?? sample.startOffset ?? 0;
  return Math.max(0, sample.endOffset - position);
}

/**
 * Ordinary least-squares slope of y on x. `null` with fewer than two
 * distinct x values. Both axes are shifted to their first point before
 * summing, so large offsets and epoch-millisecond times keep their precision.
 */
export function leastSquaresSlope(
  points: readonly (readonly [x: number, y: number])[],
): number | null {
  const first = points[0];
  if (first === undefined || points.length < 2) return null;
  const [x0, y0] = first;
  let sumX = 0;
  let sumY = 0;
  for (const [x, y] of points) {
    sumX += x - x0;
    sumY += y - y0;
  }
  const meanX = sumX / points.length;
  const meanY = sumY / points.length;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    const dx = x - x0 - meanX;
    sxx += dx * dx;
    sxy += dx * (y - y0 - meanY);
  }
  return sxx === 0 ? null : sxy / sxx;
}

/** Slope per second of `value` over the samples for which it is defined. */
function ratePerSecond(
  samples: readonly LagSample[],
  value: (sample: LagSample) => number | null,
): number | null {
  const points: [number, number][] = [];
  for (const sample of samples) {
    const y = value(sample);
    if (y !== null) points.push([sample.at / 1000, y]);
  }
  return leastSquaresSlope(points);
}

/** Least-squares slope of the end offsets: messages produced per second. */
export function produceRate(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, (s) => s.endOffset);
}

/** Least-squares slope of the committed offsets (samples without one are left out): messages consumed per second. */
export function consumeRate(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, (s) => s.committedOffset);
}

/** Least-squares slope of the lag: positive while the backlog grows. */
export function lagRateOfChange(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, lagOf);
}

/**
 * How far behind the group is in time, as kafka-lag-exporter estimates it:
 * the window's end offsets are a table of (time, end offset); the time at
 * which the log end stood where the group's position stands now is read
 * from it, and the time lag is the newest sample's time minus that.
 *
 * - Lag 0 in the newest sample: 0.
 * - The position lies between two samples' end offsets: linear
 *   interpolation between them.
 * - The position is older than the whole window: linear extrapolation
 *   backwards from the oldest sample at the window's produce rate
 *   (least-squares slope of the end offsets).
 * - Older than the window and no production measured in it: the window's
 *   span, a lower bound (the log end has not moved since before the window).
 *
 * `null` only for an empty window. Exact on a stream produced at a steady
 * rate; otherwise as good as the rate is steady between samples.
 *
 * @see https://github.com/seglo/kafka-lag-exporter#estimate-consumer-group-time-lag
 */
export function estimateTimeLagSeconds(samples: readonly LagSample[]): number | null {
  const last = samples.at(-1);
  const first = samples[0];
  if (last === undefined || first === undefined) return null;
  if (lagOf(last) === 0) return 0;
  const position = last.committedOffset ?? last.startOffset ?? 0;
  const index = samples.findIndex((s) => s.endOffset >= position);
  let reachedAt: number;
  const after = samples[index];
  const before = samples[index - 1];
  if (after !== undefined && before !== undefined) {
    reachedAt =
      before.at +
      ((position - before.endOffset) * (after.at - before.at)) /
        (after.endOffset - before.endOffset);
  } else {
    const rate = produceRate(samples);
    reachedAt =
      rate !== null && rate > 0
        ? first.at - ((first.endOffset - position) / rate) * 1000
        : first.at;
  }
  return Math.max(0, (last.at - reachedAt) / 1000);
}

/**
 * Burrow's rules, evaluated over one partition's window (oldest first). With
 * n samples, lag(i) = {@link lagOf} sample i:
 *
 * - `rewind`: some sample's committed offset is lower than the previous
 *   sample's (both present). Needs two samples.
 *
 * The other three need at least `minSamples` samples (a short window says
 * nothing about a group that commits every few seconds), and all three
 * require lag(i) > 0 in every sample (Burrow's first rule: any zero lag in
 * the window means the group caught up, OK). Then:
 *
 * - `stopped`: the committed offset is the same in every sample (or absent
 *   in every sample) and lag(n-1) > lag(0): nothing is consumed while
 *   messages keep arriving.
 * - `stalled`: the committed offset is the same in every sample and
 *   lag(n-1) <= lag(0): a backlog nobody works on, with no new messages.
 * - `fallingBehind`: the committed offset changed, no rewind, lag(i) >=
 *   lag(i-1) for every i and lag(n-1) > lag(0): consuming, but slower than
 *   the produce rate (Burrow's WARN).
 *
 * `stopped`, `stalled` and `fallingBehind` exclude each other. A committed
 * offset that does not change between commits looks the same as no commits
 * to the admin API, so the window must be longer than the group's commit
 * interval.
 *
 * @see https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules
 */
export function evaluateRules(samples: readonly LagSample[], minSamples: number): LagRules {
  const first = samples[0];
  const last = samples.at(-1);
  if (first === undefined || last === undefined) return NO_RULES;
  let rewind = false;
  let unchanged = true;
  let backlog = lagOf(first) > 0;
  let neverFell = true;
  for (let i = 1; i < samples.length; i += 1) {
    const previous = samples[i - 1]!;
    const current = samples[i]!;
    if (
      previous.committedOffset !== null &&
      current.committedOffset !== null &&
      current.committedOffset < previous.committedOffset
    ) {
      rewind = true;
    }
    if (current.committedOffset !== first.committedOffset) unchanged = false;
    const lag = lagOf(current);
    if (lag <= 0) backlog = false;
    if (lag < lagOf(previous)) neverFell = false;
  }
  if (samples.length < minSamples || !backlog) return { ...NO_RULES, rewind };
  const grew = lagOf(last) > lagOf(first);
  return {
    stalled: unchanged && !grew,
    stopped: unchanged && grew,
    rewind,
    fallingBehind: !unchanged && !rewind && neverFell && grew,
  };
}

/** Everything one partition's window says; `samples` oldest first, at least one. */
export function analyzePartition(
  samples: readonly LagSample[],
  minRuleSamples: number,
): PartitionAnalysis {
  const last = samples.at(-1);
  if (last === undefined) throw new RangeError('analyzePartition needs at least one sample');
  return {
    endOffset: last.endOffset,
    committedOffset: last.committedOffset,
    lag: lagOf(last),
    timeLagSeconds: estimateTimeLagSeconds(samples),
    rateOfChange: lagRateOfChange(samples),
    produceRate: produceRate(samples),
    consumeRate: consumeRate(samples),
    rules: evaluateRules(samples, minRuleSamples),
    samples: samples.length,
  };
}

/**
 * The group from its partitions: lag and rates summed (a partition whose
 * rate is not measurable yet adds nothing; `null` when none is), the
 * largest time lag (kafka-lag-exporter's `max_group_time_lag`), and each
 * rule true when it is true for any partition.
 */
export function combinePartitions(partitions: readonly PartitionAnalysis[]): GroupAnalysis {
  const sum = (pick: (p: PartitionAnalysis) => number | null): number | null => {
    let total: number | null = null;
    for (const p of partitions) {
      const value = pick(p);
      if (value !== null) total = (total ?? 0) + value;
    }
    return total;
  };
  let timeLagSeconds: number | null = null;
  for (const p of partitions) {
    if (p.timeLagSeconds !== null) timeLagSeconds = Math.max(timeLagSeconds ?? 0, p.timeLagSeconds);
  }
  return {
    lag: partitions.reduce((total, p) => total + p.lag, 0),
    timeLagSeconds,
    rateOfChange: sum((p) => p.rateOfChange),
    produceRate: sum((p) => p.produceRate),
    consumeRate: sum((p) => p.consumeRate),
    rules: {
      stalled: partitions.some((p) => p.rules.stalled),
      stopped: partitions.some((p) => p.rules.stopped),
      rewind: partitions.some((p) => p.rules.rewind),
      fallingBehind: partitions.some((p) => p.rules.fallingBehind),
    },
    partitions: partitions.length,
  };
}

// ---------------------------------------------------------------- status

/** Marks for the status. Lag marks in messages, time marks in seconds; each optional. */
export interface LagThresholds {
  /** Lag at or above this is `warning`. */
  readonly warningLag?: number;
  /** Lag at or above this is `critical`. */
  readonly criticalLag?: number;
  /** Time lag at or above this is `warning`. */
  readonly warningTimeLagSeconds?: number;
  /** Time lag at or above this is `critical`. */
  readonly criticalTimeLagSeconds?: number;
  /**
   * Hysteresis: a status is left downwards only once every measure is below
   * its mark times this ratio, so a lag hovering around a mark does not flap.
   * In (0, 1]; 1 turns hysteresis off.
   * @default 0.8
   */
  readonly clearRatio?: number;
}

export const DEFAULT_CLEAR_RATIO = 0.8;

export interface LagMeasures {
  readonly lag: number;
  /** `null`: not known, the time marks are not applied. */
  readonly timeLagSeconds: number | null;
}

export interface StatusDecision {
  readonly status: LagStatus;
  /** Why, naming the measure, its value and the mark. */
  readonly reason: string;
}

const RANK: Record<LagStatus, number> = { ok: 0, warning: 1, critical: 2 };
const BY_RANK: readonly LagStatus[] = ['ok', 'warning', 'critical'];

interface Dimension {
  readonly name: 'lag' | 'time lag';
  readonly value: number | null;
  readonly unit: string;
  readonly marks: Readonly<Record<'warning' | 'critical', readonly [string, number | undefined]>>;
}

function dimensions(measures: LagMeasures, t: LagThresholds): Dimension[] {
  return [
    {
      name: 'lag',
      value: measures.lag,
      unit: '',
      marks: {
        warning: ['warningLag', t.warningLag],
        critical: ['criticalLag', t.criticalLag],
      },
    },
    {
      name: 'time lag',
      value: measures.timeLagSeconds,
      unit: ' s',
      marks: {
        warning: ['warningTimeLagSeconds', t.warningTimeLagSeconds],
        critical: ['criticalTimeLagSeconds', t.criticalTimeLagSeconds],
      },
    },
  ];
}

/** The highest level whose mark (times `factor`) the measure reaches. */
function levelOf(d: Dimension, factor: number): LagStatus {
  if (d.value === null) return 'ok';
  const critical = d.marks.critical[1];
  if (critical !== undefined && d.value >= critical * factor) return 'critical';
  const warning = d.marks.warning[1];
  if (warning !== undefined && d.value >= warning * factor) return 'warning';
  return 'ok';
}

const round = (n: number): number => Math.round(n * 100) / 100;

/**
 * The next status from the previous one, with hysteresis:
 *
 * - raised = the highest level any measure reaches at its mark (>=);
 * - held = the highest level any measure reaches at its mark × `clearRatio`;
 * - next = max(raised, min(previous, held)).
 *
 * So a status rises as soon as a mark is reached, and falls only when every
 * measure is below the clear mark of the level it leaves (and then to the
 * level the clear marks still hold). A measure that is `null` or has no mark
 * counts as `ok`. For fixed `previous` and marks, the result never decreases
 * as a measure increases.
 */
export function nextStatus(
  previous: LagStatus,
  measures: LagMeasures,
  thresholds: LagThresholds,
): StatusDecision {
  const ratio = thresholds.clearRatio ?? DEFAULT_CLEAR_RATIO;
  const dims = dimensions(measures, thresholds);
  const raised = Math.max(...dims.map((d) => RANK[levelOf(d, 1)]));
  const held = Math.max(...dims.map((d) => RANK[levelOf(d, ratio)]));
  const next = Math.max(raised, Math.min(RANK[previous], held));
  const status = BY_RANK[next]!;
  return { status, reason: explain(previous, status, dims, ratio) };
}

function explain(previous: LagStatus, status: LagStatus, dims: Dimension[], ratio: number): string {
  const show = (d: Dimension): string => `${d.name} ${round(d.value ?? Number.NaN)}${d.unit}`;
  if (status === 'ok' && previous === 'ok') return 'below every mark';
  if (RANK[status] >= RANK[previous]) {
    // Rose, or stayed up: name each measure at or above a mark of this level.
    const level = status as 'warning' | 'critical';
    const reached = dims
      .filter((d) => levelOf(d, 1) === level)
      .map((d) => `${show(d)} >= ${d.marks[level][0]} ${round(d.marks[level][1]!)}${d.unit}`);
    if (reached.length > 0) return reached.join(' and ');
    // Staying up on hysteresis alone.
    const holding = dims
      .filter((d) => RANK[levelOf(d, ratio)] >= RANK[level])
      .map((d) => {
        const mark = d.marks[levelOf(d, ratio) as 'warning' | 'critical'];
        return `${show(d)} >= ${round(mark[1]! * ratio)}${d.unit} (${mark[0]} ${round(mark[1]!)} × clearRatio ${ratio})`;
      });
    return `${holding.join(' and ')}: ${level} held`;
  }
  // Fell: every measure is below the clear marks of the level it left.
  const left = previous as 'warning' | 'critical';
  const below = dims
    .filter((d) => d.value !== null && d.marks[left][1] !== undefined)
    .map(
      (d) =>
        `${show(d)} < ${round(d.marks[left][1]! * ratio)}${d.unit} (${d.marks[left][0]} ${round(d.marks[left][1]!)} × clearRatio ${ratio})`,
    );
  return below.length > 0 ? below.join(' and ') : `no ${left} mark applies`;
}

// ---------------------------------------------------------------- recommendations

export interface RecommendationInput {
  /** The group's total lag. */
  readonly lag: number;
  /** Partitions the group reads. */
  readonly partitions: number;
  /** The group's produce rate, msg/s (`null`: not measured yet). */
  readonly produceRate: number | null;
  /** The group's consume rate, msg/s. */
  readonly consumeRate: number | null;
  /** Active members of the group (consumers); `null` when unknown. */
  readonly members: number | null;
}

/** Sizing advice from the window, as data. Rates in msg/s, times in seconds. */
export interface LagRecommendation {
  /**
   * Consumers needed to keep up with the produce rate:
   * ceil(produceRate / consumeRatePerConsumer), at least 1 while there is
   * lag, capped at the partition count (a consumer beyond it gets no
   * partition). `null` when a rate is unknown.
   */
  readonly consumersNeeded: number | null;
  /** True when more consumers than partitions would be needed. */
  readonly cappedByPartitions: boolean;
  /**
   * Partitions needed for the uncapped consumer count to have one each:
   * max(partitions, uncapped consumers). Equals `partitions` unless capped.
   * `null` when `consumersNeeded` is.
   */
  readonly partitionsNeeded: number | null;
  /**
   * lag / (consumeRate - produceRate): seconds until the lag is 0 at the
   * current rates. 0 without lag; `null` when not draining (consume rate
   * not above the produce rate) or a rate is unknown.
   */
  readonly timeToDrainSeconds: number | null;
  readonly produceRate: number | null;
  readonly consumeRate: number | null;
  /**
   * consumeRate / members when both are > 0, otherwise `null`. While the
   * group keeps up this is the produce rate shared out, not a capacity, so
   * `consumersNeeded` then equals the current member count; it measures
   * capacity while a backlog is being worked off.
   */
  readonly consumeRatePerConsumer: number | null;
  readonly members: number | null;
  readonly partitions: number;
  readonly lag: number;
}

/** Float noise must not turn 100 / 2 into 51 consumers. */
const CEIL_EPSILON = 1e-9;

/** See {@link LagRecommendation} for each field's arithmetic. */
export function recommend(input: RecommendationInput): LagRecommendation {
  const { lag, partitions, produceRate: produced, consumeRate: consumed, members } = input;
  const perConsumer =
    members !== null && members > 0 && consumed !== null && consumed > 0
      ? consumed / members
      : null;

  let wanted: number | null = null;
  if (produced !== null) {
    const floor = lag > 0 ? 1 : 0;
    if (produced <= 0) wanted = floor;
    else if (perConsumer !== null)
      wanted = Math.max(floor, Math.ceil(produced / perConsumer - CEIL_EPSILON));
  }
  const capped = wanted !== null && partitions > 0 && wanted > partitions;

  let timeToDrainSeconds: number | null = null;
  if (lag === 0) timeToDrainSeconds = 0;
  else if (produced !== null && consumed !== null && consumed > produced) {
    timeToDrainSeconds = lag / (consumed - produced);
  }

  return {
    consumersNeeded: wanted === null ? null : capped ? partitions : wanted,
    cappedByPartitions: capped,
    partitionsNeeded: wanted === null ? null : Math.max(partitions, wanted),
    timeToDrainSeconds,
    produceRate: produced,
    consumeRate: consumed,
    consumeRatePerConsumer: perConsumer,
    members,
    partitions,
    lag,
  };
}
