/**
 * The scaffolding the examples share, kept out of them so each example shows
 * only the library: a KafkaJS client for KAFKA_BROKERS, topics created and
 * ready, and a promise that resolves on Ctrl-C. Your service has its own
 * versions of these.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';

export function kafkaFromEnv(clientId: string): Kafka {
  const brokers = (process.env['KAFKA_BROKERS'] ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) {
    console.error(
      'KAFKA_BROKERS is not set. Run an example with `npm run example -- examples/<name>.ts` ' +
        '(it starts a local broker), or set KAFKA_BROKERS=host:port.',
    );
    process.exit(2);
  }
  // KafkaJS's own logs are off so the library's events are what you read.
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, connectionTimeout: 5000 });
}

/** A name no earlier run used: examples never see each other's data or offsets. */
export function fresh(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}`;
}

/**
 * Creates topics and waits until each partition has a leader. Under KRaft the
 * controller acknowledges before the broker's metadata has the topic, and
 * KafkaJS's `waitForLeaders` does not retry that, so this polls.
 */
export async function createTopics(
  admin: Admin,
  topics: readonly { topic: string; partitions?: number }[],
): Promise<void> {
  await admin.createTopics({
    waitForLeaders: false,
    topics: topics.map((t) => ({
      topic: t.topic,
      numPartitions: t.partitions ?? 1,
      replicationFactor: 1,
    })),
  });
  const names = topics.map((t) => t.topic);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { topics: found } = await admin
      .fetchTopicMetadata({ topics: names })
      .catch(() => ({ topics: [] }));
    if (
      found.length === names.length &&
      found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))
    ) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`topics ${names.join(', ')} have no leader`);
    await sleep(100);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

/** Resolves on the first SIGINT or SIGTERM. */
export function interrupted(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** `[hh:mm:ss.mmm]` for log lines. */
export function stamp(): string {
  return `[${new Date().toISOString().slice(11, 23)}]`;
}

/** Runs `main`, printing a failure and setting the exit code; exits when done. */
export function run(main: () => Promise<void>): void {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
