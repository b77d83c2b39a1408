import type { Clock } from '../../shared/clock.js';
import type { TopicPartition } from '../../shared/topic-partition.js';
import type { LatencyEvent } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { FlowController } from './controller.js';
import { LatencyWindow } from './latency-window.js';

/** How long one partition may fetch for probes before another takes its turn. */
const PROBE_FETCH_TURN_MS = 2000;

type LatencySettings = NonNullable<ResolvedOptions<unknown>['latency']>;

export interface LatencyTriggerHooks {
  /** A pause began (at most `probes` calls at once from now) or ended (undefined). */
  probing(probes: number | undefined): void;
  /** Calls running plus messages ready to run: the work probes can be taken from. */
  demand(): number;
  changed(high: boolean, event: LatencyEvent): void;
}

/**
 * The latency trigger: every partition pauses (reason `latency`) when the
 * rolling handler-latency percentile is above `pauseAboveMs` and so is that
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
  /** Probes in a row that ended fast, and the slowest of them. */
  #fast = 0;
  #slowestFastMs = 0;
  /** The partition let out of the pause to fetch probes, if any. */
  #fetching: TopicPartition | undefined;
  #fetchingSince = 0;
  /** Calls that ended since the last check, and how many of them were above `pauseAboveMs`. */
  #recent = 0;
  #recentSlow = 0;
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
  }

  /** How often {@link check} should run: often enough to react within a twentieth of the window. */
  get intervalMs(): number {
    return Math.max(50, Math.floor(this.#settings.windowMs / 20));
  }

  get paused(): boolean {
    return this.#high;
  }

  /** A handler call ended after `durationMs`, at `now`. */
  record(durationMs: number, now: number): void {
    if (!this.#high) {
      this.#window.record(durationMs, now);
      this.#recent += 1;
      if (durationMs > this.#settings.pauseAboveMs) this.#recentSlow += 1;
      return;
    }
    // Calls that started before the pause ran under the old concurrency: no evidence.
    if (now - durationMs < this.#pausedAt) return;
    if (durationMs < this.#settings.resumeBelowMs) {
      this.#fast += 1;
      this.#slowestFastMs = Math.max(this.#slowestFastMs, durationMs);
    } else {
      this.#fast = 0;
      this.#slowestFastMs = 0;
    }
  }

  check(): void {
    const { percentile, pauseAboveMs, resumeBelowMs, probes } = this.#settings;
    if (!this.#high) {
      // The window's percentile lags by up to its length: the calls that
      // ended since the last check must be slow too, so a downstream that
      // has already recovered is not paused on what it did before.
      const recentHigh = this.#recentSlow > this.#recent * (1 - percentile / 100);
      this.#recent = 0;
      this.#recentSlow = 0;
      if (!recentHigh) return;
      const latencyMs = this.#window.percentile(percentile);
      if (latencyMs === undefined || latencyMs <= pauseAboveMs) return;
      this.#high = true;
      this.#pausedAt = this.#clock.now();
      this.#fast = 0;
      this.#slowestFastMs = 0;
      this.#flow.add('latency');
      this.#hooks.probing(probes);
      this.#hooks.changed(true, { percentile, latencyMs, thresholdMs: pauseAboveMs });
      return;
    }
    if (this.#fast >= probes) {
      const latencyMs = this.#slowestFastMs;
      this.#high = false;
      this.#window = new LatencyWindow(this.#clock, this.#settings.windowMs);
      this.#letFetch(undefined);
      this.#flow.remove('latency');
      this.#hooks.probing(undefined);
      this.#hooks.changed(false, { percentile, latencyMs, thresholdMs: resumeBelowMs });
      return;
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

  #letFetch(partition: TopicPartition | undefined): void {
    if (this.#fetching === partition) return;
    this.#fetching = partition;
    this.#flow.exempt('latency', partition);
  }
}
