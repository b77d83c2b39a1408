/**
 * What the benchmark runs: the scenarios, their sizes (full and --quick), the
 * contenders of each scenario and the spec handed to a contender process.
 * Shared by bench/run.ts (the orchestrator) and bench/contender.ts (one run of
 * one contender, in a fresh process).
 */

export type ScenarioName = 'overhead' | 'slow' | 'memory' | 'reaction';
export const SCENARIOS: readonly ScenarioName[] = ['overhead', 'slow', 'memory', 'reaction'];

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
  /** The library, with a scripted downstream for the reaction scenario. */
  | 'library-latency-jump'
  | 'library-breaker';

/** JSON-safe subset of BackpressureConsumerOptions the bench sets. */
export interface LibraryOptions {
  ordering?: 'partition' | 'key' | 'unordered';
  concurrency?: number;
  maxInFlight?: number;
  maxInFlightBytes?: number;
  commitIntervalMs?: number;
  latency?: { pauseAboveMs: number; resumeBelowMs?: number; windowMs?: number };
  adaptiveConcurrency?: { targetLatencyMs: number; minConcurrency?: number; intervalMs?: number };
  circuitBreaker?: { resetTimeoutMs?: number; rollingCountTimeoutMs?: number } | false;
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
}

export interface TopicPlan {
  readonly messages: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly partitions: number;
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
  readonly contenders: Record<ScenarioName, readonly ContenderDef[]>;
}

const MiB = 1024 * 1024;

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
      messages: opts.messages ?? (q ? 30_000 : 300_000),
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
    },
    contenders: {
      overhead: [
        { id: 'kafkajs', label: 'KafkaJS eachBatch', kind: 'kafkajs-batch', reference: true },
        {
          id: 'lib-partition',
          label: 'library, partition',
          kind: 'library',
          library: { ordering: 'partition' },
        },
        { id: 'lib-key', label: 'library, key', kind: 'library', library: { ordering: 'key' } },
        {
          id: 'lib-unordered',
          label: 'library, unordered',
          kind: 'library',
          library: { ordering: 'unordered' },
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
          label: 'library, key, concurrency 64',
          kind: 'library',
          library: { ordering: 'key', concurrency: 64 },
        },
        {
          id: 'lib-key-256',
          label: 'library, key, concurrency 256',
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
      ],
    },
  };
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
  /** Messages handled in the measured window. */
  readonly messages: number;
  /** First message handled to the last one counted. */
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
