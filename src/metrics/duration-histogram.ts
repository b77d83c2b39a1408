/**
 * Handler-duration histograms kept by the library itself and exposed to a
 * prom-client registry as a metric of its own (`registry.registerMetric`).
 *
 * prom-client's `Histogram.observe` hashes a label object per call, a cost
 * per handled message larger than the rest of a fast message's path.
 * Here an observation finds its series through two lookups and bumps one
 * bucket; the cumulative buckets, sum and count are built at scrape time,
 * in the shape prom-client's registry writes out as text.
 */
export type Outcome = 'success' | 'error' | 'timeout';

interface Series {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface MetricValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName: string;
}

export class DurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Upper bounds in seconds, increasing. */
  readonly #bounds: readonly number[];
  /** Group -> topic -> outcome -> series. */
  readonly #series = new Map<() => string, Map<string, Map<Outcome, Series>>>();

  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
  }

  /** A recorder for one consumer, whose group is read at scrape time. */
  recorder(group: () => string): (topic: string, outcome: Outcome, durationMs: number) => void {
    const byTopic = new Map<string, Map<Outcome, Series>>();
    this.#series.set(group, byTopic);
    const bounds = this.#bounds;
    return (topic, outcome, durationMs) => {
      let byOutcome = byTopic.get(topic);
      if (byOutcome === undefined) {
        byOutcome = new Map();
        byTopic.set(topic, byOutcome);
      }
      let series = byOutcome.get(outcome);
      if (series === undefined) {
        series = { counts: new Float64Array(bounds.length + 1), sum: 0, count: 0 };
        byOutcome.set(outcome, series);
      }
      const seconds = durationMs / 1000;
      let at = 0;
      while (at < bounds.length && seconds > bounds[at]!) at += 1;
      series.counts[at] = series.counts[at]! + 1;
      series.sum += seconds;
      series.count += 1;
    };
  }

  /** The metric as prom-client's registry reads it. */
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: MetricValue[];
    aggregator: string;
  }> {
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    // Consumers of the same group add up, as prom-client would for one label set.
    const merged = new Map<string, { labels: Record<string, string>; series: Series }>();
    for (const [group, byTopic] of this.#series) {
      const groupId = group();
      if (groupId === '') continue;
      for (const [topic, byOutcome] of byTopic) {
        for (const [outcome, series] of byOutcome) {
          const key = JSON.stringify([groupId, topic, outcome]);
          const row = merged.get(key);
          if (row === undefined) {
            merged.set(key, {
              labels: { group: groupId, topic, outcome },
              series: {
                counts: Float64Array.from(series.counts),
                sum: series.sum,
                count: series.count,
              },
            });
          } else {
            for (let i = 0; i < series.counts.length; i += 1)
              row.series.counts[i]! += series.counts[i]!;
            row.series.sum += series.sum;
            row.series.count += series.count;
          }
        }
      }
    }
    for (const { labels, series } of merged.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i += 1) {
        cumulative += series.counts[i]!;
        values.push({
          value: cumulative,
          labels: { ...labels, le: this.#bounds[i]! },
          metricName: bucketName,
        });
      }
      values.push({
        value: series.count,
        labels: { ...labels, le: '+Inf' },
        metricName: bucketName,
      });
      values.push({ value: series.sum, labels, metricName: `${this.name}_sum` });
      values.push({ value: series.count, labels, metricName: `${this.name}_count` });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  /** prom-client's `registry.resetMetrics()`. */
  reset(): void {
    for (const byTopic of this.#series.values()) byTopic.clear();
  }

  /** Stops recording for a consumer (unregister). */
  forget(group: () => string): void {
    this.#series.delete(group);
  }
}
