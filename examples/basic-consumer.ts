/**
 * A consumer with its thresholds spelled out, and every event it emits
 * logged: what a first integration looks like.
 *
 *   npm run example -- examples/basic-consumer.ts
 *
 * It writes 3000 orders to a fresh topic, then consumes them through a
 * downstream that slows down for a while (from ~20 ms to ~150 ms a call):
 * watch the latency trigger pause every partition, adaptive concurrency
 * shrink and grow back, the in-flight budget fill and drain, and the
 * commits follow. It exits once every order is done.
 */
import { BackpressureConsumer } from '../src/index.js';
import { createTopics, fresh, interrupted, kafkaFromEnv, run, sleep, stamp } from './support.js';

const ORDERS = 3000;

run(async () => {
  const kafka = kafkaFromEnv('basic-consumer-example');
  const topic = fresh('orders');
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic, partitions: 6 }]);

  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < ORDERS; i += 500) {
    await producer.send({
      topic,
      messages: Array.from({ length: 500 }, (_, j) => ({
        key: `customer-${(i + j) % 300}`,
        value: JSON.stringify({ id: i + j }),
      })),
    });
  }
  console.log(`${stamp()} wrote ${ORDERS} orders to ${topic}`);

  // The downstream: ~20 ms a call, ~150 ms while "degraded".
  let handled = 0;
  let degraded = false;
  const log = (text: string) => console.log(`${stamp()} ${text}`);

  const consumer = new BackpressureConsumer(kafka.consumer({ groupId: `${topic}-service` }), {
    topics: [topic],
    fromBeginning: true,
    // Orders of one customer stay in order; different customers run at once.
    ordering: 'key',
    concurrency: 32,
    // The limit follows downstream latency (a gradient rule): cut at once when
    // latency clearly rises above what the downstream shows unloaded, grown back
    // while it holds; kept where it is when cutting does not lower latency.
    adaptiveConcurrency: { minConcurrency: 4, targetLatencyMs: 100, intervalMs: 500 },
    // Bounded memory: at most 200 messages or 1 MiB fetched and not done.
    // The queue pauses at the limit and resumes at half of it.
    maxInFlight: 200,
    maxInFlightBytes: 1024 * 1024,
    resumeThreshold: 0.5,
    // Every partition pauses while p95 of handler time is above 120 ms (over
    // the last 2 s); while paused, 3 probe calls run at a time, and the pause
    // ends once 3 in a row take less than 60 ms.
    latency: { percentile: 95, pauseAboveMs: 120, resumeBelowMs: 60, windowMs: 2000 },
    handlerTimeoutMs: 5000,
    commitIntervalMs: 1000,
    lagSampleIntervalMs: 1000,
    handler: async (_message, { signal }) => {
      await sleep((degraded ? 150 : 20) * (0.8 + Math.random() * 0.4), signal);
      handled += 1;
    },
  });

  // Every event, one line each (handler.settled, one per call, is left out).
  consumer.on('consumer.state', (e) => log(`consumer.state      ${e.state}`));
  consumer.on('group.rebalance', (e) =>
    log(
      `group.rebalance     ${e.phase}: ${e.assigned.length} assigned, ${e.revoked.length} revoked`,
    ),
  );
  consumer.on('flow.paused', (e) =>
    log(`flow.paused         ${e.partitions.length} partition(s), reason ${e.reason}`),
  );
  consumer.on('flow.resumed', (e) =>
    log(`flow.resumed        ${e.partitions.length} partition(s), ${e.reason} cleared`),
  );
  consumer.on('queue.full', (e) =>
    log(`queue.full          ${e.messages}/${e.maxMessages} messages, ${e.bytes} bytes`),
  );
  consumer.on('queue.drained', (e) =>
    log(`queue.drained       ${e.messages}/${e.maxMessages} messages`),
  );
  consumer.on('latency.high', (e) =>
    log(`latency.high        p${e.percentile} ${e.latencyMs?.toFixed(0)} ms > ${e.thresholdMs} ms`),
  );
  consumer.on('latency.normal', (e) =>
    log(
      `latency.normal      p${e.percentile} ${e.latencyMs?.toFixed(0) ?? '-'} ms < ${e.thresholdMs} ms`,
    ),
  );
  consumer.on('concurrency.changed', (e) =>
    log(`concurrency.changed ${e.from} -> ${e.to} (${e.reason})`),
  );
  consumer.on('offsets.committed', (e) =>
    log(`offsets.committed   ${e.offsets.map((o) => `p${o.partition}@${o.offset}`).join(' ')}`),
  );
  consumer.on('lag.sample', (e) =>
    log(`lag.sample          total ${e.total}, in flight ${consumer.inFlight}, handled ${handled}`),
  );
  consumer.on('message.retry', (e) =>
    log(`message.retry       p${e.partition}@${e.offset} attempt ${e.attempt}: ${e.error.message}`),
  );
  consumer.on('message.failed', (e) =>
    log(`message.failed      p${e.partition}@${e.offset}: ${e.error.message}`),
  );
  consumer.on('circuit.open', () => log('circuit.open'));
  consumer.on('circuit.half-open', () => log('circuit.half-open'));
  consumer.on('circuit.closed', () => log('circuit.closed'));
  consumer.on('consumer.error', (e) =>
    log(`consumer.error      during ${e.during}: ${e.error.message}`),
  );

  await consumer.start();
  const stop = interrupted();

  // The downstream degrades after a third of the orders, for four seconds.
  const scenario = (async () => {
    while (handled < ORDERS / 3) await sleep(50);
    log(`-- downstream degrades (~150 ms a call) --`);
    degraded = true;
    await sleep(4000);
    degraded = false;
    log(`-- downstream healthy again (~20 ms a call) --`);
    while (handled < ORDERS) await sleep(50);
  })();
  await Promise.race([scenario, stop]);

  await consumer.close();
  log(`done: ${handled} handled, peak in flight ${consumer.peakInFlight} (limit 200)`);
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});
