/**
 * A lag-monitor service, the kind a team deploys next to its consumers:
 * LagMonitors for one or more consumer groups (any group: they need no
 * member of ours), served over HTTP as JSON and Prometheus metrics.
 *
 *   npm run example -- examples/lag-monitor-service.ts
 *       no group given: it also starts a producer and a slow consumer group,
 *       so every endpoint has something to show
 *   KAFKA_BROKERS=host:9092 npx tsx examples/lag-monitor-service.ts \
 *       --group orders-service,billing --port 9464 --warning-lag 10000 --critical-lag 100000
 *
 * Endpoints: /health /status /lag /lag/history /alerts /recommendations
 * /metrics (see examples/lag-service/server.ts). Point Prometheus at /metrics
 * with examples/prometheus.yml, and import examples/grafana-dashboard.json.
 * SIGTERM or Ctrl-C stops it.
 *
 *   npm run example -- examples/lag-monitor-service.ts --ci
 *       with the demo system: waits for the first sample with partitions, calls every
 *       endpoint once, prints one JSON line of what they answered and stops;
 *       it exits 1 unless each answered 200 and /metrics carries the group's
 *       lag (what test/integration/examples.test.ts reads)
 */
import * as client from 'prom-client';
import {
  BackpressureConsumer,
  ConfigError,
  LagMonitor,
  RateLimitedProducer,
  registerMetrics,
} from '../src/index.js';
import { startLagService } from './lag-service/server.js';
import { createTopics, fresh, interrupted, kafkaFromEnv, run, sleep, stamp } from './support.js';

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : undefined;
}

function positive(name: string, fallback: number): number {
  const raw = flag(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`--${name}`, 'a number > 0', raw);
  return n;
}

run(async () => {
  const kafka = kafkaFromEnv('lag-monitor-service');
  const port = positive('port', Number(process.env['PORT'] ?? 9464));
  const groups = (flag('group') ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  const registry = new client.Registry();
  const cleanup: (() => Promise<void>)[] = [];

  // No group given: a small system to watch. A producer at 60 msg/s and a
  // consumer group handling ~40 msg/s, so the lag grows and the statuses,
  // alerts and recommendations move.
  let demo: { consumer: BackpressureConsumer; producer: RateLimitedProducer } | undefined;
  if (groups.length === 0) {
    const topic = fresh('clicks');
    const admin = kafka.admin();
    await admin.connect();
    await createTopics(admin, [{ topic, partitions: 4 }]);
    const group = `${topic}-aggregator`;
    groups.push(group);
    const consumer = new BackpressureConsumer(
      kafka.consumer({ groupId: group, maxWaitTimeInMs: 500 }),
      {
        topics: [topic],
        fromBeginning: true,
        concurrency: 4,
        maxInFlight: 100,
        commitIntervalMs: 1000,
        handler: () => sleep(100),
      },
    );
    await consumer.start();
    const raw = kafka.producer();
    await raw.connect();
    const producer = new RateLimitedProducer(raw, { messagesPerSecond: 60 });
    let running = true;
    const load = (async () => {
      while (running) {
        await producer
          .send({ topic, messages: [{ value: String(Date.now()) }] })
          .catch(() => undefined);
      }
    })();
    demo = { consumer, producer };
    cleanup.push(async () => {
      running = false;
      await load;
      await producer.close();
      await consumer.close({ drainTimeoutMs: 5000 });
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    });
    console.log(
      `${stamp()} demo system: topic ${topic}, group ${group} (60 msg/s in, ~40 msg/s out)`,
    );
  }

  const admin = kafka.admin();
  const monitors = groups.map(
    (groupId) =>
      new LagMonitor(admin, {
        groupId,
        intervalMs: positive('interval-ms', 2000),
        windowMs: positive('window-ms', 60_000),
        thresholds: {
          warningLag: positive('warning-lag', 500),
          criticalLag: positive('critical-lag', 2000),
          criticalTimeLagSeconds: positive('critical-time-lag-seconds', 300),
        },
      }),
  );
  for (const monitor of monitors) {
    monitor.on('lag.status', (e) => {
      if (e.scope === 'group')
        console.log(`${stamp()} ${e.groupId}: ${e.from} -> ${e.to} (${e.reason})`);
    });
    monitor.on('lag.error', (e) =>
      console.log(`${stamp()} ${e.groupId}: ${e.during} failed: ${e.error.message}`),
    );
  }

  // Lag, status, rates and recommendations of every monitored group; with
  // the demo system also its consumer's and producer's own metrics.
  registerMetrics(
    registry,
    {
      monitors,
      ...(demo ? { consumers: [demo.consumer], producers: { clicks: demo.producer } } : {}),
    },
    { client },
  );
  client.collectDefaultMetrics({ register: registry });

  await Promise.all(monitors.map((m) => m.start()));
  const ci = process.argv.includes('--ci');
  const service = await startLagService({
    monitors,
    metrics: registry,
    port: ci ? 0 : port,
    host: ci ? '127.0.0.1' : '0.0.0.0',
  });
  const base = `http://127.0.0.1:${new URL(service.url).port}`;
  console.log(`${stamp()} watching ${groups.join(', ')}; serving on ${base}`);
  const paths = [
    '/health',
    '/status',
    '/lag',
    '/lag/history',
    '/alerts',
    '/recommendations',
    '/metrics',
  ];
  for (const path of paths) console.log(`  curl ${base}${path}`);

  let report: Record<string, unknown> | undefined;
  if (ci) {
    // One round of what a user's curl would see, once every monitor has
    // sampled partitions (without `topics`, a group's partitions appear once
    // it has committed offsets).
    const deadline = Date.now() + 30_000;
    const sampled = () => monitors.every((m) => (m.snapshot()?.partitions.length ?? 0) > 0);
    while (!sampled() && Date.now() < deadline) await sleep(200);
    const answered: Record<string, number> = {};
    let metricsText = '';
    for (const path of paths) {
      const response = await fetch(`${base}${path}`);
      answered[path] = response.status;
      const text = await response.text();
      if (path === '/metrics') metricsText = text;
    }
    const groupLag = groups.every((g) =>
      new RegExp(`^kafka_consumer_group_lag\\{[^}]*group="${g}"`, 'm').test(metricsText),
    );
    report = { groups, lag: monitors.map((m) => m.lag() ?? null), answered, groupLag };
    if (!groupLag || Object.values(answered).some((status) => status !== 200)) {
      process.exitCode = 1;
    }
  } else {
    const signal = await interrupted();
    console.log(`${stamp()} ${signal}: stopping`);
  }
  await service.close();
  await Promise.all(monitors.map((m) => m.stop()));
  await admin.disconnect();
  for (const step of cleanup) await step();
  if (report) console.log(JSON.stringify(report));
});
