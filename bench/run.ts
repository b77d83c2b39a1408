/**
 * `npm run bench`: what kafkajs-backpressure costs and what it buys, measured
 * side by side with plain KafkaJS on the same broker and topic.
 *
 *   npm run bench                                # every scenario, 3 rounds
 *   npm run bench -- --scenario overhead --rounds 5
 *   npm run bench -- --scenario producer         # scenario 5: the rate-limited producer
 *   npm run bench -- --scenario fairness         # scenario 6: one slow partition among fast ones
 *   npm run bench -- --scenario bulk             # scenario 7: a bulk sink, handler vs batchHandler
 *   npm run bench -- --quick                     # small and fast: a CI smoke check
 *   npm run bench -- --scenario overhead --messages 500000
 *   npm run bench -- --scenario overhead --profile   # --cpu-prof every contender
 *   npm run bench -- --lib /tmp/patched/src/index.ts # the library from elsewhere
 *
 * Every contender run is a fresh child process (bench/contender.ts) with its
 * own new consumer group on the same pre-produced topic, so memory figures are
 * per contender and runs do not disturb each other. Contenders alternate
 * within a round (A B C, then C B A, ...) and the table shows medians over
 * rounds; ratios are taken within a round, then the median of those, because
 * shared machines are noisy and neighbours in time see the same noise.
 *
 * Writes bench/results/latest.json and bench/results/latest.md, and prints
 * the markdown.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { PRODUCER_DEFAULTS } from '../src/producer/options.js';
import {
  fairnessId,
  FAIRNESS_PCC,
  makePlan,
  METRICS_SCRAPE_MS,
  ORDERINGS,
  SCENARIOS,
  type ContenderDef,
  type ContenderResult,
  type ContenderSpec,
  type Plan,
  type ScenarioName,
  type TopicPlan,
} from './lib/plan.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const RESULTS_DIR = join(BENCH_DIR, 'results');
const KAFKA_VERSION = kafkaVersion();

const { values: flags } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    profile: { type: 'boolean', default: false },
    lib: { type: 'string' },
    tsx: { type: 'boolean', default: false },
    contenders: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
    [
      'usage: npm run bench -- [options]',
      '  --scenario overhead|slow|memory|reaction|producer|fairness|bulk|all',
      '                    (default all; a comma list works too)',
      '  --rounds N        rounds of alternating contenders (default 3, 1 with --quick)',
      '  --quick           small sizes, short runs: a smoke check under 2 minutes',
      '  --messages N      messages in the overhead topic (default 1000000)',
      '  --profile         run every contender under --cpu-prof (bench/results/profiles)',
      '  --lib PATH        benchmark the library entry at PATH instead of src/index.ts',
      '  --tsx             import the TypeScript entry through tsx instead of bundling it',
      '  --contenders a,b  only these contender ids (plus each scenario reference)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

const positive = (name: string, raw: string | undefined): number | undefined => {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} expects a positive integer`);
  return n;
};

const plan = makePlan({
  quick: flags.quick ?? false,
  ...(flags.rounds !== undefined ? { rounds: positive('rounds', flags.rounds)! } : {}),
  ...(flags.messages !== undefined ? { messages: positive('messages', flags.messages)! } : {}),
});
const scenarios: ScenarioName[] =
  flags.scenario === 'all'
    ? [...SCENARIOS]
    : (flags.scenario ?? '').split(',').map((s) => {
        if (!(SCENARIOS as readonly string[]).includes(s))
          throw new Error(`--scenario: unknown "${s}" (${SCENARIOS.join(', ')}, all)`);
        return s as ScenarioName;
      });
const only = flags.contenders?.split(',');
const libEntry = resolve(flags.lib ?? join(ROOT, 'src', 'index.ts'));
// Under node_modules: the bundle's external imports resolve from there, and
// git, eslint and prettier already leave it alone. Worktrees may share one
// node_modules (a symlink), so runs never delete each other's bundles.
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', 'kafkajs-backpressure-bench-lib');
let libPath = libEntry;

/**
 * Bundles the library entry the way tsup builds dist/ (esbuild, ESM, node20,
 * p-limit inlined, other dependencies external), so contenders run what users
 * run: tsx would add its per-function `__name` helper calls and lose line
 * numbers in CPU profiles.
 */
async function buildLibrary(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(BUILD_DIR, `lib-${runId}-${process.pid}.js`);
  mkdirSync(BUILD_DIR, { recursive: true });
  // Leftovers of runs that crashed or kept theirs for --profile, a day old.
  for (const name of readdirSync(BUILD_DIR)) {
    const file = join(BUILD_DIR, name);
    if (Date.now() - statSync(file).mtimeMs > 24 * 3600 * 1000) rmSync(file, { force: true });
  }
  await build({
    entryPoints: [libEntry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    nodePaths: [join(ROOT, 'node_modules')],
    external: ['kafkajs', 'opossum', 'eventemitter3', 'bottleneck', 'prom-client'],
    logLevel: 'warning',
  });
  return outfile;
}

const brokers = (process.env['KAFKA_BROKERS'] ?? '')
  .split(',')
  .map((b) => b.trim())
  .filter(Boolean);
if (brokers.length === 0) {
  process.stderr.write(
    'KAFKA_BROKERS is not set: run `npm run bench` (it starts a local broker) or set it.\n',
  );
  process.exit(2);
}

const runId = Date.now().toString(36);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const kafka = new Kafka({ clientId: 'bench-setup', brokers, logLevel: logLevel.ERROR });

// ------------------------------------------------------------------ setup

async function createTopic(
  topic: string,
  t: TopicPlan,
  configEntries: { name: string; value: string }[] = [],
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: t.partitions, replicationFactor: 1, configEntries }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/** Large batches, acks 1, no compression, a few requests in flight. */
async function produce(topic: string, t: TopicPlan): Promise<number> {
  const started = performance.now();
  await createTopic(topic, t);
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const value = randomBytes(t.valueBytes);
  const keys = Array.from({ length: t.keys }, (_, i) => Buffer.from(`key-${i}`));
  const messageAt = t.exactPartitions ? exactLayout(t, keys, value) : undefined;
  // Keep each partition's record batch near 512 KB: under the broker's 1 MB
  // message.max.bytes, and typical of what consumers see.
  const chunk = Math.max(
    t.partitions,
    Math.min(12_000, Math.floor((512 * 1024 * t.partitions) / (t.valueBytes + 40))),
  );
  let next = 0;
  const sender = async () => {
    while (next < t.messages) {
      const from = next;
      const to = Math.min(t.messages, from + chunk);
      next = to;
      const messages: Message[] = [];
      for (let i = from; i < to; i++)
        messages.push(messageAt ? messageAt(i) : { key: keys[i % t.keys]!, value });
      await producer.send({ topic, acks: 1, messages });
    }
  };
  await Promise.all([sender(), sender(), sender(), sender()]);
  await producer.disconnect();
  const seconds = (performance.now() - started) / 1000;
  const mb = (t.messages * t.valueBytes) / 1e6;
  log(
    `${topic}: ${t.messages} x ${t.valueBytes} B (${mb.toFixed(0)} MB) produced in ${seconds.toFixed(1)} s`,
  );
  return seconds;
}

/**
 * Message i goes to partition i % partitions, so every partition holds the
 * same count; key k lives in partition k % partitions only, as a key-hashing
 * partitioner would keep it, and the partition's keys take turns.
 */
function exactLayout(t: TopicPlan, keys: readonly Buffer[], value: Buffer): (i: number) => Message {
  const byPartition = Array.from({ length: t.partitions }, (_, p) =>
    keys.filter((_, k) => k % t.partitions === p),
  );
  return (i) => {
    const partition = i % t.partitions;
    const own = byPartition[partition]!;
    return { partition, key: own[Math.floor(i / t.partitions) % own.length]!, value };
  };
}

// ------------------------------------------------------------------ contenders

function runContender(spec: ContenderSpec, timeoutMs: number): Promise<ContenderResult> {
  const nodeArgs = ['--import', 'tsx'];
  if (flags.profile) {
    // One directory per run: every thread (tsx's module-hooks worker too)
    // writes its own profile; bench/profile-summary.ts picks the main one.
    const dir = join(
      RESULTS_DIR,
      'profiles',
      `${spec.scenario}-${spec.contender.id}-r${spec.round}`,
    );
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(BENCH_DIR, 'contender.ts'), JSON.stringify(spec)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
  );
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 100_000) output = output.slice(-50_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolvePromise) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      let result: ContenderResult | undefined;
      try {
        result = JSON.parse(readFileSync(spec.out, 'utf8')) as ContenderResult;
        rmSync(spec.out, { force: true });
      } catch {
        result = undefined;
      }
      if (!result || !result.ok || code !== 0) {
        const why = result?.error ?? `exit ${code ?? signal}`;
        log(`${spec.scenario}/${spec.contender.id} round ${spec.round} FAILED: ${why}`);
        if (output.trim()) log(`output:\n${output.trim().split('\n').slice(-30).join('\n')}`);
        resolvePromise({ ...(result ?? emptyResult(spec)), ok: false, error: why });
        return;
      }
      resolvePromise(result);
    });
  });
}

function emptyResult(spec: ContenderSpec): ContenderResult {
  return {
    scenario: spec.scenario,
    contender: spec.contender.id,
    round: spec.round,
    ok: false,
    messages: 0,
    elapsedMs: 0,
    rate: 0,
    startupMs: 0,
    memory: {
      peakRss: 0,
      peakHeapUsed: 0,
      peakExternal: 0,
      peakArrayBuffers: 0,
      rssAt: [0, 0, 0, 0],
      heapUsedAt: [0, 0, 0, 0],
    },
    extra: {},
    loadavg: [0, 0],
  };
}

interface ScenarioSetup {
  topic: string;
  target: number;
  durationMs: number | undefined;
  handlerMs: number;
}

function setupOf(scenario: ScenarioName, p: Plan, def: ContenderDef): Omit<ScenarioSetup, 'topic'> {
  switch (scenario) {
    case 'overhead':
      return { target: p.overhead.messages, durationMs: undefined, handlerMs: 0 };
    case 'slow':
      return {
        target: p.slow.messages,
        durationMs: p.slow.durationMs,
        handlerMs: p.slow.handlerMs,
      };
    case 'memory':
      return {
        target: p.memory.messages,
        durationMs: p.memory.durationMs,
        handlerMs: p.memory.handlerMs,
      };
    case 'reaction':
      return { target: Number.MAX_SAFE_INTEGER, durationMs: undefined, handlerMs: 0 };
    case 'producer':
      // A rate run lasts its window; a throughput run sends every message.
      return def.rateTarget !== undefined
        ? { target: Number.MAX_SAFE_INTEGER, durationMs: p.producer.rateWindowMs, handlerMs: 0 }
        : { target: p.producer.messages, durationMs: p.producer.maxRunMs, handlerMs: 0 };
    case 'fairness':
      // Every message but partition 0's is counted.
      return {
        target: p.fairness.perPartition * (p.fairness.partitions - 1),
        durationMs: p.fairness.durationMs,
        handlerMs: 0,
      };
    case 'bulk':
      return { target: p.bulk.messages, durationMs: p.bulk.durationMs, handlerMs: 0 };
  }
}

async function runScenario(scenario: ScenarioName): Promise<ContenderResult[]> {
  const topicPlan: TopicPlan = plan[scenario];
  const topic = `bench-${scenario}-${runId}`;
  if (scenario === 'producer') {
    // The contenders write to it; every run appends to the same empty topic.
    // The broker stamps each record with the time it wrote it: the rate runs are measured by those.
    await createTopic(topic, topicPlan, [
      { name: 'message.timestamp.type', value: 'LogAppendTime' },
    ]);
    log(`producer settings: ${producerSettings()}`);
  } else {
    setupSeconds[scenario] = await produce(topic, topicPlan);
  }
  const defs = plan.contenders[scenario].filter((c) => !only || c.reference || only.includes(c.id));
  const results: ContenderResult[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    const order = round % 2 === 1 ? defs : [...defs].reverse();
    for (const def of order) {
      const result = await runOnce(scenario, def, round, {
        topic,
        ...setupOf(scenario, plan, def),
      });
      results.push(result);
      log(`${scenario} r${round} ${def.id}: ${summaryLine(scenario, result)}`);
    }
  }
  return results;
}

function runOnce(
  scenario: ScenarioName,
  def: ContenderDef,
  round: number,
  setup: ScenarioSetup,
): Promise<ContenderResult> {
  const spec: ContenderSpec = {
    scenario,
    contender: def,
    round,
    brokers,
    topic: setup.topic,
    groupId: `bench-${scenario}-${def.id}-r${round}-${runId}`,
    target: setup.target,
    durationMs: setup.durationMs,
    handlerMs: setup.handlerMs,
    reaction: scenario === 'reaction' ? plan.reaction : undefined,
    producer: scenario === 'producer' ? plan.producer : undefined,
    fairness: scenario === 'fairness' ? plan.fairness : undefined,
    bulk: scenario === 'bulk' ? plan.bulk : undefined,
    libPath,
    out: join(tmpdir(), `kafkajs-bp-bench-${runId}-${scenario}-${def.id}-${round}.json`),
  };
  return runContender(spec, (setup.durationMs ?? 0) + 240_000);
}

function summaryLine(scenario: ScenarioName, r: ContenderResult): string {
  if (!r.ok) return 'failed';
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  if (scenario === 'reaction') {
    return Object.entries(r.extra)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  }
  if (scenario === 'producer') {
    const target = r.extra['rateTarget'];
    const sent = r.extra['sentRate'];
    const pct = (x: unknown) => (typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : 'n/a');
    return (
      `${Math.round(r.rate)} msg/s acknowledged (${r.messages} in ${(r.elapsedMs / 1000).toFixed(1)} s)` +
      (typeof sent === 'number' ? `, ${Math.round(sent)} msg/s sent` : '') +
      (typeof target === 'number'
        ? ` (target ${target}, error ${pct(r.extra['sentError'])}, 1 s slices ` +
          `${String(r.extra['slowestSecond'])}–${String(r.extra['fastestSecond'])}; ` +
          `at the broker ${typeof r.extra['brokerRate'] === 'number' ? r.extra['brokerRate'].toFixed(1) : 'n/a'} msg/s, ` +
          `error ${pct(r.extra['brokerError'])} (from the first append ${pct(r.extra['brokerErrorFromFirstAppend'])}), ` +
          `1 s slices ${String(r.extra['brokerSlowestSecond'])}–${String(r.extra['brokerFastestSecond'])}, ` +
          `first second ${String(r.extra['brokerFirstSecond'])})`
        : '') +
      `, ${String(r.extra['requests'])} requests of ${String(r.extra['messagesPerRequest'])} ` +
      `(${String(r.extra['meanInFlight'])} in flight on average), ` +
      `peak RSS ${mb(r.memory.peakRss)}, load ${r.loadavg[0].toFixed(1)}`
    );
  }
  if (scenario === 'fairness') {
    return (
      `partitions 1-5: ${Math.round(r.rate)} msg/s (${r.messages} in ${(r.elapsedMs / 1000).toFixed(1)} s), ` +
      `partition 0: ${String(r.extra['partition0Done'])} done, ` +
      `${String(r.extra['partition0MeanActive'])} slots held on average ` +
      `(peak ${String(r.extra['partition0PeakActive'])}), ` +
      `partitionsConsumedConcurrently ${String(r.extra['partitionsConsumedConcurrently'])}, ` +
      `load ${r.loadavg[0].toFixed(1)}`
    );
  }
  const metrics =
    r.extra['metricsConsumed'] === undefined
      ? ''
      : `, metrics: ${String(r.extra['metricsConsumed'])} consumed, ` +
        `${String(r.extra['metricsHandlerCalls'])} handler calls, ` +
        `${String(r.extra['scrapesInWindow'])} scrapes in the window`;
  return (
    `${Math.round(r.rate)} msg/s (${r.messages} in ${(r.elapsedMs / 1000).toFixed(1)} s), ` +
    `peak RSS ${mb(r.memory.peakRss)}, startup ${(r.startupMs / 1000).toFixed(1)} s, ` +
    `load ${r.loadavg[0].toFixed(1)}${metrics}`
  );
}

// ------------------------------------------------------------------ report

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface ContenderSummary {
  id: string;
  label: string;
  reference: boolean;
  runs: number;
  failed: number;
  rate: { median: number; min: number; max: number; all: number[] };
  /** Median over rounds of (this rate / the reference's rate in the same round). */
  ratio: number | null;
  /** The contender `ratio` is taken against, when not the scenario's reference. */
  versus: string | null;
  /** Like `ratio`, always against the scenario's reference (null without one, or for the reference). */
  ratioToReference: number | null;
  peakRss: { median: number; max: number };
  peakHeapUsed: { median: number; max: number };
  peakExternal: { median: number; max: number };
  rssAt: number[];
  heapUsedAt: number[];
  extra: Record<string, number | null>;
  /** Every round's value of each numeric extra (for worst-round figures). */
  extraAll: Record<string, number[]>;
}

function summarize(scenario: ScenarioName, results: ContenderResult[]): ContenderSummary[] {
  const defs = plan.contenders[scenario].filter((c) => results.some((r) => r.contender === c.id));
  const ref = defs.find((d) => d.reference);
  const ratesByRound = (id: string | undefined) =>
    new Map(results.filter((r) => r.ok && r.contender === id).map((r) => [r.round, r.rate]));
  return defs.map((def) => {
    const all = results.filter((r) => r.contender === def.id);
    const ok = all.filter((r) => r.ok);
    const rates = ok.map((r) => r.rate);
    const ratiosTo = (id: string | undefined): number[] => {
      const byRound = ratesByRound(id);
      return ok.filter((r) => byRound.has(r.round)).map((r) => r.rate / byRound.get(r.round)!);
    };
    const ratios = ratiosTo(def.versus ?? ref?.id);
    const toReference = ratiosTo(ref?.id);
    const keys = new Set(ok.flatMap((r) => Object.keys(r.extra)));
    const extra: Record<string, number | null> = {};
    const extraAll: Record<string, number[]> = {};
    for (const key of keys) {
      const values = ok.map((r) => r.extra[key]).filter((v): v is number => typeof v === 'number');
      extra[key] = values.length > 0 ? median(values) : null;
      extraAll[key] = values;
    }
    const m = (f: (r: ContenderResult) => number) => ({
      median: median(ok.map(f)),
      max: Math.max(...ok.map(f)),
    });
    return {
      id: def.id,
      label: def.label,
      reference: def.reference ?? false,
      runs: all.length,
      failed: all.length - ok.length,
      rate: { median: median(rates), min: Math.min(...rates), max: Math.max(...rates), all: rates },
      // A rate-limited run is measured against its target, not the reference.
      ratio:
        def.reference || def.rateTarget !== undefined || ratios.length === 0
          ? null
          : median(ratios),
      versus: def.versus ?? null,
      ratioToReference:
        def.reference || def.rateTarget !== undefined || toReference.length === 0
          ? null
          : median(toReference),
      peakRss: m((r) => r.memory.peakRss),
      peakHeapUsed: m((r) => r.memory.peakHeapUsed),
      peakExternal: m((r) => r.memory.peakExternal),
      rssAt: [0, 1, 2, 3].map((i) => median(ok.map((r) => r.memory.rssAt[i]!))),
      heapUsedAt: [0, 1, 2, 3].map((i) => median(ok.map((r) => r.memory.heapUsedAt[i]!))),
      extra,
      extraAll,
    };
  });
}

const MB = (b: number) => (Number.isFinite(b) ? `${Math.round(b / 2 ** 20)}` : 'n/a');
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const fixed = (x: number | null | undefined, d = 2) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d);
const msCell = (x: number | null | undefined) => (x === null || x === undefined ? 'none' : int(x));

/** Latency pauses within a spike: how many, when the first came and when (and why) one ended. */
function pausesCell(e: Record<string, number | null | undefined>): string {
  const count = e['pausesInSpike'];
  if (!count) return 'none';
  const end =
    e['pauseEndInSpikeMs'] === null || e['pauseEndInSpikeMs'] === undefined
      ? 'held'
      : `${int(e['pauseEndInSpikeMs'])}${e['pauseEndNoEffect'] === 1 ? ' (no effect)' : ''}`;
  return `${count}: ${msCell(e['pauseMs'])} → ${end}`;
}

function machine(): Record<string, string | number> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    kafka: `Kafka ${KAFKA_VERSION} single broker on loopback`,
  };
}

function gitDescribe(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const sha = head.stdout?.trim() || 'unknown';
  return dirty.stdout?.trim() ? `${sha} (src/ modified)` : sha;
}

function kafkaVersion(): string {
  try {
    const pom = readFileSync(join(ROOT, 'scripts', 'kafka', 'pom.xml'), 'utf8');
    return /<kafka\.version>([^<]+)</.exec(pom)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

interface Target {
  target: string;
  figure: string;
  met: boolean | null;
}

function report(summaries: Partial<Record<ScenarioName, ContenderSummary[]>>): {
  markdown: string;
  targets: Target[];
} {
  const m = machine();
  const lines: string[] = [];
  const targets: Target[] = [];
  lines.push(`### Benchmark results${plan.quick ? ' (--quick: smoke sizes, not comparable)' : ''}`);
  lines.push('');
  lines.push(
    `Machine: ${m['cpu']}, ${m['cores']} cores, ${m['memoryGiB']} GiB RAM, ${m['os']}, ` +
      `Node ${m['node']}, ${m['kafka']}. Commit ${commit}, ${new Date().toISOString()}. ` +
      `${plan.rounds} round(s), contenders alternating, medians shown; ratios are medians of ` +
      `same-round ratios. Load average ${loadStart.map((x) => x.toFixed(1)).join('/')} at start, ` +
      `${loadavg()
        .slice(0, 2)
        .map((x) => x.toFixed(1))
        .join('/')} at end (shared machine: prefer the ratios).`,
  );
  const s1 = summaries.overhead;
  if (s1) {
    const o = plan.overhead;
    lines.push('');
    lines.push(
      `#### 1. Overhead: no-op async handler, ${int(o.messages)} messages of ${o.valueBytes} B, ` +
        `${o.partitions} partitions, library at default limits`,
    );
    lines.push('');
    lines.push(
      `Metrics: \`registerMetrics\` with prom-client on a registry of the run's own, scraped ` +
        `every ${METRICS_SCRAPE_MS / 1000} s from the start of the consumer. Tracing: no-op ` +
        `functions subscribed to every event of the four tracing channels.`,
    );
    lines.push('');
    lines.push(
      '| contender | msg/s (median) | range | ratio to KafkaJS | ratio to the same mode without metrics or tracing | peak RSS MB | fetches | fetches ≥ 1 s | scrapes in window |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of s1) {
      const scrapes = c.extra['scrapesInWindow'];
      lines.push(
        `| ${c.label} | ${int(c.rate.median)} | ${int(c.rate.min)}–${int(c.rate.max)} | ` +
          `${c.reference ? '1.00' : fixed(c.ratioToReference)} | ` +
          `${c.versus === null ? '–' : fixed(c.ratio)} | ${MB(c.peakRss.median)} | ` +
          `${int(c.extra['fetches'] ?? Number.NaN)} | ${int(c.extra['slowFetches'] ?? 0)} | ` +
          `${scrapes === undefined ? '–' : int(scrapes ?? Number.NaN)} |`,
      );
    }
    const atLeast = (x: number | null, goal: number) => (x === null ? null : x >= goal);
    for (const ordering of ORDERINGS) {
      const plain = s1.find((c) => c.id === `lib-${ordering}`);
      if (plain)
        targets.push({
          target: `1. ${ordering} mode ≥ 0.95 of plain KafkaJS (no-op handler)`,
          figure: fixed(plain.ratioToReference),
          met: atLeast(plain.ratioToReference, 0.95),
        });
    }
    for (const ordering of ORDERINGS) {
      const withMetrics = s1.find((c) => c.id === `lib-${ordering}-metrics`);
      if (!withMetrics) continue;
      const toKafka = withMetrics.ratioToReference;
      const toMode = withMetrics.ratio;
      targets.push({
        target:
          `1. ${ordering} mode with metrics registered ≥ 0.95 of plain KafkaJS ` +
          `and ≥ 0.95 of ${ordering} mode without metrics`,
        figure: `${fixed(toKafka)} of KafkaJS, ${fixed(toMode)} of ${ordering} mode`,
        met: toKafka === null || toMode === null ? null : toKafka >= 0.95 && toMode >= 0.95,
      });
    }
    const traced = s1.find((c) => c.id === 'lib-partition-tracing');
    if (traced) {
      targets.push({
        target:
          '1. partition mode with a tracing subscriber attached: its cost next to the same mode ' +
          'without one (no target; without a subscriber the row above must not move)',
        figure: `${fixed(traced.ratio)} of partition mode, ${fixed(traced.ratioToReference)} of KafkaJS`,
        met: null,
      });
    }
  }
  const s2 = summaries.slow;
  if (s2) {
    const o = plan.slow;
    lines.push('');
    lines.push(
      `#### 2. Slow downstream: handler awaits ${o.handlerMs} ms, ${o.keys} keys, ` +
        `${o.partitions} partitions, ${o.durationMs / 1000} s per run`,
    );
    lines.push('');
    lines.push(
      '| contender | msg/s (median) | ratio to KafkaJS | bound msg/s | of bound | mean active handlers | partitionsConsumedConcurrently given to KafkaJS |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const c of s2) {
      const def = plan.contenders.slow.find((d) => d.id === c.id)!;
      const conc = def.library?.concurrency ?? def.partitionsConsumedConcurrently ?? 1;
      const bound = (conc * 1000) / o.handlerMs;
      lines.push(
        `| ${c.label} | ${int(c.rate.median)} | ${c.reference ? '1.00' : fixed(c.ratio, 1)} | ` +
          `${int(bound)} | ${fixed((c.rate.median / bound) * 100, 0)}% | ` +
          `${c.extra['meanActiveHandlers'] === undefined ? '–' : fixed(c.extra['meanActiveHandlers'], 0)} | ` +
          `${int(c.extra['partitionsConsumedConcurrently'] ?? Number.NaN)} |`,
      );
    }
    const c256 = s2.find((c) => c.id === 'lib-key-256');
    if (c256) {
      const bound = (256 * 1000) / o.handlerMs;
      const noop = s1?.find((c) => c.id === 'lib-key')?.rate.median;
      const goal = Math.min(0.8 * bound, noop ?? Number.POSITIVE_INFINITY);
      targets.push({
        target:
          `2. key mode, concurrency 256, partitionsConsumedConcurrently 6: ≥ 80% of the bound (${int(0.8 * bound)} msg/s)` +
          (noop !== undefined ? ` or the no-op key-mode rate (${int(noop)}) if lower` : ''),
        figure: `${int(c256.rate.median)} msg/s = ${fixed((c256.rate.median / bound) * 100, 0)}% of bound`,
        met: c256.rate.median >= goal,
      });
    }
    const atDefault = s2.find((c) => c.id === 'lib-key-256-default');
    if (atDefault) {
      const bound = (256 * 1000) / o.handlerMs;
      const given = atDefault.extra['partitionsConsumedConcurrently'];
      targets.push({
        target:
          `2. key mode, concurrency 256, partitionsConsumedConcurrently not set: ` +
          `≥ 90% of the bound (${int(0.9 * bound)} msg/s)`,
        figure:
          `${int(atDefault.rate.median)} msg/s = ` +
          `${fixed((atDefault.rate.median / bound) * 100, 0)}% of bound ` +
          `(KafkaJS got partitionsConsumedConcurrently ${int(given ?? Number.NaN)})`,
        met: atDefault.rate.median >= 0.9 * bound,
      });
    }
  }
  const s3 = summaries.memory;
  if (s3) {
    const o = plan.memory;
    lines.push('');
    lines.push(
      `#### 3. Memory under a backlog: ${Math.round((o.messages * o.valueBytes) / 1e6)} MB in ` +
        `${o.valueBytes / 1024} KB messages, handler ${o.handlerMs} ms at concurrency ${o.concurrency}, ` +
        `${o.durationMs / 1000} s per run`,
    );
    lines.push('');
    lines.push(
      '| contender | msg/s | peak messages held | peak RSS MB | peak heap MB | peak external MB | RSS MB at 25/50/75/100% | heap MB at 25/50/75/100% |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of s3) {
      const held = c.extra['peakQueuedMessages'] ?? c.extra['peakInFlight'];
      lines.push(
        `| ${c.label} | ${int(c.rate.median)} | ${held == null ? 'n/a' : int(held)} | ` +
          `${MB(c.peakRss.median)} (max ${MB(c.peakRss.max)}) | ` +
          `${MB(c.peakHeapUsed.median)} | ${MB(c.peakExternal.median)} | ` +
          `${c.rssAt.map(MB).join(' / ')} | ${c.heapUsedAt.map(MB).join(' / ')} |`,
      );
    }
    const lib = s3.find((c) => !c.reference);
    if (lib) {
      // Flat: after the first half (allocator and heap warm-up), RSS grows by
      // at most 10%.
      const growth = (lib.rssAt[3]! - lib.rssAt[1]!) / lib.rssAt[1]!;
      targets.push({
        target:
          '3. library peak RSS < 250 MB and flat over the run (≤ 10% growth over the second half)',
        figure:
          `peak ${MB(lib.peakRss.max)} MB (max of rounds); RSS ${growth >= 0 ? '+' : ''}` +
          `${fixed(growth * 100, 0)}% from 50% to 100% of the run`,
        met: lib.peakRss.max < 250 * 2 ** 20 && Math.abs(growth) <= 0.1,
      });
    }
  }
  const s4 = summaries.reaction;
  if (s4) {
    const r = plan.reaction;
    const jump = s4.find((c) => c.id === 'latency-jump');
    const breaker = s4.find((c) => c.id === 'breaker');
    const jumpDef = plan.contenders.reaction.find((d) => d.id === 'latency-jump')!;
    const breakerDef = plan.contenders.reaction.find((d) => d.id === 'breaker')!;
    lines.push('');
    lines.push(
      `#### 4. Reaction (key mode, concurrency 32; latency trigger ${JSON.stringify(jumpDef.library?.latency)}, ` +
        `adaptive concurrency ${JSON.stringify(jumpDef.library?.adaptiveConcurrency)}, circuit breaker ` +
        `${JSON.stringify(breakerDef.library?.circuitBreaker)} over its defaults; ` +
        `downstream ${r.fastMs} ms, then ${r.slowMs} ms or failing)`,
    );
    lines.push('');
    lines.push('| measure | ms (median) |');
    lines.push('|---|---:|');
    const row = (label: string, v: number | null | undefined) =>
      lines.push(`| ${label} | ${msCell(v)} |`);
    if (jump) {
      row(`latency ${r.fastMs} → ${r.slowMs} ms: first reaction`, jump.extra['jumpToReactionMs']);
      row('… concurrency limit lowered (AIMD)', jump.extra['jumpToConcurrencyDownMs']);
      row(
        '… latency.high (pause reason `latency` on every partition)',
        jump.extra['jumpToLatencyHighMs'],
      );
    }
    if (breaker) {
      row('downstream fails → circuit open', breaker.extra['failToOpenMs']);
      row('circuit open → every partition paused', breaker.extra['openToAllPausedMs']);
      row('downstream recovers → circuit half-open', breaker.extra['recoverToHalfOpenMs']);
      row('downstream recovers → circuit closed', breaker.extra['recoverToClosedMs']);
      row(
        `downstream recovers → full flow (≥ ${r.fullFlowFraction * 100}% of the warm-up rate)`,
        breaker.extra['recoverToFullFlowMs'],
      );
      row('… of which circuit closed → full flow', breaker.extra['closedToFullFlowMs']);
      lines.push(
        `| downstream calls while the circuit was open (count) | ${msCell(breaker.extra['downstreamCallsWhileOpen'])} |`,
      );
      targets.push({
        target: '4. reaction times (reported, no target)',
        figure:
          `latency jump ${msCell(jump?.extra['jumpToReactionMs'])} ms, open → paused ` +
          `${msCell(breaker.extra['openToAllPausedMs'])} ms, recovery → full flow ` +
          `${msCell(breaker.extra['recoverToFullFlowMs'])} ms`,
        met: null,
      });
    }
  }
  const spikes = s4?.filter((c) => c.id.startsWith('spike-')) ?? [];
  if (spikes.length > 0) {
    const r = plan.reaction;
    const capacity = (r.spikeSlots * 1000) / r.spikeBaseMs;
    lines.push('');
    lines.push(
      `#### 4b. Downstream spikes (unordered, concurrency 32, a backlog; ${r.fastMs} ms, then ` +
        `${r.spikeMs / 1000} s at the model, then ${r.fastMs} ms. Capacity model: ${r.spikeSlots} ` +
        `slots of ${r.spikeBaseMs} ms (${capacity.toFixed(1)} msg/s); fixed model: ${r.spikeBaseMs} ms ` +
        `per call. "settled": from ${r.spikeSettleMs / 1000} s into the spike)`,
    );
    lines.push('');
    lines.push(
      '| run | reaction ms | pauses in spike: first at → ended ms | lowest limit | limit at end | handler p50 / p95 settled ms | p95 whole spike ms | ' +
        'msg/s settled (whole spike) | end → pause over ms | end → full flow ms | lost |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of spikes) {
      const e = c.extra;
      lines.push(
        `| ${c.label} | ${msCell(e['reactionMs'])} | ${pausesCell(e)} | ${msCell(e['minLimitInSpike'])} | ` +
          `${msCell(e['limitAtSpikeEnd'])} | ${msCell(e['p50AfterSettleMs'])} / ${msCell(e['p95AfterSettleMs'])} | ` +
          `${msCell(e['p95SpikeMs'])} | ${fixed(e['settledRate'] ?? Number.NaN, 1)} (${fixed(e['spikeRate'] ?? Number.NaN, 1)}) | ` +
          `${msCell(e['endToResumeMs'])} | ${msCell(e['endToFullFlowMs'])} | ${msCell(e['lost'])} |`,
      );
    }
    const find = (id: string) => spikes.find((c) => c.id === id);
    for (const variant of ['limit', 'limit-pause', 'limit-pause-1s', 'limit-pause-high']) {
      const cap = find(`spike-capacity-${variant}`);
      if (cap) {
        const p95 = cap.extra['p95AfterSettleMs'] ?? Number.NaN;
        const settledRate = cap.extra['settledRate'] ?? Number.NaN;
        targets.push({
          target: `4b. capacity model, ${variant}: p95 ≤ 2× base and ≥ 90% of capacity after ${r.spikeSettleMs / 1000} s; 0 lost`,
          figure: `p95 ${msCell(p95)} ms (≤ ${2 * r.spikeBaseMs}), ${fixed(settledRate, 1)} msg/s = ${fixed((settledRate / capacity) * 100, 0)}% of ${capacity.toFixed(1)}, lost ${msCell(cap.extra['lost'])}`,
          met: p95 <= 2 * r.spikeBaseMs && settledRate >= 0.9 * capacity && cap.extra['lost'] === 0,
        });
      }
      const fix = find(`spike-fixed-${variant}`);
      const without = find('spike-fixed-without');
      if (fix && without) {
        const a = fix.extra['spikeRate'] ?? Number.NaN;
        const b = without.extra['spikeRate'] ?? Number.NaN;
        targets.push({
          target: `4b. fixed model, ${variant}: throughput ≥ 90% of the same settings without the features; 0 lost`,
          figure: `${fixed(a, 1)} vs ${fixed(b, 1)} msg/s over the spike = ${fixed((a / b) * 100, 0)}%, lost ${msCell(fix.extra['lost'])}`,
          met: a >= 0.9 * b && fix.extra['lost'] === 0,
        });
      }
    }
  }
  const s5 = summaries.producer;
  if (s5) {
    const o = plan.producer;
    lines.push('');
    lines.push(`#### 5. Producer: ${producerSettings()}`);
    const rateOf = (c: ContenderSummary) =>
      plan.contenders.producer.find((d) => d.id === c.id)?.rateTarget;
    const throughput = s5.filter((c) => rateOf(c) === undefined);
    const rated = s5.filter((c) => rateOf(c) !== undefined);
    if (throughput.length > 0) {
      lines.push('');
      lines.push(
        '| contender, no limit | msg/s (median) | range | ratio to KafkaJS, same sends | requests | messages per request | mean requests in flight | peak RSS MB |',
      );
      lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
      for (const c of throughput) {
        const base = c.reference || throughput.some((o) => o.versus === c.id);
        lines.push(
          `| ${c.label} | ${int(c.rate.median)} | ${int(c.rate.min)}–${int(c.rate.max)} | ` +
            `${base ? '1.00' : fixed(c.ratio)} | ${int(c.extra['requests'] ?? Number.NaN)} | ` +
            `${fixed(c.extra['messagesPerRequest'], 1)} | ${fixed(c.extra['meanInFlight'], 1)} | ` +
            `${MB(c.peakRss.median)} |`,
        );
      }
    }
    const pct = (x: number | null | undefined, d = 2) =>
      x === null || x === undefined || !Number.isFinite(x)
        ? 'n/a'
        : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(d)}%`;
    const worst = (xs: readonly number[] | undefined) =>
      xs === undefined || xs.length === 0
        ? Number.NaN
        : xs.reduce((w, x) => (Math.abs(x) > Math.abs(w) ? x : w), 0);
    if (rated.length > 0) {
      lines.push('');
      lines.push(
        `| contender, rate limited | target msg/s | at the broker msg/s (median) | error | worst round | ` +
          `from the first append | broker slowest–fastest 1 s | handed to KafkaJS msg/s | error | ` +
          `acknowledged msg/s | messages per request |`,
      );
      lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const c of rated) {
        lines.push(
          `| ${c.label} | ${int(rateOf(c) ?? Number.NaN)} | ` +
            `${fixed(c.extra['brokerRate'], 1)} | ${pct(c.extra['brokerError'])} | ` +
            `${pct(worst(c.extraAll['brokerError']))} | ${pct(c.extra['brokerErrorFromFirstAppend'])} | ` +
            `${int(c.extra['brokerSlowestSecond'] ?? Number.NaN)}–${int(c.extra['brokerFastestSecond'] ?? Number.NaN)} | ` +
            `${fixed(c.extra['sentRate'], 1)} | ${pct(c.extra['sentError'])} | ` +
            `${fixed(c.rate.median, 1)} | ${fixed(c.extra['messagesPerRequest'], 1)} |`,
        );
      }
    }
    for (const c of rated) {
      const errors = c.extraAll['brokerError'] ?? [];
      targets.push({
        target:
          `5. producer at ${int(rateOf(c) ?? Number.NaN)} msg/s: rate at the broker (LogAppendTime) ` +
          `within 1% of the target, 1–${(o.rateWindowMs - 1000) / 1000} s after the first append (every round)`,
        figure:
          `${fixed(c.extra['brokerRate'], 1)} msg/s, error ${pct(c.extra['brokerError'])} ` +
          `(worst round ${pct(worst(errors))})`,
        met: errors.length === 0 ? null : errors.every((e) => Math.abs(e) < 0.01),
      });
    }
    const unlimited = s5.find((c) => c.id === 'lib-unlimited');
    if (unlimited)
      targets.push({
        target: '5. RateLimitedProducer with no limit ≥ 0.95 of a plain KafkaJS producer',
        figure: fixed(unlimited.ratio),
        met: unlimited.ratio === null ? null : unlimited.ratio >= 0.95,
      });
  }
  const s6 = summaries.fairness;
  if (s6) fairnessReport(s6, lines, targets);
  const s7 = summaries.bulk;
  if (s7) bulkReport(s7, lines, targets);
  if (targets.length > 0) {
    lines.push('');
    lines.push('#### Targets');
    lines.push('');
    lines.push('| target | figure | met |');
    lines.push('|---|---|---|');
    for (const t of targets)
      lines.push(`| ${t.target} | ${t.figure} | ${t.met === null ? '–' : t.met ? 'yes' : 'no'} |`);
  }
  lines.push('');
  return { markdown: lines.join('\n'), targets };
}

/**
 * Scenario 7: the same consumer against a bulk sink, one call per message
 * or per batch, each against the bound its costs allow at its concurrency.
 */
function bulkReport(s7: ContenderSummary[], lines: string[], targets: Target[]): void {
  const b = plan.bulk;
  const callsPerSecond = (size: number) => 1000 / (b.callMs + b.perMessageMs * size);
  const boundOf = (id: string) =>
    id === 'bulk-batch'
      ? b.concurrency * b.maxMessages * callsPerSecond(b.maxMessages)
      : b.concurrency * callsPerSecond(1);
  lines.push('');
  lines.push(
    `#### 7. Bulk sink: each call costs ${b.callMs} ms + ${b.perMessageMs} ms per message, ` +
      `concurrency ${b.concurrency}, ${b.keys} keys, ${b.partitions} partitions, ` +
      `at most ${b.durationMs / 1000} s per run`,
  );
  lines.push('');
  lines.push(
    '| contender | msg/s (median) | ratio to handler | bound msg/s | of bound | sink calls | mean messages per call |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const c of s7) {
    const bound = boundOf(c.id);
    lines.push(
      `| ${c.label} | ${int(c.rate.median)} | ${c.reference ? '1.00' : fixed(c.ratio, 1)} | ` +
        `${int(bound)} | ${fixed((c.rate.median / bound) * 100, 0)}% | ` +
        `${int(Number(c.extra['calls'] ?? Number.NaN))} | ${fixed(Number(c.extra['meanBatch'] ?? Number.NaN), 1)} |`,
    );
  }
  const batch = s7.find((c) => c.id === 'bulk-batch');
  if (batch) {
    const boundRatio = boundOf('bulk-batch') / boundOf('bulk-message');
    targets.push({
      target:
        `7. batchHandler (maxMessages ${b.maxMessages}) ≥ 20× the per-message handler at equal ` +
        `concurrency (the costs bound the ratio at ${fixed(boundRatio, 0)}×)`,
      figure: `${fixed(batch.ratio, 1)}× = ${fixed(((batch.ratio ?? Number.NaN) / boundRatio) * 100, 0)}% of the bound ratio`,
      met: batch.ratio === null ? null : batch.ratio >= 20,
    });
  }
}

/**
 * Scenario 6: one row per ordering mode and partitionsConsumedConcurrently,
 * the slow run against its baseline of the same round.
 */
function fairnessReport(s6: ContenderSummary[], lines: string[], targets: Target[]): void {
  const f = plan.fairness;
  lines.push('');
  lines.push(
    `#### 6. Fairness: partition 0's handler takes ${f.slowMs / 1000} s per message, the others ` +
      `are no-ops; ${f.partitions} partitions of ${int(f.perPartition)} messages, ${int(f.keys)} ` +
      `keys (each in one partition), concurrency ${f.concurrency}; partitions 1–${f.partitions - 1} ` +
      `counted until all are done or ${f.durationMs / 1000} s after their first message`,
  );
  lines.push('');
  lines.push(
    '| ordering | partitionsConsumedConcurrently (given to KafkaJS) | partitions 1–5 msg/s, all instant | with partition 0 slow | ratio | partitions 1–5 done, slow run | partition 0 slots held, mean / peak |',
  );
  lines.push('|---|---|---:|---:|---:|---:|---:|');
  const others = f.perPartition * (f.partitions - 1);
  for (const ordering of ORDERINGS) {
    for (const pcc of FAIRNESS_PCC) {
      const id = fairnessId(ordering, pcc);
      const base = s6.find((c) => c.id === `${id}-base`);
      const slow = s6.find((c) => c.id === `${id}-slow`);
      if (!base && !slow) continue;
      const given = slow?.extra['partitionsConsumedConcurrently'];
      const setting = `${pcc ?? 'not set'} (${int(given ?? Number.NaN)})`;
      lines.push(
        `| ${ordering} | ${setting} | ${int(base?.rate.median ?? Number.NaN)} | ` +
          `${int(slow?.rate.median ?? Number.NaN)} | ${fixed(slow?.ratio)} | ` +
          `${int(slow?.extra['othersDone'] ?? Number.NaN)} of ${int(others)} | ` +
          `${fixed(slow?.extra['partition0MeanActive'], 1)} / ` +
          `${int(slow?.extra['partition0PeakActive'] ?? Number.NaN)} |`,
      );
      if (slow)
        targets.push({
          target:
            `6. ${ordering} mode, partitionsConsumedConcurrently ${pcc ?? 'not set'}: ` +
            `partitions 1–5 with partition 0 slow ≥ 0.80 of their rate without`,
          figure: fixed(slow.ratio),
          met: slow.ratio === null ? null : slow.ratio >= 0.8,
        });
    }
  }
}

/** What scenario 5 ran, in one line: printed at its start and above its tables. */
function producerSettings(): string {
  const o = plan.producer;
  const d = PRODUCER_DEFAULTS;
  return (
    `${o.valueBytes} B values, ${int(o.keys)} keys, ${o.partitions} partitions; one KafkaJS ` +
    `producer per run at KafkaJS's defaults (acks -1, no compression, not idempotent, ` +
    `DefaultPartitioner), connected and warmed up by one send before the window. ` +
    `Each sender awaits its send before the next. No limit: plain \`producer.send\` or ` +
    `RateLimitedProducer at its defaults (maxInFlightRequests ${d.maxInFlightRequests}, ` +
    `maxBatchMessages ${d.maxBatchMessages}, lingerMs ${d.lingerMs}), ${int(o.messages)} ` +
    `messages or ${o.maxRunMs / 1000} s, whichever comes first. Rate limited: messagesPerSecond ` +
    `set, other options at their defaults, ${o.rateWindowMs / 1000} s from the first send; ` +
    `"at the broker" counts messages whose broker append time (the topic is LogAppendTime) ` +
    `falls 1 to ${(o.rateWindowMs - 1000) / 1000} s after the first one's; "handed to KafkaJS" ` +
    `counts messages passed to producer.send in the client's window`
  );
}

// ------------------------------------------------------------------ main

const loadStart = loadavg().slice(0, 2);
const setupSeconds: Partial<Record<ScenarioName, number>> = {};

/** The commit benchmarked: taken when the library is built, not when the report is written. */
let commit = '';

async function main(): Promise<void> {
  const started = performance.now();
  commit = gitDescribe();
  if (!flags.tsx) libPath = await buildLibrary();
  log(
    `scenarios ${scenarios.join(', ')}; ${plan.rounds} round(s)${plan.quick ? ', quick' : ''}; ` +
      `brokers ${brokers.join(',')}; library ${libPath}`,
  );
  const raw: Partial<Record<ScenarioName, ContenderResult[]>> = {};
  const summaries: Partial<Record<ScenarioName, ContenderSummary[]>> = {};
  for (const scenario of scenarios) {
    const t = performance.now();
    raw[scenario] = await runScenario(scenario);
    summaries[scenario] = summarize(scenario, raw[scenario]);
    log(`${scenario} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const { markdown, targets } = report(summaries);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = {
    when: new Date().toISOString(),
    commit,
    machine: machine(),
    loadavg: { start: loadStart, end: loadavg().slice(0, 2) },
    flags,
    library: { entry: libEntry, loaded: libPath, via: flags.tsx ? 'tsx' : 'esbuild bundle' },
    plan,
    setupSeconds,
    totalSeconds: Math.round((performance.now() - started) / 1000),
    targets,
    summaries,
    runs: raw,
  };
  writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(RESULTS_DIR, 'latest.md'), markdown);
  process.stdout.write(`\n${markdown}\n`);
  log(
    `done in ${json.totalSeconds} s; wrote bench/results/latest.json and bench/results/latest.md`,
  );
  // Profiles are mapped back to src/ through the bundle's source map: keep it then.
  if (libPath !== libEntry && !flags.profile) {
    rmSync(libPath, { force: true });
    rmSync(`${libPath}.map`, { force: true });
  }
  const failed = Object.values(raw).some((rs) => rs.some((r) => !r.ok));
  process.exit(failed ? 1 : 0);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
