// The lag-monitor service example (examples/lag-service/server.ts) against
// the real broker: a group with a known lag (committed offsets set through
// the admin API), a LagMonitor on it, and every endpoint called.

import * as client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLagService, type LagService } from '../../examples/lag-service/server.js';
import { LagMonitor, registerMetrics } from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  getAdmin,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

interface Json {
  readonly status: number;
  readonly body: Record<string, unknown> & { groups?: Record<string, unknown>[] };
}

describe('lag-monitor service', () => {
  const topic = uniqueName('lag-service');
  const groupId = uniqueName('lag-service-group');
  const kafka = newKafka();
  const monitorAdmin = kafka.admin();
  let monitor: LagMonitor;
  let service: LagService;

  async function get(path: string, init?: RequestInit): Promise<Json> {
    const response = await fetch(`${service.url}${path}`, init);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    return { status: response.status, body: (await response.json()) as Json['body'] };
  }

  beforeAll(async () => {
    await createTopic(topic, 2);
    await produceMessages(
      topic,
      Array.from({ length: 60 }, (_, i) => ({ partition: i % 2, value: String(i) })),
    );
    // The group has read 5 of partition 0 and 10 of partition 1: lag 25 + 20.
    const admin = await getAdmin();
    await admin.setOffsets({
      groupId,
      topic,
      partitions: [
        { partition: 0, offset: '5' },
        { partition: 1, offset: '10' },
      ],
    });

    monitor = new LagMonitor(monitorAdmin, {
      groupId,
      topics: [topic],
      intervalMs: 500,
      windowMs: 5000,
      thresholds: { warningLag: 30, criticalLag: 100 },
    });
    const registry = new client.Registry();
    registerMetrics(registry, { monitors: [monitor] }, { client });
    // Listening before the first round, so /alerts sees the first status change.
    service = await startLagService({ monitors: [monitor], metrics: registry });
    await monitor.start();
    await monitor.sample();
  });

  afterAll(async () => {
    await service?.close();
    await monitor?.stop();
    await monitorAdmin.disconnect();
    await disconnectAll();
  });

  it('/health is 200 while the monitor samples', async () => {
    const { status, body } = await get('/health');
    expect(status).toBe(200);
    expect(body['status']).toBe('ok');
    expect(body['monitors']).toEqual([
      expect.objectContaining({ groupId, state: 'running', healthy: true }),
    ]);
  });

  it('/status gives the group status and lag', async () => {
    const { status, body } = await get('/status');
    expect(status).toBe(200);
    expect(body.groups).toEqual([
      expect.objectContaining({ groupId, status: 'warning', lag: 45, partitions: 2, notOk: [] }),
    ]);
  });

  it('/lag gives every partition of the last snapshot', async () => {
    const { body } = await get(`/lag?group=${groupId}`);
    const snapshot = body.groups![0]!['snapshot'] as {
      partitions: { partition: number; lag: number; endOffset: number; committedOffset: number }[];
    };
    expect(
      snapshot.partitions.map((p) => [p.partition, p.endOffset, p.committedOffset, p.lag]),
    ).toEqual([
      [0, 30, 5, 25],
      [1, 30, 10, 20],
    ]);
  });

  it('/lag/history gives the samples in the window', async () => {
    const { body } = await get('/lag/history');
    const history = body.groups![0] as {
      groupId: string;
      partitions: { samples: { lag: number }[] }[];
      total: { lag: number }[];
    };
    expect(history.groupId).toBe(groupId);
    expect(history.partitions).toHaveLength(2);
    expect(history.partitions[0]!.samples.length).toBeGreaterThanOrEqual(2);
    expect(history.total.at(-1)!.lag).toBe(45);
  });

  it('/alerts lists what is not ok and the status change that led there', async () => {
    const { body } = await get('/alerts');
    expect(body['active']).toContainEqual(
      expect.objectContaining({ groupId, scope: 'group', status: 'warning', lag: 45 }),
    );
    expect(body['recent']).toContainEqual(
      expect.objectContaining({ groupId, scope: 'group', from: 'ok', to: 'warning' }),
    );
  });

  it('/recommendations gives the sizing advice', async () => {
    const { body } = await get('/recommendations');
    expect(body.groups).toEqual([
      {
        groupId,
        recommendation: expect.objectContaining({ lag: 45, partitions: 2, members: 0 }),
      },
    ]);
  });

  it('/metrics serves Prometheus text with the monitor’s numbers', async () => {
    const response = await fetch(`${service.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toContain(`kafka_consumer_group_lag_total{group="${groupId}"} 45`);
    expect(text).toContain(
      `kafka_consumer_group_lag{group="${groupId}",topic="${topic}",partition="0"} 25`,
    );
    expect(text).toContain(`kafka_lag_status{group="${groupId}"} 1`);
  });

  it('answers 404 for an unknown group or path, 405 for a write', async () => {
    expect((await get('/status?group=nobody')).status).toBe(404);
    expect((await get('/nothing-here')).status).toBe(404);
    expect((await get('/status', { method: 'POST' })).status).toBe(405);
  });

  it('/health turns 503 once the monitor stops', async () => {
    await monitor.stop();
    await waitFor(async () => (await get('/health')).status === 503, { timeoutMs: 5000 });
    const { body } = await get('/health');
    expect(body['monitors']).toEqual([
      expect.objectContaining({ state: 'stopped', healthy: false }),
    ]);
  });
});
