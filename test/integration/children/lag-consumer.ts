// A plain KafkaJS consumer in its own process, for the lag monitor's stop
// test: the test SIGKILLs it, so it leaves the group only when its session
// expires, as a crashed service does. Prints `committed` once the group has
// committed on every partition.

import { newConsumer } from '../../helpers/kafka.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const topic = env('LAG_TOPIC');
const partitions = Number(env('LAG_PARTITIONS'));
const consumer = newConsumer(env('LAG_GROUP'), {
  sessionTimeout: Number(env('LAG_SESSION_MS')),
  heartbeatInterval: 500,
});
const committed = new Set<number>();
consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
  for (const t of payload.topics) for (const p of t.partitions) committed.add(p.partition);
  if (committed.size === partitions) console.log('committed');
});
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run({ eachMessage: async () => {} });
console.log('running');
