import type { Clock } from '../../shared/clock.js';
import type { TopicPartition } from '../../shared/topic-partition.js';
import type { LatencyEvent } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import { CLEAR_RISE, HOLD_BAND, RESPONDED } from './adaptive-concurrency.js';
import type { FlowController } from './controller.js';
import { LatencyWindow } from './latency-window.js';

/** How long one partition may fetch for probes before another takes its turn. */
const PROBE_FETCH_TURN_MS = 2000;
/** The longest a due pause waits for the adaptive limit to act on the rise. */
const LIMIT_FIRST_MS = 5000;

type LatencySettings = NonNullable<ResolvedOptions<unknown>['latency']>;

export interface LatencyTriggerHooks {
  /** A pause began (at most `probes` calls at once from now) or ended (undefined). */
  probing(probes: number | undefined): void;
  /** Calls running plus messages ready to run: the work probes can be taken from. */
  demand(): number;
  /** The adaptive limit's baseline (its latency without queueing), when there is one and it has learned it. */
  baselineMs(): number | undefined;
  /**
   * The adaptive limit (if any) is still acting on a latency rise: it has
   * not decided on the calls since `since`, or has a cut in flight.
   */
  limitSettling(since: number): boolean;
  changed(high: boolean, event: LatencyEvent): void;
}

/**
 * The latency trigger: every partition pauses (reason `latency`) when the
 * rolling handler-latency percentile is above the pause mark and so is that
 * percentile of the calls that ended since the last check; the pause ends
 * on evidence, as a circuit breaker's half-open state does.
 *
 * While paused, `probes` calls run at once (the concurrency limit drops to
 * it, so the admitted backlog stops flooding the downstream at once), and
 * only calls that started after the pause count. The pause ends once
 * `probes` of them in a row ended below `resumeBelowMs`; a slow one starts
 * the count again. Nothing measured means nothing proven: an empty window
 * never ends a pause.
 *
 * A pause exists to take load off a downstream whose latency comes from
 * load, so it also ends on evidence that it cannot lower latency: the same
 * experiment the adaptive limit runs after a cut. Once `probes` probes in a
 * row ended slow, their median is compared with the latency that caused the
 * pause (no lower by `RESPONDED`: the downstream is slow at any load) and
 * with the adaptive limit's baseline (within `HOLD_BAND` of it: the probes
 * already see the downstream's own latency, so the limit does what a pause
 * could). Either ends the pause with `noEffect`, and the pause mark rises to
 * `CLEAR_RISE` times that latency, so the same steady latency does not pause
 * again; it falls back to `pauseAboveMs` once the calls are fast again, or
 * when a pause ends on fast probes. A due pause first lets the adaptive
 * limit act (up to `LIMIT_FIRST_MS`): until it has decided on the slow
 * calls and measured any cut it made, the pause waits, since it would
 * freeze the limit before it learned the baseline.
 *
 * Probes come from the work already admitted. When none is left, one
 * partition at a time (in turn) is let out of the pause so its next fetch
 * brings a batch to probe with; it pauses again as soon as that batch is
 * admitted. The concurrency cap keeps that batch to `probes` calls at once.
 */
export class LatencyTrigger {
  readonly #settings: LatencySettings;
  readonly #clock: Clock;
  readonly #flow: FlowController;
  readonly #hooks: LatencyTriggerHooks;
  /** Samples since the last resume: what a pause is decided on. */
  #window: LatencyWindow;
  #high = false;
  #pausedAt = 0;
  /** The pause mark in force: `pauseAboveMs`, or higher after a pause that could not help. */
  #markMs: number;
  /** Since when a due pause waits for the adaptive limit to act on the rise. */
  #deferredSince: number | undefined;
  /** The percentile that caused the pause in force. */
  #pausedOnMs = 0;
  /** Probes in a row that ended fast, and the slowest of them. */
  #fast = 0;
  #slowestFastMs = 0;
  /** The latest probes in a row that ended slow (at most `probes` of them). */
  #slow: number[] = [];
  /** The partition let out of the pause to fetch probes, if any. */
  #fetching: TopicPartition | undefined;
  #fetchingSince = 0;
  /** Calls that ended since the last check, how many were above the mark and how many below `resumeBelowMs`. */
  #recent = 0;
  #recentSlow = 0;
  #recentFast = 0;
  #turn = 0;

  constructor(
    settings: LatencySettings,
    clock: Clock,
    flow: FlowController,
    hooks: LatencyTriggerHooks,
  ) {
    this.#settings = settings;
    this.#clock = clock;
    this.#flow = flow;
    this.#hooks = hooks;
    this.#window = new LatencyWindow(clock, settings.windowMs);
    this.#markMs = settings.pauseAboveMs;
  }

  /** How often {@link check} should run: often enough to react within a twentieth of the window. */
  get intervalMs(): number {
    return Math.max(50, Math.floor(this.#settings.windowMs / 20));
  }

  get paused(): boolean {
    return this.#high;
  }

  /** The latency above which a pause comes: `pauseAboveMs`, or higher after a pause that could not help. */
  get markMs(): number {
    return this.#markMs;
  }

  /** A handler call ended after `durationMs`, at `now`. */
  record(durationMs: number, now: number): void {
    if (!this.#high) {
      this.#window.record(durationMs, now);
      this.#recent += 1;
      if (durationMs > this.#markMs) this.#recentSlow += 1;
      if (durationMs < this.#settings.resumeBelowMs) this.#recentFast += 1;
      return;
    }
    // Calls that started before the pause ran under the old concurrency: no evidence.
    if (now - durationMs < this.#pausedAt) return;
    if (durationMs < this.#settings.resumeBelowMs) {
      this.#fast += 1;
      this.#slowestFastMs = Math.max(this.#slowestFastMs, durationMs);
      this.#slow = [];
    } else {
      this.#fast = 0;
      this.#slowestFastMs = 0;
      this.#slow.push(durationMs);
      if (this.#slow.length > this.#settings.probes) this.#slow.shift();
    }
  }

  check(): void {
    if (this.#high) this.#checkPaused();
    else this.#checkRunning();
  }

  #checkRunning(): void {
    const { percentile, pauseAboveMs, probes } = this.#settings;
    const recent = this.#recent;
    // The window's percentile lags by up to its length: the calls that
    // ended since the last check must be slow too, so a downstream that
    // has already recovered is not paused on what it did before.
    const recentHigh = this.#recentSlow > recent * (1 - percentile / 100);
    // The percentile of the calls since the last check is below
    // `resumeBelowMs`: the downstream recovered, a raised mark comes down.
    const recentFast = recent >= probes && this.#recentFast >= (recent * percentile) / 100;
    this.#recent = 0;
    this.#recentSlow = 0;
    this.#recentFast = 0;
    if (recentFast) this.#markMs = pauseAboveMs;
    const latencyMs = recentHigh ? this.#window.percentile(percentile) : undefined;
    if (latencyMs === undefined || latencyMs <= this.#markMs) {
      // No pause due; a check with no calls at all tells nothing either way.
      if (recent > 0) this.#deferredSince = undefined;
      return;
    }
    const now = this.#clock.now();
    this.#deferredSince ??= now;
    if (
      this.#hooks.limitSettling(this.#deferredSince) &&
      now - this.#deferredSince < LIMIT_FIRST_MS
    ) {
      // The adaptive limit has yet to act on this rise, or to measure its
      // cut: a pause now would freeze it before it learns the baseline a
      // pause is judged against.
      return;
    }
    this.#deferredSince = undefined;
    this.#high = true;
    this.#pausedAt = now;
    this.#pausedOnMs = latencyMs;
    this.#fast = 0;
    this.#slowestFastMs = 0;
    this.#slow = [];
    this.#flow.add('latency');
    this.#hooks.probing(probes);
    this.#hooks.changed(true, { percentile, latencyMs, thresholdMs: this.#markMs });
  }

  #checkPaused(): void {
    const { percentile, pauseAboveMs, resumeBelowMs, probes } = this.#settings;
    if (this.#fast >= probes) {
      this.#markMs = pauseAboveMs;
      this.#end({ percentile, latencyMs: this.#slowestFastMs, thresholdMs: resumeBelowMs });
      return;
    }
    if (this.#slow.length >= probes) {
      // The median: one outlier probe neither ends a pause that helps nor
      // holds one that does not.
      const latencyMs = median(this.#slow);
      const baselineMs = this.#hooks.baselineMs();
      const unmoved = latencyMs >= this.#pausedOnMs * RESPONDED;
      const atBaseline = baselineMs !== undefined && latencyMs <= baselineMs * HOLD_BAND;
      if (unmoved || atBaseline) {
        this.#markMs = Math.max(pauseAboveMs, latencyMs * CLEAR_RISE);
        this.#end({ percentile, latencyMs, thresholdMs: this.#markMs, noEffect: true });
        return;
      }
    }
    const now = this.#clock.now();
    if (this.#hooks.demand() > 0) {
      this.#letFetch(undefined);
    } else if (this.#fetching === undefined || now - this.#fetchingSince >= PROBE_FETCH_TURN_MS) {
      // Nothing to probe with: one partition fetches, and another takes
      // its turn if it brought nothing (it may have nothing new).
      const partitions = this.#flow.assignedPartitions();
      if (partitions.length > 0) {
        this.#letFetch(partitions[this.#turn % partitions.length]);
        this.#fetchingSince = now;
        this.#turn += 1;
      }
    }
  }

  #end(event: LatencyEvent): void {
    this.#high = false;
    this.#slow = [];
    this.#window = new LatencyWindow(this.#clock, this.#settings.windowMs);
    this.#recent = 0;
    this.#recentSlow = 0;
    this.#recentFast = 0;
    this.#letFetch(undefined);
    this.#flow.remove('latency');
    this.#hooks.probing(undefined);
    this.#hooks.changed(false, event);
  }

  #letFetch(partition: TopicPartition | undefined): void {
    if (this.#fetching === partition) return;
    this.#fetching = partition;
    this.#flow.exempt('latency', partition);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
