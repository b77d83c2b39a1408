/**
 * What the benchmark runs: the scenarios, their sizes (full and --quick), the
 * contenders of each scenario and the spec handed to a contender process.
 * Shared by bench/run.ts (the orchestrator) and bench/contender.ts (one run of
 * one contender, in a fresh process).
 */

export type ScenarioName =
  'overhead' | 'slow' | 'memory' | 'reaction' | 'producer' | 'fairness' | 'bulk';
export const SCENARIOS: readonly ScenarioName[] = [
  'overhead',
  'slow',
  'memory',
  'reaction',
  'producer',
  'fairness',
  'bulk',
];

export const ORDERINGS = ['partition', 'key', 'unordered'] as const;
export type Ordering = (typeof ORDERINGS)[number];

/** How a contender consumes; bench/contender.ts implements each kind. */
export type ContenderKind =
  /** Plain KafkaJS eachBatch: await the handler per message, resolve and heartbeat per batch, auto commit. */
  | 'kafkajs-batch'
  /** Plain KafkaJS eachMessage with partitionsConsumedConcurrently. */
  | 'kafkajs-message'
  /** Plain KafkaJS eachBatch pushing every message into an unbounded in-process queue, drained by N workers. */
  | 'kafkajs-naive-queue'
  /** The library: BackpressureConsumer with `library` options. */
  | 'library'
  /** The library in the fairness scenario: partition 0's handler is slow when `slowPartition`. */
  | 'library-fairness'
  /** The library, with a scripted downstream for the reaction scenario. */
  | 'library-latency-jump'
  | 'library-breaker'
  /** The library against a downstream that slows down for `ReactionPlan.spikeMs` (`ContenderDef.spike`). */
  | 'library-spike'
  /** The library against a bulk sink (`BulkPlan` costs): per-message `handler` or `batchHandler` (`ContenderDef.bulk`). */
  | 'library-bulk'
  /** Plain KafkaJS producer: `producer.send` per record. */
  | 'kafkajs-producer'
  /** The library: RateLimitedProducer over the same KafkaJS producer, `send` per record. */
  | 'library-producer';

/** JSON-safe subset of BackpressureConsumerOptions the bench sets. */
export interface LibraryOptions {
  ordering?: Ordering;
  concurrency?: number;
  maxInFlight?: number;
  maxInFlightBytes?: number;
  commitIntervalMs?: number;
  commitEveryMessages?: number;
  latency?: { pauseAboveMs: number; resumeBelowMs?: number; windowMs?: number; probes?: number };
  adaptiveConcurrency?: { targetLatencyMs: number; minConcurrency?: number; intervalMs?: number };
  circuitBreaker?: { resetTimeoutMs?: number; rollingCountTimeoutMs?: number } | false;
  partitionsConsumedConcurrently?: number;
  batch?: { maxMessages?: number; maxWaitMs?: number };
}

export interface ContenderDef {
  /** Short stable id, used in the JSON. */
  readonly id: string;
  /** What the table shows. */
  readonly label: string;
  readonly kind: ContenderKind;
  /** The reference of the scenario: ratios are taken against it. */
  readonly reference?: boolean;
  readonly library?: LibraryOptions;
  /** kafkajs-message: partitionsConsumedConcurrently. */
  readonly partitionsConsumedConcurrently?: number;
  /** kafkajs-naive-queue: workers draining the queue. */
  readonly workers?: number;
  /** kafkajs-producer, library-producer: how the messages are sent. */
  readonly load?: ProducerLoad;
  /**
   * library-producer: `messagesPerSecond` set to this, and the run measures
   * the rate reached over `ProducerPlan.rateWindowMs`. Without it the
   * producer has no limit and the run measures throughput.
   */
  readonly rateTarget?: number;
  /** Ratios are taken against this contender (same round) instead of the scenario's reference. */
  readonly versus?: string;
  /**
   * library: Prometheus metrics registered with prom-client (`registerMetrics`)
   * and the registry scraped every `METRICS_SCRAPE_MS`, as a service would.
   */
  readonly metrics?: boolean;
  /**
   * library: a subscriber with no-op functions on every tracing channel
   * (`TRACING_CHANNELS`), so the traced path runs for every message.
   */
  readonly tracing?: boolean;
  /** library-fairness: partition 0's handler takes `FairnessPlan.slowMs` per message. */
  readonly slowPartition?: boolean;
  /**
   * library-spike: the downstream during the spike. `capacity`: it has
   * `ReactionPlan.spikeSlots` slots of `spikeBaseMs` each, so latency grows
   * with the concurrency sent past them; `fixed`: every call takes
   * `spikeBaseMs`, whatever the concurrency.
   */
  readonly spike?: 'capacity' | 'fixed';
  /** library-bulk: one sink call per message (`handler`) or per batch (`batchHandler`). */
  readonly bulk?: 'message' | 'batch';
}

/**
 * A bulk sink (issue 18): each call costs `callMs` plus `perMessageMs` per
 * message in it, whatever the concurrency.
 */
export interface BulkPlan extends TopicPlan {
  readonly callMs: number;
  readonly perMessageMs: number;
  readonly concurrency: number;
  readonly maxMessages: number;
  readonly durationMs: number;
}

/** How often a metrics contender scrapes its registry. */
export const METRICS_SCRAPE_MS = 5000;

/** `senders` loops, each sending a record of `recordMessages` and awaiting it before the next. */
export interface ProducerLoad {
  readonly recordMessages: number;
  readonly senders: number;
}

export interface TopicPlan {
  readonly messages: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly partitions: number;
  /**
   * Every partition gets the same number of messages, and each key stays in
   * one partition; otherwise the Java-compatible partitioner places them by key.
   */
  readonly exactPartitions?: boolean;
}

export interface ReactionPlan {
  /** Healthy (5 ms) flow before the change. */
  readonly warmupMs: number;
  readonly fastMs: number;
  readonly slowMs: number;
  /** Give up waiting for a reaction after this long. */
  readonly reactTimeoutMs: number;
  /** Downstream recovers this long after the circuit opened. */
  readonly recoverAfterOpenMs: number;
  /** Give up waiting for full flow after recovery after this long. */
  readonly recoverTimeoutMs: number;
  /** Full flow: throughput over the trailing window back at this fraction of the warm-up rate. */
  readonly fullFlowFraction: number;
  readonly fullFlowWindowMs: number;
  /** library-spike: how long the downstream stays slow. */
  readonly spikeMs: number;
  /** library-spike: the downstream's latency during the spike without queueing. */
  readonly spikeBaseMs: number;
  /** library-spike, capacity model: calls the downstream serves at once at its base latency. */
  readonly spikeSlots: number;
  /** library-spike: the spike's figures are taken from this long after it began. */
  readonly spikeSettleMs: number;
}

export interface ProducerPlan extends TopicPlan {
  /** Throughput runs (no limit) end after `messages` are acknowledged or after this long. */
  readonly maxRunMs: number;
  /** Rate runs: the measured window, from the first send. */
  readonly rateWindowMs: number;
}

/**
 * One slow partition among fast ones. Each partition holds `perPartition`
 * messages; each key lives in one partition, as the default partitioner
 * would place it. Partition 0 is the slow one; the runs count only the
 * messages of the other partitions.
 */
export interface FairnessPlan extends TopicPlan {
  readonly perPartition: number;
  /** Handler time per message of partition 0 in the slow runs. */
  readonly slowMs: number;
  readonly concurrency: number;
  /** A run ends when the other partitions are done or this long after their first message. */
  readonly durationMs: number;
}

export interface Plan {
  readonly quick: boolean;
  readonly rounds: number;
  readonly overhead: TopicPlan;
  readonly slow: TopicPlan & { readonly handlerMs: number; readonly durationMs: number };
  readonly memory: TopicPlan & {
    readonly handlerMs: number;
    readonly durationMs: number;
    readonly concurrency: number;
    readonly maxInFlightBytes: number;
  };
  readonly reaction: TopicPlan & ReactionPlan;
  readonly producer: ProducerPlan;
  readonly fairness: FairnessPlan;
  readonly bulk: BulkPlan;
  readonly contenders: Record<ScenarioName, readonly ContenderDef[]>;
}

const MiB = 1024 * 1024;
const bulkLoad: ProducerLoad = { recordMessages: 1000, senders: 5 };
const singleLoad: ProducerLoad = { recordMessages: 1, senders: 1000 };

/**
 * The downstream spikes of issue #21: both models, the library without the
 * latency features, with the adaptive limit only, with the limit and the
 * issue's latency pause (100 / 50 ms, under the downstream's base latency
 * in the spike, so it holds for the whole spike by design), and with the
 * limit and a pause above twice the base latency (a safety net).
 */
function spikeContenders(): ContenderDef[] {
  const base: LibraryOptions = { ordering: 'unordered', concurrency: 32 };
  const limit = { targetLatencyMs: 100, minConcurrency: 2 };
  const variants: [string, string, LibraryOptions][] = [
    ['without', 'without the features', base],
    ['limit', 'adaptive limit', { ...base, adaptiveConcurrency: limit }],
    [
      'limit-pause',
      'adaptive limit + pause 100 / 50 ms',
      { ...base, adaptiveConcurrency: limit, latency: { pauseAboveMs: 100, resumeBelowMs: 50 } },
    ],
    [
      // A short window carries the slow calls within a second, while the
      // limit is still cutting: the pause must let it act first.
      'limit-pause-1s',
      'adaptive limit + pause 100 / 50 ms, 1 s window',
      {
        ...base,
        adaptiveConcurrency: limit,
        latency: { pauseAboveMs: 100, resumeBelowMs: 50, windowMs: 1000 },
      },
    ],
    [
      'limit-pause-high',
      'adaptive limit + pause 700 / 400 ms',
      { ...base, adaptiveConcurrency: limit, latency: { pauseAboveMs: 700, resumeBelowMs: 400 } },
    ],
  ];
  return (['capacity', 'fixed'] as const).flatMap((model) =>
    variants.map(([id, label, library]): ContenderDef => ({
      id: `spike-${model}-${id}`,
      label: `${model} model, ${label}`,
      kind: 'library-spike',
      spike: model,
      library,
    })),
  );
}

export function makePlan(opts: { quick: boolean; rounds?: number; messages?: number }): Plan {
  const q = opts.quick;
  const reactionLibrary = (q: boolean): LibraryOptions => ({
    ordering: 'key',
    concurrency: 32,
    // The triggers under test, at their default windows unless --quick.
    latency: q ? { pauseAboveMs: 100, windowMs: 2000 } : { pauseAboveMs: 100 },
    adaptiveConcurrency: q ? { targetLatencyMs: 50, intervalMs: 250 } : { targetLatencyMs: 50 },
  });
  const breakerLibrary = (q: boolean): LibraryOptions => ({
    ordering: 'key',
    concurrency: 32,
    circuitBreaker: q ? { resetTimeoutMs: 2000, rollingCountTimeoutMs: 2000 } : {},
  });
  return {
    quick: q,
    rounds: opts.rounds ?? (q ? 1 : 3),
    overhead: {
      // The targets are medians over 1M messages: with fewer, a run is so
      // short that the reference's own spread swamps a 5% difference.
      messages: opts.messages ?? (q ? 30_000 : 1_000_000),
      valueBytes: 200,
      keys: 1000,
      partitions: 6,
    },
    slow: {
      messages: q ? 40_000 : 250_000,
      valueBytes: 100,
      keys: 1000,
      partitions: 6,
      handlerMs: 10,
      durationMs: q ? 2000 : 8000,
    },
    memory: {
      // 10 KB messages; the full run uses 400 MB of backlog, not the 1 GB of
      // the issue, to keep the whole run near 15 minutes on a 2-core box.
      messages: q ? 3_000 : 40_000,
      valueBytes: 10 * 1024,
      keys: 1000,
      partitions: 6,
      handlerMs: 20,
      durationMs: q ? 4000 : 30_000,
      concurrency: 16,
      maxInFlightBytes: 16 * MiB,
    },
    reaction: {
      messages: q ? 60_000 : 200_000,
      valueBytes: 200,
      keys: 1000,
      partitions: 6,
      warmupMs: q ? 1500 : 4000,
      fastMs: 5,
      slowMs: 200,
      reactTimeoutMs: q ? 8000 : 20_000,
      recoverAfterOpenMs: 1000,
      recoverTimeoutMs: q ? 10_000 : 30_000,
      fullFlowFraction: 0.9,
      fullFlowWindowMs: 500,
      spikeMs: q ? 8000 : 20_000,
      spikeBaseMs: 300,
      spikeSlots: 8,
      spikeSettleMs: 3000,
    },
    producer: {
      messages: q ? 20_000 : 200_000,
      valueBytes: 200,
      keys: 1000,
      partitions: 6,
      maxRunMs: q ? 3000 : 10_000,
      rateWindowMs: q ? 2000 : 10_000,
    },
    fairness: fairnessPlan(q),
    bulk: bulkPlan(q),
    contenders: {
      overhead: [
        { id: 'kafkajs', label: 'KafkaJS eachBatch', kind: 'kafkajs-batch', reference: true },
        ...ORDERINGS.map((ordering): ContenderDef => ({
          id: `lib-${ordering}`,
          label: `library, ${ordering}`,
          kind: 'library',
          library: { ordering },
        })),
        // The commit cadence before commits followed completions (every 5 s
        // only), against today's default (500 completions or 1 s): what the
        // prompter commits cost.
        {
          id: 'lib-key-commit-5s',
          label: 'library, key, commits every 5 s only',
          kind: 'library',
          library: { ordering: 'key', commitIntervalMs: 5000, commitEveryMessages: 1e9 },
          versus: 'lib-key',
        },
        // Each mode again with metrics registered and scraped: its ratio is
        // taken against the same mode without metrics (and, in a column of
        // its own, against KafkaJS).
        ...ORDERINGS.map((ordering): ContenderDef => ({
          id: `lib-${ordering}-metrics`,
          label: `library, ${ordering}, metrics registered`,
          kind: 'library',
          library: { ordering },
          metrics: true,
          versus: `lib-${ordering}`,
        })),
        // The default mode with a tracing subscriber attached: its ratio is
        // taken against the same mode without one (whose row is today's).
        {
          id: 'lib-partition-tracing',
          label: 'library, partition, tracing subscriber attached',
          kind: 'library',
          library: { ordering: 'partition' },
          tracing: true,
          versus: 'lib-partition',
        },
      ],
      slow: [
        {
          id: 'kafkajs',
          label: 'KafkaJS eachMessage, 6 partitions concurrently',
          kind: 'kafkajs-message',
          reference: true,
          partitionsConsumedConcurrently: 6,
        },
        {
          id: 'lib-key-64',
          label: 'library, key, concurrency 64, partitionsConsumedConcurrently 6',
          kind: 'library',
          library: { ordering: 'key', concurrency: 64, partitionsConsumedConcurrently: 6 },
        },
        {
          id: 'lib-key-256',
          label: 'library, key, concurrency 256, partitionsConsumedConcurrently 6',
          kind: 'library',
          library: { ordering: 'key', concurrency: 256, partitionsConsumedConcurrently: 6 },
        },
        // The library's defaults apart from ordering and concurrency: no
        // partitionsConsumedConcurrently, whatever the library makes of that.
        {
          id: 'lib-key-256-default',
          label: 'library, key, concurrency 256, partitionsConsumedConcurrently not set (default)',
          kind: 'library',
          library: { ordering: 'key', concurrency: 256 },
        },
      ],
      memory: [
        {
          id: 'kafkajs-naive',
          label: 'KafkaJS + unbounded queue',
          kind: 'kafkajs-naive-queue',
          reference: true,
          workers: 16,
        },
        {
          id: 'lib-key',
          label: 'library, key, maxInFlightBytes 16 MiB',
          kind: 'library',
          library: {
            ordering: 'key',
            concurrency: 16,
            // Bytes, not messages, must be the bound that binds here.
            maxInFlight: 1_000_000,
            maxInFlightBytes: 16 * MiB,
          },
        },
      ],
      reaction: [
        {
          id: 'latency-jump',
          label: 'library, latency 5 -> 200 ms',
          kind: 'library-latency-jump',
          library: reactionLibrary(q),
        },
        {
          id: 'breaker',
          label: 'library, downstream fails then recovers',
          kind: 'library-breaker',
          library: breakerLibrary(q),
        },
        ...spikeContenders(),
      ],
      producer: [
        // Records as large as the library's maxBatchMessages, as many senders
        // as its maxInFlightRequests: both send the very same requests, so
        // the ratio is the library's own cost.
        {
          id: 'kafkajs',
          label: 'KafkaJS producer, records of 1,000, 5 senders',
          kind: 'kafkajs-producer',
          reference: true,
          load: bulkLoad,
        },
        {
          id: 'lib-unlimited',
          label: 'RateLimitedProducer, no limit, records of 1,000, 5 senders',
          kind: 'library-producer',
          load: bulkLoad,
        },
        // The usual application shape: one message per send, many callers.
        // KafkaJS makes one request per send; the library batches what waits.
        {
          id: 'kafkajs-single',
          label: 'KafkaJS producer, one-message sends, 1,000 callers',
          kind: 'kafkajs-producer',
          load: singleLoad,
        },
        {
          id: 'lib-single',
          label: 'RateLimitedProducer, no limit, one-message sends, 1,000 callers',
          kind: 'library-producer',
          load: singleLoad,
          versus: 'kafkajs-single',
        },
        {
          id: 'lib-rate-1000',
          label: 'RateLimitedProducer, 1,000 msg/s',
          kind: 'library-producer',
          load: singleLoad,
          rateTarget: 1000,
        },
        {
          id: 'lib-rate-10000',
          label: 'RateLimitedProducer, 10,000 msg/s',
          kind: 'library-producer',
          load: singleLoad,
          rateTarget: 10_000,
        },
      ],
      fairness: fairnessContenders(),
      bulk: bulkContenders(),
    },
  };
}

const BULK_CONCURRENCY = 4;
const BULK_MAX_MESSAGES = 500;

/** The same consumer, one sink call per message or per batch of 500, at equal concurrency. */
function bulkContenders(): ContenderDef[] {
  // Room for every batch in flight at once, for both contenders alike.
  const library: LibraryOptions = {
    ordering: 'key',
    concurrency: BULK_CONCURRENCY,
    maxInFlight: BULK_CONCURRENCY * BULK_MAX_MESSAGES * 2,
  };
  return [
    {
      id: 'bulk-message',
      label: `library, key, handler (a sink call per message), concurrency ${BULK_CONCURRENCY}`,
      kind: 'library-bulk',
      reference: true,
      bulk: 'message',
      library,
    },
    {
      id: 'bulk-batch',
      label: `library, key, batchHandler maxMessages ${BULK_MAX_MESSAGES}, concurrency ${BULK_CONCURRENCY}`,
      kind: 'library-bulk',
      bulk: 'batch',
      library: { ...library, batch: { maxMessages: BULK_MAX_MESSAGES } },
    },
  ];
}

function bulkPlan(q: boolean): BulkPlan {
  return {
    messages: q ? 40_000 : 200_000,
    valueBytes: 100,
    keys: 1000,
    partitions: 6,
    callMs: 20,
    perMessageMs: 0.05,
    concurrency: BULK_CONCURRENCY,
    maxMessages: BULK_MAX_MESSAGES,
    durationMs: q ? 4000 : 8000,
  };
}

function fairnessPlan(q: boolean): FairnessPlan {
  const perPartition = q ? 2000 : 10_000;
  const partitions = 6;
  return {
    messages: perPartition * partitions,
    perPartition,
    valueBytes: 200,
    keys: 1000,
    partitions,
    exactPartitions: true,
    slowMs: 2000,
    concurrency: 16,
    durationMs: q ? 3000 : 10_000,
  };
}

/** partitionsConsumedConcurrently of the fairness rows: not set (the library's default), and 6. */
export const FAIRNESS_PCC = [undefined, 6] as const;

/**
 * Each ordering mode and each partitionsConsumedConcurrently, with partition 0
 * slow and without (the baseline the slow run is measured against).
 */
function fairnessContenders(): ContenderDef[] {
  const defs: ContenderDef[] = [];
  for (const ordering of ORDERINGS) {
    for (const pcc of FAIRNESS_PCC) {
      const id = fairnessId(ordering, pcc);
      const library: LibraryOptions = {
        ordering,
        concurrency: 16,
        ...(pcc !== undefined ? { partitionsConsumedConcurrently: pcc } : {}),
      };
      const setting = `partitionsConsumedConcurrently ${pcc ?? 'not set'}`;
      defs.push(
        {
          id: `${id}-base`,
          label: `library, ${ordering}, ${setting}, every partition instant`,
          kind: 'library-fairness',
          library,
        },
        {
          id: `${id}-slow`,
          label: `library, ${ordering}, ${setting}, partition 0 slow`,
          kind: 'library-fairness',
          library,
          slowPartition: true,
          versus: `${id}-base`,
        },
      );
    }
  }
  return defs;
}

export function fairnessId(ordering: Ordering, pcc: number | undefined): string {
  return `fair-${ordering}-${pcc === undefined ? 'default' : `pcc${pcc}`}`;
}

/** Everything a contender process needs, passed as one JSON argument. */
export interface ContenderSpec {
  readonly scenario: ScenarioName;
  readonly contender: ContenderDef;
  readonly round: number;
  readonly brokers: string[];
  readonly topic: string;
  readonly groupId: string;
  /** Stop once this many messages were handled... */
  readonly target: number;
  /** ...or this long after the first message, whichever comes first. */
  readonly durationMs: number | undefined;
  readonly handlerMs: number;
  readonly reaction: ReactionPlan | undefined;
  readonly producer: ProducerPlan | undefined;
  readonly fairness: FairnessPlan | undefined;
  readonly bulk: BulkPlan | undefined;
  /** Module the library is imported from (src/index.ts unless --lib). */
  readonly libPath: string;
  /** Where the contender writes its ContenderResult. */
  readonly out: string;
}

export interface MemorySample {
  /** ms since the first message (negative before it). */
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** library only: handlers running, messages in flight. */
  readonly active?: number;
  readonly inFlight?: number;
}

export interface MemoryStats {
  readonly peakRss: number;
  readonly peakHeapUsed: number;
  readonly peakExternal: number;
  readonly peakArrayBuffers: number;
  /** RSS at 25, 50, 75 and 100% of the measured run. */
  readonly rssAt: readonly [number, number, number, number];
  readonly heapUsedAt: readonly [number, number, number, number];
}

export interface ContenderResult {
  readonly scenario: ScenarioName;
  readonly contender: string;
  readonly round: number;
  readonly ok: boolean;
  readonly error?: string;
  /** Messages handled (producer: acknowledged) in the measured window. */
  readonly messages: number;
  /** First message handled to the last one counted (producer: from the first send). */
  readonly elapsedMs: number;
  readonly rate: number;
  /** From process start to the first message (connect, join, first fetch). */
  readonly startupMs: number;
  readonly memory: MemoryStats;
  readonly samples?: readonly MemorySample[];
  /** Scenario-specific figures (reaction times, queue peaks, handler occupancy). */
  readonly extra: Record<string, number | string | boolean | null>;
  readonly loadavg: readonly [number, number];
}
