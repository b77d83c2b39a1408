import type { AppendHistory } from './append-history.js';

/**
 * How far behind a group is in time: the age of the record at its
 * committed offset (the oldest record it has not consumed), read from the
 * partition's append history.
 *
 * - Caught up (no lag): 0, exact.
 * - The record was appended while the monitor watched: it lies in one step
 *   of the history, appended after `step.after` and no later than
 *   `step.until`. The time lag is then known to lie between `now - until`
 *   and `now - after`; the estimate interpolates inside the step, as if the
 *   step's records were appended evenly. Nothing is extrapolated: a step
 *   is bounded by two reads that bracket the record.
 * - The record is older than the history (appended before the monitor's
 *   first read, or before the oldest step kept): only a lower bound is
 *   known, `now - (the oldest time the history can vouch for)`. It is
 *   reported as the estimate, with `maxSeconds: null`.
 */

export type TimeLagMethod = 'caughtUp' | 'interpolated' | 'lowerBound';

export interface TimeLag {
  /** The estimate, in seconds. For `lowerBound`, the bound itself. */
  readonly seconds: number;
  /** The time lag is at least this (seconds). Time-lag marks are applied to it. */
  readonly minSeconds: number;
  /** The time lag is at most this (seconds); `null` when no upper bound is known. */
  readonly maxSeconds: number | null;
  readonly method: TimeLagMethod;
}

export const CAUGHT_UP: TimeLag = Object.freeze({
  seconds: 0,
  minSeconds: 0,
  maxSeconds: 0,
  method: 'caughtUp',
});

const seconds = (ms: number): number => Math.max(0, ms / 1000);

/**
 * @param history The partition's append history, already fed with the read at `now`.
 * @param position The group's next offset to read (committed offset, or log start without one).
 * @param lag The lag at `now`; 0 means caught up.
 * @param now The time of the read, on the history's clock.
 */
export function estimateTimeLag(
  history: AppendHistory,
  position: number,
  lag: number,
  now: number,
): TimeLag {
  if (lag <= 0) return CAUGHT_UP;
  const located = history.locate(position);
  switch (located.kind) {
    case 'none':
      return CAUGHT_UP;
    case 'before': {
      const min = seconds(now - located.at);
      return { seconds: min, minSeconds: min, maxSeconds: null, method: 'lowerBound' };
    }
    case 'step': {
      const { after, until, fromOffset, toOffset } = located.step;
      // The record's place among the step's records, at the middle of its slot.
      const share = (position - fromOffset + 0.5) / (toOffset - fromOffset);
      const appendedAt = after + share * (until - after);
      return {
        seconds: seconds(now - appendedAt),
        minSeconds: seconds(now - until),
        maxSeconds: seconds(now - after),
        method: 'interpolated',
      };
    }
  }
}

/**
 * The group's time lag: the partition furthest behind. Its lower bound is
 * the largest lower bound, its upper bound the largest upper bound (`null`
 * when any partition has none).
 */
export function combineTimeLags(lags: readonly TimeLag[]): TimeLag | null {
  if (lags.length === 0) return null;
  let estimate = 0;
  let min = 0;
  let max: number | null = 0;
  let method: TimeLagMethod = 'caughtUp';
  for (const t of lags) {
    estimate = Math.max(estimate, t.seconds);
    min = Math.max(min, t.minSeconds);
    max = max === null || t.maxSeconds === null ? null : Math.max(max, t.maxSeconds);
    if (t.method === 'lowerBound') method = 'lowerBound';
    else if (t.method === 'interpolated' && method === 'caughtUp') method = 'interpolated';
  }
  return { seconds: estimate, minSeconds: min, maxSeconds: max, method };
}
