/**
 * A two-stage pipeline where backpressure crosses a Kafka topic.
 *
 *   npm run example -- examples/pipeline.ts
 *   npm run example -- examples/pipeline.ts --no-backpressure   # for comparison
 *   npm run example -- examples/pipeline.ts --ci   # 1000 events; checks itself
 *
 *   raw-events --[stage 1: enrich, fast]--> enriched-events --[stage 2: index, slow]-->
 *
 * Stage 1 handles ~400 msg/s, stage 2 ~60 msg/s. 2000 raw events arrive at
 * once. Without backpressure across the topic, stage 1 copies the whole
 * backlog into enriched-events within seconds and stage 2 is 2000 behind.
 * With `downstreamLag`, stage 1 watches stage 2's group through a LagMonitor
 * and pauses (reason `downstream-lag`) while stage 2 is more than 300
 * behind, resuming below 100: the backlog waits upstream, in raw-events,
 * and stage 2's lag stays near the mark. Either way nothing is lost: stage 1
 * commits a raw event only once its enriched copy is acknowledged.
 *
 * It exits 1 unless every event was indexed and, with backpressure, stage 1
 * paused for stage 2's lag at least once. `--ci` runs 1000 events and ends
 * with one JSON line of counts (what test/integration/examples.test.ts reads).
 */
import {
  BackpressureConsumer,
  LagMonitor,
  RateLimitedProducer,
  type DownstreamLagOptions,
} from '../src/index.js';
import { createTopics, fresh, interrupted, kafkaFromEnv, run, sleep, stamp } from './support.js';

run(async () => {
  const backpressure = !process.argv.includes('--no-backpressure');
  const ci = process.argv.includes('--ci');
  const EVENTS = ci ? 1000 : 2000;
  const kafka = kafkaFromEnv('pipeline-example');
  const raw = fresh('raw-events');
  const enriched = fresh('enriched-events');
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [
    { topic: raw, partitions: 4 },
    { topic: enriched, partitions: 4 },
  ]);

  const rawProducer = kafka.producer();
  await rawProducer.connect();
  for (let i = 0; i < EVENTS; i += 500) {
    await rawProducer.send({
      topic: raw,
      messages: Array.from({ length: 500 }, (_, j) => ({
        key: `user-${(i + j) % 200}`,
        value: JSON.stringify({ n: i + j, at: Date.now() }),
      })),
    });
  }
  console.log(`${stamp()} ${EVENTS} raw events in ${raw}`);

  // Both stages' groups are watched; stage 2's monitor is stage 1's signal.
  const monitor = (groupId: string, topic: string) =>
    new LagMonitor(kafka.admin(), {
      groupId,
      topics: [topic],
      intervalMs: 500,
      windowMs: 10_000,
      thresholds: { warningLag: 300, criticalLag: 1000 },
    });
  const stage1Group = `${raw}-enricher`;
  const stage2Group = `${enriched}-indexer`;
  const stage1Lag = monitor(stage1Group, raw);
  const stage2Lag = monitor(stage2Group, enriched);
  await Promise.all([stage1Lag.start(), stage2Lag.start()]);

  // ---- stage 2: slow ----------------------------------------------------
  let indexed = 0;
  const seen = new Set<number>();
  const stage2 = new BackpressureConsumer(
    kafka.consumer({ groupId: stage2Group, maxWaitTimeInMs: 500 }),
    {
      topics: [enriched],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 6,
      maxInFlight: 60,
      commitIntervalMs: 500,
      handler: async (message) => {
        const event = JSON.parse(message.value!.toString()) as { n: number };
        await sleep(100); // an index write: ~60 msg/s at 6 at once
        seen.add(event.n);
        indexed += 1;
      },
    },
  );

  // ---- stage 1: fast, and holds back while stage 2 is behind -------------
  const out = kafka.producer();
  await out.connect();
  const enrichedProducer = new RateLimitedProducer(out, { lingerMs: 5 });
  const downstreamLag: DownstreamLagOptions = {
    lag: stage2Lag.lag, // bound: passes as it is
    pauseAboveLag: 300,
    resumeBelowLag: 100,
    intervalMs: 500,
  };
  const stage1 = new BackpressureConsumer(
    kafka.consumer({ groupId: stage1Group, maxWaitTimeInMs: 500 }),
    {
      topics: [raw],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 16,
      maxInFlight: 100,
      commitIntervalMs: 500,
      ...(backpressure ? { downstreamLag } : {}),
      handler: async (message) => {
        const event = JSON.parse(message.value!.toString()) as { n: number };
        await sleep(20); // a lookup
        // Resolves on the broker's ack: the raw offset is committed only after.
        await enrichedProducer.send({
          topic: enriched,
          messages: [{ key: message.key, value: JSON.stringify({ ...event, country: 'NL' }) }],
        });
      },
    },
  );

  const log = (text: string) => console.log(`${stamp()} ${text}`);
  let pauses = 0;
  stage1.on('downstream.lag-high', (e) => {
    pauses += 1;
    log(`stage 1 PAUSED: stage 2 is ${e.lag} behind (${e.reason})`);
  });
  stage1.on('downstream.lag-normal', (e) =>
    log(`stage 1 resumed: stage 2 is ${e.lag} behind (${e.reason})`),
  );

  await stage2.start();
  await stage1.start();

  let peak = 0;
  const status = setInterval(() => {
    const l1 = stage1Lag.lag() ?? 0;
    const l2 = stage2Lag.lag() ?? 0;
    peak = Math.max(peak, l2);
    const paused = stage1.partitions().some((p) => p.reasons.includes('downstream-lag'));
    log(
      `raw-events lag ${String(l1).padStart(4)} | enriched-events lag ${String(l2).padStart(4)} | ` +
        `indexed ${String(indexed).padStart(4)}/${EVENTS}${paused ? ' | stage 1 paused' : ''}`,
    );
  }, 1000);

  const done = (async () => {
    while (seen.size < EVENTS) await sleep(100);
  })();
  const stopped = await Promise.race([done.then(() => undefined), interrupted()]);
  clearInterval(status);
  log(
    `${indexed} indexed; stage 2's lag peaked at ${peak}` +
      (backpressure ? ' (pause mark 300)' : ' (no backpressure across the topic)'),
  );

  await stage1.close();
  await enrichedProducer.close();
  await stage2.close();
  await Promise.all([stage1Lag.stop(), stage2Lag.stop()]);
  await rawProducer.disconnect();
  await admin.deleteTopics({ topics: [raw, enriched] }).catch(() => undefined);
  await admin.disconnect();

  // Every event reached stage 2, and (with backpressure) stage 1 held back.
  // An interrupted run checks nothing.
  if (stopped === undefined && (seen.size !== EVENTS || (backpressure && pauses === 0))) {
    process.exitCode = 1;
  }
  if (ci) {
    console.log(JSON.stringify({ events: EVENTS, indexed, distinct: seen.size, pauses, peak }));
  }
});
