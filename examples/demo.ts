/**
 * A short scenario on a local broker: a backlog lands on a topic, a slow
 * downstream consumes it through BackpressureConsumer, and once a second the
 * terminal shows lag, in-flight work, pauses and the circuit.
 *
 *   npm run demo                 # starts a broker, runs ~30 s
 *   npm run demo -- --seconds 10 --messages 3000
 *
 * Set KAFKA_BROKERS to use a broker of your own.
 */
import { Kafka, logLevel } from 'kafkajs';
import { BackpressureConsumer } from '../src/index.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const seconds = Number(args.get('seconds') ?? 30);
const total = Number(args.get('messages') ?? 6000);
const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');

const kafka = new Kafka({ clientId: 'bp-demo', brokers, logLevel: logLevel.NOTHING });
const topic = `demo-orders-${Date.now().toString(36)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic, numPartitions: 6 },
      { topic: `${topic}.dlq`, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });

  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < total; i += 500) {
    const messages = Array.from({ length: Math.min(500, total - i) }, (_, j) => ({
      key: `customer-${(i + j) % 400}`,
      value: JSON.stringify({ order: i + j, poison: (i + j) % 1000 === 999 }),
    }));
    await producer.send({ topic, messages });
  }
  console.log(`produced ${total} orders to ${topic} (6 partitions)`);

  let handled = 0;
  let dead = 0;
  const consumer = new BackpressureConsumer(
    kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 200 }),
    {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 64,
      maxInFlight: 500,
      commitIntervalMs: 1000,
      deadLetter: { producer },
      handler: async (message) => {
        const order = JSON.parse(message.value!.toString()) as { poison: boolean };
        // A downstream that takes 20-40 ms per call.
        await sleep(20 + Math.random() * 20);
        if (order.poison)
          throw Object.assign(new Error('order failed validation'), { retriable: false });
        handled += 1;
      },
    },
  );
  consumer.on('flow.paused', (e) =>
    console.log(`  paused  ${e.partitions.length} partition(s): ${e.reason}`),
  );
  consumer.on('flow.resumed', (e) =>
    console.log(`  resumed ${e.partitions.length} partition(s): ${e.reason} cleared`),
  );
  consumer.on('dlq.routed', () => {
    dead += 1;
  });
  await consumer.start();

  const startedAt = Date.now();
  while (Date.now() - startedAt < seconds * 1000 && handled + dead < total) {
    await sleep(1000);
    const lag = consumer.partitions().reduce((n, p) => n + (p.lag ?? 0), 0);
    console.log(
      `t=${String(Math.round((Date.now() - startedAt) / 1000)).padStart(3)}s handled=${handled} dlq=${dead} lag=${lag} ` +
        `in-flight=${consumer.inFlight} handlers=${consumer.activeHandlers} circuit=${consumer.circuitState}`,
    );
  }
  await consumer.close();
  console.log(
    `done: handled ${handled}, dead-lettered ${dead}, peak in-flight ${consumer.peakInFlight}`,
  );
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
  await admin.disconnect();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
