/**
 * One run of one contender, in a fresh process (started by bench/run.ts):
 * joins a new consumer group on a pre-produced topic, consumes until the
 * target count or the time limit, samples memory every 250 ms, writes a
 * ContenderResult to `spec.out` and exits. In the producer scenario it
 * produces to the scenario's topic instead.
 *
 *   node --import tsx bench/contender.ts '<ContenderSpec as JSON>'
 *
 * Throughput runs from the first message handled to the last one counted:
 * connecting and joining the group are excluded. Producers count from the
 * first send to the last acknowledgement; connecting and a first warm-up send
 * (topic metadata) are excluded.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Consumer,
  type KafkaMessage,
  type Message,
  type Producer,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';
import type {
  BackpressureConsumer,
  BackpressureConsumerOptions,
  InboundMessage,
} from '../src/index.js';
import {
  METRICS_SCRAPE_MS,
  type ContenderResult,
  type ContenderSpec,
  type LibraryOptions,
  type MemorySample,
  type MemoryStats,
} from './lib/plan.js';

type LibraryModule = typeof import('../src/index.js');

const spec = JSON.parse(process.argv[2] ?? '{}') as ContenderSpec;
const startedAt = performance.now();
const FIRST_MESSAGE_TIMEOUT_MS = 90_000;

/**
 * Counts handled messages; finishes at the target count or `durationMs` after
 * the start. The first message starts it, unless the run calls `start()`
 * earlier (the producer scenario starts at the first send).
 */
class Meter {
  count = 0;
  started = false;
  first = 0;
  /** Monotonic microseconds, the clock V8's CPU profiles use: the window the profile summary keeps. */
  firstUs = 0;
  endUs = 0;
  end = 0;
  measured = 0;
  finished = false;
  readonly #target: number;
  readonly #durationMs: number | undefined;
  readonly #onFirst: (() => void)[] = [];
  #resolve!: () => void;
  readonly done = new Promise<void>((resolve) => (this.#resolve = resolve));

  constructor(target: number, durationMs: number | undefined) {
    this.#target = target;
    this.#durationMs = durationMs;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.first = performance.now();
    this.firstUs = Number(process.hrtime.bigint() / 1000n);
    if (this.#durationMs !== undefined) setTimeout(() => this.finish(), this.#durationMs);
    for (const f of this.#onFirst) f();
  }

  hit(n = 1): void {
    if (!this.started) this.start();
    this.count += n;
    if (this.count >= this.#target) this.finish();
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.end = performance.now();
    this.endUs = Number(process.hrtime.bigint() / 1000n);
    this.measured = this.count;
    this.#resolve();
  }

  firstMessage(): Promise<void> {
    if (this.started) return Promise.resolve();
    return new Promise((resolve) => this.#onFirst.push(resolve));
  }
}

const meter = new Meter(spec.target, spec.durationMs);
const samples: MemorySample[] = [];
let probe: (() => { active: number; inFlight: number }) | undefined;
const extra: Record<string, number | string | boolean | null> = {};

function sample(): void {
  const m = process.memoryUsage();
  const p = probe?.();
  samples.push({
    t: meter.started ? performance.now() - meter.first : -1,
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    ...(p ? { active: p.active, inFlight: p.inFlight } : {}),
  });
}

const kafka = new Kafka({
  clientId: `bench-${spec.contender.id}`,
  brokers: spec.brokers,
  logLevel: logLevel.ERROR,
});

function newConsumer(): Consumer {
  // Same KafkaJS consumer settings (its defaults) for every contender.
  const consumer = kafka.consumer({ groupId: spec.groupId });
  // What reached KafkaJS, so a contender that leaves the option unset shows
  // the value the library chose.
  const run = consumer.run.bind(consumer);
  consumer.run = (config) => {
    extra['partitionsConsumedConcurrently'] = config?.partitionsConsumedConcurrently ?? 1;
    return run(config);
  };
  // Fetch round trips inside the measured window: a fetch that waits out
  // maxWaitTimeInMs (the broker's long poll) shows up as a slow fetch.
  let fetches = 0;
  let slowFetches = 0;
  let maxFetchMs = 0;
  consumer.on(consumer.events.FETCH, ({ payload }) => {
    if (!meter.started || meter.finished) return;
    fetches += 1;
    if (payload.duration >= 1000) slowFetches += 1;
    if (payload.duration > maxFetchMs) maxFetchMs = payload.duration;
    extra['fetches'] = fetches;
    extra['slowFetches'] = slowFetches;
    extra['maxFetchMs'] = maxFetchMs;
  });
  return consumer;
}

const handlerDelay = (): Promise<unknown> | undefined =>
  spec.handlerMs > 0 ? sleep(spec.handlerMs) : undefined;

/** The user's handler in scenarios 1-3: no-op or a timer, then counted. */
async function handle(_message: unknown): Promise<void> {
  const delay = handlerDelay();
  if (delay) await delay;
  meter.hit();
}

// ------------------------------------------------------------------ plain KafkaJS

async function runKafkaBatch(): Promise<() => Promise<void>> {
  const consumer = newConsumer();
  await consumer.connect();
  await consumer.subscribe({ topics: [spec.topic], fromBeginning: true });
  await consumer.run({
    // eachBatchAutoResolve and autoCommit at their defaults (true).
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const message of batch.messages) await handle(message);
      resolveOffset(batch.lastOffset());
      await heartbeat();
    },
  });
  return () => consumer.disconnect();
}

async function runKafkaMessage(): Promise<() => Promise<void>> {
  const consumer = newConsumer();
  await consumer.connect();
  await consumer.subscribe({ topics: [spec.topic], fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: spec.contender.partitionsConsumedConcurrently ?? 1,
    eachMessage: async ({ message }) => handle(message),
  });
  return () => consumer.disconnect();
}

/** The hand-rolled mistake: every batch goes into an unbounded queue, workers drain it. */
async function runNaiveQueue(): Promise<() => Promise<void>> {
  const consumer = newConsumer();
  const queue: (KafkaMessage | undefined)[] = [];
  let head = 0;
  let peakQueue = 0;
  let idle: (() => void)[] = [];
  let stopped = false;
  const wakeAll = () => {
    const waiting = idle;
    idle = [];
    for (const wake of waiting) wake();
  };
  const worker = async () => {
    while (!stopped) {
      if (head < queue.length) {
        const message = queue[head];
        queue[head++] = undefined; // done messages are garbage; the backlog is not
        await handle(message);
      } else {
        await new Promise<void>((resolve) => idle.push(resolve));
      }
    }
  };
  for (let i = 0; i < (spec.contender.workers ?? 16); i++) void worker();
  probe = () => ({ active: 0, inFlight: queue.length - head });
  await consumer.connect();
  await consumer.subscribe({ topics: [spec.topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) queue.push(message);
      if (queue.length - head > peakQueue) peakQueue = queue.length - head;
      wakeAll();
    },
  });
  return async () => {
    extra['peakQueuedMessages'] = peakQueue;
    stopped = true;
    wakeAll();
    await consumer.disconnect();
  };
}

// ------------------------------------------------------------------ the library

async function loadLibrary(): Promise<LibraryModule> {
  return (await import(pathToFileURL(spec.libPath).href)) as LibraryModule;
}

function libraryOptions(
  handler: (message: InboundMessage) => Promise<void>,
): BackpressureConsumerOptions {
  const o: LibraryOptions = spec.contender.library ?? {};
  return { topics: [spec.topic], fromBeginning: true, handler, ...o };
}

async function startLibrary(
  handler: (message: InboundMessage) => Promise<void>,
  beforeStart?: (lib: BackpressureConsumer, module: LibraryModule) => Promise<void>,
): Promise<{ lib: BackpressureConsumer; consumer: Consumer }> {
  const module = await loadLibrary();
  const consumer = newConsumer();
  const lib = new module.BackpressureConsumer(consumer, libraryOptions(handler));
  if (beforeStart) await beforeStart(lib, module);
  lib.on('consumer.error', ({ error, during }) => {
    extra['errors'] = Number(extra['errors'] ?? 0) + 1;
    extra['lastError'] = `${during}: ${error.message}`;
  });
  probe = () => ({ active: lib.activeHandlers, inFlight: lib.inFlight });
  await lib.start();
  return { lib, consumer };
}

async function runLibrary(): Promise<() => Promise<void>> {
  let metrics: Metrics | undefined;
  const { lib } = await startLibrary(handle, async (lib, module) => {
    if (spec.contender.metrics) metrics = await registerMetrics(lib, module);
  });
  const tracing = spec.contender.tracing ? subscribeTracing(await loadLibrary()) : undefined;
  let queueFull = 0;
  lib.on('queue.full', () => (queueFull += 1));
  let commits = 0;
  lib.on('offsets.committed', () => (commits += 1));
  return async () => {
    extra['commits'] = commits;
    extra['peakInFlight'] = lib.peakInFlight;
    extra['peakInFlightBytes'] = lib.peakInFlightBytes;
    extra['queueFullEvents'] = queueFull;
    if (metrics) await metrics.stop();
    await lib.close({ drainTimeoutMs: 1000 });
    tracing?.stop();
  };
}

/**
 * Scenario 7: a bulk sink whose every call costs `callMs` plus
 * `perMessageMs` per message, called once per message (`handler`) or once
 * per batch (`batchHandler`) by the same consumer at the same concurrency.
 */
async function runBulk(): Promise<() => Promise<void>> {
  const cost = spec.bulk!;
  const sink = (messages: number): Promise<unknown> =>
    sleep(cost.callMs + cost.perMessageMs * messages);
  let calls = 0;
  let delivered = 0;
  const module = await loadLibrary();
  const consumer = newConsumer();
  const base = { topics: [spec.topic], fromBeginning: true, ...(spec.contender.library ?? {}) };
  const options: BackpressureConsumerOptions =
    spec.contender.bulk === 'batch'
      ? {
          ...base,
          batchHandler: async (messages) => {
            calls += 1;
            delivered += messages.length;
            await sink(messages.length);
            meter.hit(messages.length);
          },
        }
      : {
          ...base,
          handler: async () => {
            calls += 1;
            delivered += 1;
            await sink(1);
            meter.hit();
          },
        };
  const lib = new module.BackpressureConsumer(consumer, options);
  lib.on('consumer.error', ({ error, during }) => {
    extra['errors'] = Number(extra['errors'] ?? 0) + 1;
    extra['lastError'] = `${during}: ${error.message}`;
  });
  probe = () => ({ active: lib.activeHandlers, inFlight: lib.inFlight });
  await lib.start();
  return async () => {
    extra['calls'] = calls;
    extra['meanBatch'] = calls > 0 ? Math.round((delivered / calls) * 10) / 10 : 0;
    await lib.close({ drainTimeoutMs: 1000 });
  };
}

/**
 * A tracer's worth of subscription at the least cost of its own: no-op
 * functions on every event of every tracing channel, and a count of the
 * handler attempts seen (the proof that the traced path ran).
 */
function subscribeTracing(module: LibraryModule): { stop(): void } {
  let attempts = 0;
  const noop = (): void => {};
  const subscriptions = Object.values(module.TRACING_CHANNELS).map((name) => {
    const channel = tracingChannel(name);
    const handlers = {
      start: name === module.TRACING_CHANNELS.handle ? () => (attempts += 1) : noop,
      end: noop,
      asyncStart: noop,
      asyncEnd: noop,
      error: noop,
    };
    channel.subscribe(handlers);
    return () => channel.unsubscribe(handlers);
  });
  return {
    stop: () => {
      for (const unsubscribe of subscriptions) unsubscribe();
      extra['tracedAttempts'] = attempts;
    },
  };
}

interface Metrics {
  /** Stops scraping, and checks a last scrape against the meter (outside the window). */
  stop(): Promise<void>;
}

/**
 * What a service does: registers the consumer's metrics on its own registry
 * and lets Prometheus scrape it on a fixed cadence. The cadence starts with
 * the consumer, not with the first message, so scrapes fall wherever they
 * fall in the measured window; the run notes how many did and their time.
 */
async function registerMetrics(lib: BackpressureConsumer, module: LibraryModule): Promise<Metrics> {
  const client = await import('prom-client');
  const registry = new client.Registry();
  const registration = module.registerMetrics(registry, { consumers: [lib] }, { client });
  extra['metricsRegistered'] = registration.names.length;
  let scrapes = 0;
  let scrapeMs = 0;
  const scrape = async (): Promise<void> => {
    const t = performance.now();
    await registry.metrics();
    if (meter.started && !meter.finished && t >= meter.first) {
      scrapes += 1;
      scrapeMs += performance.now() - t;
    }
  };
  const timer = setInterval(() => void scrape(), METRICS_SCRAPE_MS);
  return {
    stop: async () => {
      clearInterval(timer);
      extra['scrapesInWindow'] = scrapes;
      extra['scrapeMsInWindow'] = Math.round(scrapeMs * 10) / 10;
      // Proof that the metrics saw the run: the counter and the histogram
      // should match the meter, give or take the messages still settling
      // (the meter counts inside the handler, the library after it).
      const text = await registry.metrics();
      extra['metricsConsumed'] = sumSeries(text, 'kafka_messages_consumed_total');
      extra['metricsHandlerCalls'] = sumSeries(
        text,
        'kafka_consumer_handler_duration_seconds_count',
      );
    },
  };
}

/** Sum of every series of one metric in Prometheus text format. */
function sumSeries(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

// ------------------------------------------------------------------ fairness scenario

/**
 * Partition 0's handler takes `slowMs` per message when the contender is the
 * slow one; every other handler is a no-op. Only the messages of the other
 * partitions are counted: the run measures what the slow partition costs
 * them.
 */
async function runFairness(): Promise<() => Promise<void>> {
  const f = spec.fairness!;
  const slow = spec.contender.slowPartition === true;
  const done = Array.from({ length: f.partitions }, () => 0);
  let slowActive = 0;
  let slowPeak = 0;
  let slowSum = 0;
  let slowSamples = 0;
  const handler = async (message: InboundMessage): Promise<void> => {
    if (message.partition === 0) {
      if (slow) {
        slowActive += 1;
        if (slowActive > slowPeak) slowPeak = slowActive;
        try {
          await sleep(f.slowMs);
        } finally {
          slowActive -= 1;
        }
      }
      done[0] = done[0]! + 1;
      return;
    }
    done[message.partition] = (done[message.partition] ?? 0) + 1;
    meter.hit();
  };
  // How many of the concurrency slots partition 0 holds while the others run.
  const share = setInterval(() => {
    if (!meter.started || meter.finished) return;
    slowSum += slowActive;
    slowSamples += 1;
  }, 50);
  const { lib } = await startLibrary(handler);
  void meter.done.then(() => {
    clearInterval(share);
    const others = done.slice(1);
    extra['partition0Done'] = done[0]!;
    extra['othersDone'] = others.reduce((a, b) => a + b, 0);
    extra['slowestOtherPartitionDone'] = Math.min(...others);
    extra['partition0PeakActive'] = slowPeak;
    extra['partition0MeanActive'] =
      slowSamples > 0 ? Math.round((slowSum / slowSamples) * 10) / 10 : 0;
    extra['peakInFlight'] = lib.peakInFlight;
  });
  // Partition 0's handlers may still be sleeping: close does not wait for them.
  return () => lib.close({ drainTimeoutMs: 500 });
}

// ------------------------------------------------------------------ reaction scenarios

/** A downstream whose latency and health the scenario changes as it goes. */
const downstream = { delayMs: 0, failing: false, calls: 0, completions: 0 };

async function downstreamHandler(): Promise<void> {
  downstream.calls += 1;
  await sleep(downstream.delayMs);
  if (downstream.failing) throw new Error('downstream unavailable');
  downstream.completions += 1;
  meter.hit();
}

/**
 * Completions per second over the trailing `windowMs`, from a 50 ms ring of
 * counts; `count` reads the running total (the scripted downstream's by default).
 */
function completionRate(
  windowMs: number,
  count: () => number = () => downstream.completions,
): { rate: () => number; stop: () => void } {
  const points: [number, number][] = [];
  const timer = setInterval(() => {
    const now = performance.now();
    points.push([now, count()]);
    while (points.length > 2 && points[0]![0] < now - windowMs) points.shift();
  }, 50);
  return {
    rate: () => {
      const a = points[0];
      const b = points[points.length - 1];
      if (!a || !b || b[0] - a[0] < windowMs * 0.8) return 0;
      return ((b[1] - a[1]) * 1000) / (b[0] - a[0]);
    },
    stop: () => clearInterval(timer),
  };
}

async function until(condition: () => boolean, timeoutMs: number, everyMs = 5): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

const ms = (x: number | undefined, from: number | undefined): number | null =>
  x === undefined || from === undefined ? null : Math.round((x - from) * 10) / 10;

async function runLatencyJump(): Promise<() => Promise<void>> {
  const r = spec.reaction!;
  downstream.delayMs = r.fastMs;
  const { lib } = await startLibrary(downstreamHandler);
  let latencyHighAt: number | undefined;
  let latencyPausedAt: number | undefined;
  let concurrencyDownAt: number | undefined;
  let concurrencyTo: number | undefined;
  let latencySeen: number | undefined;
  lib.on('latency.high', (e) => {
    latencyHighAt ??= performance.now();
    latencySeen ??= e.latencyMs;
  });
  lib.on('flow.paused', (e) => {
    if (e.reason === 'latency') latencyPausedAt ??= performance.now();
  });
  lib.on('concurrency.changed', (e) => {
    if (e.reason !== 'latency-high') return;
    concurrencyDownAt ??= performance.now();
    concurrencyTo = e.to;
  });
  await meter.firstMessage();
  const rate = completionRate(r.warmupMs / 2);
  await sleep(r.warmupMs);
  extra['warmupRate'] = Math.round(rate.rate());
  rate.stop();
  const jumpAt = performance.now();
  downstream.delayMs = r.slowMs;
  await until(
    () => latencyHighAt !== undefined && concurrencyDownAt !== undefined,
    r.reactTimeoutMs,
  );
  extra['jumpToConcurrencyDownMs'] = ms(concurrencyDownAt, jumpAt);
  extra['jumpToLatencyHighMs'] = ms(latencyHighAt, jumpAt);
  extra['jumpToLatencyPauseMs'] = ms(latencyPausedAt, jumpAt);
  const first = [concurrencyDownAt, latencyHighAt].filter((x): x is number => x !== undefined);
  extra['jumpToReactionMs'] = first.length > 0 ? ms(Math.min(...first), jumpAt) : null;
  extra['concurrencyAfter'] = concurrencyTo ?? lib.concurrency;
  extra['latencyAtPauseMs'] = latencySeen === undefined ? null : Math.round(latencySeen);
  meter.finish();
  return () => lib.close({ drainTimeoutMs: 500 });
}

async function runBreaker(): Promise<() => Promise<void>> {
  const r = spec.reaction!;
  downstream.delayMs = r.fastMs;
  const { lib, consumer } = await startLibrary(downstreamHandler);
  const at: Record<string, number | undefined> = {};
  let callsWhileOpen = 0;
  let callsAtOpen = 0;
  const kafkaAllPaused = () => {
    const assigned = lib.partitions().length;
    const paused = consumer.paused().reduce((n, t) => n + t.partitions.length, 0);
    return assigned > 0 && paused >= assigned;
  };
  lib.on('circuit.open', () => {
    at['open'] ??= performance.now();
    callsAtOpen = downstream.calls;
    if (kafkaAllPaused()) at['allPaused'] ??= performance.now();
  });
  lib.on('circuit.half-open', () => {
    at['halfOpen'] ??= performance.now();
    callsWhileOpen = downstream.calls - callsAtOpen;
  });
  lib.on('circuit.closed', () => (at['closed'] ??= performance.now()));
  await meter.firstMessage();
  const rate = completionRate(r.warmupMs / 2);
  await sleep(r.warmupMs);
  const baseline = rate.rate();
  extra['warmupRate'] = Math.round(baseline);
  const failAt = performance.now();
  downstream.failing = true;
  const opened = await until(() => at['open'] !== undefined, r.reactTimeoutMs + 20_000);
  if (!opened) throw new Error('the circuit never opened');
  if (at['allPaused'] === undefined) {
    await until(kafkaAllPaused, 10_000, 1);
    at['allPaused'] = performance.now();
  }
  await sleep(Math.max(0, at['open']! + r.recoverAfterOpenMs - performance.now()));
  const recoverAt = performance.now();
  downstream.failing = false;
  const full = await until(
    () =>
      at['closed'] !== undefined &&
      rate.rate() >= r.fullFlowFraction * baseline &&
      // The trailing window must lie after the circuit closed.
      performance.now() - at['closed'] >= r.fullFlowWindowMs,
    r.recoverTimeoutMs,
    25,
  );
  if (full) at['fullFlow'] = performance.now();
  rate.stop();
  extra['failToOpenMs'] = ms(at['open'], failAt);
  extra['openToAllPausedMs'] = ms(at['allPaused'], at['open']);
  extra['downstreamCallsWhileOpen'] = callsWhileOpen;
  extra['recoverToHalfOpenMs'] = ms(at['halfOpen'], recoverAt);
  extra['recoverToClosedMs'] = ms(at['closed'], recoverAt);
  extra['recoverToFullFlowMs'] = ms(at['fullFlow'], recoverAt);
  extra['closedToFullFlowMs'] = ms(at['fullFlow'], at['closed']);
  meter.finish();
  return () => lib.close({ drainTimeoutMs: 500 });
}

/**
 * A downstream that slows down for `spikeMs` (issue #21), after a warm-up
 * at `fastMs`. The capacity model has `spikeSlots` slots: a call that
 * starts with n calls in the downstream (itself included) takes
 * `spikeBaseMs × max(1, n / spikeSlots)`, so the slots are shared and
 * throughput stays at `spikeSlots / spikeBaseMs` however many are sent.
 * The fixed model takes `spikeBaseMs` per call at any concurrency.
 *
 * Figures: the first reaction (a limit cut, a latency pause), the handler
 * p50 / p95 of calls that started `spikeSettleMs` or more into the spike
 * and of the whole spike, the throughput over the same span against the
 * model's capacity, the limit in force, the time from the spike's end to
 * the latency pause's end and to full flow, and messages lost: offsets
 * below the group's committed position after close that no handler call
 * ever finished.
 */
async function runSpike(): Promise<() => Promise<void>> {
  const r = spec.reaction!;
  const model = spec.contender.spike!;
  let spiking = false;
  let inDownstream = 0;
  let completions = 0;
  const durationOf = (): number => {
    if (!spiking) return r.fastMs;
    if (model === 'fixed') return r.spikeBaseMs;
    return r.spikeBaseMs * Math.max(1, inDownstream / r.spikeSlots);
  };
  /** Calls: start, end (performance.now()). */
  const calls: [number, number][] = [];
  const handled = new Map<number, Set<number>>();
  const handler = async (message: InboundMessage): Promise<void> => {
    inDownstream += 1;
    const startedAt = performance.now();
    await sleep(durationOf());
    inDownstream -= 1;
    const endedAt = performance.now();
    calls.push([startedAt, endedAt]);
    let offsets = handled.get(message.partition);
    if (!offsets) handled.set(message.partition, (offsets = new Set()));
    offsets.add(Number(message.offset));
    completions += 1;
    meter.hit();
  };
  const { lib } = await startLibrary(handler);
  const at: Record<string, number | undefined> = {};
  let spikeAt = Number.POSITIVE_INFINITY;
  let spikeEnd = Number.POSITIVE_INFINITY;
  const limits: number[] = [];
  let pausedNow = false;
  lib.on('concurrency.changed', (e) => {
    const now = performance.now();
    if (now >= spikeAt && now < spikeEnd) limits.push(e.to);
    if (now >= spikeAt && e.to < e.from) at['limitCut'] ??= now;
  });
  let pausesInSpike = 0;
  let pauseEndNoEffect = false;
  lib.on('latency.high', () => {
    pausedNow = true;
    const now = performance.now();
    if (now >= spikeAt) at['pause'] ??= now;
    if (now >= spikeAt && now < spikeEnd) pausesInSpike += 1;
  });
  lib.on('latency.normal', (e) => {
    pausedNow = false;
    const now = performance.now();
    if (now >= spikeEnd) at['resume'] ??= now;
    else if (now >= spikeAt && at['pauseEnd'] === undefined) {
      at['pauseEnd'] = now;
      pauseEndNoEffect = e.noEffect === true;
    }
  });
  await meter.firstMessage();
  const rate = completionRate(r.fullFlowWindowMs, () => completions);
  await sleep(r.warmupMs);
  const warmupRate = rate.rate();
  extra['warmupRate'] = Math.round(warmupRate);
  spikeAt = performance.now();
  spiking = true;
  await sleep(r.spikeMs);
  spikeEnd = performance.now();
  spiking = false;
  extra['limitAtSpikeEnd'] = lib.concurrency;
  extra['pausedAtSpikeEnd'] = pausedNow ? 1 : 0;
  const full = await until(
    () => rate.rate() >= r.fullFlowFraction * warmupRate && !pausedNow,
    r.recoverTimeoutMs,
    25,
  );
  if (full) at['fullFlow'] = performance.now();
  rate.stop();

  const settled = spikeAt + r.spikeSettleMs;
  const durations = (from: number) =>
    calls
      .filter(([s0, e0]) => s0 >= from && e0 < spikeEnd)
      .map(([s0, e0]) => e0 - s0)
      .sort((a, b) => a - b);
  const pct = (xs: number[], p: number) =>
    xs.length === 0 ? null : Math.round(xs[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!);
  const late = durations(settled);
  const whole = durations(spikeAt);
  extra['p50AfterSettleMs'] = pct(late, 50);
  extra['p95AfterSettleMs'] = pct(late, 95);
  extra['p95SpikeMs'] = pct(whole, 95);
  const ended = (from: number) => calls.filter(([, e0]) => e0 >= from && e0 < spikeEnd).length;
  extra['spikeRate'] = Math.round((ended(spikeAt) * 10_000) / (spikeEnd - spikeAt)) / 10;
  extra['settledRate'] = Math.round((ended(settled) * 10_000) / (spikeEnd - settled)) / 10;
  extra['capacityRate'] =
    model === 'capacity' ? Math.round((r.spikeSlots * 10_000) / r.spikeBaseMs) / 10 : null;
  extra['reactionMs'] = ms(
    Math.min(at['limitCut'] ?? Number.POSITIVE_INFINITY, at['pause'] ?? Number.POSITIVE_INFINITY),
    spikeAt,
  );
  if (extra['reactionMs'] === Number.POSITIVE_INFINITY) extra['reactionMs'] = null;
  extra['limitCutMs'] = ms(at['limitCut'], spikeAt);
  extra['pauseMs'] = ms(at['pause'], spikeAt);
  extra['pausesInSpike'] = pausesInSpike;
  // The first pause that ended within the spike, and whether it ended for want of effect.
  extra['pauseEndInSpikeMs'] = ms(at['pauseEnd'], spikeAt);
  extra['pauseEndNoEffect'] = at['pauseEnd'] === undefined ? null : pauseEndNoEffect ? 1 : 0;
  extra['minLimitInSpike'] = limits.length > 0 ? Math.min(...limits) : null;
  extra['endToResumeMs'] = ms(at['resume'], spikeEnd);
  extra['endToFullFlowMs'] = ms(at['fullFlow'], spikeEnd);
  meter.finish();
  return async () => {
    await lib.close({ drainTimeoutMs: 5000 });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [topic] = await admin.fetchOffsets({ groupId: spec.groupId, topics: [spec.topic] });
      let lost = 0;
      for (const { partition, offset } of topic?.partitions ?? []) {
        const offsets = handled.get(partition) ?? new Set<number>();
        for (let o = 0; o < Number(offset); o += 1) if (!offsets.has(o)) lost += 1;
      }
      extra['lost'] = lost;
    } finally {
      await admin.disconnect();
    }
  };
}

// ------------------------------------------------------------------ producer scenario

const producerValue = randomBytes(spec.producer?.valueBytes ?? 0);
const producerKeys = Array.from({ length: spec.producer?.keys ?? 1 }, (_, i) =>
  Buffer.from(`key-${i}`),
);
const message = (i: number): Message => ({
  key: producerKeys[i % producerKeys.length]!,
  value: producerValue,
});

/** When each `producer.send` call was made (ms) and how many messages it carried. */
const handoffAt: number[] = [];
const handoffMessages: number[] = [];
/** `producer.send` calls outstanding, and its integral over time inside the measured window. */
const inFlight = { now: 0, since: 0, area: 0 };

/** Adds `now` calls outstanding since the last change, up to `t`, clipped to the measured window. */
function accrueInFlight(t: number): void {
  if (meter.started) {
    const from = Math.max(inFlight.since, meter.first);
    const to = meter.finished ? Math.min(t, meter.end) : t;
    if (to > from) inFlight.area += inFlight.now * (to - from);
  }
  inFlight.since = t;
}

function inFlightChange(delta: number): void {
  accrueInFlight(performance.now());
  inFlight.now += delta;
}

/** The KafkaJS producer every contender sends through, connected and warmed up. */
async function connectProducer(): Promise<Producer> {
  // KafkaJS's defaults (acks -1, no compression, no idempotence), with its
  // Java-compatible partitioner, for every contender.
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  // Topic metadata and the broker connection, outside the measured window.
  await producer.send({ topic: spec.topic, messages: [message(0)] });
  return producer;
}

/** The producer's `send` and `disconnect`, noting every call made (the same wrapper for every contender). */
function counted(producer: Producer): Pick<Producer, 'send' | 'disconnect'> {
  return {
    send: async (record: ProducerRecord): Promise<RecordMetadata[]> => {
      handoffAt.push(performance.now());
      handoffMessages.push(record.messages.length);
      inFlightChange(1);
      try {
        const metadata = await producer.send(record);
        noteAppendTimes(metadata);
        return metadata;
      } finally {
        inFlightChange(-1);
      }
    },
    disconnect: () => producer.disconnect(),
  };
}

/**
 * The load of every producer run: `senders` loops, each sending a record of
 * `recordMessages` and awaiting it before the next, until `spec.target`
 * messages went out or the meter finished (time limit).
 */
function produceAll(send: (record: ProducerRecord) => Promise<unknown>): Promise<void> {
  const { recordMessages, senders } = spec.contender.load!;
  let next = 0;
  const sender = async (): Promise<void> => {
    while (next < spec.target && !meter.finished) {
      const from = next;
      const to = Math.min(spec.target, from + recordMessages);
      next = to;
      const messages: Message[] = [];
      for (let i = from; i < to; i++) messages.push(message(i));
      await send({ topic: spec.topic, messages });
      meter.hit(to - from);
    }
  };
  meter.start();
  return Promise.all(Array.from({ length: senders }, sender)).then(() => undefined);
}

/**
 * The broker's append time (ms, the broker's clock) of the run's first
 * message. The scenario's topic has `message.timestamp.type=LogAppendTime`,
 * so every record carries the time the broker wrote it, and produce
 * responses return it.
 */
let firstAppendTime = Number.POSITIVE_INFINITY;

function noteAppendTimes(metadata: readonly RecordMetadata[]): void {
  for (const m of metadata) {
    const t = Number(m.logAppendTime ?? -1);
    if (t > 0 && t < firstAppendTime) firstAppendTime = t;
  }
}

/**
 * The rate as the broker saw it: messages whose broker append time falls in
 * a window, counted from the offsets the broker's time index returns for its
 * two ends (summed over partitions), and per 1 s slice. Runs are sequential,
 * so nothing else writes to the topic meanwhile.
 *
 * The window is whole seconds from T0, the run's first append. It leaves out
 * its last second of the client's window (at the end the client lifts the
 * limit to drain what waits, and none of that may be counted) and, for the
 * target figure, its first second: the first appends wait for a cold path
 * (connections, JIT), and whatever queued meanwhile lands just after T0, so
 * a window starting at T0 measures that start-up delay as rate. The figure
 * from T0 is kept next to it.
 */
async function noteBrokerRate(target: number): Promise<void> {
  if (!Number.isFinite(firstAppendTime)) throw new Error('no LogAppendTime in produce responses');
  const seconds = Math.floor((spec.producer!.rateWindowMs - 1000) / 1000);
  const lead = seconds > 2 ? 1 : 0;
  const t0 = firstAppendTime;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const marks: number[] = [];
    for (let k = 0; k <= seconds; k += 1) {
      const offsets = await admin.fetchTopicOffsetsByTimestamp(spec.topic, t0 + k * 1000);
      marks.push(offsets.reduce((n, o) => n + Number(o.offset), 0));
    }
    const slices = marks.slice(1).map((m, k) => m - marks[k]!);
    const rate = (marks[seconds]! - marks[lead]!) / (seconds - lead);
    const fromFirst = (marks[seconds]! - marks[0]!) / seconds;
    extra['brokerWindow'] = `${lead}–${seconds} s after the first append`;
    extra['brokerRate'] = rate;
    extra['brokerError'] = rate / target - 1;
    extra['brokerErrorFromFirstAppend'] = fromFirst / target - 1;
    extra['brokerSlowestSecond'] = Math.min(...slices.slice(lead));
    extra['brokerFastestSecond'] = Math.max(...slices.slice(lead));
    extra['brokerFirstSecond'] = slices[0] ?? null;
  } finally {
    await admin.disconnect();
  }
}

/** Calls made and messages handed to KafkaJS within the measured window, and the rate per 1 s slice. */
function noteHandoffs(): void {
  const from = meter.first;
  const to = meter.end;
  let requests = 0;
  let sent = 0;
  // Whole seconds, allowing the window's timer to end a few ms early or late.
  const seconds = Math.floor((to - from + 5) / 1000);
  const perSecond = Array.from({ length: seconds }, () => 0);
  for (let i = 0; i < handoffAt.length; i++) {
    const t = handoffAt[i]!;
    if (t < from || t > to) continue;
    const n = handoffMessages[i]!;
    requests += 1;
    sent += n;
    const slice = Math.floor((t - from) / 1000);
    if (slice < seconds) perSecond[slice] = perSecond[slice]! + n;
  }
  accrueInFlight(to);
  extra['requests'] = requests;
  extra['meanInFlight'] = to > from ? Math.round((inFlight.area / (to - from)) * 100) / 100 : null;
  extra['messagesPerRequest'] = requests > 0 ? Math.round((sent / requests) * 10) / 10 : null;
  extra['sent'] = sent;
  extra['sentRate'] = to > from ? (sent * 1000) / (to - from) : null;
  const target = spec.contender.rateTarget;
  if (target !== undefined) {
    extra['rateTarget'] = target;
    extra['sentError'] = to > from ? (sent * 1000) / (to - from) / target - 1 : null;
    extra['ackedError'] = to > from ? (meter.measured * 1000) / (to - from) / target - 1 : null;
    extra['slowestSecond'] = perSecond.length > 0 ? Math.min(...perSecond) : null;
    extra['fastestSecond'] = perSecond.length > 0 ? Math.max(...perSecond) : null;
  }
}

async function runKafkaProducer(): Promise<() => Promise<void>> {
  const producer = await connectProducer();
  const target = counted(producer);
  const load = produceAll((record) => target.send(record));
  load.catch(fail);
  return async () => {
    noteHandoffs();
    await load;
    await producer.disconnect();
  };
}

async function runLibraryProducer(): Promise<() => Promise<void>> {
  const { RateLimitedProducer } = await loadLibrary();
  const producer = await connectProducer();
  const rate = spec.contender.rateTarget;
  // Made just before the first send: its token bucket counts the time before that as idle.
  const limited = new RateLimitedProducer(counted(producer), {
    ...(rate !== undefined ? { messagesPerSecond: rate } : {}),
    disconnectOnClose: false,
  });
  let sendFailures = 0;
  limited.on('producer.send-failed', () => (sendFailures += 1));
  const load = produceAll((record) => limited.send(record));
  load.catch(fail);
  return async () => {
    noteHandoffs();
    extra['sendFailures'] = sendFailures;
    // What the callers still wait for goes out at once: it is outside the window.
    if (rate !== undefined) limited.setLimits({ messagesPerSecond: Number.POSITIVE_INFINITY });
    await load;
    await limited.close({ timeoutMs: 10_000 });
    await producer.disconnect();
    if (rate !== undefined) await noteBrokerRate(rate);
  };
}

// ------------------------------------------------------------------ driver

function memoryStats(elapsedMs: number): MemoryStats {
  const peak = (f: (s: MemorySample) => number) => samples.reduce((m, s) => Math.max(m, f(s)), 0);
  const at = (fraction: number, f: (s: MemorySample) => number): number => {
    const t = fraction * elapsedMs;
    let best: MemorySample | undefined;
    for (const s of samples) {
      if (s.t < 0) continue;
      if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    }
    return best ? f(best) : 0;
  };
  const quartiles = (f: (s: MemorySample) => number) =>
    [at(0.25, f), at(0.5, f), at(0.75, f), at(1, f)] as const;
  return {
    peakRss: peak((s) => s.rss),
    peakHeapUsed: peak((s) => s.heapUsed),
    peakExternal: peak((s) => s.external),
    peakArrayBuffers: peak((s) => s.arrayBuffers),
    rssAt: quartiles((s) => s.rss),
    heapUsedAt: quartiles((s) => s.heapUsed),
  };
}

async function main(): Promise<void> {
  const sampler = setInterval(sample, 250);
  const runners: Record<ContenderSpec['contender']['kind'], () => Promise<() => Promise<void>>> = {
    'kafkajs-batch': runKafkaBatch,
    'kafkajs-message': runKafkaMessage,
    'kafkajs-naive-queue': runNaiveQueue,
    library: runLibrary,
    'library-fairness': runFairness,
    'library-latency-jump': runLatencyJump,
    'library-breaker': runBreaker,
    'library-spike': runSpike,
    'library-bulk': runBulk,
    'kafkajs-producer': runKafkaProducer,
    'library-producer': runLibraryProducer,
  };
  const watchdog = setTimeout(() => {
    if (meter.count === 0) fail(new Error('no message within 90 s'));
  }, FIRST_MESSAGE_TIMEOUT_MS);
  const stop = await runners[spec.contender.kind]();
  await meter.done;
  clearTimeout(watchdog);
  sample();
  clearInterval(sampler);
  const elapsedMs = meter.end - meter.first;
  const result: ContenderResult = {
    scenario: spec.scenario,
    contender: spec.contender.id,
    round: spec.round,
    ok: true,
    messages: meter.measured,
    elapsedMs,
    rate: elapsedMs > 0 ? (meter.measured * 1000) / elapsedMs : 0,
    startupMs: meter.first - startedAt,
    memory: memoryStats(elapsedMs),
    ...(spec.scenario === 'memory' ? { samples } : {}),
    extra,
    loadavg: [loadavg()[0]!, loadavg()[1]!],
  };
  // Closing is outside the measurement; give it a bounded time.
  await Promise.race([stop().catch(() => undefined), sleep(10_000)]);
  const active = samples.filter((s) => s.t >= 0 && s.active !== undefined);
  if (active.length > 0) {
    extra['meanActiveHandlers'] =
      Math.round((active.reduce((n, s) => n + (s.active ?? 0), 0) / active.length) * 10) / 10;
  }
  writeFileSync(spec.out, JSON.stringify(result));
  writeProfileWindow();
  process.exit(0);
}

/** Next to the .cpuprofile, when run under --cpu-prof: the measured window for bench/profile-summary.ts. */
function writeProfileWindow(): void {
  const flag = (name: string) =>
    process.execArgv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const dir = flag('cpu-prof-dir');
  if (!dir) return;
  const file = join(dir, 'window.json');
  writeFileSync(file, JSON.stringify({ startUs: meter.firstUs, endUs: meter.endUs }));
}

function fail(error: unknown): never {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  const result = {
    scenario: spec.scenario,
    contender: spec.contender.id,
    round: spec.round,
    ok: false,
    error: message,
  };
  try {
    writeFileSync(spec.out, JSON.stringify(result));
  } catch {
    // the orchestrator reports the exit code instead
  }
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

main().catch(fail);
