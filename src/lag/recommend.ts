/**
 * Sizing advice from the window, as data: how many consumers the measured
 * rates call for, whether the partition count caps them, and how long the
 * backlog takes to drain.
 */

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
