/**
 * A producer that slows down when the consumers it feeds fall behind.
 *
 *   npm run example -- examples/rate-limited-producer.ts
 *   npm run example -- examples/rate-limited-producer.ts --ci   # 20 s; checks itself
 *
 * The producer may send 200 msg/s; the consumer group downstream handles
 * about 80 msg/s. A LagMonitor watches the group, and the producer follows
 * its status: at `warning` it sends at a quarter of its rate (50 msg/s,
 * below what the consumers handle, so the lag falls), at `critical` it
 * stops accepting sends until the status clears, and at `ok` it goes back
 * to full rate. The lag saws between the marks instead of growing by
 * 120 msg/s for as long as the producer runs. After 40 s it prints what
 * happened; `--seconds <n>` changes that.
 *
 * It exits 1 unless the producer followed the lag signal (slowed down or
 * stopped at least once) and the consumers received every message whose
 * send resolved. `--ci` runs 20 s and ends with one JSON line of counts (what
 * test/integration/examples.test.ts reads).
 */
import { BackpressureConsumer, LagMonitor, RateLimitedProducer } from '../src/index.js';
import { createTopics, fresh, interrupted, kafkaFromEnv, run, sleep, stamp } from './support.js';

run(async () => {
  const at = process.argv.indexOf('--seconds');
  const ci = process.argv.includes('--ci');
  const seconds = at > 0 ? Number(process.argv[at + 1]) : ci ? 20 : 40;
  const kafka = kafkaFromEnv('rate-limited-producer-example');
  const topic = fresh('events');
  const groupId = `${topic}-indexer`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic, partitions: 4 }]);

  // The stage downstream: 4 handlers at once, ~50 ms each = ~80 msg/s.
  const received = new Set<number>();
  const consumer = new BackpressureConsumer(kafka.consumer({ groupId, maxWaitTimeInMs: 500 }), {
    topics: [topic],
    fromBeginning: true,
    ordering: 'unordered',
    concurrency: 4,
    commitIntervalMs: 500,
    handler: async (message) => {
      received.add((JSON.parse(message.value!.toString()) as { n: number }).n);
      await sleep(50);
    },
  });
  await consumer.start();

  // The lag of that group, every second, against two marks.
  const monitor = new LagMonitor(kafka.admin(), {
    groupId,
    topics: [topic],
    intervalMs: 1000,
    windowMs: 10_000,
    thresholds: { warningLag: 300, criticalLag: 800 },
  });
  await monitor.start();

  const raw = kafka.producer();
  await raw.connect();
  const producer = new RateLimitedProducer(raw, {
    messagesPerSecond: 200,
    maxInFlightRequests: 2,
    // ~1 s of messages may wait in the buffer; beyond that, send() waits.
    maxBufferedMessages: 200,
    // A send not accepted within 30 s (buffer full, or critical lag) rejects.
    maxBlockMs: 30_000,
    lingerMs: 20,
    warningRateFactor: 0.25,
    // `monitor.status` is a bound function: it can be passed as it is.
    lagSignal: { status: monitor.status, intervalMs: 1000 },
  });

  const log = (text: string) => console.log(`${stamp()} ${text}`);
  let slowed = 0;
  producer.on('producer.throttled', (e) => {
    if (e.lagStatus !== 'ok') slowed += 1;
    log(
      `throttled: lag ${e.previousLagStatus} -> ${e.lagStatus}, ` +
        `${e.accepting ? `now ${e.messagesPerSecond} msg/s` : 'sends wait until the lag clears'} (${e.reason})`,
    );
  });
  producer.on('producer.buffer-full', (e) =>
    log(`buffer full: ${e.bufferedMessages}/${e.maxBufferedMessages} messages; senders wait`),
  );
  producer.on('producer.buffer-drained', (e) =>
    log(`buffer drained after ${(e.fullForMs / 1000).toFixed(1)} s`),
  );
  producer.on('producer.send-failed', (e) => log(`send failed: ${e.error.message}`));

  // The application: 32 request handlers, each sending as fast as the
  // producer accepts (send() resolves on the broker's ack).
  let sent = 0;
  let next = 0;
  const acked = new Set<number>();
  let running = true;
  const app = Promise.all(
    Array.from({ length: 32 }, async () => {
      while (running) {
        const n = next++;
        await producer.send({ topic, messages: [{ value: JSON.stringify({ n }) }] });
        acked.add(n);
        sent += 1;
      }
    }),
  );

  let peakLag = 0;
  let lastSent = 0;
  const status = setInterval(() => {
    const lag = monitor.lag() ?? 0;
    peakLag = Math.max(peakLag, lag);
    log(
      `lag ${String(lag).padStart(4)} (${monitor.status().padEnd(8)}) | producing ${String(sent - lastSent).padStart(3)} msg/s` +
        ` (limit ${producer.limits.messagesPerSecond}${producer.accepting ? '' : ', stopped'})` +
        ` | buffered ${producer.bufferedMessages}`,
    );
    lastSent = sent;
  }, 1000);

  const signal = await Promise.race([sleep(seconds * 1000).then(() => undefined), interrupted()]);
  running = false;
  clearInterval(status);
  // Sends still waiting for a critical status to clear would wait up to
  // maxBlockMs; close() delivers what was accepted and rejects the rest.
  await producer.close({ timeoutMs: 10_000 }).catch(() => undefined);
  await app.catch(() => undefined);
  log(
    `sent ${sent} in ${seconds} s (${(sent / seconds).toFixed(0)} msg/s on average, the consumers handle ~80); ` +
      `peak lag ${peakLag} (marks: warning 300, critical 800). Without the lag signal it would ` +
      `have grown by ~120 msg/s, to ~${120 * seconds} by now.`,
  );
  await monitor.stop();
  // Let the consumers catch up (at ~80 msg/s) before counting what arrived.
  const catchUp = Date.now() + 60_000;
  const missing = () => [...acked].filter((n) => !received.has(n)).length;
  while (signal === undefined && missing() > 0 && Date.now() < catchUp) await sleep(200);
  const lost = missing();
  await consumer.close({ drainTimeoutMs: 5000 });
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();

  // An interrupted run checks nothing.
  if (signal === undefined && (slowed === 0 || lost > 0)) process.exitCode = 1;
  if (ci) console.log(JSON.stringify({ sent, received: received.size, lost, slowed, peakLag }));
});
