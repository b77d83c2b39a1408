#!/usr/bin/env node
// A real single-node Apache Kafka broker (KRaft) for tests, benchmarks and the
// demo, without Docker: the broker classpath comes from Maven Central (see
// scripts/kafka/pom.xml) and runs under the local `java`.
//
// Module API: ensureJars, startBroker, stopBroker, isAlive, readState.
// CLI:        node scripts/kafka.mjs start | stop | status | jars | run -- <command...>
//
// Plain ESM on purpose: it must run before anything is built or transpiled.

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants as osConstants, homedir, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SCRIPTS_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(SCRIPTS_DIR, '..');
const POM = join(SCRIPTS_DIR, 'kafka', 'pom.xml');
export const STATE_FILE = join(REPO_ROOT, '.kafka', 'state.json');

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
// A cold Maven cache on a slow CI runner pulls ~100 MB of jars; generous, but bounded.
const MVN_TIMEOUT_MS = 15 * 60_000;
const FORMAT_TIMEOUT_MS = 60_000;

const INSTALL_HINT =
  'install a JDK 17 and Maven, e.g. `apt-get install openjdk-17-jre-headless maven` ' +
  '(or `brew install openjdk@17 maven`), or point KAFKA_BROKERS at an existing broker ' +
  '(docker compose up -d)';

// ---------------------------------------------------------------------------
// small utilities

function makeLog(log) {
  if (log === false) return () => {};
  if (typeof log === 'function') return log;
  return (msg) => process.stderr.write(`[kafka] ${msg}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seconds = (startMs) => `${((performance.now() - startMs) / 1000).toFixed(1)}s`;

/**
 * Runs a command to completion with a hard timeout, so a stuck `mvn` or JVM
 * never hangs the caller. Resolves with { code, signal, output }.
 */
function runCommand(cmd, args, { timeoutMs, cwd, env } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk) => {
      output += chunk;
      // Only the tail is ever shown; don't let a chatty tool grow memory unbounded.
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\n${tail(output)}`),
        );
      } else {
        resolvePromise({ code, signal, output });
      }
    });
  });
}

function tail(text, lines = 40) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function readTail(file, lines = 40) {
  try {
    return tail(readFileSync(file, 'utf8'), lines);
  } catch {
    return '(no log output)';
  }
}

/**
 * The log lines worth showing when startup fails. A failing broker's last
 * lines are its orderly shutdown; the cause (e.g. "Address already in use")
 * is an ERROR/FATAL line further up, so those come first.
 */
function startupDiagnosis(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '(no log output)';
  }
  const errors = text
    .split('\n')
    .filter((l) => /\b(ERROR|FATAL)\b|Exception/.test(l))
    .slice(0, 10);
  const summary = errors.length ? `first errors:\n${errors.join('\n')}\nlast lines:\n` : '';
  return summary + tail(text, 15);
}

const HAS_PROC = existsSync('/proc/self/stat');

/**
 * True if the process exists and is not a zombie. kill(pid, 0) alone reports
 * zombies as alive, and in containers whose PID 1 does not reap orphans a dead
 * broker can stay a zombie forever, which would make `stop` wait in vain.
 */
export function isAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  if (!HAS_PROC) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Guards against signalling an unrelated process that reused a recorded pid. */
function isKafkaProcess(pid) {
  if (!isAlive(pid)) return false;
  if (!HAS_PROC) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kafka.Kafka');
  } catch {
    return false;
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function waitForDeath(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Two distinct free ports, held open together so the OS cannot hand out the same one twice. */
async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise((res, rej) => {
        server.once('error', rej);
        server.listen(0, '127.0.0.1', res);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(() => res()))));
  }
}

// ---------------------------------------------------------------------------
// tool checks and jars

function javaBinary() {
  // Same convention as Kafka's own bin/kafka-run-class.sh.
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

function checkTool(cmd, what) {
  const r = spawnSync(cmd, ['-version'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error?.code === 'ENOENT') {
    throw new Error(
      `\`${cmd}\` was not found (${what} is needed to run a local Kafka broker): ${INSTALL_HINT}`,
    );
  }
  if (r.error) throw new Error(`\`${cmd} -version\` failed: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(
      `\`${cmd} -version\` exited with ${r.status}: ${tail(`${r.stdout}${r.stderr}`, 5)}`,
    );
  }
  return `${r.stdout}${r.stderr}`;
}

function checkJava() {
  const java = javaBinary();
  const out = checkTool(java, 'Java 17');
  // `java -version` prints e.g. `openjdk version "17.0.15"` or, for Java 8, `"1.8.0_402"`.
  const m = /version "(\d+)(?:\.(\d+))?/.exec(out);
  if (m) {
    const major = m[1] === '1' ? Number(m[2]) : Number(m[1]);
    if (major < 11) {
      throw new Error(
        `Java ${major} is too old for Kafka 3.9 (needs 11+, 17 recommended): ${INSTALL_HINT}`,
      );
    }
  }
  return java;
}

function pomInfo() {
  const text = readFileSync(POM, 'utf8');
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(text)?.[1];
  if (!version) throw new Error(`cannot find <kafka.version> in ${POM}`);
  // Editing the pom (a new version, another logging jar) must invalidate the cache.
  const fingerprint = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { version, fingerprint };
}

/** Folder that holds (or will hold) the jars; exported for diagnostics. */
export function jarsDir() {
  const { version } = pomInfo();
  // The env var names a cache *root* that we own a sub-folder of, never the
  // folder itself: ensureJars deletes incomplete folders, and pointing the
  // variable at e.g. $HOME must not make that destructive.
  const root =
    process.env.KAFKA_BACKPRESSURE_CACHE || join(homedir(), '.cache', 'kafkajs-backpressure');
  return join(resolve(root), `kafka-${version}`);
}

const MARKER = '.complete';

function isComplete(dir, fingerprint) {
  try {
    return readFileSync(join(dir, MARKER), 'utf8').trim() === fingerprint;
  } catch {
    return false;
  }
}

/**
 * Returns the path of a folder holding every jar the broker needs, fetching
 * them with Maven on first use. The download lands in a temporary sibling
 * folder that is renamed into place only once complete (with a marker file
 * written before the rename), so an interrupted fetch is never mistaken for a
 * usable cache and concurrent callers never see a half-filled folder.
 */
export async function ensureJars({ log } = {}) {
  const say = makeLog(log);
  const { version, fingerprint } = pomInfo();
  const dir = jarsDir();
  if (isComplete(dir, fingerprint)) return dir;

  checkTool('mvn', 'Maven');
  const started = performance.now();
  say(`fetching Kafka ${version} jars from Maven Central into ${dir} ...`);
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const staging = join(
    parent,
    `.${basename(dir)}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`,
  );
  try {
    const r = await runCommand(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        POM,
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${staging}`,
      ],
      { timeoutMs: MVN_TIMEOUT_MS },
    );
    if (r.code !== 0) {
      throw new Error(
        `mvn dependency:copy-dependencies failed (exit ${r.code}):\n${tail(r.output)}`,
      );
    }
    const jars = readdirSync(staging).filter((f) => f.endsWith('.jar'));
    if (!jars.some((f) => f.startsWith(`kafka_2.13-${version}`))) {
      throw new Error(`mvn finished but kafka_2.13-${version}.jar is missing from ${staging}`);
    }
    writeFileSync(join(staging, MARKER), `${fingerprint}\n`);

    if (existsSync(dir)) {
      if (isComplete(dir, fingerprint)) {
        // Another process finished first; keep theirs.
        say(`jars were fetched concurrently by another process; using ${dir}`);
        return dir;
      }
      // Stale (older pom) or incomplete: move aside first so the swap below stays a single rename.
      const old = `${staging}.old`;
      renameSync(dir, old);
      rmSync(old, { recursive: true, force: true });
    }
    try {
      renameSync(staging, dir);
    } catch (err) {
      if (isComplete(dir, fingerprint)) return dir; // lost a race, equally fine
      throw err;
    }
    say(`fetched ${jars.length} jars in ${seconds(started)}`);
    return dir;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// broker configuration

function serverProperties({ port, controllerPort, logDirs, extra = {} }) {
  const props = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    // Static voters: the format step then needs no --standalone / --initial-controllers.
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': logDirs,
    // A single node cannot satisfy the default replication factor of 3 for
    // internal topics; without these the group coordinator never comes up.
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    // Fewer internal partitions = faster first FindCoordinator / InitProducerId.
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.num.partitions': 1,
    // Otherwise every first join waits 3 s for more members.
    'group.initial.rebalance.delay.ms': 0,
    // Lets fault tests use short session timeouts to provoke rebalances quickly.
    'group.min.session.timeout.ms': 1000,
    // Tests create topics explicitly; a typo must fail instead of silently creating a topic.
    'auto.create.topics.enable': false,
    'num.partitions': 1,
    // Test data is thrown away with the temp dir; never let retention race a test.
    'log.retention.ms': -1,
    'log.retention.bytes': -1,
    // After a crash (kill()/SIGKILL) the restarted broker cannot register
    // until the restarted controller has timed out the dead incarnation's
    // session (default 9 s, then registration backoff: restart took ~18 s).
    // 6 s cuts that to ~12 s and still tolerates 5 missed heartbeats on a
    // loaded 2-core machine. A graceful stop/restart is not affected (~4 s).
    'broker.session.timeout.ms': 6000,
    'broker.heartbeat.interval.ms': 1000,
    ...extra,
  };
  return (
    '# Generated by scripts/kafka.mjs; rewritten on every start.\n' +
    Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') +
    '\n'
  );
}

// INFO is kept for the broker itself (the log is the only post-mortem for a
// failed test run); per-request and state-change chatter is turned down.
const LOG4J_PROPERTIES = `log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
`;

/** Kafka's Uuid.randomUuid(): 16 random bytes in base64url, never starting with '-' (CLI parsing). */
function randomClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function javaArgs({ libs, heapMb, log4j, mainClass, args }) {
  return [
    `-Xms${Math.min(256, heapMb)}m`,
    `-Xmx${heapMb}m`,
    '-XX:+UseG1GC',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=${pathToFileURL(log4j).href}`,
    '-cp',
    // The JVM expands the wildcard itself; no shell involved.
    join(libs, '*'),
    mainClass,
    ...args,
  ];
}

async function formatStorage({ java, libs, dataDir, propsFile, log4j }) {
  const clusterId = randomClusterId();
  const r = await runCommand(
    java,
    javaArgs({
      libs,
      heapMb: 256,
      log4j,
      mainClass: 'kafka.tools.StorageTool',
      args: ['format', '-t', clusterId, '-c', propsFile],
    }),
    { timeoutMs: FORMAT_TIMEOUT_MS, cwd: dataDir },
  );
  if (r.code !== 0) {
    throw new Error(`kafka StorageTool format failed (exit ${r.code}):\n${tail(r.output)}`);
  }
  return clusterId;
}

// ---------------------------------------------------------------------------
// lifetime guards: never leave a broker behind when the owning process dies

const live = new Set();
let exitHookInstalled = false;
let signalHooksInstalled = false;

function onProcessExit() {
  // 'exit' handlers must be synchronous, so there is no time for a graceful
  // shutdown: SIGKILL is the only way to be sure the JVM is gone.
  for (const broker of live) broker._killSync();
}

function onSignal(sig) {
  const stops = Promise.allSettled([...live].map((b) => b.stop()));
  // Someone else (vitest, the `run` CLI, the application) also handles this
  // signal and decides when to exit; our 'exit' hook kills whatever is left.
  if (process.listenerCount(sig) > 1) return;
  const code = 128 + (osConstants.signals[sig] ?? 1);
  Promise.race([stops, sleep(STOP_TIMEOUT_MS + 5000)]).finally(() => process.exit(code));
}

function syncHooks() {
  if (live.size > 0 && !exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', onProcessExit);
  }
  const wantSignals = [...live].some((b) => b._handleSignals);
  if (wantSignals && !signalHooksInstalled) {
    // Prepended so onSignal sees everyone else's listeners: a `once` listener
    // (vitest uses those) is already removed by the time later listeners run.
    process.prependListener('SIGINT', onSignal);
    process.prependListener('SIGTERM', onSignal);
  } else if (!wantSignals && signalHooksInstalled) {
    // Restore default Ctrl-C behaviour once nothing needs protecting.
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  signalHooksInstalled = wantSignals;
}

function track(broker) {
  live.add(broker);
  syncHooks();
}

function untrack(broker) {
  live.delete(broker);
  syncHooks();
}

// Runs as a separate, detached node process. It covers the one case an 'exit'
// handler cannot: the owning process being SIGKILLed (OOM killer, a CI
// runner's hard timeout, `kill -9` on vitest).
const WATCHDOG_SOURCE = `
const [owner, broker] = process.argv.slice(1, 3).map(Number);
const dir = process.argv[3] || '';
const fs = require('node:fs');
const alive = (pid) => {
  try { process.kill(pid, 0); } catch (e) { return e.code === 'EPERM'; }
  try {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const st = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    return st !== 'Z' && st !== 'X';
  } catch { return !fs.existsSync('/proc/self/stat'); }
};
const timer = setInterval(() => {
  if (!alive(broker)) process.exit(0);
  if (alive(owner)) return;
  clearInterval(timer);
  try { process.kill(broker, 'SIGCONT'); process.kill(broker, 'SIGTERM'); } catch {}
  const deadline = Date.now() + 15000;
  const wait = setInterval(() => {
    if (alive(broker) && Date.now() < deadline) return;
    clearInterval(wait);
    try { process.kill(broker, 'SIGKILL'); } catch {}
    if (dir) setTimeout(() => { try { fs.rmSync(dir, { recursive: true, force: true }); } catch {} process.exit(0); }, 500);
    else process.exit(0);
  }, 200);
}, 1000);
`;

function startWatchdog(ownerPid, brokerPid, removeDir) {
  const child = spawn(
    process.execPath,
    ['-e', WATCHDOG_SOURCE, String(ownerPid), String(brokerPid), removeDir ?? ''],
    { detached: true, stdio: 'ignore' },
  );
  child.on('error', () => {}); // best effort; the 'exit' hook still covers the common cases
  child.unref();
}

// ---------------------------------------------------------------------------
// the broker

/**
 * Starts a single-node KRaft broker and resolves once a client can talk to it.
 *
 * Options: port, controllerPort (free ones are picked otherwise), dataDir (a
 * fresh temp dir otherwise; an already formatted dir is reused as is, and the
 * ports it last ran with are reused unless given), heapMb (512), log (function
 * or false), readyTimeoutMs (60000), detached (leave the broker running after
 * this process exits: used by `kafka.mjs start`), handleSignals (true: stop
 * the broker on SIGINT/SIGTERM, exiting if nobody else handles the signal),
 * watchdog (true: a helper process kills the broker if this process is
 * SIGKILLed), serverProps (extra/overriding server.properties entries).
 *
 * The handle: brokers, port, controllerPort, dataDir, logFile, pid, clusterId,
 * stop({ keepData }), kill(signal), restart(), pause(), resume().
 */
export async function startBroker(options = {}) {
  const say = makeLog(options.log);
  const heapMb = options.heapMb ?? 512;
  const detached = options.detached ?? false;
  // Even a detached broker is guarded while it starts: an interrupted
  // `kafka.mjs start` must not leave a half-started JVM behind.
  const handleSignals = options.handleSignals ?? true;
  const useWatchdog = !detached && (options.watchdog ?? true);
  const readyTimeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;

  const java = checkJava();
  const jarFetchStart = performance.now();
  const libs = await ensureJars({ log: say });
  const jarMs = performance.now() - jarFetchStart;

  const ownsDataDir = !options.dataDir;
  const dataDir = options.dataDir
    ? resolve(options.dataDir)
    : await mkdtemp(join(tmpdir(), 'kafkajs-bp-broker-'));
  mkdirSync(dataDir, { recursive: true });
  const logDirs = join(dataDir, 'kraft-logs');
  const propsFile = join(dataDir, 'server.properties');
  const log4j = join(dataDir, 'log4j.properties');
  const logFile = join(dataDir, 'broker.log');
  const infoFile = join(dataDir, 'broker.json');
  writeFileSync(log4j, LOG4J_PROPERTIES);

  let previous = null;
  try {
    previous = JSON.parse(readFileSync(infoFile, 'utf8'));
  } catch {
    // first start in this dir
  }
  const portsGiven = options.port != null || options.controllerPort != null || previous != null;

  const state = {
    port: options.port ?? previous?.port,
    controllerPort: options.controllerPort ?? previous?.controllerPort,
    clusterId: previous?.clusterId,
    child: null,
    exited: null,
    stopping: null,
  };

  async function pickPorts() {
    const [a, b] = await freePorts(2);
    state.port = options.port ?? a;
    state.controllerPort = options.controllerPort ?? (b === state.port ? a : b);
  }

  if (state.port == null || state.controllerPort == null) await pickPorts();

  async function launch() {
    writeFileSync(
      propsFile,
      serverProperties({
        port: state.port,
        controllerPort: state.controllerPort,
        logDirs,
        extra: options.serverProps,
      }),
    );
    if (!existsSync(join(logDirs, 'meta.properties'))) {
      // Formatting an already formatted dir with a new cluster id fails, and
      // reusing the old one is the point of passing dataDir: only format once.
      state.clusterId = await formatStorage({ java, libs, dataDir, propsFile, log4j });
    }
    writeFileSync(
      infoFile,
      JSON.stringify({
        port: state.port,
        controllerPort: state.controllerPort,
        clusterId: state.clusterId,
      }),
    );

    // A log file rather than pipes: pipes would fill up (and block the JVM) once
    // nobody reads them, e.g. after `kafka.mjs start` has returned.
    const fd = openSync(logFile, 'a');
    let child;
    try {
      child = spawn(
        java,
        javaArgs({ libs, heapMb, log4j, mainClass: 'kafka.Kafka', args: [propsFile] }),
        // Always its own process group: a terminal Ctrl-C must not reach the JVM
        // directly, so the owner decides the order of shutdown (clients first).
        { cwd: dataDir, detached: true, stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    await new Promise((res, rej) => {
      child.once('spawn', res);
      child.once('error', rej);
    });
    state.child = child;
    state.exited = new Promise((res) => child.once('exit', (code, sig) => res({ code, sig })));
    // Don't let an un-stopped broker keep the event loop alive; the 'exit' hook kills it.
    child.unref();
    track(handle);
    if (useWatchdog) startWatchdog(process.pid, child.pid, ownsDataDir ? dataDir : null);
    await waitUntilReady();
  }

  async function waitUntilReady() {
    const { Kafka, logLevel } = (await import('kafkajs')).default;
    const deadline = Date.now() + readyTimeoutMs;
    let exitInfo = null;
    state.exited.then((info) => (exitInfo = info));
    let lastError = null;
    while (true) {
      if (exitInfo) {
        throw new Error(
          `Kafka broker exited during startup (code ${exitInfo.code}, signal ${exitInfo.sig}); ` +
            `log ${logFile}:\n${startupDiagnosis(logFile)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Kafka broker on 127.0.0.1:${state.port} not ready after ${readyTimeoutMs} ms ` +
            `(last error: ${lastError?.message ?? 'none'}); log ${logFile}:\n${startupDiagnosis(logFile)}`,
        );
      }
      // A fresh client per attempt: KafkaJS caches failed connections/metadata.
      const admin = new Kafka({
        clientId: 'kafka-mjs-ready-check',
        brokers: [`127.0.0.1:${state.port}`],
        logLevel: logLevel.NOTHING,
        connectionTimeout: 1000,
        requestTimeout: 3000,
        retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        // An open port is not enough: the broker answers only once it has
        // registered with the (co-located) controller and been unfenced.
        const cluster = await admin.describeCluster();
        if (cluster.brokers.length > 0) return;
      } catch (err) {
        lastError = err;
      } finally {
        await admin.disconnect().catch(() => {});
      }
      await sleep(250);
    }
  }

  function killSync() {
    const pid = state.child?.pid;
    if (pid && state.child.exitCode === null && state.child.signalCode === null) {
      signal(pid, 'SIGKILL');
    }
    untrack(handle);
    if (ownsDataDir) {
      try {
        rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // best effort at exit
      }
    }
  }

  async function stopProcess(sig = 'SIGTERM', graceMs = STOP_TIMEOUT_MS) {
    const child = state.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      // A paused (SIGSTOPped) JVM would never act on SIGTERM.
      signal(child.pid, 'SIGCONT');
      signal(child.pid, sig);
      let timer;
      const timeout = new Promise((res) => (timer = setTimeout(res, graceMs, 'timeout')));
      const outcome = await Promise.race([state.exited, timeout]);
      // A pending 20 s timer would keep short-lived callers (the CLI) alive.
      clearTimeout(timer);
      if (outcome === 'timeout') {
        say(`broker pid ${child.pid} ignored ${sig} for ${graceMs} ms; sending SIGKILL`);
        signal(child.pid, 'SIGKILL');
        await state.exited;
      }
    }
    state.child = null;
    untrack(handle);
  }

  const handle = {
    get brokers() {
      return [`127.0.0.1:${state.port}`];
    },
    get port() {
      return state.port;
    },
    get controllerPort() {
      return state.controllerPort;
    },
    get pid() {
      return state.child?.pid ?? null;
    },
    get clusterId() {
      return state.clusterId;
    },
    dataDir,
    logFile,
    ownsDataDir,

    /**
     * Graceful shutdown (SIGTERM, SIGKILL after 20 s). Idempotent. Removes the
     * data dir if startBroker created it, unless keepData is set (to start
     * again on the same dir later with startBroker({ dataDir, port })).
     */
    stop({ keepData = false } = {}) {
      state.stopping ??= (async () => {
        await stopProcess();
        if (ownsDataDir && !keepData)
          await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
      })();
      return state.stopping;
    },

    /** Simulates a crash (SIGKILL by default); keeps the data dir for restart(). */
    async kill(sig = 'SIGKILL') {
      await stopProcess(sig, sig === 'SIGKILL' ? 5000 : STOP_TIMEOUT_MS);
    },

    /** Stops (if running) and starts again on the same ports and data. */
    async restart() {
      if (state.stopping) throw new Error('broker was stopped; start a new one instead');
      const started = performance.now();
      await stopProcess();
      await launch();
      say(`broker restarted on 127.0.0.1:${state.port} in ${seconds(started)}`);
      return handle;
    },

    /** Freezes the JVM (SIGSTOP): the broker keeps its sockets but answers nothing. */
    pause() {
      if (state.child) signal(state.child.pid, 'SIGSTOP');
    },
    resume() {
      if (state.child) signal(state.child.pid, 'SIGCONT');
    },

    _killSync: killSync,
    _handleSignals: handleSignals,
  };

  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      await stopProcess('SIGKILL', 5000).catch(() => {});
      // Ports picked here can be grabbed by someone else between probing and
      // the JVM binding them; retry with new ones rather than fail the run.
      const portClash = /Address already in use|BindException/.test(readTail(logFile, 200));
      if (portClash && !portsGiven && attempt < 3) {
        say(
          `port ${state.port}/${state.controllerPort} was taken meanwhile; retrying on new ports`,
        );
        await pickPorts();
        continue;
      }
      if (ownsDataDir) {
        // The data dir goes, but the log is the only post-mortem: keep a copy
        // and point the error message at it.
        const kept = join(tmpdir(), `kafkajs-bp-broker-failed-${Date.now()}.log`);
        try {
          renameSync(logFile, kept);
          err.message = err.message.split(logFile).join(kept);
        } catch {
          // no log was written (failed before the JVM started)
        }
        await rm(dataDir, { recursive: true, force: true }).catch(() => {});
      }
      throw err;
    }
  }
  // A detached broker belongs to nobody once it is up (`kafka.mjs stop` ends it).
  if (detached) untrack(handle);
  const jarNote = jarMs > 1000 ? ` (+${(jarMs / 1000).toFixed(1)}s fetching jars)` : '';
  say(
    `broker ready on 127.0.0.1:${state.port} in ${seconds(started)}${jarNote} (pid ${handle.pid}, log ${logFile})`,
  );
  return handle;
}

/**
 * Stops a broker given a handle from startBroker, a pid, or a state object
 * ({ pid, dataDir, ownsDataDir }) such as the one `kafka.mjs start` records.
 * Works for brokers started by other processes (no 'exit' event to wait on,
 * so it polls). Removes the data dir only when the state says we created it.
 */
export async function stopBroker(target, { log, timeoutMs = STOP_TIMEOUT_MS } = {}) {
  const say = makeLog(log);
  if (target && typeof target.stop === 'function') return target.stop();
  const st = typeof target === 'number' ? { pid: target } : (target ?? {});
  const pid = st.pid;
  if (pid && isKafkaProcess(pid)) {
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
    if (!(await waitForDeath(pid, timeoutMs))) {
      say(`broker pid ${pid} ignored SIGTERM for ${timeoutMs} ms; sending SIGKILL`);
      signal(pid, 'SIGKILL');
      await waitForDeath(pid, 5000);
    }
  }
  if (st.dataDir && st.ownsDataDir)
    await rm(st.dataDir, { recursive: true, force: true, maxRetries: 3 });
}

// ---------------------------------------------------------------------------
// CLI

export async function readState() {
  try {
    return JSON.parse(await readFile(STATE_FILE, 'utf8'));
  } catch {
    return null;
  }
}

async function cliStart() {
  const existing = await readState();
  if (existing && isKafkaProcess(existing.pid)) {
    process.stderr.write(
      `[kafka] broker already running (pid ${existing.pid}, log ${existing.logFile})\n`,
    );
    process.stdout.write(`KAFKA_BROKERS=${existing.brokers.join(',')}\n`);
    return 0;
  }
  const broker = await startBroker({ detached: true });
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  const state = {
    pid: broker.pid,
    brokers: broker.brokers,
    port: broker.port,
    controllerPort: broker.controllerPort,
    dataDir: broker.dataDir,
    ownsDataDir: broker.ownsDataDir,
    logFile: broker.logFile,
    startedAt: new Date().toISOString(),
  };
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  process.stderr.write(`[kafka] state in ${STATE_FILE}; stop with: node scripts/kafka.mjs stop\n`);
  process.stdout.write(`KAFKA_BROKERS=${broker.brokers.join(',')}\n`);
  return 0;
}

async function cliStop() {
  const state = await readState();
  if (!state) {
    process.stderr.write(`[kafka] no broker recorded in ${STATE_FILE}\n`);
    return 0;
  }
  const started = performance.now();
  const wasAlive = isKafkaProcess(state.pid);
  await stopBroker(state);
  rmSync(STATE_FILE, { force: true });
  process.stderr.write(
    wasAlive
      ? `[kafka] stopped broker pid ${state.pid} in ${seconds(started)}\n`
      : `[kafka] broker pid ${state.pid} was not running; cleaned up its state\n`,
  );
  return 0;
}

async function cliStatus() {
  const state = await readState();
  if (state && isKafkaProcess(state.pid)) {
    process.stdout.write(`KAFKA_BROKERS=${state.brokers.join(',')}\n`);
    return 0;
  }
  process.stderr.write('[kafka] no broker running\n');
  return 1;
}

function runChild(command, env) {
  // node_modules/.bin on PATH lets `run -- tsx bench/run.ts` work outside npm scripts too.
  const pathValue = [join(REPO_ROOT, 'node_modules', '.bin'), env.PATH ?? ''].join(delimiter);
  // A single argument with spaces is a shell snippet (`run -- "npm test && ..."`).
  const useShell = command.length === 1 && /\s/.test(command[0]);
  const child = spawn(command[0], command.slice(1), {
    stdio: 'inherit',
    env: { ...env, PATH: pathValue },
    shell: useShell,
  });
  const forward = (sig) => {
    // Like npm: pass the signal on and let the command decide how to end; the
    // broker is stopped only after it has exited (clients get to close first).
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((res) => {
    child.on('error', (err) => {
      process.stderr.write(`[kafka] cannot run ${command[0]}: ${err.message}\n`);
      res(127);
    });
    child.on('exit', (code, sig) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      res(code ?? 128 + (osConstants.signals[sig] ?? 1));
    });
  });
}

async function cliRun(command) {
  if (command.length === 0) {
    process.stderr.write('usage: node scripts/kafka.mjs run -- <command...>\n');
    return 2;
  }
  if (process.env.KAFKA_BROKERS) {
    process.stderr.write(`[kafka] using KAFKA_BROKERS=${process.env.KAFKA_BROKERS}\n`);
    return runChild(command, process.env);
  }
  // Signals are ours to sequence here (command first, then broker), so the
  // library's own handlers stay off; its 'exit' hook and watchdog remain.
  let interrupted = false;
  const markInterrupted = () => (interrupted = true);
  process.on('SIGINT', markInterrupted);
  process.on('SIGTERM', markInterrupted);
  const broker = await startBroker({ handleSignals: false });
  if (interrupted) {
    await broker.stop();
    return 130;
  }
  let code;
  try {
    code = await runChild(command, { ...process.env, KAFKA_BROKERS: broker.brokers.join(',') });
  } finally {
    const started = performance.now();
    await broker.stop();
    process.stderr.write(`[kafka] broker stopped in ${seconds(started)}\n`);
  }
  return code;
}

async function main(argv) {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'start':
      return cliStart();
    case 'stop':
      return cliStop();
    case 'status':
      return cliStatus();
    case 'jars': {
      const started = performance.now();
      const dir = await ensureJars();
      process.stderr.write(`[kafka] jars ready in ${seconds(started)}\n`);
      process.stdout.write(`${dir}\n`);
      return 0;
    }
    case 'run':
      return cliRun(rest[0] === '--' ? rest.slice(1) : rest);
    default:
      process.stderr.write(
        'usage: node scripts/kafka.mjs <start|stop|status|jars|run -- command...>\n' +
          '  start   start a background broker, record it in .kafka/state.json\n' +
          '  stop    stop the recorded broker and delete its data\n' +
          '  status  print KAFKA_BROKERS if the recorded broker is alive\n' +
          '  jars    fetch/cache the broker jars (CI warm-up), print their folder\n' +
          '  run     run a command with KAFKA_BROKERS set (starting a broker if unset)\n',
      );
      return cmd ? 2 : 0;
  }
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`[kafka] ${err?.message ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
