import { consumeRate, lagRateOfChange, produceRate } from './rates.js';
import { combineRules, type LagRules } from './rules.js';
import { lagOf, type LagSample } from './samples.js';
import { combineTimeLags, type TimeLag } from './time-lag.js';

/**
 * What one partition's window says, and the group's sums over its
 * partitions. Rates in messages per second, time lags in seconds. `null`
 * means "not measurable yet" (too few samples), so the results serialise
 * to JSON as they are.
 */

export interface PartitionAnalysis {
  /** From the newest sample. */
  readonly endOffset: number;
  readonly committedOffset: number | null;
  /** End offset minus committed offset (never negative). */
  readonly lag: number;
  /** The time-lag estimate in seconds (`timeLag.seconds`). */
  readonly timeLagSeconds: number | null;
  /** The time lag with its bounds and how it was found; see docs/lag-monitor.md. */
  readonly timeLag: TimeLag | null;
  /** Least-squares slope of the lag over the window: positive while the backlog grows. */
  readonly rateOfChange: number | null;
  /** Least-squares slope of the end offsets. */
  readonly produceRate: number | null;
  /** Least-squares slope of the committed offsets (samples that have one). */
  readonly consumeRate: number | null;
  /** Burrow's rules; at most one is true. */
  readonly rules: LagRules;
  /** Samples in the window. */
  readonly samples: number;
}

/** The group: sums over its partitions, the largest time lag, each rule true when any partition's is. */
export interface GroupAnalysis {
  readonly lag: number;
  readonly timeLagSeconds: number | null;
  readonly timeLag: TimeLag | null;
  readonly rateOfChange: number | null;
  readonly produceRate: number | null;
  readonly consumeRate: number | null;
  readonly rules: LagRules;
  readonly partitions: number;
}

/** Everything one partition's window says; `samples` oldest first, at least one. */
export function analyzePartition(
  samples: readonly LagSample[],
  timeLag: TimeLag | null,
  rules: LagRules,
): PartitionAnalysis {
  const last = samples.at(-1);
  if (last === undefined) throw new RangeError('analyzePartition needs at least one sample');
  return {
    endOffset: last.endOffset,
    committedOffset: last.committedOffset,
    lag: lagOf(last),
    timeLagSeconds: timeLag?.seconds ?? null,
    timeLag,
    rateOfChange: lagRateOfChange(samples),
    produceRate: produceRate(samples),
    consumeRate: consumeRate(samples),
    rules,
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
  const timeLag = combineTimeLags(
    partitions.flatMap((p) => (p.timeLag === null ? [] : [p.timeLag])),
  );
  return {
    lag: partitions.reduce((total, p) => total + p.lag, 0),
    timeLagSeconds: timeLag?.seconds ?? null,
    timeLag,
    rateOfChange: sum((p) => p.rateOfChange),
    produceRate: sum((p) => p.produceRate),
    consumeRate: sum((p) => p.consumeRate),
    rules: combineRules(partitions.map((p) => p.rules)),
    partitions: partitions.length,
  };
}
