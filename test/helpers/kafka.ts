// Helpers for tests that talk to a real Kafka broker (integration and fault
// projects). The broker address comes from KAFKA_BROKERS, which
// test/global-setup.ts sets (starting a broker) unless it was already set.
//
// Admin and producer connections are created lazily and cached per module
// instance; vitest isolates test files, so each file gets its own and must call
// disconnectAll() in afterAll.

import { randomBytes } from 'node:crypto';
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type ITopicConfig,
  type KafkaConfig,
  type Message,
  type Producer,
  type ProducerConfig,
  type RecordMetadata,
} from 'kafkajs';

/** Broker list from KAFKA_BROKERS (comma separated). */
export function brokers(): string[] {
  const raw = process.env['KAFKA_BROKERS'];
  const list = (raw ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (list.length === 0) {
    throw new Error(
      'KAFKA_BROKERS is not set. Run these tests through `npx vitest run --project integration` ' +
        '(its global setup starts a broker), `node scripts/kafka.mjs run -- <command>`, or set ' +
        'KAFKA_BROKERS=host:port for an existing broker (e.g. `docker compose up -d`).',
    );
  }
  return list;
}

/**
 * A KafkaJS client for the test broker. Logging is off by default: KafkaJS
 * logs expected errors (rebalances, retried requests) loudly, which buries
 * real failures in the test output. Pass `{ logLevel: logLevel.ERROR }` when
 * debugging.
 */
export function newKafka(clientId = uniqueName('test'), config: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId,
    brokers: brokers(),
    logLevel: logLevel.NOTHING,
    // Local broker: fail fast instead of KafkaJS's multi-second defaults.
    connectionTimeout: 3000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
    ...config,
  });
}

/**
 * `prefix-<time>-<random>`. Topic and group names must be unique per test:
 * the broker outlives a test file (and, with a user-provided KAFKA_BROKERS,
 * the test run), so reused names would see stale data and committed offsets.
 * Only characters legal in topic names ([a-zA-Z0-9._-]) are kept.
 */
export function uniqueName(prefix = 't'): string {
  const safe = prefix.replace(/[^a-zA-Z0-9._-]/g, '-');
  return `${safe}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// cached connections

let kafka: Kafka | undefined;
let adminPromise: Promise<Admin> | undefined;
let producerPromise: Promise<Producer> | undefined;
const tracked = new Set<{ disconnect(): Promise<void> }>();

function sharedKafka(): Kafka {
  kafka ??= newKafka(uniqueName('test-helpers'));
  return kafka;
}

/** The file's shared, connected admin client. */
export function getAdmin(): Promise<Admin> {
  if (!adminPromise) {
    const p = (async () => {
      const admin = sharedKafka().admin();
      await admin.connect();
      return admin;
    })();
    // A failed connect must not poison every later call in the file.
    p.catch(() => {
      if (adminPromise === p) adminPromise = undefined;
    });
    adminPromise = p;
  }
  return adminPromise;
}

/**
 * The file's shared, connected producer. Idempotent: under load a produce
 * request can time out after the broker stored it, and a plain producer's
 * retry would then store those values twice, which a test counting
 * duplicates by value would blame on the consumer (seen: 494 records for
 * 300 sent; likely also the 406-duplicate rebalance test failure in CI).
 */
export function getProducer(): Promise<Producer> {
  if (!producerPromise) {
    const p = (async () => {
      const producer = sharedKafka().producer({
        allowAutoTopicCreation: false,
        idempotent: true,
        maxInFlightRequests: 1,
      });
      await producer.connect();
      return producer;
    })();
    p.catch(() => {
      if (producerPromise === p) producerPromise = undefined;
    });
    producerPromise = p;
  }
  return producerPromise;
}

/** Registers any client (consumer, extra producer) to be disconnected by disconnectAll(). */
export function track<T extends { disconnect(): Promise<void> }>(client: T): T {
  tracked.add(client);
  return client;
}

/** A consumer in `groupId`, tracked for disconnectAll(), with short timeouts suited to a local broker. */
export function newConsumer(groupId: string, config: Partial<ConsumerConfig> = {}): Consumer {
  return track(
    sharedKafka().consumer({
      groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 10_000,
      maxWaitTimeInMs: 200,
      ...config,
    }),
  );
}

/** An extra producer (e.g. with other options), tracked for disconnectAll(). */
export function newProducer(config: ProducerConfig = {}): Producer {
  return track(sharedKafka().producer({ allowAutoTopicCreation: false, ...config }));
}

/** Disconnects everything this file created; call from afterAll. Never throws. */
export async function disconnectAll(): Promise<void> {
  const clients: Array<Promise<{ disconnect(): Promise<void> } | undefined>> = [
    ...[...tracked].map((c) => Promise.resolve(c)),
    adminPromise?.catch(() => undefined) ?? Promise.resolve(undefined),
    producerPromise?.catch(() => undefined) ?? Promise.resolve(undefined),
  ];
  tracked.clear();
  adminPromise = undefined;
  producerPromise = undefined;
  kafka = undefined;
  await Promise.all(
    clients.map(async (p) => {
      const client = await p;
      await client?.disconnect().catch(() => {});
    }),
  );
}

// ---------------------------------------------------------------------------
// topics, messages, offsets

export interface CreateTopicOptions {
  /** Topic-level configs, e.g. `{ 'retention.ms': 60000 }`. */
  configs?: Record<string, string | number>;
  replicationFactor?: number;
  configEntries?: ITopicConfig['configEntries'];
}

/**
 * Creates a topic and waits until every partition has a leader, so the next
 * produce/consume does not race the broker's metadata. Throws if the topic
 * already exists: with unique names that always means a test bug.
 *
 * KafkaJS's own `waitForLeaders` is not used: under KRaft the controller
 * acknowledges the creation before the broker's metadata cache has the
 * topic, and KafkaJS retries only LEADER_NOT_AVAILABLE, not the
 * UNKNOWN_TOPIC_OR_PARTITION it gets meanwhile (seen with Kafka 3.9.1).
 */
export async function createTopic(
  name: string,
  partitions = 1,
  extra: CreateTopicOptions = {},
): Promise<string> {
  const admin = await getAdmin();
  const configEntries = [
    ...(extra.configEntries ?? []),
    ...Object.entries(extra.configs ?? {}).map(([n, v]) => ({ name: n, value: String(v) })),
  ];
  const created = await admin.createTopics({
    waitForLeaders: false,
    topics: [
      {
        topic: name,
        numPartitions: partitions,
        replicationFactor: extra.replicationFactor ?? 1,
        ...(configEntries.length > 0 ? { configEntries } : {}),
      },
    ],
  });
  if (!created) throw new Error(`topic ${name} already exists`);
  await waitFor(
    async () => {
      const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
      const parts = topics[0]?.partitions ?? [];
      return parts.length === partitions && parts.every((p) => p.leader >= 0);
    },
    {
      timeoutMs: 30_000,
      intervalMs: 50,
      message: `leaders for all ${partitions} partitions of ${name}`,
    },
  );
  return name;
}

// Stays well under the broker's 1 MB message.max.bytes per partition batch.
const PRODUCE_CHUNK = 500;

/**
 * Produces with acks=all, in chunks, in order: within a chunk KafkaJS keeps
 * per-partition order, and chunks are awaited one after another.
 */
export async function produceMessages(
  topic: string,
  messages: Message[],
): Promise<RecordMetadata[]> {
  const producer = await getProducer();
  const results: RecordMetadata[] = [];
  for (let i = 0; i < messages.length; i += PRODUCE_CHUNK) {
    const chunk = messages.slice(i, i + PRODUCE_CHUNK);
    results.push(...(await producer.send({ topic, messages: chunk, acks: -1 })));
  }
  return results;
}

/**
 * Committed offset per partition for a group (the next offset to consume,
 * Kafka's convention). Partitions without a commit are absent, not -1, so
 * `map.get(p) ?? 0` reads naturally.
 */
export async function committedOffsets(
  groupId: string,
  topic: string,
): Promise<Map<number, number>> {
  const admin = await getAdmin();
  const result = await admin.fetchOffsets({ groupId, topics: [topic] });
  const map = new Map<number, number>();
  for (const { partitions } of result) {
    for (const { partition, offset } of partitions) {
      const n = Number(offset);
      if (n >= 0) map.set(partition, n);
    }
  }
  return map;
}

/** High watermark (offset of the next message to be written) per partition. */
export async function endOffsets(topic: string): Promise<Map<number, number>> {
  const admin = await getAdmin();
  const result = await admin.fetchTopicOffsets(topic);
  return new Map(result.map(({ partition, high }) => [partition, Number(high)]));
}

// ---------------------------------------------------------------------------
// polling

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What was being waited for; shown in the timeout error. */
  message?: string | (() => string);
}

/**
 * Polls `predicate` until it returns a truthy value (which is returned).
 * A throwing predicate counts as "not yet" (the broker may be mid-rebalance),
 * and its last error is included in the timeout error so a stuck wait explains
 * itself instead of just saying "timed out".
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  { timeoutMs = 30_000, intervalMs = 100, message }: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() - started >= timeoutMs) {
      const what = typeof message === 'function' ? message() : (message ?? 'condition');
      const cause =
        lastError === undefined
          ? ''
          : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${what}${cause}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Waits until the group's committed offsets equal the topic's end offsets on every partition. */
export async function expectCommittedAtEnd(groupId: string, topic: string): Promise<void> {
  const ends = await endOffsets(topic);
  await waitFor(
    async () => {
      const committed = await committedOffsets(groupId, topic);
      return [...ends].every(([partition, end]) => committed.get(partition) === end);
    },
    {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: `group ${groupId} did not commit to the end of ${topic}`,
    },
  );
}
