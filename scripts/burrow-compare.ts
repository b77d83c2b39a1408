/**
 * Burrow 1.2.1 and this library's LagMonitor, side by side, on the same
 * consumer groups of a local broker: a healthy group, a live consumer
 * stuck on one offset (heartbeating and committing it again), a consumer
 * killed with SIGKILL, and an offset reset to the start. Every second it
 * reads Burrow's verdict (HTTP `/v3/kafka/local/consumer/<group>/lag`) and
 * the monitor's rule, and prints when each changed.
 *
 * Needs: Debian's `burrow` package (`apt-get install burrow`: /usr/bin/Burrow),
 * Java 17 (ZooKeeper from the broker's jars; Burrow 1.2.1 needs one), and
 * the broker this project's scripts start. Run:
 *
 *   node scripts/kafka.mjs run -- npx tsx scripts/burrow-compare.ts
 *
 * Burrow keeps the last 10 commits per partition (`intervals`), commits
 * closer than 1 s overwriting the last (`min-distance`), and refreshes the
 * end offsets every second here (`offset-refresh`).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { LagMonitor } from '../src/lag/lag-monitor.js';
import { firstRule } from '../src/lag/rules.js';

const BURROW = process.env['BURROW_BIN'] ?? '/usr/bin/Burrow';
const brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter(Boolean);
if (brokers.length === 0)
  throw new Error('KAFKA_BROKERS is not set: run through scripts/kafka.mjs run');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kafka = new Kafka({ clientId: 'burrow-compare', brokers, logLevel: logLevel.NOTHING });
const admin = kafka.admin();
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
const children: ChildProcess[] = [];
const consumers: Consumer[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function start(command: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.once('exit', (code) => void writeFile(logFile, `${log}\nexit ${code}\n`).catch(() => {}));
  children.push(child);
  return child;
}

async function startZooKeeper(dir: string): Promise<number> {
  const { ensureJars } = (await import(new URL('./kafka.mjs', import.meta.url).href)) as {
    ensureJars: () => Promise<string>;
  };
  const libs = await ensureJars();
  const port = await freePort();
  start(
    'java',
    [
      '-Xmx256m',
      '-Dzookeeper.admin.enableServer=false',
      '-cp',
      join(libs, '*'),
      'org.apache.zookeeper.server.ZooKeeperServerMain',
      String(port),
      join(dir, 'zk'),
    ],
    join(dir, 'zookeeper.log'),
  );
  // Ready when it answers the `srvr` four-letter command (allowed by default).
  for (let i = 0; i < 150; i += 1) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.end('srvr'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(''));
    });
    if (answer.includes('Zookeeper version')) return port;
    await sleep(200);
  }
  throw new Error(`ZooKeeper did not start on port ${port}; see ${dir}/zookeeper.log`);
}

async function startBurrow(dir: string, zkPort: number): Promise<string> {
  const httpPort = await freePort();
  const servers = brokers.map((b) => `"${b}"`).join(', ');
  await writeFile(
    join(dir, 'burrow.toml'),
    `[general]
pidfile="${join(dir, 'burrow.pid')}"
[logging]
filename="${join(dir, 'burrow.log')}"
level="info"
[zookeeper]
servers=[ "127.0.0.1:${zkPort}" ]
timeout=6
root-path="/burrow"
[client-profile.local]
client-id="burrow-compare"
kafka-version="2.0.0"
[cluster.local]
class-name="kafka"
servers=[ ${servers} ]
client-profile="local"
topic-refresh=5
offset-refresh=1
[consumer.local]
class-name="kafka"
cluster="local"
servers=[ ${servers} ]
client-profile="local"
group-blacklist="^(burrow-compare-probe).*$"
[httpserver.default]
address="127.0.0.1:${httpPort}"
[storage.default]
class-name="inmemory"
workers=4
intervals=10
expire-group=604800
min-distance=1
`,
  );
  start(BURROW, ['--config-dir', dir], join(dir, 'burrow-stdout.log'));
  const base = `http://127.0.0.1:${httpPort}`;
  for (let i = 0; i < 100; i += 1) {
    try {
      const r = await fetch(`${base}/v3/kafka`);
      if (r.ok) return base;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`Burrow did not answer on ${base}; see ${dir}/burrow.log`);
}

interface Verdict {
  readonly burrow: string;
  readonly ours: string;
}

async function burrowStatus(base: string, group: string): Promise<string> {
  try {
    const r = await fetch(`${base}/v3/kafka/local/consumer/${group}/lag`);
    if (!r.ok) return `HTTP ${r.status}`;
    const body = (await r.json()) as {
      status?: { status: string; partitions?: { status: string }[] };
    };
    const parts = body.status?.partitions?.map((p) => p.status) ?? [];
    const worst = [...new Set(parts)].filter((s) => s !== 'OK');
    return worst.length > 0 ? worst.join('+') : (body.status?.status ?? 'none');
  } catch (error) {
    return `error ${(error as Error).message}`;
  }
}

/**
 * Watches one group for `seconds`, printing each change of either verdict
 * with the time since `t0()` (the scenario's event), and returns when each
 * verdict first took each value.
 */
async function watch(
  base: string,
  group: string,
  topic: string,
  seconds: number,
  t0: () => number,
): Promise<{ first: Map<string, number>; last: Verdict }> {
  const monitor = new LagMonitor(admin, {
    groupId: group,
    topics: [topic],
    intervalMs: 1000,
    windowMs: 60_000,
    stoppedAfterMs: 30_000,
    thresholds: { criticalLag: 1_000_000_000 },
  });
  await monitor.start();
  const first = new Map<string, number>();
  let last: Verdict = { burrow: '', ours: '' };
  for (let i = 0; i < seconds; i += 1) {
    await sleep(1000);
    const snapshot = monitor.snapshot();
    const rule = snapshot === undefined ? 'none' : (firstRule(snapshot.total.rules) ?? 'ok');
    const now: Verdict = { burrow: await burrowStatus(base, group), ours: rule };
    const at = ((Date.now() - t0()) / 1000).toFixed(1);
    if (now.burrow !== last.burrow || now.ours !== last.ours) {
      console.log(`  t=${at.padStart(6)} s  burrow ${now.burrow.padEnd(14)} ours ${now.ours}`);
    }
    for (const key of [`burrow:${now.burrow}`, `ours:${now.ours}`]) {
      if (!first.has(key)) first.set(key, Date.now() - t0());
    }
    last = now;
  }
  await monitor.stop();
  return { first, last };
}

async function topicOf(name: string, partitions: number): Promise<string> {
  await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions }] });
  await sleep(1000);
  return name;
}

function produceSteadily(topic: string, perSecond: number): () => void {
  let running = true;
  void (async () => {
    let n = 0;
    while (running) {
      await producer.send({ topic, messages: [{ value: `m${n++}` }], acks: -1 });
      await sleep(1000 / perSecond);
    }
  })();
  return () => {
    running = false;
  };
}

async function consumer(
  group: string,
  topic: string,
  options: { eachBatch?: Parameters<Consumer['run']>[0] } = {},
) {
  const c = kafka.consumer({
    groupId: group,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  });
  consumers.push(c);
  await c.connect();
  await c.subscribe({ topics: [topic], fromBeginning: true });
  await c.run(options.eachBatch ?? { eachMessage: async () => {} });
  return c;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'burrow-compare-'));
  console.log(`work folder ${dir}`);
  const zkPort = await startZooKeeper(dir);
  await admin.connect();
  await producer.connect();
  // Burrow's consumer module gives up at start when __consumer_offsets does
  // not exist yet (a fresh broker creates it at the first coordinator
  // lookup): look one up, then wait for the topic.
  await admin.fetchOffsets({ groupId: 'burrow-compare-probe' });
  for (let i = 0; ; i += 1) {
    const { topics } = await admin.fetchTopicMetadata({ topics: [] });
    const offsets = topics.find((t) => t.name === '__consumer_offsets');
    if (offsets && offsets.partitions.every((p) => p.leader >= 0)) break;
    if (i > 100) throw new Error('__consumer_offsets was not created');
    await sleep(200);
  }
  const base = await startBurrow(dir, zkPort);
  console.log(`Burrow ${base}, ZooKeeper 127.0.0.1:${zkPort}, broker ${brokers.join(',')}`);
  const run = Date.now().toString(36);
  const results: string[] = [];

  // 1. Healthy: a consumer keeping up with 10 msg/s.
  {
    const topic = await topicOf(`bc-ok-${run}`, 1);
    const group = `bc-ok-${run}`;
    const stop = produceSteadily(topic, 10);
    await consumer(group, topic);
    const t0 = Date.now();
    console.log('\nhealthy: a consumer keeping up with 10 msg/s');
    const { last } = await watch(base, group, topic, 40, () => t0);
    stop();
    results.push(`healthy | Burrow ${last.burrow} | ours ${last.ours}`);
  }

  // 2. Stall: a live consumer stuck on offset 20, heartbeating and committing it every second.
  {
    const topic = await topicOf(`bc-stall-${run}`, 1);
    const group = `bc-stall-${run}`;
    const stop = produceSteadily(topic, 10);
    let released = false;
    let stuckAt = 0;
    const c: Consumer = await consumer(group, topic, {
      eachBatch: {
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
          for (const m of batch.messages) {
            if (Number(m.offset) >= 20) {
              stuckAt ||= Date.now();
              while (!released) {
                await heartbeat();
                await c.commitOffsets([{ topic, partition: batch.partition, offset: m.offset }]);
                await sleep(1000);
              }
              return;
            }
            resolveOffset(m.offset);
            await commitOffsetsIfNecessary();
          }
        },
      },
    });
    console.log(
      '\nstall: stuck on offset 20, heartbeating and committing it every second (t from the stall)',
    );
    const { first, last } = await watch(base, group, topic, 90, () => stuckAt || Date.now());
    released = true;
    stop();
    results.push(
      `stall | Burrow ${last.burrow} (STALL at ${secs(first.get('burrow:STALL'))}) | ours ${last.ours} (stalled at ${secs(first.get('ours:stalled'))})`,
    );
  }

  // 3. Stop: a consumer process killed with SIGKILL while 10 msg/s arrive.
  {
    const topic = await topicOf(`bc-stop-${run}`, 1);
    const group = `bc-stop-${run}`;
    const stop = produceSteadily(topic, 10);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('../test/integration/children/lag-consumer.ts', import.meta.url).pathname,
      ],
      {
        env: {
          ...process.env,
          LAG_TOPIC: topic,
          LAG_GROUP: group,
          LAG_PARTITIONS: '1',
          LAG_SESSION_MS: '10000',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(child);
    await new Promise<void>((resolve) =>
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('committed') && resolve()),
    );
    let killedAt = 0;
    setTimeout(() => {
      child.kill('SIGKILL');
      killedAt = Date.now();
      console.log('  (killed)');
    }, 30_000);
    console.log('\nstop: the consumer process is killed 30 s in (t from the kill)');
    const { first, last } = await watch(base, group, topic, 120, () => killedAt || Date.now());
    stop();
    results.push(
      `stop | Burrow ${last.burrow} (STOP at ${secs(first.get('burrow:STOP'))}) | ours ${last.ours} (stopped at ${secs(first.get('ours:stopped'))})`,
    );
  }

  // 4. Rewind: a group that consumed 200 messages, reset to offset 0.
  {
    const topic = await topicOf(`bc-rewind-${run}`, 1);
    const group = `bc-rewind-${run}`;
    await producer.send({
      topic,
      messages: Array.from({ length: 200 }, (_, i) => ({ value: `m${i}` })),
      acks: -1,
    });
    const c = await consumer(group, topic);
    await sleep(15_000);
    await c.disconnect();
    let resetAt = 0;
    setTimeout(() => {
      void admin
        .setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: '0' }] })
        .then(() => {
          resetAt = Date.now();
          console.log('  (reset to 0)');
        });
    }, 5000);
    console.log('\nrewind: a caught-up group reset to offset 0 (t from the reset)');
    const { first, last } = await watch(base, group, topic, 40, () => resetAt || Date.now());
    results.push(
      `rewind | Burrow ${last.burrow} (REWIND at ${secs(first.get('burrow:REWIND'))}) | ours ${last.ours} (rewind at ${secs(first.get('ours:rewind'))})`,
    );
  }

  console.log('\nscenario | Burrow 1.2.1 at the end | LagMonitor at the end');
  for (const line of results) console.log(line);
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}

function secs(ms: number | undefined): string {
  return ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`;
}

try {
  await main();
} finally {
  for (const c of consumers) await c.disconnect().catch(() => {});
  await producer.disconnect().catch(() => {});
  await admin.disconnect().catch(() => {});
  for (const child of children) child.kill('SIGTERM');
}
