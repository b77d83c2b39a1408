/**
 * How long a concurrency gate takes to hand a freed slot to the next job:
 * bottleneck (`maxConcurrent`, as the producer used it) against the
 * producer's counter gate. Each job frees its slot by resolving at once, so
 * the time per job is the gate's own hand-over cost, including the event
 * loop turns it waits for.
 *
 *   npx tsx bench/gate-latency.ts [jobs]
 */
import Bottleneck from 'bottleneck';
import { ConcurrencyGate } from '../src/producer/gate.js';

const jobs = Number(process.argv[2] ?? 2000);

async function viaBottleneck(concurrency: number): Promise<number> {
  const limiter = new Bottleneck({ maxConcurrent: concurrency });
  const started = performance.now();
  await Promise.all(Array.from({ length: jobs }, () => limiter.schedule(() => Promise.resolve())));
  const elapsed = performance.now() - started;
  await limiter.stop();
  return elapsed;
}

/** The producer's shape: take a slot if free, release on the answer, look again on a microtask. */
function viaCounter(concurrency: number): Promise<number> {
  const gate = new ConcurrencyGate(concurrency);
  const started = performance.now();
  let left = jobs;
  let done = 0;
  return new Promise((resolve) => {
    const run = (): void => {
      while (left > 0 && gate.tryAcquire()) {
        left -= 1;
        void Promise.resolve().then(() => {
          gate.release();
          done += 1;
          if (done === jobs) resolve(performance.now() - started);
          else queueMicrotask(run);
        });
      }
    };
    run();
  });
}

for (const concurrency of [1, 5]) {
  // One warm-up pass each, then the measured one.
  await viaBottleneck(concurrency);
  await viaCounter(concurrency);
  const b = await viaBottleneck(concurrency);
  const c = await viaCounter(concurrency);
  const us = (ms: number) => ((ms * 1000) / jobs).toFixed(2);
  process.stdout.write(
    `concurrency ${concurrency}, ${jobs} jobs: bottleneck ${us(b)} µs per job, counter gate ${us(c)} µs per job\n`,
  );
}
