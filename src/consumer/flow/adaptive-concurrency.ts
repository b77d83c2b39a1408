/**
 * The adaptive concurrency limit: a gradient rule in the spirit of TCP Vegas
 * and Netflix's concurrency-limits. It compares the short-term latency (the
 * mean of the calls that ended since the last decision) with a long-term
 * baseline (the latency the downstream shows when it is not queueing):
 *
 * - a clear rise (short-term above `baseline × CLEAR_RISE`) cuts the limit at
 *   once, in proportion to the rise (`limit × baseline / short`), never by
 *   more than `decreaseFactor` in one step;
 * - while latency holds (short-term within `baseline × HOLD_BAND`, or below
 *   `targetLatencyMs`) and the limit is in use, it grows by `increaseStep`,
 *   or by √limit while latency is under half the target;
 * - in between, it holds.
 *
 * Two things keep it honest:
 *
 * - Only fresh evidence counts. A call that started before the last change
 *   tells nothing about the limit now in force, so it is ignored; with no
 *   fresh samples the limit holds still, whatever the clock says. A paused
 *   consumer therefore never keeps cutting on a frozen window.
 * - A cut is an experiment. If latency did not fall after a cut, the rise did
 *   not come from the load this consumer puts on the downstream (a downstream
 *   slow at any concurrency, such as one that takes 300 ms per call whatever
 *   is sent to it): the latency seen is the downstream's new base, it becomes
 *   the baseline, and the limit goes back to where it was before the cut, so
 *   the consumer keeps its throughput. If latency fell, the rise was queueing
 *   and the cuts go on until it stops falling: that is the downstream's
 *   capacity.
 */
export interface LimitSettings {
  readonly min: number;
  readonly max: number;
  readonly initial: number;
  /** Latency below which the downstream is always healthy, whatever the baseline. */
  readonly targetLatencyMs: number;
  /** The deepest single cut: the limit never falls below `limit × decreaseFactor` in one step. */
  readonly decreaseFactor: number;
  readonly increaseStep: number;
}

export type LimitDecision =
  | { readonly changed: false; readonly limit: number }
  | {
      readonly changed: true;
      readonly limit: number;
      readonly from: number;
      readonly reason: 'latency-high' | 'healthy' | 'latency-steady';
    };

/** Short-term latency up to this multiple of the baseline counts as holding: the limit may grow. */
export const HOLD_BAND = 1.1;
/** Short-term latency above this multiple of the baseline is a clear rise: the limit is cut. */
export const CLEAR_RISE = 1.5;
/** After a cut, latency must fall below this fraction of what it was for the cut to count as helping. */
export const RESPONDED = 0.85;

interface Cut {
  readonly from: number;
  readonly latencyMs: number;
}

export class GradientLimit {
  readonly #settings: LimitSettings;
  #limit: number;
  #baselineMs: number | undefined;
  /** When the limit last took a decision on fresh samples (changed or not). */
  #decidedAt = Number.NEGATIVE_INFINITY;
  /** When the limit last changed: calls that started earlier are stale evidence. */
  #changedAt = Number.NEGATIVE_INFINITY;
  #sum = 0;
  #count = 0;
  /** The last cut, while its effect is not yet measured. */
  #cut: Cut | undefined;
  /**
   * Calls started before the last cut that ended after it. The slowest calls
   * end last, so the mean at the cut underrates the latency it answered;
   * these complete the picture.
   */
  #staleSum = 0;
  #staleCount = 0;

  constructor(settings: LimitSettings) {
    this.#settings = settings;
    this.#limit = settings.initial;
  }

  get limit(): number {
    return this.#limit;
  }

  /** The latency the downstream shows without queueing, as far as the evidence goes. */
  get baselineMs(): number | undefined {
    return this.#baselineMs;
  }

  /** A call ended after `latencyMs`, at `endedAt` (the clock's ms). */
  record(latencyMs: number, endedAt: number): void {
    if (endedAt - latencyMs < this.#changedAt) {
      // Started under the limit before the cut: part of what the cut is measured against.
      if (this.#cut !== undefined) {
        this.#staleSum += latencyMs;
        this.#staleCount += 1;
      }
      return;
    }
    this.#sum += latencyMs;
    this.#count += 1;
  }

  /**
   * Forgets the samples so far: from `now` on, only calls that start count.
   * For when something other than this limit bounded the calls (a latency
   * pause's probes, the breaker's half-open state).
   */
  restart(now: number): void {
    this.#changedAt = now;
    this.#sum = 0;
    this.#count = 0;
    this.#cut = undefined;
    this.#staleSum = 0;
    this.#staleCount = 0;
  }

  /** A cut was made and its effect is not measured yet: the limit is still finding the capacity. */
  get cutPending(): boolean {
    return this.#cut !== undefined;
  }

  /** When the limit last took a decision on fresh samples, changed or not (the clock's ms). */
  get decidedAt(): number {
    return this.#decidedAt;
  }

  /** Fresh samples waiting for the next decision. */
  get samples(): number {
    return this.#count;
  }

  /**
   * One decision from the samples recorded since the last one.
   * @param now the clock's ms
   * @param inUse calls running plus calls ready to run: growth needs the limit to be the bottleneck
   */
  update(now: number, inUse: number): LimitDecision {
    const from = this.#limit;
    // At least a few calls started under this limit, so one outlier does not steer it.
    if (this.#count === 0 || this.#count < Math.min(3, from))
      return { changed: false, limit: from };
    this.#decidedAt = now;
    const shortMs = this.#sum / this.#count;
    this.#sum = 0;
    this.#count = 0;
    const { min, max, targetLatencyMs, decreaseFactor, increaseStep } = this.#settings;

    const cut = this.#cut;
    const beforeMs = Math.max(
      cut?.latencyMs ?? 0,
      this.#staleCount > 0 ? this.#staleSum / this.#staleCount : 0,
    );
    this.#cut = undefined;
    this.#staleSum = 0;
    this.#staleCount = 0;
    if (cut !== undefined && shortMs >= beforeMs * RESPONDED) {
      // The cut did not help: this latency is the downstream's, not the queue's.
      this.#baselineMs = shortMs;
      return this.#move(Math.max(from, cut.from), now, 'latency-steady');
    }
    if (this.#baselineMs === undefined || shortMs < this.#baselineMs) this.#baselineMs = shortMs;
    const baseline = this.#baselineMs;

    if (shortMs > targetLatencyMs && shortMs > baseline * CLEAR_RISE) {
      if (from <= min) {
        // Nothing left to cut: nothing to learn from cutting either.
        this.#baselineMs = shortMs;
        return { changed: false, limit: from };
      }
      const gradient = Math.max(decreaseFactor, (baseline * HOLD_BAND) / shortMs);
      const next = Math.max(min, Math.min(from - 1, Math.floor(from * gradient)));
      this.#cut = { from, latencyMs: shortMs };
      return this.#move(next, now, 'latency-high');
    }
    if ((shortMs <= targetLatencyMs || shortMs <= baseline * HOLD_BAND) && inUse >= from) {
      // Well under the target (a downstream back from a slow spell), grow by
      // the square root of the limit: back to full flow in a few steps
      // instead of one step per slot.
      const step =
        shortMs <= targetLatencyMs / 2
          ? Math.max(increaseStep, Math.ceil(Math.sqrt(from)))
          : increaseStep;
      return this.#move(Math.min(max, from + step), now, 'healthy');
    }
    return { changed: false, limit: from };
  }

  #move(
    next: number,
    now: number,
    reason: 'latency-high' | 'healthy' | 'latency-steady',
  ): LimitDecision {
    const from = this.#limit;
    if (next === from) return { changed: false, limit: from };
    this.#limit = next;
    this.#changedAt = now;
    this.#sum = 0;
    this.#count = 0;
    return { changed: true, limit: next, from, reason };
  }
}
