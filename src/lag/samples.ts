import type { Clock } from '../shared/clock.js';

/**
 * Offsets follow Kafka's convention: the end offset (high watermark) is the
 * offset the next produced message will get, the committed offset is the
 * next offset the group will consume. Times are on the monitor's clock in
 * milliseconds.
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

/**
 * Lag of one sample: end offset minus committed offset, or minus the
 * log-start offset when the group has no committed offset. Never negative:
 * a committed offset read after the end offset may be ahead of it.
 */
export function lagOf(sample: LagSample): number {
  return Math.max(0, sample.endOffset - positionOf(sample));
}

/** The next offset the group will read: its committed offset, or the log start without one. */
export function positionOf(sample: LagSample): number {
  return sample.committedOffset ?? sample.startOffset ?? 0;
}

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

  /** Adds a sample; false when it was ignored (not newer than the last one). */
  add(key: string, sample: LagSample): boolean {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = [];
      this.#series.set(key, series);
    }
    const last = series.at(-1);
    if (last !== undefined && !(sample.at > last.at)) return false;
    series.push(sample);
    this.#trim(series);
    return true;
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
