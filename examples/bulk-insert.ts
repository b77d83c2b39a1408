/**
 * A batch handler writing to an SQL database with multi-row inserts.
 *
 *   npm run example -- examples/bulk-insert.ts [--ci]
 *
 * Five thousand orders, keyed by customer, go into an SQLite table (sql.js:
 * SQLite compiled to WebAssembly, in memory, nothing to install natively)
 * through `batchHandler`: up to 500 orders per call, one `INSERT ... VALUES
 * (...), (...)` statement per call instead of one per order. A few orders
 * are invalid: the handler names them in its result, and they are
 * dead-lettered alone while the rest of their batch is written.
 *
 * Why the insert is an upsert by order id: delivery is at-least-once. After
 * a crash, or a close that gave up waiting, the messages of a batch that
 * was not committed come again, maybe grouped differently, and some of
 * them were already written. `ON CONFLICT (id) DO UPDATE` makes writing an
 * order twice the same as writing it once, so duplicates do no harm; the
 * producer here even sends some orders twice to show it.
 */
import initSqlJs from 'sql.js';
import { BackpressureConsumer, NonRetriableError, type InboundMessage } from '../src/index.js';
import { createTopics, fresh, kafkaFromEnv, run, sleep, stamp } from './support.js';

interface Order {
  readonly id: string;
  readonly customer: string;
  readonly cents: number;
}

const ORDERS = 5000;
/** Orders whose amount is negative: the handler refuses them. */
const INVALID = new Set([101, 2002, 4503]);
/** Orders the producer sends twice (a producer retry would do the same). */
const TWICE = new Set([10, 20, 30, 40, 50]);
const ci = process.argv.includes('--ci');

run(async () => {
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  db.run(`CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    cents INTEGER NOT NULL CHECK (cents > 0),
    source TEXT NOT NULL
  )`);

  const kafka = kafkaFromEnv('bulk-insert-example');
  const topic = fresh('orders');
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [
    { topic, partitions: 3 },
    { topic: `${topic}.dlq`, partitions: 1 },
  ]);
  const producer = kafka.producer();
  await producer.connect();
  const orders = Array.from({ length: ORDERS }, (_, i) => ({
    id: `o-${i}`,
    customer: `c-${i % 97}`,
    cents: INVALID.has(i) ? -100 : 100 + i,
  }));
  const records = [...orders, ...orders.filter((_, i) => TWICE.has(i))];
  for (let i = 0; i < records.length; i += 1000) {
    await producer.send({
      topic,
      messages: records
        .slice(i, i + 1000)
        .map((o) => ({ key: o.customer, value: JSON.stringify(o) })),
    });
  }
  console.log(`${stamp()} wrote ${records.length} order messages to ${topic}`);

  let calls = 0;
  let rowsWritten = 0;
  let deadLettered = 0;
  const consumer = new BackpressureConsumer<Order>(kafka.consumer({ groupId: `${topic}-writer` }), {
    topics: [topic],
    fromBeginning: true,
    ordering: 'key', // a customer's orders in order; many customers per batch
    concurrency: 2, // batches at once
    batch: { maxMessages: 500, maxWaitMs: 20 },
    deserialize: (message) => JSON.parse(message.value?.toString() ?? '') as Order,
    deadLetter: { producer },
    batchHandler: async (messages) => {
      calls += 1;
      const failed: { message: InboundMessage<Order>; error: Error }[] = [];
      const rows: InboundMessage<Order>[] = [];
      for (const message of messages) {
        if (message.payload.cents > 0) rows.push(message);
        else {
          failed.push({
            message,
            error: new NonRetriableError(`order ${message.payload.id}: amount must be positive`),
          });
        }
      }
      if (rows.length > 0) {
        // One statement for the whole batch; SQLite takes up to 32766
        // parameters, 4 per row here.
        const values = rows.map(() => '(?, ?, ?, ?)').join(', ');
        db.run(
          `INSERT INTO orders (id, customer, cents, source) VALUES ${values}
             ON CONFLICT (id) DO UPDATE SET customer = excluded.customer,
               cents = excluded.cents, source = excluded.source`,
          rows.flatMap((m) => [
            m.payload.id,
            m.payload.customer,
            m.payload.cents,
            `${m.partition}@${m.offset}`,
          ]),
        );
        rowsWritten += rows.length;
      }
      // The invalid orders follow the dead-letter rules alone; the rest are done.
      return { failed };
    },
  });
  consumer.on('handler.settled', (e) => {
    if (!ci && calls % 5 === 1) {
      console.log(
        `${stamp()} batch of ${e.messages} from p${e.partition}@${e.offset}: ${e.outcome}`,
      );
    }
  });
  consumer.on('dlq.routed', (e) => {
    deadLettered += 1;
    console.log(`${stamp()} dead letter p${e.partition}@${e.offset}: ${e.error.message}`);
  });

  await consumer.start();
  const count = (): number => Number(db.exec('SELECT count(*) FROM orders')[0]!.values[0]![0]);
  const expected = ORDERS - INVALID.size;
  const deadline = Date.now() + 60_000;
  while ((count() < expected || deadLettered < INVALID.size) && Date.now() < deadline) {
    await sleep(100);
  }
  await consumer.close();
  const rows = count();
  console.log(
    `${stamp()} ${rows} orders in the table from ${records.length} messages in ${calls} ` +
      `batch calls (${rowsWritten} rows written, duplicates absorbed by the upsert), ` +
      `${deadLettered} dead-lettered`,
  );
  if (ci) {
    console.log(
      JSON.stringify({ rows, calls, rowsWritten, deadLettered, messages: records.length }),
    );
  }

  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
  await admin.disconnect();
  db.close();
  if (rows !== expected || deadLettered !== INVALID.size) process.exitCode = 1;
});
