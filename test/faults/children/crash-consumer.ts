// A consumer process for the crash case (test/faults/crash.test.ts): the test
// SIGKILLs it at random moments and starts a new one. Every handled message
// and every commit is appended to the ledger file synchronously, so what the
// file says survives the kill. SIGTERM closes the consumer gracefully and
// lets the process exit by itself.

import { BackpressureConsumer } from '../../../src/index.js';
import { faultConsumer, sleep } from '../../helpers/faults.js';
import { LedgerFile, offsetId } from '../../helpers/ledger.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const ledger = new LedgerFile(env('FAULT_LEDGER'));
const maxInFlight = Number(env('FAULT_MAX_IN_FLIGHT'));
const kafkaConsumer = faultConsumer(env('FAULT_GROUP'), {
  // One fetch response is the other part of the duplicate bound: keep it small and known.
  maxBytes: Number(env('FAULT_FETCH_BYTES')),
  maxBytesPerPartition: Number(env('FAULT_FETCH_BYTES')),
});
const consumer = new BackpressureConsumer(kafkaConsumer, {
  topics: [env('FAULT_TOPIC')],
  fromBeginning: true,
  ordering: 'key',
  concurrency: 16,
  maxInFlight,
  commitIntervalMs: Number(env('FAULT_COMMIT_MS')),
  handler: async (message) => {
    if (Math.random() < 0.2) await sleep(Math.random() * 4);
    ledger.handled(offsetId(message.partition, message.offset));
  },
});
ledger.line(`r ${process.pid}`);
consumer.on('offsets.committed', (e) => {
  ledger.line(`c ${e.offsets.map((o) => offsetId(o.partition, o.offset)).join(',')}`);
});
consumer.on('group.rebalance', (e) => {
  if (e.phase === 'assigned')
    console.log(`assigned ${e.assigned.map((p) => p.partition).join(',')}`);
});
consumer.on('consumer.error', (e) => {
  console.error(`consumer.error during ${e.during}: ${e.error.message}`);
});

process.once('SIGTERM', () => {
  void consumer.close({ drainTimeoutMs: 5000 }).then(
    () => console.log('closed'),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
});

await consumer.start();
console.log('started');
