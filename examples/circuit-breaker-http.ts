/**
 * A circuit breaker around an HTTP downstream.
 *
 *   npm run example -- examples/circuit-breaker-http.ts            # scripted, ~35 s
 *   npm run example -- examples/circuit-breaker-http.ts --manual   # you switch the modes
 *
 * The example starts a small HTTP "billing service" on a free local port and
 * a consumer that POSTs every order to it. The service can be told to fail
 * or slow down:
 *
 *   curl -X POST localhost:<port>/mode/fail   # 503 for every call
 *   curl -X POST localhost:<port>/mode/slow   # ~350 ms a call
 *   curl -X POST localhost:<port>/mode/ok     # ~15 ms a call
 *
 * Scripted: ok, then 8 s of failures (the circuit opens, every partition
 * pauses, half-open probes every 3 s, nothing is dead-lettered), ok again
 * (it closes and the backlog drains), then 6 s slow (the latency trigger
 * pauses and resumes, adaptive concurrency shrinks), then ok.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BackpressureConsumer, NonRetriableError, RateLimitedProducer } from '../src/index.js';
import { createTopics, fresh, interrupted, kafkaFromEnv, run, sleep, stamp } from './support.js';

type Mode = 'ok' | 'fail' | 'slow';

/** An HTTP error worth retrying (5xx, 429); 4xx are the request's fault. */
class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly status: number) {
    super(`billing answered ${status}`);
  }
}

function startBilling(): Promise<{
  url: string;
  mode: () => Mode;
  setMode: (m: Mode) => void;
  stats: { calls: number; failed: number };
  close: () => Promise<void>;
}> {
  let mode: Mode = 'ok';
  const stats = { calls: 0, failed: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const switchTo = /^\/mode\/(ok|fail|slow)$/.exec(req.url ?? '');
    if (req.method === 'POST' && switchTo) {
      mode = switchTo[1] as Mode;
      console.log(`${stamp()} -- billing mode: ${mode} --`);
      res.end(`mode ${mode}\n`);
      return;
    }
    if (req.method === 'POST' && req.url === '/charges') {
      stats.calls += 1;
      req.resume();
      if (mode === 'fail') {
        stats.failed += 1;
        res.writeHead(503).end('unavailable\n');
        return;
      }
      const delay = mode === 'slow' ? 300 + Math.random() * 100 : 10 + Math.random() * 10;
      setTimeout(() => res.writeHead(201).end('{"charged":true}\n'), delay);
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        mode: () => mode,
        setMode: (m) => {
          mode = m;
          console.log(`${stamp()} -- billing mode: ${m} --`);
        },
        stats,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

run(async () => {
  const manual = process.argv.includes('--manual');
  const kafka = kafkaFromEnv('circuit-breaker-example');
  const topic = fresh('orders');
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [
    { topic, partitions: 4 },
    { topic: `${topic}.dlq`, partitions: 1 },
  ]);
  const billing = await startBilling();
  console.log(`${stamp()} billing service on ${billing.url}`);
  if (manual) {
    for (const m of ['fail', 'slow', 'ok']) console.log(`  curl -X POST ${billing.url}/mode/${m}`);
  }

  const raw = kafka.producer();
  await raw.connect();
  // Orders keep arriving at 40/s while billing has trouble.
  const orders = new RateLimitedProducer(raw, { messagesPerSecond: 40, disconnectOnClose: false });
  let produced = 0;
  let producing = true;
  const load = (async () => {
    while (producing) {
      await orders.send({
        topic,
        messages: [{ key: `customer-${produced % 50}`, value: JSON.stringify({ id: produced }) }],
      });
      produced += 1;
    }
  })();

  let handled = 0;
  let deadLettered = 0;
  const consumer = new BackpressureConsumer(
    kafka.consumer({ groupId: `${topic}-billing`, maxWaitTimeInMs: 500 }),
    {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 16,
      maxInFlight: 200,
      handlerTimeoutMs: 2000,
      retry: { maxAttempts: 3, initialDelayMs: 200, maxDelayMs: 2000 },
      // Nothing should arrive here during the outage: failures while the
      // circuit is open cost no attempt, and a message that only ever failed
      // while nothing else succeeded is not blamed for it.
      deadLetter: { producer: raw },
      circuitBreaker: {
        errorThresholdPercentage: 50, // of the calls in the rolling window
        volumeThreshold: 10, // calls in the window before it may open
        resetTimeoutMs: 3000, // open this long, then one probe (half-open)
        rollingCountTimeoutMs: 5000,
        rollingCountBuckets: 5,
      },
      latency: { pauseAboveMs: 250, resumeBelowMs: 100, windowMs: 2000 },
      adaptiveConcurrency: { minConcurrency: 2, targetLatencyMs: 200, intervalMs: 500 },
      handler: async (message, { signal }) => {
        const response = await fetch(`${billing.url}/charges`, {
          method: 'POST',
          body: message.value,
          headers: { 'content-type': 'application/json' },
          signal, // aborted on timeout or close: the request is cancelled too
        });
        await response.body?.cancel();
        if (response.status >= 500 || response.status === 429) throw new HttpError(response.status);
        if (!response.ok)
          throw new NonRetriableError(`billing rejected the order: ${response.status}`);
        handled += 1;
      },
    },
  );

  const log = (text: string) => console.log(`${stamp()} ${text}`);
  consumer.on('circuit.open', () => log('circuit OPEN: every partition pauses'));
  consumer.on('circuit.half-open', () => log('circuit half-open: one probe at concurrency 1'));
  consumer.on('circuit.closed', () => log(`circuit closed: concurrency ${consumer.concurrency}`));
  consumer.on('flow.paused', (e) => log(`paused ${e.partitions.length} partition(s): ${e.reason}`));
  consumer.on('flow.resumed', (e) =>
    log(`resumed ${e.partitions.length} partition(s): ${e.reason} cleared`),
  );
  consumer.on('latency.high', (e) => log(`latency high: p95 ${e.latencyMs?.toFixed(0)} ms`));
  consumer.on('concurrency.changed', (e) => log(`concurrency ${e.from} -> ${e.to} (${e.reason})`));
  consumer.on('dlq.routed', (e) => {
    deadLettered += 1;
    log(`dead-lettered p${e.partition}@${e.offset}: ${e.error.message}`);
  });
  // One call first: connection setup would otherwise be the first latency samples.
  await (await fetch(`${billing.url}/charges`, { method: 'POST', body: '{}' })).body?.cancel();
  await consumer.start();

  const status = setInterval(() => {
    const lag = consumer.partitions().reduce((n, p) => n + (p.lag ?? 0), 0);
    log(
      `billing ${billing.mode().padEnd(4)} | produced ${produced} handled ${handled} dead-lettered ${deadLettered}` +
        ` | lag ${lag} in flight ${consumer.inFlight} | circuit ${consumer.circuitState}`,
    );
  }, 2000);

  if (manual) {
    await interrupted();
  } else {
    const stop = interrupted().then(() => 'stopped' as const);
    const script = (async () => {
      await sleep(5000);
      billing.setMode('fail');
      await sleep(8000);
      billing.setMode('ok');
      await sleep(8000);
      billing.setMode('slow');
      await sleep(6000);
      billing.setMode('ok');
      await sleep(6000);
    })();
    await Promise.race([script, stop]);
  }

  producing = false;
  await load;
  await orders.flush();
  const deadline = Date.now() + 30_000;
  while (handled + deadLettered < produced && Date.now() < deadline) await sleep(100);
  clearInterval(status);
  await consumer.close();
  log(
    `done: ${produced} produced, ${handled} handled, ${deadLettered} dead-lettered; ` +
      `billing saw ${billing.stats.calls} calls, ${billing.stats.failed} answered 503`,
  );
  await orders.close();
  await raw.disconnect();
  await billing.close();
  await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
  await admin.disconnect();
  if (!manual && (handled !== produced || deadLettered !== 0)) process.exitCode = 1;
});
