/**
 * Graceful shutdown on SIGTERM, as a Kubernetes pod or a systemd unit gets
 * it: stop fetching, let the handlers in flight finish (bounded), commit,
 * disconnect, exit 0, all before the grace period ends and SIGKILL comes
 * (Kubernetes: terminationGracePeriodSeconds, 30 s by default).
 *
 *   npm run example -- examples/graceful-shutdown.ts          # SIGTERMs itself after 4 s
 *   npm run example -- examples/graceful-shutdown.ts --wait   # waits for `kill -TERM <pid>`
 *
 * Then it plays the restarted pod: a new consumer in the same group starts
 * exactly at the committed offsets, and no message is handled twice.
 */
import { BackpressureConsumer } from '../src/index.js';
import { createTopics, fresh, kafkaFromEnv, run, sleep, stamp } from './support.js';

const MESSAGES = 1500;

run(async () => {
  const kafka = kafkaFromEnv('graceful-shutdown-example');
  const topic = fresh('jobs');
  const groupId = `${topic}-workers`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic, partitions: 4 }]);
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < MESSAGES; i += 500) {
    await producer.send({
      topic,
      messages: Array.from({ length: 500 }, (_, j) => ({ value: String(i + j) })),
    });
  }

  const log = (text: string) => console.log(`${stamp()} ${text}`);
  // Records in the topic. A producer retry under load can write a batch
  // twice, so count what the topic holds rather than what was sent.
  const records = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  // Handled count per record (`partition@offset`): a record handled twice is
  // what a consumer's duplicate is.
  const handledBy = new Map<string, number>();

  function worker() {
    return new BackpressureConsumer(
      // maxWaitTimeInMs bounds how long close() waits for KafkaJS's fetch in progress.
      kafka.consumer({ groupId, maxWaitTimeInMs: 500 }),
      {
        topics: [topic],
        fromBeginning: true,
        ordering: 'unordered',
        concurrency: 32,
        maxInFlight: 200,
        commitIntervalMs: 5000,
        // What close() waits for at most by default; SIGTERM below passes its own.
        closeDrainTimeoutMs: 20_000,
        handler: async (message, { signal }) => {
          // 200-400 ms of work that stops when the consumer gives up on it
          // (drain timeout): the message is then redelivered, not lost.
          await sleep(200 + Math.random() * 200, signal);
          const id = `${message.partition}@${message.offset}`;
          handledBy.set(id, (handledBy.get(id) ?? 0) + 1);
        },
      },
    );
  }

  // ---- the service ------------------------------------------------------
  const consumer = worker();
  await consumer.start();
  log(`pid ${process.pid} consuming ${topic}; send SIGTERM to stop it`);

  const stopped = new Promise<void>((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) {
        // A second signal: the operator wants out now.
        log(`${signal} again: exiting without waiting`);
        process.exit(130);
      }
      closing = true;
      log(`${signal}: closing with ${consumer.inFlight} message(s) in flight`);
      // A last resort below the orchestrator's grace period.
      const hardStop = setTimeout(() => {
        log('shutdown took longer than 25 s: exiting');
        process.exit(1);
      }, 25_000);
      hardStop.unref();
      const started = Date.now();
      consumer
        .close({ drainTimeoutMs: 15_000 })
        .then(() => {
          clearTimeout(hardStop);
          log(
            `closed in ${Date.now() - started} ms: in-flight work finished, offsets committed, left the group`,
          );
          resolve();
        })
        .catch((error: unknown) => {
          log(`close failed: ${String(error)}`);
          process.exit(1);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  if (!process.argv.includes('--wait')) {
    setTimeout(() => {
      log('sending SIGTERM to myself');
      process.kill(process.pid, 'SIGTERM');
    }, 4000);
  }
  await stopped;
  const handledBeforeStop = handledBy.size;

  // ---- what the restart sees --------------------------------------------
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const position = committed[0]!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  log(`handled ${handledBeforeStop}; committed offsets add up to ${position}`);

  const restarted = worker();
  await restarted.start();
  while (handledBy.size < records) await sleep(100);
  await restarted.close();
  const twice = [...handledBy.values()].filter((n) => n > 1).length;
  log(
    `restarted worker finished the other ${records - handledBeforeStop}; handled twice: ${twice}`,
  );

  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  if (position !== handledBeforeStop || twice !== 0) process.exitCode = 1;
});
