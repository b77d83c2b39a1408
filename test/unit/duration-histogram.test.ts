import fc from 'fast-check';
import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DurationHistogram, type Outcome } from '../../src/metrics/duration-histogram.js';

const BOUNDS = [0.001, 0.01, 0.1, 0.5, 1, 2.5];

/**
 * The metric's exposition lines with each line's labels in name order, and
 * the lines sorted: neither order means anything to Prometheus (prom-client
 * writes `le` first, this histogram last).
 */
async function exposition(registry: client.Registry, name: string): Promise<string[]> {
  const text = await registry.getSingleMetricAsString(name);
  return text
    .split('\n')
    .map((line) => {
      const match = /^(\w+)\{(.*)\} (.*)$/.exec(line);
      if (match === null) return line;
      const labels = match[2]!.split(/,(?=\w+=")/).sort();
      return `${match[1]}{${labels.join(',')}} ${match[3]}`;
    })
    .sort();
}

function ours(): { registry: client.Registry; histogram: DurationHistogram } {
  const registry = new client.Registry();
  const histogram = new DurationHistogram('h', 'handler time', BOUNDS);
  registry.registerMetric(histogram as never);
  return { registry, histogram };
}

function theirs(): { registry: client.Registry; histogram: client.Histogram } {
  const registry = new client.Registry();
  const histogram = new client.Histogram({
    name: 'h',
    help: 'handler time',
    labelNames: ['group', 'topic', 'outcome'],
    buckets: BOUNDS,
    registers: [registry],
  });
  return { registry, histogram };
}

describe('DurationHistogram', () => {
  it('property: scrapes exactly as a prom-client Histogram fed the same observations', async () => {
    const observation = fc.record({
      group: fc.constantFrom('g1', 'g2'),
      topic: fc.constantFrom('orders', 'payments'),
      outcome: fc.constantFrom<Outcome>('success', 'error', 'timeout'),
      // Bounds themselves included: a bucket's bound is inclusive.
      durationMs: fc.oneof(fc.constantFrom(1, 10, 100, 500, 1000, 2500), fc.nat(5000)),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
        const a = ours();
        const b = theirs();
        const recorders = new Map(['g1', 'g2'].map((g) => [g, a.histogram.recorder(() => g)]));
        for (const o of observations) {
          recorders.get(o.group)!(o.topic, o.outcome, o.durationMs);
          b.histogram.observe(
            { group: o.group, topic: o.topic, outcome: o.outcome },
            o.durationMs / 1000,
          );
        }
        expect(await exposition(a.registry, 'h')).toEqual(await exposition(b.registry, 'h'));
      }),
      { numRuns: 50 },
    );
  });

  it('adds up consumers of the same group, as one label set would', async () => {
    const a = ours();
    const b = theirs();
    const first = a.histogram.recorder(() => 'g');
    const second = a.histogram.recorder(() => 'g');
    for (const [record, ms] of [
      [first, 250],
      [second, 500],
      [second, 4000],
    ] as const) {
      record('t', 'success', ms);
      b.histogram.observe({ group: 'g', topic: 't', outcome: 'success' }, ms / 1000);
    }
    expect(await exposition(a.registry, 'h')).toEqual(await exposition(b.registry, 'h'));
  });

  it('leaves out a consumer without a group yet, and reads the group at scrape time', async () => {
    const a = ours();
    let group = '';
    a.histogram.recorder(() => group)('t', 'error', 5);
    expect((await a.histogram.get()).values).toEqual([]);
    group = 'joined';
    const values = (await a.histogram.get()).values;
    expect(values.find((v) => v.metricName === 'h_count')).toEqual({
      value: 1,
      labels: { group: 'joined', topic: 't', outcome: 'error' },
      metricName: 'h_count',
    });
  });

  it('reset empties every series; forget stops reporting a consumer', async () => {
    const a = ours();
    const g1 = () => 'g1';
    const record1 = a.histogram.recorder(g1);
    const record2 = a.histogram.recorder(() => 'g2');
    record1('t', 'success', 1);
    record2('t', 'success', 1);
    a.histogram.reset();
    expect((await a.histogram.get()).values).toEqual([]);
    record1('t', 'success', 1);
    record2('t', 'success', 1);
    a.histogram.forget(g1);
    const groups = new Set((await a.histogram.get()).values.map((v) => v.labels['group']));
    expect([...groups]).toEqual(['g2']);
  });
});
