/**
 * The demo's scenario: one topic, one consumer group, a simulated downstream,
 * and five steps run against a real broker through the library's public API.
 * Everything the terminal shows comes from the library's own events and
 * read-only counters (BackpressureConsumer, LagMonitor, RateLimitedProducer).
 */
import { Kafka, logLevel, type Admin, type IHeaders, type Producer } from 'kafkajs';
import {
  BackpressureConsumer,
  LagMonitor,
  NonRetriableError,
  type BackpressureConsumerOptions,
  type LagSnapshot,
  type PauseReason,
} from '../../src/index.js';
import type { DemoConfig, StepName } from './config.js';
import { Downstream, sleep } from './downstream.js';
import { ID_HEADER, Load, type MessageKind, type Order } from './load.js';
import { computeSummary, summaryLines, type DemoSummary, type StepFacts } from './summary.js';
import { Timeline, type EventLevel, type PartitionTick } from './timeline.js';
import { View } from './view.js';

export type Mode = 'partition' | 'key';

/**
 * How long the old consumer may finish its in-flight work when the demo
 * switches ordering, as a deploy's drain budget: in 'partition' ordering a
 * partition holding many of them runs them one at a time.
 */
const SWITCH_DRAIN_MS = 3000;

const TITLES: Record<StepName, string> = {
  baseline: 'Baseline: a slow downstream, a producer within capacity',
  burst: 'Burst: the producer goes far above capacity',
  answer: "The library's answer: key ordering, higher concurrency",
  outage: 'Downstream outage: the circuit breaker',
  poison: 'Poison messages: straight to the dead-letter topic',
};

export interface DemoRun {
  readonly summary: DemoSummary;
  readonly timeline: Timeline;
}

export interface RunOptions {
  readonly out?: NodeJS.WritableStream & { columns?: number; isTTY?: boolean };
  /** Aborting ends the current step early and goes straight to the summary. */
  readonly signal?: AbortSignal;
}

export async function runDemo(config: DemoConfig, options: RunOptions = {}): Promise<DemoRun> {
  const timeline = new Timeline();
  const view = new View(options.out ?? process.stdout, timeline, {
    live: !config.plain,
    color: config.color,
  });
  const demo = new Demo(config, timeline, view, options.signal);
  try {
    await demo.setup();
    for (const [i, step] of config.steps.entries()) {
      if (demo.aborted) break;
      await demo.step(step, i + 1);
    }
    const summary = await demo.finish();
    return { summary, timeline };
  } finally {
    await demo.teardown();
    view.stop();
  }
}

class Demo {
  readonly #config: DemoConfig;
  readonly #timeline: Timeline;
  readonly #view: View;
  readonly #signal: AbortSignal | undefined;
  readonly #kafka: Kafka;
  readonly #admin: Admin;
  readonly #monitorAdmin: Admin;
  readonly #producer: Producer;
  readonly #downstream: Downstream;
  readonly topic = `demo-orders-${Date.now().toString(36)}`;
  readonly dlqTopic = `${this.topic}.dlq`;
  readonly groupId = `${this.topic}-billing`;
  #load: Load | undefined;
  #monitor: LagMonitor | undefined;
  #consumer: BackpressureConsumer<Order> | undefined;
  #mode: Mode | undefined;
  #maxInFlight = 0;
  #stepIndex = 0;
  #ticker: NodeJS.Timeout | undefined;
  #topicsCreated = false;

  /** id -> times handled successfully. */
  readonly #handled = new Map<number, number>();
  /** id -> times dead-lettered (from dlq.routed, through the offset). */
  readonly #deadLettered = new Map<number, number>();
  /** `partition:offset` -> id, noted when a message is deserialized. */
  readonly #idAt = new Map<string, number>();
  readonly #peakInFlight: Partial<Record<Mode, number>> = {};
  #retries = 0;
  /** Pause reasons already reported in this step (the rest are counted). */
  readonly #pausesNoted = new Set<string>();
  readonly #pauseCounts = new Map<string, number>();
  readonly #facts: StepFacts = {};

  constructor(config: DemoConfig, timeline: Timeline, view: View, signal: AbortSignal | undefined) {
    this.#config = config;
    this.#timeline = timeline;
    this.#view = view;
    this.#signal = signal;
    this.#kafka = new Kafka({
      clientId: 'kafkajs-backpressure-demo',
      brokers: [...config.brokers],
      // KafkaJS logs every retried request; the demo shows the library's events instead.
      logLevel: logLevel.NOTHING,
      connectionTimeout: 5000,
    });
    this.#admin = this.#kafka.admin();
    this.#monitorAdmin = this.#kafka.admin();
    this.#producer = this.#kafka.producer({ allowAutoTopicCreation: false });
    this.#downstream = new Downstream(config.workMs);
    signal?.addEventListener(
      'abort',
      () => this.#log('interrupt', 'warn', 'interrupted: skipping to the summary'),
      { once: true },
    );
  }

  get aborted(): boolean {
    return this.#signal?.aborted ?? false;
  }

  // ---------------------------------------------------------------- setup

  async setup(): Promise<void> {
    const c = this.#config;
    await this.#admin.connect();
    await this.#createTopics();
    await this.#producer.connect();
    this.#load = new Load(this.#producer, this.topic, c.rate, (error) =>
      this.#log('producer', 'bad', `a produce request failed: ${error.message}`),
    );
    this.#load.producer.on('producer.throttled', (e) =>
      this.#log(
        'producer',
        'info',
        `producer rate ${e.messagesPerSecond} msg/s (${e.cause === 'limits' ? 'setLimits' : `lag ${e.lagStatus}`})`,
      ),
    );
    this.#load.producer.on('producer.error', (e) =>
      this.#log('producer', 'bad', `producer error during ${e.during}: ${e.error.message}`),
    );

    const monitor = new LagMonitor(this.#monitorAdmin, {
      groupId: this.groupId,
      topics: [this.topic],
      intervalMs: 1000,
      windowMs: 10_000,
      thresholds: { warningLag: c.warningLag, criticalLag: c.criticalLag },
    });
    this.#monitor = monitor;
    monitor.on('lag.sample', (s) => this.#onLagSample(s));
    monitor.on('lag.status', (e) => {
      if (e.scope !== 'group') return;
      this.#timeline.open('lag-status', 'lag-status', e.to);
      this.#log(
        'lag.status',
        e.to === 'critical' ? 'bad' : e.to === 'warning' ? 'warn' : 'good',
        `lag status ${e.from} -> ${e.to}: ${e.reason}`,
      );
    });
    let told: number | null = null;
    monitor.on('lag.recommendation', ({ recommendation: r }) => {
      // Told while a backlog builds or drains (at a steady low lag the
      // per-consumer rate is only the produce rate shared out), and only
      // when the consumer count changes, not the uncapped partition count.
      if (r.consumersNeeded === null || !['burst', 'answer'].includes(this.#timeline.step)) return;
      if (r.consumersNeeded === told) return;
      told = r.consumersNeeded;
      this.#log(
        'lag.recommendation',
        'info',
        `LagMonitor recommends ${r.consumersNeeded} consumer(s): produce ${fmt(r.produceRate)} msg/s, ` +
          `consume ${fmt(r.consumeRatePerConsumer)} msg/s per consumer (${r.members ?? '?'} in the group, ` +
          `${r.partitions} partitions)${r.timeToDrainSeconds === null ? '' : `, drained in ~${Math.round(r.timeToDrainSeconds)} s at this pace`}`,
      );
    });
    monitor.on('lag.error', (e) =>
      this.#log('lag.error', 'warn', `lag monitor: ${e.during} failed: ${e.error.message}`),
    );
    this.#timeline.open('lag-status', 'lag-status', 'ok');
    await monitor.start();

    this.#ticker = setInterval(() => this.#tick(), 250);
    this.#log(
      'setup',
      'info',
      `topic ${this.topic} (${c.partitions} partitions), dead letters to ${this.dlqTopic}, group ${this.groupId}`,
    );
  }

  async #createTopics(): Promise<void> {
    await this.#admin.createTopics({
      // KRaft acknowledges before the broker's metadata has the topic, and
      // KafkaJS's waitForLeaders does not retry that error: poll instead.
      waitForLeaders: false,
      topics: [
        { topic: this.topic, numPartitions: this.#config.partitions, replicationFactor: 1 },
        { topic: this.dlqTopic, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    this.#topicsCreated = true;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { topics } = await this.#admin
        .fetchTopicMetadata({ topics: [this.topic, this.dlqTopic] })
        .catch(() => ({ topics: [] }));
      const ready =
        topics.length === 2 &&
        topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`topics ${this.topic} have no leaders after 30 s`);
      await sleep(100);
    }
  }

  // ---------------------------------------------------------------- consumers

  #options(mode: Mode): BackpressureConsumerOptions<Order> {
    const c = this.#config;
    const concurrency = mode === 'key' ? c.keyConcurrency : c.partitions;
    return {
      topics: [this.topic],
      fromBeginning: true,
      ordering: mode,
      concurrency,
      // Each partition's batches are admitted side by side, so one partition
      // waiting for capacity does not hold up the others' fetched batches.
      partitionsConsumedConcurrently: c.partitions,
      // A few messages per handler slot: enough to keep every slot busy,
      // little enough that a burst stays in Kafka rather than in memory.
      maxInFlight: concurrency * 4,
      commitIntervalMs: 500,
      handlerTimeoutMs: 10_000,
      retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1000 },
      deadLetter: { producer: this.#producer, topic: this.dlqTopic },
      circuitBreaker: {
        errorThresholdPercentage: 50,
        volumeThreshold: 5,
        resetTimeoutMs: 2000,
        rollingCountTimeoutMs: 2000,
        rollingCountBuckets: 4,
      },
      deserialize: (raw, { partition }) => {
        const id = idOf(raw.headers);
        if (id !== undefined) this.#idAt.set(`${partition}:${raw.offset}`, id);
        return JSON.parse(raw.value?.toString() ?? '') as Order;
      },
      handler: async (message, { signal }) => {
        const order = message.payload;
        if (!(typeof order.amount === 'number' && order.amount > 0)) {
          throw new NonRetriableError(
            `order ${order.id}: amount must be a positive number, got ${order.amount}`,
          );
        }
        await this.#downstream.call(signal);
        const id = idOf(message.headers);
        if (id !== undefined) this.#handled.set(id, (this.#handled.get(id) ?? 0) + 1);
        this.#idAt.delete(`${message.partition}:${message.offset}`);
      },
    };
  }

  /** Makes sure a consumer in `mode` runs, closing one in another mode first. */
  async #use(mode: Mode): Promise<void> {
    if (this.#consumer !== undefined && this.#mode === mode) return;
    const old = this.#consumer;
    if (old !== undefined) {
      const started = performance.now();
      this.#log(
        'switch',
        'info',
        `closing the ${this.#mode}-ordering consumer: ${old.inFlight} message(s) in flight get up to ` +
          `${SWITCH_DRAIN_MS / 1000} s to finish; the rest is abandoned and redelivered to the next consumer`,
      );
      await old.close({ drainTimeoutMs: SWITCH_DRAIN_MS });
      this.#facts.closeSeconds = (performance.now() - started) / 1000;
      this.#log(
        'switch',
        'info',
        `closed in ${this.#facts.closeSeconds.toFixed(1)} s (committed what was done); ` +
          `starting one with ordering '${mode}' in the same group`,
      );
    }
    const options = this.#options(mode);
    const consumer = new BackpressureConsumer<Order>(
      this.#kafka.consumer({
        groupId: this.groupId,
        maxWaitTimeInMs: 100,
        sessionTimeout: 10_000,
        heartbeatInterval: 1000,
        rebalanceTimeout: 10_000,
      }),
      options,
    );
    this.#consumer = consumer;
    this.#mode = mode;
    this.#maxInFlight = options.maxInFlight ?? 0;
    this.#wire(consumer, mode);
    const assigned = new Promise<void>((resolve) =>
      consumer.on('group.rebalance', (e) => {
        if (e.phase === 'assigned' && e.assigned.length > 0) resolve();
      }),
    );
    await consumer.start();
    await Promise.race([assigned, sleep(30_000)]);
  }

  #wire(consumer: BackpressureConsumer<Order>, mode: Mode): void {
    const t = this.#timeline;
    consumer.on('flow.paused', (e) => {
      for (const p of e.partitions)
        t.open(`paused:${p.partition}:${e.reason}`, 'paused', e.reason, p.partition);
      const count = (this.#pauseCounts.get(e.reason) ?? 0) + 1;
      this.#pauseCounts.set(e.reason, count);
      if (e.reason === 'closing') return;
      // Queue-full pauses come and go many times a second under a burst:
      // the first one of each reason per step is told, the rest counted.
      if (e.reason !== 'circuit' && this.#pausesNoted.has(e.reason)) return;
      this.#pausesNoted.add(e.reason);
      this.#log(
        'flow.paused',
        'warn',
        `paused ${describePartitions(e.partitions)}: ${explainPause(e.reason)}`,
      );
    });
    consumer.on('flow.resumed', (e) => {
      for (const p of e.partitions) t.closeAll(`paused:${p.partition}:`);
      if (e.reason === 'circuit')
        this.#log(
          'flow.resumed',
          'good',
          `resumed ${describePartitions(e.partitions)}: circuit no longer open`,
        );
    });
    consumer.on('circuit.open', () => {
      t.open('circuit', 'circuit', 'open');
      this.#facts.circuitOpenedAt ??= t.now();
      this.#log(
        'circuit.open',
        'bad',
        'circuit OPEN: every partition pauses; failures now cost no attempt, nothing is dead-lettered',
      );
    });
    consumer.on('circuit.half-open', () => {
      t.open('circuit', 'circuit', 'half-open');
      this.#log('circuit.half-open', 'warn', 'circuit half-open: one probe at concurrency 1');
    });
    consumer.on('circuit.closed', () => {
      t.open('circuit', 'circuit', 'closed');
      this.#facts.circuitClosedAt = t.now();
      this.#log(
        'circuit.closed',
        'good',
        `circuit closed: concurrency back to ${consumer.concurrency}, partitions resume`,
      );
    });
    consumer.on('message.retry', (e) => {
      this.#retries += 1;
      if (this.#retries === 1 || this.#timeline.step !== 'outage')
        this.#log(
          'message.retry',
          'warn',
          `retry p${e.partition}@${e.offset} attempt ${e.attempt + 1} in ${e.delayMs} ms: ${e.error.message}`,
        );
    });
    consumer.on('dlq.routed', (e) => {
      const id = this.#idAt.get(`${e.partition}:${e.offset}`);
      this.#idAt.delete(`${e.partition}:${e.offset}`);
      if (id !== undefined) this.#deadLettered.set(id, (this.#deadLettered.get(id) ?? 0) + 1);
      this.#log(
        'dlq.routed',
        'warn',
        `dead-lettered p${e.partition}@${e.offset} (${e.reason}): ${e.error.message}`,
      );
    });
    consumer.on('dlq.failed', (e) =>
      this.#log(
        'dlq.failed',
        'bad',
        `dead letter p${e.partition}@${e.offset} not written (${e.error.message}); partition holds, retry in ${e.retryInMs} ms`,
      ),
    );
    consumer.on('concurrency.changed', (e) => {
      if (e.reason === 'circuit-half-open' || e.reason === 'circuit-closed') return;
      this.#log('concurrency.changed', 'info', `concurrency ${e.from} -> ${e.to} (${e.reason})`);
    });
    consumer.on('group.rebalance', (e) => {
      if (e.phase === 'assigned')
        this.#log(
          'group.rebalance',
          'info',
          `${mode}-ordering consumer assigned ${describePartitions(e.assigned)}`,
        );
    });
    consumer.on('consumer.state', (e) => {
      if (e.state === 'running') t.open('circuit', 'circuit', consumer.circuitState);
      if (e.state === 'closed') {
        t.close('circuit');
        t.closeAll('paused:');
      }
    });
    consumer.on('consumer.error', (e) =>
      this.#log('consumer.error', 'bad', `consumer error during ${e.during}: ${e.error.message}`),
    );
  }

  // ---------------------------------------------------------------- ticks

  #tick(): void {
    const t = this.#timeline;
    const load = this.#load!;
    const consumer = this.#consumer;
    if (consumer !== undefined && this.#mode !== undefined) {
      this.#peakInFlight[this.#mode] = Math.max(
        this.#peakInFlight[this.#mode] ?? 0,
        consumer.peakInFlight,
      );
    }
    const snapshots = consumer?.partitions() ?? [];
    const partitions: PartitionTick[] = [];
    for (let p = 0; p < this.#config.partitions; p++) {
      const s = snapshots.find((x) => x.partition === p);
      const reasons = s?.paused ? s.reasons : [];
      partitions.push({
        partition: p,
        inFlight: s?.inFlight ?? 0,
        paused: s?.paused ?? false,
        reasons,
      });
      // Events give the exact edges; the snapshot adds reasons that joined
      // while the partition was already paused (no event for those).
      for (const reason of reasons) {
        if (!t.isOpen(`paused:${p}:${reason}`))
          t.open(`paused:${p}:${reason}`, 'paused', reason, p);
      }
      for (const key of t.openKeys(`paused:${p}:`)) {
        if (!reasons.includes(key.slice(`paused:${p}:`.length) as PauseReason)) t.close(key);
      }
    }
    const now = t.now();
    const handled = this.#handled.size;
    const deadLettered = this.#deadLettered.size;
    const completed = handled + deadLettered;
    const past = t.ticks.findLast((x) => now - x.t >= 2) ?? t.ticks[0];
    const span = past === undefined ? 0 : now - past.t;
    t.ticks.push({
      t: now,
      step: t.step,
      produced: load.produced,
      completed,
      handled,
      deadLettered,
      produceRate: past && span > 0 ? (load.produced - past.produced) / span : 0,
      consumeRate: past && span > 0 ? (completed - past.completed) / span : 0,
      produceLimit: load.running ? load.rate : 0,
      inFlight: consumer?.inFlight ?? 0,
      maxInFlight: this.#maxInFlight,
      activeHandlers: consumer?.activeHandlers ?? 0,
      concurrency: consumer?.concurrency ?? 0,
      circuit: consumer?.circuitState ?? 'none',
      ordering: this.#mode ?? '-',
      partitions,
    });
    t.touch();
    this.#view.refresh({
      stepIndex: this.#stepIndex,
      stepCount: this.#config.steps.length,
      topic: this.topic,
      partitions: this.#config.partitions,
      deadLettered,
      downstreamDown: this.#downstream.down,
      warningLag: this.#config.warningLag,
      criticalLag: this.#config.criticalLag,
    });
  }

  #onLagSample(s: LagSnapshot): void {
    const t = this.#timeline.now();
    this.#timeline.lag.push({
      t,
      total: s.total.lag,
      status: s.total.status,
      partitions: s.partitions.map((p) => ({ partition: p.partition, lag: p.lag })),
      consumersNeeded: s.recommendation.consumersNeeded,
      timeToDrainSeconds: s.recommendation.timeToDrainSeconds,
      produceRate: s.total.produceRate,
      consumeRate: s.total.consumeRate,
      members: s.members,
    });
  }

  /** The newest lag round taken after `t` (seconds on the timeline). */
  #lagAfter(t: number) {
    const last = this.#timeline.lag.at(-1);
    return last !== undefined && last.t > t ? last : undefined;
  }

  // ---------------------------------------------------------------- steps

  async step(name: StepName, index: number): Promise<void> {
    const t = this.#timeline;
    this.#stepIndex = index;
    t.step = name;
    t.open('step', 'step', name);
    this.#pausesNoted.clear();
    this.#log('step', 'step', `Step ${index}/${this.#config.steps.length} · ${TITLES[name]}`);
    this.#view.lines(this.#describe(name).map((line) => `    ${this.#view.dim(line)}`));
    switch (name) {
      case 'baseline':
        await this.#baseline();
        break;
      case 'burst':
        await this.#burst();
        break;
      case 'answer':
        await this.#answer();
        break;
      case 'outage':
        await this.#outage();
        break;
      case 'poison':
        await this.#poison();
        break;
    }
    t.close('step');
  }

  #describe(name: StepName): string[] {
    const c = this.#config;
    const capacity = (c.partitions * 1000) / c.workMs;
    switch (name) {
      case 'baseline':
        return [
          `ordering 'partition': one message at a time per partition, ${c.partitions} partitions, ~${c.workMs} ms of downstream work each`,
          `= capacity ${fmt(capacity)} msg/s. The producer sends ${fmt(c.rate)} msg/s through a RateLimitedProducer.`,
        ];
      case 'burst':
        return [
          `${fmt(c.burstRate)} msg/s for ${c.burstSeconds} s against a capacity of ${fmt(capacity)} msg/s. The consumer pauses fetching`,
          `when its in-flight budget (${c.partitions * 4} messages) is full: the backlog stays in Kafka, where the LagMonitor sees it.`,
        ];
      case 'answer':
        return [
          `Orders of one customer must stay in order; orders of different customers need not. Same group,`,
          `ordering 'key' with concurrency ${c.keyConcurrency}: up to ${c.keyConcurrency} customers at once across ${c.partitions} partitions.`,
          `(More consumers would not help in 'partition' ordering: ${c.partitions} partitions × 1 message at a time is the ceiling.)`,
        ];
      case 'outage':
        return [
          `The downstream answers 503 for ${c.outageSeconds} s. The breaker opens, every partition pauses, and failures while it`,
          `is not closed cost no attempt: no healthy message is dead-lettered. A half-open probe tries every 2 s.`,
        ];
      case 'poison':
        return [
          `${c.poison} poison messages among the orders: ${Math.ceil(c.poison / 2)} not JSON (deserialization fails), ${Math.floor(c.poison / 2)} with a negative amount`,
          `(the handler throws NonRetriableError). Each goes to ${this.dlqTopic} at once, with headers; the partition moves on.`,
        ];
    }
  }

  async #baseline(): Promise<void> {
    const c = this.#config;
    await this.#use('partition');
    this.#load!.setRate(c.rate);
    this.#load!.start();
    const from = this.#timeline.now();
    await this.#wait(c.baselineSeconds);
    const peak = this.#peakLagSince(from);
    this.#log(
      'step.end',
      peak < c.warningLag ? 'good' : 'warn',
      `baseline: lag peaked at ${peak} (warning mark ${c.warningLag}); consuming ${fmt(this.#rate('consumeRate'))} msg/s`,
    );
  }

  async #burst(): Promise<void> {
    const c = this.#config;
    await this.#use('partition');
    this.#load!.setRate(c.burstRate);
    this.#load!.start();
    await this.#wait(c.burstSeconds);
    const last = this.#timeline.lag.at(-1);
    const peakInFlight = this.#peakInFlight.partition ?? 0;
    this.#facts.burstLag = last?.total ?? 0;
    this.#log(
      'step.end',
      'warn',
      `burst: lag ${last?.total ?? '?'} (${last?.status ?? '?'}), consuming ${fmt(this.#rate('consumeRate'))} msg/s ` +
        `(capacity ${fmt((c.partitions * 1000) / c.workMs)}); ` +
        `in-flight never above ${peakInFlight} (the budget): the backlog waits in Kafka, not in memory`,
    );
  }

  async #answer(): Promise<void> {
    const c = this.#config;
    const load = this.#load!;
    if (!c.steps.includes('burst')) {
      const backlog = Math.round((c.burstRate - (c.partitions * 1000) / c.workMs) * c.burstSeconds);
      this.#log(
        'backlog',
        'info',
        `no burst step ran: writing a backlog of ${backlog} orders at once`,
      );
      const written = this.#timeline.now();
      await load.backlog(backlog);
      // Let the monitor see it before the clock starts.
      await this.#until(() => this.#lagAfter(written + 0.2) !== undefined, 10);
    }
    load.setRate(c.rate);
    load.start();
    const switchAt = this.#timeline.now();
    await this.#use('key');
    const mark = this.#drainMark();
    const drained = await this.#until(() => {
      const round = this.#lagAfter(switchAt);
      return round !== undefined && round.total <= mark;
    });
    const seconds = this.#timeline.now() - switchAt;
    // The lag at its highest since the switch (it still grows while the old consumer closes).
    const startLag = Math.max(
      this.#timeline.lag.findLast((r) => r.t <= switchAt)?.total ?? 0,
      this.#peakLagSince(switchAt),
    );
    const peakRate = Math.max(
      0,
      ...this.#timeline.ticks.filter((x) => x.t >= switchAt).map((x) => x.consumeRate),
    );
    this.#facts.drain = {
      from: startLag,
      seconds: drained ? seconds : null,
      mark,
      peakConsumeRate: peakRate,
    };
    if (drained) {
      this.#log(
        'step.end',
        'good',
        `answer: lag ${startLag} at its peak -> under ${mark} in ${seconds.toFixed(1)} s from the switch` +
          (this.#facts.closeSeconds === undefined
            ? ''
            : ` (${this.#facts.closeSeconds.toFixed(1)} s of it closing the old consumer)`) +
          `, consuming up to ${fmt(peakRate)} msg/s (partition ordering: ${fmt((c.partitions * 1000) / c.workMs)})`,
      );
    } else if (!this.aborted) {
      this.#log(
        'step.end',
        'bad',
        `answer: lag still above ${mark} after ${c.stepTimeoutSeconds} s`,
      );
    }
    await this.#wait(2);
  }

  async #outage(): Promise<void> {
    const c = this.#config;
    await this.#use(this.#mode ?? 'key');
    this.#load!.setRate(c.rate);
    this.#load!.start();
    const dlqBefore = this.#deadLettered.size;
    const retriesBefore = this.#retries;
    this.#facts.circuitOpenedAt = undefined;
    this.#downstream.setDown(true);
    const downAt = this.#timeline.now();
    this.#timeline.open('outage', 'outage', 'downstream down');
    this.#log(
      'outage',
      'bad',
      `downstream DOWN: every call fails with 503 for ${c.outageSeconds} s`,
    );
    await this.#wait(c.outageSeconds);
    this.#downstream.setDown(false);
    const upAt = this.#timeline.now();
    this.#timeline.close('outage');
    this.#log('outage', 'good', 'downstream back up');
    const mark = this.#drainMark();
    const recovered = await this.#until(() => {
      const round = this.#lagAfter(this.#timeline.now() - 1.5);
      return (
        this.#consumer?.circuitState === 'closed' && round !== undefined && round.total <= mark
      );
    });
    const openedAt = this.#facts.circuitOpenedAt;
    const closedAt = this.#facts.circuitClosedAt;
    const outage = {
      circuitOpened: openedAt !== undefined && openedAt >= downAt,
      openedAfterSeconds: openedAt === undefined ? null : round1(openedAt - downAt),
      closedAfterSeconds:
        closedAt === undefined || closedAt < upAt ? null : round1(closedAt - upAt),
      drainedAfterSeconds: recovered ? round1(this.#timeline.now() - upAt) : null,
      deadLettered: this.#deadLettered.size - dlqBefore,
      retries: this.#retries - retriesBefore,
      downstreamFailures: this.#downstream.failures,
    };
    this.#facts.outage = outage;
    this.#log(
      'step.end',
      outage.circuitOpened && outage.deadLettered === 0 ? 'good' : 'bad',
      `outage: circuit opened ${outage.openedAfterSeconds ?? '-'} s after the downstream went down, closed ` +
        `${outage.closedAfterSeconds ?? '-'} s after it came back, lag back under ${mark} ` +
        `${outage.drainedAfterSeconds ?? '-'} s after; dead-lettered during the outage: ${outage.deadLettered}`,
    );
  }

  async #poison(): Promise<void> {
    const c = this.#config;
    const load = this.#load!;
    await this.#use(this.#mode ?? 'key');
    load.setRate(c.rate);
    load.start();
    const before = this.#deadLettered.size;
    const handledBefore = this.#handled.size;
    for (let i = 0; i < c.poison && !this.aborted; i++) {
      const kind: MessageKind = i % 2 === 0 ? 'malformed' : 'invalid';
      load.inject([kind]);
      await this.#wait(0.3);
    }
    const all = await this.#until(() => this.#deadLettered.size - before >= c.poison);
    const routed = this.#deadLettered.size - before;
    this.#log(
      'step.end',
      all ? 'good' : 'bad',
      `poison: ${routed} of ${c.poison} dead-lettered; ${this.#handled.size - handledBefore} orders handled meanwhile`,
    );
    if (routed === 0) return;
    const letters = await this.#readDeadLetters(1);
    const letter = letters[0];
    if (letter !== undefined) this.#view.lines(this.#formatLetter(letter));
  }

  // ---------------------------------------------------------------- the end

  async finish(): Promise<DemoSummary> {
    const t = this.#timeline;
    t.step = 'summary';
    t.open('step', 'step', 'summary');
    this.#log('step', 'step', 'Summary');
    const load = this.#load!;
    await load.stop();
    const produced = load.produced;
    const timeoutS = this.aborted ? 10 : this.#config.stepTimeoutSeconds;
    this.#log(
      'finish',
      'info',
      `producer stopped at ${produced} messages; waiting for the consumer to finish them`,
    );
    await this.#until(
      () => {
        for (const id of load.acked.keys())
          if (!this.#handled.has(id) && !this.#deadLettered.has(id)) return false;
        return true;
      },
      timeoutS,
      true,
    );
    await this.#consumer?.commit();
    // A final round after the last commit: the committed lag must be 0.
    let finalLag: number | undefined;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      finalLag = (await this.#monitor!.sample().catch(() => undefined))?.total.lag;
      if (finalLag === 0) break;
      await this.#consumer?.commit();
      await sleep(500);
    }
    const peakHandlers = this.#downstream.peakActive;
    // The panel stays where it is, showing the end state; the summary follows it.
    this.#view.stop();
    if (this.#consumer !== undefined) {
      await this.#consumer.close();
      this.#consumer = undefined;
    }
    await this.#monitor!.stop();
    const letters = await this.#readDeadLetters(this.#deadLettered.size);
    t.close('step');
    t.closeAll();

    const summary = computeSummary({
      config: this.#config,
      timeline: t,
      interrupted: this.aborted,
      acked: load.acked,
      produceFailures: load.failed,
      handled: this.#handled,
      deadLettered: this.#deadLettered,
      dlqTopicIds: letters.map((l) => idOf(l.headers)),
      finalLag: finalLag ?? null,
      peakInFlight: this.#peakInFlight,
      peakHandlers,
      retries: this.#retries,
      pauseCounts: this.#pauseCounts,
      facts: this.#facts,
    });
    this.#view.lines(['', ...summaryLines(summary, this.#view)]);
    return summary;
  }

  async teardown(): Promise<void> {
    if (this.#ticker) clearInterval(this.#ticker);
    await this.#consumer?.close().catch(() => undefined);
    await this.#monitor?.stop().catch(() => undefined);
    await this.#load?.close().catch(() => undefined);
    await this.#producer.disconnect().catch(() => undefined);
    if (this.#topicsCreated) {
      await this.#admin
        .deleteTopics({ topics: [this.topic, this.dlqTopic], timeout: 10_000 })
        .catch(() => undefined);
    }
    await this.#admin.disconnect().catch(() => undefined);
    await this.#monitorAdmin.disconnect().catch(() => undefined);
  }

  // ---------------------------------------------------------------- helpers

  async #readDeadLetters(atLeast: number): Promise<DeadLetter[]> {
    if (atLeast === 0) return [];
    const consumer = this.#kafka.consumer({
      groupId: `${this.topic}-dlq-reader-${Math.random().toString(36).slice(2, 8)}`,
      maxWaitTimeInMs: 100,
    });
    const letters: DeadLetter[] = [];
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [this.dlqTopic], fromBeginning: true });
      const ends = await this.#admin.fetchTopicOffsets(this.dlqTopic);
      const total = ends.reduce((n, p) => n + Number(p.high), 0);
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          letters.push({
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? null,
            value: message.value?.toString() ?? null,
            headers: message.headers ?? {},
          });
        },
      });
      const deadline = Date.now() + 20_000;
      while (letters.length < Math.max(atLeast, total) && Date.now() < deadline) await sleep(100);
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    return letters;
  }

  #formatLetter(letter: DeadLetter): string[] {
    const v = this.#view;
    const lines = [
      v.bold(
        `    one dead letter, read back from ${this.dlqTopic} (partition ${letter.partition}, offset ${letter.offset}):`,
      ),
      `      key     ${letter.key ?? 'null'}`,
      `      value   ${letter.value ?? 'null'}`,
      '      headers',
    ];
    for (const [name, value] of Object.entries(letter.headers)) {
      const text = Array.isArray(value) ? value.map(String).join(', ') : String(value);
      lines.push(`        ${name.padEnd(26)} ${v.dim(text)}`);
    }
    return lines;
  }

  #drainMark(): number {
    // Back to the baseline's level: about a second of production sits in
    // flight and between two commits at any time.
    return Math.max(10, Math.ceil(this.#config.rate * 2));
  }

  #peakLagSince(t: number): number {
    return Math.max(0, ...this.#timeline.lag.filter((r) => r.t >= t).map((r) => r.total));
  }

  #rate(which: 'produceRate' | 'consumeRate'): number {
    return this.#timeline.ticks.at(-1)?.[which] ?? 0;
  }

  #log(kind: string, level: EventLevel, text: string): void {
    this.#view.event(this.#timeline.event(kind, level, text));
  }

  /** Waits `seconds`, or less when interrupted. */
  async #wait(seconds: number): Promise<void> {
    await this.#until(() => false, seconds);
  }

  /** Polls `done` until it holds (true), the timeout passes or the run is interrupted (false). */
  async #until(
    done: () => boolean,
    timeoutSeconds = this.#config.stepTimeoutSeconds,
    evenIfAborted = false,
  ): Promise<boolean> {
    const deadline = performance.now() + timeoutSeconds * 1000;
    for (;;) {
      if (done()) return true;
      if ((this.aborted && !evenIfAborted) || performance.now() >= deadline) return false;
      await sleep(100);
    }
  }
}

interface DeadLetter {
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: IHeaders;
}

function idOf(headers: IHeaders | undefined): number | undefined {
  const raw = headers?.[ID_HEADER];
  const text = Array.isArray(raw) ? raw[0]?.toString() : raw?.toString();
  const id = Number(text);
  return text !== undefined && Number.isInteger(id) ? id : undefined;
}

function describePartitions(partitions: readonly { partition: number }[]): string {
  const ids = partitions.map((p) => p.partition).sort((a, b) => a - b);
  return ids.length === 1 ? `partition ${ids[0]}` : `partitions ${ids.join(',')}`;
}

function explainPause(reason: PauseReason): string {
  switch (reason) {
    case 'queue-full':
      return 'queue-full (in-flight budget reached; resumes at half)';
    case 'partition-full':
      return 'partition-full (this partition holds its fair share of a contended budget)';
    case 'circuit':
      return 'circuit (the breaker is open)';
    default:
      return reason;
  }
}

const fmt = (n: number | null): string => (n === null ? '?' : n.toFixed(1));
const round1 = (n: number): number => Math.round(n * 10) / 10;
