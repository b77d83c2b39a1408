// The Grafana dashboard and the Prometheus alert rules in examples/ name
// metrics by string: a renamed metric would leave an empty panel or an
// alert that never fires, and nothing else would notice. Every kafka_* name
// they use must be one registerMetrics registers (histograms with their
// _bucket/_sum/_count series), with labels it sets.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Consumer } from 'kafkajs';
import * as client from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  LagMonitor,
  RateLimitedProducer,
  registerMetrics,
  type LagAdmin,
} from '../../src/index.js';
import { RULE_NAMES } from '../../src/lag/rules.js';

const EXAMPLES = resolve(import.meta.dirname, '../../examples');

/** Never called: the monitor is not started. */
function unreachableAdmin(): LagAdmin {
  const fail = () => Promise.reject(new Error('no broker in a unit test'));
  return {
    connect: fail,
    fetchOffsets: fail,
    fetchTopicOffsets: fail,
    describeGroups: fail,
  } as unknown as LagAdmin;
}

const producer = new RateLimitedProducer({
  send: async () => [],
  disconnect: async () => undefined,
});
const registry = new client.Registry();
const registration = registerMetrics(
  registry,
  {
    consumers: [
      new BackpressureConsumer({ run: () => undefined } as unknown as Consumer, {
        topics: ['t'],
        handler: () => undefined,
      }),
    ],
    monitors: [
      new LagMonitor(unreachableAdmin(), {
        groupId: 'g',
        thresholds: { warningLag: 1 },
      }),
    ],
    producers: [producer],
  },
  { client },
);

afterAll(async () => {
  registration.unregister();
  await producer.close();
});

/** Every series name a scrape can contain, from the registered families. */
function seriesNames(): Set<string> {
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    }
  }
  return names;
}

function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(kafka_[a-z_]+)\b/g)].map((m) => m[1]!);
}

describe('monitoring examples', () => {
  it('the Grafana dashboard queries only metrics registerMetrics provides', async () => {
    const dashboard = JSON.parse(
      await readFile(resolve(EXAMPLES, 'grafana-dashboard.json'), 'utf8'),
    ) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
      templating: { list: { definition?: string }[] };
    };
    const known = seriesNames();
    const used = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsIn(t.expr))),
      ...dashboard.templating.list.flatMap((v) => metricsIn(v.definition ?? '')),
    ];
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((name) => !known.has(name))).toEqual([]);
    // Every data panel has a query; the four families the issue asks for are there.
    const data = dashboard.panels.filter((p) => p.type !== 'row');
    expect(data.every((p) => (p.targets ?? []).length > 0)).toBe(true);
    for (const name of [
      'kafka_consumer_group_lag',
      'kafka_messages_consumed_total',
      'kafka_consumer_paused_partitions',
      'kafka_consumer_circuit_state',
      'kafka_consumer_dlq_routed_total',
    ]) {
      expect(used).toContain(name);
    }
  });

  it('the alert rules use only metrics registerMetrics provides', async () => {
    const rules = await readFile(resolve(EXAMPLES, 'prometheus-alerts.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    expect(exprs.length).toBeGreaterThan(5);
    const known = seriesNames();
    expect(exprs.flatMap(metricsIn).filter((name) => !known.has(name))).toEqual([]);
  });

  it('the alert rules cover the rate of change and every Burrow rule, by names the monitor reports', async () => {
    const rules = await readFile(resolve(EXAMPLES, 'prometheus-alerts.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    // The lab's alert: lag growing faster than 10 msg/s.
    expect(exprs).toContain('kafka_lag_rate_of_change > 10');
    const named = exprs.flatMap((e) => [...e.matchAll(/rule="([a-zA-Z]+)"/g)].map((m) => m[1]!));
    expect(new Set(named)).toEqual(new Set(['stopped', 'stalled', 'rewind']));
    expect(named.every((name) => (RULE_NAMES as readonly string[]).includes(name))).toBe(true);
  });

  it('the Prometheus config loads the alert rules next to it', async () => {
    const config = await readFile(resolve(EXAMPLES, 'prometheus.yml'), 'utf8');
    expect(config).toMatch(/rule_files:\n\s+- prometheus-alerts\.yml/);
    expect(config).toContain("targets: ['localhost:9464']");
  });
});
