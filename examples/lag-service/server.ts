/**
 * The HTTP side of the lag-monitor service (examples/lag-monitor-service.ts
 * runs it): JSON views of one or more LagMonitors, and their Prometheus
 * metrics. node:http only, no framework.
 *
 *   GET /health           200 while every monitor samples on schedule, 503 otherwise
 *   GET /status           per group: status, lag, time lag, partitions not ok
 *   GET /lag              per group: the last snapshot (every partition's analysis)
 *   GET /lag/history      per group: the samples in the window
 *   GET /alerts           what is not ok now, and the last status changes
 *   GET /recommendations  per group: consumers and partitions needed, time to drain
 *   GET /metrics          Prometheus text (registerMetrics)
 *
 * `?group=<id>` narrows the JSON endpoints to one group (404 if unknown).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LagMonitor, LagStatusEvent, TopicPartition } from '../../src/index.js';

export interface LagServiceOptions {
  readonly monitors: readonly LagMonitor[];
  /** Prometheus text for /metrics: a prom-client registry's `metrics()` and `contentType`. */
  readonly metrics: { metrics(): Promise<string>; readonly contentType: string };
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** Status changes kept for /alerts. @default 100 */
  readonly alertHistory?: number;
}

export interface LagService {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

interface Change {
  readonly at: string;
  readonly groupId: string;
  readonly scope: 'group' | TopicPartition;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Seconds since the monitor's last successful round; null before the first. */
function ageSeconds(monitor: LagMonitor): number | null {
  const snapshot = monitor.snapshot();
  if (snapshot === undefined) return null;
  return Math.round(monitor.options.clock.now() - snapshot.at) / 1000;
}

export async function startLagService(options: LagServiceOptions): Promise<LagService> {
  const monitors = options.monitors;
  const keep = options.alertHistory ?? 100;
  const changes: Change[] = [];
  const listeners: [LagMonitor, (e: LagStatusEvent) => void][] = [];
  for (const monitor of monitors) {
    const onStatus = (e: LagStatusEvent) => {
      changes.push({
        at: new Date().toISOString(),
        groupId: e.groupId,
        scope: e.scope,
        from: e.from,
        to: e.to,
        reason: e.reason,
      });
      if (changes.length > keep) changes.splice(0, changes.length - keep);
    };
    monitor.on('lag.status', onStatus);
    listeners.push([monitor, onStatus]);
  }

  const select = (url: URL): readonly LagMonitor[] => {
    const group = url.searchParams.get('group');
    if (group === null) return monitors;
    const found = monitors.filter((m) => m.options.groupId === group);
    if (found.length === 0) throw new HttpError(404, `no monitor for group ${group}`);
    return found;
  };

  const routes: Record<string, (url: URL) => Promise<[number, unknown]> | [number, unknown]> = {
    '/health': () => {
      const checks = monitors.map((m) => {
        const age = ageSeconds(m);
        // Stale: no good round for three intervals (the admin calls fail).
        const stale = age === null || age > (3 * m.options.intervalMs) / 1000 + 5;
        return {
          groupId: m.options.groupId,
          state: m.state,
          lastSampleAgeSeconds: age,
          healthy: m.state === 'running' && !stale,
        };
      });
      const healthy = checks.every((c) => c.healthy);
      return [healthy ? 200 : 503, { status: healthy ? 'ok' : 'unhealthy', monitors: checks }];
    },
    '/status': (url) => [
      200,
      {
        groups: select(url).map((m) => {
          const s = m.snapshot();
          return {
            groupId: m.options.groupId,
            status: m.status(),
            lag: s?.total.lag ?? null,
            timeLagSeconds: s?.total.timeLagSeconds ?? null,
            members: s?.members ?? null,
            partitions: s?.partitions.length ?? 0,
            notOk: (s?.partitions ?? [])
              .filter((p) => p.status !== 'ok')
              .map((p) => ({
                topic: p.topic,
                partition: p.partition,
                status: p.status,
                lag: p.lag,
              })),
            lastSampleAgeSeconds: ageSeconds(m),
          };
        }),
      },
    ],
    '/lag': (url) => [
      200,
      {
        groups: select(url).map((m) => ({
          groupId: m.options.groupId,
          lastSampleAgeSeconds: ageSeconds(m),
          snapshot: m.snapshot() ?? null,
        })),
      },
    ],
    '/lag/history': (url) => [200, { groups: select(url).map((m) => m.history()) }],
    '/alerts': (url) => {
      const chosen = select(url);
      const groups = new Set(chosen.map((m) => m.options.groupId));
      const active = chosen.flatMap((m) => {
        const s = m.snapshot();
        if (s === undefined) return [];
        const rules = Object.entries(s.total.rules)
          .filter(([, on]) => on)
          .map(([rule]) => rule);
        const out = [];
        if (s.total.status !== 'ok' || rules.length > 0) {
          out.push({
            groupId: s.groupId,
            scope: 'group',
            status: s.total.status,
            lag: s.total.lag,
            timeLagSeconds: s.total.timeLagSeconds,
            rules,
          });
        }
        for (const p of s.partitions) {
          if (p.status === 'ok') continue;
          out.push({
            groupId: s.groupId,
            scope: { topic: p.topic, partition: p.partition },
            status: p.status,
            lag: p.lag,
            timeLagSeconds: p.timeLagSeconds,
            rules: Object.entries(p.rules)
              .filter(([, on]) => on)
              .map(([rule]) => rule),
          });
        }
        return out;
      });
      return [200, { active, recent: changes.filter((c) => groups.has(c.groupId)).reverse() }];
    },
    '/recommendations': (url) => [
      200,
      {
        groups: select(url).map((m) => ({
          groupId: m.options.groupId,
          recommendation: m.recommendations() ?? null,
        })),
      },
    ],
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        throw new HttpError(405, `${req.method} not allowed`);
      }
      if (url.pathname === '/metrics') {
        const text = await options.metrics.metrics();
        res.writeHead(200, { 'content-type': options.metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      const route = routes[url.pathname];
      if (route === undefined) throw new HttpError(404, `no route ${url.pathname}`);
      const [status, body] = await route(url);
      send(res, status, body, req.method === 'HEAD');
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      send(res, status, { error: error instanceof Error ? error.message : String(error) }, false);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const [monitor, onStatus] of listeners) monitor.off('lag.status', onStatus);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : text);
}
