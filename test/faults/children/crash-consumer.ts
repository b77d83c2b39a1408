// A consumer process for the crash case (test/faults/crash.test.ts): the test
// SIGKILLs it at random moments and starts a new one. Every handled message
// and every commit is appended to the ledger file synchronously, so what the
// file says survives the kill. SIGTERM closes the consumer gracefully and
// lets the process exit by itself.

import { BackpressureConsumer } from '../../../src/index.js';
import { faultConsumer, sleep } from '../../helpers/faults.js';
import { newKafka } from '../../helpers/kafka.js';
import { LedgerFile, offsetId } from '../../helpers/ledger.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const ledger = new LedgerFile(env('FAULT_LEDGER'));
// KafkaJS's and the library's defaults throughout (fetch sizes, maxInFlight,
// the commit cadence): the duplicate bound is stated for them. Only the
// group's timeouts are short, so that a killed member leaves quickly.
const kafkaConsumer = faultConsumer(env('FAULT_GROUP'));
const admin = newKafka(`bp-admin-${process.pid}`).admin();
const consumer = new BackpressureConsumer(kafkaConsumer, {
  topics: [env('FAULT_TOPIC')],
  fromBeginning: true,
  ordering: 'key',
  concurrency: 32,
  admin,
  handler: async (message) => {
    // 0 to 5 ms, as a database write would take.
    await sleep(Math.random() * 5);
    ledger.handled(offsetId(message.partition, message.offset));
  },
});
ledger.line(`r ${process.pid}`);
consumer.on('offsets.committed', (e) => {
  // `partition:offset:metadata`, the metadata as committed (empty when none).
  ledger.line(
    `c ${e.offsets.map((o) => `${offsetId(o.partition, o.offset)}:${o.metadata ?? ''}`).join(',')}`,
  );
});
consumer.on('group.rebalance', (e) => {
  if (e.phase === 'assigned')
    console.log(`assigned ${e.assigned.map((p) => p.partition).join(',')}`);
});
consumer.on('consumer.error', (e) => {
  console.error(`consumer.error during ${e.during}: ${e.error.message}`);
});

process.once('SIGTERM', () => {
  void consumer
    .close({ drainTimeoutMs: 5000 })
    .then(() => admin.disconnect())
    .then(
      () => console.log('closed'),
      (error: unknown) => {
        console.error(error);
        process.exitCode = 1;
      },
    );
});

await consumer.start();
console.log('started');
